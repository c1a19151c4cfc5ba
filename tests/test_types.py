"""The library's types hold: mypy finds no error in hfmem/. Its API is typed dataclasses, and a str where a Mode
is expected, or an optional value read as if always set, is a bug waiting for the input that takes that path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error(tmp_path):
    checked = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), "hfmem"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-2000:]
