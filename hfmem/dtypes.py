"""Safetensors dtype names, their widths, and the torch names the CLI and configs use."""

from __future__ import annotations

# Bits per element for every dtype the safetensors format defines (safetensors/src/tensor.rs).
BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E4M3FN": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

# torch dtype names (config.json `torch_dtype` / `dtype`, CLI `--dtype`) -> safetensors names.
TORCH_TO_SAFETENSORS: dict[str, str] = {
    "float32": "F32",
    "float": "F32",
    "float16": "F16",
    "half": "F16",
    "bfloat16": "BF16",
    "float64": "F64",
    "int8": "I8",
    "uint8": "U8",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}

SAFETENSORS_TO_TORCH: dict[str, str] = {
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F64": "float64",
    "I8": "int8",
    "U8": "uint8",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


def bits(dtype: str) -> int | None:
    """Bits per element of a safetensors dtype, or None when the name is unknown."""
    return BITS.get(dtype.upper())


def nbytes(dtype: str, numel: int) -> int:
    """Bytes that `numel` elements of `dtype` occupy (sub-byte dtypes are packed)."""
    width = bits(dtype)
    if width is None:
        raise KeyError(dtype)
    return (numel * width + 7) // 8
