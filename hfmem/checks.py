"""Pre-download checks: what to know about a model before fetching gigabytes of it. Pure, given a Snapshot.

Each check gives exactly one Finding (ok / warn / fail), so `hfmem check` prints one verdict line per check; any
`fail` fails the whole check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from tabulate import tabulate

from . import dtypes, engines
from .api import ModelReport, open_snapshot, report_for
from .config import _has_lm_head, read_architecture
from .engines.render import ENGINE_NAMES
from .errors import UnsupportedModel
from .gpus import Gpu
from .hub import HubOptions
from .memory import Settings
from .report import format_bytes
from .snapshot import PICKLE_FORMATS, Snapshot
from .spec import ModelSpec
from .untrusted import one_line

Mode = Literal["inference", "training", "lora"]
MODES: tuple[Mode, ...] = ("inference", "training", "lora")
TOKEN_EMBEDDINGS = {"embed_tokens", "wte", "word_embeddings", "tok_embeddings", "embed_in", "shared"}
OUTPUT_HEADS = {"lm_head", "embed_out"}
REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


class Level(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    code: str  # which check: "download", "weights", "gated", "custom_code", "config", ...
    level: Level
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "level": self.level.value, "message": self.message}


@dataclass(frozen=True)
class CheckReport:
    snapshot: Snapshot
    mode: Mode
    findings: tuple[Finding, ...]
    report: ModelReport | None  # None when the config does not allow an estimate (the `fit` finding says why)

    @property
    def passed(self) -> bool:
        return all(f.level is not Level.FAIL for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        s = self.snapshot
        return {
            "model": s.model,
            "revision": s.shown_revision,
            "commit": s.commit,
            "source": s.source,
            "mode": self.mode,
            "passed": self.passed,
            "checks": [f.to_dict() for f in self.findings],
            "download": {"bytes": s.download_bytes, "by_format": bytes_by_format(s)},
            "memory_bytes": self.report.memory.by_mode()[self.mode].total_bytes if self.report else None,
            "gpu": self.report.gpu.to_dict() if self.report and self.report.gpu else None,
            "warnings": list(self.report.warnings if self.report else s.warnings),
        }


def check_model(
    reference: str,
    settings: Settings | None = None,
    *,
    mode: Mode = "inference",
    gpu: Gpu | None = None,
    revision: str | None = None,
    hub: HubOptions | None = None,
    units: str = "gib",
    serving: engines.EngineSettings | None = None,
) -> CheckReport:
    """Resolve `reference` and check it. Raises ResolveError (or ModelRefError) when the model cannot be resolved:
    then there is nothing to check."""
    snapshot = open_snapshot(reference, revision=revision, hub=hub)
    return check_snapshot(snapshot, settings or Settings(), mode=mode, gpu=gpu, units=units, serving=serving)


def check_snapshot(
    snapshot: Snapshot,
    settings: Settings,
    *,
    mode: Mode = "inference",
    gpu: Gpu | None = None,
    units: str = "gib",
    serving: engines.EngineSettings | None = None,
) -> CheckReport:
    """Every check of a resolved snapshot; sizes in messages use `units`. The checks that read the headers and the
    fit need a memory estimate: without one (a config that lacks what it needs) the fit fails and says why. With
    `serving` and a GPU, one more check: whether that engine starts (hfmem serve's plan)."""
    findings = [_download(snapshot, units), _weights(snapshot), _gated(snapshot), _custom_code(snapshot)]
    findings.append(_config(snapshot))
    try:
        report = report_for(snapshot, settings, gpu)
    except UnsupportedModel as e:
        findings.append(Finding("fit", Level.FAIL, f"no memory estimate: {e}"))
        return CheckReport(snapshot, mode, tuple(findings), None)
    spec = report.spec
    findings += [_config_dtype(spec), _vocab_size(spec), _tied_embeddings(spec), _fit(report, mode, units)]
    if serving is not None and gpu is not None:
        findings.append(_serve(engines.plan(report.memory.facts, gpu, serving)))
    return CheckReport(snapshot, mode, tuple(findings), report)


def render_check(check: CheckReport) -> str:
    """One verdict line per check under the model's identity, then the overall result. Messages quote the repo's
    own names (files, tensors, dtypes), so each is kept to one line without control characters."""
    s = check.snapshot
    where = f" @ {s.shown_revision} ({s.commit[:12]})" if s.commit else ""
    lines = tabulate([(f.level.value, f.code, one_line(f.message)) for f in check.findings], tablefmt="plain")
    failed = sum(f.level is Level.FAIL for f in check.findings)
    warned = sum(f.level is Level.WARN for f in check.findings)
    verdict = "passed" if check.passed else f"failed ({failed} of {len(check.findings)} checks)"
    if warned:
        verdict += f", {warned} warning{'s' * (warned > 1)}"
    return f"{one_line(s.model + where)}\n{lines}\nresult: {verdict}"


def bytes_by_format(snapshot: Snapshot) -> dict[str, int]:
    """Download bytes per weight format; everything else (tokenizer, configs, code) under "other"."""
    sizes: dict[str, int] = {}
    for f in snapshot.files:
        key = f.format or "other"
        sizes[key] = sizes.get(key, 0) + (f.size or 0)
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


def _serve(plan: engines.ServePlan) -> Finding:
    """Fails exactly when the engine refuses to start, with its own error text."""
    engine = f"{ENGINE_NAMES[plan.engine]} {plan.version}"
    if not plan.starts:
        return Finding("serve", Level.FAIL, f"{engine} refuses to start: {plan.error}")
    return Finding("serve", Level.OK, f"{engine} starts: {plan.kv_cache_tokens:,} KV tokens, max concurrency "
                   f"{plan.max_concurrency:.2f}x")


def _download(snapshot: Snapshot, units: str) -> Finding:
    by_format = bytes_by_format(snapshot)
    split = " · ".join(f"{name} {format_bytes(n, units)}" for name, n in by_format.items())
    total = format_bytes(snapshot.download_bytes, units)
    message = f"{total} in {len(snapshot.files)} files ({split})"
    copies = sorted(set(by_format) - {"safetensors", "other"})
    if "safetensors" in by_format and copies:
        extra = format_bytes(sum(by_format[name] for name in copies), units)
        return Finding("download", Level.WARN, f"{message}; the {', '.join(copies)} copies of the weights ({extra}) "
                       "are not needed: fetch only *.safetensors and the small files")
    return Finding("download", Level.OK, message)


def _weights(snapshot: Snapshot) -> Finding:
    if snapshot.gguf is not None:
        return Finding("weights", Level.OK, f"GGUF ({snapshot.gguf.chosen.name}): loading it runs no code")
    formats = set(snapshot.formats)
    if "safetensors" in formats:
        return Finding("weights", Level.OK, "safetensors: loading them runs no code")
    pickles = [f.path for f in snapshot.files if f.format in PICKLE_FORMATS]
    if pickles:
        names = ", ".join(pickles[:3]) + (f" and {len(pickles) - 3} more" if len(pickles) > 3 else "")
        return Finding("weights", Level.WARN, f"only pickle weights ({names}): loading them can run arbitrary code; "
                       "parameter counts come from config.json")
    return Finding("weights", Level.FAIL, f"no safetensors or pickle weights (formats: {', '.join(formats) or 'none'})")


def _gated(snapshot: Snapshot) -> Finding:
    if snapshot.source == "local":
        return Finding("gated", Level.OK, "local directory")
    if snapshot.gated:
        return Finding("gated", Level.WARN, f"gated ({snapshot.gated} approval): downloading needs accepted terms and "
                       "a token (`hf auth login`, HF_TOKEN or --token)")
    return Finding("gated", Level.OK, "not gated")


def _custom_code(snapshot: Snapshot) -> Finding:
    if not snapshot.custom_code:
        return Finding("custom_code", Level.OK, "none: stock transformers classes")
    auto_map = snapshot.config.get("auto_map")
    parts = [f"auto_map ({', '.join(auto_map)})"] if isinstance(auto_map, dict) else []
    parts += [f.path for f in snapshot.files if f.path.endswith(".py")]
    return Finding("custom_code", Level.WARN, f"{', '.join(parts)}: transformers runs this code only with "
                   "trust_remote_code=True; read it first")


def _config(snapshot: Snapshot) -> Finding:
    if snapshot.gguf is not None:
        return Finding("config", Level.OK, "the architecture comes from the GGUF metadata")
    architecture, warnings = read_architecture(snapshot.config)
    missing = [name for name in REQUIRED if getattr(architecture, name) is None]
    if missing:
        return Finding("config", Level.FAIL, f"config.json lacks {', '.join(missing)}")
    if warnings:
        return Finding("config", Level.WARN, "; ".join(warnings))
    return Finding("config", Level.OK, "config.json has every field hfmem reads")


def _config_dtype(spec: ModelSpec) -> Finding:
    by_dtype = spec.parameters.by_dtype
    if not spec.parameters.exact:
        return Finding("config_dtype", Level.OK, "not checked: no safetensors headers")
    if spec.quantization:
        method = spec.quantization.method
        return Finding("config_dtype", Level.OK, f"quantized ({method}): stored dtypes differ by design")
    stored = max(by_dtype, key=lambda dtype: by_dtype[dtype])
    declared = dtypes.TORCH_TO_SAFETENSORS.get(spec.dtype or "")
    if declared is None or declared == stored:
        return Finding("config_dtype", Level.OK, f"weights stored as {stored}, consistent with config.json")
    return Finding("config_dtype", Level.WARN, f"config.json says {spec.dtype} but the weights are stored as {stored}: "
                   "loading with dtype='auto' converts them")


def _vocab_size(spec: ModelSpec) -> Finding:
    vocab = spec.architecture.vocab_size
    embedding = next((t for t in spec.tensors if _module(t.name) in TOKEN_EMBEDDINGS and t.name.endswith(".weight")
                      and len(t.shape) == 2), None)  # fmt: skip
    if embedding is None or vocab is None:
        return Finding("vocab_size", Level.OK, "not checked: no token embedding in the headers")
    rows = embedding.shape[0]
    if rows == vocab:
        return Finding("vocab_size", Level.OK, f"vocab_size {vocab:,} = rows of {embedding.name}")
    return Finding("vocab_size", Level.FAIL, f"config.json vocab_size {vocab:,} but {embedding.name} has {rows:,} "
                   "rows: transformers refuses the checkpoint (size mismatch)")


def _tied_embeddings(spec: ModelSpec) -> Finding:
    arch = spec.architecture
    heads = [t.name for t in spec.tensors if _module(t.name) in OUTPUT_HEADS]
    if not spec.parameters.exact:
        return Finding("tied_embeddings", Level.OK, "not checked: no safetensors headers")
    if arch.tie_word_embeddings:
        if heads:
            return Finding("tied_embeddings", Level.WARN, f"tie_word_embeddings is true, yet {heads[0]} is stored: "
                           "transformers ties the output to the input embedding and ignores it")
        return Finding("tied_embeddings", Level.OK, "tied: the input embedding is the output projection")
    if not _has_lm_head(arch.architectures, arch.is_encoder_only):
        return Finding("tied_embeddings", Level.OK, "no output projection over the vocabulary")
    if heads:
        return Finding("tied_embeddings", Level.OK, f"untied: {heads[0]} stored")
    return Finding("tied_embeddings", Level.FAIL, "tie_word_embeddings is false but no lm_head weight is stored: "
                   "transformers would initialise the output projection randomly")


def _fit(report: ModelReport, mode: Mode, units: str) -> Finding:
    need = f"{mode} needs {format_bytes(report.memory.by_mode()[mode].total_bytes, units)}"
    if report.gpu is None:
        return Finding("fit", Level.OK, f"{need} (give --gpu or --gpu-memory to check a fit)")
    gpu = report.gpu.to_dict()
    on = f"{gpu['name']} ({format_bytes(gpu['memory_bytes'], units)})"
    if gpu["fits"][mode]:
        return Finding("fit", Level.OK, f"{need}: fits on {on}")
    needed = gpu["gpus_needed"][mode]
    advice = (
        f"{needed} GPUs needed"
        if needed is not None
        else "no number of these GPUs is enough: what one GPU holds alone (activations, context) is too big; "
        "try --grad-checkpointing, a smaller --seq-len or --batch-size"
    )
    return Finding("fit", Level.FAIL, f"{need}: does not fit on {on}; {advice}")


def _module(tensor_name: str) -> str:
    """The module a weight belongs to: "model.embed_tokens.weight" -> "embed_tokens"."""
    parts = tensor_name.split(".")
    return parts[-2] if len(parts) >= 2 else ""
