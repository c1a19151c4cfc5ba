"""Weight bytes: as stored, re-cast to a float dtype, or bitsandbytes-quantised (linear weights only)."""

from __future__ import annotations

from dataclasses import dataclass

from ..header import Tensor
from .facts import Linear, ModelFacts
from .results import Formula
from .settings import Int4Scheme, Settings

FLOAT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
BNB_BLOCK = 64  # bitsandbytes 4-bit block size (QLoRA paper: absmax per 64 weights)
BNB_DQ_BLOCK = 256  # double quantisation: fp32 absmax per 256 first-level blocks (QLoRA paper)


def compute_dtype(facts: ModelFacts, settings: Settings) -> str:
    """The dtype activations run in: the chosen float dtype, the stored float dtype, else bfloat16."""
    if settings.dtype in FLOAT_BYTES:
        return settings.dtype
    stored = facts.spec.dtype if facts.spec.quantization is None else None
    if settings.dtype == "auto" and stored in FLOAT_BYTES:
        return stored  # type: ignore[return-value]
    if settings.dtype == "int4" and settings.int4 is Int4Scheme.BNB_DEFAULT:
        return "float32"  # BitsAndBytesConfig's bnb_4bit_compute_dtype default
    return "float16" if stored == "float16" else "bfloat16"


def int8_bytes(lin: Linear) -> int:
    """LLM.int8 (bitsandbytes Int8Params): 1 byte per weight + an fp32 scale per output row (SCB)."""
    return lin.numel + 4 * lin.out_features


def int4_bytes(numel: int, double_quant: bool = True) -> int:
    """bitsandbytes 4-bit: packed nibbles + absmax per 64 weights, as 8-bit + fp32 per 256 blocks with double
    quantisation (4 + 8/64 + 32/(64*256) = 4.127 bits, QLoRA paper) or fp32 without it (4.5 bits)."""
    blocks = -(-numel // BNB_BLOCK)
    absmax = blocks + 4 * -(-blocks // BNB_DQ_BLOCK) if double_quant else 4 * blocks
    return -(-numel // 2) + absmax


@dataclass(frozen=True)
class Weights:
    total_bytes: int
    linear_bytes: int  # the part in quantised linear weights (0 unless int8/int4/QLoRA)
    formula: Formula


def inference_weights(facts: ModelFacts, settings: Settings, warnings: list[str]) -> Weights:
    spec, dtype = facts.spec, settings.dtype
    stored = spec.files.weights_bytes
    if spec.quantization is not None or dtype == "auto":
        if spec.quantization is not None and dtype != "auto":
            warnings.append(
                f"checkpoint is already quantised ({spec.quantization.method}): dtype {dtype} ignored, "
                "weights taken as stored"
            )
        what = "as stored" + (f" ({spec.quantization.method})" if spec.quantization else "")
        formula = Formula(
            "weights",
            f"Σ tensor bytes from the safetensors headers, {what}",
            {"tensors": spec.tensor_count, "parameters": spec.parameters.total},
            stored,
            exact=spec.parameters.exact,
        )
        return Weights(stored, 0, formula)
    if dtype in FLOAT_BYTES:
        size = FLOAT_BYTES[dtype]
        total = sum(_cast_bytes(t, size) for t in facts.tensors)
        formula = Formula(
            "weights",
            f"Σ floating-point elements x {size} B ({dtype}); integer tensors as stored",
            {"parameters": spec.parameters.total, "bytes_per_element": size},
            total,
            exact=not facts.synthetic,
        )
        return Weights(total, 0, formula)
    return quantised_weights(facts, 8 if dtype == "int8" else 4, settings.int4 is Int4Scheme.NF4_DQ)


def quantised_weights(facts: ModelFacts, bits: int, double_quant: bool = True) -> Weights:
    """bitsandbytes on load: nn.Linear weights quantised; embeddings, lm_head, norms and biases in 16-bit."""
    linear_bytes, rest = _quantised_parts(facts, bits, double_quant)
    linear_params = facts.linear_parameters
    if bits == 8:
        expression = "linear: numel x 1 B + 4 B x out_features (LLM.int8 row scales); other tensors x 2 B"
    elif double_quant:
        expression = "linear: NF4 numel/2 + absmax numel/64 x 1 B + numel/16384 x 4 B (4.127 bits); other x 2 B"
    else:
        expression = "linear: 4-bit numel/2 + absmax numel/64 x 4 B (4.5 bits); other tensors x 2 B"
    formula = Formula(
        "weights",
        expression,
        {
            "linear_parameters": linear_params,
            "other_parameters": facts.spec.parameters.total - linear_params,
            "linear_bytes": linear_bytes,
            "other_bytes": rest,
        },
        linear_bytes + rest,
        exact=not facts.synthetic,
    )
    return Weights(linear_bytes + rest, linear_bytes, formula)


def _quantised_parts(facts: ModelFacts, bits: int, double_quant: bool) -> tuple[int, int]:
    """(linear bytes, other bytes), cached per model: the tables ask for the same sums many times."""
    memo, key = facts.sums, ("quantised", bits, double_quant)
    if key not in memo:
        linear_names = {lin.module + ".weight" for lin in facts.linears}
        linear = sum(
            (int8_bytes(lin) if bits == 8 else int4_bytes(lin.numel, double_quant)) * lin.count for lin in facts.linears
        )
        rest = sum(_cast_bytes(t, 2) for t in facts.tensors if t.name not in linear_names)
        memo[key] = (linear, rest)
    return memo[key]


def _cast_bytes(t: Tensor, size: int) -> int:
    """Floating tensors re-cast to `size` bytes per element; integer buffers (position_ids) keep their bytes."""
    return (t.numel * size if t.dtype.upper() in _FLOAT_DTYPES else t.nbytes) * t.count
