import struct

import pytest
from safetensors import deserialize

from hfmem.errors import HeaderError
from hfmem.header import MAX_HEADER_BYTES, ParsedOnce, Tensor, header_from_dict, parse_header, write_header
from tests.dataset import DATASET, needs_dataset

TENSORS = [
    Tensor("embed.weight", "BF16", (10, 4)),
    Tensor("norm.weight", "F32", (4,)),
    Tensor("scalar", "F32", ()),
    Tensor("empty", "F16", (0, 3)),
    Tensor("packed", "F4", (3, 2)),
]


def test_write_then_parse_round_trips():
    header = parse_header(write_header(TENSORS, {"format": "pt"}), "x.safetensors")
    assert header.tensors == tuple(TENSORS)
    assert header.metadata == {"format": "pt"}
    assert header.data_bytes == 80 + 16 + 4 + 0 + 3


def test_routed_experts_are_grouped_per_layer():
    experts = [
        Tensor(f"model.layers.{layer}.mlp.experts.{e}.{proj}.weight", "BF16", (8, 4) if proj == "up" else (4, 8))
        for layer in (0, 1) for e in range(3) for proj in ("up", "down")
    ]  # fmt: skip
    odd = Tensor("model.layers.1.mlp.experts.3.up.weight", "F32", (8, 4))  # another dtype stays apart
    fused = [Tensor("model.layers.1.mlp.experts.down_proj", "BF16", (3, 8, 4)), Tensor("x.experts.12", "BF16", (2,))]
    others = [Tensor("model.layers.0.mlp.gate.weight", "BF16", (3, 4)),
              Tensor("model.layers.0.mlp.shared_experts.up.weight", "BF16", (8, 4))]  # fmt: skip
    header = parse_header(write_header(others + experts + [odd] + fused), "x.safetensors")
    assert [(t.name, t.dtype, t.count) for t in header.tensors] == [
        ("model.layers.0.mlp.gate.weight", "BF16", 1),
        ("model.layers.0.mlp.shared_experts.up.weight", "BF16", 1),
        ("model.layers.0.mlp.experts.*.up.weight", "BF16", 3),
        ("model.layers.0.mlp.experts.*.down.weight", "BF16", 3),
        ("model.layers.1.mlp.experts.*.up.weight", "BF16", 3),
        ("model.layers.1.mlp.experts.*.down.weight", "BF16", 3),
        ("model.layers.1.mlp.experts.*.up.weight", "F32", 1),
        ("model.layers.1.mlp.experts.down_proj", "BF16", 1),  # fused experts (gpt-oss): nothing to group
        ("x.experts.12", "BF16", 1),
    ]
    assert header.data_bytes == sum(t.nbytes for t in others + experts + [odd] + fused)


def test_agrees_with_the_safetensors_library():
    tensors = [t for t in TENSORS if t.dtype != "F4"]  # F4 is beyond what this reader build loads
    raw = write_header(tensors, {"format": "pt"})
    data = raw + bytes(sum(t.nbytes for t in tensors))
    ours = parse_header(data, "model.safetensors")
    theirs = {name: (info["dtype"].upper(), tuple(info["shape"]), len(info["data"])) for name, info in deserialize(data)}
    assert theirs == {t.name: (t.dtype, t.shape, t.nbytes) for t in ours.tensors}


@needs_dataset
def test_real_minilm_header():
    raw = (DATASET / "safetensors-headers/sentence-transformers__all-MiniLM-L6-v2.model.safetensors.header.bin").read_bytes()
    header = parse_header(raw, "model.safetensors")
    by_dtype = {}
    for t in header.tensors:
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.numel
    assert len(header.tensors) == 104
    assert by_dtype == {"F32": 22_713_216, "I64": 512}
    assert 8 + 11_408 + header.data_bytes == 90_868_376


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x01\x02", "too small"),
        (struct.pack("<Q", MAX_HEADER_BYTES + 1), "limit"),
        (struct.pack("<Q", 100) + b"{}", "truncated"),
        (struct.pack("<Q", 5) + b"{oops", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_bad_prefixes_and_bodies(raw, message):
    with pytest.raises(HeaderError, match=message):
        parse_header(raw, "bad.safetensors")


@pytest.mark.parametrize(
    "decoded, message",
    [
        ({"a": {"dtype": "F32", "shape": [2]}}, "lacks"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "invalid shape"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "do not match"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, "does not start"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, "invalid data_offsets"),
        ({"__metadata__": [], "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, "__metadata__"),
        ({"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}}, "lacks"),
        ({"a": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}}, "invalid shape"),
        ({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}, "invalid shape"),
        # a (dtype, shape) checked once still has every tensor's offsets checked
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 12]}}, "do not match"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 2.0]}}, "invalid data_offsets"),
    ],
)
def test_invalid_tensor_entries(decoded, message):
    with pytest.raises(HeaderError, match=message):
        header_from_dict(decoded, "bad.safetensors")


