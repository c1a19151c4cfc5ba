"""KV cache: exact bytes per token and layer from the config (vLLM vllm/v1/kv_cache_interface.py rules)."""

from __future__ import annotations

from ..untrusted import shortened
from .facts import Dims, ModelFacts
from .results import Formula
from .settings import Settings
from .state import state_term
from .weights import FLOAT_BYTES, compute_dtype

KV_BYTES = {"float16": 2, "bfloat16": 2, "fp8": 1}


def kv_element_bytes(facts: ModelFacts, settings: Settings) -> int:
    """Bytes per cached element: the chosen kv_dtype, else the compute dtype."""
    if settings.kv_dtype in KV_BYTES:
        return KV_BYTES[settings.kv_dtype]
    return FLOAT_BYTES[compute_dtype(facts, settings)]


def layer_bytes_per_token(dims: Dims, element_bytes: int, gpus: int = 1) -> int:
    """One layer, one token, one GPU. MLA caches one latent (kv_lora_rank + rope dims, no x2), replicated on every
    GPU; MHA/GQA/MQA cache K and V for max(1, n_kv // gpus) heads (heads are replicated past n_kv GPUs)."""
    if dims.mla:
        return (dims.kv_lora_rank + dims.qk_rope_head_dim) * element_bytes
    return 2 * max(1, dims.kv_heads // gpus) * dims.head_dim * element_bytes


def kv_bytes_per_token(facts: ModelFacts, settings: Settings) -> int:
    """Σ over attention layers of one token's K/V bytes (sliding windows not applied): the vLLM page figure."""
    dims = facts.dims
    per_layer = layer_bytes_per_token(dims, kv_element_bytes(facts, settings), settings.gpus)
    return per_layer * dims.kv_layers * (2 if dims.encoder_decoder else 1)


def kv_cache(facts: ModelFacts, settings: Settings, seq_len: int, warnings: list[str]) -> tuple[int, Formula]:
    dims = facts.dims
    element = kv_element_bytes(facts, settings)
    per_layer = layer_bytes_per_token(dims, element, settings.gpus)
    # Recurrent layers' fixed state per sequence lives in the same cache (memory/state.py).
    state, state_expression, state_inputs = state_term(dims, FLOAT_BYTES[compute_dtype(facts, settings)],
                                                       settings.batch_size)  # fmt: skip
    if dims.decoder_layers == 0 or per_layer == 0 or not dims.kv_layers:
        reason = "encoder-only model: no KV cache" if dims.encoder_only else "no attention layers"
        if state:
            return state, Formula("kv_cache", f"no K/V ({reason}); " + state_expression, state_inputs, state, True)
        return 0, Formula("kv_cache", reason, {}, 0, exact=True)
    tokens = 0  # Σ over layers of the tokens each layer keeps
    kinds = dims.layer_kinds[: dims.decoder_layers]
    for kind in kinds:
        if kind == "recurrent":
            continue
        if kind == "sliding_attention" and dims.window:
            tokens += min(seq_len, dims.window)
        else:
            tokens += seq_len
    other = sorted({k for k in kinds if k not in ("full_attention", "sliding_attention", "recurrent", "hybrid")})
    if other:
        warnings.append(f"KV cache: layer types {shortened(other)} are counted as full attention")
    if dims.encoder_decoder:
        tokens += dims.decoder_layers * seq_len  # cross-attention over an encoder input of seq_len tokens
    total = settings.batch_size * tokens * per_layer + state
    if dims.mla:
        expression = "batch x Σ_layers tokens x (kv_lora_rank + qk_rope_head_dim) x kv_bytes"
        inputs: dict[str, int | float | str] = {
            "kv_lora_rank": dims.kv_lora_rank,
            "qk_rope_head_dim": dims.qk_rope_head_dim,
        }
    else:
        expression = "batch x Σ_layers tokens x 2 x kv_heads x head_dim x kv_bytes"
        inputs = {"kv_heads": max(1, dims.kv_heads // settings.gpus), "head_dim": dims.head_dim}
    if dims.window and "sliding_attention" in kinds:
        expression += "; sliding layers keep min(seq, window) tokens"
        inputs["window"] = dims.window
    if dims.encoder_decoder:
        expression += "; + cross-attention over the encoder's seq_len tokens"
    inputs |= {
        "batch_size": settings.batch_size,
        "seq_len": seq_len,
        "layers": len(kinds) - kinds.count("recurrent"),
        "kv_bytes": element,
        "bytes_per_token": per_layer * (len(kinds) - kinds.count("recurrent")),
    }
    if state:
        expression += "; + " + state_expression
        inputs |= state_inputs
    return total, Formula("kv_cache", expression, inputs, total, exact=True)
