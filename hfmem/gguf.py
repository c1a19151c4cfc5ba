"""GGUF files (llama.cpp): headers read incrementally, split files joined, a repo's quant variants, the
architecture facts llama.cpp sizes its KV cache from (pure; all I/O goes through the `read` callable given).

Format (ggml/docs/gguf.md, ggml/src/gguf.cpp): "GGUF", u32 version, u64 tensor count, u64 metadata count; then each
metadata pair (string key, u32 value type, value); then each tensor info (string name, u32 dims count, u64 dims
innermost first, u32 ggml type, u64 offset into the data section); then padding to general.alignment (32 unless
set), then tensor data. Strings are a u64 byte length and UTF-8 bytes; an array is a u32 element type, a u64 length
and its elements. Little-endian only, as llama.cpp reads it.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeGuard, Union

from .errors import GgufChoiceError, GgufError, UnsupportedModel
from .snapshot import RepoFile
from .untrusted import (
    MAX_BYTES,
    MAX_GGUF_ARRAY_LENGTH,
    MAX_GGUF_DIMS,
    MAX_GGUF_PAIRS,
    MAX_GGUF_STRING_BYTES,
    MAX_TENSORS,
)

QK_K = 256  # elements in a K-quant super-block
# ggml type id -> (name, elements per block, bytes per block): `enum ggml_type` in ggml/include/ggml.h and the
# blck_size / type_size of `type_traits` in ggml/src/ggml.c (block structs in ggml/src/ggml-common.h); the same
# as GGML_QUANT_SIZES in gguf-py. Ids 4, 5 and 31-33, 36-38 are types ggml removed.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 2 + 16),
    3: ("Q4_1", 32, 2 + 2 + 16),
    6: ("Q5_0", 32, 2 + 4 + 16),
    7: ("Q5_1", 32, 2 + 2 + 4 + 16),
    8: ("Q8_0", 32, 2 + 32),
    9: ("Q8_1", 32, 4 + 4 + 32),
    10: ("Q2_K", QK_K, 2 + 2 + QK_K // 16 + QK_K // 4),
    11: ("Q3_K", QK_K, 2 + QK_K // 4 + QK_K // 8 + 12),
    12: ("Q4_K", QK_K, 2 + 2 + QK_K // 2 + 12),
    13: ("Q5_K", QK_K, 2 + 2 + QK_K // 2 + QK_K // 8 + 12),
    14: ("Q6_K", QK_K, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16),
    15: ("Q8_K", QK_K, 4 + QK_K + QK_K // 8),
    16: ("IQ2_XXS", QK_K, 2 + QK_K // 4),
    17: ("IQ2_XS", QK_K, 2 + QK_K // 4 + QK_K // 32),
    18: ("IQ3_XXS", QK_K, 2 + QK_K // 4 + QK_K // 8),
    19: ("IQ1_S", QK_K, 2 + QK_K // 8 + QK_K // 16),
    20: ("IQ4_NL", 32, 2 + 16),
    21: ("IQ3_S", QK_K, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4),
    22: ("IQ2_S", QK_K, 2 + QK_K // 4 + QK_K // 16),
    23: ("IQ4_XS", QK_K, 2 + 2 + QK_K // 2 + QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", QK_K, 2 + 4 * 13),
    35: ("TQ2_0", QK_K, 2 + 64),
    39: ("MXFP4", 32, 1 + 16),
    40: ("NVFP4", 64, 4 + 32),
    41: ("Q1_0", 128, 2 + 16),
}

# Metadata value types (`enum gguf_type`): fixed-size ones by struct format; 8 is a string, 9 an array.
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32", 7: "bool",
               8: "string", 10: "uint64", 11: "int64", 12: "float64"}  # fmt: skip
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_HELD_ARRAY = 1024  # arrays up to this length are kept as tuples (per-layer values); longer ones only counted
# The fewest bytes a metadata pair (8-byte key length, a 1-byte key, type, a 1-byte value) and a tensor info (name
# length, dims count, type, offset) take: what the rest of a header holds at least, so no read passes its end.
_MIN_PAIR, _MIN_TENSOR = 8 + 1 + 4 + 1, 8 + 4 + 4 + 8
_INT64_MAX = 2**63 - 1
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class GgufArray:
    """A metadata array too long to keep (a tokenizer's tokens, scores, merges): its element type and length."""

    type: str
    length: int


Value = Union[int, float, bool, str, tuple, GgufArray]  # a metadata value; arrays kept as tuples


@dataclass(frozen=True)
class GgufTensor:
    name: str
    ggml_type: str
    shape: tuple[int, ...]  # as GGUF lists it: innermost (row length) first, the reverse of PyTorch's
    offset: int  # from the start of the data section
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class GgufHeader:
    """One .gguf file's header: its metadata (long arrays as GgufArray), its tensors, where tensor data starts."""

    file: str
    version: int
    metadata: Mapping[str, Value]
    tensors: tuple[GgufTensor, ...]
    data_offset: int


@dataclass(frozen=True)
class GgufModel:
    """One quant variant, from its file's header or its split files' joined: every tensor, the first file's metadata."""

    files: tuple[str, ...]
    metadata: Mapping[str, Value]
    tensors: tuple[GgufTensor, ...]

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def parameters_by_type(self) -> dict[str, int]:
        return _sum_by_type(self.tensors, lambda t: t.numel)

    @property
    def bytes_by_type(self) -> dict[str, int]:
        return _sum_by_type(self.tensors, lambda t: t.nbytes)

    @property
    def bits_per_weight(self) -> float | None:
        """Tensor bits over parameters: llama.cpp's "BPW" (None without parameters)."""
        return 8 * self.tensor_bytes / self.parameters if self.parameters else None


def _sum_by_type(tensors: Iterable[GgufTensor], value: Callable[[GgufTensor], int]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for t in tensors:
        sums[t.ggml_type] = sums.get(t.ggml_type, 0) + value(t)
    return dict(sorted(sums.items(), key=lambda item: -item[1]))


# --- reading a header ---


class _Cursor:
    """Parses a header front to back, holding only bytes read and not yet parsed. Each read asks for the item being
    parsed plus `ahead`, the bytes the rest of the header holds at least, so no read reaches past the header into
    tensor data, and a claimed length is checked against the cap before any byte of it is asked for."""

    def __init__(self, read: Callable[[int, int], bytes], file: str) -> None:
        self.read, self.file = read, file
        self.offset = 0  # file offset of the next byte to parse
        self.ahead = 0
        self._buffer, self._at = b"", 0  # bytes from self.offset on start at self._buffer[self._at]

    def fail(self, reason: str) -> NoReturn:
        raise GgufError(f"{self.file}: {reason}")

    def _reserve(self, n: int) -> None:
        if self.offset + n + self.ahead > MAX_BYTES["gguf"]:
            self.fail(f"GGUF header is larger than hfmem reads ({MAX_BYTES['gguf']:,} bytes)")

    def take(self, n: int) -> bytes:
        self._reserve(n)
        held = len(self._buffer) - self._at
        if held < n:
            ask = n + self.ahead - held
            chunk = self.read(self.offset + held, ask)
            self._buffer, self._at = self._buffer[self._at :] + chunk, 0
            if len(self._buffer) < n:
                self.fail(f"file ends inside its GGUF header (at byte {self.offset + len(self._buffer):,})")
        self._at += n
        self.offset += n
        return self._buffer[self._at - n : self._at]

    def skip(self, n: int) -> None:
        """Step over n bytes, reading only their last one (so a file ending among them is still found truncated)."""
        self._reserve(n)
        if n <= len(self._buffer) - self._at:
            self._at += n
            self.offset += n
        elif n:
            self._buffer, self._at = b"", 0
            self.offset += n - 1
            self.take(1)

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string_length(self) -> int:
        (n,) = self.unpack("Q")
        if n > MAX_GGUF_STRING_BYTES:
            self.fail(f"a string claims {n:,} bytes (limit {MAX_GGUF_STRING_BYTES:,})")
        return n

    def string(self) -> str:
        return self.take(self.string_length()).decode("utf-8", "replace")

    def skip_strings(self, count: int) -> None:
        """Step over `count` strings (a vocabulary, its merges): those held already in one tight loop."""
        after, done = self.ahead, 0
        while done < count:
            buffer, at, end = self._buffer, self._at, len(self._buffer)
            while done < count and at + 8 <= end:
                (n,) = _U64.unpack_from(buffer, at)
                if n > MAX_GGUF_STRING_BYTES or at + 8 + n > end:
                    break
                at, done = at + 8 + n, done + 1
            self.offset += at - self._at
            self._at = at
            if done < count:  # the next string is not held whole: read on
                self.ahead = after + (count - done - 1) * 8  # each string still to come has its 8-byte length
                self.skip(self.string_length())
                done += 1
        self.ahead = after


def read_header(read: Callable[[int, int], bytes], file: str) -> GgufHeader:
    """Parse the header of the GGUF file `file` through `read(offset, length)`, which returns the file's bytes from
    offset: at least `length` unless the file ends first, and more if it likes (they are kept for the next asks).
    Each ask covers only bytes the header must still hold, so no byte of tensor data is asked for; a resolver may
    round asks up (trading bytes past the header for round trips). Anything malformed is a GgufError."""
    cur = _Cursor(read, file)
    magic, version = cur.unpack("4sI")
    if magic != b"GGUF":
        cur.fail("not a GGUF file (no GGUF magic)")
    if version not in (2, 3):
        swapped = version > 0xFFFF and not version & 0xFFFF  # version 3 read in the other byte order
        cur.fail("big-endian GGUF files are not supported" if swapped else f"GGUF version {version} is not supported")
    n_tensors, n_pairs = cur.unpack("QQ")
    if n_tensors > MAX_TENSORS or n_pairs > MAX_GGUF_PAIRS:
        cur.fail(f"declares {n_tensors:,} tensors and {n_pairs:,} metadata pairs "
                 f"(limits {MAX_TENSORS:,} and {MAX_GGUF_PAIRS:,})")  # fmt: skip

    metadata: dict[str, Value] = {}
    for i in range(n_pairs):
        cur.ahead = (n_pairs - i - 1) * _MIN_PAIR + n_tensors * _MIN_TENSOR
        key = cur.string()
        if not key or key in metadata:
            cur.fail(f"metadata key {_shown(key)} is empty or repeated")
        (value_type,) = cur.unpack("I")
        if key == "general.alignment" and value_type != _UINT32:
            cur.fail("general.alignment is not a uint32")
        metadata[key] = _value(cur, value_type, key)
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or not alignment or alignment & (alignment - 1):  # a uint32, checked above
        cur.fail(f"general.alignment {alignment} is not a power of two")

    tensors = []
    names = set()
    for i in range(n_tensors):
        cur.ahead = (n_tensors - i - 1) * _MIN_TENSOR
        tensors.append(_tensor_info(cur))
        if tensors[-1].name in names:
            cur.fail(f"tensor {_shown(tensors[-1].name)} is listed twice")
        names.add(tensors[-1].name)
    position = 0  # llama.cpp's rule: each tensor starts where the previous one ends, padded to the alignment
    for t in tensors:
        if t.offset != position:
            cur.fail(f"tensor {_shown(t.name)} starts at {t.offset:,} in the data, not at {position:,}")
        position += -(-t.nbytes // alignment) * alignment
    data_offset = -(-cur.offset // alignment) * alignment
    return GgufHeader(file, version, metadata, tuple(tensors), data_offset)


def _value(cur: _Cursor, value_type: int, key: str) -> Value:
    if value_type in _FIXED:
        return cur.unpack(_FIXED[value_type])[0]  # type: ignore[no-any-return]
    if value_type == _STRING:
        return cur.string()
    if value_type != _ARRAY:
        cur.fail(f"metadata {_shown(key)} has an unknown value type {value_type}")
    element, length = cur.unpack("IQ")
    if element not in _TYPE_NAMES:
        what = "an array" if element == _ARRAY else f"unknown type {element}"
        cur.fail(f"metadata {_shown(key)} is an array of {what}, which GGUF does not allow")
    if length > MAX_GGUF_ARRAY_LENGTH:
        cur.fail(f"metadata {_shown(key)} claims {length:,} elements (limit {MAX_GGUF_ARRAY_LENGTH:,})")
    after = cur.ahead
    if element in _FIXED:
        fmt = _FIXED[element]  # fixed-size elements: one take, or one skip of what is not kept
        if length > _HELD_ARRAY:
            cur.skip(length * struct.calcsize("<" + fmt))
            return GgufArray(_TYPE_NAMES[element], length)
        return cur.unpack(f"{length}{fmt}")
    if length > _HELD_ARRAY:
        cur.skip_strings(length)
        return GgufArray("string", length)
    strings = []
    for i in range(length):
        cur.ahead = after + (length - i - 1) * 8
        strings.append(cur.string())
    cur.ahead = after
    return tuple(strings)


def _shown(name: str) -> str:
    """A key or tensor name from the file, quoted, escaped and short, for a one-line message."""
    return repr(name[:60] + ("..." if len(name) > 60 else ""))


def _tensor_info(cur: _Cursor) -> GgufTensor:
    name = cur.string()
    (n_dims,) = cur.unpack("I")
    if n_dims > MAX_GGUF_DIMS:
        cur.fail(f"tensor {_shown(name)} has {n_dims:,} dimensions (limit {MAX_GGUF_DIMS})")
    shape = cur.unpack(f"{n_dims}Q")
    type_id, offset = cur.unpack("IQ")
    if type_id not in GGML_TYPES:
        cur.fail(f"tensor {_shown(name)} has an unknown ggml type {type_id}")
    type_name, block, block_bytes = GGML_TYPES[type_id]
    numel = math.prod(shape)
    if numel > _INT64_MAX or max(shape, default=0) > _INT64_MAX:
        cur.fail(f"tensor {_shown(name)} has a shape too large to exist {list(shape)}")
    if (shape[0] if shape else 1) % block:
        cur.fail(f"tensor {_shown(name)} ({type_name}) has rows of {shape[0]:,}, not whole blocks of {block}")
    return GgufTensor(name, type_name, shape, offset, numel // block * block_bytes)


# --- split files and variants ---

_SPLIT = re.compile(r"(?P<stem>.+)-(?P<part>\d{5})-of-(?P<parts>\d{5})\.gguf", re.IGNORECASE)
# A quant label in a file or folder name: Q4_K_M, IQ2_XXS, Q8_0, TQ1_0, MXFP4, BF16, F16, unsloth's UD-Q4_K_XL...
_QUANT = re.compile(r"(?<![A-Za-z0-9])((?:UD-)?(?:I?Q\d(?:_[A-Z0-9]+)*|TQ\d_\d|MXFP4(?:_MOE)?|BF16|F16|F32))"
                    r"(?![A-Za-z0-9])", re.IGNORECASE)  # fmt: skip
DEFAULT_QUANT = "Q4_K_M"  # what llama.cpp's -hf picks when no quant is named


def split_part(path: str) -> tuple[str, int, int] | None:
    """`dir/NAME-00002-of-00003.gguf` -> ("dir/NAME", 2, 3), llama.cpp's split naming (llama_split_path); None for a
    path that is not one part of a split set."""
    match = _SPLIT.fullmatch(path)
    if not match:
        return None
    part, parts = int(match["part"]), int(match["parts"])
    return (match["stem"], part, parts) if 1 <= part <= parts else None


def quant_label(path: str) -> str | None:
    """The quant a GGUF file's name says (`model.Q4_K_M.gguf`, `Q4_K_M/model-00001-of-00002.gguf`): the last label in
    its name, else in its nearest folder; upper case; None when no name says."""
    split = split_part(path)
    stem = split[0] if split else re.sub(r"\.gguf$", "", path, flags=re.IGNORECASE)
    for part in reversed(stem.split("/")):
        labels = _QUANT.findall(part)
        if labels:
            return str(labels[-1]).upper()
    return None


@dataclass(frozen=True)
class GgufVariant:
    """One quant of a repo: a .gguf file, or a split set's files."""

    name: str  # the file, or the split set's path without its -0000k-of-0000N.gguf ending
    quant: str | None
    files: tuple[str, ...]  # in part order
    size: int | None  # bytes of all its files; None when one's size is unknown
    parts: int  # files the set declares (1 for a single file)
    projector: bool  # an mmproj file: a multimodal projector, not the language model

    @property
    def complete(self) -> bool:
        return len(self.files) == self.parts


def group_variants(files: Iterable[RepoFile]) -> tuple[GgufVariant, ...]:
    """A repo's .gguf files grouped into variants (split parts together), sorted by name."""
    groups: dict[tuple[str, int], list[tuple[int, RepoFile]]] = {}
    for f in files:
        if f.path.lower().endswith(".gguf"):
            split = split_part(f.path)
            key = (split[0], split[2]) if split else (f.path, 1)
            groups.setdefault(key, []).append((split[1] if split else 1, f))
    variants = []
    for (name, parts), members in groups.items():
        members.sort(key=lambda member: member[0])
        sizes = [f.size for _, f in members]
        variants.append(GgufVariant(
            name, quant_label(members[0][1].path), tuple(f.path for _, f in members),
            None if None in sizes else sum(s or 0 for s in sizes), parts,
            name.rsplit("/", 1)[-1].lower().startswith("mmproj"),
        ))  # fmt: skip
    return tuple(sorted(variants, key=lambda v: v.name))


def select_variant(
    variants: Sequence[GgufVariant], *, file: str | None = None, quant: str | None = None
) -> GgufVariant:
    """The variant `file` (a path or file name of one of its files) or `quant` (a label, any case) names; with neither,
    the only language-model variant, else the Q4_K_M one as llama.cpp's -hf picks. A name that matches none or
    several, or a variant missing split parts, is a GgufChoiceError listing the choices."""
    models = [v for v in variants if not v.projector]
    if file is not None:
        matches = [v for v in variants if any(file in (f, f.rsplit("/", 1)[-1]) for f in v.files)]
        asked = f"--file {file}"
    else:
        wanted = (quant or DEFAULT_QUANT).upper()
        matches = models if quant is None and len(models) == 1 else [v for v in models if v.quant == wanted]
        asked = f"--quant {quant}" if quant is not None else f"{DEFAULT_QUANT}, the default,"
    if len(matches) == 1:
        v = matches[0]
        if not v.complete:
            raise GgufChoiceError(f"GGUF {v.name} has {len(v.files)} of its {v.parts} split files", (v.name,))
        return v
    if matches:
        choices = tuple(v.files[0] for v in matches)
        message = f"{asked} matches {len(matches)} GGUF variants; choose one with --file"
    else:
        choices = tuple(dict.fromkeys(v.quant or v.files[0] for v in models))  # a quant, else a file
        found = f"{asked} names no GGUF variant" if file or quant else f"the repo has {len(models)} GGUF variants"
        message = f"{found}; choose one with --quant or --file"
    raise GgufChoiceError(f"{message}: {', '.join(choices) or 'none'}", choices)


def join_splits(headers: Sequence[GgufHeader]) -> GgufModel:
    """One model from one file's header, or from every split file's (any order): split.count, split.no and
    split.tensors.count must agree, and no tensor may appear twice. The metadata is the first split's."""
    def split(h: GgufHeader, key: str, default: int) -> int:
        value = h.metadata.get(key, default)
        if not _is_count(value):
            raise GgufError(f"{h.file}: {key} is not a count")
        return value  # type: ignore[return-value]

    first = headers[0]
    count = split(first, "split.count", 1)
    ordered = sorted(headers, key=lambda h: split(h, "split.no", 0))
    numbers = [split(h, "split.no", 0) for h in ordered]
    if numbers != list(range(count)) or any(split(h, "split.count", 1) != count for h in headers):
        raise GgufError(f"{first.file}: split files {numbers} are not the {count} that split.count says")
    tensors = tuple(t for h in ordered for t in h.tensors)
    if len({t.name for t in tensors}) != len(tensors):
        raise GgufError(f"{first.file}: a tensor appears in more than one split file")
    declared = split(ordered[0], "split.tensors.count", len(tensors))
    if declared != len(tensors):
        raise GgufError(f"{first.file}: split files hold {len(tensors):,} tensors, split.tensors.count says {declared}")
    return GgufModel(tuple(h.file for h in ordered), ordered[0].metadata, tensors)


# --- architecture facts ---


@dataclass(frozen=True)
class GgufArchitecture:
    """What llama.cpp reads from a GGUF's metadata to size attention and its KV cache (src/llama-model.cpp,
    load_hparams), with its defaults. Per-layer values are tuples of block_count entries."""

    architecture: str  # general.architecture: llama, qwen3moe, gemma3, deepseek2, ...
    block_count: int
    context_length: int | None  # the training context: llama.cpp's n_ctx_train, its default --ctx-size
    embedding_length: int | None
    feed_forward_length: tuple[int, ...] | None
    head_count: tuple[int, ...]
    head_count_kv: tuple[int, ...]  # 0 for a layer without attention (the recurrent layers of hybrids)
    key_length: int | None  # per head; default embedding_length / head_count
    value_length: int | None
    sliding_window: int | None  # None: every layer attends in full
    sliding_layers: tuple[bool, ...] | None  # which layers slide, when the metadata says (sliding_window_pattern)
    expert_count: int | None
    expert_used_count: int | None
    kv_lora_rank: int | None  # MLA (deepseek2): the latent K/V width
    vocab_size: int | None  # {arch}.vocab_size, else the tokenizer's token count


def architecture_facts(metadata: Mapping[str, Value]) -> GgufArchitecture:
    """The architecture facts of a GGUF model's metadata (its first file's); UnsupportedModel without
    general.architecture or {arch}.block_count (a projector or a tokenizer-only file), GgufError for values of the
    wrong kind."""
    arch = metadata.get("general.architecture")
    layers = metadata.get(f"{arch}.block_count")
    if not isinstance(arch, str) or not _is_count(layers):
        raise UnsupportedModel("GGUF metadata lacks general.architecture or its block_count: not a language model")
    assert isinstance(layers, int)
    if layers > MAX_TENSORS:  # every layer holds a tensor
        raise GgufError(f"GGUF {arch}.block_count {layers:,} is larger than any model")

    def count(key: str) -> int | None:
        value = metadata.get(f"{arch}.{key}")
        if value is not None and not _is_count(value):
            raise GgufError(f"GGUF {arch}.{key} is not a count: {_shown(str(value))}")
        return value  # type: ignore[return-value]

    def per_layer(key: str, default: int | None) -> tuple[int, ...] | None:
        value = metadata.get(f"{arch}.{key}", default)
        if isinstance(value, tuple):
            counts = tuple(v for v in value if _is_count(v))
            if len(value) != layers or len(counts) != layers:
                raise GgufError(f"GGUF {arch}.{key} is not {layers} counts, one per layer")
            return counts
        if value is None:
            return None
        if not _is_count(value):
            raise GgufError(f"GGUF {arch}.{key} is not a count: {_shown(str(value))}")
        return (value,) * layers

    embedding = count("embedding_length")
    heads = per_layer("attention.head_count", 0) or ()  # llama.cpp's defaults: 0 heads; KV heads as many as heads
    head_dim = embedding // heads[0] if embedding and heads and heads[0] else None
    window = count("attention.sliding_window") or None
    pattern = metadata.get(f"{arch}.attention.sliding_window_pattern")
    sliding: tuple[bool, ...] | None = None
    if window and _is_count(pattern):  # llama.cpp's set_swa_pattern(n): n-1 sliding layers, then one full
        n = int(pattern)  # type: ignore[arg-type]
        sliding = tuple(n == 0 or i % n < n - 1 for i in range(layers))
    elif window and isinstance(pattern, tuple):
        if len(pattern) != layers or not all(isinstance(v, bool) for v in pattern):
            raise GgufError(f"GGUF {arch}.attention.sliding_window_pattern is not {layers} flags, one per layer")
        sliding = pattern
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = count("vocab_size") or (len(tokens) if isinstance(tokens, tuple) else getattr(tokens, "length", None))
    return GgufArchitecture(
        architecture=arch,
        block_count=layers,
        context_length=count("context_length"),
        embedding_length=embedding,
        feed_forward_length=per_layer("feed_forward_length", None),
        head_count=heads,
        head_count_kv=per_layer("attention.head_count_kv", heads[0] if heads else 0) or (),
        key_length=count("attention.key_length") or head_dim,
        value_length=count("attention.value_length") or head_dim,
        sliding_window=window,
        sliding_layers=sliding,
        expert_count=count("expert_count"),
        expert_used_count=count("expert_used_count"),
        kv_lora_rank=count("attention.kv_lora_rank"),
        vocab_size=vocab,
    )


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- a repo's GGUF side, and its tensors under transformers' names ---


@dataclass(frozen=True)
class GgufRepo:
    """What a repo's GGUF files say: every variant (names and sizes from the file list alone) and the chosen one's
    headers joined. Only the chosen variant's headers are read: a header costs up to tens of round trips and a few
    MB, so the other variants show their size, not their type mix."""

    variants: tuple[GgufVariant, ...]
    chosen: GgufVariant
    model: GgufModel
    architecture: GgufArchitecture


def open_repo(
    files: Iterable[RepoFile],
    header: Callable[[str], GgufHeader],
    *,
    file: str | None = None,
    quant: str | None = None,
    read_all: Callable[[Callable[[str], GgufHeader], Sequence[str]], Iterable[GgufHeader]] = map,
) -> GgufRepo:
    """Group `files` into variants, choose one (select_variant), and read its header(s) through `header(path)`,
    every split file through `read_all` (map, or a thread pool's map)."""
    variants = group_variants(files)
    chosen = select_variant(variants, file=file, quant=quant)
    model = join_splits(list(read_all(header, chosen.files)))
    return GgufRepo(variants, chosen, model, architecture_facts(model.metadata))


# llama.cpp's tensor names (gguf-py/gguf/constants.py TENSOR_NAMES) -> transformers' Llama-style module names, so
# that the memory model finds a GGUF's linear layers, embeddings and experts as in a safetensors checkpoint.
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output": "lm_head", "output_norm": "model.norm"}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "attn_qkv": "self_attn.qkv_proj", "attn_q_a": "self_attn.q_a_proj",
    "attn_q_b": "self_attn.q_b_proj", "attn_kv_a_mqa": "self_attn.kv_a_proj_with_mqa",
    "attn_kv_b": "self_attn.kv_b_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj", "ffn_gate_inp": "mlp.gate",
    "ffn_gate_shexp": "mlp.shared_expert.gate_proj", "ffn_up_shexp": "mlp.shared_expert.up_proj",
    "ffn_down_shexp": "mlp.shared_expert.down_proj",
    "ffn_gate_exps": "mlp.experts.*.gate_proj", "ffn_up_exps": "mlp.experts.*.up_proj",
    "ffn_down_exps": "mlp.experts.*.down_proj",
}  # fmt: skip
_BLOCK_TENSOR = re.compile(r"blk\.(\d+)\.(.+?)(\.weight|\.bias)?")


def torch_name(name: str) -> str:
    """`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`; names without a counterpart keep their
    last part under `model.layers.N.` (a block's) or as they are."""
    match = _BLOCK_TENSOR.fullmatch(name)
    if match:
        block, module, suffix = match.groups()
        return f"model.layers.{block}.{_BLOCK_NAMES.get(module, module)}{suffix or ''}"
    stem, dot, suffix = name.partition(".")
    return _TOP_NAMES.get(stem, stem) + dot + suffix


def layer_of(name: str) -> int | None:
    """The repeating layer (block) a GGUF tensor belongs to; None for the input and output layers' tensors."""
    match = _BLOCK_TENSOR.fullmatch(name)
    return int(match[1]) if match else None


def is_gguf_repo(files: Iterable[RepoFile], chosen: bool) -> bool:
    """Whether a repo resolves through its GGUF files: it has some, and a variant was chosen (--file, --quant) or
    it has no transformers checkpoint (config.json and safetensors) to resolve instead."""
    paths = {f.path for f in files}
    if not any(p.lower().endswith(".gguf") for p in paths):
        return False
    return chosen or "config.json" not in paths or not any(p.endswith(".safetensors") for p in paths)
