"""config.json -> Architecture (pure; no I/O). The family registry (_FAMILIES) also drives hfmem/layouts.py.

Values follow transformers' config classes: Hugging Face names, each family's class defaults for keys the
file omits, and the attribute maps (``n_embd`` -> ``hidden_size``, ``d_kv`` -> ``head_dim``, ...). Multimodal
configs are read from their nested ``text_config``. Anything guessed comes back as a warning; a number no model
can have (a negative count, a billion layers: see _BOUNDS) is a ConfigError, whatever JSON the file holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .architecture import Architecture, Recurrent
from .errors import ConfigError
from .untrusted import shortened

# Canonical (Hugging Face) name -> other spellings, tried in order after the canonical key.
_ALIASES: dict[str, tuple[str, ...]] = {
    "hidden_size": ("n_embd", "d_model"),
    "num_hidden_layers": ("n_layer", "num_layers", "encoder_layers"),
    "num_attention_heads": ("n_head", "num_heads", "encoder_attention_heads"),
    "num_key_value_heads": ("num_kv_heads", "n_head_kv"),
    "head_dim": ("d_kv",),
    "intermediate_size": ("n_inner", "d_ff", "ffn_dim", "ffn_hidden_size", "encoder_ffn_dim", "block_ff_dim"),
    "max_position_embeddings": ("n_positions", "n_ctx", "max_sequence_length", "seq_length"),
    "num_decoder_layers": ("decoder_layers",),
    "hidden_act": ("hidden_activation", "activation_function"),
    "tie_word_embeddings": ("tie_embedding",),
    "num_experts": ("num_local_experts", "n_routed_experts", "moe_num_experts"),
    "num_experts_per_tok": ("experts_per_token", "moe_topk"),
    "num_shared_experts": ("n_shared_experts",),
}

# What a count or size in config.json may be (canonical name -> lowest, highest). No real model comes near these
# bounds, and refusing what lies past them keeps every loop over layers short. Unlisted keys are widths (hidden,
# heads, head dims, ranks, experts per token, ...): 1 to MAX_WIDTH. A lowest of 0 means 0 switches a feature off.
MAX_LAYERS, MAX_WIDTH, MAX_TOKENS = 10_000, 10**7, 10**9
_BOUNDS: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("moe_layer_freq", "decoder_sparse_step", "sliding_window_pattern"), (1, MAX_LAYERS)),
    **dict.fromkeys(
        ("num_hidden_layers", "num_decoder_layers", "first_k_dense_replace", "max_window_layers"), (0, MAX_LAYERS)
    ),
    **dict.fromkeys(("vocab_size", "max_position_embeddings"), (1, MAX_TOKENS)),
    **dict.fromkeys(("sliding_window", "type_vocab_size"), (0, MAX_TOKENS)),
    **dict.fromkeys(
        ("num_experts", "num_shared_experts", "shared_expert_intermediate_size", "relative_attention_num_buckets"),
        (0, MAX_WIDTH),
    ),
    "bits": (1, 64),  # quantization_config
}


def checked_int(name: str, key: str, value: Any, warnings: list[str]) -> int | None:
    """The config number `name` (found under `key`): None when unset, ignored with a warning when it is not an
    integer, and a ConfigError when no model can have it (out of _BOUNDS, non-finite)."""
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    lowest, highest = _BOUNDS.get(name, (1, MAX_WIDTH))
    if number and not lowest <= value <= highest:  # NaN and the infinities fail too
        raise ConfigError(f"config.json {key} is {shortened(value)}: not a plausible value ({lowest} to {highest:,})")
    if not number or (isinstance(value, float) and not value.is_integer()):
        warnings.append(f"config.json {key} is {shortened(value)}, not an integer: ignored")
        return None
    return int(value)


@dataclass(frozen=True)
class _Family:
    """What transformers does for one model_type: class defaults plus the module layout needed to count."""

    defaults: Mapping[str, Any] = field(default_factory=dict)
    stack: str = "decoder"  # "decoder" | "bert" | "t5"
    gated: bool = True  # gate/up/down MLP (3 matrices) rather than up/down (2)
    ffn_multiple: int | None = None  # intermediate_size when the config gives none (GPT-2/GPT-J n_inner=null)
    head_dim_key: str = "head_dim"  # DeepSeek's config object reports qk_rope_head_dim as head_dim
    norm_bias: bool = False  # LayerNorm (weight + bias) rather than RMSNorm (weight only)
    layer_norms: int = 2  # hidden-size norms per decoder layer
    qkv_bias: bool | str = False  # a str names the config flag that decides (default from `defaults`)
    o_bias: bool | str = False
    mlp_bias: bool | str = False
    lm_head_bias: bool = False
    qk_norm: str | None = None  # "head": q/k norms over head_dim; "proj": over the whole q/k projection
    qk_norm_flag: str | None = None  # config flag that switches qk_norm on
    position_table: bool = False  # learned absolute positions: max_position_embeddings x hidden
    router_bias: bool = False
    shared_expert_gate: bool = False  # Qwen-MoE: a hidden->1 gate on the shared expert
    attention_sinks: bool = False  # gpt-oss: one learned sink logit per head and layer
    attention_gate: bool = False  # Qwen3-Next: q_proj also yields a per-head output gate (2 x heads x head_dim)
    # A 2-D router that is a bare nn.Parameter, not an nn.Linear (memory-model.md A.4): never a LoRA/bnb target.
    bare_router: str | None = None
    conv1d: bool = False  # transformers' Conv1D: weights stored (in, out) rather than nn.Linear's (out, in)
    fused_experts: bool = False  # gpt-oss: experts as 3-D parameters (gate_up_proj, down_proj), not nn.Linear
    sliding: str = "none"  # layout without a layer_types list: "none" | "all" | "qwen" | "alternate" | "pattern"
    # Recurrent layers (see Recurrent): the mixer, and where the layers lie ("all": every layer; "layer_types": the
    # config's list, else every `full_attention_interval`th layer attends; "jamba": attn_layer_period/offset;
    # "parallel": every layer runs attention beside the mixer; "zamba2": layers_block_type's hybrid layers run the
    # shared attention block too).
    mixer: str | None = None  # "mamba" | "mamba2" | "gated_deltanet" | "short_conv"
    layers: str = "attention"  # "attention" | "all" | "layer_types" | "jamba" | "parallel" | "zamba2"
    prefix: str = "mamba_"  # where a Mamba-2 hybrid keeps its mixer keys (Falcon-H1, Granite: mamba_d_state, ...)


_LLAMA = _Family(
    defaults={
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "max_position_embeddings": 2048, "hidden_act": "silu",
        "tie_word_embeddings": False,
    },
    qkv_bias="attention_bias", o_bias="attention_bias", mlp_bias="mlp_bias",
)  # fmt: skip
_QWEN_SLIDING = {"use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28}

# Qwen2VLTextConfig / Qwen2_5_VLTextConfig (the 72B's defaults): Qwen2's decoder (q/k/v bias, no o bias). Older
# config.json files keep these keys at the top level under model_type qwen2_vl / qwen2_5_vl.
_QWEN2_VL_TEXT = _Family(
    defaults={
        "vocab_size": 152064, "hidden_size": 8192, "intermediate_size": 29568, "num_hidden_layers": 80,
        "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 32768,
        "hidden_act": "silu", "tie_word_embeddings": False, **_QWEN_SLIDING, "max_window_layers": 80,
    },
    qkv_bias=True, sliding="qwen",
)  # fmt: skip

_FAMILIES: dict[str, _Family] = {
    **dict.fromkeys(("qwen2_vl_text", "qwen2_5_vl_text", "qwen2_vl", "qwen2_5_vl"), _QWEN2_VL_TEXT),
    "llama": _LLAMA,
    "mistral": _Family(
        defaults={
            "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
            "hidden_act": "silu", "tie_word_embeddings": False, "sliding_window": 4096,
        },
        sliding="all",
    ),
    "mixtral": _Family(
        defaults={
            "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
            "hidden_act": "silu", "tie_word_embeddings": False, "sliding_window": None,
            "num_experts": 8, "num_experts_per_tok": 2,
        },
        sliding="all",
    ),
    "qwen2": _Family(
        defaults={
            "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 32768,
            "hidden_act": "silu", "tie_word_embeddings": False, **_QWEN_SLIDING,
        },
        qkv_bias=True, sliding="qwen",
    ),
    "qwen2_moe": _Family(
        defaults={
            "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24,
            "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 32768,
            "hidden_act": "silu", "tie_word_embeddings": False, **_QWEN_SLIDING,
            "num_experts": 60, "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
            "shared_expert_intermediate_size": 5632, "qkv_bias": True,
        },
        qkv_bias="qkv_bias", shared_expert_gate=True, sliding="qwen",
    ),
    "qwen3": _Family(
        defaults={
            "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128,
            "max_position_embeddings": 32768, "hidden_act": "silu", "tie_word_embeddings": False, **_QWEN_SLIDING,
        },
        qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head", sliding="qwen",
    ),
    "qwen3_moe": _Family(
        defaults={
            "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 24,
            "num_attention_heads": 32, "num_key_value_heads": 4, "max_position_embeddings": 32768,
            "hidden_act": "silu", "tie_word_embeddings": False, **_QWEN_SLIDING,
            "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768,
        },
        qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head", sliding="all",
    ),
    "gemma": _Family(
        defaults={
            "vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28,
            "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256,
            "max_position_embeddings": 8192, "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": True,
        },
        qkv_bias="attention_bias", o_bias="attention_bias",
    ),
    "gemma2": _Family(
        defaults={
            "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
            "max_position_embeddings": 8192, "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": True,
            "sliding_window": 4096,
        },
        qkv_bias="attention_bias", o_bias="attention_bias", layer_norms=4, sliding="alternate",
    ),
    "gemma3_text": _Family(
        defaults={
            "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
            "max_position_embeddings": 131072, "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": True,
            "sliding_window": 4096, "sliding_window_pattern": 6,
        },
        qkv_bias="attention_bias", o_bias="attention_bias", layer_norms=4, qk_norm="head", sliding="pattern",
    ),
    "phi": _Family(
        defaults={
            "vocab_size": 51200, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
            "num_attention_heads": 32, "max_position_embeddings": 2048, "hidden_act": "gelu_new",
            "tie_word_embeddings": False,
        },
        gated=False, norm_bias=True, layer_norms=1, qkv_bias=True, o_bias=True, mlp_bias=True,
        lm_head_bias=True, qk_norm="head", qk_norm_flag="qk_layernorm",
    ),
    "phi3": _Family(
        defaults={
            "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
            "num_attention_heads": 32, "max_position_embeddings": 4096, "hidden_act": "silu",
            "tie_word_embeddings": False, "sliding_window": None,
        },
        sliding="all",
    ),
    "gpt2": _Family(
        defaults={
            "vocab_size": 50257, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
            "max_position_embeddings": 1024, "hidden_act": "gelu_new", "tie_word_embeddings": True,
        },
        gated=False, ffn_multiple=4, norm_bias=True, qkv_bias=True, o_bias=True, mlp_bias=True,
        position_table=True, conv1d=True,
    ),
    "gptj": _Family(
        defaults={
            "vocab_size": 50400, "hidden_size": 4096, "num_hidden_layers": 28, "num_attention_heads": 16,
            "max_position_embeddings": 2048, "hidden_act": "gelu_new", "tie_word_embeddings": False,
        },
        gated=False, ffn_multiple=4, norm_bias=True, layer_norms=1, mlp_bias=True, lm_head_bias=True,
    ),
    "bert": _Family(
        defaults={
            "vocab_size": 30522, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
            "num_attention_heads": 12, "max_position_embeddings": 512, "hidden_act": "gelu",
            "tie_word_embeddings": True, "type_vocab_size": 2,
        },
        stack="bert", gated=False, norm_bias=True, qkv_bias=True, o_bias=True, mlp_bias=True,
        position_table=True,
    ),
    "t5": _Family(
        defaults={
            "vocab_size": 32128, "hidden_size": 512, "head_dim": 64, "intermediate_size": 2048,
            "num_hidden_layers": 6, "num_attention_heads": 8, "feed_forward_proj": "relu",
            "is_encoder_decoder": True, "tie_word_embeddings": True, "relative_attention_num_buckets": 32,
        },
        stack="t5", gated=False,
    ),
    "starcoder2": _Family(
        defaults={
            "vocab_size": 49152, "hidden_size": 3072, "intermediate_size": 12288, "num_hidden_layers": 30,
            "num_attention_heads": 24, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": True, "sliding_window": None,
            "use_bias": True,
        },
        gated=False, norm_bias=True, qkv_bias="use_bias", o_bias="use_bias", mlp_bias="use_bias", sliding="all",
    ),
    "olmo2": _Family(
        defaults={
            "vocab_size": 50304, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
            "num_attention_heads": 32, "max_position_embeddings": 2048, "hidden_act": "silu",
            "tie_word_embeddings": False,
        },
        qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="proj",
    ),
    "deepseek_v2": _Family(
        defaults={
            "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
            "num_attention_heads": 32, "max_position_embeddings": 2048, "hidden_act": "silu",
            "tie_word_embeddings": False, "first_k_dense_replace": 0, "kv_lora_rank": 512, "q_lora_rank": 1536,
            "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "num_experts": 64,
            "num_shared_experts": 2, "moe_intermediate_size": 1407,
        },
        head_dim_key="qk_rope_head_dim", qkv_bias="attention_bias", o_bias="attention_bias", mlp_bias="mlp_bias",
        bare_router="gate",
    ),
    "deepseek_v3": _Family(
        defaults={
            "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "num_hidden_layers": 61,
            "num_attention_heads": 128, "num_key_value_heads": 128, "max_position_embeddings": 4096,
            "hidden_act": "silu", "tie_word_embeddings": False, "first_k_dense_replace": 3, "kv_lora_rank": 512,
            "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
            "num_experts": 256, "num_experts_per_tok": 8, "num_shared_experts": 1, "moe_intermediate_size": 2048,
        },
        head_dim_key="qk_rope_head_dim", qkv_bias="attention_bias", o_bias="attention_bias", bare_router="gate",
    ),
    "gpt_oss": _Family(
        defaults={
            "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 36,
            "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 131072,
            "hidden_act": "silu", "tie_word_embeddings": False, "sliding_window": 128, "num_experts": 128,
            "num_experts_per_tok": 4,
        },
        qkv_bias=True, o_bias=True, mlp_bias=True, router_bias=True, attention_sinks=True, sliding="alternate",
        bare_router="router", fused_experts=True,
    ),
    # State-space and hybrid families: class defaults of their transformers config classes.
    "mamba": _Family(
        defaults={
            "vocab_size": 50280, "hidden_size": 768, "num_hidden_layers": 32, "state_size": 16, "expand": 2,
            "conv_kernel": 4, "use_bias": False, "use_conv_bias": True, "time_step_rank": "auto",
            "hidden_act": "silu", "tie_word_embeddings": True,
        },
        gated=False, mixer="mamba", layers="all", prefix="",
    ),
    "mamba2": _Family(
        defaults={
            "vocab_size": 32768, "hidden_size": 4096, "num_hidden_layers": 64, "state_size": 128, "expand": 2,
            "conv_kernel": 4, "n_groups": 8, "num_heads": 128, "head_dim": 64, "use_bias": False,
            "use_conv_bias": True, "hidden_act": "silu", "tie_word_embeddings": False,
        },
        gated=False, mixer="mamba2", layers="all", prefix="",
    ),
    "jamba": _Family(
        defaults={
            "vocab_size": 65536, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 262144,
            "hidden_act": "silu", "tie_word_embeddings": False, "num_experts": 16, "num_experts_per_tok": 2,
            "expert_layer_period": 2, "expert_layer_offset": 1, "attn_layer_period": 8, "attn_layer_offset": 4,
            "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": "auto",
            "mamba_conv_bias": True, "mamba_proj_bias": False,
        },
        mixer="mamba", layers="jamba",
    ),
    "falcon_h1": _Family(
        defaults={
            "vocab_size": 128000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
            "hidden_act": "silu", "tie_word_embeddings": False, "mamba_d_ssm": 1024, "mamba_n_heads": 128,
            "mamba_d_head": "auto", "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_conv": 4,
            "mamba_expand": 2, "mamba_conv_bias": True, "mamba_proj_bias": False, "mamba_rms_norm": False,
            "projectors_bias": False,
        },
        qkv_bias="attention_bias", o_bias="projectors_bias", mlp_bias="mlp_bias", mixer="mamba2", layers="parallel",
    ),
    "granitemoehybrid": _Family(
        defaults={
            "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
            "num_attention_heads": 32, "max_position_embeddings": 2048, "hidden_act": "silu",
            "tie_word_embeddings": False, "num_experts": 8, "num_experts_per_tok": 2,
            "shared_intermediate_size": 1024, "mamba_n_heads": 128, "mamba_n_groups": 1, "mamba_d_state": 256,
            "mamba_d_head": "auto", "mamba_d_conv": 4, "mamba_expand": 2, "mamba_conv_bias": True,
            "mamba_proj_bias": False,
        },
        qkv_bias="attention_bias", o_bias="attention_bias", mixer="mamba2", layers="layer_types",
    ),
    "zamba2": _Family(
        defaults={
            "vocab_size": 32000, "hidden_size": 2560, "num_hidden_layers": 54, "num_attention_heads": 32,
            "max_position_embeddings": 4096, "hidden_act": "gelu", "tie_word_embeddings": True,
            "mamba_d_state": 64, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_ngroups": 1, "n_mamba_heads": 8,
            "use_conv_bias": True, "add_bias_linear": False, "num_mem_blocks": 1, "adapter_rank": 128,
            "use_shared_attention_adapter": False,
        },
        ffn_multiple=4, mixer="mamba2", layers="zamba2",
    ),
    "qwen3_next": _Family(
        defaults={
            "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 48,
            "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256, "max_position_embeddings": 32768,
            "hidden_act": "silu", "tie_word_embeddings": False, "full_attention_interval": 4,
            "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
            "linear_num_key_heads": 16, "linear_num_value_heads": 32, "num_experts": 512, "num_experts_per_tok": 10,
            "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
        },
        qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head", shared_expert_gate=True,
        attention_gate=True, mixer="gated_deltanet", layers="layer_types",
    ),
    "qwen3_5_text": _Family(  # Qwen3.5 (dense): Qwen3-Next's layers with a dense MLP
        defaults={
            "vocab_size": 248320, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 32,
            "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 32768,
            "hidden_act": "silu", "tie_word_embeddings": False, "full_attention_interval": 4,
            "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
            "linear_num_key_heads": 16, "linear_num_value_heads": 32,
        },
        qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head", attention_gate=True,
        mixer="gated_deltanet", layers="layer_types",
    ),
    "lfm2": _Family(
        defaults={
            "vocab_size": 65536, "hidden_size": 2560, "intermediate_size": 12288, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 128000,
            "hidden_act": "silu", "tie_word_embeddings": True, "conv_bias": False, "conv_L_cache": 3,
            "block_multiple_of": 256, "block_ffn_dim_multiplier": 1.0, "block_auto_adjust_ff_dim": True,
        },
        qk_norm="head", mixer="short_conv", layers="layer_types",
    ),
}  # fmt: skip

# Unknown model types: no class defaults; the common decoder (or BERT-like encoder) layout; trust sliding_window.
_UNKNOWN_DECODER = replace(_LLAMA, defaults={}, sliding="all")
_UNKNOWN_ENCODER = replace(_FAMILIES["bert"], defaults={})
_ENCODER_ONLY_TYPES = {
    "bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "camembert", "deberta", "deberta-v2",
    "mpnet", "modernbert", "nomic_bert", "xlm", "ernie", "megatron-bert", "data2vec-text",
}  # fmt: skip
# Composite configs whose text_config may omit model_type: the class transformers builds by default.
_DEFAULT_TEXT_TYPE = {
    "llava": "llama", "llava_next": "llama", "paligemma": "gemma", "gemma3": "gemma3_text", "qwen3_5": "qwen3_5_text",
    "qwen2_vl": "qwen2_vl_text", "qwen2_5_vl": "qwen2_5_vl_text", "mistral3": "mistral",
}  # fmt: skip
# Architecture class names that carry an output projection over the vocabulary.
_LM_HEAD_MARKERS = ("ForCausalLM", "LMHead", "ForConditionalGeneration", "ForMaskedLM", "ForPreTraining")


def known_family(model_type: str | None) -> bool:
    """Whether hfmem models this model_type's layout (else config.json is read with the common key names)."""
    return model_type in _FAMILIES


