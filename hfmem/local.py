"""Resolve a local directory (config.json + *.safetensors, or .gguf files) into a Snapshot, without the network."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError, HeaderError, NoUsableFiles
from .gguf import GgufHeader, is_gguf_repo, open_repo
from .gguf import read_header as read_gguf
from .header import Header, header_length, parse_header
from .peft import ADAPTER_CONFIG, ADAPTER_WEIGHTS, Adapter, is_adapter_repo, read_adapter
from .refs import ModelRef
from .snapshot import INDEX, SINGLE, RepoFile, Snapshot


def read_snapshot(ref: ModelRef, *, file: str | None = None, quant: str | None = None) -> Snapshot:
    """A directory: a transformers checkpoint, or GGUF files (the variant `file` or `quant` chooses). A PEFT
    adapter's directory is read_adapter's: its base model is on the Hub."""
    root = ref.path
    assert root is not None
    files = _files(root)
    if is_gguf_repo(files, file is not None or quant is not None):
        gguf = open_repo(files, lambda name: read_gguf_header(root / name), file=file, quant=quant)
        return Snapshot(ref.text, None, None, None, "local", files, {}, {}, gguf=gguf)
    config_path = root / "config.json"
    if not config_path.is_file():
        raise NoUsableFiles(f"{ref.text} has no config.json")
    try:
        config = json.loads(config_path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{config_path}: not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path}: not a JSON object")
    headers = {name: read_header(root / name) for name in _checkpoint_files(root)}
    return Snapshot(ref.text, None, None, None, "local", files, config, headers)


def _files(root: Path) -> tuple[RepoFile, ...]:
    return tuple(
        RepoFile(p.relative_to(root).as_posix(), p.stat().st_size)
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(root).parts
    )


def local_adapter(ref: ModelRef) -> Adapter | None:
    """The PEFT adapter a directory holds (adapter_config.json, adapter_model.safetensors), or None."""
    root = ref.path
    assert root is not None
    if not is_adapter_repo({f.path for f in _files(root)}):
        return None
    if not (root / ADAPTER_WEIGHTS).is_file():
        raise NoUsableFiles(f"{ref.text}: an adapter directory without {ADAPTER_WEIGHTS}")
    return read_adapter((root / ADAPTER_CONFIG).read_bytes(), read_header(root / ADAPTER_WEIGHTS), ref.text, None)


def _checkpoint_files(root: Path) -> list[str]:
    if (root / INDEX).is_file():
        try:
            return sorted(set(json.loads((root / INDEX).read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as e:
            raise HeaderError(f"{root / INDEX}: not a valid index") from e
    if (root / SINGLE).is_file():
        return [SINGLE]
    return sorted(p.name for p in root.glob("*.safetensors"))


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
