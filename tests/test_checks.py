"""Each pre-download check on synthetic snapshots: one finding per check, with the level the situation deserves."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hfmem.checks import CheckReport, Level, check_snapshot
from hfmem.views.json import check_to_dict
from hfmem.views.text import render_check
from hfmem.views.units import message
from hfmem.gpus import Gpu
from hfmem.header import Header, Tensor
from hfmem.memory import Settings
from hfmem.snapshot import RepoFile, Snapshot
from tests.fakehub import FIXTURES, load_tensors

TINY_DIR = FIXTURES / "hfmem-test__tiny-llama"
TINY_CONFIG = json.loads((TINY_DIR / "config.json").read_text())
TINY_TENSORS = load_tensors(TINY_DIR / "tensors.json")
CODES = ["download", "weights", "gated", "custom_code", "config", "config_dtype", "vocab_size", "tied_embeddings",
         "context", "fit"]  # fmt: skip
GIB = 2**30


def snapshot(
    config: dict[str, Any] | None = None,
    tensors: list[Tensor] | None = None,
    files: dict[str, int] | None = None,
    **fields: Any,
) -> Snapshot:
    """The tiny Llama fixture as a hub snapshot; `config` keys override its config.json (None values delete)."""
    merged = {k: v for k, v in {**TINY_CONFIG, **(config or {})}.items() if v is not None}
    tensors = TINY_TENSORS if tensors is None else tensors
    weights = sum(t.nbytes for t in tensors)
    if files is None:
        files = {"config.json": 700, "tokenizer.json": 3000, "model.safetensors": weights + 1000}
    headers = {"model.safetensors": Header(tuple(tensors))} if "model.safetensors" in files else {}
    repo_files = tuple(RepoFile(path, size) for path, size in files.items())
    return Snapshot("org/tiny", "org/tiny", None, "a" * 40, "hub", repo_files, merged, headers, **fields)


def check(snap: Snapshot, **kwargs: Any) -> CheckReport:
    return check_snapshot(snap, Settings(), **kwargs)


def finding(result: CheckReport, code: str) -> tuple[Level, str]:
    (match,) = [f for f in result.findings if f.code == code]
    return match.level, message(match.parts)


def test_a_clean_model_passes_every_check():
    result = check(snapshot(), gpu=Gpu("big", 80 * GIB))
    assert [f.code for f in result.findings] == CODES
    assert all(f.level is Level.OK for f in result.findings), result.findings
    assert result.passed


def test_download_size_split_by_format():
    level, message = finding(check(snapshot()), "download")
    assert level is Level.OK
    assert "in 3 files" in message and "safetensors" in message and "other" in message
    by_format = check_to_dict(check(snapshot()))["download"]["by_format"]
    assert by_format == {"safetensors": 2 * 106_816 + 1000, "other": 3700}


def test_duplicate_pickle_weights_are_flagged():
    files = {"config.json": 700, "model.safetensors": 214_632, "pytorch_model.bin": 214_000, "training_args.bin": 5}
    level, message = finding(check(snapshot(files=files)), "download")
    assert level is Level.WARN and "pytorch" in message and "*.safetensors" in message
    assert finding(check(snapshot(files=files)), "weights")[0] is Level.OK


def test_pickle_only_weights_warn_that_loading_runs_code():
    files = {"config.json": 700, "pytorch_model.bin": 214_000}
    result = check(snapshot(files=files))
    level, message = finding(result, "weights")
    assert level is Level.WARN and "pytorch_model.bin" in message and "arbitrary code" in message
    assert finding(result, "config_dtype")[1].startswith("not checked")
    assert result.passed


def test_no_weights_at_all_fails():
    level, message = finding(check(snapshot(files={"config.json": 700, "model.gguf": 10})), "weights")
    assert level is Level.FAIL and "gguf" in message


def test_gated():
    result = check(snapshot(gated="manual"))
    level, message = finding(result, "gated")
    assert level is Level.WARN and "manual" in message and "--token" not in message  # the library names no flag
    assert "hf auth login" in " ".join(render_check(result).split())  # the view says what to do
    assert finding(check(snapshot()), "gated")[0] is Level.OK


def test_custom_code():
    auto_map = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    files = {"config.json": 700, "model.safetensors": 214_632, "modeling_x.py": 900}
    level, message = finding(check(snapshot({"auto_map": auto_map}, files=files)), "custom_code")
    assert level is Level.WARN
    assert "auto_map (AutoModelForCausalLM)" in message and "modeling_x.py" in message
    assert "trust_remote_code" in message


def test_missing_required_fields_fail():
    # A known model_type would fill the gap with transformers' class default; an unknown one cannot.
    result = check(snapshot({"model_type": "brand_new", "num_attention_heads": None}))
    level, message = finding(result, "config")
    assert level is Level.FAIL and "num_attention_heads" in message
    assert not result.passed


def test_guessed_config_values_warn():
    level, message = finding(check(snapshot({"model_type": "brand_new"})), "config")
    assert level is Level.WARN and "brand_new" in message


def test_config_dtype_against_header_dtypes():
    level, message = finding(check(snapshot({"torch_dtype": "float32"})), "config_dtype")
    assert level is Level.WARN and "float32" in message and "BF16" in message
    quantized = snapshot({"torch_dtype": "float32", "quantization_config": {"quant_method": "fp8"}})
    assert finding(check(quantized), "config_dtype")[0] is Level.OK


def test_vocab_size_against_embedding_rows():
    level, message = finding(check(snapshot({"vocab_size": 300})), "vocab_size")
    assert level is Level.FAIL and "300" in message and "256" in message and "model.embed_tokens.weight" in message


def test_tie_flag_against_a_stored_lm_head():
    level, message = finding(check(snapshot({"tie_word_embeddings": True})), "tied_embeddings")
    assert level is Level.WARN and "lm_head.weight" in message
    headless = [t for t in TINY_TENSORS if not t.name.startswith("lm_head")]
    files = {"config.json": 700, "model.safetensors": 214_632}
    level, message = finding(check(snapshot(tensors=headless, files=files)), "tied_embeddings")
    assert level is Level.FAIL and "randomly" in message
    assert finding(check(snapshot({"tie_word_embeddings": True}, tensors=headless, files=files)), "tied_embeddings")[
        0] is Level.OK


def test_an_encoder_without_an_output_projection_is_fine():
    headless = [t for t in TINY_TENSORS if not t.name.startswith("lm_head")]
    files = {"config.json": 700, "model.safetensors": 214_632}
    result = check(snapshot({"architectures": ["LlamaModel"]}, tensors=headless, files=files))
    assert finding(result, "tied_embeddings")[0] is Level.OK


@pytest.mark.parametrize("mode", ["inference", "training", "lora"])
def test_fit_per_mode(mode):
    fits = check(snapshot(), mode=mode, gpu=Gpu("big", 80 * GIB))
    assert finding(fits, "fit")[0] is Level.OK and fits.passed
    level, message = finding(check(snapshot(), mode=mode, gpu=Gpu("tiny", 1000)), "fit")
    assert level is Level.FAIL and message.startswith(f"{mode} needs")
    assert "no number of these GPUs is enough" in message  # 1000 bytes: even the CUDA context does not fit


def test_fit_without_a_gpu_states_the_need_and_is_not_called_ok():
    level, message = finding(check(snapshot()), "fit")
    assert level is Level.SKIP and message.startswith("inference needs")
    assert "give --gpu or --gpu-memory" in " ".join(render_check(check(snapshot())).split())
    assert check(snapshot()).passed


def test_checks_that_could_not_run_say_skip():
    files = {"config.json": 700, "pytorch_model.bin": 2 * 106_816}
    result = check(snapshot(tensors=[], files=files))
    for code in ("config_dtype", "vocab_size", "tied_embeddings"):
        assert finding(result, code)[0] is Level.SKIP


def test_a_sequence_beyond_the_context_fails():
    result = check_snapshot(snapshot(), Settings(seq_len=10**6), gpu=Gpu("big", 80 * GIB))
    level, message = finding(result, "context")
    assert level is Level.FAIL and "1,000,000 is beyond the model's context" in message and not result.passed
    assert "give a smaller --seq-len" in " ".join(render_check(result).split())


def test_sizes_in_messages_follow_the_units():
    result = check(snapshot(), gpu=Gpu("big", 80 * GIB))
    assert "80.00 GiB" in render_check(result, "gib") and "85.90 GB" in render_check(result, "gb")


def test_json_shape():
    data = check_to_dict(check(snapshot(), mode="lora", gpu=Gpu("tiny", 1000)))
    assert data["passed"] is False and data["mode"] == "lora" and data["commit"] == "a" * 40
    assert [c["code"] for c in data["checks"]] == CODES
    assert set(data["checks"][0]) == {"code", "level", "message"}
    assert data["gpu"]["fits"]["lora"] is False and isinstance(data["memory_bytes"], int)
    assert data["download"]["bytes"] == 700 + 3000 + 2 * 106_816 + 1000


def test_rendered_verdicts():
    text = render_check(check(snapshot(gated="auto"), gpu=Gpu("tiny", 1000)))
    lines = text.splitlines()
    assert lines[0] == f"org/tiny @ main ({'a' * 12})"
    verdicts = [line for line in lines[1:-1] if not line.startswith(" ")]  # a long message wraps, indented
    assert [line.split()[1] for line in verdicts] == CODES
    assert verdicts[2].split()[:2] == ["warn", "gated"]
    assert max(map(len, lines)) <= 80
    assert lines[-1] == "result: failed (1 of 10 checks), 1 warning"
