"""Pre-download checks: what to know about a model before fetching gigabytes of it. Pure, given a Snapshot.

Each check gives exactly one Finding (ok / warn / fail), so `hfmem check` prints one verdict line per check; any
`fail` fails the whole check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from . import dtypes, engines
from .api import ModelReport, open_snapshot, report_for
from .config import _has_lm_head, read_architecture
from .diffusion import ImageSettings
from .engines import ENGINE_NAMES
from .errors import UnsupportedModel
from .gpus import Gpu
from .hub import HubOptions
from .memory import Mode, Settings
from .memory.settings import resolve_seq_len
from .snapshot import PICKLE_FORMATS, Snapshot
from .spec import ModelSpec
TOKEN_EMBEDDINGS = {"embed_tokens", "wte", "word_embeddings", "tok_embeddings", "embed_in", "shared"}
OUTPUT_HEADS = {"lm_head", "embed_out"}
REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
# The checks that read config.json or the headers, in the order check_snapshot runs them.
NEEDS_ACCESS = ("config", "config_dtype", "vocab_size", "tied_embeddings", "context")


class Level(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not run: what it reads is missing (no headers, no GPU given, a local directory)


class Size(int):
    """A byte count inside a finding's message: a view shows it in the reader's units."""


@dataclass(frozen=True)
class Finding:
    code: str  # which check: "download", "weights", "gated", "custom_code", "config", ...
    level: Level
    parts: tuple[str | Size, ...]  # the message: text, and sizes for a view to format
    hint: str | None = None  # what to do about it: a key the command line words (views.text.HINTS)

    @classmethod
    def of(cls, code: str, level: Level, *parts: str | Size, hint: str | None = None) -> Finding:
        return cls(code, level, parts, hint)


@dataclass(frozen=True)
class CheckReport:
    snapshot: Snapshot
    mode: Mode
    findings: tuple[Finding, ...]
    report: ModelReport | None  # None when the config does not allow an estimate (the `fit` finding says why)

    @property
    def passed(self) -> bool:
        return all(f.level is not Level.FAIL for f in self.findings)

    @property
    def bytes_by_format(self) -> dict[str, int]:
        return bytes_by_format(self.snapshot)


def check_model(
    reference: str,
    settings: Settings | None = None,
    *,
    mode: Mode = Mode.INFERENCE,
    gpu: Gpu | None = None,
    revision: str | None = None,
    hub: HubOptions | None = None,
    serving: engines.EngineSettings | None = None,
    file: str | None = None,
    quant: str | None = None,
    image: ImageSettings | None = None,
) -> CheckReport:
    """Resolve `reference` and check it. Raises ResolveError (or ModelRefError) when the model cannot be resolved:
    then there is nothing to check. `file` or `quant` chooses a GGUF variant; `image` a Diffusers pipeline's image
    size and weight variant."""
    snapshot = open_snapshot(reference, revision=revision, hub=hub, file=file, quant=quant)
    return check_snapshot(snapshot, settings or Settings(), mode=mode, gpu=gpu, serving=serving, image=image)


def check_snapshot(
    snapshot: Snapshot,
    settings: Settings,
    *,
    mode: Mode = Mode.INFERENCE,
    gpu: Gpu | None = None,
    serving: engines.EngineSettings | None = None,
    image: ImageSettings | None = None,
) -> CheckReport:
    """Every check of a resolved snapshot. The checks that read the headers and the fit need a memory estimate:
    without one (a config that lacks what it needs) the fit fails and says why. With `serving` and a GPU, one more
    check: whether that engine starts (hfmem serve's plan)."""
    findings = [_download(snapshot), _weights(snapshot), _gated(snapshot), _custom_code(snapshot)]
    if snapshot.public is not None:  # a gated repo without access: what needs config.json and headers is not run
        not_run = "not checked: config.json and the headers are gated"
        findings += [Finding.of(code, Level.SKIP, not_run) for code in NEEDS_ACCESS]
        findings.append(Finding.of("fit", Level.SKIP, "no memory estimate without config.json"))
        return CheckReport(snapshot, mode, tuple(findings), None)
    findings.append(_config(snapshot))
    try:
        report = report_for(snapshot, settings, gpu, image=image)
    except UnsupportedModel as e:
        findings.append(Finding.of("fit", Level.FAIL, f"no memory estimate: {e}"))
        return CheckReport(snapshot, mode, tuple(findings), None)
    if snapshot.pipeline is not None:  # no transformer config to check: the fit is the pipeline's
        findings.append(_fit(report, mode))
        return CheckReport(snapshot, mode, tuple(findings), report)
    spec = report.spec
    findings += [_config_dtype(spec), _vocab_size(spec), _tied_embeddings(spec), _context(report)]
    findings.append(_fit(report, mode))
    if serving is not None and gpu is not None and report.memory is not None:
        findings.append(_serve(engines.plan(report.memory.facts, gpu, serving)))
    return CheckReport(snapshot, mode, tuple(findings), report)


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
        return Finding.of("serve", Level.FAIL, f"{engine} refuses to start: {plan.error}")
    return Finding.of("serve", Level.OK, f"{engine} starts: {plan.kv_cache_tokens:,} KV tokens, max concurrency "
                   f"{plan.max_concurrency:.2f}x")


def _download(snapshot: Snapshot) -> Finding:
    by_format = bytes_by_format(snapshot)
    total = Size(snapshot.download_bytes) if snapshot.download_bytes is not None else "an unknown size"
    split: list[str | Size] = []
    for name, n in by_format.items():
        split += [" · " if split else "", f"{name} ", Size(n)]
    message = (total, f" in {len(snapshot.files)} files (", *split, ")")
    copies = sorted(set(by_format) - {"safetensors", "other"})
    if "safetensors" in by_format and copies:
        extra = Size(sum(by_format[name] for name in copies))
        return Finding.of("download", Level.WARN, *message, f"; the {', '.join(copies)} copies of the weights (",
                          extra, ") are not needed: fetch only *.safetensors and the small files")
    return Finding.of("download", Level.OK, *message)


def _weights(snapshot: Snapshot) -> Finding:
    if snapshot.gguf is not None:
        return Finding.of("weights", Level.OK, f"GGUF ({snapshot.gguf.chosen.name}): loading it runs no code")
    formats = set(snapshot.formats)
    if "safetensors" in formats:
        return Finding.of("weights", Level.OK, "safetensors: loading them runs no code")
    pickles = [f.path for f in snapshot.files if f.format in PICKLE_FORMATS]
    if pickles:
        names = ", ".join(pickles[:3]) + (f" and {len(pickles) - 3} more" if len(pickles) > 3 else "")
        return Finding.of("weights", Level.WARN, f"only pickle weights ({names}): loading them can run arbitrary code; "
                       "parameter counts come from config.json")
    return Finding.of("weights", Level.FAIL, f"no safetensors or pickle weights (formats: {', '.join(formats) or 'none'})")


def _gated(snapshot: Snapshot) -> Finding:
    if snapshot.source == "local":
        return Finding.of("gated", Level.SKIP, "a local directory")
    if snapshot.public is not None:
        return Finding.of("gated", Level.FAIL, f"gated ({snapshot.gated} approval): its files are closed to this run",
                          hint="token")
    if snapshot.gated:
        return Finding.of("gated", Level.WARN, f"gated ({snapshot.gated} approval): downloading needs accepted terms and "
                          "a token", hint="token")
    return Finding.of("gated", Level.OK, "not gated")


def _custom_code(snapshot: Snapshot) -> Finding:
    if not snapshot.custom_code:
        return Finding.of("custom_code", Level.OK, "none: stock transformers classes")
    auto_map = snapshot.config.get("auto_map")
    parts = [f"auto_map ({', '.join(auto_map)})"] if isinstance(auto_map, dict) else []
    parts += [f.path for f in snapshot.files if f.path.endswith(".py")]
    return Finding.of("custom_code", Level.WARN, f"{', '.join(parts)}: transformers runs this code only with "
                   "trust_remote_code=True; read it first")


def _config(snapshot: Snapshot) -> Finding:
    if snapshot.pipeline is not None:
        pipeline = snapshot.pipeline
        return Finding.of("config", Level.WARN if pipeline.warnings else Level.OK, "; ".join(pipeline.warnings) or
                          f"model_index.json ({pipeline.class_name}) and the config.json of each of its "
                          f"{len(pipeline.components)} components with weights")  # fmt: skip
    if snapshot.gguf is not None:
        return Finding.of("config", Level.OK, "the architecture comes from the GGUF metadata")
    architecture, warnings = read_architecture(snapshot.config)
    missing = [name for name in REQUIRED if getattr(architecture, name) is None]
    if missing:
        return Finding.of("config", Level.FAIL, f"config.json lacks {', '.join(missing)}")
    if warnings:
        return Finding.of("config", Level.WARN, "; ".join(warnings))
    return Finding.of("config", Level.OK, "config.json has every field hfmem reads")


def _config_dtype(spec: ModelSpec) -> Finding:
    by_dtype = spec.parameters.by_dtype
    if not spec.parameters.exact:
        return Finding.of("config_dtype", Level.SKIP, "not checked: no safetensors headers")
    if spec.quantization:
        method = spec.quantization.method
        return Finding.of("config_dtype", Level.OK, f"quantized ({method}): stored dtypes differ by design")
    stored = max(by_dtype, key=lambda dtype: by_dtype[dtype])
    declared = dtypes.TORCH_TO_SAFETENSORS.get(spec.dtype or "")
    if declared is None or declared == stored:
        return Finding.of("config_dtype", Level.OK, f"weights stored as {stored}, consistent with config.json")
    return Finding.of("config_dtype", Level.WARN, f"config.json says {spec.dtype} but the weights are stored as {stored}: "
                   "loading with dtype='auto' converts them")


def _vocab_size(spec: ModelSpec) -> Finding:
    vocab = spec.architecture.vocab_size
    embedding = next((t for t in spec.tensors if _module(t.name) in TOKEN_EMBEDDINGS and t.name.endswith(".weight")
                      and len(t.shape) == 2), None)  # fmt: skip
    if embedding is None or vocab is None:
        return Finding.of("vocab_size", Level.SKIP, "not checked: no token embedding in the headers")
    rows = embedding.shape[0]
    if rows == vocab:
        return Finding.of("vocab_size", Level.OK, f"vocab_size {vocab:,} = rows of {embedding.name}")
    return Finding.of("vocab_size", Level.FAIL, f"config.json vocab_size {vocab:,} but {embedding.name} has {rows:,} "
                   "rows: transformers refuses the checkpoint (size mismatch)")


def _tied_embeddings(spec: ModelSpec) -> Finding:
    arch = spec.architecture
    heads = [t.name for t in spec.tensors if _module(t.name) in OUTPUT_HEADS]
    if not spec.parameters.exact:
        return Finding.of("tied_embeddings", Level.SKIP, "not checked: no safetensors headers")
    if arch.tie_word_embeddings:
        if heads:
            return Finding.of("tied_embeddings", Level.WARN, f"tie_word_embeddings is true, yet {heads[0]} is stored: "
                           "transformers ties the output to the input embedding and ignores it")
        return Finding.of("tied_embeddings", Level.OK, "tied: the input embedding is the output projection")
    if not _has_lm_head(arch.architectures, arch.is_encoder_only):
        return Finding.of("tied_embeddings", Level.OK, "no output projection over the vocabulary")
    if heads:
        return Finding.of("tied_embeddings", Level.OK, f"untied: {heads[0]} stored")
    return Finding.of("tied_embeddings", Level.FAIL, "tie_word_embeddings is false but no lm_head weight is stored: "
                   "transformers would initialise the output projection randomly")


def _fit(report: ModelReport, mode: Mode) -> Finding:
    assert report.memory is not None
    need = (f"{mode} needs ", Size(report.memory.by_mode()[mode].total_bytes))
    if report.gpu is None:
        return Finding.of("fit", Level.SKIP, *need, hint="gpu")
    fit = report.gpu
    on = (f"{fit.gpu.name} (", Size(fit.gpu.memory_bytes), ")")
    if fit.fits[mode]:
        return Finding.of("fit", Level.OK, *need, ": fits on ", *on)
    needed = fit.gpus_needed[mode]
    if needed is not None:
        return Finding.of("fit", Level.FAIL, *need, ": does not fit on ", *on, f"; {needed} GPUs needed")
    return Finding.of("fit", Level.FAIL, *need, ": does not fit on ", *on, "; no number of these GPUs is enough: "
                      "what one GPU holds alone (activations, context) is too big", hint="smaller")


def _context(report: ModelReport) -> Finding:
    """A sequence longer than the model's context: positions it was never trained on (or cannot embed)."""
    context = report.spec.architecture.max_position_embeddings
    seq_len = resolve_seq_len(report.settings, context)
    assert report.memory is not None
    if report.memory.inference.settings.get("image_tokens"):  # --images: the sequence holds them too
        seq_len = report.memory.inference.settings["seq_len"]
    if context is None:
        return Finding.of("context", Level.SKIP, "not checked: config.json states no context length")
    if seq_len > context:
        return Finding.of("context", Level.FAIL, f"seq_len {seq_len:,} is beyond the model's context of {context:,} "
                          "tokens", hint="seq_len")
    return Finding.of("context", Level.OK, f"seq_len {seq_len:,} within the model's context of {context:,} tokens")


def _module(tensor_name: str) -> str:
    """The module a weight belongs to: "model.embed_tokens.weight" -> "embed_tokens"."""
    parts = tensor_name.split(".")
    return parts[-2] if len(parts) >= 2 else ""
