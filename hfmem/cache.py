"""The metadata cache: what a repo holds at a commit never changes, so its file list, config and headers are kept.

Layout, beside huggingface_hub's own `hub/` folder and in its naming style:

    <HF_HOME>/hfmem/models--ORG--NAME/snapshots/<commit>.json    files, config.json, safetensors headers, gated;
                                                                  GGUF headers per variant read; adapter or not;
                                                                  a sentence-transformers repo's modules; a
                                                                  Diffusers pipeline's components
    <HF_HOME>/hfmem/models--ORG--NAME/refs/<revision>             the commit a branch or tag last resolved to

Files are written atomically (a temporary file, then a rename). A missing, unreadable or corrupt entry reads as a
miss, and a write that fails is skipped: the cache can make a run faster, never make it fail.

The folder may have been altered, so an entry is checked as fully as a fresh answer from the Hub (`_decode`), and
file names come only from a commit id or a revision: a name that is not one, or a path that would resolve outside
the root (`..`, a symlink), is never read or written.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from huggingface_hub import constants

from . import dtypes
from .diffusers import MAX_COMPONENTS, Component, Pipeline, is_pipeline_repo
from .errors import BadResponse, HfmemError
from .gguf import (
    GGML_TYPES,
    GgufArray,
    GgufModel,
    GgufRepo,
    GgufTensor,
    Value,
    architecture_facts,
    group_variants,
    is_gguf_repo,
    select_variant,
)
from .header import Header, Tensor
from .local import read_small
from .peft import ADAPTER_WEIGHTS, adapter_snapshot
from .refs import ModelRef
from .sentence import MAX_MODULES, SentenceModel, SentenceModule, is_sentence_repo
from .snapshot import RepoFile, Snapshot
from .untrusted import (
    MAX_BYTES,
    MAX_FILES,
    MAX_GGUF_DIMS,
    MAX_GGUF_PAIRS,
    MAX_TENSORS,
    decode_json,
    is_commit,
    is_repo_path,
    one_line,
)

FORMAT = 5  # bump when the entry layout changes; entries of another format are misses
# What an entry holds. `checkpoint`: config and headers are the repo's (a transformers checkpoint, or with `adapter`
# a PEFT adapter's config and header); `gguf`: the joined headers of each GGUF variant read, by variant name;
# `sentence`: a sentence-transformers repo's modules, each with its own weights; `pipeline`: a Diffusers
# pipeline's components, each with its config and every weight variant's tensors (null for any other repo).
FIELDS = {"format", "repo_id", "commit", "files", "config", "headers", "gated", "checkpoint", "adapter", "gguf",
          "sentence", "pipeline"}  # fmt: skip
MAX_ENTRY_BYTES = MAX_BYTES["listing"] + MAX_BYTES["metadata"] + MAX_BYTES["config"]


@dataclass(frozen=True)
class MetadataCache:
    root: Path

    @classmethod
    def default(cls) -> MetadataCache:
        """The cache under huggingface_hub's HF_HOME (read at call time, so tests and HF_HOME changes apply)."""
        return cls(Path(constants.HF_HOME) / "hfmem")

    def commit(self, repo_id: str, revision: str) -> str | None:
        """The commit `revision` of `repo_id` last resolved to, if known."""
        raw = self._read(self._ref_path(repo_id, revision), 64)
        try:
            sha = raw.decode().strip() if raw is not None else None
        except UnicodeDecodeError:
            return None
        return sha if is_commit(sha) else None

    def save_commit(self, repo_id: str, revision: str, commit: str) -> None:
        if is_commit(commit):
            self._write(self._ref_path(repo_id, revision), commit)

    def load(self, ref: ModelRef, commit: str, *, file: str | None = None, quant: str | None = None
             ) -> Snapshot | None:  # fmt: skip
        """The snapshot of `ref`'s repo at `commit`, as `ref` asked for it (`file`/`quant`: the GGUF variant, as the
        Hub's resolver chooses it), or None on a miss or a corrupt entry."""
        assert ref.repo_id is not None
        try:
            entry = self._entry(ref.repo_id, commit)
            return _decode(entry, ref, commit, file, quant) if entry is not None else None
        except (HfmemError, ValueError):
            return None

    def save(self, snapshot: Snapshot) -> None:
        """Keep a snapshot resolved on the Hub (its commit is what the entry is keyed by). A GGUF variant joins the
        entry's other variants and checkpoint; a checkpoint joins its variants."""
        assert snapshot.repo_id is not None and snapshot.commit is not None
        kept = None
        if "gguf" in snapshot.formats:  # only then is there anything to join (a checkpoint's entry is not reread)
            try:
                kept = self._entry(snapshot.repo_id, snapshot.commit)
            except (HfmemError, ValueError):
                pass
        checkpoint = snapshot.gguf is None
        entry: dict[str, Any] = {
            "format": FORMAT,
            "repo_id": snapshot.repo_id,
            "commit": snapshot.commit,
            "files": [[f.path, f.size] for f in snapshot.files],
            "config": snapshot.config,
            "headers": {name: _encode_header(h) for name, h in snapshot.headers.items()},
            "gated": snapshot.gated,
            "checkpoint": checkpoint,
            "adapter": snapshot.adapter is not None,
            "gguf": dict(kept["gguf"]) if kept is not None and isinstance(kept.get("gguf"), dict) else {},
            "sentence": _encode_sentence(snapshot.sentence) if snapshot.sentence is not None else None,
            "pipeline": _encode_pipeline(snapshot.pipeline) if snapshot.pipeline is not None else None,
        }
        if snapshot.gguf is not None:
            entry["gguf"][snapshot.gguf.chosen.name] = _encode_gguf(snapshot.gguf.model)
            if kept is not None and kept.get("checkpoint") is True:
                entry |= {key: kept[key] for key in ("config", "headers", "checkpoint", "adapter", "sentence",
                                                     "pipeline")}  # fmt: skip
        try:
            text = json.dumps(entry, separators=(",", ":"), allow_nan=False)
        except (ValueError, RecursionError):  # a config nested deeper than json.dumps goes, here and now
            return
        self._write(self._snapshot_path(snapshot.repo_id, snapshot.commit), text)

    def _entry(self, repo_id: str, commit: str) -> dict[str, Any] | None:
        """The entry kept for `repo_id` at `commit`, a JSON object of this format and this repo and commit, unchecked
        beyond that (_decode checks the rest); None on a miss."""
        raw = self._read(self._snapshot_path(repo_id, commit), MAX_ENTRY_BYTES)
        if raw is None:
            return None
        entry = decode_json(raw, "cache entry", BadResponse)
        _require(isinstance(entry, dict) and entry.keys() >= FIELDS)
        _require((entry["format"], entry["repo_id"], entry["commit"]) == (FORMAT, repo_id, commit))
        return entry  # type: ignore[no-any-return]

    def _path(self, repo_id: str, folder: str, name: str) -> Path | None:
        """<root>/models--ORG--NAME/<folder>/<name>, or None when that would not be a file inside the root."""
        path = self.root / ("models--" + repo_id.replace("/", "--")) / folder / name
        if name in ("", ".", "..") or _resolved(self.root) not in path.resolve().parents:
            return None
        return path

    def _ref_path(self, repo_id: str, revision: str) -> Path | None:
        return self._path(repo_id, "refs", quote(revision, safe=""))  # "refs/pr/1" is one file name

    def _snapshot_path(self, repo_id: str, commit: str) -> Path | None:
        return self._path(repo_id, "snapshots", f"{commit}.json") if is_commit(commit) else None

    @staticmethod
    def _read(path: Path | None, limit: int) -> bytes | None:
        if path is None or not path.is_file():  # a folder, a pipe or a device is no entry
            return None
        try:
            return read_small(path, limit, BadResponse)
        except HfmemError:
            return None

    @staticmethod
    def _write(path: Path | None, text: str) -> None:
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            pass  # a read-only or full disk costs the next run its speed-up, nothing more


