"""sentence-transformers repos: the modules of modules.json, each counted (pure; the resolvers pass the readers).

Layout as sentence-transformers saves it (sentence_transformers/SentenceTransformer.py `_load_sbert_model`,
models/Module.py, at 85ec645): modules.json is a list of {"idx", "name", "path", "type"}; each module loads from its
`path` folder ("" for the repo's root, where the Transformer module's config.json and weights usually are). A module
with weights saves them as `model.safetensors` (or `pytorch_model.bin`) beside its own config.json: Dense
(models/Dense.py:53) is one `nn.Linear(in_features, out_features, bias)`, stored as `linear.weight` and
`linear.bias`. Pooling and Normalize have no weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from .errors import ConfigError, NoUsableFiles
from .header import Header, Tensor
from .untrusted import decode_json, is_repo_path, one_line, shortened

MODULES = "modules.json"
MAX_MODULES = 64  # modules one repo may list (real pipelines have 2 to 5)
WEIGHTS = "model.safetensors"


def is_sentence_repo(names: set[str]) -> bool:
    """A sentence-transformers repo whose Transformer module sits at the root: modules.json beside config.json."""
    return MODULES in names and "config.json" in names


def no_root_transformer(names: set[str], where: str) -> NoUsableFiles | None:
    """The error for a sentence-transformers repo whose Transformer module is in a folder (`0_Transformer/`, as
    sentence-transformers saved them before v2), which hfmem does not read; None for any other repo."""
    if MODULES not in names or "config.json" in names:
        return None
    return NoUsableFiles(f"{where}: a sentence-transformers repo whose Transformer module is in a folder, not at "
                         "the root: hfmem reads a root config.json")  # fmt: skip


@dataclass(frozen=True)
class SentenceModule:
    """One module of modules.json. `tensors` are its weights' (named `path.name`), empty for the root Transformer
    (the checkpoint the spec counts) and for modules without weights."""

    name: str
    path: str
    type: str  # the class's own name: "Transformer", "Pooling", "Dense", "Normalize", ...
    tensors: tuple[Tensor, ...] = ()
    weights_file: str | None = None  # what the tensors were read from (None: none, or counted from config.json)

    @property
    def parameters(self) -> int:
        return sum(t.numel * t.count for t in self.tensors)


@dataclass(frozen=True)
class SentenceModel:
    modules: tuple[SentenceModule, ...]
    warnings: tuple[str, ...] = ()

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        """The modules' own weights, beyond the root checkpoint's."""
        return tuple(t for m in self.modules for t in m.tensors)


def module_entries(raw: bytes, where: str) -> list[tuple[str, str, str]]:
    """(name, path, type) of each module modules.json lists, in its order; each path a plain relative one."""
    listed = decode_json(raw, f"{where}: {MODULES}", ConfigError)
    if not isinstance(listed, list) or not listed or len(listed) > MAX_MODULES:
        raise ConfigError(f"{where}: {MODULES} is not a list of 1 to {MAX_MODULES} modules")
    entries = []
    for item in listed:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("path", "type")):
            raise ConfigError(f"{where}: {MODULES} holds a module without a path and a type")
        path, kind = item["path"].strip("/"), item["type"]
        if path and not is_repo_path(path):  # a module without files (Normalize) has no folder in the repo
            raise NoUsableFiles(f"{where}: {MODULES} names {shortened(path)}, which is not a folder inside the repo")
        name = item.get("name")
        entries.append((name if isinstance(name, str) else path, path, one_line(kind.rsplit(".", 1)[-1])[:60]))
    return entries


def files_to_read(entries: Iterable[tuple[str, str, str]], names: set[str]) -> tuple[list[str], list[str]]:
    """(configs, safetensors files) the modules beyond the root need: a module folder's model.safetensors, or, for
    a Dense module that has only pytorch_model.bin, its config.json (nn.Linear's shape)."""
    configs, weights = [], []
    for _, path, kind in entries:
        if not path:
            continue
        if f"{path}/{WEIGHTS}" in names:
            weights.append(f"{path}/{WEIGHTS}")
        elif kind == "Dense" and f"{path}/config.json" in names:
            configs.append(f"{path}/config.json")
    return configs, weights


def read_sentence_model(
    raw_modules: bytes,
    names: set[str],
    where: str,
    read_config: Callable[[str], bytes],
    read_header: Callable[[str], Header],
    read_all: Callable[[Callable[[str], Any], list[str]], Iterable[Any]] = map,
) -> SentenceModel:
    """Every module of modules.json, with its weights from its safetensors header; a Dense module with only pickled
    weights is counted from its config.json (exact: nn.Linear's shape; float32, as torch creates it)."""
    entries = module_entries(raw_modules, where)
    configs, weights = files_to_read(entries, names)
    headers = dict(zip(weights, read_all(read_header, weights)))
    raw_configs = dict(zip(configs, read_all(read_config, configs)))
    modules, warnings = [], []
    for name, path, kind in entries:
        if not path:
            modules.append(SentenceModule(name, path, kind))
        elif (file := f"{path}/{WEIGHTS}") in headers:
            tensors = tuple(replace(t, name=f"{path}.{t.name}") for t in headers[file].tensors)
            modules.append(SentenceModule(name, path, kind, tensors, file))
        elif (file := f"{path}/config.json") in raw_configs:
            modules.append(SentenceModule(name, path, kind, _dense(raw_configs[file], path, where)))
        else:
            if any(n.startswith(f"{path}/") and n.endswith((".bin", ".pt", ".pth")) for n in names):
                warnings.append(f"the {kind} module in {path}/ has only pickled weights: not counted")
            modules.append(SentenceModule(name, path, kind))
    return SentenceModel(tuple(modules), tuple(warnings))


def _dense(raw: bytes, path: str, where: str) -> tuple[Tensor, ...]:
    """A Dense module's nn.Linear from its config.json (models/Dense.py:53), in float32."""
    config = decode_json(raw, f"{where}: {path}/config.json", ConfigError)
    ins = config.get("in_features") if isinstance(config, dict) else None
    outs = config.get("out_features") if isinstance(config, dict) else None
    if not all(type(v) is int and 0 < v < 2**31 for v in (ins, outs)):
        raise ConfigError(f"{where}: {path}/config.json has no valid in_features and out_features")
    assert isinstance(ins, int) and isinstance(outs, int)
    weight = Tensor(f"{path}.linear.weight", "F32", (outs, ins))
    return (weight, Tensor(f"{path}.linear.bias", "F32", (outs,))) if config.get("bias", True) else (weight,)
