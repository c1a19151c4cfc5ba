"""estimate(): the three modes for one model and one set of settings."""

from __future__ import annotations

from ..spec import ModelSpec
from .facts import ModelFacts, analyse
from .inference import inference_estimate
from .lora import lora_estimate
from .results import Estimate, MemoryReport
from .settings import Settings, resolve_seq_len
from .training import training_estimate


def estimate(spec: ModelSpec, settings: Settings) -> MemoryReport:
    """Predicted peak GPU memory for inference, full training and LoRA (bytes, per GPU)."""
    return estimate_facts(analyse(spec), settings)


def estimate_facts(facts: ModelFacts, settings: Settings) -> MemoryReport:
    """estimate() for an already analysed model (the tables call this many times)."""
    warnings = list(facts.warnings)
    seq_len = resolve_seq_len(settings, facts.dims.max_positions)
    if facts.dims.max_positions and seq_len > facts.dims.max_positions:
        warnings.append(f"seq_len {seq_len} exceeds the model's context of {facts.dims.max_positions} tokens")
    return MemoryReport(
        inference=inference_estimate(facts, settings, seq_len, warnings),
        training=training_estimate(facts, settings, seq_len, warnings),
        lora=lora_estimate(facts, settings, seq_len, warnings),
        warnings=tuple(dict.fromkeys(warnings)),
        facts=facts,
    )


def mode_estimate(facts: ModelFacts, settings: Settings, mode: str) -> Estimate:
    """One mode only (cheaper than estimate_facts when a table needs a single column)."""
    build = {"inference": inference_estimate, "training": training_estimate, "lora": lora_estimate}[mode]
    return build(facts, settings, resolve_seq_len(settings, facts.dims.max_positions), [])