def _encode_header(header: Header) -> dict[str, Any]:
    return {"metadata": dict(header.metadata), "tensors": _encode_tensors(header.tensors)}


def _encode_tensors(tensors: tuple[Tensor, ...]) -> list[list[Any]]:
    return [[t.name, t.dtype, list(t.shape), t.nbytes, t.count] for t in tensors]


def _encode_sentence(model: SentenceModel) -> dict[str, Any]:
    modules = [[m.name, m.path, m.type, m.weights_file, _encode_tensors(m.tensors)] for m in model.modules]
    return {"modules": modules, "warnings": list(model.warnings)}


def _decode(entry: dict[str, Any], ref: ModelRef, commit: str, file: str | None, quant: str | None) -> Snapshot:
    """The snapshot an entry holds for the variant asked for, every field checked as a fresh answer's would be:
    ValueError when one is off or the entry lacks what was asked for (a GGUF variant not read before); an HfmemError
    when what it holds is refused as the Hub's answer would be."""
    files, config, headers, gated = entry["files"], entry["config"], entry["headers"], entry["gated"]
    _require(isinstance(files, list) and len(files) <= MAX_FILES and all(map(_is_file, files)))
    _require(isinstance(config, dict) and isinstance(headers, dict) and (gated is None or isinstance(gated, str)))
    _require(all(type(entry[key]) is bool for key in ("checkpoint", "adapter")) and isinstance(entry["gguf"], dict))
    repo = Snapshot(
        model=ref.name,
        repo_id=ref.repo_id,
        revision=ref.revision,
        commit=commit,
        source="cache",
        files=tuple(RepoFile(path, size) for path, size in files),
        config={},
        headers={},
        gated=gated,
    )
    chosen = file is not None or quant is not None
    if is_gguf_repo(repo.files, chosen):  # the variant the Hub's resolver would choose, if it was read before
        kept = entry["gguf"]
        variants = group_variants(repo.files)
        variant = select_variant(variants, file=file, quant=quant)
        _require(variant.name in kept)
        model = _decode_gguf(kept[variant.name], variant.files)
        return replace(repo, gguf=GgufRepo(variants, variant, model, architecture_facts(model.metadata)))
    _require(entry["checkpoint"])
    decoded = {name: _decode_header(name, h) for name, h in headers.items()}
    if entry["adapter"]:  # read again as the Hub's answer is: the same config and header, the same checks
        _require(list(decoded) == [ADAPTER_WEIGHTS])
        raw = json.dumps(config).encode()
        return adapter_snapshot(raw, decoded[ADAPTER_WEIGHTS], ref.text, repo)
    names = {f.path for f in repo.files}
    sentence, pipeline = entry["sentence"], entry["pipeline"]  # held for those repos, and only for them
    _require((sentence is not None) == is_sentence_repo(names) and (pipeline is not None) == is_pipeline_repo(names))
    return replace(repo, config=config, headers=decoded,
                   sentence=None if sentence is None else _decode_sentence(sentence),
                   pipeline=None if pipeline is None else _decode_pipeline(pipeline, names))  # fmt: skip


