"""The metadata cache: what a repo holds at a commit never changes, so its file list, config and headers are kept.

Layout, beside huggingface_hub's own `hub/` folder and in its naming style:

    <HF_HOME>/hfmem/models--ORG--NAME/snapshots/<commit>.json    files, config.json, safetensors headers, gated
    <HF_HOME>/hfmem/models--ORG--NAME/refs/<revision>             the commit a branch or tag last resolved to

Files are written atomically (a temporary file, then a rename). A missing, unreadable or corrupt entry reads as a
miss, and a write that fails is skipped: the cache can make a run faster, never make it fail.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from huggingface_hub import constants

from .header import Header, Tensor
from .refs import COMMIT_SHA, ModelRef
from .snapshot import RepoFile, Snapshot

FORMAT = 2  # bump when the entry layout changes; entries of another format are misses


@dataclass(frozen=True)
class MetadataCache:
    root: Path

    @classmethod
    def default(cls) -> MetadataCache:
        """The cache under huggingface_hub's HF_HOME (read at call time, so tests and HF_HOME changes apply)."""
        return cls(Path(constants.HF_HOME) / "hfmem")

    def commit(self, repo_id: str, revision: str) -> str | None:
        """The commit `revision` of `repo_id` last resolved to, if known."""
        try:
            sha = self._ref_path(repo_id, revision).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return sha if COMMIT_SHA.match(sha) else None

    def save_commit(self, repo_id: str, revision: str, commit: str) -> None:
        self._write(self._ref_path(repo_id, revision), commit)

    def load(self, ref: ModelRef, commit: str) -> Snapshot | None:
        """The snapshot of `ref`'s repo at `commit`, as `ref` asked for it, or None on a miss or a corrupt entry."""
        assert ref.repo_id is not None
        try:
            entry = json.loads(self._snapshot_path(ref.repo_id, commit).read_bytes())
            if entry["format"] != FORMAT or entry["repo_id"] != ref.repo_id or entry["commit"] != commit:
                return None
            return Snapshot(
                model=ref.text,
                repo_id=ref.repo_id,
                revision=ref.revision,
                commit=commit,
                source="cache",
                files=tuple(RepoFile(path, size) for path, size in entry["files"]),
                config=_object(entry["config"]),
                headers={name: _decode_header(h) for name, h in _object(entry["headers"]).items()},
                gated=entry["gated"],
            )
        except (OSError, ValueError, KeyError, TypeError):
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
        self._write(self._snapshot_path(snapshot.repo_id, snapshot.commit), json.dumps(entry, separators=(",", ":")))

    def _repo_dir(self, repo_id: str) -> Path:
        return self.root / ("models--" + repo_id.replace("/", "--"))

    def _ref_path(self, repo_id: str, revision: str) -> Path:
        return self._repo_dir(repo_id) / "refs" / quote(revision, safe="")  # "refs/pr/1" is one file name

    def _snapshot_path(self, repo_id: str, commit: str) -> Path:
        return self._repo_dir(repo_id) / "snapshots" / f"{commit}.json"

    @staticmethod
    def _write(path: Path, text: str) -> None:
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


def _decode_header(encoded: Any) -> Header:
    tensors = tuple(
        Tensor(str(name), str(dtype), tuple(map(int, shape)), int(nbytes), int(count))
        for name, dtype, shape, nbytes, count in encoded["tensors"]
    )
    return Header(tensors, _object(encoded["metadata"]))


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("not a JSON object")
    return value
