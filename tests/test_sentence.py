"""sentence-transformers repos on the fake Hub and on disk: every module of modules.json counted, Dense layers'
weights included, no weight byte read; inspect (text, --json), check and audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import constants

from hfmem.api import inspect_model
from hfmem.cli import cli
from hfmem.errors import NoUsableFiles
from hfmem.hub import HubOptions
from hfmem.memory import Settings
from tests.dataset import needs_dataset
from tests.fakehub import FakeHub, FakeRepo, LazyFile, sentence_files
from tests.test_hub import assert_headers_only

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PARAMETERS = 22_713_216  # the dataset's ground truth (its checkpoint_elements, all F32)
# A LaBSE-style Dense (models/Dense.py:53: nn.Linear(in, out, bias)) from 384 to 256 features, with bias.
DENSE = 256 * 384 + 256
TINY = "hfmem-test/tiny-llama"


def _hub(fake_hub: FakeHub) -> HubOptions:
    return HubOptions(endpoint=fake_hub.url, token=False)


@pytest.fixture
def minilm(hub_repo, fake_hub: FakeHub):
    def add(dense=((384, 256, True),), pickled: bool = False) -> FakeRepo:
        repo = hub_repo(MINILM)
        repo.files |= sentence_files(dense, pickled=pickled)
        return repo

    return add


@needs_dataset
def test_minilm_modules_counted_exactly(fake_hub: FakeHub, minilm):
    """The real all-MiniLM-L6-v2 checkpoint with a Dense module: the total is the Transformer's plus the Dense
    layer's, each module listed in modules.json's order; Normalize has no folder on the Hub and no weights."""
    repo = minilm()
    report = inspect_model(MINILM, Settings(seq_len=128), hub=_hub(fake_hub))
    spec = report.spec
    assert spec.parameters.total == MINILM_PARAMETERS + DENSE
    assert spec.parameters.by_dtype == {"F32": MINILM_PARAMETERS + DENSE}
    assert spec.files.weights_bytes == 4 * (MINILM_PARAMETERS + DENSE)
    modules = report.to_dict()["sentence_transformers"]["modules"]
    assert [(m["path"], m["type"], m["parameters"], m["weights_file"]) for m in modules] == [
        ("", "Transformer", MINILM_PARAMETERS, None), ("1_Pooling", "Pooling", 0, None),
        ("2_Dense", "Dense", DENSE, "2_Dense/model.safetensors"), ("3_Normalize", "Normalize", 0, None)]  # fmt: skip
    assert report.memory.inference.components["weights"] == spec.files.weights_bytes
    assert_headers_only(fake_hub, repo.repo_id)
    reads = {r.file for r in fake_hub.requests_for(MINILM, "resolve")}
    assert {"modules.json", "2_Dense/model.safetensors"} <= reads and "1_Pooling/config.json" not in reads


@needs_dataset
def test_minilm_as_published(fake_hub: FakeHub, minilm):
    """all-MiniLM-L6-v2's own modules (Transformer, Pooling, Normalize): no module adds a parameter."""
    minilm(dense=())
    report = inspect_model(MINILM, Settings(seq_len=128), hub=_hub(fake_hub))
    assert report.spec.parameters.total == MINILM_PARAMETERS
    assert [m["type"] for m in report.to_dict()["sentence_transformers"]["modules"]] == [
        "Transformer", "Pooling", "Normalize"]  # fmt: skip


def _tiny_sentence(fake_hub: FakeHub, hub_repo, **files) -> FakeRepo:
    """The fixtures' tiny Llama as a sentence-transformers repo (no dataset needed)."""
    repo = hub_repo(TINY)
    repo.files |= sentence_files(**files)
    return repo


def test_pickled_dense_counted_from_its_config(fake_hub: FakeHub, hub_repo):
    """A Dense module saved as pytorch_model.bin is counted from its config.json (nn.Linear's shape, bias false as
    gtr-t5-base's), never read."""
    _tiny_sentence(fake_hub, hub_repo, dense=[(64, 32, False)], pickled=True)
    report = inspect_model(TINY, Settings(seq_len=64), hub=_hub(fake_hub))
    dense = report.to_dict()["sentence_transformers"]["modules"][2]
    assert (dense["type"], dense["parameters"], dense["weights_file"]) == ("Dense", 32 * 64, None)
    assert report.spec.parameters.by_dtype == {"BF16": 106_816, "F32": 32 * 64}
    assert not any(r.file.endswith(".bin") for r in fake_hub.requests_for(TINY, "resolve"))