def test_unknown_dtype_is_sized_by_its_offsets():
    header = header_from_dict({"a": {"dtype": "F3_NEW", "shape": [8], "data_offsets": [0, 3]}}, "x")
    assert header.tensors[0].nbytes == 3
    assert header.tensors[0].numel == 8


def test_tiling_is_checked_unless_the_hub_parsed_the_header():
    gap = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
    with pytest.raises(HeaderError, match="does not start where the previous one ends"):
        header_from_dict(gap, "x.safetensors")
    assert header_from_dict(gap, "x.safetensors", parsed_by_hub=True).data_bytes == 8


@pytest.mark.parametrize(
    "decoded, message",
    [
        ({"a": {"dtype": "F32", "shape": [2]}}, "lacks"),
        ({"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}}, "lacks"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "invalid shape"),
        ({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 6]}}, "invalid shape"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "do not match"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 12]}}, "do not match"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, "invalid data_offsets"),
        ({"a": {"dtype": "F3_NEW", "shape": [8], "data_offsets": [8, 4]}}, "invalid data_offsets"),
        ({"a": {"dtype": "F3_NEW", "shape": [8], "data_offsets": [0, 3.0]}}, "invalid data_offsets"),
        ({"__metadata__": [], "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, "__metadata__"),
    ],
)
def test_a_header_the_hub_parsed_keeps_the_checks_that_bound_memory_or_change_a_count(decoded, message):
    with pytest.raises(HeaderError, match=message):
        header_from_dict(decoded, "bad.safetensors", parsed_by_hub=True)


def test_a_header_the_hub_parsed_skips_only_the_offsets_order():
    # Offsets that span each tensor's bytes but are out of order, overlap or start past 0 change no count: the
    # Hub's own parse is taken as it is, and the bytes are the same as from a header hfmem parses itself.
    decoded = {"b": {"dtype": "BF16", "shape": [4], "data_offsets": [100, 108]},
               "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [100, 124]},
               "c": {"dtype": "F3_NEW", "shape": [8], "data_offsets": [0, 3]}}  # fmt: skip
    with pytest.raises(HeaderError, match="does not start where the previous one ends"):
        header_from_dict(decoded, "x.safetensors")
    header = header_from_dict(decoded, "x.safetensors", parsed_by_hub=True)
    assert [(t.name, t.dtype, t.shape, t.nbytes, t.numel) for t in header.tensors] == [
        ("b", "BF16", (4,), 8, 4), ("a", "F32", (2, 3), 24, 6), ("c", "F3_NEW", (8,), 3, 8)
    ]
    assert header.data_bytes == 35


def test_routed_experts_group_by_their_index_only():
    names = ["m.layers.0.mlp.experts.0.w.weight", "m.layers.0.mlp.experts.1.w.weight", "m.experts.12",
             "m.experts.gate_up_proj"]  # fmt: skip
    decoded, offset = {}, 0
    for name in names:
        decoded[name] = {"dtype": "F32", "shape": [2], "data_offsets": [offset, offset + 8]}
        offset += 8
    grouped = {(t.name, t.count) for t in header_from_dict(decoded, "x.safetensors").tensors}
    assert grouped == {("m.layers.0.mlp.experts.*.w.weight", 2), ("m.experts.12", 1), ("m.experts.gate_up_proj", 1)}


def test_parsed_once_keeps_results_by_content_within_its_bound():
    kept = ParsedOnce(max_entries=5)
    calls: list[bytes] = []

    def parse(raw: bytes) -> tuple[bytes, ...]:
        return kept.parse(raw, lambda: calls.append(raw) or (raw,) * len(raw), len)

    first = parse(b"abc")
    assert parse(b"abc") is first and calls == [b"abc"]  # the same bytes: parsed once
    parse(b"de")  # 3 + 2 entries: both kept
    parse(b"f")  # 6 entries: the least recently used (abc) goes
    assert parse(b"de") and calls == [b"abc", b"de", b"f"]
    assert parse(b"abc") is not first and calls[-1] == b"abc"
    parse(b"toolong")  # more entries than the bound: returned, not kept
    parse(b"toolong")
    assert calls.count(b"toolong") == 2


def test_parsed_once_keeps_nothing_of_a_failed_parse():
    kept = ParsedOnce(max_entries=100)
    for _ in range(2):
        with pytest.raises(HeaderError, match="truncated"):
            kept.parse(b"x", lambda: parse_header(struct.pack("<Q", 10) + b"{}", "f"), lambda h: len(h.tensors))
    assert kept.parse(b"x", lambda: "parsed", len) == "parsed"
