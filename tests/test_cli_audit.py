"""`hfmem audit` against the fake Hub: the fault matrix in one batch, formats, order, progress and Ctrl-C."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hfmem import audit as audit_module
from hfmem.audit import COLUMNS, AuditRow, RowError
from hfmem.cli import cli
from hfmem.views.text import render_audit_markdown
from tests.fakehub import (
    FIXTURES,
    FakeHub,
    oversized_header,
    repo_from_dataset,
    truncated,
)

TINY = "hfmem-test/tiny-llama"
REMOTE = "hfmem-test/tiny-remote-code"
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["audit", *args], input=input, catch_exceptions=False, env={"COLUMNS": "100"})


def jsonl(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def faults(fake_hub: FakeHub, hub_repo) -> list[tuple[str, str | None]]:
    """(reference, expected error type) for a good repo and every kind of fault repo."""
    hub_repo(TINY)
    cases: dict[str, tuple[str | None, dict]] = {
        "gated/tiny": (None, {"gated": True}),  # public metadata only: a row without totals
        "private/tiny": ("not_found", {"private": True}),
        "limited/tiny": (None, {"fail_first": {429: 2}, "retry_after": 0}),
        "broken/tiny": ("network", {"fail_first": {500: 100}, "retry_after": 0}),
        "pickle/tiny": (None, {}),
        "truncated/tiny": ("bad_header", {}),
        "oversized/tiny": ("bad_header", {}),
        "badconfig/tiny": ("bad_config", {}),
        "noconfig/tiny": ("no_weights", {}),
    }
    for repo_id, (_, fields) in cases.items():
        weights = "bin" if repo_id == "pickle/tiny" else "safetensors"
        base = repo_from_dataset(FIXTURES / "hfmem-test__tiny-llama", weights=weights)
        fake_hub.add_repo(dataclasses.replace(base, repo_id=repo_id, sha="", **fields))
    repos = fake_hub.repos
    repos["truncated/tiny"].files["model.safetensors"] = truncated(repos[TINY].files["model.safetensors"])
    repos["oversized/tiny"].files["model.safetensors"] = oversized_header()
    repos["badconfig/tiny"].files["config.json"] = b"[1, 2"
    del repos["noconfig/tiny"].files["config.json"]
    return [(TINY, None), ("nobody/nothing", "not_found"), ("bad ref!", "bad_reference"),
            *((name, error) for name, (error, _) in cases.items())]


def test_fault_matrix_in_one_batch(faults):
    models = [model for model, _ in faults]
    result = run("-", "--format", "jsonl", "--jobs", "4", input="\n".join(models))
    assert result.exit_code == 1
    rows = jsonl(result)
    assert [row["model"] for row in rows] == models, "input order"
    assert [row["error"]["type"] if row["error"] else None for row in rows] == [error for _, error in faults]
    for row in rows:
        assert (row["params"] is None) == (row["error"] is not None)
    assert result.stderr == "", "no progress or summary when stderr is not a terminal"


def test_all_good_exits_0(hub_repo):
    hub_repo(TINY)
    hub_repo(REMOTE)
    result = run("-", input=f"# two models\n{TINY}\n\n{REMOTE}\n")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "params", "dtype", "weights", "inference", "training", "LoRA"]
    assert lines[2].startswith(TINY) and lines[3].startswith(REMOTE)


def test_csv_from_a_csv_file_to_an_output_file(hub_repo, tmp_path):
    hub_repo(TINY)
    source, target = tmp_path / "models.csv", tmp_path / "out" / "report.csv"
    source.write_text(f"team,model\nnlp,{TINY}\nnlp,nobody/nothing\n")
    target.parent.mkdir()
    result = run(str(source), "--format", "csv", "--output", str(target), "--gpu", "H100")
    assert result.exit_code == 1 and result.stdout == ""
    records = list(csv.DictReader(io.StringIO(target.read_text())))
    assert list(records[0]) == list(COLUMNS)
    assert [r["model"] for r in records] == [TINY, "nobody/nothing"]
    assert records[0]["fits"] == "inference training lora" and records[0]["params"] == "106816"
    assert records[1]["error_type"] == "not_found"


def test_json_array(hub_repo):
    hub_repo(TINY)
    result = run("-", "--format", "json", "--gpu-memory", "0.0001", input=TINY)
    assert result.exit_code == 0
    (row,) = json.loads(result.stdout)
    assert row["fits"] == {"inference": False, "training": False, "lora": False}
    assert row["error"] is None and row["dtype"] == "bfloat16"


def test_markdown_table_to_paste(hub_repo):
    """A GitHub Markdown table with the text table's cells, and the failures with their whole messages below; what a
    remote string holds (emphasis, links, inline HTML, a `|` that would add a column) is escaped."""
    hub_repo(TINY)
    result = run("-", "--format", "markdown", "--gpu", "H100", input=f"{TINY}\nnobody/nothing\n")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == [
        "model", "params", "dtype", "weights", "inference", "training", "LoRA", "fits"]  # fmt: skip
    assert [cell.strip(" -") for cell in lines[1].split("|")[1:-1]] == [":", ":", ":", ":", ":", ":", ":", ":"]
    assert lines[1].startswith("|:--") and lines[1].split("|")[2].endswith("-:"), "text left, numbers right"
    assert lines[2].startswith(f"| {TINY} ") and "| inf train lora |" in lines[2]
    assert lines[3].startswith("| nobody/nothing ") and "| not\\_found " in lines[3]
    assert lines[4:7] == ["", "sizes in GiB; fits: inf, train, lora", ""]
    assert lines[7:9] == ["Errors:", ""] and lines[9].startswith("- nobody/nothing: not\\_found: ")


def test_markdown_cells_escape_what_markdown_would_read(monkeypatch):
    hostile = "x | y [link](https://e.test) <img src=e> **b** `c` ~~s~~ &amp;"
    rows = [AuditRow("org/a_b", error=RowError("bad_config", hostile))]
    text = render_audit_markdown(rows)
    assert "\\| y \\[link\\](https://e.test) \\<img src=e\\> \\*\\*b\\*\\* \\`c\\` \\~\\~s\\~\\~ \\&amp;" in text
    assert "| org/a\\_b |" in text and text.count("\n|") == 2  # the header rule and one row: no column added


def test_memory_options_apply_to_every_row(hub_repo):
    hub_repo(TINY)
    hub_repo(REMOTE)
    models = f"{TINY}\n{REMOTE}\n"
    small = jsonl(run("-", "--format", "jsonl", input=models))
    large = jsonl(run("-", "--format", "jsonl", "-b", "8", "--optimizer", "sgd", input=models))
    for a, b in zip(small, large):
        assert b["inference"] > a["inference"]
        assert b["training"] != a["training"]


def test_revision_applies_to_rows_without_one(hub_repo):
    hub_repo(TINY)
    rows = jsonl(run("-", "--format", "jsonl", "--revision", "nope", input=f"{TINY}\n{TINY}@main\n"))
    assert rows[0]["error"]["type"] == "revision_not_found" and rows[1]["error"] is None


def test_usage_errors():
    assert run("-", input="# nothing\n").exit_code == 2
    result = run("-", input="name,size\norg/a,1\n")
    assert result.exit_code == 2 and "'model' column" in result.stderr
    assert run("-", "--format", "xml", input="org/a").exit_code == 2


def test_ctrl_c_keeps_the_rows_already_done(monkeypatch):
    def interrupted(models, *args, **kwargs) -> Iterator[AuditRow]:
        yield AuditRow(models[0], error=RowError("not_found", "first"))
        yield AuditRow(models[1], error=RowError("not_found", "second"))
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_module, "audit_models", interrupted)
    for fmt in ("jsonl", "json", "csv", "table"):
        result = run("-", "--format", fmt, input="org/a\norg/b\norg/c\n")
        assert result.exit_code == 130
        assert result.stderr == "hfmem: interrupted: 2 of 3 models audited\n"
        assert "org/b" in result.stdout and "org/c" not in result.stdout
    json_result = run("-", "--format", "json", input="org/a\norg/b\norg/c\n")
    assert [row["model"] for row in json.loads(json_result.stdout)] == ["org/a", "org/b"]


def test_progress_bar_on_a_terminal_only(hub_repo, fake_hub, tmp_path):
    """A real process whose stderr is a pseudo-terminal: progress there, clean rows on stdout."""
    hub_repo(TINY)
    primary, secondary = pty.openpty()
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "home"), "COLUMNS": "100"}
    with subprocess.Popen(
        [sys.executable, "-m", "hfmem", "audit", "-", "--format", "jsonl"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=secondary, cwd=ROOT, env=env,
    ) as process:
        os.close(secondary)
        stdout, _ = process.communicate(f"{TINY}\n{TINY}\n".encode(), timeout=60)
    progress = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        progress += chunk
    os.close(primary)
    assert process.returncode == 0
    assert [json.loads(line)["model"] for line in stdout.decode().splitlines()] == [TINY, TINY]
    assert b"auditing" in progress and b"2/2" in progress


def test_no_file_and_a_terminal_on_stdin_is_a_usage_error():
    """`hfmem audit` typed alone would wait for input forever; it says what to give instead."""
    primary, secondary = pty.openpty()
    result = subprocess.run(
        [sys.executable, "-m", "hfmem", "audit"], stdin=secondary, capture_output=True, cwd=ROOT, timeout=60
    )
    os.close(secondary)
    os.close(primary)
    assert result.returncode == 2
    assert b"give a FILE" in result.stderr
