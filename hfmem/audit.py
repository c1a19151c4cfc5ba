"""Batch audits: read a list of model references, resolve them concurrently, and give one row per model.

A model that fails is a row carrying its error (pip-audit's skipped-dependency pattern), never an exception: one bad
model cannot stop a batch. Only Ctrl-C does, and the rows finished before it are kept (see `iter_audit`).
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import IO, Any

from tabulate import tabulate

from . import engines
from .api import ModelReport, inspect_model
from .checks import MODES
from .errors import ModelRefError
from .gpus import Gpu
from .hub import HubOptions
from .memory import Settings
from .report import error_fields, format_bytes
from .untrusted import for_spreadsheet, one_line

DEFAULT_JOBS = 16  # models resolved at once; each also reads its files concurrently
DEFAULT_TIMEOUT = 120.0  # seconds one model may take, retries included
FORMATS = ("table", "csv", "json", "jsonl")
MAX_INPUT_BYTES = 16 * 2**20  # an input list: some 400,000 references
# CONTRACT.md's row, then additions. Sizes are bytes.
COLUMNS = ("model", "params", "dtype", "weights", *MODES, "fits", "error", "error_type", "commit", *engines.VERDICT)
_INLINE_COMMENT = re.compile(r"\s+#.*$")
# CSV; what Excel writes as "CSV" where the decimal mark is a comma; tab-separated values
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class RowError:
    type: str  # an HfmemError code, "timeout", or "internal" for an unexpected exception
    message: str


@dataclass(frozen=True)
class AuditRow:
    """One model of an audit: its report, or the error that stopped it."""

    model: str
    report: ModelReport | None = None
    error: RowError | None = None
    serve: engines.ServePlan | None = None  # with an engine and a GPU: how it starts

    @classmethod
    def failed(cls, model: str, error: Exception) -> AuditRow:
        return cls(model, error=RowError(**error_fields(error)))

    @property
    def fits(self) -> dict[str, bool] | None:
        """Mode -> fits on the GPU given to the audit; None without one (or on error)."""
        return self.report.gpu.to_dict()["fits"] if self.report and self.report.gpu else None

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON (sizes in bytes; `error` as in CONTRACT.md's error object)."""
        r = self.report
        memory = r.memory.by_mode() if r else {}
        return {
            "model": self.model,
            "params": r.spec.parameters.total if r else None,
            "dtype": r.spec.dtype if r else None,
            "weights": r.spec.files.weights_bytes if r else None,
            **{mode: memory[mode].total_bytes if r else None for mode in MODES},
            "fits": self.fits,
            "error": {"type": self.error.type, "message": self.error.message} if self.error else None,
            "commit": r.spec.commit if r else None,
            **engines.verdict(self.serve),
        }


def read_models(data: bytes | str) -> list[str]:
    """References from a list (one per line; `#` comments and blank lines skipped) or a CSV with a `model` column,
    separated by commas, semicolons or tabs, as spreadsheets export it (a UTF-8 byte order mark and CRLF are fine).

    Each line stands alone, so a bad one fails only its own row: bytes that are not UTF-8 stay in its reference as
    \\xNN escapes, and a line the csv module refuses (a field over its 128 KiB limit) stands whole as the reference;
    neither resolves."""
    text = data.decode("utf-8-sig", errors="backslashreplace") if isinstance(data, bytes) else data
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return []
    for delimiter in _DELIMITERS:
        header = [name.strip().lower() for name in _fields(lines[0], delimiter) or []]
        if "model" in header:
            column = header.index("model")
            return [model for line in lines[1:] if (model := _model_field(line, delimiter, column))]
    first = _INLINE_COMMENT.sub("", lines[0])
    if any(len(_fields(first, delimiter) or []) > 1 for delimiter in _DELIMITERS):
        raise ModelRefError("the input looks like CSV but has no 'model' column")
    return [_INLINE_COMMENT.sub("", line).strip() for line in lines]


def _fields(line: str, delimiter: str) -> list[str] | None:
    """The fields of one CSV line, or None when the csv module refuses it (a field over its size limit)."""
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return None


def _model_field(line: str, delimiter: str, column: int) -> str:
    """The model field of a CSV line ("" when the line is shorter); a refused line whole."""
    row = _fields(line, delimiter)
    if row is None:
        return line.strip()
    return row[column].strip() if len(row) > column else ""


