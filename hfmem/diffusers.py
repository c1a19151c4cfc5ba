"""Diffusers pipelines (model_index.json and one folder per component): the components, their weight variants and
exact counts (pure; the resolvers pass the readers). The memory of running one is hfmem.diffusion's.

Layout as diffusers reads it (huggingface/diffusers at 58eb52c):
- model_index.json maps each component to `[library, class]` (`[null, null]`: an optional one left out); keys that
  start with `_` and values that are not such pairs are the pipeline's own settings (pipelines/pipeline_utils.py:291).
- A component is the folder of its name, holding its config.json and its weights: `diffusion_pytorch_model`
  (diffusers models) or `model` (transformers models), `.safetensors`, sharded as `-0000i-of-0000N` with an index.
- A variant (`fp16`, `bf16`, `non_ema`, ...) is `NAME.VARIANT.safetensors`, `NAME.VARIANT-0000i-of-0000N.safetensors`
  or the legacy `NAME-0000i-of-0000N.VARIANT.safetensors`. Without a variant diffusers loads each component's
  non-variant files; with one, each component's variant files where it has them and its non-variant files
  elsewhere, and refuses a variant no component has (pipelines/pipeline_loading_utils.py:223-323,
  variant_compatible_siblings).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigError, NoUsableFiles
from .header import Header, Tensor
from .untrusted import decode_json, one_line

MODEL_INDEX = "model_index.json"
MAX_COMPONENTS = 32  # components one pipeline may list (real ones have 3 to 10)
_WEIGHTS = re.compile(
    r"(?P<prefix>diffusion_pytorch_model|model)"
    r"(?:(?P<shard>-\d{5}-of-\d{5})(?:\.(?P<legacy>[^/.]+))?|\.(?P<variant>[^/.]+?)(?:-\d{5}-of-\d{5})?)?"
    r"\.safetensors"
)
# The component that denoises: a UNet or a transformer (DiT / MMDiT), by folder name as pipelines name it.
DENOISERS = ("transformer", "unet", "prior", "decoder")


def is_pipeline_repo(names: set[str]) -> bool:
    """A Diffusers pipeline: model_index.json, and no transformers checkpoint (config.json and safetensors) at the
    root to resolve instead."""
    checkpoint = "config.json" in names and any(n.endswith(".safetensors") and "/" not in n for n in names)
    return MODEL_INDEX in names and not checkpoint


@dataclass(frozen=True)
class Component:
    """One component with weights: its folder, library and class, config.json, and the safetensors files of each
    variant (None: the non-variant files) with the tensors of each (names under the folder's, `unet.conv_in...`)."""

    name: str
    library: str
    class_name: str
    config: Mapping[str, Any]
    files: Mapping[str | None, tuple[str, ...]]  # variant -> its safetensors files, sorted
    tensors: Mapping[str | None, tuple[Tensor, ...]] = field(default_factory=dict)

    def chosen(self, variant: str | None) -> str | None:
        """The variant diffusers loads for this component when asked for `variant`."""
        return variant if variant in self.files else None if None in self.files else next(iter(self.files))


@dataclass(frozen=True)
class Pipeline:
    """A pipeline's components with weights (model_index.json's order), and the variant chosen (None: diffusers'
    default, the non-variant files)."""

    class_name: str
    components: tuple[Component, ...]
    variant: str | None = None
    others: tuple[str, ...] = ()  # components without weights: schedulers, tokenizers, feature extractors
    warnings: tuple[str, ...] = ()

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(sorted({v for c in self.components for v in c.files if v is not None}))

    def choose(self, variant: str | None, where: str) -> Pipeline:
        """The pipeline as diffusers loads it with `variant`: refused when no component has it (`where` names the
        pipeline in the error)."""
        if variant is not None and variant not in self.variants:
            have = ", ".join(self.variants) or "none"
            raise NoUsableFiles(f"{where}: no component has the weight variant '{one_line(variant)[:40]}' "
                                f"(variants: {have})")  # fmt: skip
        return replace(self, variant=variant)

    def files(self, component: Component) -> tuple[str, ...]:
        return component.files[component.chosen(self.variant)]

    def tensors(self, component: Component) -> tuple[Tensor, ...]:
        return component.tensors[component.chosen(self.variant)]

    @property
    def denoiser(self) -> Component | None:
        return next((c for name in DENOISERS for c in self.components if c.name == name), None)

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)


