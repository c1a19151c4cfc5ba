"""JSON: CONTRACT.md's shape of a report (sizes always in bytes; keys are only ever added)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import error_fields
from .units import message

if TYPE_CHECKING:
    from ..api import ModelReport
    from ..checks import CheckReport
    from ..spec import ModelSpec


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
        "memory": report.memory.to_dict() if report.memory is not None else None,  # a gated repo without access
        "gpu": report.gpu.to_dict() if report.gpu else None,
        **kind_dict(spec),
        "warnings": list(report.warnings),
        "access": spec.access,
        **_tables(report),
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


def _tables(report: ModelReport) -> dict[str, Any]:
    """The tables the report was asked to compute (CONTRACT's turn-2 additions): the numbers the text shows."""
    tables: dict[str, Any] = {}
    if report.sweep:
        tables["limits"] = report.limits.to_dict() if report.limits else None
        tables["sweep"] = [row.to_dict() for row in report.sweep]
        tables["what_if"] = [row.to_dict() for row in report.what_if]
    if report.explanation is not None:
        tables["explain"] = report.explanation.to_list()
        tables["rules_of_thumb"] = [rule.to_dict() for rule in report.explanation.rules]
    return tables


def error_dict(model: str, error: Exception) -> dict[str, Any]:
    """CONTRACT.md's error object for one model."""
    return {"model": model, "error": error_fields(error)}


def check_to_dict(check: CheckReport) -> dict[str, Any]:
    """`hfmem check --json`: the verdict per check (messages with sizes in GiB; bytes in `download` and
    `memory_bytes`)."""
    s, report = check.snapshot, check.report
    return {
        "model": s.model,
        "revision": s.shown_revision,
        "commit": s.commit,
        "source": s.source,
        "mode": check.mode,
        "passed": check.passed,
        "checks": [{"code": f.code, "level": f.level.value, "message": message(f.parts)} for f in check.findings],
        "download": {"bytes": s.download_bytes, "by_format": check.bytes_by_format},
        "memory_bytes": report.memory.by_mode()[check.mode].total_bytes if report and report.memory else None,
        "gpu": report.gpu.to_dict() if report and report.gpu else None,
        "warnings": list(report.warnings if report else s.warnings),
        "access": s.access,
    }
