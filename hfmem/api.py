"""The library entry points: resolve a reference and build its report."""

from __future__ import annotations

from dataclasses import dataclass

from .gpus import Gpu
from .hub import HubOptions, fetch_snapshot
from .local import read_snapshot
from .memory import GpuFit, MemoryReport, Settings, estimate, fit_gpus
from .refs import parse_ref
from .snapshot import Snapshot
from .spec import ModelSpec, build_spec


@dataclass(frozen=True)
class ModelReport:
    spec: ModelSpec
    snapshot: Snapshot
    settings: Settings
    memory: MemoryReport
    gpu: GpuFit | None

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.spec.warnings + self.memory.warnings))


def open_snapshot(reference: str, *, revision: str | None = None, hub: HubOptions | None = None) -> Snapshot:
    """Resolve a model reference (repo id, repo id@revision, URL or local directory) into a Snapshot."""
    ref = parse_ref(reference, revision)
    if ref.path is not None:
        return read_snapshot(ref)
    return fetch_snapshot(ref, hub or HubOptions())


def inspect_model(
    reference: str,
    settings: Settings | None = None,
    *,
    gpu: Gpu | None = None,
    revision: str | None = None,
    hub: HubOptions | None = None,
) -> ModelReport:
    """Everything hfmem reports about one model: exact spec, memory per mode, and the GPU fit when `gpu` is given."""
    settings = settings or Settings()
    snapshot = open_snapshot(reference, revision=revision, hub=hub)
    return report_for(snapshot, settings, gpu)


def report_for(snapshot: Snapshot, settings: Settings, gpu: Gpu | None = None) -> ModelReport:
    spec = build_spec(snapshot)
    memory = estimate(spec, settings)
    fit = fit_gpus(memory, gpu, settings) if gpu is not None else None
    return ModelReport(spec, snapshot, settings, memory, fit)