def read_index(raw: bytes, where: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """(the pipeline's class, component -> (library, class)) from model_index.json."""
    index = decode_json(raw, f"{where}: {MODEL_INDEX}", ConfigError)
    if not isinstance(index, dict):
        raise ConfigError(f"{where}: {MODEL_INDEX} is not a JSON object")
    pipeline = index.get("_class_name")
    components = {
        name: (value[0], value[1])
        for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2
        and all(isinstance(v, str) for v in value)  # [null, null]: an optional component left out
    }  # fmt: skip
    if not isinstance(pipeline, str) or not components or len(components) > MAX_COMPONENTS:
        raise ConfigError(f"{where}: {MODEL_INDEX} names no pipeline class or no components")
    return one_line(pipeline)[:80], components


def weight_files(names: Iterable[str], component: str) -> dict[str | None, tuple[str, ...]]:
    """A component folder's safetensors files by variant (None: non-variant), as variant_compatible_siblings
    groups them."""
    grouped: dict[str | None, list[str]] = {}
    for name in names:
        folder, _, file = name.partition("/")
        match = _WEIGHTS.fullmatch(file) if folder == component and "/" not in file else None
        if match:
            grouped.setdefault(match["variant"] or match["legacy"], []).append(name)
    return {variant: tuple(sorted(files)) for variant, files in sorted(grouped.items(), key=lambda kv: kv[0] or "")}


def files_to_read(raw_index: bytes, names: set[str], where: str) -> tuple[str, dict[str, tuple[str, str]], list[str], list[str]]:
    """(pipeline class, components, their config.json files, every safetensors file of every variant)."""
    pipeline, listed = read_index(raw_index, where)
    configs, weights = [], []
    for name in listed:
        files = weight_files(names, name)
        if files and f"{name}/config.json" in names:
            configs.append(f"{name}/config.json")
            weights += [f for group in files.values() for f in group]
    return pipeline, listed, configs, weights


def read_pipeline(
    raw_index: bytes,
    names: set[str],
    where: str,
    read_config: Callable[[str], bytes],
    read_header: Callable[[str], Header],
    read_all: Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]] = map,
) -> Pipeline:
    """Every component of model_index.json with weights: its config.json and the header of each of its safetensors
    files, every variant's (a header is one small ranged read; the variant is chosen later, per run)."""
    pipeline, listed, configs, weights = files_to_read(raw_index, names, where)
    jobs: list[tuple[Callable[[str], Any], str]] = [(read_config, n) for n in configs] + [(read_header, n) for n in weights]
    read = list(read_all(lambda job: job[0](job[1]), jobs))  # every config and header at once: one round trip
    raw_configs, headers = dict(zip(configs, read[: len(configs)])), dict(zip(weights, read[len(configs) :]))
    components, others, warnings = [], [], []
    for name, (library, class_name) in listed.items():
        raw = raw_configs.get(f"{name}/config.json")
        if raw is None:
            others.append(name)
            if any(n.startswith(f"{name}/") and n.endswith((".bin", ".pt", ".pth", ".ckpt")) for n in names):
                warnings.append(f"{name} has only pickled weights: not counted")
            continue
        config = decode_json(raw, f"{where}: {name}/config.json", ConfigError)
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: {name}/config.json is not a JSON object")
        files = weight_files(names, name)
        tensors = {variant: tuple(replace(t, name=f"{name}.{t.name}") for f in group for t in headers[f].tensors)
                   for variant, group in files.items()}  # fmt: skip
        if None not in files:
            warnings.append(f"{name} has no non-variant weights: read its {next(iter(files))} variant (diffusers "
                            f"loads it only with variant='{next(iter(files))}')")
        components.append(Component(name, one_line(library)[:40], one_line(class_name)[:80], config, files, tensors))
    if not components:
        raise NoUsableFiles(f"{where}: no component of the pipeline has config.json and safetensors weights")
    return Pipeline(pipeline, tuple(components), None, tuple(others), tuple(warnings))
