"""hfmem: what a Hugging Face model is exactly, and whether it fits, from config.json and safetensors headers."""

from .api import ModelReport, inspect_model, open_snapshot
from .errors import HfmemError
from .gpus import Gpu, find_gpu
from .hub import HubOptions
from .memory import Settings
from .spec import ModelSpec

__all__ = [
    "Gpu",
    "HfmemError",
    "HubOptions",
    "ModelReport",
    "ModelSpec",
    "Settings",
    "find_gpu",
    "inspect_model",
    "open_snapshot",
]
