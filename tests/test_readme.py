"""The README tells the truth: its commands exist, its test command is what CI runs, its JSON keys are real."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfmem.api import inspect_model
from hfmem.cli import cli
from hfmem.views.json import to_dict
from tests.dataset import needs_dataset

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


def console_blocks() -> dict[str, str]:
    """README's console examples: the command after `$ ` -> the output shown below it (up to the next `$`)."""
    blocks = {}
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        for part in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = part.partition("\n")
            blocks[command] = output.rstrip("\n")
    return blocks


def test_examples_fit_100_columns():
    assert all(len(line) <= 100 for output in console_blocks().values() for line in output.splitlines())


@needs_dataset
@pytest.mark.parametrize("command", [
    "hfmem inspect Qwen/Qwen2.5-7B --gpu H100",
    "hfmem check Qwen/Qwen2.5-7B --gpu RTX-4090 --mode lora",
    "hfmem serve meta-llama/Llama-3.1-8B --gpu RTX-3090 --max-model-len 20000",
])  # fmt: skip
def test_examples_are_real(hub_repo, command):
    """The fake Hub serves the dataset models with the commits the README shows: the same command prints the same."""
    args = command.split()[1:]
    hub_repo(args[1])
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.stdout.rstrip("\n") == console_blocks()[command]
