"""ModelSpec: everything hfmem knows about one model, built from a Snapshot (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .architecture import Architecture
from .header import Tensor


@dataclass(frozen=True)
class Quantization:
    method: str  # quant_method of quantization_config: "fp8", "mxfp4", "gptq", "awq", "bitsandbytes", ...
    bits: float | None


@dataclass(frozen=True)
class Parameters:
    total: int
    by_dtype: dict[str, int]
    embedding: int  # input embedding + other embedding tables + an untied output projection
    active: int | None  # MoE: parameters used per token (routed experts counted k/E); None for dense models
    exact: bool = True  # False when derived from config.json (no safetensors headers)


@dataclass(frozen=True)
class Files:
    weights_bytes: int  # sum over tensors of elements x dtype size, as the headers state
    download_bytes: int | None  # every file of the repo (None when sizes are unknown)
    formats: tuple[str, ...]  # weight formats present: "safetensors", "pytorch", "gguf", ...
    count: int  # number of files in the repo


@dataclass(frozen=True)
class ModelSpec:
    model: str
    revision: str | None
    commit: str | None
    source: str  # "hub" | "local" | "cache"
    architecture: Architecture
    dtype: str | None  # torch name: config torch_dtype/dtype, else the dominant header dtype
    quantization: Quantization | None
    parameters: Parameters
    files: Files
    tensors: tuple[Tensor, ...]  # every tensor of the checkpoint; empty when counts come from the config
    warnings: tuple[str, ...] = field(default_factory=tuple)