def family_of(model_type: str | None) -> _Family | None:
    return _FAMILIES.get(model_type or "")


class _Reader:
    """Reads one config section: canonical key, then aliases, then the family's class default. `where` is the
    section's path in config.json ("" or "text_config."), for messages."""

    def __init__(self, cfg: Mapping[str, Any], family: _Family, warnings: list[str], where: str = "") -> None:
        self.cfg, self.family, self.warnings, self.where = cfg, family, warnings, where

    def find(self, name: str) -> tuple[str, Any]:
        """(the key that holds `name`, its value)."""
        present = [key for key in (name, *_ALIASES.get(name, ())) if key in self.cfg]
        if not present:
            return name, self.family.defaults.get(name)
        # An explicit null means "not set" (n_inner, head_dim, q_lora_rank), unless another spelling has a value.
        return next(((key, self.cfg[key]) for key in present if self.cfg[key] is not None), (present[0], None))

    def raw(self, name: str) -> Any:
        return self.find(name)[1]

    def int(self, name: str) -> int | None:
        key, value = self.find(name)
        return checked_int(name, self.where + key, value, self.warnings)

    def flag(self, spec: bool | str) -> bool:
        return spec if isinstance(spec, bool) else bool(self.cfg.get(spec, self.family.defaults.get(spec, False)))


