"""The memory model (memory-model.md Part A): pure functions from a ModelSpec and Settings to byte estimates."""

from .estimator import estimate
from .explain import Rule, explain, rules_of_thumb
from .fit import GpuFit, fit_gpus
from .kv import kv_bytes_per_token
from .lora import adapters, resolve_targets
from .results import Estimate, Formula, LoraEstimate, MemoryReport
from .settings import Int4Scheme, Optimizer, Recipe, Settings
from .tables import SweepRow, WhatIfRow, max_batch, max_seq_len, sweep, what_if

__all__ = [
    "Estimate",
    "Formula",
    "GpuFit",
    "Int4Scheme",
    "LoraEstimate",
    "MemoryReport",
    "Optimizer",
    "Recipe",
    "Rule",
    "Settings",
    "SweepRow",
    "WhatIfRow",
    "adapters",
    "estimate",
    "explain",
    "fit_gpus",
    "kv_bytes_per_token",
    "max_batch",
    "max_seq_len",
    "resolve_targets",
    "rules_of_thumb",
    "sweep",
    "what_if",
]
