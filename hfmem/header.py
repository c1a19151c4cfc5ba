"""Safetensors headers: parsing and validation (pure; no I/O).

Format: 8-byte little-endian header length N, then N bytes of JSON mapping tensor names to
{"dtype", "shape", "data_offsets"} plus an optional string->string "__metadata__".
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import dtypes
from .errors import HeaderError
from .untrusted import decode_json

# The same cap huggingface_hub applies; a header claiming more is refused before it is read.
MAX_HEADER_BYTES = 25_000_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Tensor:
    """One tensor, or `count` identical ones: a MoE layer's routed experts, named `...experts.*...` (grouped by
    header_from_dict). `numel` and `nbytes` are per tensor; sums over a checkpoint multiply by `count`."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int = field(default=None)  # type: ignore[assignment]  # from data_offsets; else from the dtype
    count: int = 1
    # the product of the shape, computed once: counts, facts and LoRA sizes read it for every tensor
    numel: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "numel", math.prod(self.shape))
        if self.nbytes is None:
            object.__setattr__(self, "nbytes", dtypes.nbytes(self.dtype, self.numel))


@dataclass(frozen=True)
class Header:
    """One safetensors file's header: its tensors in the order it lists them (a layer's experts as one entry) and
    its metadata."""

    tensors: tuple[Tensor, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def data_bytes(self) -> int:
        return sum(t.nbytes * t.count for t in self.tensors)


def header_length(prefix: bytes, filename: str) -> int:
    """The header length N stated by a file's first 8 bytes, validated against the cap."""
    if len(prefix) < 8:
        raise HeaderError(f"{filename}: file is too small to be a safetensors file")
    (length,) = struct.unpack("<Q", prefix[:8])
    if length > MAX_HEADER_BYTES:
        raise HeaderError(f"{filename}: header claims {length:,} bytes (limit {MAX_HEADER_BYTES:,})")
    return length


def parse_header(raw: bytes, filename: str) -> Header:
    """Parse a file's leading bytes (8-byte length + JSON header); `raw` may extend past the header."""
    length = header_length(raw, filename)
    body = raw[8 : 8 + length]
    if len(body) < length:
        raise HeaderError(f"{filename}: header is truncated ({len(body):,} of {length:,} bytes)")
    return header_from_dict(decode_json(body, f"{filename}: header", HeaderError), filename)


def header_from_dict(decoded: Any, filename: str, *, parsed_by_hub: bool = False) -> Header:
    """Validate a decoded header: known dtypes, integer shapes, sizes that match the offsets, and offsets that tile
    the buffer exactly.

    A header the Hub parsed itself (the bulk metadata answer, `parsed_by_hub`) keeps every check that bounds memory
    or changes a count: each dtype and shape, and each tensor's size against its offsets (what the offsets span
    is its bytes). It skips what does neither: that the offsets are integers in order and tile the buffer."""
    if not isinstance(decoded, dict):
        raise HeaderError(f"{filename}: header is not a JSON object")
    metadata = decoded.get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise HeaderError(f"{filename}: __metadata__ is not an object")
    spans = []  # (begin, end, name), to check that the tensors tile the buffer
    # (dtype, shape) as written -> (its index in `checked`, its bytes or None): a checkpoint repeats a few dozen of
    # them, so each is checked once (a later shape equal to a checked one, 2.0 == 2, is read as the checked one).
    kinds: dict[tuple[Any, tuple[Any, ...]], tuple[int, int | None]] = {}
    checked: list[tuple[str, tuple[int, ...]]] = []  # (dtype, shape), checked
    # Routed experts that differ only in their index are one entry (Tensor.count): exact sums are unchanged, and
    # DeepSeek-V3's 45,395 tensors (163 shards) become 1,806 entries to store and scan. `...mlp.experts.17.down_proj`
    # groups as `...mlp.experts.*.down_proj`.
    counts: dict[tuple[str, int, int], int] = {}  # (name, kind, bytes) -> tensors
    for name, info in decoded.items():
        if name == "__metadata__":
            continue
        try:
            written = (info["dtype"], tuple(info["shape"]))
            begin, end = info["data_offsets"]
        except (KeyError, TypeError, ValueError) as e:
            raise HeaderError(f"{filename}: tensor {name!r} lacks dtype, shape or data_offsets") from e
        try:
            kind, size = kinds[written]
        except (KeyError, TypeError):  # new, or unhashable (a shape of lists: refused by _kind)
            dtype, shape, size = _kind(*written, filename, name)
            kind = len(checked)
            checked.append((dtype, shape))
            kinds[written] = kind, size
        try:
            nbytes = end - begin
            valid = parsed_by_hub or (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end)
        except TypeError:
            valid = False
        if not valid or (size is None and not (isinstance(nbytes, int) and nbytes >= 0)):
            raise HeaderError(f"{filename}: tensor {name!r} has invalid data_offsets")
        if size is not None and size != nbytes:
            raise HeaderError(f"{filename}: tensor {name!r} has data_offsets that do not match its size")
        if not parsed_by_hub:
            spans.append((begin, end, name))
        if ".experts." in name:
            head, _, rest = name.partition(".experts.")
            index, dot, tail = rest.partition(".")
            if dot and index.isdecimal():
                name = f"{head}.experts.*.{tail}"
        key = (name, kind, size if size is not None else nbytes)
        counts[key] = counts.get(key, 0) + 1
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise HeaderError(f"{filename}: tensor {name!r} does not start where the previous one ends")
        position = end
    tensors = tuple(Tensor(name, *checked[kind], nbytes, count) for (name, kind, nbytes), count in counts.items())
    return Header(tensors, {str(k): str(v) for k, v in metadata.items()})


def _kind(dtype: Any, shape: tuple[Any, ...], filename: str, name: str) -> tuple[str, tuple[int, ...], int | None]:
    """A tensor's dtype (upper case) and shape, checked, and the bytes they take (None for a dtype newer than our
    table, which is then sized by its offsets rather than refused)."""
    if not isinstance(dtype, str):
        raise HeaderError(f"{filename}: tensor {name!r} lacks dtype, shape or data_offsets")
    try:  # a non-integer or negative dimension shows in the product's type or in min()
        numel = math.prod(shape)
        valid = isinstance(numel, int) and min(shape, default=0) >= 0
    except TypeError:
        valid = False
    if not valid:
        raise HeaderError(f"{filename}: tensor {name!r} has an invalid shape {list(shape)}")
    width = dtypes.BITS.get(dtype.upper())
    return dtype.upper(), shape, None if width is None else (numel * width + 7) // 8


class ParsedOnce:
    """What was parsed from some bytes, kept by their SHA-256 digest, so the same bytes seen again cost a hash
    instead of a parse. A parse that fails keeps nothing (the next one fails with its own message). The least
    recently used results go once those kept hold more than `max_entries` tensor entries. Thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._kept: OrderedDict[bytes, tuple[Any, int]] = OrderedDict()  # digest -> (result, its tensor entries)
        self._entries = 0
        self._lock = threading.Lock()

    def parse(self, raw: bytes, parse: Callable[[], T], entries: Callable[[T], int]) -> T:
        """parse()'s result for `raw` (what it parses), from an earlier call on the same bytes where one is kept."""
        key = hashlib.sha256(raw).digest()
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key][0]  # type: ignore[no-any-return]
        result = parse()
        size = entries(result)
        with self._lock:
            if size <= self.max_entries and key not in self._kept:
                self._kept[key] = result, size
                self._entries += size
                while self._entries > self.max_entries:
                    self._entries -= self._kept.popitem(last=False)[1][1]
        return result


def write_header(tensors: list[Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The leading bytes of a safetensors file holding `tensors` back to back (used for fixtures and the fake Hub)."""
    body: dict[str, Any] = {}
    if metadata:
        body["__metadata__"] = dict(metadata)
    offset = 0
    for t in tensors:
        body[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    encoded = json.dumps(body, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # pad so the buffer starts 8-byte aligned, as safetensors does
    return struct.pack("<Q", len(encoded)) + encoded