def _encode_gguf(model: GgufModel) -> dict[str, Any]:
    return {
        "files": list(model.files),
        "metadata": {key: _encode_value(value) for key, value in model.metadata.items()},
        "tensors": [[t.name, t.ggml_type, list(t.shape), t.offset, t.nbytes] for t in model.tensors],
    }


def _encode_value(value: Value) -> Any:
    """A GGUF metadata value as JSON: arrays kept as lists, long ones as {"type", "length"}."""
    if isinstance(value, GgufArray):
        return {"type": value.type, "length": value.length}
    return list(value) if isinstance(value, tuple) else value


def _decode_gguf(encoded: Any, files: tuple[str, ...]) -> GgufModel:
    """A stored GGUF variant: one file name per file of the variant (as read_header named them), metadata of GGUF's
    value kinds, and tensors of known ggml types whose sizes agree with their shapes (read_header's rules), each
    name once."""
    _require(isinstance(encoded, dict) and isinstance(encoded.get("files"), list))
    _require(len(encoded["files"]) == len(files) and all(isinstance(name, str) for name in encoded["files"]))
    metadata, tensors = encoded.get("metadata"), encoded.get("tensors")
    _require(isinstance(metadata, dict) and len(metadata) <= MAX_GGUF_PAIRS)
    _require(isinstance(tensors, list) and len(tensors) <= MAX_TENSORS)
    decoded = tuple(map(_decode_gguf_tensor, tensors))
    _require(len({t.name for t in decoded}) == len(decoded))
    return GgufModel(tuple(encoded["files"]), {key: _decode_value(v) for key, v in metadata.items()}, decoded)


