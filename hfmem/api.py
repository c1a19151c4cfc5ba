"""The library entry points: resolve a reference and build its report, the one result every view shows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from . import engines
from .diffusion import LORA_TARGETS, ImageSettings, PipelineMemory, denoiser_only, pipeline_memory, spread_gpus
from .engines import EngineSettings, ServePlan
from .errors import AccessDenied, UnsupportedModel
from .gpus import Gpu, find_gpu
from .hub import HubOptions, Variant
from .memory import (
    Estimate,
    Explanation,
    Formula,
    GpuFit,
    Limits,
    MemoryReport,
    Mode,
    Settings,
    SweepRow,
    WhatIfRow,
    estimate,
    explanation,
    fit_gpus,
    limits,
    seq_curve,
    sweep,
    usable_bytes,
    what_if,
)
from .peft import Adapter
from .refs import parse_ref
from .snapshot import Snapshot
from .sources import Request, resolve
from .spec import ModelSpec, build_spec


@dataclass(frozen=True)
class ModelReport:
    """Everything hfmem knows and computed about one model under one set of settings. The optional tables are
    computed when asked for (`tables=`, `explain=`), never by a view."""

    spec: ModelSpec
    snapshot: Snapshot
    settings: Settings
    memory: MemoryReport | None  # None for a gated repo without access: no config.json, no architecture to size
    gpu: GpuFit | None
    limits: Limits | None = None  # with a GPU and tables: the largest context and batch that fit
    sweep: tuple[SweepRow, ...] = ()  # with tables: totals over sequence lengths x batch sizes
    curve: tuple[SweepRow, ...] = ()  # with tables: totals over powers of two up to the context, at the chosen batch
    what_if: tuple[WhatIfRow, ...] = ()  # with tables: the usual savers, one change at a time
    explanation: Explanation | None = None  # with explain: every formula, and rules of thumb
    pipeline: PipelineMemory | None = None  # a Diffusers pipeline: its memory per component and with CPU offload

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.spec.warnings + (self.memory.warnings if self.memory else ())))

    def to_dict(self) -> dict[str, Any]:
        """The JSON `hfmem inspect --json` prints for this model (CONTRACT.md; sizes in bytes)."""
        from .views.json import to_dict

        return to_dict(self)

    def _repr_html_(self) -> str:
        """The model's section of the HTML report, for notebooks."""
        from .views.html import model_fragment

        return model_fragment(self)

    def __repr__(self) -> str:
        from .views.text import one_line_summary

        return f"<ModelReport {one_line_summary(self)}>"


def open_snapshot(
    reference: str,
    *,
    revision: str | None = None,
    hub: HubOptions | None = None,
    file: str | None = None,
    quant: str | None = None,
) -> Snapshot:
    """Resolve a model reference (repo id, repo id@revision, URL or local directory) into a Snapshot; `file` or
    `quant` chooses the GGUF variant of a repo of GGUF files (hfmem.gguf.select_variant). The sources and the order
    they are asked in are hfmem.sources'."""
    return resolve(parse_ref(reference, revision), Request(hub=hub or HubOptions(), variant=Variant(file, quant)))


def inspect_model(
    reference: str,
    settings: Settings | None = None,
    *,
    gpu: Gpu | None = None,
    revision: str | None = None,
    hub: HubOptions | None = None,
    tables: bool = False,
    explain: bool = False,
    file: str | None = None,
    quant: str | None = None,
    image: ImageSettings | None = None,
) -> ModelReport:
    """Everything hfmem reports about one model: exact spec, memory per mode, and the GPU fit when `gpu` is given;
    with `tables` the largest context/batch, the sweep and the what-if rows; with `explain` every formula. `file`
    or `quant` chooses a GGUF variant; `image` a Diffusers pipeline's image size and weight variant."""
    snapshot = open_snapshot(reference, revision=revision, hub=hub, file=file, quant=quant)
    return report_for(snapshot, settings or Settings(), gpu, tables=tables, explain=explain, image=image)


def inspect(
    reference: str,
    *,
    gpu: str | Gpu | None = None,
    revision: str | None = None,
    token: str | None = None,
    tables: bool = False,
    explain: bool = False,
    height: int | None = None,
    width: int | None = None,
    variant: str | None = None,
    **settings: Any,
) -> ModelReport:
    """hfmem for a notebook: `hfmem.inspect("Qwen/Qwen2.5-7B", gpu="H100", seq_len=8192, lora_targets="all-linear")`.

    `gpu` is a catalogue name or a Gpu; `settings` are Settings fields (batch_size, seq_len, dtype, optimizer,
    recipe, lora_rank, lora_targets, qlora, gpus, zero, ...), strings accepted as on the command line; `height`,
    `width` and `variant` are a Diffusers pipeline's image size and weight variant."""
    device = find_gpu(gpu) if isinstance(gpu, str) else gpu
    hub = HubOptions(token=token) if token else None
    return inspect_model(
        reference, Settings(**settings), gpu=device, revision=revision, hub=hub, tables=tables, explain=explain,
        image=ImageSettings(height, width, variant),
    )


