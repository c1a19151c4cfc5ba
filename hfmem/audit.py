"""Batch audits: read a list of model references, resolve them concurrently, and give one row per model.

A model that fails is a row carrying its error (pip-audit's skipped-dependency pattern), never an exception: one bad
model cannot stop a batch. Only a signal does, and the rows written before it are kept (see `audit_models`).
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as StillRunning
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import engines
from .errors import ModelRefError, error_fields
from .gpus import Gpu
from .memory import MODES, Mode, Settings
from .untrusted import without_credentials

if TYPE_CHECKING:
    from .diffusion import ImageSettings
    from .api import ModelReport
    from .hub import HubOptions, ListedModel

DEFAULT_JOBS = 16  # models resolved at once; each also reads its files concurrently
DEFAULT_TIMEOUT = 120.0  # seconds one model may take (its deadline; rate-limit waits aside)
POLL = 0.5  # seconds between looks at a model that is taking long
MAX_INPUT_BYTES = 16 * 2**20  # an input list: some 400,000 references
# audit --sort: our name -> the Hub listing's (as huggingface_hub's list_models maps them)
SORTS = {"downloads": "downloads", "likes": "likes", "created": "createdAt", "modified": "lastModified"}
MAX_ROW_BYTES = 64 * 2**10  # one JSON line of an audit (rows are under 1 KiB, an error message included)
# CONTRACT.md's row, then additions. Sizes are bytes.
COLUMNS = ("model", "params", "dtype", "weights", *MODES, "fits", "error", "error_type", "commit", *engines.VERDICT,
           "access")
_INLINE_COMMENT = re.compile(r"\s+#.*$")
# CSV; what Excel writes as "CSV" where the decimal mark is a comma; tab-separated values
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class RowError:
    type: str  # an HfmemError code, "timeout", or "internal" for an unexpected exception
    message: str
    hint: str | None = None  # what to do about it (errors.HfmemError.hint)

    def to_dict(self) -> dict[str, str]:
        """CONTRACT.md's error object (and the hint, when there is one), as error_fields gives it."""
        return {"type": self.type, "message": self.message, **({"hint": self.hint} if self.hint else {})}


@dataclass(frozen=True)
class Verdict:
    """How an engine starts the model (audit --engine): its KV pool in tokens, the concurrency at its context, and
    whether it starts at all."""

    kv_cache_tokens: int
    max_concurrency: float
    starts: bool