def _decode_value(value: Any) -> Value:
    if isinstance(value, dict):
        _require(value.keys() == {"type", "length"} and isinstance(value["type"], str) and _is_int(value["length"]))
        return GgufArray(value["type"], value["length"])
    if isinstance(value, list):
        _require(len(value) <= MAX_HELD_ARRAY and all(isinstance(v, (int, float, str)) for v in value))
        return tuple(value)
    _require(isinstance(value, (int, float, str)))  # bool is an int
    return value  # type: ignore[no-any-return]


def _decode_gguf_tensor(item: Any) -> GgufTensor:
    _require(isinstance(item, list) and len(item) == 5)
    name, ggml_type, shape, offset, nbytes = item
    _require(isinstance(name, str) and ggml_type in GGML_SIZES and isinstance(shape, list))
    _require(len(shape) <= MAX_GGUF_DIMS and all(map(_is_int, shape)) and _is_int(offset) and _is_int(nbytes))
    block, block_bytes = GGML_SIZES[ggml_type]
    _require((shape[0] if shape else 1) % block == 0 and math.prod(shape) // block * block_bytes == nbytes)
    return GgufTensor(name, ggml_type, tuple(shape), offset, nbytes)


GGML_SIZES = {name: (block, block_bytes) for name, block, block_bytes in GGML_TYPES.values()}
MAX_HELD_ARRAY = 1024  # the longest metadata array gguf.read_header keeps whole


def _is_file(item: Any) -> bool:
    """[path, size]: a plain relative path, and a size in bytes or null."""
    return (
        isinstance(item, list) and len(item) == 2 and is_repo_path(item[0]) and (item[1] is None or _is_int(item[1]))
    )


def _decode_header(name: str, encoded: Any) -> Header:
    """header.header_from_dict's rules for a stored header: known-width dtypes sized consistently, non-negative
    integer shapes, string metadata."""
    _require(is_repo_path(name) and isinstance(encoded, dict))
    metadata, tensors = encoded.get("metadata"), encoded.get("tensors")
    _require(isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values()))
    _require(isinstance(tensors, list) and len(tensors) <= MAX_TENSORS)
    return Header(tuple(map(_decode_tensor, tensors)), metadata)


def _encode_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    components = [[c.name, c.library, c.class_name, dict(c.config),
                   [[variant, list(files), _encode_tensors(c.tensors[variant])] for variant, files in c.files.items()]]
                  for c in pipeline.components]  # fmt: skip
    return {"class_name": pipeline.class_name, "components": components, "others": list(pipeline.others),
            "warnings": list(pipeline.warnings)}  # fmt: skip


