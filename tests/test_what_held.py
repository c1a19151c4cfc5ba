"""What held against the attack on hfmem, kept so: a reader that goes away, audits sharing one cache, a cache that
cannot be written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from hfmem.cli import cli

ROOT = Path(__file__).resolve().parents[1]
TINY = "hfmem-test/tiny-llama"


def hfmem(fake_hub, home: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}
    return subprocess.Popen([sys.executable, "-m", "hfmem", *args], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # fmt: skip


def test_a_reader_that_goes_away_gets_no_traceback(hub_repo, fake_hub, tmp_path):
    hub_repo(TINY)
    process = hfmem(fake_hub, tmp_path / "home", "audit", "-", "--format", "jsonl")
    process.stdin.write(f"{TINY}\n".encode() * 200)
    process.stdin.close()
    assert json.loads(process.stdout.readline())["model"] == TINY
    process.stdout.close()  # like `| head -1`
    assert process.wait(timeout=60) in (0, 1)
    assert b"Traceback" not in process.stderr.read()


def test_audits_sharing_one_cache(hub_repo, fake_hub, tmp_path):
    hub_repo(TINY)
    home = tmp_path / "home"
    processes = [hfmem(fake_hub, home, "audit", "-", "--format", "jsonl") for _ in range(3)]
    for process in processes:
        process.stdin.write(f"{TINY}\n".encode() * 5)
        process.stdin.close()
    for process in processes:
        assert process.wait(timeout=60) == 0, process.stderr.read()
        rows = [json.loads(line) for line in process.stdout.read().splitlines()]
        assert len(rows) == 5 and all(row["error"] is None and row["params"] == 106_816 for row in rows)
    assert not list((home / "hfmem").rglob("*.tmp"))


def test_a_cache_that_cannot_be_written_costs_only_speed(hub_repo, monkeypatch, tmp_path):
    """HF_HOME under a file: no folder can be made there (what a read-only home gives a user who is not root)."""
    hub_repo(TINY)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(blocker / "home"))
    for _ in range(2):
        result = CliRunner().invoke(cli, ["inspect", TINY, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["source"] == "hub"
