"""KV cache: exact bytes per token and layer from the config, and the cache of a batch as a Formula. How many
tokens each layer keeps is the engine's rule (hfmem.engines: transformers, vllm, sglang; llamacpp for GGUF)."""

from __future__ import annotations

from collections.abc import Sequence

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


def kv_cache(
    facts: ModelFacts,
    settings: Settings,
    seq_len: int,
    warnings: list[str],
    *,
    element: int,
    layer_tokens: Sequence[int],
    rule: str,
    inputs: dict[str, int | float | str] | None = None,
) -> tuple[int, Formula]:
    """The batch's KV bytes on one GPU, given the tokens each layer slot keeps for one sequence of seq_len
    (`layer_tokens`, the engine's rule, described by `rule`; an engine's padding slots included)."""
    dims = facts.dims
    per_layer = layer_bytes_per_token(dims, element, settings.gpus)
    # Recurrent layers' fixed state per sequence lives in the same cache (memory/state.py).
    state, state_expression, state_inputs = state_term(dims, FLOAT_BYTES[compute_dtype(facts, settings)],
                                                       settings.batch_size)  # fmt: skip
    if dims.decoder_layers == 0 or per_layer == 0 or not dims.kv_layers:
        reason = "encoder-only model: no KV cache" if dims.encoder_only else "no attention layers"
        if state:
            return state, Formula("kv_cache", f"no K/V ({reason}); " + state_expression, state_inputs, state, True)
        return 0, Formula("kv_cache", reason, {}, 0, exact=True)
    kinds = dims.layer_kinds[: dims.decoder_layers]
    other = sorted({k for k in kinds if k not in ("full_attention", "sliding_attention", "recurrent", "hybrid")})
    if other:
        warnings.append(f"KV cache: layer types {shortened(other)} are counted as full attention")
    tokens = sum(layer_tokens)  # Σ over layer slots of the tokens each keeps
    if dims.encoder_decoder:
        tokens += dims.decoder_layers * seq_len  # cross-attention over an encoder input of seq_len tokens
    total = settings.batch_size * tokens * per_layer + state
    if dims.mla:
        expression = "batch x Σ_layers tokens x (kv_lora_rank + qk_rope_head_dim) x kv_bytes"
        shape: dict[str, int | float | str] = {
            "kv_lora_rank": dims.kv_lora_rank,
            "qk_rope_head_dim": dims.qk_rope_head_dim,
        }
    else:
        expression = "batch x Σ_layers tokens x 2 x kv_heads x head_dim x kv_bytes"
        shape = {"kv_heads": max(1, dims.kv_heads // settings.gpus), "head_dim": dims.head_dim}
    expression += f"; {rule}"
    if dims.window and "sliding_attention" in kinds:
        shape["window"] = dims.window
    if dims.encoder_decoder:
        expression += "; self-attention over decoder_len tokens + cross-attention over the encoder's seq_len"
        shape["decoder_len"] = settings.decoder_tokens(seq_len, dims.encoder_decoder)
    shape |= (inputs or {}) | {
        "batch_size": settings.batch_size,
        "seq_len": seq_len,
        "layers": len(kinds) - kinds.count("recurrent"),
        "kv_bytes": element,
        "bytes_per_token": per_layer * (len(kinds) - kinds.count("recurrent")),
    }
    if state:
        expression += "; + " + state_expression
        shape |= state_inputs
    return total, Formula("kv_cache", expression, shape, total, exact=True)
