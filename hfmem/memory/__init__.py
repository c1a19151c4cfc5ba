"""The memory model (memory-model.md Part A): pure functions from a ModelSpec and Settings to byte estimates."""

from .estimator import estimate
from .explain import Explanation, Rule, explain, explanation, rules_of_thumb
from .fit import GpuFit, fit_gpus
from .kv import kv_bytes_per_token
from .lora import adapters, resolve_targets
from .results import Estimate, Formula, LoraEstimate, MemoryReport
from .settings import MODES, Int4Scheme, Mode, Optimizer, Recipe, Settings, usable_bytes
from .tables import Limits, SweepRow, WhatIfRow, limits, max_batch, max_seq_len, seq_curve, sweep, what_if

__all__ = [
    "Estimate",
    "Explanation",
    "Formula",
    "GpuFit",
    "Int4Scheme",
    "Limits",
    "LoraEstimate",
    "MODES",
    "MemoryReport",
    "Mode",
    "Optimizer",
    "Recipe",
    "Rule",
    "Settings",
    "SweepRow",
    "WhatIfRow",
    "adapters",
    "estimate",
    "explain",
    "explanation",
    "fit_gpus",
    "kv_bytes_per_token",
    "limits",
    "max_batch",
    "max_seq_len",
    "resolve_targets",
    "rules_of_thumb",
    "seq_curve",
    "sweep",
    "usable_bytes",
    "what_if",
]
