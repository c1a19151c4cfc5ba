"""One result, many views: JSON holds the tables the text shows, output fits the terminal, colour only where it
belongs, the notebook API, and the library computes while only the views format."""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

import hfmem
from hfmem.cli import cli
from hfmem.views.units import size

ROOT = Path(__file__).resolve().parents[1]
TINY = "hfmem-test/tiny-llama"
ESCAPE = re.compile("\x1b")


def run(*args: str, columns: int = 80, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, env={"COLUMNS": str(columns), "NO_COLOR": "1"})


def widest(text: str) -> int:
    return max(map(len, text.splitlines()))


# --- JSON carries the tables, with the numbers the text shows ---


def test_json_holds_limits_sweep_and_what_if_with_the_numbers_of_the_text(hub_repo):
    hub_repo(TINY)
    data = json.loads(run("inspect", TINY, "--gpu", "H100", "--json").stdout)
    shown = run("inspect", TINY, "--gpu", "H100", "--tables").stdout
    assert set(data["limits"]) == {"inference", "training", "lora"}
    assert data["memory"]["inference"]["settings"]["engine"] == "transformers"  # whose rules the estimate follows
    limit_line = next(line for line in shown.splitlines() if line.startswith("inference") and "none" not in line
                      and len(line.split()) == 3)  # fmt: skip
    assert limit_line.split()[1:] == [str(data["limits"]["inference"]["max_seq_len"]),
                                      str(data["limits"]["inference"]["max_batch_size"])]  # fmt: skip
    for row in data["sweep"]:
        cells = [str(row["seq_len"]), str(row["batch_size"]), *(size(row[m]) for m in ("inference", "training", "lora"))]
        assert " ".join(cells) in re.sub(r" +", " ", shown)
    for row in data["what_if"]:
        assert set(row) == {"mode", "change", "total_bytes", "saves_bytes", "fits", "reason"}
        assert re.search(rf"{row['mode']} +{re.escape(row['change'])} +{re.escape(size(row['total_bytes']))}", shown)
    assert "explain" not in data


def test_explain_rows_in_json(hub_repo):
    hub_repo(TINY)
    data = json.loads(run("inspect", TINY, "--json", "--explain").stdout)
    kv = next(row for row in data["explain"] if row["mode"] == "inference" and row["component"] == "kv_cache")
    assert kv["bytes"] == data["memory"]["inference"]["components"]["kv_cache"]
    assert set(kv) == {"mode", "component", "formula", "inputs", "bytes", "exact"}


# --- output fits a person ---


@pytest.mark.parametrize("args", [
    ["inspect", TINY, "--gpu", "H100", "--tables", "--explain"],
    ["inspect", TINY, "--gpu", "H100", "--tables", "--explain", "--units", "gb"],
    ["check", TINY, "--gpu", "RTX-4090", "--mode", "lora"],
    ["gpus"],
])  # fmt: skip
def test_every_line_fits_80_columns(hub_repo, args):
    hub_repo(TINY)
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert widest(result.stdout) <= 80


def test_an_audit_error_is_its_type_and_a_shortened_message_within_the_width(hub_repo):
    hub_repo(TINY)
    result = run("audit", "-", input=f"{TINY}\nnobody/{'x' * 60}\n")
    assert result.exit_code == 1
    assert widest(result.stdout) <= 80
    last = result.stdout.splitlines()[-1]
    assert last.startswith("  nobody/xxxxxxxxxxxxxxxxxxxxxx…: not_found: nobody/") and last.endswith("…")
    full = run("audit", "-", "--format", "csv", input=f"nobody/{'x' * 60}\n").stdout
    assert "was not found on" in full and "…" not in full  # the whole message in CSV


def test_a_wider_terminal_is_used(hub_repo):
    hub_repo(TINY)
    narrow, wide = (run("inspect", TINY, "--gpu", "H100", columns=c).stdout for c in (80, 200))
    assert widest(narrow) <= 80 < widest(wide)
    assert widest(run("inspect", TINY, columns=20).stdout) <= 80  # never laid out under 80


def test_the_default_report_is_short_and_the_tables_are_one_flag_away(hub_repo):
    hub_repo(TINY)
    short = run("inspect", TINY, "--gpu", "H100").stdout
    assert "Memory (GiB" in short and "GPU H100" in short and "Sweep" not in short and "What if" not in short
    assert len(short.splitlines()) <= 40
    assert "Sweep" in run("inspect", TINY, "--gpu", "H100", "--tables").stdout


def test_warnings_come_first_on_stderr(hub_repo):
    repo = hub_repo(TINY)
    repo.files["config.json"] = json.dumps({**json.loads(repo.files["config.json"]), "model_type": "brand_new"}).encode()
    result = run("inspect", TINY)
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: ") and "brand_new" in result.stderr
    assert "warning" not in result.stdout


