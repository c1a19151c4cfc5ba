"""Text for people: the inspect report, check verdicts and the audit table, each within a terminal's width.

Everything here only formats what the library computed (ModelReport, CheckReport, AuditRow). Remote strings are
kept to one line (untrusted.one_line); `paint` colours the words hfmem itself writes (ok / warn / fail, yes / no).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..engines import ENGINE_NAMES
from ..gpus import Gpu, aliases
from ..memory.settings import MODES, Mode
from ..untrusted import for_markdown, one_line
from .units import format_bytes, format_count, label, short_count, size
from .units import message as units_message
from .json import sentence_modules

if TYPE_CHECKING:
    from ..api import ModelReport
    from ..audit import AuditRow
    from ..checks import CheckReport
    from ..memory import Explanation, GpuFit, Limits, MemoryReport, SweepRow, WhatIfRow
    from ..spec import ModelSpec

Paint = Callable[[str, str], str]  # (text, role) -> text; roles: ok, warn, fail
# What to do, in the command line's words, for each hint a library error or finding carries.
HINTS = {
    "token": "accept the terms if it is gated, then `hf auth login`, set HF_TOKEN or pass --token",
    "max_wait": "raise --max-wait to wait longer for the Hub's rate limits",
    "timeout": "raise the limit with --timeout",
    "gpus": "`hfmem gpus` lists the known ones; or give the size with --gpu-memory GiB",
    "gpu": "give --gpu or --gpu-memory to check a fit",
    "smaller": "try --grad-checkpointing, a smaller --seq-len or --batch-size",
    "seq_len": "give a smaller --seq-len",
}


def tabulate(rows: Iterable[Sequence[object]], *args: object, **options: object) -> str:
    """tabulate.tabulate, imported on first use: its import costs tens of milliseconds of every start-up, and
    csv/jsonl output never draws a table."""
    from tabulate import tabulate as table

    return table(rows, *args, **options)  # type: ignore[arg-type]


def hinted(message: str, hint: str | None) -> str:
    """A message and, when it has one, what to do about it."""
    return f"{message} ({HINTS[hint]})" if hint in HINTS else message


WIDTH = 80  # the narrowest terminal a report is laid out for
COMPONENT_ORDER = ("weights", "adapters", "kv_cache", "gradients", "optimizer", "activations", "overhead")
MODE_HEADERS = {"inference": "inference", "training": "full training", "lora": "LoRA"}


def plain(text: str, role: str) -> str:
    return text


def render_report(
    report: ModelReport, units: str = "gib", *, width: int = WIDTH, paint: Paint = plain
) -> str:
    """Identity, parameters, the memory per mode and the fit; then the tables and formulas the report holds."""
    parts = [render_spec(report.spec, report.snapshot.shown_revision, units, width)]
    if report.memory is None:
        parts.append("\n".join(_wrapped(not_estimated(report.spec, units), width)))
    elif report.pipeline:
        parts.append(render_pipeline(report, units, width))
    else:
        parts.append(render_breakdown(report.memory, units, width))
    if report.gpu is not None:
        note = PIPELINE_FIT_NOTE if report.pipeline else FIT_NOTE
        parts.append(render_fit(report.gpu, units, width, paint, note) + _activation_note(report, units, width))
    if report.limits is not None:
        parts.append(render_limits(report.limits))
    if report.sweep:
        parts.append(render_sweep(report.sweep, units))
        parts.append(render_what_if(report.what_if, units, paint))
    if report.explanation is not None:
        parts.append(render_explain(report.explanation, units, width))
    return "\n\n".join(parts)


def not_estimated(spec: ModelSpec, units: str = "gib") -> str:
    """Why a gated repo without access has no memory estimate, and the one size the public metadata proves."""
    weights = spec.files.weights_bytes
    proves = (f"the weights alone are {format_bytes(weights, units)} as stored (from the Hub's parameter counts)"
              if weights is not None else "the public metadata gives no weight size")  # fmt: skip
    return (f"Memory: not estimated. config.json is gated, so there is no architecture to size the KV cache, "
            f"activations or training from; {proves}.")


def architecture_parts(spec: ModelSpec, dims: list[str]) -> list[str]:
    """The Architecture row (text and HTML): the model type and its `dims` (those the config does not give, such
    as an attention-free model's heads, left out); a Diffusers pipeline and its denoiser; for a gated repo
    without access, the model type and where the rest is."""
    if spec.pipeline is not None:
        denoiser = spec.pipeline.denoiser
        return [f"{spec.pipeline.class_name} (Diffusers pipeline)",
                *([f"denoiser {denoiser.name} ({denoiser.class_name})"] if denoiser else [])]  # fmt: skip
    a = spec.architecture
    kind = f"{a.model_type} ({', '.join(a.architectures) or '?'})"
    if spec.access == "gated":
        return [kind, "the rest is in config.json, which is gated"]
    return [kind, *(part for part in dims if "None" not in part)]


def render_spec(spec: ModelSpec, revision: str | None, units: str = "gib", width: int = WIDTH) -> str:
    """Identity, architecture, exact parameters and files: an aligned key/value block, values wrapped between
    their ' · ' parts."""
    a = spec.architecture
    where = spec.commit[:12] if spec.commit else spec.source
    heads = f"{a.num_attention_heads} heads"
    if a.attention == "mla":
        heads += f", MLA (kv_lora_rank {a.kv_lora_rank})"
    elif a.num_key_value_heads is not None:
        heads += f" / {a.num_key_value_heads} KV ({a.attention})"
    arch = architecture_parts(spec, [
        f"{a.num_hidden_layers} layers", f"hidden {a.hidden_size}", heads, f"head_dim {a.head_dim}",
        f"FFN {a.intermediate_size}", f"vocab {a.vocab_size}", f"context {a.max_position_embeddings}",
    ])  # fmt: skip
    public = spec.access == "gated"  # a gated repo without access: the Hub's public metadata only
    if a.num_experts:
        arch.append(f"{a.num_experts} experts, {a.num_experts_per_tok} active")
    if a.sliding_window and a.layer_types:
        sliding = sum(t == "sliding_attention" for t in a.layer_types)
        arch.append(f"{sliding}/{len(a.layer_types)} layers sliding window {a.sliding_window}")
    if a.recurrent is not None and a.layer_types:
        recurrent = sum(t in ("recurrent", "hybrid") for t in a.layer_types)
        arch.append(f"{recurrent}/{len(a.layer_types)} layers {a.recurrent.mixer} state")
    arch = [part for part in arch if "None" not in part]  # a model type or experts per token the config omits
    p = spec.parameters
    params = [format_count(p.total) + ("" if p.exact else " (from config.json, approximate)")] if not public else [
        f"{format_count(p.total)} (the Hub's count of the safetensors headers)" if p.total is not None else "unknown"]
    if len(p.by_dtype) == 1:
        params.append(f"all {next(iter(p.by_dtype))}")
    else:
        params += [f"{dtype} {n:,}" for dtype, n in p.by_dtype.items()]
    if p.logical is not None:
        params.append(f"unpacked {format_count(p.logical)} (quantized weights, without scales)")
    if p.embedding is not None:
        params.append(f"embedding {p.embedding:,}")
    if p.active is not None:
        params.append(f"active per token {format_count(p.active)}")
    if p.vision is not None:
        params.append(f"vision {p.vision:,}")
    dtype = [str(spec.dtype) if spec.dtype or not public else "unknown"]
    if spec.quantization:
        bits = f" ({spec.quantization.bits:g}-bit)" if spec.quantization.bits else ""
        dtype.append(f"quantized: {spec.quantization.method}{bits}")
    files = [
        f"{format_bytes(spec.files.weights_bytes, units)} of weights",
        f"download {format_bytes(spec.files.download_bytes, units)} in {spec.files.count} files",
        f"formats: {', '.join(spec.files.formats) or 'none'}",
    ]
    rows = {
        "Model": [f"{spec.model} @ {revision or 'local'} ({where})"],
        "Architecture": arch,
        "Parameters": params,
        "Dtype": dtype,
        "Files": files,
        **_kind_rows(spec, units),
    }
    key_width = max(map(len, rows)) + 2
    lines = []
    for key, items in rows.items():
        for i, line in enumerate(_joined([one_line(item) for item in items], width - key_width)):
            lines.append(f"{key if i == 0 else '':<{key_width}}{line}")
    return "\n".join(lines)


def _kind_rows(spec: ModelSpec, units: str) -> dict[str, list[str]]:
    """The vision tower; the GGUF variant read and the others; the adapter and its base."""
    rows = {}
    v = spec.vision
    if v is not None:
        vision_bytes = spec.files.vision_bytes
        rows["Vision"] = [v.kind, f"{v.num_hidden_layers} layers", f"hidden {v.hidden_size}", f"{v.num_attention_heads} heads",
                          f"patch {v.patch_size}"]  # fmt: skip
        if v.grid_pinpoints:
            rows["Vision"].append(f"any resolution: {v.image_size} px crops of the best of "
                                  f"{len(v.grid_pinpoints)} grids")  # fmt: skip
        elif v.dynamic:
            merged = v.spatial_merge_size**2
            rows["Vision"].append(f"dynamic resolution: 1 token per {merged} patch{'es' * (merged > 1)}")
        elif v.tokens_per_image is not None:
            rows["Vision"].append(f"{v.image_size}x{v.image_size} px: {v.tokens_per_image} tokens per image")
        if vision_bytes:
            rows["Vision"].append(f"weights {format_bytes(vision_bytes, units)} (with the projector)")
    if spec.gguf is not None:
        repo = spec.gguf
        others = [f"{v.quant or v.name} {format_bytes(v.size, units)}" for v in repo.variants if v != repo.chosen]
        bits = repo.model.bits_per_weight or 0
        rows["GGUF"] = [f"{repo.chosen.name} ({bits:.2f} bits/weight)"] + (
            [f"other variants: {', '.join(others)}"] if others else [])  # fmt: skip
    if spec.adapter is not None:
        a = spec.adapter
        targets = a.target_modules if isinstance(a.target_modules, str) else ",".join(a.target_modules)
        rows["Adapter"] = [f"LoRA r={a.rank} alpha={a.alpha:g} on {targets}", f"{a.parameters:,} parameters "
                           f"({format_bytes(a.weights_bytes, units)})"]  # fmt: skip
        rows["Adapter"] += [f"modules_to_save {','.join(a.modules_to_save)}"] * bool(a.modules_to_save)
        rows["Adapter"].append(f"base {a.base_model}")
    if spec.pipeline is not None:
        pipeline = spec.pipeline
        rows["Components"] = [
            f"{c.name} {short_count(sum(t.numel * t.count for t in pipeline.tensors(c)))} "
            f"({format_bytes(sum(t.nbytes * t.count for t in pipeline.tensors(c)), units)}"
            f"{', ' + str(c.chosen(pipeline.variant)) if c.chosen(pipeline.variant) else ''})"
            for c in pipeline.components
        ]  # fmt: skip
        rows["Components"] += [f"variants: {', '.join(pipeline.variants)}"] * bool(pipeline.variants)
    if spec.sentence is not None:
        rows["Modules"] = [f"{m['path'] or '.'} {m['type']}" + (f" {m['parameters']:,}" if m["parameters"] else "")
                           for m in sentence_modules(spec)]  # fmt: skip
    return rows


def render_breakdown(memory: MemoryReport, units: str = "gib", width: int = WIDTH) -> str:
    """One column per mode, one row per component, then the total; the settings they are for above."""
    by_mode = memory.by_mode()
    present = {name for est in by_mode.values() for name in est.components}
    names = [n for n in COMPONENT_ORDER if n in present] + sorted(present - set(COMPONENT_ORDER))
    rows = [[name, *(size(est.components[name], units) if name in est.components else "" for est in by_mode.values())]
            for name in names]  # fmt: skip
    rows.append(["total", *(size(est.total_bytes, units) for est in by_mode.values())])
    s, training, lora = memory.inference.settings, memory.training.settings, memory.lora
    heading = [
        f"Memory ({label(units)}, per GPU)",
        f"batch {s['batch_size']} x seq {s['seq_len']}" + (
            f" ({s['seq_len'] - s['image_tokens']} text + {s['images']} image{'s' * (s['images'] > 1)} x "
            f"{s['image_tokens'] // s['images']} tokens)" if s.get("images") else "")
        + (" padded" if s.get("padding") == "padded" else "")
        + (f", decoder {s['decoder_len']}" if s.get("decoder_len", s["seq_len"]) != s["seq_len"] else ""),
        *([f"KV as {ENGINE_NAMES[s['engine']]} {s['engine_version']}"] if s.get("engine") in ENGINE_NAMES else []),
        f"training {training['recipe']}/{training['optimizer']} (peak: {training['peak_phase']})",
        f"LoRA r={lora.settings['rank']} on {','.join(lora.target_modules)}{' (QLoRA)' if lora.settings['qlora'] else ''}",
    ]
    table = tabulate(rows, headers=["component", *MODE_HEADERS.values()], tablefmt="simple", disable_numparse=True,
                     colalign=("left", "right", "right", "right"))  # fmt: skip
    cpu = f"CPU RAM to run inference without a GPU: {size(memory.cpu.total_bytes, units)} {label(units)}"
    if memory.cpu.settings["pickle_only"]:
        cpu += " (pickle checkpoint: torch.load holds a second copy while loading)"
    llamacpp = []
    if s.get("engine") == "llamacpp":
        host = s["host"]
        llamacpp = _joined([
            f"llama.cpp: {s['n_gpu_layers']} of {memory.facts.dims.layers + 1} layers on the GPU (output layer "
            "included)",
            f"host RAM {size(sum(host.values()), units)} {label(units)} (weights {size(host['weights'], units)}, KV "
            f"{size(host['kv_cache'], units)})",
            f"n_ctx {s['n_ctx']}", f"KV {s['kv_dtype']}"], width)  # fmt: skip
    lines = [*_joined([one_line(h) for h in heading], width), table, *_wrapped(lora.peft_line, width),
             *_wrapped(cpu, width), *llamacpp]  # fmt: skip
    return "\n".join(lines)


def render_pipeline(report: ModelReport, units: str = "gib", width: int = WIDTH) -> str:
    """A Diffusers pipeline's run: each component's weights and the activations of its phase, then the totals with
    every component resident and with model CPU offload, and what training and LoRA hold."""
    run, memory = report.pipeline, report.memory
    assert run is not None and memory is not None
    heading = [f"Memory ({label(units)}, per GPU)", f"{run.height}x{run.width} image", f"batch {run.batch_size}"
               + (f" (denoiser x{run.guidance_batch // run.batch_size}: guidance)" if run.guidance_batch > run.batch_size
                  else ""), f"latent {run.latent[0]}x{run.latent[1]}", f"{run.dtype}"]  # fmt: skip
    if run.denoiser_tokens:
        heading.append(f"{run.denoiser_tokens:,} denoiser tokens")
    rows = [[one_line(c.name), size(c.weights_bytes, units), size(c.activations_bytes + c.upcast_bytes, units),
             "modelled" if c.modelled else "rule of thumb" if c.activations_bytes else "not modelled"]
            for c in run.components]  # fmt: skip
    table = tabulate(rows, headers=["component", "weights", "activations", "activations are"], tablefmt="simple",
                     disable_numparse=True, colalign=("left", "right", "right", "left"))  # fmt: skip
    totals = [
        f"all resident {size(run.resident_bytes, units)} {label(units)} (weights {size(run.weights_bytes, units)} "
        f"+ the largest phase's activations {size(run.activations_bytes, units)} + overhead "
        f"{size(run.overhead_bytes, units)})",
        f"model CPU offload {size(run.offload_bytes, units)} {label(units)} (one component at a time)",
        f"training {size(memory.training.total_bytes, units)}, LoRA r={memory.lora.settings['rank']} on "
        f"{','.join(memory.lora.target_modules)} {size(memory.lora.total_bytes, units)} {label(units)} (the "
        "denoiser's states; activations not modelled)",
    ]
    return "\n".join([*_joined(heading, width), table, *(line for t in totals for line in _wrapped(t, width))])


FIT_NOTE = "GPUs needed: weights and KV heads split for inference; ZeRO-3 sharding of model states for training."
PIPELINE_FIT_NOTE = ("GPUs needed: for inference each component whole on one GPU (device_map=\"balanced\"); ZeRO-3 "
                     "sharding of the denoiser's states for training.")


def render_fit(fit: GpuFit, units: str = "gib", width: int = WIDTH, paint: Paint = plain, note: str = FIT_NOTE) -> str:
    rows = [
        [mode, size(fit.totals[mode], units), _yes_no(fit.fits[mode], paint),
         fit.gpus_needed[mode] if fit.gpus_needed[mode] is not None else "none suffices"]
        for mode in MODES
    ]  # fmt: skip
    heading = (
        f"GPU {fit.gpu.name}: {size(fit.gpu.memory_bytes, units)} {label(units)}, "
        f"{size(fit.usable_bytes, units)} usable ({fit.usable_fraction:.0%})"
    )
    table = tabulate(rows, headers=["mode", f"needs ({label(units)})", "fits", "GPUs needed"], tablefmt="simple",
                     disable_numparse=True)  # fmt: skip
    return "\n".join([*_wrapped(one_line(heading), width), table, *_wrapped(note, width)])


def render_limits(limits: Limits) -> str:
    """The inverse answers: the largest context and the largest batch that fit the GPU, per mode."""
    rows = [[m, limits.max_seq_len[m] or "none", limits.max_batch_size[m] or "none"] for m in MODES]
    heading = (f"Largest that fits on {one_line(limits.gpu.name)} (context at batch {limits.batch_size}; batch at seq "
               f"{limits.seq_len})")  # fmt: skip
    return heading + "\n" + tabulate(rows, headers=["mode", "max context", "max batch"], tablefmt="simple",
                                     disable_numparse=True)  # fmt: skip


def render_sweep(rows: Sequence[SweepRow], units: str = "gib") -> str:
    body = [[r.seq_len, r.batch_size, *(size(r.totals[m], units) for m in MODES)] for r in rows]
    table = tabulate(body, headers=["seq", "batch", *MODE_HEADERS.values()], tablefmt="simple",
                     disable_numparse=True, colalign=("right",) * 5)  # fmt: skip
    return f"Sweep ({label(units)} per GPU; other settings as chosen)\n{table}"


def render_what_if(rows: Sequence[WhatIfRow], units: str = "gib", paint: Paint = plain) -> str:
    with_gpu = any(row.fits is not None for row in rows)
    body = [[row.mode, row.change, size(row.total_bytes, units), size(row.saving_bytes, units)]
            + ([_yes_no(bool(row.fits), paint)] if with_gpu else []) for row in rows]  # fmt: skip
    headers = ["mode", "change", f"total ({label(units)})", "saves"] + (["fits"] if with_gpu else [])
    notes = [f"{row.mode}, {row.change}: saves nothing, {row.reason}" for row in rows if row.reason]
    return (f"What if ({label(units)} per GPU; one change at a time, savings are not additive)\n"
            + tabulate(body, headers=headers, tablefmt="simple", disable_numparse=True)
            + "".join("\n" + line for note in notes for line in _wrapped(note, WIDTH)))  # fmt: skip


def render_explain(explanation: Explanation, units: str = "gib", width: int = WIDTH) -> str:
    """Every formula with its inputs, then the rules of thumb beside hfmem's figures; columns wrapped to fit."""
    parts = []
    for mode, formulas in explanation.formulas.items():
        rows = [[f.name, f.expression, _inputs(f.inputs), size(f.result_bytes, units), "exact" if f.exact else "model"]
                for f in formulas]  # fmt: skip
        parts.append(f"{mode} formulas ({label(units)})")
        parts.append(tabulate(rows, headers=["term", "formula", "inputs", label(units), "kind"], tablefmt="simple",
                              disable_numparse=True, maxcolwidths=_share(width - 20, (3, 5, 4)) + [None, None]))
    rules = [
        [r.mode, r.name, r.source, size(r.rule_bytes, units), size(r.hfmem_bytes, units),
         f"{(r.rule_bytes / r.hfmem_bytes - 1) * 100:+.0f}%" if r.hfmem_bytes else ""]
        for r in explanation.rules
    ]  # fmt: skip
    parts.append(f"Rules of thumb vs hfmem ({label(units)})")
    parts.append(tabulate(rules, headers=["mode", "rule", "source", "rule", "hfmem", "vs hfmem"], tablefmt="simple",
                          disable_numparse=True, maxcolwidths=[None, *_share(width - 45, (1, 2)), None, None, None]))
    return "\n".join(parts)


def render_check(check: CheckReport, units: str = "gib", width: int = WIDTH, paint: Paint = plain) -> str:
    """One verdict line per check under the model's identity, then the overall result. Messages quote the repo's
    own names (files, tensors, dtypes), so each is kept to one line, then wrapped to the width."""
    s = check.snapshot
    where = f" @ {s.shown_revision} ({s.commit[:12]})" if s.commit else ""
    code_width = max(len(f.code) for f in check.findings)
    indent = 6 + code_width + 2
    lines = [one_line(s.model + where)]
    for f in check.findings:
        message = _wrapped(hinted(one_line(units_message(f.parts, units)), f.hint), width - indent)
        lines.append(f"{paint(f'{f.level.value:<4}', f.level.value)}  {f.code:<{code_width}}  {message[0]}")
        lines += [" " * indent + rest for rest in message[1:]]
    failed = sum(f.level.value == "fail" for f in check.findings)
    warned = sum(f.level.value == "warn" for f in check.findings)
    verdict = paint("passed", "ok") if check.passed else paint(f"failed ({failed} of {len(check.findings)} checks)",
                                                                "fail")  # fmt: skip
    if warned:
        verdict += f", {warned} warning{'s' * (warned > 1)}"
    return "\n".join([*lines, f"result: {verdict}"])


def render_audit_table(rows: Iterable[AuditRow], units: str = "gib", width: int = WIDTH, paint: Paint = plain) -> str:
    """The audit table within `width`: one row per model (a long name wraps), sizes in one unit, the fits and serve
    columns only when some row has them. A failed row shows its error type, and the failures are listed under the
    table with their messages shortened to a line (the whole message is in the CSV and JSON output)."""
    rows = list(rows)
    headers, align, body, show_fits = _audit_cells(rows, units, paint)
    table = _fitted(body, headers, align, width, wrappable=[7, 0] if show_fits else [0], droppable=2)
    lines = [table, _audit_legend(units, show_fits)]
    failed = [row for row in rows if row.error]
    if failed:
        lines.append("errors:")
        lines += [_shortened(f"  {_shortened(one_line(row.model), 30)}: {_error_text(row)}", width) for row in failed]
    return "\n".join(lines)


def render_audit_markdown(rows: Iterable[AuditRow], units: str = "gib") -> str:
    """The audit table as Markdown to paste into an issue or a wiki (GitHub's table syntax): the text table's cells,
    every one escaped (a remote string adds no link, image or column), then the failures with their whole
    messages."""
    rows = list(rows)
    headers, align, body, show_fits = _audit_cells(rows, units, plain)
    cells = [[for_markdown(cell) for cell in cells] for cells in body]
    lines = [tabulate(cells, headers=headers, tablefmt="pipe", colalign=align, disable_numparse=True), "",
             _audit_legend(units, show_fits)]  # fmt: skip
    failed = [row for row in rows if row.error]
    if failed:
        lines += ["", "Errors:", ""]
        lines += [f"- {for_markdown(row.model)}: {for_markdown(_error_text(row))}" for row in failed]
    return "\n".join(lines)


def _audit_legend(units: str, show_fits: bool) -> str:
    return f"sizes in {label(units)}" + (f"; fits: {', '.join(FIT_NAMES.values())}" if show_fits else "")


def _audit_cells(rows: list[AuditRow], units: str, paint: Paint) -> tuple[list[str], list[str], list[list[str]], bool]:
    """(headers, alignments, one list of cells per row, whether the fits column is there) of the audit table."""
    show_fits = any(row.fits is not None for row in rows)
    show_serve = any(row.serve for row in rows)
    headers = ["model", "params", "dtype", "weights", "inference", "training", "LoRA"]
    headers += ["fits"] * show_fits + ["KV tokens", "concurrency", "starts"] * show_serve
    body = []
    for row in rows:
        cells = [one_line(row.model)]
        if row.error is None and row.totals is not None:
            cells += [short_count(row.params or 0), one_line(row.dtype or "")]  # exact in CSV and JSON
            cells += [size(row.weights or 0, units), *(size(row.totals[m], units) for m in MODES)]
        elif row.error is None:  # a gated repo without access: what the public metadata proves
            cells += [short_count(row.params) if row.params is not None else "?", one_line(row.dtype or "")]
            cells += [size(row.weights, units) if row.weights is not None else "?", *["gated"] * len(MODES)]
        else:
            cells += [paint("error", "fail"), one_line(row.error.type if row.error else "")] + [""] * 4
        cells += [fits_text(row.fits, short=True)] * show_fits
        if show_serve:
            serve = row.serve
            cells += [f"{serve.kv_cache_tokens:,}", f"{serve.max_concurrency:.2f}x", "yes" if serve.starts else "no"
                      ] if serve else [""] * 3  # fmt: skip
        body.append(cells)
    align = ["left", "right", "left", "right", "right", "right", "right"] + ["left"] * show_fits
    align += ["right", "right", "left"] * show_serve
    return headers, align, body, show_fits


FIT_NAMES = {"inference": "inf", "training": "train", "lora": "lora"}


def _fitted(body: list[list[str]], headers: list[str], align: list[str], width: int, *, wrappable: list[int],
            droppable: int) -> str:
    """A table within `width` if it can be: first the `droppable` column goes (what it says is in the CSV and JSON
    output), then the `wrappable` text columns wrap in turn (names to 10 characters, fits to one mode a line)."""

    def table(limits: list[int | None] | None = None) -> str:
        return tabulate(body, headers, tablefmt="simple", disable_numparse=True, colalign=align, maxcolwidths=limits)

    def widest(text: str) -> int:
        return max(map(len, text.splitlines()))

    text = table()
    if widest(text) <= width:
        return text
    for cells in (*body, headers):
        del cells[droppable]
    del align[droppable]
    wrappable = [column - (column > droppable) for column in wrappable]
    text = table()
    over = widest(text) - width
    if over <= 0:
        return text
    limits: list[int | None] = [None] * len(headers)
    for column in wrappable:
        longest = max(len(cells[column]) for cells in body)
        limit = max(5 if column else 10, longest - over)
        limits[column] = limit
        over -= longest - limit
    return table(limits)


def _error_text(row: AuditRow) -> str:
    return f"{row.error.type}: {hinted(one_line(row.error.message), row.error.hint)}" if row.error else ""


def _shortened(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 1] + "…"


def fits_text(fits: Mapping[Mode, bool] | None, short: bool = False) -> str:
    """The modes that fit, e.g. "inference lora" ("inf lora" when `short`); "none" when none does; "" without a
    GPU."""
    if fits is None:
        return ""
    return " ".join(FIT_NAMES[mode] if short else mode for mode, ok in fits.items() if ok) or "none"


def _activation_note(report: ModelReport, units: str, width: int) -> str:
    """Activations do not shard over data-parallel GPUs: say so when they alone crowd a GPU."""
    assert report.gpu is not None and report.memory is not None
    notes = [
        f"{mode}: activations alone take {format_bytes(estimate.components['activations'], units)} per GPU, "
        "whatever the number of GPUs; --grad-checkpointing or a shorter --seq-len shrinks them."
        for mode, estimate in ((Mode.TRAINING, report.memory.training), (Mode.LORA, report.memory.lora))
        if estimate.components.get("activations", 0) > report.gpu.usable_bytes / 2 and not report.gpu.fits[mode]
    ]
    return "".join("\n\n" + "\n".join(_wrapped(note, width)) for note in notes)


def _yes_no(fits: bool, paint: Paint) -> str:
    return paint("yes", "ok") if fits else paint("no", "fail")


def _joined(items: Sequence[str], width: int) -> list[str]:
    """Items joined by ' · ', a new line where the next would pass `width` (an item longer than that is wrapped)."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 3 + len(item) <= width:
            lines[-1] += " · " + item
        else:
            lines += _wrapped(item, width)
    return lines


def _wrapped(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, max(width, 20), break_on_hyphens=False) or [""]


def _share(total: int, weights: tuple[int, ...]) -> list[int]:
    """`total` columns split in proportion to `weights` (at least 10 each)."""
    return [max(10, total * w // sum(weights)) for w in weights]


def _inputs(inputs: Mapping[str, int | float | str]) -> str:
    return ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in inputs.items())


def render_gpus(gpus: Iterable[Gpu], units: str = "gib") -> str:
    rows = [[gpu.name, size(gpu.memory_bytes, units), ", ".join(aliases(gpu.name))] for gpu in gpus]
    return tabulate(rows, headers=["GPU", label(units), "also accepted"], tablefmt="simple", disable_numparse=True,
                    colalign=("left", "right", "left"))


def one_line_summary(report: ModelReport) -> str:
    """A report in one line (its repr): the model, parameters, each mode's total, what fits."""
    spec, memory = report.spec, report.memory
    totals = (", ".join(f"{mode}={format_bytes(est.total_bytes)}" for mode, est in memory.by_mode().items())
              if memory is not None else f"{report.snapshot.access}: memory not estimated")  # fmt: skip
    fit = ""
    if report.gpu is not None:
        fits = [mode for mode, ok in report.gpu.fits.items() if ok]
        fit = f", gpu={report.gpu.gpu.name!r} fits {'/'.join(fits) or 'nothing'}"
    commit = f"@{spec.commit[:12]}" if spec.commit else ""
    count = f"{spec.parameters.total:,}" if spec.parameters.total is not None else "unknown"
    return f"{one_line(spec.model)}{commit}: {count} parameters, {totals}{fit}"
