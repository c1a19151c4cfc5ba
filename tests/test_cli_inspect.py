"""`hfmem inspect` through click's CliRunner (and once as a real subprocess) against the fake Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfmem.cli import cli
from tests.dataset import needs_dataset
from tests.fakehub import FakeHub

TINY = "hfmem-test/tiny-llama"
GOLDEN = Path(__file__).parent / "golden"
CONTRACT_KEYS = ["model", "revision", "commit", "source", "architecture", "dtype", "quantization", "parameters",
                 "files", "memory", "gpu", "warnings"]  # fmt: skip


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "100", "NO_COLOR": "1"})


def check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; review, then rerun with --update-golden"


def test_json_follows_the_contract(hub_repo):
    repo = hub_repo(TINY)
    result = run("inspect", TINY, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert data["commit"] == repo.sha and data["source"] == "hub" and data["revision"] == "main"
    assert data["parameters"]["total"] == 106_816
    assert data["parameters"]["by_dtype"] == {"BF16": 106_816}
    assert data["files"]["weights_bytes"] == 2 * 106_816
    assert data["files"]["formats"] == ["safetensors"]
    assert data["architecture"]["attention"] == "gqa"
    for mode in ("inference", "training", "lora"):
        section = data["memory"][mode]
        assert section["total_bytes"] == sum(section["components"].values())
        assert all(isinstance(v, int) for v in section["components"].values())
    assert data["memory"]["lora"]["trainable_parameters"] > 0
    assert data["gpu"] is None


def test_gpu_answers(hub_repo):
    hub_repo(TINY)
    data = json.loads(run("inspect", TINY, "--json", "--gpu", "H100").stdout)
    assert data["gpu"]["fits"] == {"inference": True, "training": True, "lora": True}
    assert data["gpu"]["gpus_needed"] == {"inference": 1, "training": 1, "lora": 1}
    tiny_gpu = json.loads(run("inspect", TINY, "--json", "--gpu-memory", "0.001").stdout)["gpu"]
    assert tiny_gpu["memory_bytes"] == int(0.001 * 2**30)
    assert tiny_gpu["fits"]["training"] is False


def test_settings_reach_the_memory_model(hub_repo):
    hub_repo(TINY)
    base = json.loads(run("inspect", TINY, "--json", "-s", "1024").stdout)["memory"]
    bigger = json.loads(run("inspect", TINY, "--json", "-s", "1024", "-b", "4").stdout)["memory"]
    assert bigger["inference"]["components"]["kv_cache"] == 4 * base["inference"]["components"]["kv_cache"]
    assert bigger["inference"]["settings"]["batch_size"] == 4
    lora = json.loads(run("inspect", TINY, "--json", "--lora-rank", "8", "--lora-targets", "q_proj,v_proj").stdout)
    assert lora["memory"]["lora"]["settings"]["target_modules"] == ["q_proj", "v_proj"]


def test_human_report_golden(hub_repo, update_golden):
    hub_repo(TINY)
    result = run("inspect", TINY, "--gpu", "RTX-4090")
    assert result.exit_code == 0
    check_golden("tiny-llama.txt", result.stdout, update_golden)


def test_explain_shows_formulas_and_rules_of_thumb(hub_repo):
    hub_repo(TINY)
    result = run("inspect", TINY, "--explain")
    assert result.exit_code == 0
    assert "kv_cache" in result.stdout
    assert "rule" in result.stdout.lower()


@needs_dataset
def test_llama_3_1_8b_spec(hub_repo):
    hub_repo("meta-llama/Llama-3.1-8B")
    data = json.loads(run("inspect", "meta-llama/Llama-3.1-8B", "--json").stdout)
    assert data["parameters"]["total"] == 8_030_261_248
    assert data["parameters"]["embedding"] == 2 * 525_336_576
    assert data["files"]["weights_bytes"] == 16_060_522_496
    assert data["files"]["count"] == 6  # config.json, 4 shards and the index
    assert data["memory"]["inference"]["components"]["kv_cache"] == 131_072 * 4096


@pytest.mark.parametrize(
    "setup, args, error_type, message",
    [
        (None, ["nobody/nothing"], "not_found", "was not found"),
        (None, ["bad//ref"], "bad_reference", "not a Hub repo id"),
        ({}, [TINY + "@nope"], "revision_not_found", "no revision"),
    ],
)
def test_errors_are_one_line_and_exit_2(setup, args, error_type, message, hub_repo):
    if setup is not None:
        hub_repo(TINY, **setup)
    result = run("inspect", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    as_json = run("inspect", *args, "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["type"] == error_type


def test_several_models_give_an_array_with_errors_in_place(hub_repo):
    hub_repo(TINY)
    result = run("inspect", TINY, "nobody/nothing", "--json")
    assert result.exit_code == 2
    first, second = json.loads(result.stdout)
    assert first["parameters"]["total"] == 106_816
    assert second == {"model": "nobody/nothing",
                      "error": {"type": "not_found", "message": second["error"]["message"], "hint": "token"}}


def test_usage_errors_exit_2(hub_repo):
    assert run("inspect", TINY, "--gpu", "NoSuchGPU").exit_code == 2
    assert run("inspect", TINY, "--gpu", "H100", "--gpu-memory", "80").exit_code == 2
    assert run("inspect").exit_code == 2


@pytest.mark.parametrize("command", [[], ["inspect"], ["check"], ["audit"]])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(command, flag):
    result = run(*command, flag)
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_python_dash_m_with_hf_endpoint(hub_repo, fake_hub: FakeHub):
    hub_repo(TINY)
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url}
    result = subprocess.run(
        [sys.executable, "-m", "hfmem", "inspect", TINY, "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parameters"]["total"] == 106_816


def test_token_option_opens_a_gated_repo(hub_repo):
    hub_repo(TINY, gated=True)
    assert run("inspect", TINY, "--json", "--token", FakeHub.valid_token).exit_code == 0


def test_hf_token_environment_opens_a_gated_repo(hub_repo, monkeypatch):
    hub_repo(TINY, gated=True)
    monkeypatch.setenv("HF_TOKEN", FakeHub.valid_token)
    assert run("inspect", TINY, "--json").exit_code == 0


@needs_dataset
def test_engine_chooses_the_kv_rules_of_the_inference_column(hub_repo):
    """gpt-oss-20b: 24 layers, 12 full and 12 sliding (window 128), 8 KV heads of 64. transformers 5.24 keeps the
    whole prefill in every layer (cache_utils.py:241-249); vLLM 0.33 keeps cdiv(min(127 + 8192, 32768), 16) + 1
    = 521 blocks of 16 tokens in a sliding layer (one group of 12 per kind), 16-bit."""
    hub_repo("openai/gpt-oss-20b")

    def inference(*engine: str) -> dict:
        data = json.loads(run("inspect", "openai/gpt-oss-20b", "--json", "-s", "32768", "--kv-dtype", "bfloat16",
                              *engine).stdout)
        return data["memory"]["inference"]

    per_layer = 2 * 8 * 64 * 2
    default, vllm, sglang = inference(), inference("--engine", "vllm"), inference("--engine", "sglang")
    assert default["settings"]["engine"] == "transformers" and default["settings"]["engine_version"] == "5.24.0"
    assert default["components"]["kv_cache"] == 24 * 32768 * per_layer
    assert vllm["settings"]["engine"] == "vllm" and vllm["settings"]["engine_version"] == "0.33.0"
    assert vllm["components"]["kv_cache"] == (12 * 32768 + 12 * 521 * 16) * per_layer
    assert sglang["components"]["kv_cache"] == (12 * 32768 + 12 * (128 + 8192)) * per_layer
    human = run("inspect", "openai/gpt-oss-20b", "--engine", "vllm").stdout
    assert "KV as vLLM 0.33.0" in human
