"""Model states: bytes per parameter by recipe, optimizer state and step temporaries, ZeRO sharding."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .settings import Optimizer, Recipe, Settings

# (weights, gradients, optimizer-state element, compute) bytes. memory-model.md B §1.6: mixed = torch.amp over an
# fp32 model (4 + 4 + fp32 states, 16-bit autocast compute); bf16 = pure 16-bit (torchtune, PEFT full FT); fp32.
RECIPE_BYTES: dict[Recipe, tuple[int, int, int, int]] = {
    Recipe.MIXED: (4, 4, 4, 2),
    Recipe.BF16: (2, 2, 2, 2),
    Recipe.FP32: (4, 4, 4, 4),
}
BNB_8BIT_MIN_SIZE = 4096  # bitsandbytes optimizers keep 32-bit states for tensors smaller than this (min_8bit_size)
BNB_8BIT_BLOCK = 2048  # block-wise 8-bit states: one fp32 absmax per 2048 values per state


SHAPED = (Optimizer.ADAMW_8BIT, Optimizer.ADAFACTOR)  # optimizers whose state depends on each tensor's shape


def optimizer_state_bytes(
    optimizer: Optimizer, state_bytes: int, numel: int, shapes: Mapping[tuple[int, ...], int] | None = None
) -> tuple[int, str]:
    """Optimizer state for `numel` parameters (`shapes`: shape -> how many of their tensors have it; read only by
    SHAPED optimizers), and the expression that gives it."""
    shapes = shapes or {}
    if optimizer is Optimizer.ADAMW:
        return 2 * numel * state_bytes, f"2 states (m, v) x params x {state_bytes} B"
    if optimizer is Optimizer.SGD:
        return 0, "plain SGD keeps no state"
    if optimizer is Optimizer.SGD_MOMENTUM:
        return numel * state_bytes, f"1 momentum buffer x params x {state_bytes} B"
    if optimizer is Optimizer.ADAMW_8BIT:
        total = 0
        for s, count in shapes.items():
            n = math.prod(s)
            total += count * (2 * (n + 4 * -(-n // BNB_8BIT_BLOCK)) if n >= BNB_8BIT_MIN_SIZE else 8 * n)
        return total, "2 states x (1 B + fp32 absmax per 2048) per param; tensors < 4096 elements keep fp32 states"
    if optimizer is Optimizer.ADAFACTOR:
        factored = sum(_adafactor_elements(s) * count for s, count in shapes.items())
        return (
            factored * state_bytes,
            f"factored 2nd moment: rows + cols per matrix, numel per vector, x {state_bytes} B",
        )
    raise ValueError(optimizer)


def _adafactor_elements(shape: tuple[int, ...]) -> int:
    """transformers Adafactor: exp_avg_sq_row (shape[:-1]) + exp_avg_sq_col (shape[:-2] + shape[-1:]) for >= 2-D."""
    if len(shape) < 2:
        return math.prod(shape)
    return math.prod(shape[:-1]) + math.prod(shape[:-2]) * shape[-1]


def step_temporary_bytes(optimizer: Optimizer, state_bytes: int, numel: int, largest: int) -> tuple[int, str]:
    """Memory step() allocates on top of the states. torch's foreach AdamW computes sqrt(v) for every parameter
    at once (one parameter-sized temporary, memory-model.md A.4b); bitsandbytes and SGD update in place;
    transformers Adafactor loops over parameters, with about two temporaries the size of the largest one."""
    if optimizer is Optimizer.ADAMW:
        return numel * state_bytes, f"foreach AdamW: one parameter-sized temporary x {state_bytes} B"
    if optimizer is Optimizer.ADAFACTOR:
        return 2 * largest * state_bytes, "Adafactor: 2 temporaries of the largest parameter"
    return 0, "in-place update"


@dataclass(frozen=True)
class Sharding:
    """ZeRO stage z over N GPUs (ZeRO paper; memory-model.md B §1.7): optimizer states split from stage 1,
    gradients from stage 2, parameters from stage 3 (with the unit being computed gathered in full)."""

    gpus: int
    zero: int

    @classmethod
    def of(cls, settings: Settings) -> Sharding:
        return cls(settings.gpus, settings.zero if settings.gpus > 1 else 0)

    def split(self, nbytes: int, stage: int) -> int:
        return -(-nbytes // self.gpus) if self.zero >= stage else nbytes

    def describe(self) -> str:
        if self.gpus == 1:
            return "one GPU"
        return f"per GPU of {self.gpus}, ZeRO-{self.zero}" if self.zero else f"per GPU of {self.gpus}, replicated (DDP)"
