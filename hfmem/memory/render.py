"""Human-readable tables (tabulate) for the memory model; units GiB (2^30, default) or GB (10^9), always labelled."""

from __future__ import annotations

from collections.abc import Mapping

from tabulate import tabulate

from ..gpus import Gpu
from ..spec import ModelSpec
from .explain import explain, rules_of_thumb
from .facts import ModelFacts, facts_of
from .fit import GpuFit
from .results import MemoryReport
from .settings import Settings, resolve_seq_len
from .tables import MODES, max_batch, max_seq_len, sweep, what_if

UNITS = {"gib": (2**30, "GiB"), "gb": (10**9, "GB")}
COMPONENT_ORDER = ("weights", "adapters", "kv_cache", "gradients", "optimizer", "activations", "overhead")


def size(n: int, units: str = "gib") -> str:
    divisor, _ = UNITS[units]
    return f"{n / divisor:,.2f}"


def label(units: str) -> str:
    return UNITS[units][1]


def render_breakdown(report: MemoryReport, units: str = "gib") -> str:
    """One column per mode, one row per component, then the total and the peak phase."""
    present = {name for est in report.by_mode().values() for name in est.components}
    names = [n for n in COMPONENT_ORDER if n in present] + sorted(present - set(COMPONENT_ORDER))
    rows = []
    for name in names:
        cells = [
            size(est.components[name], units) if name in est.components else "" for est in report.by_mode().values()
        ]
        rows.append([name, *cells])
    rows.append(["total", *(size(est.total_bytes, units) for est in report.by_mode().values())])
    s = report.inference.settings
    lora = report.lora
    heading = (
        f"Memory ({label(units)}, per GPU) · batch {s['batch_size']} x seq {s['seq_len']} · "
        f"training {report.training.settings['recipe']}/{report.training.settings['optimizer']} "
        f"(peak: {report.training.settings['peak_phase']}) · LoRA r={lora.settings['rank']} on "
        f"{','.join(lora.target_modules)}{' (QLoRA)' if lora.settings['qlora'] else ''}"
    )
    table = tabulate(
        rows,
        headers=["component", "inference", "full training", "LoRA"],
        tablefmt="simple",
        disable_numparse=True,
        colalign=("left", "right", "right", "right"),
    )
    cpu = f"CPU RAM to run inference without a GPU: {size(report.cpu.total_bytes, units)} {label(units)}"
    if report.cpu.settings["pickle_only"]:
        cpu += " (pickle checkpoint: torch.load holds a second copy while loading)"
    if s.get("engine") == "llamacpp":
        host = s["host"]
        cpu += (f"\nllama.cpp: {s['n_gpu_layers']} of {report.facts.dims.layers + 1} layers on the GPU (output layer "
                f"included) · host RAM {size(sum(host.values()), units)} {label(units)} (weights "
                f"{size(host['weights'], units)}, KV {size(host['kv_cache'], units)}) · n_ctx {s['n_ctx']} · "
                f"KV {s['kv_dtype']}")
    return f"{heading}\n{table}\n{lora.peft_line}\n{cpu}"


def render_fit(fit: GpuFit, units: str = "gib") -> str:
    rows = [
        [
            mode,
            size(fit.totals[mode], units),
            "yes" if fit.fits[mode] else "no",
            fit.gpus_needed[mode] if fit.gpus_needed[mode] is not None else "none suffices",
        ]
        for mode in MODES
    ]
    heading = (
        f"GPU {fit.gpu.name}: {size(fit.gpu.memory_bytes, units)} {label(units)}, "
        f"{size(fit.usable_bytes, units)} usable ({fit.usable_fraction:.0%})"
    )
    table = tabulate(
        rows,
        headers=["mode", f"needs ({label(units)})", "fits", "GPUs needed"],
        tablefmt="simple",
        disable_numparse=True,
    )
    note = "GPUs needed: weights and KV heads split for inference; ZeRO-3 sharding of model states for training."
    return f"{heading}\n{table}\n{note}"


def render_sweep(model: ModelSpec | ModelFacts, settings: Settings, units: str = "gib") -> str:
    rows = [[r.seq_len, r.batch_size, *(size(r.totals[m], units) for m in MODES)] for r in sweep(model, settings)]
    table = tabulate(
        rows,
        headers=["seq", "batch", "inference", "full training", "LoRA"],
        tablefmt="simple",
        disable_numparse=True,
        colalign=("right", "right", "right", "right", "right"),
    )
    return f"Sweep ({label(units)} per GPU; other settings as chosen)\n{table}"


def render_what_if(
    model: ModelSpec | ModelFacts, settings: Settings, gpu: Gpu | GpuFit | None = None, units: str = "gib"
) -> str:
    facts = facts_of(model)
    device = gpu.gpu if isinstance(gpu, GpuFit) else gpu
    rows = []
    for row in what_if(facts, settings, device):
        cells = [row.mode, row.change, size(row.total_bytes, units), size(row.saving_bytes, units)]
        rows.append(cells + ([("yes" if row.fits else "no")] if device else []))
    headers = ["mode", "change", f"total ({label(units)})", "saves"] + (["fits"] if device else [])
    parts = [
        f"What if ({label(units)} per GPU; one change at a time, savings are not additive)",
        tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True),
    ]
    return "\n".join(parts)


def render_limits(model: ModelSpec | ModelFacts, settings: Settings, gpu: Gpu) -> str:
    """The inverse answers: the largest context and the largest batch that fit `gpu`, per mode."""
    facts = facts_of(model)
    seq, batch = max_seq_len(facts, settings, gpu), max_batch(facts, settings, gpu)
    inverse = [[m, seq[m] or "none", batch[m] or "none"] for m in MODES]
    seq_len = resolve_seq_len(settings, facts.dims.max_positions)
    heading = f"Largest that fits on {gpu.name} (context at batch {settings.batch_size}; batch at seq {seq_len})"
    return heading + "\n" + tabulate(
        inverse, headers=["mode", "max context", "max batch"], tablefmt="simple", disable_numparse=True
    )


def render_explain(model: ModelSpec | ModelFacts, settings: Settings, units: str = "gib") -> str:
    facts = facts_of(model)
    parts = []
    for mode, formulas in explain(facts, settings).items():
        rows = [
            [f.name, f.expression, _inputs(f.inputs), size(f.result_bytes, units), "exact" if f.exact else "model"]
            for f in formulas
        ]
        parts.append(f"{mode} formulas ({label(units)})")
        parts.append(
            tabulate(
                rows,
                headers=["term", "formula", "inputs", label(units), "kind"],
                tablefmt="simple",
                disable_numparse=True,
                maxcolwidths=[22, 60, 50, None, None],
            )
        )
    rules = [
        [
            r.mode,
            r.name,
            r.source,
            size(r.rule_bytes, units),
            size(r.hfmem_bytes, units),
            f"{(r.rule_bytes / r.hfmem_bytes - 1) * 100:+.0f}%" if r.hfmem_bytes else "",
        ]
        for r in rules_of_thumb(facts, settings)
    ]
    parts.append(f"Rules of thumb vs hfmem ({label(units)})")
    parts.append(
        tabulate(
            rules,
            headers=["mode", "rule", "source", "rule", "hfmem", "rule vs hfmem"],
            tablefmt="simple",
            disable_numparse=True,
            maxcolwidths=[None, 32, 50, None, None, None],
        )
    )
    return "\n".join(parts)


def _inputs(inputs: Mapping[str, int | float | str]) -> str:
    return ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in inputs.items())
