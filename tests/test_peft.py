"""PEFT adapter repos on the fake Hub: the adapter exact from its header, its base resolved on the Hub, the LoRA
estimate at the adapter's r and targets, inference with the adapter merged or kept apart, and hostile configs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hfmem.api import inspect_model
from hfmem.cli import cli
from hfmem.errors import ConfigError, ModelNotFound, NoUsableFiles, UnsupportedModel
from hfmem.header import Tensor
from hfmem.hub import HubOptions
from hfmem.memory import Settings
from tests.fakehub import FakeHub, FakeRepo, LazyFile, safetensors_file

BASE, ADAPTER = "hfmem-test/tiny-llama", "org/tiny-llama-lora"
R = 8
# hfmem-test/tiny-llama: hidden 64, q_proj 64 x 64, v_proj 32 x 64, 2 layers; LoRA A is (r, in), B is (out, r).
ADAPTER_PARAMETERS = 2 * ((R * 64 + 64 * R) + (R * 64 + 32 * R))


def adapter_config(**changes: object) -> bytes:
    """adapter_config.json as PEFT 0.17's LoraConfig.save_pretrained writes it (the keys hfmem reads, and others)."""
    config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": BASE, "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
        "layers_to_transform": None, "lora_alpha": 16, "lora_dropout": 0.05, "modules_to_save": None,
        "peft_type": "LORA", "r": R, "rank_pattern": {}, "revision": None, "target_modules": ["v_proj", "q_proj"],
        "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False,
    } | changes  # fmt: skip
    return json.dumps(config, indent=2).encode()


def adapter_weights() -> LazyFile:
    """PEFT's saved names (get_peft_model_state_dict drops the adapter name): fp32 lora_A / lora_B per module."""
    tensors = []
    for layer in range(2):
        for module, out in (("q_proj", 64), ("v_proj", 32)):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors += [Tensor(f"{prefix}.lora_A.weight", "F32", (R, 64)), Tensor(f"{prefix}.lora_B.weight", "F32", (out, R))]
    return safetensors_file(tensors)


@pytest.fixture
def adapter_repo(fake_hub: FakeHub, hub_repo):
    hub_repo(BASE)

    def add(config: bytes | None = None, repo_id: str = ADAPTER, weights: bool = True) -> FakeRepo:
        files = {"adapter_config.json": config or adapter_config(), "README.md": b"# LoRA\n"}
        if weights:
            files["adapter_model.safetensors"] = adapter_weights()
        return fake_hub.add_repo(FakeRepo(repo_id, files))

    return add


def _inspect(fake_hub: FakeHub, settings: Settings | None = None, model: str = ADAPTER):
    return inspect_model(model, settings or Settings(), hub=HubOptions(endpoint=fake_hub.url, token=False))


def test_adapter_and_base(fake_hub: FakeHub, adapter_repo):
    adapter_repo()
    report = _inspect(fake_hub)
    base = _inspect(fake_hub, model=BASE)
    a = report.spec.adapter
    assert a is not None
    assert (a.base_model, a.rank, a.alpha, a.target_modules, a.modules_to_save) == (BASE, R, 16, ("v_proj", "q_proj"), ())
    assert (a.parameters, a.weights_bytes) == (ADAPTER_PARAMETERS, 4 * ADAPTER_PARAMETERS)
    assert report.spec.parameters == base.spec.parameters  # the base model's
    assert (report.spec.model, report.spec.commit) == (ADAPTER, fake_hub.repos[ADAPTER].sha)
    # LoRA at the adapter's r and targets trains exactly the adapter's parameters.
    lora = report.memory.lora
    assert (lora.settings["rank"], set(lora.target_modules)) == (R, {"q_proj", "v_proj"})
    assert lora.trainable_parameters == ADAPTER_PARAMETERS
    # Inference keeps the adapter apart (in fp32, as PEFT loads it) unless merged.
    inference = report.memory.inference
    assert inference.components["adapters"] == 4 * ADAPTER_PARAMETERS
    assert inference.total_bytes == base.memory.inference.total_bytes + 4 * ADAPTER_PARAMETERS
    merged = _inspect(fake_hub, Settings(adapter_merged=True)).memory.inference
    assert (merged.components["adapters"], merged.total_bytes) == (0, base.memory.inference.total_bytes)