def _decode_pipeline(encoded: Any, names: set[str]) -> Pipeline:
    """diffusers.read_pipeline's output as it was kept (no variant chosen): 1 to MAX_COMPONENTS components, each
    named by a folder, with one-line library and class names, a config object and, per weight variant, files the
    repo lists and their stored tensors."""
    _require(isinstance(encoded, dict) and isinstance(encoded.get("components"), list))
    class_name, components = encoded.get("class_name"), encoded["components"]
    others, warnings = encoded.get("others"), encoded.get("warnings")
    _require(isinstance(class_name, str) and class_name == one_line(class_name)[:80])
    _require(1 <= len(components) <= MAX_COMPONENTS and _strings(others) and _strings(warnings))
    decoded = tuple(_decode_component(item, names) for item in components)
    return Pipeline(class_name, decoded, None, tuple(others), tuple(warnings))


def _decode_component(item: Any, names: set[str]) -> Component:
    _require(isinstance(item, list) and len(item) == 5)
    name, library, class_name, config, variants = item
    _require(isinstance(name, str) and is_repo_path(name) and "/" not in name and isinstance(config, dict))
    _require(isinstance(library, str) and library == one_line(library)[:40])
    _require(isinstance(class_name, str) and class_name == one_line(class_name)[:80])
    _require(isinstance(variants, list) and 1 <= len(variants) <= MAX_FILES)
    files: dict[str | None, tuple[str, ...]] = {}
    tensors: dict[str | None, tuple[Tensor, ...]] = {}
    for entry in variants:
        _require(isinstance(entry, list) and len(entry) == 3)
        variant, group, stored = entry
        _require(variant is None or (isinstance(variant, str) and variant == one_line(variant)))
        _require(variant not in files)
        _require(isinstance(group, list) and len(group) > 0 and all(isinstance(f, str) and f in names for f in group))
        _require(isinstance(stored, list) and len(stored) <= MAX_TENSORS)
        files[variant], tensors[variant] = tuple(group), tuple(map(_decode_tensor, stored))
    return Component(name, library, class_name, config, files, tensors)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _decode_sentence(encoded: Any) -> SentenceModel:
    """sentence.read_sentence_model's output as it was kept: 1 to MAX_MODULES modules, each a plain path (or the
    root's ""), a one-line type and its stored tensors; warnings as text."""
    _require(isinstance(encoded, dict) and isinstance(encoded.get("modules"), list))
    modules, warnings = encoded["modules"], encoded.get("warnings")
    _require(1 <= len(modules) <= MAX_MODULES and _strings(warnings))
    return SentenceModel(tuple(map(_decode_module, modules)), tuple(warnings))


def _decode_module(item: Any) -> SentenceModule:
    _require(isinstance(item, list) and len(item) == 5)
    name, path, kind, weights_file, tensors = item
    _require(isinstance(name, str) and isinstance(path, str) and (path == "" or is_repo_path(path)))
    _require(isinstance(kind, str) and kind == one_line(kind)[:60])
    _require((weights_file is None or is_repo_path(weights_file)) and isinstance(tensors, list))
    _require(len(tensors) <= MAX_TENSORS)
    return SentenceModule(name, path, kind, tuple(map(_decode_tensor, tensors)), weights_file)


def _decode_tensor(item: Any) -> Tensor:
    _require(isinstance(item, list) and len(item) == 5)
    name, dtype, shape, nbytes, count = item
    _require(isinstance(name, str) and isinstance(dtype, str) and dtype == dtype.upper() and isinstance(shape, list))
    _require(all(map(_is_int, shape)) and _is_int(nbytes) and _is_int(count) and 1 <= count <= MAX_TENSORS)
    width = dtypes.BITS.get(dtype)  # a dtype newer than the table is sized by its stored bytes, as in header.py
    _require(width is None or (math.prod(shape) * width + 7) // 8 == nbytes)
    return Tensor(name, dtype, tuple(shape), nbytes, count)


def _is_int(value: Any) -> bool:
    """A count or a size: a non-negative integer (true and false are not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _require(ok: bool) -> None:
    if not ok:
        raise ValueError("corrupt cache entry")


@functools.lru_cache(maxsize=4)
def _resolved(root: Path) -> Path:
    """The cache root with its symlinks resolved, once per root (an audit asks for every path of every model)."""
    return root.resolve()
