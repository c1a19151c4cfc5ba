"""Access to ../shared/hub-dataset (real configs and ground truth), when it is present beside the checkout.

Importable without pytest (the fake Hub and the benchmarks use it in a venv holding hfmem alone); the
`needs_dataset` marker is made on first use."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "hub-dataset"


def __getattr__(name: str) -> Any:
    if name == "needs_dataset":  # a marker: skip where ../shared/hub-dataset is absent
        import pytest

        return pytest.mark.skipif(not DATASET.is_dir(), reason="../shared/hub-dataset is not present")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def model_dirs(with_ground_truth: bool = False) -> list[Path]:
    """Every dataset model folder (ORG__NAME), optionally only those with expected.json and tensors.json."""
    if not DATASET.is_dir():
        return []
    dirs = sorted(p for p in (DATASET / "models").iterdir() if (p / "config.json").is_file())
    if with_ground_truth:
        dirs = [p for p in dirs if (p / "expected.json").is_file() and (p / "tensors.json").is_file()]
    return dirs


def repo_id(model_dir: Path) -> str:
    return model_dir.name.replace("__", "/", 1)


@cache
def expected(model_dir: Path) -> dict:
    return json.loads((model_dir / "expected.json").read_text())


@cache
def config(model_dir: Path) -> dict:
    return json.loads((model_dir / "config.json").read_text())


@cache
def tensors(model_dir: Path) -> dict[str, dict]:
    """name -> {"dtype", "shape"}, in checkpoint order."""
    return json.loads((model_dir / "tensors.json").read_text())
