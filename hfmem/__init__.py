"""hfmem: what a Hugging Face model is exactly, and whether it fits, from config.json and safetensors headers.

    import hfmem
    report = hfmem.inspect("Qwen/Qwen2.5-7B", gpu="H100", seq_len=8192)

Names are imported on first use, so `import hfmem` stays cheap (huggingface_hub loads only when a model is
resolved).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "ModelReport": "api", "inspect": "api", "inspect_model": "api", "open_snapshot": "api", "serve_model": "api",
    "AuditRow": "audit", "audit_models": "audit",
    "CheckReport": "checks", "check_model": "checks",
    "ServePlan": "engines", "SglangSettings": "engines", "VllmSettings": "engines",
    "HfmemError": "errors",
    "Gpu": "gpus", "find_gpu": "gpus", "known_gpus": "gpus",
    "HubOptions": "hub",
    "Settings": "memory",
    "ModelSpec": "spec",
}  # fmt: skip
__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from .api import ModelReport, inspect, inspect_model, open_snapshot, serve_model
    from .audit import AuditRow, audit_models
    from .checks import CheckReport, check_model
    from .engines import ServePlan, SglangSettings, VllmSettings
    from .errors import HfmemError
    from .gpus import Gpu, find_gpu, known_gpus
    from .hub import HubOptions
    from .memory import Settings
    from .spec import ModelSpec


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hfmem' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
