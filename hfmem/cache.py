"""The metadata cache: what a repo holds at a commit never changes, so its file list, config and headers are kept.

Layout, beside huggingface_hub's own `hub/` folder and in its naming style:

    <HF_HOME>/hfmem/models--ORG--NAME/snapshots/<commit>.json    files, config.json, safetensors headers, gated
    <HF_HOME>/hfmem/models--ORG--NAME/refs/<revision>             the commit a branch or tag last resolved to

Files are written atomically (a temporary file, then a rename). A missing, unreadable or corrupt entry reads as a
miss, and a write that fails is skipped: the cache can make a run faster, never make it fail.

The folder may have been altered, so an entry is checked as fully as a fresh answer from the Hub (`_decode`), and
file names come only from a commit id or a revision: a name that is not one, or a path that would resolve outside
the root (`..`, a symlink), is never read or written.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from huggingface_hub import constants

from . import dtypes
from .errors import BadResponse, HfmemError
from .header import Header, Tensor
from .local import read_small
from .refs import ModelRef
from .snapshot import RepoFile, Snapshot
from .untrusted import MAX_BYTES, MAX_FILES, MAX_TENSORS, decode_json, is_commit, is_repo_path

FORMAT = 2  # bump when the entry layout changes; entries of another format are misses
FIELDS = {"format", "repo_id", "commit", "files", "config", "headers", "gated"}  # what an entry holds
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

    def load(self, ref: ModelRef, commit: str) -> Snapshot | None:
        """The snapshot of `ref`'s repo at `commit`, as `ref` asked for it, or None on a miss or a corrupt entry."""
        assert ref.repo_id is not None
        raw = self._read(self._snapshot_path(ref.repo_id, commit), MAX_ENTRY_BYTES)
        try:
            return _decode(decode_json(raw, "cache entry", BadResponse), ref, commit) if raw is not None else None
        except (HfmemError, ValueError):
            return None

    def save(self, snapshot: Snapshot) -> None:
        """Keep a snapshot resolved on the Hub (its commit is what the entry is keyed by)."""
        assert snapshot.repo_id is not None and snapshot.commit is not None
        entry = {
            "format": FORMAT,
            "repo_id": snapshot.repo_id,
            "commit": snapshot.commit,
            "files": [[f.path, f.size] for f in snapshot.files],
            "config": snapshot.config,
            "headers": {name: _encode_header(h) for name, h in snapshot.headers.items()},
            "gated": snapshot.gated,
        }
        try:
            text = json.dumps(entry, separators=(",", ":"))
        except (ValueError, RecursionError):  # a config nested deeper than json.dumps goes, here and now
            return
        self._write(self._snapshot_path(snapshot.repo_id, snapshot.commit), text)

    def _path(self, repo_id: str, folder: str, name: str) -> Path | None:
        """<root>/models--ORG--NAME/<folder>/<name>, or None when that would not be a file inside the root."""
        path = self.root / ("models--" + repo_id.replace("/", "--")) / folder / name
        if name in ("", ".", "..") or self.root.resolve() not in path.resolve().parents:
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
    return {
        "metadata": dict(header.metadata),
        "tensors": [[t.name, t.dtype, list(t.shape), t.nbytes, t.count] for t in header.tensors],
    }


def _decode(entry: Any, ref: ModelRef, commit: str) -> Snapshot:
    """The snapshot an entry holds, every field checked as a fresh answer's would be; ValueError when one is off."""
    _require(isinstance(entry, dict) and entry.keys() >= FIELDS)
    _require((entry["format"], entry["repo_id"], entry["commit"]) == (FORMAT, ref.repo_id, commit))
    files, config, headers, gated = entry["files"], entry["config"], entry["headers"], entry["gated"]
    _require(isinstance(files, list) and len(files) <= MAX_FILES and all(map(_is_file, files)))
    _require(isinstance(config, dict) and isinstance(headers, dict) and (gated is None or isinstance(gated, str)))
    return Snapshot(
        model=ref.name,
        repo_id=ref.repo_id,
        revision=ref.revision,
        commit=commit,
        source="cache",
        files=tuple(RepoFile(path, size) for path, size in files),
        config=config,
        headers={name: _decode_header(name, h) for name, h in headers.items()},
        gated=gated,
    )


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
