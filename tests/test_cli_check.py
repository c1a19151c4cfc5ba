"""`hfmem check` against the fake Hub: verdicts and exit statuses for good repos and every fault repo."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from hfmem.cli import cli
from hfmem.header import write_header
from tests.fakehub import FIXTURES, FakeHub, load_tensors, oversized_header, truncated

TINY = "hfmem-test/tiny-llama"
REMOTE = "hfmem-test/tiny-remote-code"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["check", *args], catch_exceptions=False)


def verdicts(result: Result) -> dict[str, str]:
    return {c["code"]: c["level"] for c in json.loads(result.stdout)["checks"]}


def assert_one_line_error(result: Result, *words: str) -> None:
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hfmem: error: ") and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_all_good_and_it_fits(hub_repo):
    hub_repo(TINY)
    result = run(TINY, "--gpu", "H100")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{TINY} @ main (")
    assert lines[-1] == "result: passed"
    verdicts = [line.split()[0] for line in lines[1:-1] if not line.startswith(" ")]  # wrapped messages: indented
    assert len(verdicts) == 10 and set(verdicts) == {"ok"}


def test_json(hub_repo):
    hub_repo(TINY)
    result = run(TINY, "--gpu-memory", "80", "--mode", "training", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["model"] == TINY and data["mode"] == "training" and data["passed"] is True
    assert data["gpu"]["fits"]["training"] is True
    assert set(verdicts(result).values()) == {"ok"}


@pytest.mark.parametrize("mode", ["inference", "training", "lora"])
def test_does_not_fit(hub_repo, mode):
    hub_repo(TINY)
    result = run(TINY, "--gpu-memory", "0.0001", "--mode", mode, "--json")
    assert result.exit_code == 1
    assert verdicts(result)["fit"] == "fail"


def test_memory_options_apply(hub_repo):
    hub_repo(TINY)
    small = json.loads(run(TINY, "--json").stdout)["memory_bytes"]
    large = json.loads(run(TINY, "--json", "-b", "16", "-s", "512").stdout)["memory_bytes"]
    assert large > small


def test_local_directory(tmp_path, fake_hub):
    (tmp_path / "config.json").write_text((FIXTURES / "hfmem-test__tiny-llama" / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(write_header(load_tensors(FIXTURES / "hfmem-test__tiny-llama" /
                                                                           "tensors.json")))
    result = run(str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"] == "local" and data["commit"] is None
    gated = next(c for c in data["checks"] if c["code"] == "gated")
    assert gated == {"code": "gated", "level": "skip", "message": "a local directory"}
    assert fake_hub.log == []


def test_remote_code_warns(hub_repo):
    hub_repo(REMOTE)
    result = run(REMOTE, "--json")
    assert verdicts(result)["custom_code"] == "warn"
    assert result.exit_code == 0


def test_pickle_only_warns(hub_repo):
    hub_repo(TINY, weights="bin")
    result = run(TINY, "--json")
    assert result.exit_code == 0
    assert verdicts(result)["weights"] == "warn"


def test_gated_without_a_token_fails_the_gated_check_and_keeps_the_public_rows(hub_repo, fake_hub):
    repo = hub_repo(TINY, gated=True)
    result = run(TINY, "--gpu", "H100", "--json")
    assert result.exit_code == 1  # a failed check, not an unresolved model
    data = json.loads(result.stdout)
    assert (data["access"], data["passed"], data["memory_bytes"], data["gpu"]) == ("gated", False, None, None)
    assert verdicts(result) == {"download": "ok", "weights": "ok", "gated": "fail", "custom_code": "ok",
                                "config": "skip", "config_dtype": "skip", "vocab_size": "skip",
                                "tied_embeddings": "skip", "context": "skip", "fit": "skip"}  # fmt: skip
    sizes = {path: len(c) if isinstance(c, bytes) else c.size for path, c in repo.files.items()}
    assert data["download"] == {"bytes": sum(sizes.values()), "by_format": {
        "safetensors": sizes["model.safetensors"], "other": sizes["config.json"]}}  # fmt: skip
    assert f"{fake_hub.url}/{TINY}" in data["warnings"][0]
    text = run(TINY)
    assert text.exit_code == 1
    gated = next(line for line in text.stdout.splitlines() if line.startswith("fail"))
    assert gated.split()[:3] == ["fail", "gated", "gated"] and "hf auth login" in text.stdout
    assert text.stdout.splitlines()[-1] == "result: failed (1 of 10 checks)"


def test_gated_with_a_token(hub_repo):
    hub_repo(TINY, gated=True)
    result = run(TINY, "--token", FakeHub.valid_token, "--json")
    assert result.exit_code == 0
    assert verdicts(result)["gated"] == "warn"


def test_not_found(hub_repo):
    hub_repo(TINY, private=True)
    assert_one_line_error(run(TINY), "not found")
    assert_one_line_error(run("nobody/nothing"), "not found")


def test_bad_reference():
    assert_one_line_error(run("not a repo!"), "not a Hub repo id")


def test_rate_limit_is_retried(hub_repo, fake_hub):
    hub_repo(TINY, fail_first={429: 2}, retry_after=0)
    result = run(TINY)
    assert result.exit_code == 0
    # config.json and model_info leave at once, so which of them meets each 429 first varies: both 429s were
    # answered, and every request after them succeeded.
    statuses = [r.status for r in fake_hub.log]
    assert statuses.count(429) == 2 and set(statuses) <= {429, 200, 206}  # 206: a ranged header read


def test_server_errors_after_retries(hub_repo):
    hub_repo(TINY, fail_first={503: 100}, retry_after=0)
    assert_one_line_error(run(TINY), "503")


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda files: files.update({"model.safetensors": truncated(files["model.safetensors"])}), ()),
        (lambda files: files.update({"model.safetensors": oversized_header()}), ()),
        (lambda files: files.update({"config.json": b"{not json"}), ("config.json",)),
        (lambda files: files.pop("config.json"), ("config.json",)),
    ],
    ids=["truncated-header", "oversized-header", "malformed-config", "missing-config"],
)
def test_unusable_files_are_unresolved(hub_repo, damage, words):
    repo = hub_repo(TINY)
    damage(repo.files)
    assert_one_line_error(run(TINY), TINY, *words)