def _reader(config: Mapping[str, Any], warnings: list[str]) -> tuple[_Reader, str | None]:
    """A reader of the section with the language-model facts (its family chosen by model_type), and that
    model_type."""
    top_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    text: Mapping[str, Any] = config
    text_type = top_type
    if "text_config" in config:
        if isinstance(config["text_config"], dict):
            text = config["text_config"]
            nested = text.get("model_type")
            text_type = nested if isinstance(nested, str) else _DEFAULT_TEXT_TYPE.get(top_type or "", top_type)
        else:
            warnings.append("config.json text_config is not an object: read the top level instead")
    family = _FAMILIES.get(text_type or "")
    if family is None:
        encoder = text_type in _ENCODER_ONLY_TYPES or any("ForMaskedLM" in a for a in _architectures(config))
        family = _UNKNOWN_ENCODER if encoder else _UNKNOWN_DECODER
        what = f"model_type {shortened(text_type)}" if text_type else "a config without model_type"
        warnings.append(f"{what} is not one hfmem knows: read with the common key names, no class defaults")
    return _Reader(text, family, warnings, "" if text is config else "text_config."), text_type


def _architectures(config: Mapping[str, Any]) -> tuple[str, ...]:
    value = config.get("architectures")
    if isinstance(value, str):
        return (value,)
    return tuple(a for a in value if isinstance(a, str)) if isinstance(value, list) else ()


