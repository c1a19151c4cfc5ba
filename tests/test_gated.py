"""A gated repo without access, through every view: what the Hub's public metadata proves (model_info: files with
sizes, the gated flag, its count of the safetensors headers per dtype, config.json's model_type), no memory estimate,
and a warning saying what a token adds. (`check` is in test_cli_check.py, the listing in test_listing.py.)"""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner, Result

from hfmem.api import inspect_model
from hfmem.cli import cli
from hfmem.hub import _public_info
from tests.fakehub import FakeHub, FakeRepo

TINY = "hfmem-test/tiny-llama"
PARAMETERS = 106_816  # hfmem-test/tiny-llama: every tensor BF16 (test_cache.py checks the same total)


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False,
                              env={"COLUMNS": "80", "NO_COLOR": "1"})  # fmt: skip


def download_bytes(repo: FakeRepo) -> int:
    return sum(len(c) if isinstance(c, bytes) else c.size for c in repo.files.values())


def test_inspect_shows_what_the_public_metadata_proves(hub_repo, fake_hub):
    repo = hub_repo(TINY, gated=True)
    assert repo.files["model.safetensors"].parameters == {"BF16": PARAMETERS}  # what model_info says
    result = run("inspect", TINY, "--gpu", "H100")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert lines[1:4] == [
        "Architecture  llama (LlamaForCausalLM)",
        "              the rest is in config.json, which is gated",
        "Parameters    106,816 (106.82K) (the Hub's count of the safetensors headers)",
    ]
    # 106,816 BF16 parameters x 2 bytes = 213,632 bytes = 0.20 MiB
    assert "Files         0.20 MiB of weights" in result.stdout
    memory = " ".join(result.stdout.split("\n\n")[1].split())
    assert memory == ("Memory: not estimated. config.json is gated, so there is no architecture to size the KV cache, "
                      "activations or training from; the weights alone are 0.20 MiB as stored (from the Hub's "
                      "parameter counts).")  # fmt: skip
    assert "GPU" not in result.stdout  # no fit without an estimate
    warning = " ".join(result.stderr.split())
    assert "gated, and no token was given" in warning and f"{fake_hub.url}/{TINY}" in warning
    assert "adds the architecture, exact headers and the memory estimate" in warning


def test_json_has_the_public_facts_and_null_memory(hub_repo):
    repo = hub_repo(TINY, gated=True)
    result = run("inspect", TINY, "--json", "--tables", "--gpu", "H100")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["access"], data["memory"], data["gpu"], data["commit"]) == ("gated", None, None, repo.sha)
    assert data["parameters"] == {"total": PARAMETERS, "by_dtype": {"BF16": PARAMETERS}, "embedding": None,
                                  "active": None, "exact": False, "logical": None, "vision": None}  # fmt: skip
    assert data["files"] == {"weights_bytes": 2 * PARAMETERS, "download_bytes": download_bytes(repo),
                             "formats": ["safetensors"], "count": 2, "vision_bytes": None}  # fmt: skip
    assert (data["dtype"], data["architecture"]["model_type"], data["architecture"]["hidden_size"]) == (
        "bfloat16", "llama", None)  # fmt: skip
    assert "sweep" not in data and "limits" not in data  # no table without an estimate
    hub_repo("hfmem-test/tiny-remote-code")
    assert json.loads(run("inspect", "hfmem-test/tiny-remote-code", "--json").stdout)["access"] == "public"
    granted = json.loads(run("inspect", TINY, "--json", "--token", FakeHub.valid_token).stdout)
    assert (granted["access"], granted["parameters"]["total"], granted["parameters"]["exact"]) == ("granted",
                                                                                                    PARAMETERS, True)


def test_the_library_result_and_its_views(hub_repo, tmp_path):
    hub_repo(TINY, gated=True)
    report = inspect_model(TINY)
    assert (report.memory, report.snapshot.access, report.to_dict()["access"]) == (None, "gated", "gated")
    assert repr(report) == f"<ModelReport {TINY}@{report.spec.commit[:12]}: 106,816 parameters, gated: memory not " \
                           "estimated>"
    assert "Memory: not estimated" in report._repr_html_()
    page = tmp_path / "report.html"
    assert run("inspect", TINY, "--html", str(page)).exit_code == 0
    assert "the weights alone are 0.20 MiB" in page.read_text()


def test_audit_rows_carry_the_public_facts(hub_repo):
    hub_repo(TINY, gated=True)
    table = run("audit", "-", input=f"{TINY}\n")
    assert table.exit_code == 0, table.output
    row = table.stdout.splitlines()[2].split()
    assert row == [TINY, "106.82K", "0.00", "gated", "gated", "gated"]  # dtype dropped to fit 80 columns
    (record,) = csv.DictReader(io.StringIO(run("audit", "-", "--format", "csv", input=f"{TINY}\n").stdout))
    assert (record["access"], record["params"], record["weights"], record["inference"], record["error"]) == (
        "gated", str(PARAMETERS), str(2 * PARAMETERS), "", "")  # fmt: skip


def test_without_public_counts_the_size_is_unknown(hub_repo):
    hub_repo(TINY, gated=True, weights="bin")  # no safetensors: model_info has no per-dtype counts
    data = json.loads(run("inspect", TINY, "--json").stdout)
    assert (data["parameters"]["total"], data["parameters"]["by_dtype"], data["files"]["weights_bytes"]) == (
        None, {}, None)  # fmt: skip
    assert "the Hub's public metadata gives no parameter counts for this repo" in data["warnings"]
    text = run("inspect", TINY).stdout
    assert "Parameters    unknown\nDtype         unknown\n" in text and "the public metadata gives no weight size" in " ".join(text.split())


def test_serve_needs_access(hub_repo):
    hub_repo(TINY, gated=True)
    result = run("serve", TINY, "--gpu", "H100")
    assert result.exit_code == 2 and "gated" in result.stderr and "Traceback" not in result.stderr


def test_only_well_formed_public_metadata_is_kept():
    assert _public_info({"safetensors": {"parameters": {"BF16": 7}}, "config": {"model_type": "llama"}}).parameters \
        == {"BF16": 7}
    for counts in ({"BF16": -1}, {"bf16": 7}, {"BF16": 7.0}, {"BF16": True}, [7], {"X" * 40: 1}):
        assert _public_info({"safetensors": {"parameters": counts}}).parameters == {}
    odd = _public_info({"config": {"model_type": "llama\n" * 20, "architectures": ["Llama", "rm -rf /"]}})
    assert (odd.model_type, odd.architectures) == (None, ())


def test_an_adapter_of_a_gated_base_reports_the_adapter_and_the_bases_public_facts(hub_repo, fake_hub):
    from tests.test_peft import adapter_config, adapter_weights

    hub_repo(TINY, gated=True)
    fake_hub.add_repo(FakeRepo("org/lora", {"adapter_config.json": adapter_config(),
                                            "adapter_model.safetensors": adapter_weights()}))  # fmt: skip
    data = json.loads(run("inspect", "org/lora", "--json").stdout)
    assert (data["model"], data["access"], data["memory"], data["parameters"]["total"]) == ("org/lora", "gated",
                                                                                            None, PARAMETERS)
    assert data["adapter"]["base_model"] == TINY and data["adapter"]["rank"] == 8
    assert f"{fake_hub.url}/{TINY}" in data["warnings"][0]  # the base's terms are the ones to accept