def iter_audit(
    models: Sequence[str],
    settings: Settings | None = None,
    *,
    gpu: Gpu | None = None,
    revision: str | None = None,
    hub: HubOptions | None = None,
    jobs: int = DEFAULT_JOBS,
    timeout: float = DEFAULT_TIMEOUT,
    serving: engines.EngineSettings | None = None,
) -> Generator[tuple[int, AuditRow], None, None]:
    """(input index, row) for each model as it finishes; never raises for a model. With `serving` and a GPU, each
    row also carries that engine's plan (KV tokens, maximum concurrency, whether it starts).

    A model still running after `timeout` seconds gets a "timeout" row (its thread is left to finish in the
    background). Closing the iterator, or Ctrl-C while it waits, cancels the models not started yet."""
    settings = settings or Settings()
    started: dict[int, float] = {}

    def run(index: int) -> AuditRow:
        started[index] = time.monotonic()
        try:
            report = inspect_model(models[index], settings, gpu=gpu, revision=revision, hub=hub)
            serve = engines.plan(report.memory.facts, gpu, serving) if serving and gpu else None
            return AuditRow(models[index], report, serve=serve)
        except Exception as e:  # every failure is a row, unexpected ones as "internal"
            return AuditRow.failed(models[index], e)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="hfmem-audit")
    try:
        pending: dict[Future[AuditRow], int] = {pool.submit(run, i): i for i in range(len(models))}
        while pending:
            deadlines = [started[i] + timeout for i in pending.values() if i in started]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else timeout
            done, _ = wait(pending, timeout=wait_s, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
            now = time.monotonic()
            for future, i in list(pending.items()):
                if i in started and now - started[i] >= timeout:
                    del pending[future]
                    message = f"{models[i]}: no result within {timeout:g} s (raise the limit with --timeout)"
                    yield i, AuditRow(models[i], error=RowError("timeout", message))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def audit_models(
    models: Sequence[str],
    settings: Settings | None = None,
    *,
    gpu: Gpu | None = None,
    revision: str | None = None,
    hub: HubOptions | None = None,
    jobs: int = DEFAULT_JOBS,
    timeout: float = DEFAULT_TIMEOUT,
    serving: engines.EngineSettings | None = None,
) -> list[AuditRow]:
    """One row per model, in input order; a model that fails gives a row with its `error`."""
    rows = dict(iter_audit(models, settings, gpu=gpu, revision=revision, hub=hub, jobs=jobs, timeout=timeout,
                           serving=serving))
    return [rows[i] for i in range(len(models))]


def write_rows(rows: Iterable[AuditRow], fmt: str, out: IO[str], units: str = "gib") -> None:
    """Write rows as a table (sizes in `units`), CSV, a JSON array or JSON lines (sizes in bytes)."""
    if fmt == "table":
        out.write(render_table(rows, units) + "\n")
    elif fmt == "json":
        out.write(json.dumps([row.to_dict() for row in rows], indent=2) + "\n")
    elif fmt == "jsonl":
        out.writelines(json.dumps(row.to_dict()) + "\n" for row in rows)
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            data = row.to_dict()
            data["fits"] = _fits_text(row.fits)
            data["error"], data["error_type"] = (row.error.message, row.error.type) if row.error else (None, None)
            writer.writerow({key: for_spreadsheet(value) for key, value in data.items()})
    else:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def render_table(rows: Iterable[AuditRow], units: str = "gib") -> str:
    """The human table; the fits and error columns appear only when some row has one."""
    rows = list(rows)
    show_fits = any(row.fits is not None for row in rows)
    show_error = any(row.error for row in rows)
    show_serve = any(row.serve for row in rows)
    headers = ["model", "params", "dtype", "weights", "inference", "training", "LoRA"]
    headers += ["fits"] * show_fits + ["KV tokens", "concurrency", "starts"] * show_serve + ["error"] * show_error
    body = []
    for row in rows:
        data = row.to_dict()
        cells = [row.model]
        if row.report:
            cells += [f"{data['params']:,}", data["dtype"] or ""]
            cells += [format_bytes(data[key], units) for key in ("weights", *MODES)]
        else:
            cells += [""] * 6
        cells += [_fits_text(row.fits)] * show_fits
        if show_serve:
            cells += [f"{row.serve.kv_cache_tokens:,}", f"{row.serve.max_concurrency:.2f}x",
                      "yes" if row.serve.starts else "no"] if row.serve else [""] * 3
        cells += [row.error.message if row.error else ""] * show_error
        body.append([one_line(cell) for cell in cells])
    align = ["left"] + ["right", "left"] + ["right"] * 4 + ["left"] * show_fits
    align += ["right", "right", "left"] * show_serve + ["left"] * show_error
    return tabulate(body, headers, tablefmt="simple", disable_numparse=True, colalign=align)


def _fits_text(fits: dict[str, bool] | None) -> str:
    """The modes that fit, e.g. "inference lora"; "none" when none does; "" without a GPU."""
    if fits is None:
        return ""
    return " ".join(mode for mode, ok in fits.items() if ok) or "none"
