"""The HTML report: one self-contained page per run (inline CSS and SVG drawn here, a few lines of script to sort
a table, nothing fetched), for models (`render_models`) or an audit (`render_audit`); `model_fragment` is one
model's section for notebooks. Every string that comes from a model, a repo or the user is escaped."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from html import escape
from operator import itemgetter
from typing import TYPE_CHECKING

from ..engines import ENGINE_NAMES
from ..gpus import Gpu
from ..memory.settings import MODES, Mode, Settings, usable_bytes
from .text import COMPONENT_ORDER, architecture_parts, not_estimated
from .units import format_bytes, format_count

if TYPE_CHECKING:
    from ..api import ModelReport
    from ..audit import AuditRow
    from ..memory import Estimate

MODE_NAMES = {"inference": "inference", "training": "full training", "lora": "LoRA"}
MODE_COLOURS = {"inference": "#2f6fde", "training": "#e8710a", "lora": "#1e9e5a"}
COMPONENT_COLOURS = {
    "weights": "#4e79a7",
    "adapters": "#edc948",
    "kv_cache": "#f28e2b",
    "gradients": "#76b7b2",
    "optimizer": "#59a14f",
    "activations": "#e15759",
    "overhead": "#bab0ac",
}
OTHER_COLOUR = "#9c755f"  # a component the palette does not name
GPU_COLOUR = "#c0262d"
FIT_CLASSES = {"all": "fits every mode", "some": "fits some modes", "none": "fits no mode", "error": "error"}
FIT_COLOURS = {"all": "#1e9e5a", "some": "#d4a20b", "none": "#c0262d", "error": "#6b7280", "": "#2f6fde"}
WIDTH = 1040  # every chart's width in CSS pixels (they shrink with the page)
PLOT_HEIGHT = 340  # the x-y charts' height
DASHED = ' stroke-width="2" stroke-dasharray="6 4"'  # the GPU's usable memory

CSS = """
.hfmem { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; }
body.hfmem { margin: 0; background: #f5f6f8; }
.hfmem main { max-width: 1240px; margin: 0 auto; padding: 24px; }
.hfmem h1 { font-size: 24px; margin: 0 0 16px; }
.hfmem section { background: #fff; border: 1px solid #d8dce2; border-radius: 8px; padding: 20px 24px;
  margin: 0 0 24px; }
.hfmem h2 { font-size: 20px; margin: 0 0 8px; overflow-wrap: anywhere; }
.hfmem h3 { font-size: 16px; margin: 22px 0 6px; }
.hfmem .note { color: #57606a; margin: 4px 0; }
.hfmem dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 8px 0; }
.hfmem dt { font-weight: 600; }
.hfmem dd { margin: 0; overflow-wrap: anywhere; }
.hfmem table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
.hfmem th, .hfmem td { padding: 4px 12px; border-bottom: 1px solid #e4e7eb; text-align: right; }
.hfmem th:first-child, .hfmem td:first-child, .hfmem .text { text-align: left; }
.hfmem thead th { border-bottom: 2px solid #b8bec6; }
.hfmem tr.total td { font-weight: 600; border-top: 2px solid #b8bec6; }
.hfmem th button { font: inherit; font-weight: 600; border: 0; background: none; padding: 0; cursor: pointer; }
.hfmem th[aria-sort=ascending] button::after { content: " \\25B2"; }
.hfmem th[aria-sort=descending] button::after { content: " \\25BC"; }
.hfmem tr.fit-all td { background: #e3f5e9; }
.hfmem tr.fit-some td { background: #fdf5d8; }
.hfmem tr.fit-none td { background: #fbe3e4; }
.hfmem tr.fit-error td { background: #eceef1; color: #6b1d1d; }
.hfmem td { white-space: nowrap; }
.hfmem table.audit { font-size: 14px; }
.hfmem table.audit th, .hfmem table.audit td { padding: 4px 8px; }
.hfmem table.audit td:first-child { white-space: normal; overflow-wrap: anywhere; min-width: 200px; }
.hfmem td.error { white-space: normal; min-width: 220px; text-align: left; overflow-wrap: anywhere; font-size: 13px; }
.hfmem .scroll { overflow-x: auto; }
.hfmem caption { caption-side: bottom; text-align: left; padding-top: 4px; }
.hfmem .legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 0; margin: 6px 0; }
.hfmem .legend li::before { content: ""; display: inline-block; width: 12px; height: 12px; margin-right: 6px;
  vertical-align: -1px; border-radius: 2px; background: var(--swatch); }
.hfmem svg.chart { display: block; max-width: 100%; height: auto; }
.hfmem svg text { font: 12px system-ui, sans-serif; fill: #3d444d; }
.hfmem ul.warnings { color: #8a4b00; }
#script-errors { color: #b00020; background: #fff0f0; border: 2px solid #b00020; padding: 8px; margin: 0; }
#script-errors:empty { display: none; }
"""

# Sorting: a header's button sorts its column (numbers by data-value, blanks last); a second click reverses.
# `#sort=KEY` in the address clicks KEY's header once the page is loaded.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th button").forEach(function (button) {
  button.addEventListener("click", function () {
    var th = button.parentElement, column = th.cellIndex, body = th.closest("table").tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending", numeric = th.dataset.type === "number";
    th.parentElement.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    function key(row) { var cell = row.cells[column]; return cell.dataset.value ?? cell.textContent; }
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");
      return (numeric ? x - y : x.localeCompare(y)) * (ascending ? 1 : -1);
    }).forEach(function (row) { body.appendChild(row); });
  });
});
var wanted = /^#sort=([\\w-]+)$/.exec(location.hash);
if (wanted) document.querySelector('th[data-key="' + wanted[1] + '"] button').click();
"""

ERROR_SCRIPT = """
window.onerror = function (message, source, line) {
  document.getElementById("script-errors").textContent += "script error: " + message + " (line " + line + ")\\n";
};
"""


def render_models(reports: Sequence[ModelReport]) -> str:
    """The page for `hfmem inspect`: one section per model (best with reports made with `tables=True`)."""
    names = ", ".join(report.spec.model for report in reports)
    return _document(f"hfmem: {names}", "".join(_model_section(report) for report in reports))


def model_fragment(report: ModelReport) -> str:
    """One model's section with its own (scoped) style: what a notebook shows for a ModelReport."""
    return f'<div class="hfmem"><style>{CSS}</style>{_model_section(report)}</div>'


def render_audit(rows: Sequence[AuditRow], gpu: Gpu | None = None, settings: Settings | None = None) -> str:
    """The page for `hfmem audit` (`gpu` and `settings` as the audit had them): a sortable table coloured by fit,
    and parameters against inference memory."""
    usable = usable_bytes(gpu, settings or Settings()) if gpu else None
    where = f" on {escape(gpu.name)} ({format_bytes(usable)} usable)" if gpu else ""
    body = (
        f"<section><h2>{len(rows)} models{where}</h2>"
        f"{_legend((FIT_COLOURS[key], text) for key, text in FIT_CLASSES.items()) if gpu else ''}"
        f"{_audit_table(rows)}<h3>Parameters against inference memory</h3>{_scatter(rows)}</section>"
    )
    return _document(f"hfmem audit: {len(rows)} models", body)


# --- page -------------------------------------------------------------------------------------------------------


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f'<body class="hfmem">\n<pre id="script-errors" role="alert"></pre>\n<script>{ERROR_SCRIPT}</script>\n'
        f"<main>\n<h1>{escape(title)}</h1>\n{body}\n</main>\n<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _model_section(report: ModelReport) -> str:
    spec, memory = report.spec, report.memory
    warnings = "".join(f"<li>{escape(w)}</li>" for w in report.warnings)
    if memory is None:  # a gated repo without access
        return (f"<section><h2>{escape(spec.model)}</h2>{_identity(report)}"
                f'<h3>Memory per mode</h3><p class="note">{escape(not_estimated(spec))}</p>'
                f'<h3>Warnings</h3><ul class="warnings">{warnings}</ul></section>')  # fmt: skip
    s, lora = memory.inference.settings, memory.lora
    engine = f" · KV as {ENGINE_NAMES[s['engine']]} {s['engine_version']}" if s.get("engine") in ENGINE_NAMES else ""
    run = report.pipeline
    shape = (f"{run.height}x{run.width} image · batch {run.batch_size} · latent {run.latent[0]}x{run.latent[1]}"
             if run is not None else f"batch {s['batch_size']} × seq {s['seq_len']}{engine}")  # fmt: skip
    settings = (
        f"{shape} · training {memory.training.settings['recipe']}/"
        f"{memory.training.settings['optimizer']} · LoRA r={lora.settings['rank']} on "
        f"{', '.join(lora.target_modules)}{' (QLoRA)' if lora.settings['qlora'] else ''} · per GPU"
    )
    curve = ""
    if report.curve:
        curve = f"<h3>Memory against sequence length (batch {s['batch_size']})</h3>{_curve_chart(report)}"
    return (
        f"<section><h2>{escape(spec.model)}</h2>{_identity(report)}"
        f'<h3>Memory per mode</h3><p class="note">{escape(settings)}</p>{_breakdown_chart(report)}'
        f"{_breakdown_table(report)}{_pipeline_table(report)}{curve}"
        + (f'<h3>Warnings</h3><ul class="warnings">{warnings}</ul>' if warnings else "")
        + "</section>"
    )


def _identity(report: ModelReport) -> str:
    spec, a, p = report.spec, report.spec.architecture, report.spec.parameters
    where = f"{report.snapshot.shown_revision or 'local'} ({spec.commit[:12] if spec.commit else spec.source})"
    arch = architecture_parts(spec, [f"{a.num_hidden_layers} layers", f"hidden {a.hidden_size}",
                                     f"context {a.max_position_embeddings}"])  # fmt: skip
    if spec.access == "gated":
        params = "unknown" if p.total is None else f"{p.total:,} (the Hub's count of the safetensors headers)"
    else:
        params = f"{p.total:,}" + (" (exact)" if p.exact else " (from config.json, approximate)")
    if p.active is not None:
        params += f" · active per token {format_count(p.active)}"
    if p.vision is not None:
        params += f" · vision tower and projector {p.vision:,}"
    rows = {
        "Revision": where,
        "Architecture": " · ".join(arch),
        "Parameters": params,
        "By dtype": " · ".join(f"{dtype} {n:,}" for dtype, n in p.by_dtype.items()),
        "Dtype": f"{spec.dtype}" + (f" · quantized: {spec.quantization.method}" if spec.quantization else ""),
        "Weights": f"{format_bytes(spec.files.weights_bytes)} · download {format_bytes(spec.files.download_bytes)}",
    }
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{escape(v)}</dd>" for k, v in rows.items()) + "</dl>"


def _components(estimates: Iterable[Estimate]) -> list[str]:
    """The components any mode has, in the usual order."""
    present = {name for est in estimates for name in est.components}
    return [n for n in COMPONENT_ORDER if n in present] + sorted(present - set(COMPONENT_ORDER))


def _breakdown_table(report: ModelReport) -> str:
    """Components (rows) by mode (columns), the totals, and the fit when a GPU was given."""
    assert report.memory is not None
    estimates = report.memory.by_mode().values()
    rows = [_row(name, [_size(est.components.get(name)) for est in estimates]) for name in _components(estimates)]
    rows.append(_row("total", [format_bytes(est.total_bytes) for est in estimates], ' class="total"'))
    if report.gpu:
        fit, name = report.gpu, report.gpu.gpu.name
        rows.append(_row(f"fits one {name}", ["yes" if fit.fits[m] else "no" for m in MODES]))
        rows.append(_row(f"{name}s needed", [str(fit.gpus_needed[m] or "too many") for m in MODES]))
    head = "".join(f'<th scope="col">{MODE_NAMES[m]}</th>' for m in MODES)
    return (
        f'<table class="breakdown"><caption class="note">GiB per GPU; MiB or KiB when small</caption>'
        f'<thead><tr><th scope="col">component</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _pipeline_table(report: ModelReport) -> str:
    """A Diffusers pipeline's components: weights and the activations of each one's phase, and the two totals."""
    run = report.pipeline
    if run is None:
        return ""
    rows = [_row(c.name, [format_bytes(c.weights_bytes), format_bytes(c.activations_bytes + c.upcast_bytes),
                          "modelled" if c.modelled else "rule of thumb" if c.activations_bytes else "not modelled"])
            for c in run.components]  # fmt: skip
    rows.append(_row("all resident", [format_bytes(run.resident_bytes), "", "with overhead"], ' class="total"'))
    rows.append(_row("model CPU offload", [format_bytes(run.offload_bytes), "", "one component at a time"]))
    return (
        '<table class="breakdown"><caption class="note">Components at inference</caption><thead><tr>'
        '<th scope="col">component</th><th scope="col">weights</th><th scope="col">activations</th>'
        f'<th scope="col">activations are</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _row(header: str, cells: Iterable[str], attributes: str = "") -> str:
    return f'<tr{attributes}><th scope="row">{escape(header)}</th>' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _size(n: int | None) -> str:
    return "" if n is None else format_bytes(n)


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return '<ul class="legend">' + "".join(f'<li style="--swatch:{c}">{escape(t)}</li>' for c, t in items) + "</ul>"


# --- charts -----------------------------------------------------------------------------------------------------


def _svg(height: int, label: str, body: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="{escape(label)}">{body}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _breakdown_chart(report: ModelReport) -> str:
    """A stacked horizontal bar per mode, components left to right, and the GPU's usable memory as a line (or a
    note, when it lies far beyond the longest bar)."""
    left, right, top, row = 110, WIDTH - 110, 26, 40
    assert report.memory is not None
    estimates = report.memory.by_mode()
    names = _components(estimates.values())
    longest = max(est.total_bytes for est in estimates.values())
    usable = report.gpu.usable_bytes if report.gpu else 0
    on_scale = usable <= 2 * longest
    scale = (right - left) / max(longest, usable if on_scale else 0, 1)
    parts = []
    for i, (mode, est) in enumerate(estimates.items()):
        y, x = top + i * row, float(left)
        parts.append(_text(left - 10, y + 18, MODE_NAMES[mode], "end"))
        for name in names:
            width = est.components.get(name, 0) * scale
            if width > 0:
                title = f"{MODE_NAMES[mode]} · {name}: {format_bytes(est.components[name])}"
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="26" '
                    f'fill="{COMPONENT_COLOURS.get(name, OTHER_COLOUR)}"><title>{escape(title)}</title></rect>'
                )
                x += width
        parts.append(_text(x + 8, y + 18, format_bytes(est.total_bytes), extra=' font-weight="600"'))
    height = top + 3 * row
    if report.gpu:
        note = f"{report.gpu.gpu.name} usable {format_bytes(usable)}"
        if on_scale:
            x = left + usable * scale
            parts.append(_line(x, top - 8, x, height - 6, GPU_COLOUR, DASHED))
            parts.append(_text(x, top - 12, note, "middle", f' fill="{GPU_COLOUR}"'))
        else:
            parts.append(_text(WIDTH - 4, top - 12, f"{note} (beyond the scale) →", "end", f' fill="{GPU_COLOUR}"'))
    label = f"Memory per mode by component for {report.spec.model}: " + ", ".join(
        f"{MODE_NAMES[m]} {format_bytes(est.total_bytes)}" for m, est in estimates.items()
    )
    legend = _legend((COMPONENT_COLOURS.get(n, OTHER_COLOUR), n) for n in names)
    return _svg(height, label, "".join(parts)) + legend


class _Axis:
    """A log-scale axis from `low` to `high` (in the axis unit) mapped onto pixels `start` to `end`."""

    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        self.low, self.span, self.start, self.end = math.log(low), math.log(high / low) or 1.0, start, end

    def __call__(self, value: float) -> float:
        return self.start + (math.log(value) - self.low) / self.span * (self.end - self.start)


def _log_ticks(low: float, high: float) -> list[float]:
    """Ticks at 1, 2, 5 x 10^k (decades alone when those are too many) from below `low` to above `high`."""
    low, high = low / 1.25, max(high, low) * 1.25  # a margin, so that no point sits on the frame
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for steps in ((1, 2, 5), (1,)):
        ticks = [m * 10.0**e for e in decades for m in steps]
        ticks = ticks[bisect_right(ticks, low) - 1 : bisect_left(ticks, high) + 1]
        if len(ticks) <= 8:
            break
    return ticks


def _memory_unit(high_bytes: int) -> tuple[int, str]:
    """The unit a memory axis reaching `high_bytes` is labelled in, as format_bytes would choose."""
    return next(((d, name) for d, name in ((2**30, "GiB"), (2**20, "MiB")) if high_bytes >= d / 10), (2**10, "KiB"))


def _si(n: float) -> str:
    scale, suffix = next(((s, x) for s, x in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")) if n >= s),
                         (1, ""))  # fmt: skip
    return f"{n / scale:g}{suffix}"


def _seq(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def _axes(x_low: float, x_high: float, y_low: float, y_high: float) -> tuple[_Axis, _Axis]:
    """An x-y chart's axes, its plot area inset for the tick labels and axis titles."""
    return _Axis(x_low, x_high, 76, WIDTH - 24), _Axis(y_low, y_high, PLOT_HEIGHT - 52, 14)


def _plot(
    x: _Axis, y: _Axis, x_ticks: Iterable[tuple[float, str]], y_ticks: Iterable[float], x_title: str, y_title: str
) -> list[str]:
    """Grid lines, tick labels and axis titles of an x-y chart (its area spans x.start..x.end, y.end..y.start)."""
    parts = []
    for value in y_ticks:
        parts.append(_line(x.start, y(value), x.end, y(value), "#e4e7eb"))
        parts.append(_text(x.start - 8, y(value) + 4, f"{value:g}", "end"))
    for value, label in x_ticks:
        parts.append(_line(x(value), y.end, x(value), y.start, "#e4e7eb"))
        parts.append(_text(x(value), y.start + 18, label, "middle"))
    middle = (y.start + y.end) / 2
    parts.append(f'<rect x="{x.start}" y="{y.end}" width="{x.end - x.start}" height="{y.start - y.end}" '
                 'fill="none" stroke="#b8bec6"/>')  # fmt: skip
    parts.append(_text((x.start + x.end) / 2, y.start + 38, x_title, "middle"))
    parts.append(_text(16, middle, y_title, "middle", f' transform="rotate(-90 16 {middle:.1f})"'))
    return parts


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, extra: str = "") -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"{extra}/>'


def _curve_chart(report: ModelReport) -> str:
    """Total memory per mode against sequence length (both axes log), and the GPU's usable memory as a line."""
    usable = report.gpu.usable_bytes if report.gpu else None
    values = [t for row in report.curve for t in row.totals.values()] + ([usable] if usable else [])
    divisor, unit = _memory_unit(max(values))
    y_ticks = _log_ticks(min(values) / divisor, max(values) / divisor)
    seq_lens = [row.seq_len for row in report.curve]
    x, y = _axes(seq_lens[0], max(seq_lens[-1], seq_lens[0] * 2), y_ticks[0], y_ticks[-1])
    labelled = [n for i, n in enumerate(seq_lens) if i == 0 or x(n) - x(seq_lens[i - 1]) >= 34]  # no overlap
    x_ticks = [(n, _seq(n)) for n in labelled]
    parts = _plot(x, y, x_ticks, y_ticks, "sequence length (tokens, log scale)", f"{unit} (log scale)")
    if report.gpu and usable:
        py = y(usable / divisor)
        parts.append(_line(x.start, py, x.end, py, GPU_COLOUR, DASHED))
        note = f"{report.gpu.gpu.name} usable {format_bytes(usable)}"
        below = py - 20 < y.end  # too near the top for the note to sit above the line
        parts.append(_text(x.end - 6, py + 16 if below else py - 6, note, "end", f' fill="{GPU_COLOUR}"'))
    for mode in MODES:
        points = [(x(row.seq_len), y(row.totals[mode] / divisor), row) for row in report.curve]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{MODE_COLOURS[mode]}" stroke-width="2.5"/>')
        parts += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{MODE_COLOURS[mode]}"><title>'
            f"{MODE_NAMES[mode]} at seq {row.seq_len}: {format_bytes(row.totals[mode])}</title></circle>"
            for px, py, row in points
        ]
    label = f"Total memory per mode against sequence length for {report.spec.model}"
    legend = [(MODE_COLOURS[m], MODE_NAMES[m]) for m in MODES] + [(GPU_COLOUR, "GPU usable memory")] * bool(usable)
    return _svg(PLOT_HEIGHT, label, "".join(parts)) + _legend(legend)


# --- audit ------------------------------------------------------------------------------------------------------

AUDIT_COLUMNS = (  # key, header, numeric
    ("model", "model", False),
    ("params", "params", True),
    ("dtype", "dtype", False),
    ("weights", "weights", True),
    ("inference", "inference", True),
    ("training", "training", True),
    ("lora", "LoRA", True),
    ("fits", "fits", False),
    ("error", "error", False),
)
NUMBER, TEXT = 'data-type="number"', 'class="text"'  # how a column header says how its column sorts and aligns


def _fit_class(row: AuditRow) -> str:
    """all / some / none / error, or "" when no GPU was given."""
    if row.error:
        return "error"
    if row.fits is None:
        return ""
    return "all" if all(row.fits.values()) else "some" if any(row.fits.values()) else "none"


def _audit_table(rows: Sequence[AuditRow]) -> str:
    head = "".join(
        f'<th scope="col" data-key="{key}" {NUMBER if numeric else TEXT}><button type="button">{title}</button></th>'
        for key, title, numeric in AUDIT_COLUMNS
    )
    body = "".join(map(_audit_row, rows))
    table = f'<table class="sortable audit"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _audit_row(row: AuditRow) -> str:
    data = row.to_dict()
    fits = {"all": "all", "none": "none", "some": " ".join(m for m, ok in (row.fits or {}).items() if ok)}
    cells = [f'<td class="text">{escape(row.model)}</td>']
    params = data["params"]
    cells.append(f'<td data-value="{_value(params)}">{"" if params is None else f"{params:,}"}</td>')
    cells.append(f'<td class="text">{escape(data["dtype"] or "")}</td>')
    cells += [f'<td data-value="{_value(data[k])}">{_size(data[k])}</td>' for k in ("weights", *MODES)]
    fit = _fit_class(row)
    cells.append(f'<td class="text">{fits.get(fit, "")}</td>')
    cells.append(f'<td class="error">{escape(row.error.message) if row.error else ""}</td>')
    return f'<tr class="fit-{fit or "unknown"}">{"".join(cells)}</tr>'


def _value(n: int | None) -> str:
    """A number cell's sort key: the exact number, or blank (sorted last) when there is none."""
    return "" if n is None else str(n)


def _scatter(rows: Sequence[AuditRow]) -> str:
    """One dot per resolved model: parameters (log x) against inference memory (log y), coloured by fit."""
    dots = sorted(
        ((row.params, row.totals[Mode.INFERENCE], row) for row in rows if row.params and row.totals), key=itemgetter(0)
    )
    if not dots:
        return '<p class="note">No model was resolved.</p>'
    params, memory = [n for n, _, _ in dots], [total for _, total, _ in dots]
    divisor, unit = _memory_unit(max(memory))
    x_ticks, y_ticks = _log_ticks(min(params), max(params)), _log_ticks(min(memory) / divisor, max(memory) / divisor)
    x, y = _axes(x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1])
    x_labels = [(t, _si(t)) for t in x_ticks]
    parts = _plot(x, y, x_labels, y_ticks, "parameters (log scale)", f"inference {unit} (log scale)")
    for i, (n, total, row) in enumerate(dots):
        px, py = x(n), y(total / divisor)
        title = f"{row.model}: {n:,} parameters, inference {format_bytes(total)}"
        parts.append(
            f'<circle class="dot" cx="{px:.1f}" cy="{py:.1f}" r="6" fill="{FIT_COLOURS[_fit_class(row)]}" '
            f'fill-opacity="0.85" stroke="#fff"><title>{escape(title)}</title></circle>'
        )
        if len(dots) <= 12:  # labels: up-left and down-right in turn, so that neighbours stay apart
            left = px - 7 * len(row.model) > x.start and (i % 2 == 1 or px > (x.start + x.end) / 2)
            parts.append(_text(px - 9, py - 9, row.model, "end") if left else _text(px + 9, py + 18, row.model))
    label = f"Parameters against inference memory, one dot per model ({len(dots)})"
    return _svg(PLOT_HEIGHT, label, "".join(parts))