def report_for(
    snapshot: Snapshot,
    settings: Settings,
    gpu: Gpu | None = None,
    *,
    tables: bool = False,
    explain: bool = False,
    image: ImageSettings | None = None,
) -> ModelReport:
    """The report of a resolved snapshot; `image` is a Diffusers pipeline's image size and weight variant."""
    if snapshot.pipeline is not None:
        return pipeline_report(snapshot, settings, gpu, image or ImageSettings())
    spec = build_spec(snapshot)
    if snapshot.public is not None:  # only the public metadata: nothing to estimate memory from (views say so)
        return ModelReport(spec, snapshot, settings, None, None)
    if spec.adapter is not None:
        settings = adapter_settings(settings, spec.adapter)
    memory = estimate(spec, settings)
    fit = fit_gpus(memory, gpu, settings) if gpu is not None else None
    facts = memory.facts  # the tables reuse the estimate's pass over the tensors
    return ModelReport(
        spec,
        snapshot,
        settings,
        memory,
        fit,
        limits=limits(facts, settings, gpu) if tables and gpu is not None else None,
        sweep=tuple(sweep(facts, settings)) if tables else (),
        curve=seq_curve(facts, settings) if tables else (),
        what_if=tuple(what_if(facts, settings, gpu)) if tables else (),
        explanation=explanation(facts, settings) if explain else None,
    )


def pipeline_report(snapshot: Snapshot, settings: Settings, gpu: Gpu | None, image: ImageSettings) -> ModelReport:
    """A Diffusers pipeline: inference from hfmem.diffusion (every component resident; `pipeline` in the JSON also
    has model CPU offload); training and LoRA from the memory model over the denoiser's weights alone, without
    activations (not modelled for diffusion), LoRA on its attention projections unless targets are given. No
    tables: they sweep a sequence length."""
    pipeline = snapshot.pipeline
    assert pipeline is not None
    snapshot = replace(snapshot, pipeline=pipeline.choose(image.variant, snapshot.model))
    settings = replace(settings, lora_targets=settings.lora_targets or LORA_TARGETS)
    spec = build_spec(snapshot)
    assert spec.pipeline is not None
    run = pipeline_memory(spec.pipeline, height=image.height, width=image.width, batch_size=settings.batch_size,
                          dtype=settings.dtype, attention=settings.attention,
                          overhead_bytes=settings.overhead_bytes)  # fmt: skip
    trainee = replace(spec, tensors=denoiser_only(spec.pipeline))
    generic = estimate(trainee, settings)
    shown = {"engine": "diffusers", "batch_size": settings.batch_size, "seq_len": run.denoiser_tokens,
             "height": run.height, "width": run.width, "dtype": run.dtype, "attention": settings.attention,
             "variant": spec.pipeline.variant}  # fmt: skip
    terms = {"weights": run.weights_bytes, "activations": run.activations_bytes}
    formulas = (
        Formula("weights", "sum of every component's tensors at the load dtype", {"components": len(run.components)},
                run.weights_bytes, True),
        Formula("activations", "the largest phase: text encoders, denoiser (x guidance batch) or VAE decode",
                {"height": run.height, "width": run.width, "guidance_batch": run.guidance_batch},
                run.activations_bytes, False),
    )  # fmt: skip
    note = ("training and LoRA of a Diffusers pipeline: the denoiser's weights, gradients and optimizer states "
            "only; its activations are not modelled")
    memory = replace(
        generic,
        inference=Estimate({**terms, "overhead": settings.overhead_bytes}, shown, formulas),
        cpu=Estimate(terms, {"dtype": run.dtype, "pickle_only": False}, formulas),
        warnings=tuple(dict.fromkeys(run.warnings + (note,))),
    )
    fit = fit_gpus(memory, gpu, settings) if gpu is not None else None
    if fit is not None:  # spread over GPUs, a pipeline's components go whole (device_map="balanced")
        assert gpu is not None
        fit.gpus_needed[Mode.INFERENCE] = spread_gpus(run, usable_bytes(gpu, settings))
    return ModelReport(spec, snapshot, settings, memory, fit, pipeline=run)


def adapter_settings(settings: Settings, adapter: Adapter) -> Settings:
    """The LoRA estimate of an adapter repo takes the adapter's r and target_modules where the settings leave them
    unset (None: no --lora-rank / --lora-targets given). A regex target_modules is not matched here: the
    architecture's attention projections stand in for it."""
    targets = adapter.target_modules
    return replace(
        settings,
        lora_rank=settings.lora_rank or adapter.rank,
        lora_targets=settings.lora_targets or (targets if isinstance(targets, tuple) and targets else None),
    )


def serve_model(
    reference: str,
    gpu: Gpu,
    settings: EngineSettings,
    *,
    solve: bool = False,
    concurrency: float = 1,
    max_gpus: int = 8,
    revision: str | None = None,
    hub: HubOptions | None = None,
) -> ServePlan | None:
    """How the engine of `settings` (VllmSettings or SglangSettings) starts the model on `gpu`; with `solve`, the
    smallest layout of at most `max_gpus` that starts and serves `concurrency` full-length requests (None if none).
    """
    snapshot = open_snapshot(reference, revision=revision, hub=hub)
    if snapshot.public is not None:
        raise AccessDenied(snapshot.warnings[0], hint="token")  # an engine's plan needs the architecture
    spec = build_spec(snapshot)
    if spec.pipeline is not None:
        raise UnsupportedModel(f"{spec.model} is a Diffusers pipeline: vLLM and SGLang serve language models")
    if solve:
        return engines.solve(spec, gpu, settings, concurrency=concurrency, max_gpus=max_gpus)
    return engines.plan(spec, gpu, settings)
