"""`hfmem serve` against the fake Hub: the plan's JSON (CONTRACT.md), 80-column human output and exit statuses."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from hfmem.cli import cli

LLAMA = "meta-llama/Llama-3.1-8B"
TINY = "hfmem-test/tiny-llama"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["serve", *args], catch_exceptions=False)


def test_llama_on_a_3090_at_20000_starts(hub_repo):
    hub_repo(LLAMA)
    result = run(LLAMA, "--gpu", "RTX-3090", "--max-model-len", "20000", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["engine"] == {"name": "vllm", "version": "0.33.0"}
    assert data["gpu"] == {"name": "RTX-3090", "memory_bytes": 24 * 2**30, "count": 1}
    assert data["settings"]["max_model_len"] == 20000 and data["starts"] is True and data["error"] is None
    assert data["per_gpu"]["weights"] == 16_060_522_496
    assert data["command"] == f"vllm serve {LLAMA} --max-model-len 20000"


def test_refusal_exits_1_and_prints_the_engines_text_within_80_columns(hub_repo):
    hub_repo(LLAMA)
    result = run(LLAMA, "--gpu", "RTX-3090")
    assert result.exit_code == 1
    assert "verdict: refuses to start" in result.stdout
    assert "To serve at least one request with the model's max seq len (131072)" in " ".join(result.stdout.split())
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_solve_and_sglang(hub_repo):
    hub_repo(LLAMA)
    solved = json.loads(run(LLAMA, "--gpu", "RTX-3090", "--solve", "--json").stdout)
    assert solved["layout"] == {"tensor_parallel": 2, "pipeline_parallel": 1, "data_parallel": 1}
    sglang = run(LLAMA, "--engine", "sglang", "--gpu", "H100", "--tp", "2", "--context-length", "32768", "--json")
    data = json.loads(sglang.stdout)
    assert data["engine"]["name"] == "sglang" and data["layout"]["tensor_parallel"] == 2
    assert data["command"] == f"python -m sglang.launch_server --model-path {LLAMA} --tp 2 --context-length 32768"


def test_usage_errors(hub_repo):
    hub_repo(TINY)
    assert run(TINY).exit_code == 2  # no GPU
    assert run(TINY, "--gpu", "H100", "--engine", "sglang", "--kv-cache-dtype", "fp8").exit_code == 2
    none = run(TINY, "--gpu-memory", "0.01", "--solve", "--gpus", "2")
    assert none.exit_code == 1 and "no layout of at most 2 GPUs" in none.stderr


def test_check_with_an_engine_fails_exactly_when_it_refuses(hub_repo):
    hub_repo(LLAMA)
    refused = CliRunner().invoke(cli, ["check", LLAMA, "--gpu", "RTX-3090", "--engine", "vllm", "--json"])
    assert refused.exit_code == 1
    serve = {c["code"]: c for c in json.loads(refused.stdout)["checks"]}["serve"]
    assert serve["level"] == "fail" and "To serve at least one request" in serve["message"]
    starts = CliRunner().invoke(cli, ["check", LLAMA, "--gpu", "RTX-3090", "--engine", "vllm", "--max-model-len",
                                      "20000"])
    assert starts.exit_code == 0, starts.output
    assert "ok    serve            vLLM 0.33.0 starts: 41,136 KV tokens" in starts.stdout
    assert CliRunner().invoke(cli, ["check", LLAMA, "--engine", "vllm"]).exit_code == 2  # no GPU


def test_audit_with_an_engine_adds_tokens_concurrency_and_the_verdict(hub_repo):
    hub_repo(LLAMA)
    args = ["audit", "-", "--gpu", "RTX-3090", "--engine", "vllm", "--max-model-len", "20000"]
    result = CliRunner().invoke(cli, [*args, "--format", "json"], input=f"{LLAMA}\n")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    assert (row["kv_cache_tokens"], row["max_concurrency"], row["starts"]) == (41136, 2.06, True)
    table = CliRunner().invoke(cli, args, input=f"{LLAMA}\n", env={"COLUMNS": "160"}).stdout
    header, _, line, caption = table.splitlines()
    assert caption == "sizes in GiB; fits: inf, train, lora"
    assert header.split()[-5:] == ["fits", "KV", "tokens", "concurrency", "starts"]
    assert line.split()[-3:] == ["41,136", "2.06x", "yes"]


def test_check_and_audit_take_the_engines_kv_rules_for_the_inference_column(hub_repo):
    """gpt-oss-20b at 32,768 tokens (bf16 KV, 2,048 B per layer and token): transformers keeps the prefill in all
    24 layers; SGLang keeps window + 8,192 = 8,320 tokens in the 12 sliding ones. check's inference total and
    audit's column differ by exactly that; --engine transformers needs no GPU and adds no verdict."""
    oss = "openai/gpt-oss-20b"
    hub_repo(oss)
    args = [oss, "-s", "32768", "--kv-dtype", "bfloat16", "--json"]

    def check(*more: str) -> int:
        return json.loads(CliRunner().invoke(cli, ["check", *args, *more]).stdout)["memory_bytes"]

    saved = 12 * (32768 - 8320) * 2048
    assert check() - check("--engine", "sglang", "--gpu", "H100") == saved
    assert check("--engine", "transformers") == check()
    audit = ["audit", "-", "-s", "32768", "--kv-dtype", "bfloat16", "--format", "json", "--gpu", "H100"]
    row = json.loads(CliRunner().invoke(cli, [*audit, "--engine", "sglang"], input=f"{oss}\n").stdout)[0]
    base = json.loads(CliRunner().invoke(cli, [*audit, "--engine", "transformers"], input=f"{oss}\n").stdout)[0]
    assert base["inference"] - row["inference"] == saved
    assert row["starts"] is True and base["starts"] is None  # transformers has no start-up plan
