"""Output: the contract's JSON shape and the human-readable report. The only place that formats units."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from .api import ModelReport
from .errors import HfmemError
from .memory import render
from .memory.render import UNITS
from .spec import ModelSpec
from .untrusted import one_line


def to_dict(report: ModelReport) -> dict[str, Any]:
    """One model in CONTRACT.md's JSON shape (sizes in bytes)."""
    spec = report.spec
    return {
        "model": spec.model,
        "revision": report.snapshot.shown_revision,
        "commit": spec.commit,
        "source": spec.source,
        "architecture": spec.architecture.to_dict(),
        "dtype": spec.dtype,
        "quantization": (
            {"method": spec.quantization.method, "bits": spec.quantization.bits} if spec.quantization else None
        ),
        "parameters": {
            "total": spec.parameters.total,
            "by_dtype": spec.parameters.by_dtype,
            "embedding": spec.parameters.embedding,
            "active": spec.parameters.active,
            "exact": spec.parameters.exact,
            "logical": spec.parameters.logical,
        },
        "files": {
            "weights_bytes": spec.files.weights_bytes,
            "download_bytes": spec.files.download_bytes,
            "formats": list(spec.files.formats),
            "count": spec.files.count,
        },
        "memory": report.memory.to_dict(),
        "gpu": report.gpu.to_dict() if report.gpu else None,
        **kind_dict(spec),
        "warnings": list(report.warnings),
    }


def kind_dict(spec: ModelSpec) -> dict[str, Any]:
    """CONTRACT.md's objects for the repo kinds that have one: `gguf` (types, parameters per ggml type, only for the
    variant read; the others' bits_per_weight are their size over its parameters; bytes_by_type the read one's) and
    `adapter`."""
    kinds: dict[str, Any] = {}
    if spec.gguf is not None:
        repo, parameters = spec.gguf, spec.parameters.total
        kinds["gguf"] = {
            "file": repo.chosen.files[0],
            "files": [{"name": v.files[0], "size": v.size, "parts": v.parts, "quant": v.quant,
                       "types": repo.model.parameters_by_type if v == repo.chosen else None,
                       "bits_per_weight": round(8 * v.size / parameters, 2) if v.size and parameters else None}
                      for v in repo.variants],
            "bits_per_weight": repo.model.bits_per_weight,
            "bytes_by_type": repo.model.bytes_by_type,
        }  # fmt: skip
    if spec.adapter is not None:
        kinds["adapter"] = spec.adapter.to_dict()
    return kinds


def kind_rows(spec: ModelSpec, units: str) -> list[tuple[str, str]]:
    """The GGUF variant read and the others; the adapter and its base."""
    rows = []
    if spec.gguf is not None:
        repo = spec.gguf
        others = [f"{v.quant or v.name} {format_bytes(v.size, units)}" for v in repo.variants if v != repo.chosen]
        bits = repo.model.bits_per_weight or 0
        rows.append(("GGUF", f"{repo.chosen.name} ({bits:.2f} bits/weight)"
                     + (f" · other variants: {', '.join(others)}" if others else "")))  # fmt: skip
    if spec.adapter is not None:
        a = spec.adapter
        targets = a.target_modules if isinstance(a.target_modules, str) else ",".join(a.target_modules)
        saved = f" · modules_to_save {','.join(a.modules_to_save)}" if a.modules_to_save else ""
        rows.append(("Adapter", f"LoRA r={a.rank} alpha={a.alpha:g} on {targets} · {a.parameters:,} parameters "
                     f"({format_bytes(a.weights_bytes, units)}){saved} · base {a.base_model}"))  # fmt: skip
    return rows


def error_dict(model: str, error: Exception) -> dict[str, Any]:
    """CONTRACT.md's error object for one model."""
    return {"model": model, "error": error_fields(error)}


def error_fields(error: Exception) -> dict[str, str]:
    """{"type", "message"} of a failure: an HfmemError's code, or "internal" for any other exception (a bug)."""
    if isinstance(error, HfmemError):
        return {"type": error.code, "message": str(error)}
    return {"type": "internal", "message": f"internal error: {error.__class__.__name__}: {error}"}


def format_bytes(n: int | None, units: str = "gib") -> str:
    """GiB (or GB), stepping down to MiB / KiB (MB / kB) for small sizes so that nothing reads as 0.00."""
    if n is None:
        return "?"
    divisor, label = UNITS[units]
    step, smaller = (2**10, ("MiB", "KiB")) if units == "gib" else (10**3, ("MB", "kB"))
    for name in smaller:
        if n >= divisor / 10:
            break
        divisor, label = divisor // step, name
    return f"{n / divisor:,.2f} {label}"


