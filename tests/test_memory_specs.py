"""ModelSpecs for the memory-model tests: hand-written architectures (from the models' config.json values), a tiny
synthetic checkpoint, and dataset models. The tests here check the helpers themselves."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest

from hfmem.architecture import Architecture
from hfmem.config import read_architecture
from hfmem.header import Tensor
from hfmem.memory.facts import analyse
from hfmem.spec import Files, ModelSpec, Parameters, count_parameters, read_quantization

from .dataset import config, expected, model_dirs, needs_dataset, tensors

# Dimensions copied from each model's config.json (meta-llama/Llama-3.2-3B, meta-llama/Llama-3.1-8B,
# deepseek-ai/DeepSeek-V3, google/gemma-3-1b-it, google-t5/t5-small, google-bert/bert-base-uncased).
ARCHS = {
    "llama-3.2-3b": Architecture(
        model_type="llama",
        architectures=("LlamaForCausalLM",),
        hidden_size=3072,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        head_dim=128,
        intermediate_size=8192,
        vocab_size=128256,
        max_position_embeddings=131072,
        tie_word_embeddings=True,
        attention="gqa",
        hidden_act="silu",
    ),
    "llama-3.1-8b": Architecture(
        model_type="llama",
        architectures=("LlamaForCausalLM",),
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        intermediate_size=14336,
        vocab_size=128256,
        max_position_embeddings=131072,
        tie_word_embeddings=False,
        attention="gqa",
        hidden_act="silu",
    ),
    "deepseek-v3": Architecture(
        model_type="deepseek_v3",
        architectures=("DeepseekV3ForCausalLM",),
        hidden_size=7168,
        num_hidden_layers=61,
        num_attention_heads=128,
        num_key_value_heads=128,
        head_dim=64,
        intermediate_size=18432,
        vocab_size=129280,
        max_position_embeddings=163840,
        tie_word_embeddings=False,
        num_experts=256,
        num_experts_per_tok=8,
        attention="mla",
        moe_intermediate_size=2048,
        num_shared_experts=1,
        q_lora_rank=1536,
        kv_lora_rank=512,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        hidden_act="silu",
    ),
    "gemma-3-1b": Architecture(
        model_type="gemma3_text",
        architectures=("Gemma3ForCausalLM",),
        hidden_size=1152,
        num_hidden_layers=26,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        intermediate_size=6912,
        vocab_size=262144,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        attention="mqa",
        layer_types=tuple("full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(26)),
        sliding_window=512,
        hidden_act="gelu_pytorch_tanh",
    ),
    "t5-small": Architecture(
        model_type="t5",
        architectures=("T5ForConditionalGeneration",),
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=8,
        head_dim=64,
        intermediate_size=2048,
        vocab_size=32128,
        max_position_embeddings=None,
        tie_word_embeddings=True,
        attention="mha",
        is_encoder_decoder=True,
        num_decoder_layers=6,
        hidden_act="relu",
        gated_mlp=False,
    ),
    "bert-base": Architecture(
        model_type="bert",
        architectures=("BertForMaskedLM",),
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        head_dim=64,
        intermediate_size=3072,
        vocab_size=30522,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        attention="mha",
        is_encoder_only=True,
        hidden_act="gelu",
        gated_mlp=False,
    ),
}


def make_spec(
    arch: Architecture,
    tensors_: tuple[Tensor, ...] = (),
    dtype: str = "bfloat16",
    total: int | None = None,
    model: str = "test/model",
    quantization=None,
) -> ModelSpec:
    """A ModelSpec as build_spec would make it: counts from the tensors, or `total` for a repo without them."""
    if tensors_:
        params = count_parameters(tensors_, arch, quantization)
        weights = sum(t.nbytes * t.count for t in tensors_)
    else:
        count = total or 0
        params = Parameters(count, {"BF16": count}, 0, None, exact=False)
        weights = 2 * count
    files = Files(weights, None, ("safetensors",) if tensors_ else ("pytorch",), 1)
    return ModelSpec(model, None, None, "local", arch, dtype, quantization, params, files, tensors_)


@cache
def arch_spec(name: str) -> ModelSpec:
    """A spec with no tensors (a pickle-only repo): the memory model falls back to config-derived shapes; the
    parameter count is that of those shapes, as the config-derived count would be."""
    total = sum(t.numel * t.count for t in analyse(make_spec(ARCHS[name], model=name)).tensors)
    return make_spec(ARCHS[name], total=total, model=name)


TINY_ARCH = Architecture(
    model_type="llama",
    architectures=("LlamaForCausalLM",),
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=128,
    vocab_size=1000,
    max_position_embeddings=2048,
    tie_word_embeddings=False,
    attention="gqa",
    hidden_act="silu",
)


def tiny_tensors(dtype: str = "BF16") -> tuple[Tensor, ...]:
    """A 2-layer Llama checkpoint (h 64, 4 heads / 2 KV heads of 16, FFN 128, vocab 1000, untied head)."""
    h, q, kv, i, v = 64, 64, 32, 128, 1000
    out = [Tensor("model.embed_tokens.weight", dtype, (v, h))]
    for n in range(2):
        p = f"model.layers.{n}"
        shapes = {
            "self_attn.q_proj": (q, h),
            "self_attn.k_proj": (kv, h),
            "self_attn.v_proj": (kv, h),
            "self_attn.o_proj": (h, q),
            "mlp.gate_proj": (i, h),
            "mlp.up_proj": (i, h),
            "mlp.down_proj": (h, i),
            "input_layernorm": (h,),
            "post_attention_layernorm": (h,),
        }
        out += [Tensor(f"{p}.{name}.weight", dtype, shape) for name, shape in shapes.items()]
    out += [Tensor("model.norm.weight", dtype, (h,)), Tensor("lm_head.weight", dtype, (v, h))]
    return tuple(out)


def tiny_spec(dtype: str = "BF16") -> ModelSpec:
    torch_name = {"BF16": "bfloat16", "F32": "float32", "F16": "float16"}[dtype]
    return make_spec(TINY_ARCH, tiny_tensors(dtype), torch_name, model="test/tiny")


def dataset_spec(folder: Path) -> ModelSpec:
    """A dataset model as build_spec would see it (config.json + tensors.json)."""
    cfg = config(folder)
    arch, _ = read_architecture(cfg)
    ts = tuple(Tensor(name, v["dtype"], tuple(v["shape"])) for name, v in tensors(folder).items())
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "float32"
    return make_spec(arch, ts, dtype, model=folder.name.replace("__", "/"), quantization=read_quantization(cfg))


def dataset_folder(name: str) -> Path:
    matches = [d for d in model_dirs(True) if d.name == name]
    if not matches:
        pytest.skip(f"{name} is not in the dataset")
    return matches[0]


# --- checks on the helpers ---


def test_tiny_spec_counts():
    spec = tiny_spec()
    expected_total = 2 * 1000 * 64 + 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64 + 2 * 64) + 64
    assert spec.parameters.total == expected_total
    assert spec.files.weights_bytes == 2 * expected_total
    assert all(math.prod(t.shape) == t.numel for t in spec.tensors)


@needs_dataset
def test_dataset_spec_matches_expected_counts():
    folder = dataset_folder("meta-llama__Llama-3.2-3B")
    spec = dataset_spec(folder)
    assert spec.parameters.total == expected(folder)["params"]["total"]
    assert spec.architecture.num_key_value_heads == ARCHS["llama-3.2-3b"].num_key_value_heads