def terminal_run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> bytes:
    """Run hfmem with stdout and stderr on an 80-column pseudo-terminal; what the terminal showed."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    environment = {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}, **env}
    with subprocess.Popen([sys.executable, "-m", "hfmem", *args], stdin=subprocess.DEVNULL, stdout=secondary,
                          stderr=secondary, cwd=cwd, env=environment) as process:  # fmt: skip
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    os.close(primary)
    assert process.wait(timeout=60) in (0, 1), shown
    return shown


def test_colour_on_a_terminal_none_under_no_color(hub_repo, fake_hub, tmp_path):
    hub_repo(TINY)
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "home"), "TERM": "xterm"}
    coloured = terminal_run(["check", TINY, "--gpu", "H100"], env).decode()
    assert re.search(r"\x1b\[32m(\x1b\[\d+m)*ok", coloured) and re.search(r"\x1b\[32m(\x1b\[\d+m)*passed", coloured)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    assert max(len(line.rstrip("\r")) for line in plain.splitlines()) <= 80
    assert not ESCAPE.search(terminal_run(["check", TINY, "--gpu", "H100"], {**env, "NO_COLOR": "1"}).decode())
    assert not ESCAPE.search(terminal_run(["check", TINY, "--gpu", "H100"], {**env, "TERM": "dumb"}).decode())
    piped = subprocess.run([sys.executable, "-m", "hfmem", "check", TINY, "--gpu", "H100"], capture_output=True,
                           cwd=ROOT, env={**os.environ, **env}, timeout=60)  # fmt: skip
    assert piped.returncode == 0 and not ESCAPE.search(piped.stdout.decode())


def test_the_progress_bar_honours_hf_hub_disable_progress_bars(hub_repo, fake_hub, tmp_path):
    hub_repo(TINY)
    (tmp_path / "models.txt").write_text(f"{TINY}\n")
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "home"), "TERM": "xterm"}
    args = ["audit", str(tmp_path / "models.txt"), "--format", "jsonl"]
    assert b"auditing" in terminal_run(args, env)
    assert b"auditing" not in terminal_run(args, {**env, "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    assert b"auditing" not in terminal_run(args, {**env, "TERM": "dumb"})


def test_a_console_that_is_not_utf8_gets_question_marks_not_a_crash(hub_repo, fake_hub, tmp_path):
    hub_repo(TINY)
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "home"), "PYTHONIOENCODING": "latin-1"}
    result = subprocess.run([sys.executable, "-m", "hfmem", "inspect", TINY, "--explain", "--tables"],
                            capture_output=True, cwd=ROOT, env=env, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr and b"?" in result.stdout


def test_output_to_a_file_ends_with_a_summary_on_stderr(hub_repo, tmp_path):
    hub_repo(TINY)
    out = tmp_path / "rows.csv"
    result = run("audit", "-", "--format", "csv", "-o", str(out), input=f"{TINY}\nnobody/nothing\n")
    assert result.exit_code == 1
    assert result.stderr == f"hfmem: 2 rows written to {out}, 1 with an error\n"
    assert len(out.read_text().splitlines()) == 3


def test_audit_json_works_as_in_inspect(hub_repo):
    hub_repo(TINY)
    assert json.loads(run("audit", "-", "--json", input=f"{TINY}\n").stdout)[0]["model"] == TINY


def test_gpus_lists_the_catalogue_and_an_ambiguous_name_lists_its_variants():
    listing = run("gpus").stdout
    assert "H100" in listing and "A100-40GB" in listing and "also accepted" in listing
    data = json.loads(run("gpus", "--json").stdout)
    assert {"name": "RTX-4090", "memory_bytes": 24 * 2**30, "aliases": ["4090"]} in data
    result = run("inspect", TINY, "--gpu", "A100")
    assert result.exit_code == 2 and "A100-80GB (80 GiB), A100-40GB (40 GiB)" in result.stderr


@pytest.mark.parametrize("command", ["inspect", "check", "audit", "serve", "gpus"])
def test_every_subcommand_help_has_examples(command):
    help_text = run(command, "--help").stdout
    assert "Examples:" in help_text and widest(help_text) <= 80


# --- the notebook API ---


def test_the_api_as_a_notebook_user_calls_it(hub_repo):
    hub_repo(TINY)
    report = hfmem.inspect(TINY, gpu="H100", tables=True, lora_targets="q_proj,v_proj", seq_len=256)
    assert report.memory.lora.target_modules == ("q_proj", "v_proj") and report.memory.lora.trainable_parameters > 0
    assert report.gpu.gpu.name == "H100" and report.limits is not None and report.sweep
    cli_json = json.loads(run("inspect", TINY, "--gpu", "H100", "--json", "--lora-targets", "q_proj,v_proj",
                              "--seq-len", "256").stdout)  # fmt: skip
    assert {**report.to_dict(), "source": "cache"} == {**cli_json, "source": "cache"}  # the second one is cached
    assert len(repr(report)) < 1000 and TINY in repr(report)
    assert report._repr_html_().startswith('<div class="hfmem">')
    with pytest.raises(hfmem.HfmemError, match="matches several"):
        hfmem.inspect(TINY, gpu="A100")


def test_version_and_light_imports():
    assert hfmem.__version__ == importlib.metadata.version("hfmem")
    code = "import sys, hfmem; print('huggingface_hub' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout == "False\n"
    for flag in ("--help", "--version"):
        code = ("import sys; from hfmem.cli import cli\ntry: cli([%r])\nexcept SystemExit: pass\n"
                "print('huggingface_hub' in sys.modules)") % flag  # fmt: skip
        shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout
        assert shown.splitlines()[-1] == "False", flag


def test_only_the_views_format():
    """No library module outside hfmem/views imports tabulate or the unit formatting (the CLI only calls views)."""
    for path in (ROOT / "hfmem").rglob("*.py"):
        if "views" in path.parts:
            continue
        source = path.read_text()
        assert not re.search(r"^\s*(from tabulate|import tabulate)", source, re.MULTILINE), path
        assert not re.search(r"from \.+views\.units import|format_bytes\(", source), path
