"""Result values: a Formula per term, an Estimate per mode, and the MemoryReport that holds all three."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .settings import Mode

if TYPE_CHECKING:
    from .facts import ModelFacts

Number = int | float | str


@dataclass(frozen=True)
class Formula:
    """One term of an estimate, as --explain prints it."""

    name: str
    expression: str
    inputs: Mapping[str, Number]
    result_bytes: int
    exact: bool  # True when the value follows from headers/config alone (no modelling assumption)


@dataclass(frozen=True)
class Estimate:
    """A predicted peak: ordered components (bytes) whose sum is the total."""

    components: dict[str, int]
    settings: dict[str, Any]
    formulas: tuple[Formula, ...]

    @property
    def total_bytes(self) -> int:
        return sum(self.components.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total_bytes": self.total_bytes, "components": dict(self.components), "settings": dict(self.settings)}


@dataclass(frozen=True)
class LoraEstimate(Estimate):
    trainable_parameters: int
    all_parameters: int
    target_modules: tuple[str, ...]

    @property
    def peft_line(self) -> str:
        """The line PEFT's print_trainable_parameters() prints for the same adapter."""
        share = 100 * self.trainable_parameters / self.all_parameters if self.all_parameters else 0.0
        return (
            f"trainable params: {self.trainable_parameters:,d} || all params: {self.all_parameters:,d} || "
            f"trainable%: {share:.4f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total_bytes,
            "trainable_parameters": self.trainable_parameters,
            "all_parameters": self.all_parameters,
            "peft_line": self.peft_line,
            "components": dict(self.components),
            "settings": dict(self.settings),
        }


@dataclass(frozen=True)
class MemoryReport:
    inference: Estimate
    training: Estimate
    lora: LoraEstimate
    cpu: Estimate  # host RAM to run inference on the CPU, for users without a GPU
    warnings: tuple[str, ...]
    facts: ModelFacts = field(repr=False, compare=False)  # what the estimate was made from (for fit_gpus)

    def to_dict(self) -> dict[str, Any]:
        """CONTRACT.md's `memory` object (sizes in bytes), plus `cpu`."""
        return {
            "inference": self.inference.to_dict(),
            "training": self.training.to_dict(),
            "lora": self.lora.to_dict(),
            "cpu": self.cpu.to_dict(),
        }

    def by_mode(self) -> dict[Mode, Estimate]:
        return {Mode.INFERENCE: self.inference, Mode.TRAINING: self.training, Mode.LORA: self.lora}