@dataclass(frozen=True)
class AuditRow:
    """One model of an audit, reduced to what its row shows as soon as it is done (a whole report is some 250 KiB;
    an audit of 100,000 models keeps none of them), or the error that stopped it."""

    model: str
    commit: str | None = None
    params: int | None = None
    dtype: str | None = None
    weights: int | None = None  # bytes
    totals: dict[Mode, int] | None = None  # bytes per mode
    fits: dict[Mode, bool] | None = None  # with a GPU
    serve: Verdict | None = None  # with an engine and a GPU
    error: RowError | None = None
    access: str | None = None  # CONTRACT's access; "gated": public metadata only, so no totals

    @classmethod
    def of(cls, model: str, report: ModelReport, plan: engines.ServePlan | None = None) -> AuditRow:
        spec = report.spec
        return cls(
            model,
            commit=spec.commit,
            params=spec.parameters.total,
            dtype=spec.dtype,
            weights=spec.files.weights_bytes,
            totals={mode: est.total_bytes for mode, est in report.memory.by_mode().items()} if report.memory else None,
            fits=dict(report.gpu.fits) if report.gpu else None,
            serve=Verdict(plan.kv_cache_tokens, round(plan.max_concurrency, 2), plan.starts) if plan else None,
            access=spec.access,
        )

    @classmethod
    def failed(cls, model: str, error: Exception) -> AuditRow:
        return cls(model, error=RowError(**error_fields(error)))

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON (sizes in bytes; `error` as in CONTRACT.md's error object)."""
        serve = self.serve
        return {
            "model": self.model,
            "params": self.params,
            "dtype": self.dtype,
            "weights": self.weights,
            **{mode: self.totals[mode] if self.totals else None for mode in MODES},
            "fits": self.fits,
            "error": self.error.to_dict() if self.error else None,
            "commit": self.commit,
            **{key: getattr(serve, key) if serve else None for key in engines.VERDICT},
            "access": self.access,
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


def audit_models(
    models: Iterable[str | ListedModel],
    settings: Settings | None = None,
    *,
    gpu: Gpu | None = None,
    revision: str | None = None,
    hub: HubOptions | None = None,
    jobs: int = DEFAULT_JOBS,
    timeout: float = DEFAULT_TIMEOUT,
    serving: engines.EngineSettings | None = None,
    file: str | None = None,
    quant: str | None = None,
    image: ImageSettings | None = None,
) -> Generator[AuditRow, None, None]:
    """One row per model, in input order, each as soon as it and the ones before it are done; never raises for a
    model (a failure is a row with its `error`). `models` are references, or models of a Hub listing (hub.list_models,
    whose commit and files spare their model_info request, unless `revision` asks for another branch); it is read as
    the rows go. With `serving` and a GPU, a row also says how that engine starts the model.

    Memory stays flat however long the list: at most 2 x `jobs` models are in flight or waiting for an earlier one,
    each reduced to its row. `timeout` is each model's deadline (HubOptions.deadline: requests and bodies, the
    Hub's rate-limit waits aside); a model still running well past every limit its requests keep gets a "timeout"
    row and is left behind. Closing the iterator, or a signal while it waits, cancels the models not started.
    `file` or `quant` chooses the variant of every GGUF repo of the list (a repo without GGUF files resolves as
    always, but not from the metadata cache); `image`, the image size and weight variant of every Diffusers
    pipeline."""
    from .api import open_snapshot, report_for  # the resolving part of the library: loaded when an audit runs
    from .hub import HubOptions, Variant
    from .refs import parse_ref
    from .sources import Request, resolve

    settings = settings or Settings()
    hub = replace(hub or HubOptions(), deadline=timeout)
    abandon_after = timeout + hub.max_wait + hub.timeout  # past every limit a model's own requests keep

    def run(model: str | ListedModel, started: list[float]) -> AuditRow:
        started.append(time.monotonic())
        name = _name(model)
        try:
            if isinstance(model, str):
                own = parse_ref(model).revision is not None  # a row's own revision wins over --revision
                snapshot = open_snapshot(model, revision=None if own else revision, hub=hub, file=file, quant=quant)
            else:
                listing = None if revision else model.listing
                request = Request(hub=hub, listed=listing, variant=Variant(file, quant))
                snapshot = resolve(parse_ref(model.repo_id, revision), request)
            report = report_for(snapshot, settings, gpu, image=image)
            # engines serve language models, not Diffusers pipelines
            plan = None
            if serving is not None and gpu is not None and report.memory is not None and report.pipeline is None:
                plan = engines.plan(report.memory.facts, gpu, serving)
            return AuditRow.of(name, report, plan)
        except Exception as e:  # every failure is a row, unexpected ones as "internal"
            return AuditRow.failed(name, e)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="hfmem-audit")
    ahead: deque[_Pending] = deque()
    try:
        for model in models:
            started: list[float] = []
            ahead.append(_Pending(_name(model), pool.submit(run, model, started), started))
            if len(ahead) >= 2 * jobs:
                yield _next_row(ahead.popleft(), abandon_after)
        while ahead:
            yield _next_row(ahead.popleft(), abandon_after)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class _Pending:
    model: str
    future: Future[AuditRow]
    started: list[float]  # when it started running, once it has


def _next_row(pending: _Pending, abandon_after: float) -> AuditRow:
    """A model's row: its result, or a "timeout" row once it has run `abandon_after` seconds."""
    while True:
        begun = pending.started[0] if pending.started else None
        left = POLL if begun is None else begun + abandon_after - time.monotonic()
        try:
            return pending.future.result(timeout=max(0.0, min(left, POLL)))
        except StillRunning:
            if begun is not None and time.monotonic() - begun >= abandon_after:
                message = f"{pending.model}: no result within {abandon_after:g} s"
                return AuditRow(pending.model, error=RowError("timeout", message, "timeout"))


def _name(model: str | ListedModel) -> str:
    """How a row names its model: a reference as it may be shown (no credentials), or a listed repo's id."""
    return without_credentials(model) if isinstance(model, str) else model.repo_id


def resume_rows(path: str) -> set[str]:
    """The models that have a row in the JSON-lines audit at `path` (none when it does not exist yet), that file cut
    back to its last whole line: a kill can leave half a row, which the next row must not be glued to. Any row
    counts, an error row too, so that a resumed audit holds one row per model. ValueError for a file that is not
    such an audit. Only the names are kept: some 100 bytes per row."""
    done: set[str] = set()
    try:
        file = open(path, "r+b")
    except FileNotFoundError:
        return done
    with file:
        whole = 0
        for number, line in enumerate(iter(lambda: file.readline(MAX_ROW_BYTES + 1), b""), 1):
            if not line.endswith(b"\n"):
                if len(line) <= MAX_ROW_BYTES and not file.read(1):  # the end: a row the kill cut off
                    file.truncate(whole)
                    break
                raise ValueError(f"line {number} is over {MAX_ROW_BYTES:,} bytes: not an hfmem audit")
            try:
                model = json.loads(line).get("model")
            except (ValueError, AttributeError):
                model = None
            if not isinstance(model, str):
                raise ValueError(f"line {number} is not a row of `hfmem audit --format jsonl`")
            done.add(model)
            whole += len(line)
    return done
