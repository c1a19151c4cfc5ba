"""JSON: CONTRACT.md's shape of a report (sizes always in bytes; keys are only ever added)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import error_fields
from .units import message

if TYPE_CHECKING:
    from ..api import ModelReport
    from ..checks import CheckReport
    from ..diffusion import PipelineMemory
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
            "vision": spec.parameters.vision,
        },
        "files": {
            "weights_bytes": spec.files.weights_bytes,
            "download_bytes": spec.files.download_bytes,
            "formats": list(spec.files.formats),
            "count": spec.files.count,
            "vision_bytes": spec.files.vision_bytes,
        },
        "memory": report.memory.to_dict() if report.memory is not None else None,  # a gated repo without access
        "gpu": report.gpu.to_dict() if report.gpu else None,
        **kind_dict(spec, report.pipeline),
        "warnings": list(report.warnings),
        "vision": spec.vision.to_dict() if spec.vision else None,
        "access": spec.access,
        **_tables(report),
    }


def kind_dict(spec: ModelSpec, run: PipelineMemory | None = None) -> dict[str, Any]:
    """CONTRACT.md's objects for the repo kinds that have one (README lists the keys added): `gguf` (types, parameters per ggml type, only for the
    variant read; the others' bits_per_weight are their size over its parameters; bytes_by_type the read one's) and
    `adapter`, and a pipeline's `components`; `sentence_transformers` and `diffusers` (with the pipeline's memory
    `run`) are hfmem's additions."""
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
    if spec.sentence is not None:
        kinds["sentence_transformers"] = {"modules": sentence_modules(spec)}
    if spec.pipeline is not None:
        kinds["components"], kinds["diffusers"] = pipeline_dict(spec, run)
    return kinds


def pipeline_dict(spec: ModelSpec, run: PipelineMemory | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A Diffusers pipeline: CONTRACT.md's `components` (each with weights: exact parameters and bytes as stored
    in the files read, plus its library, the variant and files read), and hfmem's `diffusers` object: the
    pipeline, its variants, and the memory of a run (every component resident, and with model CPU offload)."""
    pipeline = spec.pipeline
    assert pipeline is not None
    components = []
    for c in pipeline.components:
        tensors = pipeline.tensors(c)
        components.append({
            "name": c.name, "library": c.library, "class": c.class_name, "variant": c.chosen(pipeline.variant),
            "files": list(pipeline.files(c)), "parameters": sum(t.numel * t.count for t in tensors),
            "weights_bytes": sum(t.nbytes * t.count for t in tensors),
        })  # fmt: skip
    return components, {"pipeline": pipeline.class_name, "variant": pipeline.variant,
                        "variants": list(pipeline.variants), "denoiser": pipeline.denoiser.name if pipeline.denoiser
                        else None, "without_weights": list(pipeline.others),
                        "memory": run.to_dict() if run else None}  # fmt: skip


def sentence_modules(spec: ModelSpec) -> list[dict[str, Any]]:
    """Each module of a sentence-transformers repo, in modules.json's order, with its parameters (the root
    Transformer's are the checkpoint's; a module without weights has 0) and the file they were read from."""
    assert spec.sentence is not None
    extra = sum(m.parameters for m in spec.sentence.modules) if spec.parameters.exact else 0  # else not in total
    return [{"name": m.name, "path": m.path, "type": m.type,
             "parameters": m.parameters if m.path else spec.parameters.total - extra,
             "weights_file": m.weights_file} for m in spec.sentence.modules]  # fmt: skip


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
