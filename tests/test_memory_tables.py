"""GPU fit, the sweep / inverse / what-if tables, --explain, rules of thumb and the rendered text."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hfmem.gpus import Gpu, find_gpu
from hfmem.memory import (
    Recipe,
    Settings,
    estimate,
    explain,
    fit_gpus,
    max_batch,
    max_seq_len,
    rules_of_thumb,
    seq_curve,
    sweep,
    what_if,
)
from hfmem.memory.explain import explanation
from hfmem.memory.tables import limits
from hfmem.views.text import (
    render_breakdown,
    render_explain,
    render_fit,
    render_limits,
    render_sweep,
    render_what_if,
)

from hfmem.memory.tables import curve_seq_lens

from .test_memory_specs import arch_spec, tiny_spec

GIB = 2**30
MODES = ("inference", "training", "lora")


def test_fit_gpus_contract_shape_and_usable_fraction():
    spec = arch_spec("llama-3.1-8b")
    settings = Settings(seq_len=1024)
    report = estimate(spec, settings)
    fit = fit_gpus(report, find_gpu("H100"), settings)
    data = fit.to_dict()
    assert {"name", "memory_bytes", "fits", "gpus_needed"} <= set(data)
    assert data["name"] == "H100" and data["memory_bytes"] == 80 * GIB
    assert set(data["fits"]) == set(data["gpus_needed"]) == set(MODES)
    usable = int(80 * GIB * 0.9)
    for mode in MODES:
        assert data["fits"][mode] == (report.by_mode()[mode].total_bytes <= usable)
        assert (data["gpus_needed"][mode] == 1) == data["fits"][mode]
    assert data["fits"]["inference"] and not data["fits"]["training"]
    assert data["gpus_needed"]["training"] > 1


def test_gpus_needed_is_the_smallest_that_fits_with_zero3():
    spec = arch_spec("llama-3.1-8b")
    settings = Settings(seq_len=1024)
    gpu = Gpu("24 GiB", 24 * GIB)
    fit = fit_gpus(estimate(spec, settings), gpu, settings)
    n = fit.gpus_needed["training"]
    assert n is not None and n > 1
    usable = int(gpu.memory_bytes * 0.9)
    at = estimate(spec, replace(settings, gpus=n, zero=3)).training.total_bytes
    below = estimate(spec, replace(settings, gpus=n - 1, zero=3 if n > 2 else 0)).training.total_bytes
    assert at <= usable < below


def test_gpus_needed_is_none_when_activations_alone_do_not_fit():
    spec = arch_spec("llama-3.1-8b")
    settings = Settings(seq_len=131072, batch_size=8)
    fit = fit_gpus(estimate(spec, settings), Gpu("16 GiB", 16 * GIB), settings)
    assert fit.gpus_needed["training"] is None and not fit.fits["training"]


def test_sweep_covers_seq_and_batch_and_grows():
    spec = arch_spec("llama-3.1-8b")
    rows = sweep(spec, Settings())
    assert [(r.seq_len, r.batch_size) for r in rows[:3]] == [(512, 1), (512, 4), (512, 8)]
    assert sorted({r.seq_len for r in rows}) == [512, 2048, 8192, 131072]
    by_point = {(r.seq_len, r.batch_size): r.totals for r in rows}
    for mode in MODES:
        assert by_point[(512, 1)][mode] <= by_point[(512, 8)][mode] <= by_point[(8192, 8)][mode]
    assert {r.seq_len for r in sweep(tiny_spec(), Settings())} == {512, 2048}  # context 2048 caps the sweep


def test_seq_curve_doubles_up_to_the_context_at_the_chosen_batch():
    assert curve_seq_lens(131072) == tuple(256 << i for i in range(10))
    assert curve_seq_lens(40960)[-2:] == (32768, 40960)  # the context closes the curve
    assert curve_seq_lens(None) == (256, 512, 1024, 2048, 4096)  # no context stated: up to the default 4096
    assert curve_seq_lens(100) == (100,)
    spec = arch_spec("llama-3.1-8b")
    settings = Settings(batch_size=2, seq_len=1024)
    rows = seq_curve(spec, settings)
    assert [r.seq_len for r in rows] == list(curve_seq_lens(131072)) and {r.batch_size for r in rows} == {2}
    for row in rows:
        at = estimate(spec, replace(settings, seq_len=row.seq_len)).by_mode()
        assert row.totals == {mode: at[mode].total_bytes for mode in MODES}
    for mode in MODES:
        assert [r.totals[mode] for r in rows] == sorted(r.totals[mode] for r in rows)


def test_max_seq_len_and_max_batch_are_the_largest_that_fit():
    spec = arch_spec("llama-3.2-3b")
    settings = Settings(recipe=Recipe.BF16)
    gpu = find_gpu("A100-80GB")
    usable = int(gpu.memory_bytes * settings.usable_fraction)
    seq = max_seq_len(spec, settings, gpu)
    batch = max_batch(spec, settings, gpu)
    for mode in MODES:
        s, b = seq[mode], batch[mode]
        assert s is not None and b is not None
        total = {m: e.total_bytes for m, e in estimate(spec, replace(settings, seq_len=s)).by_mode().items()}
        assert total[mode] <= usable
        if s < 131072:
            longer = estimate(spec, replace(settings, seq_len=s + 1)).by_mode()[mode].total_bytes
            assert longer > usable
        bigger = estimate(spec, replace(settings, batch_size=b + 1)).by_mode()[mode].total_bytes
        assert bigger > usable
    assert seq["inference"] >= seq["lora"] and seq["inference"] >= seq["training"]
    tiny_gpu = Gpu("1 GiB", GIB)
    assert max_seq_len(spec, settings, tiny_gpu)["training"] is None


def test_what_if_rows_change_one_thing():
    spec = arch_spec("llama-3.1-8b")
    settings = Settings(seq_len=2048)
    rows = what_if(spec, settings, find_gpu("H100"))
    by = {(r.mode, r.change): r for r in rows}
    base = estimate(spec, settings)
    assert by[("training", "baseline")].total_bytes == base.training.total_bytes
    assert by[("training", "8-bit AdamW")].saving_bytes > 0
    assert by[("training", "recipe bf16")].saving_bytes > 0
    assert by[("training", "ZeRO-3 over 8 GPUs")].total_bytes < by[("training", "ZeRO-2 over 8 GPUs")].total_bytes
    assert by[("lora", "QLoRA (NF4 base)")].saving_bytes > 0
    assert by[("inference", "int4 weights")].total_bytes < by[("inference", "int8 weights")].total_bytes
    assert by[("training", "gradient checkpointing")].saving_bytes >= 0
    assert all(r.fits is not None for r in rows)
    assert all(r.fits is None for r in what_if(spec, settings))


def test_explain_and_rules_of_thumb():
    spec = arch_spec("llama-3.1-8b")
    settings = Settings()
    formulas = explain(spec, settings)
    assert set(formulas) == set(MODES)
    kv = next(f for f in formulas["inference"] if f.name == "kv_cache")
    assert kv.exact and kv.inputs["bytes_per_token"] == 131_072
    rules = {r.name: r for r in rules_of_thumb(spec, settings)}
    assert rules["16 B/param"].rule_bytes == 16 * spec.parameters.total
    assert rules["naive KV: b x s x h x L x 2"].rule_bytes == 4096 * 4096 * 32 * 2
    assert rules["naive KV: b x s x h x L x 2"].hfmem_bytes == 4096 * 131_072


@pytest.mark.parametrize("units", ["gib", "gb"])
def test_render_labels_units(units):
    spec = tiny_spec()
    settings = Settings()
    report = estimate(spec, settings)
    label = {"gib": "GiB", "gb": "GB"}[units]
    fit = fit_gpus(report, find_gpu("T4"), settings)
    texts = [
        render_breakdown(report, units),
        render_sweep(sweep(spec, settings), units),
        render_what_if(what_if(spec, settings, fit.gpu), units),
        render_explain(explanation(spec, settings), units),
        render_fit(fit, units),
    ]
    for text in texts:
        assert label in text.splitlines()[0]
        assert max(map(len, text.splitlines())) <= 80
    assert report.lora.peft_line in texts[0]
    assert "max context" in render_limits(limits(spec, settings, fit.gpu))