def test_cli_inspect_check_audit(fake_hub: FakeHub, hub_repo):
    _tiny_sentence(fake_hub, hub_repo, dense=[(64, 16, True)])
    tiny_parameters = 106_816  # the sum over fixtures/hub/hfmem-test__tiny-llama/tensors.json (all BF16)
    runner = CliRunner()
    data = json.loads(runner.invoke(cli, ["inspect", TINY, "--json"], catch_exceptions=False).stdout)
    assert data["parameters"]["total"] == tiny_parameters + 16 * 64 + 16
    assert data["sentence_transformers"]["modules"][2]["parameters"] == 16 * 64 + 16
    human = runner.invoke(cli, ["inspect", TINY], catch_exceptions=False, env={"COLUMNS": "80"}).stdout
    assert f"Modules       . Transformer {tiny_parameters:,} · 1_Pooling Pooling · 2_Dense Dense 1,040" in human
    check = runner.invoke(cli, ["check", TINY, "--json"], catch_exceptions=False)
    assert check.exit_code == 0 and json.loads(check.stdout)["passed"]
    audit = runner.invoke(cli, ["audit", "-", "--format", "jsonl"], input=f"{TINY}\n", catch_exceptions=False)
    row = json.loads(audit.stdout)
    assert audit.exit_code == 0 and row["params"] == tiny_parameters + 16 * 64 + 16


def test_local_directory(tmp_path: Path):
    """A downloaded sentence-transformers folder reads the same modules from disk."""
    from tests.fakehub import repo_from_dataset  # the fixture repo's files, written out

    repo = repo_from_dataset(Path(__file__).parent.parent / "fixtures" / "hub" / "hfmem-test__tiny-llama")
    for name, content in (repo.files | sentence_files([(64, 8, True)])).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.head + bytes(content.size - len(content.head)) if isinstance(content, LazyFile)
                         else content)  # fmt: skip
    report = inspect_model(str(tmp_path), Settings(seq_len=64))
    assert report.to_dict()["sentence_transformers"]["modules"][2]["parameters"] == 8 * 64 + 8


def test_module_path_outside_the_repo_is_refused(fake_hub: FakeHub, hub_repo):
    repo = _tiny_sentence(fake_hub, hub_repo)
    repo.files["modules.json"] = b'[{"idx": 0, "name": "0", "path": "../x", "type": "sentence_transformers.models.Dense"}]'
    with pytest.raises(NoUsableFiles, match="not a folder inside the repo"):
        inspect_model(TINY, hub=_hub(fake_hub))


def test_transformer_in_a_folder_is_named(fake_hub: FakeHub):
    """sentence-transformers before v2 saved the Transformer module in 0_Transformer/: not read, and said so."""
    files = sentence_files()
    files["0_Transformer/config.json"] = b'{"model_type": "bert"}'
    fake_hub.add_repo(FakeRepo("org/old-sbert", files))
    with pytest.raises(NoUsableFiles, match="a sentence-transformers repo whose Transformer module is in a folder"):
        inspect_model("org/old-sbert", hub=_hub(fake_hub))


def test_a_rerun_takes_the_modules_from_the_metadata_cache(fake_hub: FakeHub, hub_repo, monkeypatch):
    """Kept like any checkpoint: a warm rerun is one request on config.json, offline none, with every module."""
    _tiny_sentence(fake_hub, hub_repo, dense=[(64, 16, True)])
    first = inspect_model(TINY, Settings(seq_len=64), hub=_hub(fake_hub)).to_dict()
    fake_hub.reset_log()
    warm = inspect_model(TINY, Settings(seq_len=64), hub=_hub(fake_hub)).to_dict()
    assert [(r.route, r.file) for r in fake_hub.log] == [("resolve", "config.json")]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = inspect_model(TINY, Settings(seq_len=64), hub=_hub(fake_hub)).to_dict()
    assert len(fake_hub.log) == 1
    for report in (warm, offline):
        assert report["sentence_transformers"] == first["sentence_transformers"]
        assert report["parameters"] == first["parameters"] and report["memory"] == first["memory"]
