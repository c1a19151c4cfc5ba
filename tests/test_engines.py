"""Serving plans (hfmem.engines) against values derived by hand from the engines' formulas (docs/engines.md §1.3-1.7,
§2, §4). Calibrated constants are written out where they enter: the visible device total (H100 79.18 GiB,
RTX-3090 23.58 GiB), non-torch 0.13 GiB (0.55 GiB with TP > 1), CUDA graphs 0.4 GiB, and the profiling peak
max(9.67 x requests x padded vocab x 4 B, tokens x 2 B x 3 x (MLP width / tp + hidden))."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache

import pytest

from hfmem.engines import Layout, SglangSettings, VllmSettings, layouts, plan, solve
from hfmem.engines.plan import pp_partition
from hfmem.engines.vllm import group_slots, mxfp4_padding
from hfmem.gpus import find_gpu
from hfmem.memory.facts import ModelFacts, analyse
from hfmem.spec import Quantization

from .dataset import needs_dataset
from .test_memory_specs import arch_spec, dataset_folder, dataset_spec

GIB = 2**30
H100, RTX3090, H200 = find_gpu("H100"), find_gpu("RTX-3090"), find_gpu("H200")
LLAMA_WEIGHTS = 16_060_522_496  # Llama-3.1-8B header bytes (all BF16)


@cache
def facts(name: str) -> ModelFacts:
    return analyse(dataset_spec(dataset_folder(name)))


def vllm_available(gpu_gib: float, weights: int, activation: int, tp: int = 1, util: float = 0.92) -> int:
    """requested - weights - non_torch - activation - graphs (gpu_worker.py:753-757)."""
    non_torch = int((0.55 if tp > 1 else 0.13) * GIB)
    return math.ceil(int(gpu_gib * GIB) * util) - weights - non_torch - activation - int(0.4 * GIB)


def sampler(requests: int, vocab: int) -> int:
    return int(9.67 * requests * vocab * 4)


@needs_dataset
def test_llama_8b_on_rtx_3090_at_20000_starts():
    p = plan(facts("meta-llama__Llama-3.1-8B"), RTX3090, VllmSettings(max_model_len=20000))
    # RTX-3090 (< 70 GiB): max_num_seqs 256, max_num_batched_tokens 2048; the sampler outweighs the forward pass
    # (2048 x 2 x 3 x (14336 + 4096) = 226 MB).
    activation = sampler(256, 128256)
    assert p.per_gpu["activation_peak"] == activation
    assert p.per_gpu["weights"] == LLAMA_WEIGHTS  # 128256 rows: already a multiple of 64
    available = vllm_available(23.58, LLAMA_WEIGHTS, activation)
    page = 16 * 8 * 2 * 128 * 2  # block x kv heads x (K, V) x head_dim x bf16 = 64 KiB
    per_block = 32 * page  # one group of all 32 layers: 2 MiB
    blocks = available // per_block
    assert (p.kv_groups[0].page_bytes, p.kv_groups[0].layers, p.kv_groups[0].blocks) == (page, 32, blocks)
    assert p.kv_groups[0].blocks_per_request == 1250  # cdiv(20000, 16)
    assert p.max_concurrency == blocks / 1250
    assert p.kv_cache_tokens == int(blocks / 1250 * 20000)
    assert p.per_gpu["kv_cache"] == blocks * per_block
    assert p.starts and p.error is None
    assert 1250 * per_block <= available - per_block
    assert p.max_model_len_that_starts == (blocks - 1) * 16  # one block is the null block
    assert p.command == "vllm serve meta-llama/Llama-3.1-8B --max-model-len 20000"
    assert p.settings["gpu_memory_utilization"] == 0.92 and p.settings["block_size"] == 16


@needs_dataset
def test_llama_8b_on_rtx_3090_at_full_context_refuses_with_vllms_text():
    p = plan(facts("meta-llama__Llama-3.1-8B"), RTX3090, VllmSettings())
    available = vllm_available(23.58, LLAMA_WEIGHTS, sampler(256, 128256))
    largest = (available // 2**21 - 1) * 16
    assert not p.starts
    assert p.error == (
        "To serve at least one request with the model's max seq len (131072), (16.00 GiB KV cache is needed, "
        f"which is larger than the available KV cache memory ({available / GIB:.2f} GiB). Based on the available "
        f"memory, the estimated maximum model length is {largest}. Try increasing `gpu_memory_utilization` (which "
        "also controls CPU memory on the CPU backend) or decreasing `max_model_len` when initializing the engine. "
        "See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
    )
    assert p.max_model_len_that_starts == largest
    assert p.command == f"vllm serve meta-llama/Llama-3.1-8B --max-model-len {largest}"


@needs_dataset
@pytest.mark.parametrize("tp", [1, 2, 4])
def test_llama_8b_on_h100_with_tensor_parallel(tp):
    p = plan(facts("meta-llama__Llama-3.1-8B"), H100, VllmSettings(max_model_len=20000, tensor_parallel_size=tp))
    norms = (2 * 32 + 1) * 4096 * 2  # RMSNorm weights, replicated on every rank
    weights = (LLAMA_WEIGHTS - norms) // tp + norms  # everything else splits evenly (8 KV heads / tp >= 1)
    assert abs(p.per_gpu["weights"] - weights) <= 32 * 7  # ceil per tensor
    activation = sampler(1024, 128256)  # H100 (>= 70 GiB): 1024 requests, 8192 tokens
    assert p.per_gpu["activation_peak"] == activation
    page = 16 * (8 // tp) * 2 * 128 * 2
    blocks = vllm_available(79.18, p.per_gpu["weights"], activation, tp) // (32 * page)
    assert (p.kv_groups[0].page_bytes, p.kv_groups[0].blocks) == (page, blocks)
    assert p.kv_cache_tokens == int(blocks / 1250 * 20000)
    assert p.starts and p.max_model_len_that_starts == 131072  # the model's context fits
    assert p.to_dict()["gpu"]["count"] == tp


@needs_dataset
def test_kv_heads_are_replicated_past_tp():
    llama = facts("meta-llama__Llama-3.1-8B")
    tp8, tp16 = (plan(llama, H100, VllmSettings(tensor_parallel_size=tp)) for tp in (8, 16))
    assert tp8.kv_groups[0].page_bytes == tp16.kv_groups[0].page_bytes == 16 * 1 * 2 * 128 * 2  # one head each
    norms = (2 * 32 + 1) * 4096 * 2
    kv_proj = 32 * 2 * 1024 * 4096 * 2  # k_proj and v_proj: 8 heads x 128 rows; at tp 16 a rank holds one head
    weights = norms + kv_proj // 8 + (LLAMA_WEIGHTS - norms - kv_proj) // 16
    assert abs(tp16.per_gpu["weights"] - weights) <= 32 * 7
    assert plan(llama, H100, VllmSettings(tensor_parallel_size=3)).error == (
        "Total number of attention heads (32) must be divisible by tensor parallel size (3)."
    )


@needs_dataset
def test_deepseek_v3_tp8_keeps_the_mla_latent_on_every_rank():
    ds = facts("deepseek-ai__DeepSeek-V3")
    p = plan(ds, H200, VllmSettings(tensor_parallel_size=8, max_model_len=32768, quantization="fp8"))
    page = 64 * (512 + 64) * 2  # FlashMLA block 64 x (kv_lora_rank + qk_rope_head_dim) x bf16, no K/V pair
    single = plan(ds, H200, VllmSettings(max_model_len=32768, quantization="fp8"))
    assert p.kv_groups[0].page_bytes == single.kv_groups[0].page_bytes == page  # not divided by tp
    assert p.kv_groups[0].layers == 61 and p.kv_groups[0].blocks_per_request == 32768 // 64
    # Replicated per rank: q_a_proj (1536 x 7168) and kv_a_proj_with_mqa (576 x 7168) in FP8 on all 61 layers, the
    # BF16 routers (256 x 7168) and score biases (256) on 58 MoE layers, the BF16 norms (2 x 7168 + 1536 + 512 per
    # layer, 7168 at the end); the rest splits by 8.
    replicated = 61 * (1536 + 576) * 7168 + 58 * (256 * 7168 + 256) * 2 + (61 * (2 * 7168 + 1536 + 512) + 7168) * 2
    assert abs(p.per_gpu["weights"] - (replicated + (single.per_gpu["weights"] - replicated) // 8)) < 10**5
    activation = sampler(1024, 129280)
    blocks = vllm_available(141 * 0.99, p.per_gpu["weights"], activation, 8) // (61 * page)
    assert p.kv_groups[0].blocks == blocks and p.starts
    assert p.kv_cache_tokens == int(blocks / 512 * 32768)


@needs_dataset
def test_gemma_3_sliding_window_groups():
    p = plan(facts("google__gemma-3-1b-it"), RTX3090, VllmSettings())
    # 26 layers: 4 full, 22 sliding (window 512) -> groups of 4 slots: 1 full + ceil(22 / 4) = 6 sliding.
    kinds = [g.kind for g in p.kv_groups]
    assert kinds.count("full_attention") == 1 and kinds.count("sliding_attention") == 6
    page = 16 * 1 * 2 * 256 * 2  # one KV head of 256
    assert {g.layers for g in p.kv_groups} == {4} and {g.page_bytes for g in p.kv_groups} == {page}
    sliding = -(-(512 - 1 + 2048) // 16) + 1  # cdiv(min(w - 1 + batched tokens, L), block) + 1 = 161
    full = 32768 // 16
    assert {g.kind: g.blocks_per_request for g in p.kv_groups} == {"full_attention": full,
                                                                    "sliding_attention": sliding}
    activation = sampler(256, 262144)
    blocks = vllm_available(23.58, p.per_gpu["weights"], activation) // (4 * page)
    assert p.kv_groups[0].blocks == blocks
    assert p.max_concurrency == blocks / (full + 6 * sliding)
    assert p.kv_cache_tokens == int(blocks / (full + 6 * sliding) * 32768)


def test_group_slots_follow_vllm():
    assert group_slots(["full_attention"] * 10 + ["sliding_attention"] * 20) == [("full_attention", 10)] + [
        ("sliding_attention", 10)
    ] * 2  # the code comment's example: 3 groups of 10
    assert group_slots(["full_attention"] * 12 + ["sliding_attention"] * 12) == [("full_attention", 12),
                                                                                 ("sliding_attention", 12)]
    assert group_slots(["full_attention"] * 5) == [("full_attention", 5)]


def test_pipeline_partition_gives_the_remainder_to_earlier_stages():
    assert [len(r) for r in pp_partition(27, 2)] == [14, 13]  # DeepSeek-V2-Lite PP2 in vllm#20665
    assert [len(r) for r in pp_partition(61, 4)] == [15, 15, 16, 15]  # the one left over goes to stage -2


@needs_dataset
def test_qwen3_30b_a3b_vllm_and_sglang():
    qwen = facts("Qwen__Qwen3-30B-A3B")
    p = plan(qwen, H100, VllmSettings())
    page = 16 * 4 * 2 * 128 * 2
    activation = sampler(1024, 151936)
    assert p.per_gpu["activation_peak"] == activation
    blocks = vllm_available(79.18, p.per_gpu["weights"], activation) // (48 * page)
    assert p.kv_groups[0].blocks == blocks and p.kv_groups[0].blocks_per_request == 40960 // 16
    assert p.kv_cache_tokens == int(blocks / 2560 * 40960)
    s = plan(qwen, H100, SglangSettings())
    visible_mib = 79.18 * 1024
    # reserve: 512 + 1.5 x 8192 + 1024 x 1 / 8 + 2 x 256 decode graphs + 8 x 58 prefill graph sizes = 13,904 MiB
    fraction = round((visible_mib - 13904) / visible_mib, 3)
    assert s.settings["mem_fraction_static"] == fraction == 0.829
    pre = int(79.18 * GIB) - 2**29 - int(0.13 * GIB)
    cell = 4 * (128 + 128) * 2 * 48  # bytes per token: kv heads x (K + V dims) x bf16 x layers
    tokens = (int(pre * fraction) - s.per_gpu["weights"]) // cell
    assert s.kv_cache_tokens == tokens and s.starts
    assert s.settings["max_running_requests"] == min(max(2048, min(4096, tokens * 512 // 40960)), tokens // 2)


@needs_dataset
def test_sglang_refuses_when_weights_leave_nothing():
    p = plan(facts("meta-llama__Llama-3.1-8B"), find_gpu("RTX-4080"), SglangSettings())
    assert not p.starts and p.error.startswith(
        "Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static=")
    assert p.max_model_len_that_starts == 0


@needs_dataset
def test_solve_finds_the_smallest_layout():
    llama = facts("meta-llama__Llama-3.1-8B")
    best = solve(llama, RTX3090, VllmSettings(max_model_len=131072))
    assert best is not None and best.layout == Layout(2, 1, 1)  # TP 1 needs 16 GiB of KV; TP 2 halves it
    assert solve(llama, RTX3090, VllmSettings(max_model_len=131072), concurrency=100, max_gpus=2) is None
    more = solve(llama, H100, VllmSettings(max_model_len=131072), concurrency=5)
    assert more is not None and more.layout.gpus == 2 and more.max_concurrency >= 5


def test_layouts_prefer_tp_then_pp_then_dp():
    assert list(layouts(2)) == [Layout(1, 1, 1), Layout(2, 1, 1), Layout(1, 2, 1), Layout(1, 1, 2)]


def test_plan_from_an_architecture_alone_and_its_json():
    p = plan(arch_spec("llama-3.2-3b"), H100, VllmSettings(max_model_len=8192))
    d = p.to_dict()
    assert list(d)[:13] == ["model", "commit", "engine", "gpu", "layout", "settings", "per_gpu", "kv_cache_tokens",
                            "max_concurrency", "starts", "error", "max_model_len_that_starts", "command"]
    assert d["engine"] == {"name": "vllm", "version": "0.33.0"}
    assert set(d["per_gpu"]) >= {"weights", "non_torch", "activation_peak", "cuda_graphs", "kv_cache"}
    assert all(isinstance(v, int) for v in d["per_gpu"].values())


@needs_dataset
def test_sglang_sliding_window_pools():
    p = plan(facts("google__gemma-3-1b-it"), RTX3090, SglangSettings())
    per_layer = 1 * (256 + 256) * 2  # one KV head, K and V of 256, bf16
    cell = per_layer * (4 + 0.8 * 22)  # full layers + swa_full_tokens_ratio x sliding layers
    fraction = p.settings["mem_fraction_static"]
    pre = int(23.58 * GIB) - 2**29 - int(0.13 * GIB)
    tokens = int((int(pre * fraction) - p.per_gpu["weights"]) // cell)
    assert [(g.kind, g.layers, g.tokens) for g in p.kv_groups] == [
        ("full_attention", 4, tokens), ("sliding_attention", 22, int(tokens * 0.8))]
    assert p.kv_cache_tokens == tokens


def test_a_model_without_decoder_layers_starts_without_a_kv_cache():
    for settings in (VllmSettings(), SglangSettings()):
        p = plan(arch_spec("bert-base"), H100, settings)
        assert p.starts and p.kv_cache_tokens == 0
        assert p.warnings == ("no decoder layers: nothing to serve with a KV cache",)


@needs_dataset
def test_mxfp4_experts_are_padded_for_the_moe_kernel():
    """vLLM allocates gpt-oss's MXFP4 experts padded for its kernel (fused_moe/oracle/mxfp4.py:865-870): on an A100
    (Marlin) the intermediate 2880 -> 2944 (x128), hidden 2880 -> 3072 (x256); on an H100 (Triton) x64 only,
    which 2880 already is. Per expert: 3 x I x H at 4 bits + an E8M0 scale per 32, bf16 biases 2I + H."""
    spec = dataset_spec(dataset_folder("openai__gpt-oss-20b"))
    facts = analyse(replace(spec, quantization=Quantization("mxfp4", 4.0)))
    padded = 3 * 2944 * 3072 * 17 // 32 + (2 * 2944 + 3072) * 2
    stored = 3 * 2880 * 2880 * 17 // 32 + (2 * 2880 + 2880) * 2
    assert mxfp4_padding(facts, find_gpu("A100-80GB"), 1) == 24 * 32 * (padded - stored)
    assert mxfp4_padding(facts, find_gpu("H100"), 1) == 0
    assert mxfp4_padding(facts, find_gpu("A100-80GB"), 2) == 24 * 32 * (  # TP 2: 1440 per rank -> 1536
        3 * 1536 * 3072 * 17 // 32 + (2 * 1536 + 3072) * 2 - 3 * 1440 * 2880 * 17 // 32 - (2 * 1440 + 2880) * 2)


@needs_dataset
def test_sglang_pipeline_and_data_parallel():
    """SGLang 0.5.23 --pp-size 2: get_pp_indices gives 16 + 16 layers; each stage sizes its pool from its own
    weights and the ranks take the smallest (kv_cache_configurator.py:3108-3116). L4: chunk 4096, decode graphs to
    48, 50 prefill graph sizes: reserve 512 + 1.5 x 4096 + 1024 x 1 x 2 / 8 + 2 x 48 + 8 x 50 = 7408 MiB of 22,528:
    mem_fraction_static 0.671. Stage 1 holds 16 layers (218,112,000 parameters each), the final norm and lm_head."""
    llama = facts("meta-llama__Llama-3.1-8B")
    p = plan(llama, find_gpu("L4"), SglangSettings(pp_size=2))
    assert p.settings["mem_fraction_static"] == 0.671
    pre = int(22.0 * GIB) - 2**29 - int(0.55 * GIB)  # after the CUDA context and the parallel non-torch memory
    stage_1 = 2 * (16 * 218_112_000 + 4096 + 128256 * 4096)
    assert p.per_gpu["weights"] == stage_1
    assert p.kv_cache_tokens == (int(pre * 0.671) - stage_1) // (16 * 2 * 8 * 128 * 2)
    assert p.command == "python -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B --pp-size 2"
    one, two = (plan(llama, find_gpu("L4"), SglangSettings(dp_size=n)) for n in (1, 2))
    assert two.kv_cache_tokens == one.kv_cache_tokens and two.max_concurrency == 2 * one.max_concurrency
    assert two.layout.gpus == 2 and "--dp-size 2" in two.command
