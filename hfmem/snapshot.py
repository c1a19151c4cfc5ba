"""Snapshot: what one model resolves to at one commit (config, file list, safetensors headers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import HeaderError
from .header import Header
from .untrusted import MAX_TENSORS, decode_json, is_repo_path, shortened

if TYPE_CHECKING:
    from .diffusers import Pipeline
    from .gguf import GgufRepo
    from .peft import Adapter
    from .sentence import SentenceModel

WEIGHT_SUFFIXES = {
    ".safetensors": "safetensors",
    ".bin": "pytorch",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".gguf": "gguf",
    ".h5": "tensorflow",
    ".msgpack": "flax",
    ".onnx": "onnx",
}
PICKLE_FORMATS = {"pytorch"}
INDEX = "model.safetensors.index.json"  # a sharded checkpoint's weight map
SINGLE = "model.safetensors"
# Files that end in a weight suffix but hold no model weights.
NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"}


def shard_names(raw: bytes, where: str, listed: set[str]) -> list[str]:
    """The shards a sharded checkpoint's index names, each once, sorted. Every name must be a plain relative path
    (hfmem.untrusted.is_repo_path) that the repo lists in `listed`: an index cannot point outside the repo, at a file
    the repo lacks, or at one file under several spellings. `where` names the index in errors."""
    index = decode_json(raw, where, HeaderError)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise HeaderError(f"{where}: not a valid index (no weight_map object)")
    if len(weight_map) > MAX_TENSORS:
        raise HeaderError(f"{where}: names {len(weight_map):,} tensors (limit {MAX_TENSORS:,})")
    names = set(weight_map.values())
    for name in names:
        if not is_repo_path(name) or not name.endswith(".safetensors"):
            raise HeaderError(f"{where}: {shortened(name)} is not a safetensors file path inside the repo")
        if name not in listed:
            raise HeaderError(f"{where}: names {shortened(name)}, which the repo does not hold")
    return sorted(names)


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int | None

    @property
    def format(self) -> str | None:
        """The weight format of this file, or None when it is not a weights file."""
        if self.path.rsplit("/", 1)[-1] in NOT_WEIGHTS:
            return None
        for suffix, fmt in WEIGHT_SUFFIXES.items():
            if self.path.endswith(suffix):
                return fmt
        return None


@dataclass(frozen=True)
class PublicInfo:
    """What the Hub tells anyone about a gated repo in model_info: the parameters per safetensors dtype it counted in
    the headers (`safetensors.parameters`; empty when it gives none) and the model_type and architectures of
    config.json (`config`)."""

    parameters: dict[str, int]
    model_type: str | None = None
    architectures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    model: str  # how reports name it (ModelRef.name): the repo id, or the directory as given
    repo_id: str | None
    revision: str | None
    commit: str | None
    source: str  # "hub" | "cache" (hfmem's metadata cache) | "hub-cache" (huggingface_hub's downloads) | "local"
    files: tuple[RepoFile, ...]
    config: dict[str, Any]
    headers: dict[str, Header]  # weights file -> its header (the files that make up the checkpoint)
    gated: str | None = None  # "auto" / "manual" when the repo is gated
    warnings: tuple[str, ...] = field(default_factory=tuple)
    gguf: GgufRepo | None = None  # a GGUF repo: its variants and the chosen one's headers (headers stays empty)
    adapter: Adapter | None = None  # a PEFT adapter repo: the adapter; everything else is its base model's
    sentence: SentenceModel | None = None  # a sentence-transformers repo: its modules (headers: the root Transformer)
    pipeline: Pipeline | None = None  # a Diffusers pipeline: its components (config and headers stay empty)
    # A gated repo the token cannot open: only the public metadata (files with sizes, gated, this); no config.json or
    # headers were read.
    public: PublicInfo | None = None

    @property
    def access(self) -> str:
        """"gated" when only the public metadata could be read, "granted" for a gated repo that was read, else
        "public" (CONTRACT.md's `access`)."""
        return "gated" if self.public is not None else "granted" if self.gated else "public"

    @property
    def shown_revision(self) -> str | None:
        """The revision as reports show it: the one asked for, else the default branch; None for a directory."""
        return self.revision or ("main" if self.repo_id else None)

    @property
    def download_bytes(self) -> int | None:
        """Every file of the repo (None when a size is unknown)."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(f.size or 0 for f in self.files)

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(sorted({f.format for f in self.files if f.format}))

    @property
    def custom_code(self) -> bool:
        """The repo ships modelling code that transformers would run with trust_remote_code."""
        return "auto_map" in self.config or any(f.path.endswith(".py") for f in self.files)
