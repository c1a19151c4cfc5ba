"""`hfmem audit --resume FILE`: an audit killed mid-run continues where it stopped, each model audited once."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from hfmem.cli import cli
from tests.fakehub import FIXTURES, FakeHub, repo_from_dataset

ROOT = Path(__file__).resolve().parents[1]


def serve(fake_hub: FakeHub, size: int) -> list[str]:
    repo = repo_from_dataset(FIXTURES / "hfmem-test__tiny-llama")
    names = [f"acme/tiny-{i:02d}" for i in range(size)]
    for name in names:
        fake_hub.add_repo(dataclasses.replace(repo, repo_id=name, sha=""))
    return names


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_killed_audit_resumes_without_redoing_its_rows(fake_hub, tmp_path):
    names = serve(fake_hub, 12)
    fake_hub.latency = 0.05  # some 0.2 s a model, one at a time: the kill lands mid-run
    models, out = tmp_path / "models.txt", tmp_path / "audit.jsonl"
    models.write_text("\n".join(names) + "\n")
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "hfmem", "audit", str(models), "--resume", str(out), "--jobs", "1"]
    with subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL) as process:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text().count("\n") >= 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    with out.open("a") as f:
        f.write('{"model": "acme/tiny-1')  # what a kill in the middle of a write leaves
    whole = [json.loads(line)["model"] for line in out.read_text().splitlines()[:-1]]
    assert 3 <= len(whole) < len(names)

    fake_hub.reset_log()
    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    done = rows(out)
    assert Counter(row["model"] for row in done) == Counter(names)  # each model once, the cut row gone
    assert [row["model"] for row in done[: len(whole)]] == whole  # the rows written before the kill, untouched
    assert all(row["error"] is None for row in done)
    assert not [r for r in fake_hub.log if r.repo_id in whole]  # and not audited again
    assert f"{len(names) - len(whole)} rows written" in resumed.stderr


def test_resume_starts_a_missing_file_and_refuses_one_that_is_not_an_audit(fake_hub, tmp_path):
    serve(fake_hub, 2)
    out = tmp_path / "audit.jsonl"
    run = lambda *args: CliRunner().invoke(cli, ["audit", "-", "--resume", str(out), *args],  # noqa: E731
                                           input="acme/tiny-00\nacme/tiny-01\n")  # fmt: skip
    assert run().exit_code == 0 and len(rows(out)) == 2
    assert run().exit_code == 0 and len(rows(out)) == 2  # nothing left to do
    assert run("--format", "csv").exit_code == 2
    out.write_text("model,params\n")
    result = run()
    assert result.exit_code == 2 and "not a row" in result.stderr