def _is_encoder_only(text_type: str | None, family: _Family) -> bool:
    return family.stack == "bert" or text_type in _ENCODER_ONLY_TYPES


def _has_lm_head(architectures: tuple[str, ...], encoder_only: bool) -> bool:
    """Whether the model class has a vocabulary projection (a bare BertModel or LlamaModel has none)."""
    if not architectures:
        return not encoder_only
    return any(marker in name for name in architectures for marker in _LM_HEAD_MARKERS)


def read_architecture(config: Any) -> tuple[Architecture, list[str]]:
    """Normalise a decoded config.json into an Architecture, with warnings for anything guessed or missing."""
    warnings: list[str] = []
    if not isinstance(config, Mapping):
        warnings.append(f"config.json is not a JSON object ({type(config).__name__}): no architecture facts")
        config = {}
    r, text_type = _reader(config, warnings)
    family = r.family

    core = {name: r.int(name) for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")}
    attention_free = family.layers == "all"  # Mamba/Mamba2: num_heads (if any) are the SSM's
    warnings.extend(
        f"config.json has no {name}"
        for name, value in core.items()
        if value is None and not (attention_free and name == "num_attention_heads")
    )
    hidden, layers, heads, vocab = core.values()
    kv_heads = r.int("num_key_value_heads") or heads
    head_dim = r.int(family.head_dim_key)
    if family.layers == "zamba2" and hidden and heads:  # the shared block attends over [hidden, embeddings]
        head_dim = 2 * hidden // heads  # Zamba2Config sets attention_head_dim so, whatever the file says
    if head_dim is None and hidden and heads:
        head_dim = hidden // heads
        if hidden % heads:
            warnings.append(f"hidden_size {hidden} is not a multiple of {heads} heads: head_dim taken as {head_dim}")
    intermediate = r.int("intermediate_size")
    if intermediate is None and family.ffn_multiple and hidden:
        intermediate = family.ffn_multiple * hidden
    max_positions = r.int("max_position_embeddings")

    kv_lora_rank = r.int("kv_lora_rank")
    mla = kv_lora_rank is not None
    if mla:
        attention = "mla"
    elif kv_heads is None or heads is None:
        attention = None
    elif kv_heads == 1 and heads > 1:
        attention = "mqa"
    else:
        attention = "gqa" if kv_heads < heads else "mha"

    encoder_decoder = bool(r.raw("is_encoder_decoder"))
    encoder_only = _is_encoder_only(text_type, family)
    architectures = _architectures(config)
    tie = r.raw("tie_word_embeddings")  # PretrainedConfig's default is True
    hidden_act, gated = r.raw("hidden_act"), family.gated
    ff_proj = r.raw("feed_forward_proj")
    if isinstance(ff_proj, str):  # T5 family: "relu", "gated-gelu", ...; transformers maps gated-gelu to gelu_new
        gated = ff_proj.startswith("gated-")
        hidden_act = "gelu_new" if ff_proj == "gated-gelu" else ff_proj.split("-")[-1]
    recurrent = _recurrent(r, hidden) if family.mixer else None
    if family.mixer:
        layer_types, window = _recurrent_layer_types(r, layers) if layers else None, None
    else:
        layer_types, window = _layer_types(r, layers, max_positions)
    cross = r.raw("cross_attention_layers")  # Llama-3.2-Vision (mllama): these layers attend to the images only
    if isinstance(cross, list) and cross and layers:
        warnings.append(f"{len(cross)} of the {layers} layers attend to the images (cross_attention_layers), not the "
                        "text: counted as self-attention layers, so the KV cache over the text is overstated and "
                        "the images' cross-attention cache is left out")  # fmt: skip
    if family.layers == "all":  # no attention at all (Mamba2Config's num_heads are the SSM's heads)
        heads = kv_heads = head_dim = None
        attention = None
        intermediate = (r.int("expand") or 0) * (hidden or 0) or None  # the mixer's inner width
    elif family.mixer == "short_conv" and intermediate:
        intermediate = _lfm2_ff_dim(r, intermediate)

    num_experts = r.int("num_experts") or None  # 0 experts means dense
    arch = Architecture(
        model_type=config.get("model_type") if isinstance(config.get("model_type"), str) else text_type,
        architectures=architectures,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=vocab,
        max_position_embeddings=max_positions,
        tie_word_embeddings=(tie is None or bool(tie)) and _has_lm_head(architectures, encoder_only),
        num_experts=num_experts,
        num_experts_per_tok=r.int("num_experts_per_tok") if num_experts else None,
        attention=attention,
        moe_intermediate_size=r.int("moe_intermediate_size") if num_experts else None,
        num_shared_experts=r.int("num_shared_experts") if num_experts else None,
        layer_types=layer_types,
        sliding_window=window,
        q_lora_rank=r.int("q_lora_rank") if mla else None,
        kv_lora_rank=kv_lora_rank,
        qk_nope_head_dim=r.int("qk_nope_head_dim") if mla else None,
        qk_rope_head_dim=r.int("qk_rope_head_dim") if mla else None,
        v_head_dim=r.int("v_head_dim") if mla else None,
        is_encoder_decoder=encoder_decoder,
        is_encoder_only=encoder_only and not encoder_decoder,
        num_decoder_layers=(r.int("num_decoder_layers") or layers) if encoder_decoder else None,
        hidden_act=hidden_act if isinstance(hidden_act, str) else None,
        gated_mlp=gated,
        recurrent=recurrent,
    )
    return arch, warnings


def _ssm_int(r: _Reader, name: str, auto: int | None) -> int | None:
    """A Mamba size that may be "auto" (time_step_rank, mamba_dt_rank, mamba_d_head): `auto` then."""
    return auto if r.raw(name) == "auto" else r.int(name)


def _recurrent(r: _Reader, hidden: int | None) -> Recurrent | None:
    """The per-sequence state of the family's recurrent layers, as its transformers mixer and cache shape it."""
    mixer, h = r.family.mixer, hidden or 0
    p = r.family.prefix
    if mixer == "mamba":  # MambaMixer / JambaMambaMixer: conv (intermediate, K), ssm (intermediate, N)
        expand, state = r.int(p + "expand" if p else "expand"), r.int(p + "d_state" if p else "state_size")
        inner = (expand or 0) * h
        width = r.int(p + "d_conv" if p else "conv_kernel") or 0
        return Recurrent(mixer, inner, width, inner * (state or 0), (inner, state or 0), state_fp32=True)
    if mixer == "mamba2":  # Mamba2Mixer and its hybrids: conv (inner + 2 G N, K), ssm (heads, head_dim, N)
        zamba2 = r.family.layers == "zamba2"
        if zamba2:  # Zamba2Config: mamba_headdim is always expand x hidden / n_mamba_heads, whatever the file says
            names = ("mamba_expand", "mamba_d_state", "mamba_d_conv", "mamba_ngroups", "n_mamba_heads",
                     "mamba_headdim")  # fmt: skip
        elif p:
            names = ("mamba_expand", "mamba_d_state", "mamba_d_conv", "mamba_n_groups", "mamba_n_heads",
                     "mamba_d_head")  # fmt: skip
        else:
            names = ("expand", "state_size", "conv_kernel", "n_groups", "num_heads", "head_dim")
        expand, state, width, groups, heads = (r.int(n) or 0 for n in names[:5])
        inner = (r.int("mamba_d_ssm") if r.family.layers == "parallel" else None) or expand * h
        auto = inner // heads if heads else None
        head_dim = (auto if zamba2 else _ssm_int(r, names[5], auto)) or 0
        # Zamba2HybridDynamicCache allocates ssm_states in the model's dtype and copies the scan's state into it
        return Recurrent(
            mixer, inner + 2 * groups * state, width, heads * head_dim * state, (heads, head_dim, state), not zamba2
        )
    if mixer == "gated_deltanet":  # Qwen3NextGatedDeltaNet: conv (2 key_dim + value_dim, K), (v_heads, d_k, d_v)
        k_heads, v_heads = r.int("linear_num_key_heads") or 0, r.int("linear_num_value_heads") or 0
        d_k, d_v = r.int("linear_key_head_dim") or 0, r.int("linear_value_head_dim") or 0
        channels = 2 * k_heads * d_k + v_heads * d_v
        width = r.int("linear_conv_kernel_dim") or 0
        return Recurrent(mixer, channels, width, v_heads * d_k * d_v, (v_heads, d_k, d_v), state_fp32=True)
    if mixer == "short_conv":  # Lfm2ShortConv: conv (hidden, conv_L_cache), no recurrent state
        return Recurrent(mixer, h, r.int("conv_L_cache") or 0, 0, (), state_fp32=False)
    return None


# Zamba2Config's default layers_block_type: 54 layers, "hybrid" at these indices.
_ZAMBA2_LAYERS, _ZAMBA2_HYBRID = 54, frozenset((6, 12, 18, 24, 30, 36, 42, 47, 51))


def _recurrent_layer_types(r: _Reader, layers: int) -> tuple[str, ...] | None:
    """Per layer "recurrent", "full_attention" or "hybrid" (both), from the family's rule."""
    rule = r.family.layers
    if rule == "all":
        return ("recurrent",) * layers
    if rule == "parallel":
        return ("hybrid",) * layers
    if rule == "jamba":
        period, offset = r.int("attn_layer_period") or 1, r.int("attn_layer_offset") or 0
        return tuple("full_attention" if i % period == offset else "recurrent" for i in range(layers))
    names = {"full_attention": "full_attention", "attention": "full_attention", "hybrid": "hybrid"}
    listed = r.raw("layers_block_type" if rule == "zamba2" else "layer_types")
    if isinstance(listed, list) and len(listed) == layers and all(isinstance(t, str) for t in listed):
        return tuple(names.get(t, "recurrent") for t in listed)
    if listed is not None:
        r.warnings.append(f"config.json layer types do not list {layers} layers: the family's default layout used")
    if rule == "zamba2" and listed is None and layers <= _ZAMBA2_LAYERS:  # the class default's first
        return tuple("hybrid" if i in _ZAMBA2_HYBRID else "recurrent" for i in range(layers))
    if rule == "zamba2":
        r.warnings.append("config.json has no layers_block_type: every layer counted as Mamba (no KV cache)")
        return ("recurrent",) * layers
    if r.family.mixer == "short_conv":  # Lfm2Config: full_attn_idxs, else every layer attends
        idxs = r.raw("full_attn_idxs")
        full = set(idxs) if isinstance(idxs, list) else set(range(layers))
        return tuple("full_attention" if i in full else "recurrent" for i in range(layers))
    every = r.int("full_attention_interval") or 1  # Qwen3NextConfig
    return tuple("recurrent" if (i + 1) % every else "full_attention" for i in range(layers))


def _lfm2_ff_dim(r: _Reader, inner: int) -> int:
    """Lfm2MLP's width: 2/3 of block_ff_dim when auto-adjusted, times the multiplier, rounded up to a multiple."""
    if r.raw("block_auto_adjust_ff_dim"):
        inner = int(2 * inner / 3)
        multiplier = r.raw("block_ffn_dim_multiplier")
        if isinstance(multiplier, (int, float)) and not isinstance(multiplier, bool) and multiplier > 0:
            width = multiplier * inner
            if not width <= MAX_WIDTH:  # infinities too
                raise ConfigError(f"config.json block_ffn_dim_multiplier is {shortened(multiplier)}: an MLP wider "
                                  f"than {MAX_WIDTH:,}")  # fmt: skip
            inner = int(width)
        multiple = r.int("block_multiple_of") or 1
        inner = multiple * -(-inner // multiple)
    return inner


def _layer_types(
    r: _Reader, layers: int | None, max_positions: int | None
) -> tuple[tuple[str, ...] | None, int | None]:
    """Per-layer attention kinds and the sliding window; (None, None) when every layer attends in full."""
    window = r.int("sliding_window")
    if r.cfg.get("use_sliding_window") is False or (window is not None and window <= 0):
        window = None
    if window is not None and max_positions is not None and window >= max_positions:
        window = None  # a window as long as the context never drops a token (Phi-3's 262144)
    explicit = r.cfg.get("layer_types")
    types: list[str] = []
    if isinstance(explicit, list) and all(isinstance(t, str) for t in explicit):
        if len(explicit) > MAX_LAYERS:
            raise ConfigError(
                f"config.json layer_types has {len(explicit):,} entries: not a plausible number of layers "
                f"(0 to {MAX_LAYERS:,})"
            )
        types = list(explicit)
        if layers is not None and len(types) != layers:
            r.warnings.append(f"config.json layer_types has {len(types)} entries for {layers} layers")
    elif window is not None and layers:
        rule = r.family.sliding
        if rule == "all":
            types = ["sliding_attention"] * layers
        elif rule == "qwen":  # layers from max_window_layers on slide
            first = r.int("max_window_layers") or 0
            types = ["sliding_attention" if i >= first else "full_attention" for i in range(layers)]
        elif rule == "alternate":  # Gemma-2, gpt-oss: even layers slide
            types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
        elif rule == "pattern":  # Gemma-3: every Nth layer is global
            every = r.int("sliding_window_pattern") or 1
            types = ["sliding_attention" if (i + 1) % every else "full_attention" for i in range(layers)]
        if r.family is _UNKNOWN_DECODER and rule == "all":
            r.warnings.append(f"sliding_window {window}: assumed to apply to every layer")
    if window is None:
        types = ["full_attention" if t == "sliding_attention" else t for t in types]
    other = sorted({t for t in types if t not in ("full_attention", "sliding_attention")})
    if other:
        r.warnings.append(f"layer_types {shortened(other)} are not modelled: treated as given")
    if all(t == "full_attention" for t in types):
        return None, None
    return tuple(types), window if "sliding_attention" in types else None
