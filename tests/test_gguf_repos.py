"""Repos of GGUF files, end to end: variants on the fake Hub and on disk, headers read without a weight byte, the
spec from GGUF metadata, and memory under llama.cpp's rules (hfmem.engines.llamacpp)."""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from hfmem.api import inspect_model
from hfmem.checks import check_model
from hfmem.cli import cli
from hfmem.engines.llamacpp import gpu_slots
from hfmem.errors import BadResponse, GgufChoiceError
from hfmem.gguf import is_gguf_repo
from hfmem.hub import HubOptions
from hfmem.memory import Settings
from hfmem.snapshot import RepoFile
from tests.fakehub import FakeHub, FakeRepo, LazyFile, _chunks, _Reply
from tests.hostilehub import HostileHub
from tests.test_gguf import HIDDEN, LLAMA_TENSORS, MOE_TENSORS, VOCAB, _llama, _moe, _write

REPO = "org/Tiny-Llama-GGUF"
Q8_TENSORS = [(name, "F32" if kind in ("F32", "BF16") else "Q8_0", shape) for name, kind, shape in LLAMA_TENSORS]
KV_PER_CELL = 2 * 2 * (2 * 32) * 2  # layers x (K + V) x (2 KV heads x head_dim 32) x 2 B (f16)


def _gemma(writer: gguf.GGUFWriter) -> None:
    _llama(writer)
    writer.add_sliding_window(512)
    writer.add_sliding_window_pattern([True, False])  # layer 0 slides, layer 1 attends in full


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real GGUF files from gguf's writer: two single-file quants, a split one in its folder, and a projector."""
    root = tmp_path_factory.mktemp("gguf-repo")
    _write(root / "Tiny-Llama-Q4_K_M.gguf", "llama", LLAMA_TENSORS, _llama)
    _write(root / "Tiny-Llama-Q8_0.gguf", "llama", Q8_TENSORS, _llama)
    (root / "Q6_K").mkdir()
    _write(root / "Q6_K" / "Tiny-Llama-Q6_K.gguf", "llama", LLAMA_TENSORS, _llama, split_max_tensors=8)
    _write(root / "Tiny-Gemma-SWA-BF16.gguf", "gemma3", LLAMA_TENSORS, _gemma)
    _write(root / "mmproj-Tiny-F16.gguf", "clip", [("v.patch_embd.weight", "F16", (HIDDEN, 32))], lambda w: None)
    return root


@pytest.fixture(scope="module")
def served(folder: Path) -> dict[str, LazyFile | bytes]:
    """Each file as the Hub serves an LFS file: its real header, then (here, as in the file) zero bytes."""
    files: dict[str, LazyFile | bytes] = {"README.md": b"# Tiny Llama GGUF\n"}
    for path in sorted(folder.rglob("*.gguf")):
        data = path.read_bytes()
        files[path.relative_to(folder).as_posix()] = LazyFile(data[: _reader(path).data_offset], len(data))
    return files


@pytest.fixture
def repo(fake_hub: FakeHub, served: dict[str, LazyFile | bytes]) -> FakeRepo:
    return fake_hub.add_repo(FakeRepo(REPO, dict(served)))


def _inspect(fake_hub: FakeHub, settings: Settings | None = None, **choice: str):
    return inspect_model(REPO, settings or Settings(seq_len=1000), hub=HubOptions(endpoint=fake_hub.url, token=False),
                         **choice)  # fmt: skip


