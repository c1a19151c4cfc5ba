"""hfmem: what a Hugging Face model is exactly, and whether it fits, from config.json and safetensors headers."""

from .api import ModelReport, inspect_model, open_snapshot
from .audit import AuditRow, audit_models
from .checks import CheckReport, check_model
from .errors import HfmemError
from .gpus import Gpu, find_gpu
from .hub import HubOptions
from .memory import Settings
from .spec import ModelSpec

__all__ = [
    "AuditRow",
    "CheckReport",
    "Gpu",
    "HfmemError",
    "HubOptions",
    "ModelReport",
    "ModelSpec",
    "Settings",
    "audit_models",
    "check_model",
    "find_gpu",
    "inspect_model",
    "open_snapshot",
]
