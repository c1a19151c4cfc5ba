"""The normalised architecture of a model, read from its config.json (see config.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Keys of CONTRACT.md's `architecture` object, in its order.
CONTRACT_KEYS = (
    "model_type",
    "architectures",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "tie_word_embeddings",
    "num_experts",
    "num_experts_per_tok",
    "attention",
)


# Per-layer kinds (Architecture.layer_types). Attention layers cache K/V per token; a recurrent layer (Mamba,
# gated delta-net, short convolution) keeps a fixed state per sequence; a hybrid layer has both (Falcon-H1's
# parallel mixers, Zamba2's layers that also run the shared attention block).
ATTENTION_KINDS = ("full_attention", "sliding_attention", "hybrid")
STATE_KINDS = ("recurrent", "hybrid")


@dataclass(frozen=True)
class Recurrent:
    """The per-sequence state of one recurrent layer, in elements, as transformers' cache holds it (shapes in
    hfmem/memory/state.py's docstring): a rolling window of the last `conv_width` inputs of a depthwise conv over
    `conv_channels`, and a recurrent state of `state_elements` (0 for a convolution-only layer)."""

    mixer: str  # "mamba" | "mamba2" | "gated_deltanet" | "short_conv"
    conv_channels: int
    conv_width: int
    state_elements: int
    state_shape: tuple[int, ...]  # per sequence, as the cache allocates it (for --explain)
    state_fp32: bool  # the recurrent state is float32 whatever the compute dtype (the scan's final state)


@dataclass(frozen=True)
class Architecture:
    """Architecture facts with Hugging Face names. None means the config does not say (and no default applies)."""

    model_type: str | None
    architectures: tuple[str, ...]
    hidden_size: int | None
    num_hidden_layers: int | None
    num_attention_heads: int | None
    num_key_value_heads: int | None
    head_dim: int | None
    intermediate_size: int | None
    vocab_size: int | None
    max_position_embeddings: int | None
    tie_word_embeddings: bool
    num_experts: int | None = None
    num_experts_per_tok: int | None = None
    attention: str | None = None  # "mha" | "gqa" | "mqa" | "mla"
    # Beyond the contract's keys.
    moe_intermediate_size: int | None = None
    num_shared_experts: int | None = None
    layer_types: tuple[str, ...] | None = None  # per decoder layer: ATTENTION_KINDS or "recurrent"
    sliding_window: int | None = None
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    is_encoder_decoder: bool = False
    is_encoder_only: bool = False
    num_decoder_layers: int | None = None  # encoder-decoder models: decoder depth
    hidden_act: str | None = None
    gated_mlp: bool = True
    dropouts: tuple[tuple[str, float], ...] = ()  # (config key, p) of the DROPOUT_KEYS set above 0
    recurrent: Recurrent | None = None  # state-space / linear-attention / short-conv layers (layer_types says which)

    def to_dict(self) -> dict[str, Any]:
        """The contract's keys first, then the extra facts."""
        data = asdict(self)
        data["architectures"] = list(self.architectures)
        data["layer_types"] = list(self.layer_types) if self.layer_types is not None else None
        data["dropouts"] = dict(self.dropouts)
        ordered = {key: data.pop(key) for key in CONTRACT_KEYS}
        ordered.update(data)
        return ordered


# Dropout probabilities transformers' modelling code reads (GPT-2/GPT-J/phi, T5, BERT, Llama-style attention).
DROPOUT_KEYS = (
    "embd_pdrop",
    "resid_pdrop",
    "attn_pdrop",
    "attention_dropout",
    "attention_probs_dropout_prob",
    "hidden_dropout_prob",
    "dropout_rate",
)


def read_dropouts(config: Any) -> tuple[tuple[str, float], ...]:
    """The config's dropout probabilities above 0 (a multimodal config's text_config when it has one)."""
    if not isinstance(config, dict):
        return ()
    text = config.get("text_config")
    section = text if isinstance(text, dict) else config
    found = ((key, section.get(key)) for key in DROPOUT_KEYS)
    return tuple(
        (key, float(p)) for key, p in found if isinstance(p, int | float) and not isinstance(p, bool) and p > 0
    )