@cache
def _reader(path: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(path)


def _truth(*paths: Path) -> tuple[int, dict[str, int], int, int]:
    """(parameters, parameters per ggml type, tensor bytes, token_embd bytes) as gguf's own reader counts them."""
    by_type: dict[str, int] = {}
    total_bytes = embedding = 0
    for path in paths:
        for t in _reader(path).tensors:
            by_type[t.tensor_type.name] = by_type.get(t.tensor_type.name, 0) + int(t.n_elements)
            total_bytes += int(t.n_bytes)
            embedding += int(t.n_bytes) if t.name == "token_embd.weight" else 0
    return sum(by_type.values()), by_type, total_bytes, embedding


def test_default_variant_exact(fake_hub: FakeHub, repo: FakeRepo, folder: Path):
    report = _inspect(fake_hub)
    spec, inference = report.spec, report.memory.inference
    parameters, by_type, tensor_bytes, embedding = _truth(folder / "Tiny-Llama-Q4_K_M.gguf")
    assert spec.gguf is not None and spec.gguf.chosen.files == ("Tiny-Llama-Q4_K_M.gguf",)  # llama.cpp's default
    assert (spec.parameters.total, spec.parameters.by_dtype, spec.parameters.exact) == (parameters, by_type, True)
    assert spec.files.weights_bytes == tensor_bytes
    assert spec.files.download_bytes == (folder / "Tiny-Llama-Q4_K_M.gguf").stat().st_size
    assert "gguf" in spec.files.formats
    a = spec.architecture
    assert (a.model_type, a.hidden_size, a.num_hidden_layers, a.num_attention_heads, a.num_key_value_heads,
            a.head_dim, a.vocab_size, a.max_position_embeddings, a.tie_word_embeddings) == (
            "llama", HIDDEN, 2, 8, 2, 32, VOCAB, 8192, True)  # fmt: skip
    assert spec.parameters.embedding == VOCAB * HIDDEN  # token_embd (tied: no output.weight)
    # llama.cpp: 1,000 tokens -> 1,024 cells; f16 K and V; the compute buffer is 512 tokens of logits + hidden.
    assert inference.settings["engine"] == "llamacpp"
    assert inference.components["kv_cache"] == 1024 * KV_PER_CELL
    assert inference.components["compute_buffer"] == 512 * 4 * (VOCAB + HIDDEN)
    # Every layer offloaded: token_embd stays on the host, and the tied output layer holds its copy on the GPU.
    assert inference.components["weights"] == tensor_bytes
    assert inference.settings["host"] == {"weights": embedding, "kv_cache": 0, "compute_buffer": 0}
    assert report.memory.cpu.total_bytes == tensor_bytes + 1024 * KV_PER_CELL + 512 * 4 * (VOCAB + HIDDEN)


def test_no_weight_byte_is_read(fake_hub: FakeHub, repo: FakeRepo):
    _inspect(fake_hub, quant="q6_k")
    reads = [r for r in fake_hub.requests_for(REPO, "resolve") if r.file and r.file.endswith(".gguf")]
    assert {r.file for r in reads} == {f"Q6_K/Tiny-Llama-Q6_K-0000{i}-of-00003.gguf" for i in (1, 2, 3)}
    for r in reads:
        assert r.method == "GET" and r.range is not None, r
        start, end = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", r.range).groups())  # type: ignore[union-attr]
        data_offset = len(repo.files[r.file].head)  # type: ignore[union-attr]
        assert end < data_offset, f"{r.file}: read up to byte {end:,}, tensor data starts at {data_offset:,}"
        assert r.bytes_sent == end - start + 1


def test_split_files_are_summed(fake_hub: FakeHub, repo: FakeRepo, folder: Path):
    split = _inspect(fake_hub, quant="Q6_K").spec
    single = _inspect(fake_hub, file="Tiny-Llama-Q4_K_M.gguf").spec
    assert split.gguf is not None and len(split.gguf.chosen.files) == 3
    assert split.parameters.total == _truth(*sorted((folder / "Q6_K").iterdir()))[0] == single.parameters.total
    assert split.files.weights_bytes == single.files.weights_bytes
    assert split.files.download_bytes == sum(p.stat().st_size for p in (folder / "Q6_K").iterdir())


def test_file_and_quant_choose(fake_hub: FakeHub, repo: FakeRepo, folder: Path):
    q8 = _inspect(fake_hub, quant="Q8_0").spec
    assert q8.parameters.by_dtype == _truth(folder / "Tiny-Llama-Q8_0.gguf")[1]
    assert _inspect(fake_hub, file="Tiny-Llama-Q8_0.gguf").spec.parameters == q8.parameters


def test_sliding_window_layers(fake_hub: FakeHub, repo: FakeRepo):
    report = _inspect(fake_hub, Settings(seq_len=4000), quant="BF16")
    assert report.spec.architecture.layer_types == ("sliding_attention", "full_attention")
    # 4,096 cells for the full layer; pad(512 + n_ubatch 512, 256) = 1,024 for the sliding one
    per_layer_cell = KV_PER_CELL // 2
    assert report.memory.inference.components["kv_cache"] == (4096 + 1024) * per_layer_cell


@pytest.mark.parametrize("quant, message", [
    ("Q3_K_S", "--quant Q3_K_S names no GGUF variant; choose one with --quant or --file: Q6_K, BF16, Q4_K_M, Q8_0"),
    (None, None),
])  # fmt: skip
def test_a_missing_quant_lists_the_choices(fake_hub: FakeHub, repo: FakeRepo, quant, message):
    if quant is None:  # a missing split part
        del repo.files["Q6_K/Tiny-Llama-Q6_K-00002-of-00003.gguf"]
        quant, message = "Q6_K", "GGUF Q6_K/Tiny-Llama-Q6_K has 2 of its 3 split files"
    with pytest.raises(GgufChoiceError) as caught:
        _inspect(fake_hub, quant=quant)
    assert str(caught.value) == message
    assert caught.value.code == "gguf_choice"


def test_local_directory(folder: Path):
    report = inspect_model(str(folder), Settings(seq_len=1000), quant="Q8_0")
    assert report.spec.source == "local"
    assert report.spec.parameters.by_dtype == _truth(folder / "Tiny-Llama-Q8_0.gguf")[1]


@pytest.mark.parametrize("layers, first, output", [(None, 0, True), (3, 0, True), (9, 0, True), (2, 1, True),
                                                   (1, 2, True), (0, 3, False)])  # fmt: skip
def test_gpu_slots(layers, first, output):
    """llama.cpp counts 2 + 1 slots for a 2-layer model and offloads the last N: the output layer first."""
    assert gpu_slots(2, layers) == (first, output)


def test_partial_offload(fake_hub: FakeHub, repo: FakeRepo, folder: Path):
    tensor_bytes, embedding = _truth(folder / "Tiny-Llama-Q4_K_M.gguf")[2:]
    block1 = tensor_bytes // 2 - embedding // 2 - HIDDEN * 2  # the two blocks are alike; output_norm is F32
    output = HIDDEN * 4 + embedding  # output_norm (F32) and the tied output's copy of token_embd
    layer_kv = 1024 * KV_PER_CELL // 2
    for n, gpu_weights, gpu_kv in [(2, block1 + output, layer_kv), (1, output, 0), (0, 0, 0)]:
        inference = _inspect(fake_hub, Settings(seq_len=1000, n_gpu_layers=n)).memory.inference
        host = inference.settings["host"]
        assert (inference.components["weights"], inference.components["kv_cache"]) == (gpu_weights, gpu_kv)
        assert host["weights"] == tensor_bytes + (embedding if n else 0) - gpu_weights
        assert host["kv_cache"] == 2 * layer_kv - gpu_kv
        assert inference.components["overhead"] == (Settings.overhead_bytes if n else 0)
        assert (inference.components["compute_buffer"] > 0) == (n > 0) == (host["compute_buffer"] == 0)


@pytest.mark.parametrize("k, v, per_cell", [("q8_0", "q8_0", 2 * 2 * 68), ("q4_0", "f16", 2 * (36 + 128)),
                                            ("f32", "iq4_nl", 2 * (256 + 36))])  # fmt: skip
def test_quantized_cache_types(fake_hub: FakeHub, repo: FakeRepo, k, v, per_cell):
    """A row of 64 elements (2 KV heads x 32) is 2 blocks of 32: q8_0 34 B, q4_0 and iq4_nl 18 B each."""
    settings = Settings(seq_len=1000, cache_type_k=k, cache_type_v=v)
    assert _inspect(fake_hub, settings).memory.inference.components["kv_cache"] == 1024 * per_cell


def test_cli_json(fake_hub: FakeHub, repo: FakeRepo, monkeypatch: pytest.MonkeyPatch):
    args = ["inspect", REPO, "--json", "--quant", "Q8_0", "--seq-len", "1000", "--cache-type-k", "q8_0",
            "--n-gpu-layers", "1"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert "gguf" in data["files"]["formats"]
    assert data["gguf"]["file"] == "Tiny-Llama-Q8_0.gguf"
    by_name = {f["name"]: f for f in data["gguf"]["files"]}
    assert by_name["Tiny-Llama-Q8_0.gguf"]["types"] == data["parameters"]["by_dtype"]
    assert by_name["Tiny-Llama-Q4_K_M.gguf"]["types"] is None  # only the chosen variant's header is read
    assert sum(data["gguf"]["bytes_by_type"].values()) == data["files"]["weights_bytes"]
    assert by_name["Q6_K/Tiny-Llama-Q6_K-00001-of-00003.gguf"]["parts"] == 3
    settings = data["memory"]["inference"]["settings"]
    assert (settings["engine"], settings["cache_type_k"], settings["n_gpu_layers"]) == ("llamacpp", "q8_0", 1)
    assert data["memory"]["inference"]["total_bytes"] == sum(data["memory"]["inference"]["components"].values())


def test_cli_unknown_quant(fake_hub: FakeHub, repo: FakeRepo):
    result = CliRunner().invoke(cli, ["inspect", REPO, "--quant", "IQ1_S"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("hfmem: error: --quant IQ1_S names no GGUF variant; choose one with --quant or "
                                     "--file: Q6_K, BF16, Q4_K_M, Q8_0")  # fmt: skip


def test_human_report(fake_hub: FakeHub, repo: FakeRepo):
    result = CliRunner().invoke(cli, ["inspect", REPO, "-ngl", "2", "--seq-len", "1000", "--tables"],
                                catch_exceptions=False, env={"COLUMNS": "100"})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "GGUF          Tiny-Llama-Q4_K_M.gguf (" in result.stdout
    assert "llama.cpp: 2 of 3 layers on the GPU" in result.stdout
    assert "inference  q8_0 KV cache" in result.stdout and "fp8 KV cache" not in result.stdout


def test_check_passes_on_gguf(fake_hub: FakeHub, repo: FakeRepo):
    result = check_model(REPO, Settings(seq_len=1000), hub=HubOptions(endpoint=fake_hub.url, token=False))
    assert result.passed, result.findings


def test_check_and_audit_take_file_and_quant(fake_hub: FakeHub, repo: FakeRepo, folder: Path):
    """--file / --quant choose the variant on check as on inspect, and for every GGUF repo of an audit; a repo
    without GGUF files in the same audit resolves as always."""
    fake_hub.add_repo(FakeRepo("org/plain", {"config.json": json.dumps(_PLAIN_CONFIG).encode(),
                                             "model.safetensors": _plain_weights()}))  # fmt: skip
    q8_bytes = _truth(folder / "Tiny-Llama-Q8_0.gguf")[2]
    checked = check_model(REPO, Settings(seq_len=1000), hub=HubOptions(endpoint=fake_hub.url, token=False),
                          quant="Q8_0")  # fmt: skip
    assert checked.report is not None and checked.report.spec.files.weights_bytes == q8_bytes
    assert checked.findings[1].parts == ("GGUF (Tiny-Llama-Q8_0.gguf): loading it runs no code",)
    result = CliRunner().invoke(cli, ["check", REPO, "--file", "Tiny-Llama-Q8_0.gguf", "--seq-len", "1000", "--json"],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "GGUF (Tiny-Llama-Q8_0.gguf)" in json.loads(result.stdout)["checks"][1]["message"]
    result = CliRunner().invoke(cli, ["audit", "-", "--quant", "Q8_0", "--format", "jsonl", "--seq-len", "1000"],
                                input=f"{REPO}\norg/plain\n", catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["model"] for row in rows] == [REPO, "org/plain"] and not any(row["error"] for row in rows)
    assert rows[0]["weights"] == q8_bytes and rows[1]["params"] == 4 * 4
    absent = CliRunner().invoke(cli, ["audit", "-", "--quant", "IQ1_S", "--format", "jsonl"], input=f"{REPO}\n")
    assert absent.exit_code == 1 and "--quant IQ1_S names no GGUF variant" in json.loads(absent.stdout)["error"]["message"]


_PLAIN_CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4,
                 "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4, "intermediate_size": 4}


def _plain_weights() -> bytes:
    header = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}})
    return len(header).to_bytes(8, "little") + header.encode() + bytes(64)


def test_a_server_that_ignores_range_is_refused(served: dict[str, LazyFile | bytes]):
    """A read past the first one answered from byte 0 (a server ignoring Range) would be parsed as the wrong bytes."""

    def whole_file(call, reply: _Reply) -> _Reply:
        content = served[call.file]
        size = content.size  # type: ignore[union-attr]
        return _Reply(200, {"Content-Type": "application/octet-stream"}, _chunks(content, 0, size), size)

    with HostileHub() as hub:
        hub.add_repo(FakeRepo(REPO, dict(served)))
        hub.tamper("resolve", whole_file, path=".gguf")
        with pytest.raises(BadResponse, match="answered from another offset"):
            inspect_model(REPO, hub=HubOptions(endpoint=hub.url, token=False, backoff=0))


def _llama_8b_header(path: Path) -> LazyFile:
    """Llama-3.1-8B-Instruct-Q4_K_M.gguf's header as llama.cpp's quantizer lays it out: its metadata keys, a
    128,256-token vocabulary with 280,147 merges, its 292 tensors at the Q4_K_M type mix (Q6_K for output and, in
    the layers use_more_bits picks, attn_v and ffn_down). Only the header is written; the fake Hub serves zeros
    for the 4.9 GB of tensor data."""
    n, hidden, ff, vocab = 32, 4096, 14336, 128256

    def more_bits(i: int) -> bool:  # src/llama-quant.cpp use_more_bits
        return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2

    tensors = [("token_embd.weight", "Q4_K", (vocab, hidden))]
    for i in range(n):
        wide = "Q6_K" if more_bits(i) else "Q4_K"
        tensors += [(f"blk.{i}.attn_norm.weight", "F32", (hidden,)), (f"blk.{i}.ffn_down.weight", wide, (hidden, ff)),
                    (f"blk.{i}.ffn_gate.weight", "Q4_K", (ff, hidden)), (f"blk.{i}.ffn_up.weight", "Q4_K", (ff, hidden)),
                    (f"blk.{i}.ffn_norm.weight", "F32", (hidden,)), (f"blk.{i}.attn_k.weight", "Q4_K", (1024, hidden)),
                    (f"blk.{i}.attn_output.weight", "Q4_K", (hidden, hidden)),
                    (f"blk.{i}.attn_q.weight", "Q4_K", (hidden, hidden)), (f"blk.{i}.attn_v.weight", wide, (1024, hidden))]
    tensors += [("output.weight", "Q6_K", (vocab, hidden)), ("output_norm.weight", "F32", (hidden,)),
                ("rope_freqs.weight", "F32", (64,))]  # fmt: skip
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("Meta Llama 3.1 8B Instruct")
    writer.add_block_count(n)
    writer.add_context_length(131072)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(32)
    writer.add_head_count_kv(8)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_vocab_size(vocab)
    writer.add_rope_dimension_count(128)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(vocab)])
    writer.add_token_types([1] * vocab)
    writer.add_token_merges([f"t o{i}" for i in range(280147)])
    data_bytes = 0
    for name, kind, shape in tensors:
        qtype = gguf.GGMLQuantizationType[kind]
        block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = math.prod(shape[:-1]) * shape[-1] // block * block_bytes
        writer.add_tensor_info(name, (*shape[:-1], shape[-1] // block * block_bytes), np.dtype(np.uint8), nbytes, qtype)
        data_bytes += -(-nbytes // 32) * 32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    head = path.read_bytes()
    head += bytes(-len(head) % 32)  # the padding up to the data section
    return LazyFile(head, len(head) + data_bytes)


def test_llama_3_1_8b_q4_k_m(fake_hub: FakeHub, tmp_path: Path):
    """Real shapes: the exact count (the safetensors' 8,030,261,248 plus rope_freqs' 64), KV at the full 131,072
    tokens (32 layers x 8 KV heads x 128 x K and V x 2 B = 128 KiB a token: 16 GiB), the compute buffer."""
    name = "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    file = _llama_8b_header(tmp_path / name)
    fake_hub.add_repo(FakeRepo("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", {name: file}))
    report = inspect_model("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", hub=HubOptions(endpoint=fake_hub.url, token=False))
    spec, inference = report.spec, report.memory.inference
    assert spec.parameters.total == 8_030_261_248 + 64
    assert spec.parameters.by_dtype["F32"] == 2 * 32 * 4096 + 4096 + 64
    assert spec.files.weights_bytes == 4_912_898_304
    assert inference.components["kv_cache"] == 16 * 2**30
    assert inference.components["compute_buffer"] == int(258.5 * 2**20)
    assert inference.settings["host"]["weights"] == 128256 * 4096 // 256 * 144  # token_embd, Q4_K, on the CPU
    reads = [r for r in fake_hub.requests_for(spec.model, "resolve") if r.file == name]
    assert max(int(r.range.rsplit("-", 1)[1]) for r in reads) < len(file.head)  # type: ignore[union-attr]
    assert len(reads) < 40  # a 7 MB header in ranged reads that grow with what it must still hold


def test_moe_with_a_layer_without_attention(tmp_path: Path):
    """qwen3moe-style metadata: stacked experts count as experts (k of E active), per-layer KV heads (one layer
    without attention), K and V of different widths."""
    _write(tmp_path / "moe-Q2_K.gguf", "qwen3moe", MOE_TENSORS, _moe)
    report = inspect_model(str(tmp_path), Settings(seq_len=1000))
    spec, total = report.spec, report.spec.parameters.total
    experts = sum(math.prod(shape) for name, _, shape in MOE_TENSORS if "_exps" in name)
    assert (spec.architecture.num_experts, spec.architecture.num_experts_per_tok) == (8, 2)
    assert spec.parameters.active == total - experts + experts * 2 // 8
    # 1,024 cells x Σ_layers KV heads x (K 128 + V 64) x 2 B, for KV heads 2, 0, 2, 1
    assert report.memory.inference.components["kv_cache"] == 1024 * (2 + 0 + 2 + 1) * (128 + 64) * 2
    assert any("layers without attention heads" in w for w in report.warnings)


def test_options_of_the_other_engine_warn(fake_hub: FakeHub, repo: FakeRepo, hub_repo):
    gguf_report = _inspect(fake_hub, Settings(seq_len=1000, kv_dtype="fp8"))
    assert any("do not apply to llama.cpp" in w for w in gguf_report.warnings)
    hub_repo("hfmem-test/tiny-llama")
    report = inspect_model("hfmem-test/tiny-llama", Settings(n_gpu_layers=1), hub=HubOptions(endpoint=fake_hub.url))
    assert any("apply to GGUF models (llama.cpp) only" in w for w in report.warnings)


@pytest.mark.parametrize("paths, chosen, gguf_side", [
    (["m-Q4_K_M.gguf"], False, True),
    (["config.json", "m-Q4_K_M.gguf"], False, True),  # no checkpoint beside the GGUF
    (["config.json", "model.safetensors", "m-Q4_K_M.gguf"], False, False),  # the transformers checkpoint wins ...
    (["config.json", "model.safetensors", "m-Q4_K_M.gguf"], True, True),  # ... unless --file or --quant is given
    (["config.json", "model.safetensors"], True, False),
])  # fmt: skip
def test_which_side_of_a_repo_resolves(paths, chosen, gguf_side):
    assert is_gguf_repo([RepoFile(p, 1) for p in paths], chosen) is gguf_side


def test_a_warm_run_reads_no_gguf_header(fake_hub: FakeHub, repo: FakeRepo):
    cold = _inspect(fake_hub)
    q8_cold = _inspect(fake_hub, quant="Q8_0")  # a second variant joins the first in the commit's entry
    fake_hub.reset_log()
    warm, q8 = _inspect(fake_hub), _inspect(fake_hub, quant="Q8_0")
    assert (warm.snapshot.source, q8.snapshot.source) == ("cache", "cache")
    # one request each: config.json, whose 404 names the commit whose entry holds the variant
    assert [(r.route, r.file, r.status) for r in fake_hub.log] == [("resolve", "config.json", 404)] * 2
    assert (warm.spec.gguf, warm.spec.parameters, warm.memory) == (cold.spec.gguf, cold.spec.parameters, cold.memory)
    assert (q8.spec.gguf.chosen.quant, q8.spec.parameters) == ("Q8_0", q8_cold.spec.parameters)
    fake_hub.reset_log()
    pinned = inspect_model(f"{REPO}@{repo.sha}", hub=HubOptions(endpoint=fake_hub.url, token=False), quant="Q6_K")
    assert pinned.snapshot.source == "hub" and any(r.file.endswith(".gguf") for r in fake_hub.log if r.file)
    fake_hub.reset_log()
    pinned = inspect_model(f"{REPO}@{repo.sha}", hub=HubOptions(endpoint=fake_hub.url, token=False), quant="Q6_K")
    assert pinned.snapshot.source == "cache" and fake_hub.log == [], "a pinned, cached variant costs no request"


@pytest.mark.parametrize("corrupt", ["nbytes", "type", "files", "metadata"])
def test_a_cached_gguf_variant_is_checked_as_a_fresh_header(fake_hub: FakeHub, repo: FakeRepo, corrupt: str):
    from hfmem.cache import MetadataCache

    cold = _inspect(fake_hub)
    entry = MetadataCache.default().root / f"models--{REPO.replace('/', '--')}" / "snapshots" / f"{repo.sha}.json"
    data = json.loads(entry.read_text())
    (variant,) = data["gguf"].values()
    tensor = variant["tensors"][0]
    if corrupt == "nbytes":
        tensor[4] += 1  # bytes that do not follow from the shape and ggml type
    elif corrupt == "type":
        tensor[1] = "Q9_Z"
    elif corrupt == "files":
        variant["files"] = []  # not the variant's one file
    else:
        variant["metadata"]["llama.block_count"] = "2"  # architecture_facts refuses a count that is a string
    entry.write_text(json.dumps(data))
    fake_hub.reset_log()
    again = _inspect(fake_hub)
    assert again.snapshot.source == "hub" and again.spec.parameters == cold.spec.parameters
    assert any(r.file.endswith(".gguf") for r in fake_hub.log if r.file), "refused, and read from the Hub again"


def test_a_checkpoint_and_its_gguf_variants_share_the_commits_entry(fake_hub: FakeHub, hub_repo, served):
    tiny = hub_repo("hfmem-test/tiny-llama")
    tiny.files["Tiny-Llama-Q8_0.gguf"] = served["Tiny-Llama-Q8_0.gguf"]  # a transformers repo with a GGUF beside it
    hub = HubOptions(endpoint=fake_hub.url, token=False)
    checkpoint, q8 = inspect_model(tiny.repo_id, hub=hub), inspect_model(tiny.repo_id, hub=hub, quant="Q8_0")
    assert (checkpoint.spec.gguf, q8.spec.gguf.chosen.quant) == (None, "Q8_0")
    fake_hub.reset_log()
    warm, warm_q8 = inspect_model(tiny.repo_id, hub=hub), inspect_model(tiny.repo_id, hub=hub, quant="Q8_0")
    assert (warm.snapshot.source, warm_q8.snapshot.source) == ("cache", "cache")
    assert (warm.spec.parameters, warm_q8.spec.parameters) == (checkpoint.spec.parameters, q8.spec.parameters)
    assert [r.file for r in fake_hub.log] == ["config.json"] * 2, "one request each, no header read"
