"""The README tells the truth: its commands exist, its test command is what CI runs, its JSON keys are real."""

import re
from pathlib import Path

from hfmem.api import inspect_model
from hfmem.cli import cli
from hfmem.views.json import to_dict

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_command_is_documented():
    for name in cli.commands:
        assert f"hfmem {name}" in README, name


def test_the_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^(python -m pytest.*?)\s+# the tests$", README, re.MULTILINE).group(1)
    assert command in ci.splitlines()


def test_every_json_key_is_documented(hub_repo):
    hub_repo("hfmem-test/tiny-llama")
    data = to_dict(inspect_model("hfmem-test/tiny-llama"))
    for key in data:
        assert f"`{key}`" in README, key


def test_every_memory_option_is_documented():
    options = {o for p in cli.commands["inspect"].params for o in p.opts if o.startswith("--")}
    for option in options - {"--help"}:
        assert option in README, option
