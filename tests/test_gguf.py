"""hfmem.gguf against llama.cpp's own writer and reader (the gguf package), and against hostile headers."""

from __future__ import annotations

import struct
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np
import pytest

from hfmem.errors import GgufChoiceError, GgufError, UnsupportedModel
from hfmem.gguf import (
    GGML_TYPES,
    GgufArray,
    architecture_facts,
    group_variants,
    join_splits,
    quant_label,
    read_header,
    select_variant,
    split_part,
)
from hfmem.snapshot import RepoFile
from hfmem.untrusted import MAX_BYTES, MAX_GGUF_STRING_BYTES

HIDDEN, FF, LAYERS, VOCAB = 256, 512, 2, 8_000


class Reads:
    """A file's bytes behind `read(offset, length)`, recording every ask; `chunk` > 0 answers greedily, as a
    resolver rounding its ranged reads up would."""

    def __init__(self, data: bytes, chunk: int = 0) -> None:
        self.data, self.chunk = data, chunk
        self.asks: list[tuple[int, int]] = []

    def __call__(self, offset: int, length: int) -> bytes:
        self.asks.append((offset, length))
        return self.data[offset : offset + max(length, self.chunk)]

    @property
    def furthest(self) -> int:
        return max(offset + length for offset, length in self.asks)


