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


@needs_dataset
def test_llama_405b_fp8_as_first_uploaded_holds_57_71_gib_per_gpu_at_tp8():
    """vllm#6746 (v0.5.3, TP8) loaded the July 2024 upload: 16 KV heads (each of the 8 stored twice, fixed to 8 in
    August: vllm#6689), FP8 MLPs in layers 1-124 (fbgemm_fp8.py: fp8 weight, one fp32 scale per output row).
    Per GPU, by hand: embed_tokens + lm_head 2 x 16,032 x 16,384 x 2 B (128,256 padded to 64, split by 8);
    attention 126 x (q 2,048 x 16,384 + k, v 2 heads x 128 x 16,384 each + o 16,384 x 2,048) x 2 B; MLPs of
    layers 0 and 125 2 x 3 x 6,656 x 16,384 x 2 B; 124 FP8 MLPs 124 x 3 x 6,656 x 16,384 x 1 B; their scales
    124 x (2 x 53,248 + 16,384) x 4 B / 8; norms (2 x 126 + 1) x 16,384 x 2 B. The log: 57.7520 GiB."""
    from hfmem.engines import VllmSettings, plan
    from hfmem.gpus import find_gpu

    bench = _bench()
    spec = bench._meta_fp8(bench.dataset_spec("meta-llama__Llama-3.1-405B", num_key_value_heads=16))
    settings = VllmSettings(tensor_parallel_size=8, max_num_batched_tokens=512, enforce_eager=True)
    weights = plan(spec, find_gpu("H100"), settings).per_gpu["weights"]
    by_hand = (2 * 16_032 * 16_384 * 2
               + 126 * (2_048 * 16_384 + 2 * 256 * 16_384 + 16_384 * 2_048) * 2
               + 2 * 3 * 6_656 * 16_384 * 2 + 124 * 3 * 6_656 * 16_384
               + 124 * (2 * 53_248 + 16_384) * 4 // 8 + (2 * 126 + 1) * 16_384 * 2)
    assert weights == by_hand == 61_967_876_096
    assert abs(weights / 2**30 - 57.752) / 57.752 < 0.001