def format_count(n: int) -> str:
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            return f"{n:,} ({n / scale:.2f}{suffix})"
    return f"{n:,}"


def render_spec(spec: ModelSpec, revision: str | None, units: str) -> str:
    """Identity, architecture, exact parameters and files, as an aligned key/value block."""
    a = spec.architecture
    where = spec.commit[:12] if spec.commit else spec.source
    heads = f"{a.num_attention_heads} heads"
    if a.attention == "mla":
        heads += f", MLA (kv_lora_rank {a.kv_lora_rank})"
    elif a.num_key_value_heads is not None:
        heads += f" / {a.num_key_value_heads} KV ({a.attention})"
    arch = [
        f"{a.model_type} ({', '.join(a.architectures) or '?'})",
        f"{a.num_hidden_layers} layers",
        f"hidden {a.hidden_size}",
        heads,
        f"head_dim {a.head_dim}",
        f"FFN {a.intermediate_size}",
        f"vocab {a.vocab_size}",
        f"context {a.max_position_embeddings}",
    ]
    if a.num_experts:
        arch.append(f"{a.num_experts} experts, {a.num_experts_per_tok} active")
    if a.sliding_window and a.layer_types:
        sliding = sum(t == "sliding_attention" for t in a.layer_types)
        arch.append(f"{sliding}/{len(a.layer_types)} layers sliding window {a.sliding_window}")
    p = spec.parameters
    params = [format_count(p.total) + ("" if p.exact else " (from config.json, approximate)")]
    if len(p.by_dtype) == 1:
        params.append(f"all {next(iter(p.by_dtype))}")
    else:
        params += [f"{dtype} {n:,}" for dtype, n in p.by_dtype.items()]
    if p.logical is not None:
        params.append(f"unpacked {format_count(p.logical)} (quantized weights, without scales)")
    params.append(f"embedding {p.embedding:,}")
    if p.active is not None:
        params.append(f"active per token {format_count(p.active)}")
    quant = ""
    if spec.quantization:
        bits = f" ({spec.quantization.bits:g}-bit)" if spec.quantization.bits else ""
        quant = f" · quantized: {spec.quantization.method}{bits}"
    files = [
        f"{format_bytes(spec.files.weights_bytes, units)} of weights",
        f"download {format_bytes(spec.files.download_bytes, units)} in {spec.files.count} files",
        f"formats: {', '.join(spec.files.formats) or 'none'}",
    ]
    rows = [
        ("Model", f"{spec.model} @ {revision or 'local'} ({where})"),
        ("Architecture", " · ".join(str(x) for x in arch)),
        ("Parameters", " · ".join(params)),
        ("Dtype", f"{spec.dtype}{quant}"),
        ("Files", " · ".join(files)),
    ]
    rows += kind_rows(spec, units)
    return tabulate([(key, one_line(value)) for key, value in rows], tablefmt="plain")


def _activation_note(report: ModelReport, units: str) -> str:
    """Activations do not shard over data-parallel GPUs: say so when they alone crowd a GPU."""
    assert report.gpu is not None
    usable = report.gpu.gpu.memory_bytes * report.gpu.usable_fraction
    notes = [
        f"\n{mode}: activations alone take {format_bytes(estimate.components['activations'], units)} per GPU, "
        "whatever the number of GPUs; --grad-checkpointing or a shorter --seq-len shrinks them."
        for mode, estimate in (("training", report.memory.training), ("lora", report.memory.lora))
        if estimate.components.get("activations", 0) > usable / 2 and not report.gpu.fits[mode]
    ]
    return "".join(notes)


def render_report(report: ModelReport, units: str = "gib", explain: bool = False, tables: bool = True) -> str:
    facts = report.memory.facts  # the tables reuse the estimate's pass over the tensors
    parts = [
        render_spec(report.spec, report.snapshot.shown_revision, units),
        render.render_breakdown(report.memory, units),
    ]
    if report.gpu is not None:
        parts.append(render.render_fit(report.gpu, units) + _activation_note(report, units))
        parts.append(render.render_limits(facts, report.settings, report.gpu.gpu))
    if tables:
        parts.append(render.render_sweep(facts, report.settings, units))
        parts.append(render.render_what_if(facts, report.settings, report.gpu, units))
    if explain:
        parts.append(render.render_explain(facts, report.settings, units))
    if report.warnings:
        parts.append("\n".join(f"warning: {one_line(w)}" for w in report.warnings))
    return "\n\n".join(parts)
