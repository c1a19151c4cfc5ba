"""The memory model: exact terms (KV per token, LoRA counts, weights), invariants, and the JSON shape."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from hfmem.config import read_architecture
from hfmem.header import Tensor, parse_header, write_header
from hfmem.memory import (
    Int4Scheme,
    Optimizer,
    Recipe,
    Settings,
    adapters,
    estimate,
    kv_bytes_per_token,
    resolve_targets,
)
from hfmem.memory.facts import analyse
from hfmem.memory.states import RECIPE_BYTES, optimizer_state_bytes
from hfmem.memory.weights import int4_bytes
from hfmem.spec import Quantization

from .dataset import config, needs_dataset
from .test_memory_specs import ARCHS, TINY_ARCH, arch_spec, dataset_folder, dataset_spec, make_spec, tiny_spec

GIB = 2**30


# --- exact terms ---


def test_kv_bytes_per_token_gqa_and_mla():
    assert kv_bytes_per_token(analyse(arch_spec("llama-3.1-8b")), Settings()) == 131_072
    assert kv_bytes_per_token(analyse(arch_spec("deepseek-v3")), Settings()) == 70_272  # 61 x 576 x 2, no x2
    assert kv_bytes_per_token(analyse(arch_spec("llama-3.1-8b")), Settings(kv_dtype="fp8")) == 65_536


@needs_dataset
def test_kv_bytes_per_token_of_gpt_oss_matches_the_vllm_validated_anchor():
    """peers.md: gpt-oss-120b holds 73,728 B/token (hf-mem PR #61, within 0.02 % of vLLM). The 120b is the 20b's
    attention with 36 layers (and 128 experts, which hold no cache)."""
    folder = dataset_folder("openai__gpt-oss-20b")
    assert kv_bytes_per_token(analyse(dataset_spec(folder)), Settings()) == 24 * 2 * 8 * 64 * 2
    cfg = config(folder)
    big, _ = read_architecture(cfg | {"num_hidden_layers": 36, "layer_types": (cfg["layer_types"] * 2)[:36]})
    assert kv_bytes_per_token(analyse(make_spec(big, total=1)), Settings()) == 73_728


def test_kv_cache_is_batch_times_seq_times_bytes_per_token():
    spec = arch_spec("llama-3.1-8b")
    report = estimate(spec, Settings(batch_size=3, seq_len=1000))
    assert report.inference.components["kv_cache"] == 3 * 1000 * 131_072


def _kv(spec, seq: int, **settings) -> int:
    return estimate(spec, Settings(seq_len=seq, **settings)).inference.components["kv_cache"]


def test_sliding_layers_keep_the_whole_prefill_under_transformers():
    """transformers 5.24 DynamicSlidingWindowLayer.update keeps `full_key_states[:, :, -window + 1:, :]`, a view
    of the torch.cat of every prefill token (cache_utils.py:241-249): at the end of the prefill a sliding layer
    holds as much as a global one. (Before, hfmem capped it at min(seq, window), which is no engine's rule for
    the prefill.)"""
    spec = arch_spec("gemma-3-1b")  # 26 layers: 4 global, 22 sliding with window 512
    per_layer = 2 * 1 * 256 * 2
    assert _kv(spec, 256) == 26 * 256 * per_layer
    assert _kv(spec, 4096) == 26 * 4096 * per_layer
    assert _kv(spec, 4096, engine="transformers") == _kv(spec, 4096)


def test_sliding_layers_under_vllm_and_sglang():
    """vLLM 0.33: groups of the smaller kind's count (4 full, 22 sliding -> 1 full group, 6 sliding groups of 4,
    2 padding slots); blocks of 16; a sliding layer needs cdiv(min(window - 1 + 8192 batched, seq), 16) + 1 blocks
    (kv_cache_interface.py:920-956). SGLang 0.5.23: a sliding layer holds min(seq, window + chunk of 8192)."""
    spec = arch_spec("gemma-3-1b")
    per_layer = 2 * 1 * 256 * 2
    assert _kv(spec, 256, engine="vllm") == (4 * 256 + 24 * (16 + 1) * 16) * per_layer
    assert _kv(spec, 4096, engine="vllm") == (4 * 4096 + 24 * (256 + 1) * 16) * per_layer
    assert _kv(spec, 1000, engine="vllm") == (4 * 1008 + 24 * (63 + 1) * 16) * per_layer
    assert _kv(spec, 32768, engine="vllm") == (4 * 32768 + 24 * (544 + 1) * 16) * per_layer  # 511 + 8192 = 8703
    assert _kv(spec, 32768, engine="sglang") == (4 * 32768 + 22 * (512 + 8192)) * per_layer
    assert _kv(spec, 4096, engine="sglang") == 26 * 4096 * per_layer


def test_mla_caches_the_latent_under_every_engine():
    """transformers >= 5.15 caches DeepSeek-V3's compressed latent (kv_lora_rank keys, qk_rope_head_dim values,
    modeling_deepseek_v3.py:445-460), as vLLM and SGLang do: 61 layers x (512 + 64) x 2 B per token, on every GPU.
    vLLM rounds to its MLA block of 64 tokens."""
    spec = arch_spec("deepseek-v3")
    per_token = 61 * (512 + 64) * 2
    assert per_token == 70_272
    assert _kv(spec, 1000) == 1000 * per_token
    assert _kv(spec, 1000, engine="sglang") == 1000 * per_token
    assert _kv(spec, 1000, engine="vllm") == 1024 * per_token
    assert _kv(spec, 1000, engine="vllm", gpus=8) == 1024 * per_token  # the latent is replicated, not split


def test_the_inference_column_names_its_engine():
    for engine, version in (("transformers", "5.24.0"), ("vllm", "0.33.0"), ("sglang", "0.5.23")):
        inference = estimate(arch_spec("llama-3.1-8b"), Settings(engine=engine)).inference
        assert (inference.settings["engine"], inference.settings["engine_version"]) == (engine, version)
    with pytest.raises(ValueError, match="engine must be one of"):
        Settings(engine="tgi")


def test_encoder_only_has_no_kv_and_encoder_decoder_adds_cross_attention():
    assert estimate(arch_spec("bert-base"), Settings(seq_len=512)).inference.components["kv_cache"] == 0
    t5 = estimate(arch_spec("t5-small"), Settings(seq_len=100)).inference.components["kv_cache"]
    assert t5 == 2 * 6 * 100 * (2 * 8 * 64 * 2)  # decoder self-attention + cross-attention over 100 tokens


def test_lora_counts_match_peft_from_config_shapes():
    spec = arch_spec("llama-3.2-3b")
    qv = estimate(spec, Settings(lora_rank=32, lora_targets=("q_proj", "v_proj"))).lora
    mlp = estimate(spec, Settings(lora_rank=10, lora_targets=("gate_proj", "up_proj", "down_proj"))).lora
    assert qv.trainable_parameters == 9_175_040
    assert mlp.trainable_parameters == 9_461_760
    assert any("no safetensors headers" in w for w in estimate(spec, Settings()).warnings)


def test_lora_on_routed_experts_saves_inputs_only_for_the_routed_tokens():
    arch = replace(TINY_ARCH, model_type="qwen3_moe", hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                   num_key_value_heads=2, head_dim=4, vocab_size=10, num_experts=4, num_experts_per_tok=2,
                   moe_intermediate_size=6)  # fmt: skip
    layer = "model.layers.0"
    tensors = [Tensor(f"{layer}.self_attn.{n}_proj.weight", "BF16", (8, 8)) for n in "qkvo"]
    tensors += [Tensor(f"{layer}.mlp.gate.weight", "BF16", (4, 8))]  # the router: an nn.Linear in Qwen3-MoE
    for e in range(4):
        tensors += [Tensor(f"{layer}.mlp.experts.{e}.{n}.weight", "BF16", shape)
                    for n, shape in (("gate_proj", (6, 8)), ("up_proj", (6, 8)), ("down_proj", (8, 6)))]  # fmt: skip
    grouped = parse_header(write_header(tensors), "model.safetensors").tensors
    lora = estimate(make_spec(arch, grouped), Settings(lora_rank=2, lora_targets=("all-linear",))).lora
    assert lora.trainable_parameters == 4 * 2 * (8 + 8) + 2 * (8 + 4) + 4 * 2 * ((8 + 6) * 3)  # every expert adapted
    inputs = next(f for f in lora.formulas if f.name == "adapter activations").inputs
    dense = 4 * (8 + 2) + (8 + 2)  # q, k, v, o and the router see every token
    routed = 4 * ((8 + 2) + (8 + 2) + (6 + 2)) * 2 // 4  # 4 experts' gate/up/down inputs, each token in 2 of 4
    assert inputs["bytes_per_token"] == 4 * (dense + routed)


@needs_dataset
def test_lora_counts_match_peft_from_headers():
    spec = dataset_spec(dataset_folder("meta-llama__Llama-3.2-3B"))
    lora = estimate(spec, Settings(lora_rank=32, lora_targets=("q_proj", "v_proj"))).lora
    assert lora.trainable_parameters == 9_175_040
    assert lora.peft_line == "trainable params: 9,175,040 || all params: 3,221,924,864 || trainable%: 0.2848"


def test_peft_suffix_matching_and_all_linear():
    facts = analyse(tiny_spec())
    assert len(adapters(facts, ("q_proj",))) == 2
    assert len(adapters(facts, ("self_attn.q_proj",))) == 2
    assert adapters(facts, ("proj",)) == []  # a suffix must be a whole name component
    everything = adapters(facts, ("all-linear",))
    assert len(everything) == 14 and not any("lm_head" in a.module for a in everything)
    assert len(adapters(facts, ("lm_head",))) == 1  # named explicitly, the output layer is adapted
    assert resolve_targets(facts, Settings(lora_targets=("ALL-LINEAR",))) == ("all-linear",)


LAYOUTS = {
    "gpt2": ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc"],
    "bert": [
        "encoder.layer.0.attention.self.query",
        "encoder.layer.0.attention.self.key",
        "encoder.layer.0.attention.self.value",
        "encoder.layer.0.attention.output.dense",
    ],
    "t5": [f"encoder.block.0.layer.0.SelfAttention.{x}" for x in "qkvo"]
    + ["encoder.block.0.layer.1.DenseReluDense.wi"],
    "phi3": ["model.layers.0.self_attn.qkv_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_up_proj"],
    "mistral": ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.0.mlp.up_proj"],
}


@pytest.mark.parametrize(
    ("model_type", "targets"),
    [
        ("gpt2", ("c_attn",)),
        ("bert", ("query", "key", "value")),
        ("t5", ("q", "k", "v", "o")),
        ("phi3", ("qkv_proj", "o_proj")),
        ("mistral", ("q_proj", "v_proj")),
    ],
)
def test_default_targets_per_architecture(model_type, targets):
    tensors = tuple(Tensor(f"{name}.weight", "F32", (64, 64)) for name in LAYOUTS[model_type])
    spec = make_spec(replace(ARCHS["llama-3.1-8b"], model_type=model_type), tensors)
    assert resolve_targets(analyse(spec), Settings()) == targets


def test_mla_default_targets_and_bare_router():
    facts = analyse(arch_spec("deepseek-v3"))
    assert resolve_targets(facts, Settings()) == ("o_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj")
    assert not any(lin.module.endswith("mlp.gate") for lin in facts.linears)


# --- weights ---


def test_int4_below_int8_below_bf16_and_nf4_bits():
    spec = tiny_spec()
    w = {d: estimate(spec, Settings(dtype=d)).inference.components["weights"] for d in ("bfloat16", "int8", "int4")}
    assert w["int4"] < w["int8"] < w["bfloat16"] == spec.files.weights_bytes
    assert int4_bytes(64 * 16384) * 8 / (64 * 16384) == pytest.approx(4.127, abs=0.001)
    assert int4_bytes(64 * 16384, double_quant=False) * 8 / (64 * 16384) == pytest.approx(4.5)
    # embeddings and lm_head stay 16-bit: the quantised model is larger than every weight at 4 bits
    assert w["int4"] > spec.parameters.total // 2


def test_float_recast_and_quantised_checkpoint_taken_as_stored():
    spec = tiny_spec("F32")
    assert estimate(spec, Settings()).inference.components["weights"] == 4 * spec.parameters.total
    assert estimate(spec, Settings(dtype="float16")).inference.components["weights"] == 2 * spec.parameters.total
    quantised = replace(tiny_spec(), quantization=Quantization("gptq", 4.0))
    report = estimate(quantised, Settings(dtype="int4"))
    assert report.inference.components["weights"] == quantised.files.weights_bytes
    assert any("already quantised" in w for w in report.warnings)


# --- training: bytes per parameter ---


@pytest.mark.parametrize("recipe", list(Recipe))
def test_bytes_per_parameter_for_each_recipe(recipe):
    spec = tiny_spec()
    params = spec.parameters.total
    settings = Settings(recipe=recipe, optimizer=Optimizer.SGD, batch_size=1, seq_len=8)
    training = estimate(spec, settings).training
    weight_b, grad_b, _, _ = RECIPE_BYTES[recipe]
    assert training.settings["peak_phase"] in ("forward", "loss backward", "backward end", "optimizer step")
    formulas = {f.name: f.result_bytes for f in training.formulas}
    assert formulas["weights"] == weight_b * params
    assert formulas["gradients"] == grad_b * params
    assert {Recipe.MIXED: (4, 4), Recipe.BF16: (2, 2), Recipe.FP32: (4, 4)}[recipe] == (weight_b, grad_b)


@pytest.mark.parametrize("optimizer", list(Optimizer))
def test_optimizer_state_for_each_optimizer(optimizer):
    shapes = {(4096, 1024): 3, (1024,): 2}  # shape -> how many tensors have it
    numel = 3 * 4096 * 1024 + 2 * 1024
    state, expression = optimizer_state_bytes(optimizer, 4, numel, shapes)
    expected = {
        Optimizer.ADAMW: 8 * numel,
        Optimizer.ADAMW_8BIT: 3 * 2 * (4096 * 1024 + 4 * (4096 * 1024 // 2048)) + 2 * 8 * 1024,
        Optimizer.SGD: 0,
        Optimizer.SGD_MOMENTUM: 4 * numel,
        Optimizer.ADAFACTOR: 4 * (3 * (4096 + 1024) + 2 * 1024),
    }[optimizer]
    assert state == expected and expression
    report = estimate(tiny_spec(), Settings(optimizer=optimizer))
    assert report.training.total_bytes > 0 and report.training.settings["optimizer"] == optimizer.value


def test_cli_strings_are_accepted_for_enums():
    settings = Settings(optimizer="adamw-8bit", recipe="bf16", int4="bnb-default")  # type: ignore[arg-type]
    assert settings.optimizer is Optimizer.ADAMW_8BIT and settings.recipe is Recipe.BF16
    assert settings.int4 is Int4Scheme.BNB_DEFAULT
    with pytest.raises(ValueError):
        Settings(dtype="int3")


def test_mixed_precision_costs_more_than_pure_bf16_and_8bit_adam_saves():
    spec = arch_spec("llama-3.1-8b")
    base = Settings(seq_len=512)
    mixed = estimate(spec, base).training.total_bytes
    bf16 = estimate(spec, replace(base, recipe=Recipe.BF16)).training.total_bytes
    eight = estimate(spec, replace(base, optimizer=Optimizer.ADAMW_8BIT)).training.total_bytes
    assert bf16 < mixed and eight < mixed


def test_gradient_checkpointing_shrinks_long_sequence_training():
    spec = arch_spec("llama-3.2-3b")
    plain = estimate(spec, Settings(seq_len=8192, recipe=Recipe.BF16)).training
    checkpointed = estimate(spec, Settings(seq_len=8192, recipe=Recipe.BF16, grad_checkpointing=True)).training
    assert checkpointed.components["activations"] < plain.components["activations"] / 2


def test_zero_stages_shrink_per_gpu_states():
    spec = arch_spec("llama-3.1-8b")
    totals = [estimate(spec, Settings(seq_len=512, gpus=8, zero=z)).training.total_bytes for z in range(4)]
    assert totals[3] < totals[2] <= totals[1] < totals[0]
    assert estimate(spec, Settings(seq_len=512, gpus=1, zero=3)).training.settings["zero"] == 0


def test_eager_attention_adds_quadratic_scores():
    spec = arch_spec("llama-3.1-8b")
    sdpa = estimate(spec, Settings(seq_len=8192)).inference.components["activations"]
    eager = estimate(spec, Settings(seq_len=8192, attention="eager")).inference.components["activations"]
    assert eager >= 32 * 8192 * 8192 * 8 > sdpa  # heads x s^2 x (2 + 4 + 2) B, one layer at a time


def test_logits_last_position_by_default():
    spec = arch_spec("llama-3.1-8b")
    last = estimate(spec, Settings(seq_len=4096)).inference
    every = estimate(spec, Settings(seq_len=4096, logits="all")).inference
    # a plain forward keeps every position's bf16 logits (2 B); generate copies the last one to fp32
    assert every.components["activations"] >= 4096 * 128256 * 2 > last.components["activations"]


# --- invariants on a seeded grid ---

SPECS = ["llama-3.2-3b", "deepseek-v3", "gemma-3-1b", "t5-small", "bert-base"]


def _grid(seed: int, n: int) -> list[Settings]:
    rnd = random.Random(seed)
    return [
        Settings(
            batch_size=rnd.choice([1, 2, 3, 8]),
            seq_len=rnd.choice([1, 17, 512, 2048, 5000]),
            dtype=rnd.choice(["auto", "float32", "bfloat16", "float16", "int8", "int4"]),
            kv_dtype=rnd.choice(["auto", "float16", "fp8"]),
            attention=rnd.choice(["sdpa", "eager"]),
            optimizer=rnd.choice(list(Optimizer)),
            recipe=rnd.choice(list(Recipe)),
            grad_checkpointing=rnd.random() < 0.5,
            lora_rank=rnd.choice([1, 8, 64]),
            lora_targets=rnd.choice([None, ("all-linear",), ("q_proj", "v_proj")]),
            qlora=rnd.random() < 0.3,
            gpus=rnd.choice([1, 2, 8]),
            zero=rnd.choice([0, 1, 2, 3]),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("name", SPECS)
def test_components_sum_to_totals_and_grow_with_batch_and_seq(name):
    spec = arch_spec(name)
    for settings in _grid(seed=len(name), n=12):
        report = estimate(spec, settings)
        for est in report.by_mode().values():
            assert est.total_bytes == sum(est.components.values())
            assert all(isinstance(v, int) and v >= 0 for v in est.components.values())
        bigger_batch = estimate(spec, replace(settings, batch_size=settings.batch_size + 1))
        longer = estimate(spec, replace(settings, seq_len=(settings.seq_len or 1) * 2))
        for mode, est in report.by_mode().items():
            assert bigger_batch.by_mode()[mode].total_bytes >= est.total_bytes, (mode, settings)
            assert longer.by_mode()[mode].total_bytes >= est.total_bytes, (mode, settings)


@pytest.mark.parametrize("name", ["llama-3.2-3b", "deepseek-v3", "gemma-3-1b"])
def test_lora_below_full_training(name):
    spec = arch_spec(name)
    for settings in _grid(seed=7, n=8):
        report = estimate(spec, replace(settings, recipe=Recipe.MIXED, optimizer=Optimizer.ADAMW))
        assert report.lora.total_bytes < report.training.total_bytes


def test_degrades_on_a_config_without_dimensions():
    arch = replace(
        ARCHS["llama-3.1-8b"],
        hidden_size=None,
        num_hidden_layers=None,
        num_attention_heads=None,
        vocab_size=None,
        head_dim=None,
    )
    report = estimate(make_spec(arch, total=1000), Settings())
    assert report.inference.components["kv_cache"] == 0
    assert report.training.components["activations"] == 0
    assert any("activations and KV cache are left out" in w for w in report.warnings)


# --- JSON shape (CONTRACT.md) ---


def test_to_dict_matches_the_contract():
    data = estimate(tiny_spec(), Settings()).to_dict()
    assert list(data) == ["inference", "training", "lora", "cpu"]  # the contract's three, then an addition
    assert list(data["cpu"]["components"]) == ["weights", "kv_cache", "activations"]
    assert list(data["inference"]["components"]) == ["weights", "kv_cache", "activations", "overhead"]
    assert list(data["training"]["components"]) == ["weights", "gradients", "optimizer", "activations", "overhead"]
    assert list(data["lora"]["components"]) == [
        "weights",
        "adapters",
        "gradients",
        "optimizer",
        "activations",
        "overhead",
    ]
    for mode in data.values():
        assert mode["total_bytes"] == sum(mode["components"].values())
    assert {"batch_size", "seq_len", "dtype", "kv_dtype"} <= set(data["inference"]["settings"])
    assert {"batch_size", "seq_len", "optimizer", "recipe", "grad_checkpointing"} <= set(data["training"]["settings"])
    assert {"rank", "target_modules", "qlora"} <= set(data["lora"]["settings"])
    assert data["lora"]["settings"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert isinstance(data["lora"]["trainable_parameters"], int)
    assert data["inference"]["settings"]["dtype"] == "bfloat16"
    assert data["training"]["settings"]["recipe"] == "mixed" and data["training"]["settings"]["optimizer"] == "adamw"


def test_cpu_ram_is_inference_without_cuda_and_a_second_copy_for_pickles():
    report = estimate(tiny_spec(), Settings())
    assert report.cpu.total_bytes == report.inference.total_bytes - report.inference.components["overhead"]
    pickled = estimate(arch_spec("llama-3.1-8b"), Settings())
    assert pickled.cpu.components["pickle_load_copy"] == pickled.facts.spec.files.weights_bytes


def test_default_seq_len_is_context_capped_at_4096():
    assert estimate(tiny_spec(), Settings()).inference.settings["seq_len"] == 2048
    assert estimate(arch_spec("llama-3.1-8b"), Settings()).inference.settings["seq_len"] == 4096


def test_qlora_base_is_4bit_and_smaller():
    spec = arch_spec("llama-3.1-8b")
    lora = estimate(spec, Settings(seq_len=512)).lora
    qlora = estimate(spec, Settings(seq_len=512, qlora=True)).lora
    assert qlora.components["weights"] < lora.components["weights"] / 2
    assert qlora.trainable_parameters == lora.trainable_parameters


# --- answers that once depended on something they should not ---


def test_int8_activations_do_not_depend_on_the_order_of_tensors_in_the_header():
    """gate/up (out 128) and down (out 64) tie in numel: the int8 term takes the widest in + 4 x out."""
    spec = tiny_spec()
    reordered = replace(spec, tensors=tuple(reversed(spec.tensors)))
    totals = {estimate(s, Settings(dtype="int8")).inference.total_bytes for s in (spec, reordered)}
    assert len(totals) == 1
    assert analyse(spec).widest_int8_row == analyse(reordered).widest_int8_row == 64 + 4 * 128


def test_cpu_ram_is_one_host_whatever_the_gpu_count():
    spec = arch_spec("llama-3.1-8b")
    one, four = (estimate(spec, Settings(gpus=n)) for n in (1, 4))
    assert four.inference.components["weights"] < one.inference.components["weights"]
    assert four.cpu.total_bytes == one.cpu.total_bytes


def test_lora_targets_are_taken_as_peft_takes_them():
    spec = tiny_spec()
    as_list = estimate(spec, Settings(lora_targets=("q_proj", "v_proj"))).lora.trainable_parameters
    assert as_list > 0
    assert estimate(spec, Settings(lora_targets="q_proj, v_proj")).lora.trainable_parameters == as_list
    everything = estimate(spec, Settings(lora_targets=("all-linear",))).lora.trainable_parameters
    assert estimate(spec, Settings(lora_targets="all-linear")).lora.trainable_parameters == everything
    with pytest.raises(ValueError, match="names no module"):
        Settings(lora_targets=" , ")


def test_a_lora_target_that_matches_nothing_is_named():
    report = estimate(tiny_spec(), Settings(lora_targets="q_proj,foo"))
    assert report.lora.trainable_parameters > 0
    assert any("LoRA target foo match no module" in w for w in report.warnings)
