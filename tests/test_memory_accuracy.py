"""bench/accuracy.py against its targets, and docs/accuracy.md in step with it (run the script to refresh)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .dataset import needs_dataset

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("hfmem_accuracy", ROOT / "bench" / "accuracy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@needs_dataset
def test_every_reproduced_row_is_within_its_target_and_the_doc_is_current():
    bench = _bench()
    rows = bench.all_rows()
    assert all(row.predicted is not None for row in rows)
    misses = [(row.id, round(row.error, 1)) for row in rows if row.within_target is False]
    assert misses == []
    serving = bench.serve_rows()
    exact = [row for row in serving if row.quantity in ("KV needed", "max len")]  # formulas from logged figures
    assert exact and all(row.ok for row in exact)
    stale = "docs/accuracy.md is stale: run python bench/accuracy.py"
    assert bench.OUTPUT.read_text() == bench.document(rows, serving), stale
