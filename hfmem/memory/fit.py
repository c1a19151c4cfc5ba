"""Does it fit on a GPU, and how many GPUs does it need?

gpus_needed assumes the usual way to spread a model: for inference the weights and KV heads are split over N GPUs
(tensor-parallel style; activations and overhead are per GPU); for training and LoRA the model states are sharded
ZeRO-3 / FSDP style (parameters, gradients and optimizer states / N, plus the layer being computed gathered in
full) while each GPU keeps its own micro-batch's activations. None means no number of GPUs suffices (the
per-GPU activations alone exceed the usable memory).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..gpus import Gpu
from .estimator import mode_estimate
from .results import MemoryReport
from .settings import MODES, Mode, Settings, usable_bytes

MAX_GPUS = 1 << 16


@dataclass(frozen=True)
class GpuFit:
    gpu: Gpu
    usable_fraction: float
    totals: dict[Mode, int]  # per-GPU total of each mode under the given settings
    fits: dict[Mode, bool]
    gpus_needed: dict[Mode, int | None]

    usable_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """CONTRACT.md's `gpu` object."""
        return {
            "name": self.gpu.name,
            "memory_bytes": self.gpu.memory_bytes,
            "fits": dict(self.fits),
            "gpus_needed": dict(self.gpus_needed),
            "usable_fraction": self.usable_fraction,
            "usable_bytes": self.usable_bytes,
        }


def fit_gpus(report: MemoryReport, gpu: Gpu, settings: Settings) -> GpuFit:
    usable = usable_bytes(gpu, settings)
    totals = {mode: est.total_bytes for mode, est in report.by_mode().items()}
    return GpuFit(
        gpu=gpu,
        usable_fraction=settings.usable_fraction,
        usable_bytes=usable,
        totals=totals,
        fits={mode: total <= usable for mode, total in totals.items()},
        gpus_needed={mode: gpus_needed(report, settings, mode, usable) for mode in MODES},
    )


def per_gpu_total(report: MemoryReport, settings: Settings, mode: Mode, gpus: int) -> int:
    """A mode's per-GPU total when spread over `gpus` GPUs (ZeRO-3 for training and LoRA)."""
    spread = replace(settings, gpus=gpus, zero=3 if gpus > 1 and mode != "inference" else settings.zero)
    if spread == settings:
        return report.by_mode()[mode].total_bytes
    return mode_estimate(report.facts, spread, mode).total_bytes


def gpus_needed(report: MemoryReport, settings: Settings, mode: Mode, usable: int) -> int | None:
    """The smallest N whose per-GPU total fits in `usable` bytes (doubling, then bisection)."""
    if per_gpu_total(report, settings, mode, 1) <= usable:
        return 1
    low, high = 1, 2
    while per_gpu_total(report, settings, mode, high) > usable:
        low, high = high, high * 2
        if high > MAX_GPUS:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        if per_gpu_total(report, settings, mode, mid) <= usable:
            high = mid
        else:
            low = mid
    return high