def _write(path: Path, arch: str, tensors: list[tuple[str, str, tuple[int, ...]]], metadata, split_max_tensors=0):
    """A real GGUF file from gguf's GGUFWriter: zero data, `tensors` as (name, ggml type, numpy-order shape)."""
    writer = gguf.GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    metadata(writer)
    for name, type_name, shape in tensors:
        qtype = gguf.GGMLQuantizationType[type_name]
        block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        raw = np.zeros((*shape[:-1], shape[-1] // block * block_bytes), dtype=np.uint8)
        writer.add_tensor(name, raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _tokenizer(writer: gguf.GGUFWriter) -> None:
    tokens = [f"tok{i}" for i in range(VOCAB)]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * VOCAB)
    writer.add_token_scores([0.5] * VOCAB)
    writer.add_token_merges([f"t o{i}" for i in range(VOCAB - 300)])
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")


def _llama(writer: gguf.GGUFWriter) -> None:
    writer.add_name("Tiny Llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(8192)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FF)
    writer.add_head_count(8)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_bool("tiny.flag", True)
    writer.add_int64("tiny.signed", -(2**40))
    writer.add_float64("tiny.double", 0.1)
    _tokenizer(writer)


LLAMA_TENSORS = [("token_embd.weight", "Q6_K", (VOCAB, HIDDEN)), ("output_norm.weight", "F32", (HIDDEN,))] + [
    (f"blk.{i}.{name}", kind, shape)
    for i in range(LAYERS)
    for name, kind, shape in [
        ("attn_norm.weight", "F32", (HIDDEN,)),
        ("attn_q.weight", "Q4_K", (HIDDEN, HIDDEN)),
        ("attn_k.weight", "Q4_K", (64, HIDDEN)),
        ("attn_v.weight", "Q6_K", (64, HIDDEN)),
        ("attn_output.weight", "Q4_K", (HIDDEN, HIDDEN)),
        ("ffn_gate.weight", "Q4_K", (FF, HIDDEN)),
        ("ffn_up.weight", "IQ4_XS", (FF, HIDDEN)),
        ("ffn_down.weight", "Q8_0", (HIDDEN, FF)),
        ("ffn_norm.weight", "BF16", (HIDDEN,)),
    ]
]


def _moe(writer: gguf.GGUFWriter) -> None:
    writer.add_block_count(4)
    writer.add_context_length(32768)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FF)
    writer.add_expert_feed_forward_length(128)
    writer.add_expert_count(8)
    writer.add_expert_used_count(2)
    writer.add_head_count(4)
    writer.add_head_count_kv([2, 0, 2, 1])  # a layer without attention, as hybrids have
    writer.add_key_length(128)
    writer.add_value_length(64)
    writer.add_sliding_window(1024)
    writer.add_sliding_window_pattern([True, True, False, True])
    writer.add_vocab_size(1000)


MOE_TENSORS = [("token_embd.weight", "MXFP4", (1000, HIDDEN)), ("output.weight", "TQ2_0", (1000, HIDDEN))] + [
    (f"blk.{i}.{name}", kind, shape)
    for i in range(4)
    for name, kind, shape in [
        ("attn_q.weight", "IQ2_XXS", (512, HIDDEN)),
        ("ffn_gate_inp.weight", "F16", (8, HIDDEN)),
        ("ffn_gate_exps.weight", "Q2_K", (8, 128, HIDDEN)),
        ("ffn_down_exps.weight", "IQ3_S", (8, HIDDEN, 256)),
        ("ffn_up_exps.weight", "IQ1_M", (8, 128, HIDDEN)),
    ]
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    _write(root / "llama.gguf", "llama", LLAMA_TENSORS, _llama)
    _write(root / "moe.gguf", "qwen3moe", MOE_TENSORS, _moe)
    _write(root / "split.gguf", "llama", LLAMA_TENSORS, _llama, split_max_tensors=8)
    return {path.name: path for path in sorted(root.iterdir())}


def _parse(path: Path, chunk: int = 0):
    reads = Reads(path.read_bytes(), chunk)
    return read_header(reads, path.name), reads


def test_ggml_table_is_ggmls():
    assert {name: (block, size) for name, block, size in GGML_TYPES.values()} == {
        t.name: sizes for t, sizes in gguf.GGML_QUANT_SIZES.items()
    }
    assert {i: GGML_TYPES[i][0] for i in GGML_TYPES} == {t.value: t.name for t in gguf.GGMLQuantizationType}


@pytest.mark.parametrize("name", ["llama.gguf", "moe.gguf", "split-00002-of-00003.gguf"])
def test_agrees_with_gguf_reader(files: dict[str, Path], name: str):
    header, _ = _parse(files[name])
    reader = gguf.GGUFReader(files[name])
    assert header.data_offset == reader.data_offset
    offset = header.data_offset
    assert [(t.name, t.ggml_type, t.shape, offset + t.offset, t.nbytes, t.numel) for t in header.tensors] == [
        (t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), t.data_offset, t.n_bytes, t.n_elements)
        for t in reader.tensors
    ]
    fields = {key: field for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    assert list(header.metadata) == list(fields)
    for key, field in fields.items():
        ours, theirs = header.metadata[key], field.contents()
        if isinstance(ours, GgufArray):
            assert (ours.length, ours.type) == (len(field.data), field.types[-1].name.lower())
        else:
            assert ours == (tuple(theirs) if isinstance(theirs, list) else theirs), key


def test_exact_sums(files: dict[str, Path]):
    header, _ = _parse(files["llama.gguf"])
    model = join_splits([header])
    parameters, nbytes = {}, {}
    for name, kind, shape in LLAMA_TENSORS:
        block, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[kind]]
        parameters[kind] = parameters.get(kind, 0) + int(np.prod(shape))
        nbytes[kind] = nbytes.get(kind, 0) + int(np.prod(shape)) // block * block_bytes
    assert model.parameters_by_type == parameters and model.bytes_by_type == nbytes
    assert model.parameters == VOCAB * 256 + 256 + 2 * (256 + 65_536 + 2 * 16_384 + 65_536 + 3 * 131_072 + 256)
    assert model.parameters_by_type["Q4_K"] == 2 * (65_536 + 16_384 + 65_536 + 131_072)
    assert model.bytes_by_type["Q4_K"] == model.parameters_by_type["Q4_K"] // 256 * 144
    assert model.bits_per_weight == pytest.approx(8 * sum(nbytes.values()) / model.parameters)
    assert list(model.parameters_by_type)[0] == "Q6_K"  # largest first
    assert model.metadata["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert model.metadata["tokenizer.ggml.tokens"] == GgufArray("string", VOCAB)


def test_split_files_join_to_the_single_file(files: dict[str, Path]):
    parts = [name for name in files if name.startswith("split-")]
    assert parts == ["split-00001-of-00003.gguf", "split-00002-of-00003.gguf", "split-00003-of-00003.gguf"]
    headers = [_parse(files[name])[0] for name in parts]
    joined = join_splits(headers[::-1])  # any order
    single = join_splits([_parse(files["llama.gguf"])[0]])
    assert joined.files == tuple(parts)
    assert [t.name for t in joined.tensors] == [t.name for t in single.tensors]
    assert (joined.parameters, joined.bytes_by_type) == (single.parameters, single.bytes_by_type)
    assert joined.metadata["general.name"] == "Tiny Llama"
    with pytest.raises(GgufError, match="split files"):
        join_splits(headers[:2])
    with pytest.raises(GgufError, match="more than one split"):
        join_splits([headers[0], headers[1], replace(headers[2], tensors=headers[1].tensors)])


@pytest.mark.parametrize("chunk", [0, 4096, 1 << 20])
def test_tensor_data_is_never_read(files: dict[str, Path], chunk: int):
    header, reads = _parse(files["llama.gguf"], chunk)
    tensor_infos_end = header.data_offset - 32  # the last info ends within the padding before the data
    if chunk:  # a greedy resolver reads what it likes; the parse is the same
        assert header == _parse(files["llama.gguf"])[0]
        return
    assert tensor_infos_end < reads.furthest <= header.data_offset
    assert all(end <= offset for (offset, _), end in zip(reads.asks[1:], [o + n for o, n in reads.asks]))  # once each
    asked = sum(length for _, length in reads.asks)
    scores_and_types = 2 * 4 * VOCAB  # float32 scores and int32 types: stepped over, not read
    assert asked < reads.furthest - scores_and_types + 1024
    assert len(reads.asks) < 60  # each ask covers what the rest of the header must hold, not one value


def _architecture(files: dict[str, Path], name: str):
    return architecture_facts(_parse(files[name])[0].metadata)


def test_architecture_facts(files: dict[str, Path]):
    llama = _architecture(files, "llama.gguf")
    assert (llama.architecture, llama.block_count, llama.context_length) == ("llama", 2, 8192)
    assert llama.embedding_length == 256
    assert (llama.head_count, llama.head_count_kv, llama.key_length, llama.value_length) == ((8, 8), (2, 2), 32, 32)
    assert (llama.feed_forward_length, llama.sliding_window, llama.sliding_layers) == ((512, 512), None, None)
    assert (llama.vocab_size, llama.expert_count) == (VOCAB, None)
    moe = _architecture(files, "moe.gguf")
    assert (moe.head_count_kv, moe.key_length, moe.value_length) == ((2, 0, 2, 1), 128, 64)
    assert (moe.sliding_window, moe.sliding_layers) == (1024, (True, True, False, True))
    assert (moe.expert_count, moe.expert_used_count, moe.vocab_size, moe.context_length) == (8, 2, 1000, 32768)


def test_architecture_facts_rules():
    base = {"general.architecture": "gemma3", "gemma3.block_count": 7, "gemma3.attention.head_count": 4}
    period = architecture_facts(base | {"gemma3.attention.sliding_window": 512,
                                        "gemma3.attention.sliding_window_pattern": 3})  # fmt: skip
    assert period.sliding_layers == (True, True, False, True, True, False, True)  # llama.cpp's set_swa_pattern(3)
    assert architecture_facts(base | {"gemma3.attention.sliding_window": 512}).sliding_layers is None
    assert architecture_facts(base).head_count_kv == (4,) * 7
    with pytest.raises(UnsupportedModel):
        architecture_facts({"general.architecture": "clip"})
    with pytest.raises(GgufError, match="one per layer"):
        architecture_facts(base | {"gemma3.attention.head_count_kv": (1, 2)})
    with pytest.raises(GgufError, match="not a count"):
        architecture_facts(base | {"gemma3.context_length": "long"})
    with pytest.raises(GgufError, match="larger than any model"):
        architecture_facts(base | {"gemma3.block_count": 2**60})


# --- names, variants, selection ---


def test_split_and_quant_names():
    assert split_part("Q4_K_M/model-00002-of-00003.gguf") == ("Q4_K_M/model", 2, 3)
    assert split_part("model-00004-of-00003.gguf") is None
    assert split_part("model.gguf") is None
    assert quant_label("model-Q4_K_M.gguf") == "Q4_K_M"
    assert quant_label("Llama-3.1-8B.Q8_0-00001-of-00002.gguf") == "Q8_0"
    assert quant_label("Q5_K_S/Qwen3-235B-A22B-00001-of-00003.gguf") == "Q5_K_S"
    assert quant_label("UD-Q4_K_XL/Qwen3-UD-Q4_K_XL-00001-of-00002.gguf") == "UD-Q4_K_XL"
    assert quant_label("ggml-model-iq2_xxs.gguf") == "IQ2_XXS"
    assert quant_label("gemma-3-4b-it-BF16.gguf") == "BF16"
    assert quant_label("QwQ-32B.gguf") is None


REPO = [
    RepoFile("README.md", 10),
    RepoFile("model-Q4_K_M.gguf", 100),
    RepoFile("model.Q8_0-00002-of-00002.gguf", 150),
    RepoFile("model.Q8_0-00001-of-00002.gguf", 200),
    RepoFile("Q5_K_M/model-00001-of-00003.gguf", 50),
    RepoFile("Q5_K_M/model-00003-of-00003.gguf", 50),
    RepoFile("mmproj-model-F16.gguf", 30),
    RepoFile("BF16/model-BF16.gguf", None),
]


def test_group_variants():
    assert [(v.name, v.quant, v.files, v.size, v.complete, v.projector) for v in group_variants(REPO)] == [
        ("BF16/model-BF16.gguf", "BF16", ("BF16/model-BF16.gguf",), None, True, False),
        ("Q5_K_M/model", "Q5_K_M", ("Q5_K_M/model-00001-of-00003.gguf", "Q5_K_M/model-00003-of-00003.gguf"), 100,
         False, False),
        ("mmproj-model-F16.gguf", "F16", ("mmproj-model-F16.gguf",), 30, True, True),
        ("model-Q4_K_M.gguf", "Q4_K_M", ("model-Q4_K_M.gguf",), 100, True, False),
        ("model.Q8_0", "Q8_0", ("model.Q8_0-00001-of-00002.gguf", "model.Q8_0-00002-of-00002.gguf"), 350, True, False),
    ]  # fmt: skip


def test_select_variant():
    variants = group_variants(REPO)
    assert select_variant(variants, quant="q8_0").name == "model.Q8_0"
    assert select_variant(variants).quant == "Q4_K_M"  # llama.cpp -hf's default
    assert select_variant(variants, file="model.Q8_0-00002-of-00002.gguf").name == "model.Q8_0"
    assert select_variant(variants, file="model-BF16.gguf").quant == "BF16"  # a file name without its folder
    assert select_variant(group_variants(REPO[2:4] + REPO[6:7])).name == "model.Q8_0"  # the only model, not mmproj
    with pytest.raises(GgufChoiceError, match="has 2 of its 3 split files"):
        select_variant(variants, quant="Q5_K_M")
    with pytest.raises(GgufChoiceError, match="--quant Q2_K names no GGUF variant") as absent:
        select_variant(variants, quant="Q2_K")
    assert absent.value.choices == ("BF16", "Q5_K_M", "Q4_K_M", "Q8_0")
    with pytest.raises(GgufChoiceError, match="--file x.gguf names no GGUF variant"):
        select_variant(variants, file="x.gguf")
    twins = group_variants(REPO + [RepoFile("other-Q4_K_M.gguf", 1)])
    with pytest.raises(GgufChoiceError, match="matches 2 GGUF variants") as ambiguous:
        select_variant(twins)
    assert ambiguous.value.choices == ("model-Q4_K_M.gguf", "other-Q4_K_M.gguf")
    with pytest.raises(GgufChoiceError, match="has 3 GGUF variants") as unnamed:
        select_variant(group_variants(REPO[4:6] + [RepoFile("model.gguf", 1), RepoFile("model-Q8_0.gguf", 1)]))
    assert unnamed.value.choices == ("Q5_K_M", "Q8_0", "model.gguf")


# --- hostile headers ---


def _str(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _pair(key: bytes, value_type: int, value: bytes) -> bytes:
    return _str(key) + struct.pack("<I", value_type) + value


def _info(name: bytes, dims: tuple[int, ...], type_id: int = 0, offset: int = 0) -> bytes:
    return _str(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, type_id, offset)


def _file(pairs=(), infos=(), n_pairs=None, n_tensors=None, version=3, magic=b"GGUF") -> bytes:
    head = magic + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                               len(pairs) if n_pairs is None else n_pairs)  # fmt: skip
    body = head + b"".join(pairs) + b"".join(infos)
    return body + bytes(-len(body) % 32 + 4096)  # padding, then "tensor data"


U32 = struct.pack("<I", 7)
HOSTILE = {
    "bad magic": (_file(magic=b"GGML"), "not a GGUF file"),
    "version 1": (_file(version=1), "version 1 is not supported"),
    "version 4": (_file(version=4), "version 4 is not supported"),
    "big-endian": (_file(version=3 << 24), "big-endian"),
    "string of 2^60 bytes": (_file([struct.pack("<Q", 2**60)]), "claims"),
    "string past the cap": (_file([struct.pack("<Q", MAX_GGUF_STRING_BYTES + 1)]), "limit"),
    "array of 2^60 strings": (_file([_pair(b"a", 9, struct.pack("<IQ", 8, 2**60))]), "limit"),
    "array of 2^60 bytes": (_file([_pair(b"a", 9, struct.pack("<IQ", 0, 2**60))]), "limit"),
    "array past the end": (_file([_pair(b"a", 9, struct.pack("<IQ", 12, 2**22))]), "file ends inside"),
    "10^9 tensors": (_file(n_tensors=10**9), "1,000,000,000 tensors"),
    "10^18 pairs": (_file(n_pairs=10**18), "1,000,000,000,000,000,000 metadata pairs"),
    "nested arrays": (_file([_pair(b"a", 9, struct.pack("<IQIQ", 9, 1, 4, 1) + U32)]), "array of an array"),
    "unknown element type": (_file([_pair(b"a", 9, struct.pack("<IQ", 13, 1))]), "unknown type 13"),
    "unknown value type": (_file([_pair(b"a", 13, U32)]), "unknown value type 13"),
    "empty key": (_file([_pair(b"", 4, U32)]), "empty or repeated"),
    "repeated key": (_file([_pair(b"a", 4, U32), _pair(b"a", 4, U32)]), "empty or repeated"),
    "control characters": (_file([_pair(b"\x1b[2J\n" * 200, 4, U32)] * 2), r"'\\x1b\[2J\\n.*\.\.\.' is empty or"),
    "alignment not u32": (_file([_pair(b"general.alignment", 10, struct.pack("<Q", 32))]), "not a uint32"),
    "alignment not a power of 2": (_file([_pair(b"general.alignment", 4, struct.pack("<I", 48))]), "power of two"),
    "unknown ggml type": (_file(infos=[_info(b"t", (4,), 31)]), "unknown ggml type 31"),
    "ggml type 99": (_file(infos=[_info(b"t", (4,), 99)]), "unknown ggml type 99"),
    "five dims": (_file(infos=[_info(b"t", (1, 1, 1, 1, 1))]), "5 dimensions"),
    "2^32-1 dims": (_file(infos=[_str(b"t") + struct.pack("<I", 2**32 - 1)]), "4,294,967,295 dimensions"),
    "dims overflowing": (_file(infos=[_info(b"t", (2**32, 2**32))]), "too large"),
    "a dim past int64": (_file(infos=[_info(b"t", (2**64 - 1, 0))]), "too large"),
    "row not whole blocks": (_file(infos=[_info(b"t", (100, 2), 12)]), "not whole blocks of 256"),
    "repeated tensor": (_file(infos=[_info(b"t", (8,)), _info(b"t", (8,), offset=32)]), "listed twice"),
    "overlapping data": (_file(infos=[_info(b"t", (8,)), _info(b"u", (8,))]), "starts at 0"),
    "gap in the data": (_file(infos=[_info(b"t", (8,), offset=64)]), "starts at 64"),
}


@pytest.mark.parametrize("data, message", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_header(data: bytes, message: str):
    reads = Reads(data)
    tracemalloc.start()
    try:
        with pytest.raises(GgufError, match=message) as error:
            read_header(reads, "evil.gguf")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    message = str(error.value)
    assert message.startswith("evil.gguf: ") and message.isprintable() and len(message) < 200
    assert reads.furthest <= MAX_BYTES["gguf"]


def test_header_larger_than_the_cap(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(MAX_BYTES, "gguf", 100_000)
    reads = Reads(files["llama.gguf"].read_bytes())
    with pytest.raises(GgufError, match="larger than hfmem reads \\(100,000 bytes\\)"):
        read_header(reads, "llama.gguf")
    assert reads.furthest <= 100_000


@pytest.mark.parametrize("name, step", [("moe.gguf", 1), ("llama.gguf", 4099)])
def test_truncated_anywhere(files: dict[str, Path], name: str, step: int):
    """A header cut at every byte through every section (moe.gguf), and every few kB through a tokenizer's arrays."""
    data = files[name].read_bytes()
    end = _parse(files[name])[0].data_offset - 32
    for cut in range(0, end, step):
        with pytest.raises(GgufError, match="file ends inside"):
            read_header(Reads(data[:cut]), "cut.gguf")


def test_hfmem_imports_neither_gguf_nor_numpy():
    code = "import sys, hfmem.gguf; sys.exit(bool({'gguf', 'numpy'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