def test_flags_override_the_adapter(fake_hub: FakeHub, adapter_repo):
    adapter_repo()
    lora = _inspect(fake_hub, Settings(lora_rank=4, lora_targets="o_proj")).memory.lora
    assert (lora.settings["rank"], lora.target_modules) == (4, ("o_proj",))
    assert _inspect(fake_hub, Settings(lora_rank=4)).memory.lora.target_modules == ("v_proj", "q_proj")


def test_regex_targets_fall_back_with_a_warning(fake_hub: FakeHub, adapter_repo):
    adapter_repo(adapter_config(target_modules=r".*\.(q|v)_proj"))
    report = _inspect(fake_hub)
    assert report.spec.adapter is not None and report.spec.adapter.target_modules == r".*\.(q|v)_proj"
    assert report.memory.lora.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert any("target_modules is a regex" in w for w in report.warnings)


def test_a_full_checkpoint_with_adapter_files_is_the_checkpoint(fake_hub: FakeHub, hub_repo):
    repo = hub_repo(BASE)
    repo.files |= {"adapter_config.json": adapter_config(), "adapter_model.safetensors": adapter_weights()}
    assert _inspect(fake_hub, model=BASE).spec.adapter is None


def test_json(fake_hub: FakeHub, adapter_repo):
    adapter_repo(adapter_config(modules_to_save=["lm_head"], target_modules="all-linear"))
    result = CliRunner().invoke(cli, ["inspect", ADAPTER, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["adapter"] == {"base_model": BASE, "rank": R, "alpha": 16, "target_modules": ["all-linear"],
                               "parameters": ADAPTER_PARAMETERS, "modules_to_save": ["lm_head"],
                               "weights_bytes": 4 * ADAPTER_PARAMETERS}  # fmt: skip
    assert data["memory"]["lora"]["settings"]["target_modules"] == ["all-linear"]
    assert data["memory"]["inference"]["settings"]["adapter"] == "separate"


@pytest.mark.parametrize("config, error, message", [
    (adapter_config(base_model_name_or_path="/srv/me/llama-base"), ConfigError, "'/srv/me/llama-base' is not a Hub repo id"),
    (adapter_config(base_model_name_or_path="./llama-base"), ConfigError, "is not a Hub repo id"),
    (adapter_config(base_model_name_or_path=ADAPTER), ConfigError, "names itself as its base model"),
    (adapter_config(base_model_name_or_path=None), ConfigError, "names no base_model_name_or_path"),
    (adapter_config(r="8"), ConfigError, "no valid r and lora_alpha"),
    (adapter_config(target_modules=[1, 2]), ConfigError, "not module names"),
    (adapter_config(peft_type="PREFIX_TUNING"), UnsupportedModel, "hfmem sizes LoRA adapters only"),
    (b"[1, 2]", ConfigError, "is not a JSON object"),
])  # fmt: skip
def test_hostile_adapter_configs(fake_hub: FakeHub, adapter_repo, config, error, message):
    adapter_repo(config)
    with pytest.raises(error, match=message):
        _inspect(fake_hub)
    assert not fake_hub.requests_for(BASE) or "itself" in message  # a bad config never reaches a base


def test_a_base_that_is_not_on_the_hub(fake_hub: FakeHub, adapter_repo):
    adapter_repo(adapter_config(base_model_name_or_path="llama-base"))  # a bare name: a repo id, or a folder
    with pytest.raises(ModelNotFound, match="org/tiny-llama-lora: the adapter's base model: llama-base was not found"):
        _inspect(fake_hub)


def test_an_adapter_of_an_adapter_is_refused(fake_hub: FakeHub, adapter_repo):
    adapter_repo()
    adapter_repo(adapter_config(base_model_name_or_path=ADAPTER), repo_id="org/second-lora")
    with pytest.raises(UnsupportedModel, match="the base model is itself an adapter"):
        _inspect(fake_hub, model="org/second-lora")


def test_adapter_without_weights(fake_hub: FakeHub, adapter_repo):
    adapter_repo(weights=False)
    with pytest.raises(NoUsableFiles, match="without adapter_model.safetensors"):
        _inspect(fake_hub)


def test_a_local_adapter_directory_resolves_its_base_on_the_hub(fake_hub: FakeHub, hub_repo, tmp_path):
    """A training run's output directory: adapter_config.json and the adapter's weights, its base on the Hub."""
    hub_repo(BASE)
    weights, run = adapter_weights(), tmp_path / "run"
    run.mkdir()
    (run / "adapter_config.json").write_bytes(adapter_config())
    (run / "adapter_model.safetensors").write_bytes(weights.head + bytes(weights.size - len(weights.head)))
    report = _inspect(fake_hub, model=str(run))
    assert report.spec.source == "local" and report.spec.commit is None
    assert report.spec.adapter is not None and report.spec.adapter.parameters == ADAPTER_PARAMETERS
    assert report.spec.parameters == _inspect(fake_hub, model=BASE).spec.parameters
    (run / "adapter_config.json").write_bytes(adapter_config(base_model_name_or_path="/srv/me/llama-base"))
    with pytest.raises(ConfigError, match="is not a Hub repo id"):
        _inspect(fake_hub, model=str(run))


def test_a_warm_run_reads_no_header_of_the_adapter_or_its_base(fake_hub: FakeHub, adapter_repo):
    repo = adapter_repo()
    cold = _inspect(fake_hub)
    assert cold.snapshot.source == "hub"
    fake_hub.reset_log()
    warm = _inspect(fake_hub)
    # the adapter's entry in hfmem's cache (its config and header, checked again by peft.read_adapter), then the base's
    assert (warm.snapshot.source, warm.snapshot.commit) == ("cache", repo.sha)
    assert (warm.spec.adapter, warm.spec.parameters, warm.memory) == (cold.spec.adapter, cold.spec.parameters,
                                                                    cold.memory)  # fmt: skip
    # one request each, on config.json: the adapter repo's 404 and the base's answer name the commits cached
    assert sorted((r.repo_id, r.file, r.status) for r in fake_hub.log) == [(BASE, "config.json", 200),
                                                                           (ADAPTER, "config.json", 404)]
    fake_hub.reset_log()
    pinned = inspect_model(f"{ADAPTER}@{repo.sha}", hub=HubOptions(endpoint=fake_hub.url, token=False))
    assert pinned.spec.adapter == cold.spec.adapter
    assert [r.repo_id for r in fake_hub.log] == [BASE], "the pinned adapter costs no request; its base one"


def test_a_cached_adapter_is_checked_as_a_fresh_one(fake_hub: FakeHub, adapter_repo):
    from hfmem.cache import MetadataCache

    repo = adapter_repo()
    _inspect(fake_hub)
    entry = MetadataCache.default().root / f"models--{ADAPTER.replace('/', '--')}" / "snapshots" / f"{repo.sha}.json"
    data = json.loads(entry.read_text())
    assert (data["adapter"], data["checkpoint"], list(data["headers"])) == (True, True, ["adapter_model.safetensors"])
    data["config"]["r"] = 0  # what read_adapter refuses from the Hub, it refuses from the cache
    entry.write_text(json.dumps(data))
    fake_hub.reset_log()
    assert _inspect(fake_hub).spec.adapter.rank == R
    assert "adapter_model.safetensors" in {r.file for r in fake_hub.log}, "the entry was refused and read again"
