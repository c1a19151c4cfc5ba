"""Resolve a local directory (config.json + *.safetensors, or .gguf files) into a Snapshot, without the network.

A directory's files are as untrusted as a repo's on the Hub (it was downloaded or cloned from one): the listing
is bounded and does not enter symlinked folders (loops, ways out), small files are read up to their cap, and the
index may name only files the listing holds (snapshot.shard_names). A symlinked file is read only when it leads
to a file inside the model's folder (huggingface_hub's snapshot folders are links into ../../blobs: there, the
repo's folder in the hub cache).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .diffusers import MODEL_INDEX, is_pipeline_repo, read_pipeline
from .errors import ConfigError, HeaderError, HfmemError, NoUsableFiles
from .gguf import GgufHeader, is_gguf_repo, open_repo
from .gguf import read_header as read_gguf
from .header import Header, header_length, parse_header
from .peft import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_snapshot, is_adapter_repo
from .refs import ModelRef
from .sentence import MODULES, is_sentence_repo, no_root_transformer, read_sentence_model
from .snapshot import INDEX, SINGLE, RepoFile, Snapshot, shard_names
from .untrusted import MAX_BYTES, MAX_FILES, decode_json

SKIPPED = ".cache"  # huggingface_hub's download metadata in a local_dir, not the repo's


def read_snapshot(ref: ModelRef, *, file: str | None = None, quant: str | None = None) -> Snapshot:
    """A directory: a transformers checkpoint, or GGUF files (the variant `file` or `quant` chooses). A PEFT
    adapter's directory is local_adapter's: its base model is on the Hub."""
    root = ref.path
    assert root is not None
    files = listing(root, ref.text)
    listed = {f.path for f in files}
    inside = _confined(root, ref.text)
    if is_gguf_repo(files, file is not None or quant is not None):
        gguf = open_repo(files, lambda name: read_gguf_header(inside(name)), file=file, quant=quant)
        return Snapshot(ref.text, None, None, None, "local", files, {}, {}, gguf=gguf)
    if is_pipeline_repo(listed):
        def small(name: str) -> bytes:
            return read_small(inside(name), MAX_BYTES["config"], ConfigError)

        pipeline = read_pipeline(small(MODEL_INDEX), listed, ref.text, small, lambda name: read_header(inside(name)))
        return Snapshot(ref.text, None, None, None, "local", files, {}, {}, pipeline=pipeline)
    if "config.json" not in listed:
        raise no_root_transformer(listed, ref.text) or NoUsableFiles(f"{ref.text} has no config.json")
    raw = read_small(inside("config.json"), MAX_BYTES["config"], ConfigError)
    config = decode_json(raw, f"{ref.text}: config.json", ConfigError)
    if not isinstance(config, dict):
        raise ConfigError(f"{ref.text}: config.json is not a JSON object")
    headers = {name: read_header(inside(name)) for name in _checkpoint_files(inside, listed, ref.text)}
    sentence = read_sentence_model(
        read_small(inside(MODULES), MAX_BYTES["config"], ConfigError), listed, ref.text,
        lambda name: read_small(inside(name), MAX_BYTES["config"], ConfigError), lambda name: read_header(inside(name)),
    ) if is_sentence_repo(listed) else None  # fmt: skip
    return Snapshot(ref.text, None, None, None, "local", files, config, headers, sentence=sentence)


def local_adapter(ref: ModelRef) -> Snapshot | None:
    """The PEFT adapter a directory holds (adapter_config.json, adapter_model.safetensors), as a snapshot whose base
    model is still to be resolved (hfmem.peft.adapter_snapshot), or None."""
    root = ref.path
    assert root is not None
    files = listing(root, ref.text)
    listed = {f.path for f in files}
    if not is_adapter_repo(listed):
        return None
    if ADAPTER_WEIGHTS not in listed:
        raise NoUsableFiles(f"{ref.text}: an adapter directory without {ADAPTER_WEIGHTS}")
    inside = _confined(root, ref.text)
    raw = read_small(inside(ADAPTER_CONFIG), MAX_BYTES["config"], ConfigError)
    repo = Snapshot(ref.text, None, None, None, "local", files, {}, {})
    return adapter_snapshot(raw, read_header(inside(ADAPTER_WEIGHTS)), ref.text, repo)


def _confined(root: Path, shown: str) -> Callable[[str], Path]:
    """name -> the file it names below `root`, refused when it (a symlink, say, from a cloned repo) leads outside
    the model's folder: the folder itself, or for a huggingface_hub snapshot (links into ../../blobs) the repo's
    folder in the hub cache."""
    real_root = root.resolve()
    allowed = real_root.parent.parent if real_root.parent.name == "snapshots" else real_root

    def inside(name: str) -> Path:
        path = root / name
        if not path.resolve().is_relative_to(allowed):
            raise NoUsableFiles(f"{shown}: {name} leads outside the model's folder (a link elsewhere): not read")
        return path

    return inside


def listing(root: Path, shown: str, limit: int = MAX_FILES) -> tuple[RepoFile, ...]:
    """The regular files below `root` (symlinks to files included), in path order. Symlinked folders are not
    entered and `.cache` folders are skipped; past `limit` entries the directory is refused."""
    files: list[RepoFile] = []
    pending, seen = [root], 0
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if seen > limit:
                        raise NoUsableFiles(f"{shown} holds more than {limit:,} files and folders")
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name != SKIPPED:
                            pending.append(Path(entry.path))
                    elif (size := _file_size(entry)) is not None:
                        files.append(RepoFile(Path(entry.path).relative_to(root).as_posix(), size))
        except OSError:
            continue  # an unreadable folder holds nothing we read
    return tuple(sorted(files, key=lambda f: f.path.split("/")))


def _file_size(entry: os.DirEntry) -> int | None:
    """The size of a regular file, or of the file a symlink leads to; None for anything else (a loop included)."""
    try:
        return entry.stat().st_size if entry.is_file() else None
    except OSError:
        return None


def read_small(path: Path, limit: int, error: type[HfmemError]) -> bytes:
    """A whole small file (config.json, an index), refused with `error` when it is unreadable or over `limit`."""
    try:
        with path.open("rb") as f:
            raw = f.read(limit + 1)
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror})") from e
    if len(raw) > limit:
        raise error(f"{path}: larger than {limit:,} bytes")
    return raw


def _checkpoint_files(inside: Callable[[str], Path], listed: set[str], shown: str) -> list[str]:
    """The index's shards (each a listed file, once), else model.safetensors, else the top-level *.safetensors."""
    if INDEX in listed:
        return shard_names(read_small(inside(INDEX), MAX_BYTES["index"], HeaderError), f"{shown}: {INDEX}", listed)
    if SINGLE in listed:
        return [SINGLE]
    return sorted(name for name in listed if name.endswith(".safetensors") and "/" not in name)


def read_header(path: Path) -> Header:
    """Read only the header of a safetensors file."""
    if not path.is_file():
        raise NoUsableFiles(f"{path} is listed in the index but missing")
    with path.open("rb") as f:
        prefix = f.read(8)
        length = header_length(prefix, str(path))
        return parse_header(prefix + f.read(length), str(path))


def read_gguf_header(path: Path) -> GgufHeader:
    """Read only the header of a GGUF file, front to back (hfmem.gguf.read_header)."""

    def read(offset: int, length: int) -> bytes:
        f.seek(offset)
        return f.read(length)

    with path.open("rb") as f:
        return read_gguf(read, str(path))
