"""The resolver end to end: the real huggingface_hub client against the loopback fake Hub."""

from __future__ import annotations

import json
import struct

import pytest

from hfmem import errors
from hfmem.api import open_snapshot
from hfmem.header import Tensor
from hfmem.hub import HubOptions
from hfmem.spec import build_spec
from tests import dataset
from tests.dataset import needs_dataset
from tests.fakehub import FakeHub, LazyFile, build_repo, oversized_header, safetensors_file, truncated

GROUND_TRUTH = dataset.model_dirs(with_ground_truth=True)
DIMS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
        "intermediate_size", "vocab_size", "max_position_embeddings")  # fmt: skip
TINY = "hfmem-test/tiny-llama"
FIRST_READ = 100_001  # huggingface_hub's speculative first ranged read


def round_trips(hub: FakeHub) -> int:
    """Sequential round trips: a request's depth is 1 + the deepest request answered before it arrived."""
    depth: list[int] = []
    requests = sorted(hub.log, key=lambda r: r.received)
    for i, request in enumerate(requests):
        before = [depth[j] for j in range(i) if requests[j].answered <= request.received]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


def assert_headers_only(hub: FakeHub, repo_id: str) -> None:
    """No tensor data: each response on a weights file is at most the first read or the header itself."""
    for request in hub.requests_for(repo_id, "resolve"):
        assert not request.file.endswith((".bin", ".pt")), "pickle files are never read"
        if request.file.endswith(".safetensors") and request.method == "GET":
            header_end = 8 + int.from_bytes(hub.repos[repo_id].files[request.file].head[:8], "little")
            assert request.bytes_sent <= max(FIRST_READ, header_end)


@needs_dataset
@pytest.mark.parametrize("model_dir", GROUND_TRUTH, ids=[dataset.repo_id(d) for d in GROUND_TRUTH])
def test_exact_counts_and_dims_over_http(model_dir, hub_repo, fake_hub):
    repo = hub_repo(dataset.repo_id(model_dir))
    spec = build_spec(open_snapshot(repo.repo_id))
    expected = dataset.expected(model_dir)
    assert spec.parameters.total == expected["params"]["checkpoint_elements"]
    assert spec.parameters.by_dtype == expected["params"]["checkpoint_elements_by_dtype"]
    assert spec.files.weights_bytes == expected["params"]["checkpoint_bytes_at_listed_dtypes"]
    assert spec.commit == repo.sha
    for key in DIMS:
        assert getattr(spec.architecture, key) == expected["dims"][key], key
    assert_headers_only(fake_hub, repo.repo_id)
    assert fake_hub.unhandled == []


@needs_dataset
@pytest.mark.parametrize("repo_id", ["openai-community/gpt2", "meta-llama/Llama-3.1-8B", "deepseek-ai/DeepSeek-V3"])
def test_two_sequential_round_trips_whatever_the_shard_count(repo_id, hub_repo, fake_hub):
    hub_repo(repo_id)
    fake_hub.latency = 0.2  # long enough that concurrent requests overlap even on a busy machine
    open_snapshot(repo_id)
    assert round_trips(fake_hub) <= 2


@needs_dataset
def test_pinned_revision_of_a_sharded_repo_reads_shards_concurrently(hub_repo, fake_hub):
    repo = hub_repo("meta-llama/Llama-3.1-8B")
    commit = repo.add_revision("v1")
    fake_hub.latency = 0.2
    snapshot = open_snapshot("meta-llama/Llama-3.1-8B@v1")
    assert snapshot.commit == commit.sha
    assert len(snapshot.headers) == 4
    assert round_trips(fake_hub) <= 2
    assert_headers_only(fake_hub, repo.repo_id)


def test_tiny_fixture_repo(hub_repo, fake_hub):
    hub_repo(TINY)
    snapshot = open_snapshot(TINY)
    spec = build_spec(snapshot)
    assert spec.parameters.total == 106_816
    assert snapshot.source == "hub"
    assert snapshot.formats == ("safetensors",)
    assert all(f.size is not None for f in snapshot.files)
    assert not snapshot.custom_code
    assert_headers_only(fake_hub, TINY)


def test_long_header_gets_a_second_ranged_read(fake_hub):
    tensors = [Tensor(f"model.layers.{i}.mlp.w{j}.weight", "BF16", (8, 8)) for i in range(800) for j in range(3)]
    repo = fake_hub.add_repo(build_repo("org/long-header", tensors, {"model_type": "llama"}))
    assert len(repo.files["model.safetensors"].head) > FIRST_READ
    spec = build_spec(open_snapshot("org/long-header"))
    assert spec.parameters.total == 2400 * 64
    assert_headers_only(fake_hub, "org/long-header")


def test_a_gated_repo_without_a_token_gives_its_public_metadata_only(hub_repo, fake_hub):
    repo = hub_repo(TINY, gated=True)
    snapshot = open_snapshot(TINY)
    # model_info is public: files with sizes, the gated flag, the Hub's own counts per dtype and config summary
    assert (snapshot.access, snapshot.gated, snapshot.commit) == ("gated", "manual", repo.sha)
    assert snapshot.config == {} and snapshot.headers == {}
    assert snapshot.public.parameters == repo.files["model.safetensors"].parameters
    assert snapshot.public.model_type == "llama" and snapshot.public.architectures == ("LlamaForCausalLM",)
    assert snapshot.download_bytes == sum(len(c) if isinstance(c, bytes) else c.size for c in repo.files.values())
    assert "gated, and no token was given" in snapshot.warnings[0]
    assert f"{fake_hub.url}/{TINY}" in snapshot.warnings[0]
    # config.json was refused (401) and no header was asked for
    refused = fake_hub.requests_for(TINY, "resolve")
    assert [(r.file, r.status) for r in refused] == [("config.json", 401)]
    snapshot = open_snapshot(TINY, hub=HubOptions(token=FakeHub.valid_token))
    assert (snapshot.access, snapshot.public) == ("granted", None) and snapshot.headers


def test_a_token_without_access_gets_the_public_metadata_too(hub_repo, fake_hub):
    hub_repo(TINY, gated="auto")
    snapshot = open_snapshot(TINY, hub=HubOptions(token="hf_no_access"))
    assert snapshot.access == "gated" and "this token has no access" in snapshot.warnings[0]
    assert [r.status for r in fake_hub.requests_for(TINY, "resolve")] == [403]


def test_private_and_missing_repos_are_not_found(hub_repo):
    hub_repo(TINY, private=True)
    for name in (TINY, "nobody/nothing"):
        with pytest.raises(errors.ModelNotFound, match="not found"):
            open_snapshot(name)


def test_unknown_revision(hub_repo):
    hub_repo(TINY)
    with pytest.raises(errors.RevisionNotFound, match="no revision 'nope'"):
        open_snapshot(TINY, revision="nope")


def test_rate_limits_are_retried_honouring_retry_after(hub_repo, fake_hub):
    hub_repo(TINY, fail_first={429: 2}, fail_path="/api/models/", retry_after=0)
    assert build_spec(open_snapshot(TINY)).parameters.total == 106_816
    assert [r.status for r in fake_hub.requests_for(TINY, "info")] == [429, 429, 200]


def test_config_fetched_beside_model_info_is_refetched_when_a_push_lands_in_between(hub_repo, fake_hub):
    # model_info's first answer is a 503, so config.json (sent beside it) is answered first; then main moves.
    files = hub_repo(TINY).files
    pushed = {**files, "config.json": json.dumps({**json.loads(files["config.json"]), "pushed": True}).encode()}
    repo = hub_repo(TINY, fail_first={503: 1}, fail_path="/api/models/", retry_after=1, push=pushed,
                    push_after="config.json")  # fmt: skip
    old_sha = repo.sha
    snapshot = open_snapshot(TINY)
    assert snapshot.commit == repo.sha != old_sha and snapshot.config["pushed"] is True
    configs = [r.path for r in fake_hub.requests_for(TINY, "resolve") if r.file == "config.json"]
    assert configs == [f"/{TINY}/resolve/main/config.json", f"/{TINY}/resolve/{repo.sha}/config.json"]


def test_transient_server_errors_are_retried(hub_repo, fake_hub):
    hub_repo(TINY, fail_first={503: 1, 502: 1}, fail_path="model.safetensors")
    assert build_spec(open_snapshot(TINY, hub=HubOptions(backoff=0))).parameters.total == 106_816


def test_persistent_server_errors_become_a_network_error(hub_repo, fake_hub):
    hub_repo(TINY, fail_first={500: 100})
    with pytest.raises(errors.HubUnavailable, match="answered 500"):
        open_snapshot(TINY, hub=HubOptions(backoff=0, attempts=3))
    assert len(fake_hub.requests_for(TINY, "info")) == 3


def test_unreachable_endpoint():
    with pytest.raises(errors.HubUnavailable, match="cannot reach"):
        open_snapshot(TINY, hub=HubOptions(endpoint="http://127.0.0.1:9", attempts=1))


@pytest.mark.parametrize("make_file", [truncated, lambda f: oversized_header()])
def test_bad_headers(make_file, hub_repo):
    repo = hub_repo(TINY)
    repo.files["model.safetensors"] = make_file(repo.files["model.safetensors"])
    with pytest.raises(errors.HeaderError):
        open_snapshot(TINY)


def test_a_bad_shard_header_in_the_bulk_metadata_is_a_header_error(fake_hub):
    tensors = [Tensor(f"model.layers.{i}.mlp.weight", "F32", (64, 64)) for i in range(4)]
    repo = fake_hub.add_repo(build_repo("org/sharded", tensors, {"model_type": "llama"}, shard_bytes=20_000))
    shard = sorted(n for n in repo.files if n.endswith(".safetensors"))[1]
    # A size that the offsets contradict changes a count: refused even in the Hub's own parse of the headers.
    bad = json.dumps({"model.layers.1.mlp.weight": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, 100]}})
    repo.files[shard] = LazyFile(struct.pack("<Q", len(bad)) + bad.encode(), 8 + len(bad) + 100)
    with pytest.raises(errors.HeaderError, match=f"{shard}: tensor 'model.layers.1.mlp.weight' has data_offsets that"):
        open_snapshot("org/sharded")
    assert [r.route for r in fake_hub.requests_for("org/sharded") if r.route != "resolve"] == [
        "info", "safetensors-metadata"
    ]  # read in the one bulk request, not shard by shard


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"dtype": "F32", "shape": [64, -64], "data_offsets": [0, 16384]}, "invalid shape"),
        ({"dtype": ["F32"], "shape": [64, 64], "data_offsets": [0, 16384]}, "lacks dtype"),
        ({"dtype": "F32", "shape": [64, 64]}, "lacks dtype, shape or data_offsets"),
    ],
)
def test_the_bulk_metadata_keeps_the_checks_that_change_a_count(fake_hub, entry, message):
    tensors = [Tensor(f"model.layers.{i}.mlp.weight", "F32", (64, 64)) for i in range(4)]
    repo = fake_hub.add_repo(build_repo("org/sharded", tensors, {"model_type": "llama"}, shard_bytes=20_000))
    shard = sorted(n for n in repo.files if n.endswith(".safetensors"))[1]
    bad = json.dumps({"model.layers.1.mlp.weight": entry})
    repo.files[shard] = LazyFile(struct.pack("<Q", len(bad)) + bad.encode(), 8 + len(bad) + 16384)
    with pytest.raises(errors.HeaderError, match=f"{shard}: tensor 'model.layers.1.mlp.weight' .*{message}"):
        open_snapshot("org/sharded")


def test_the_bulk_metadata_is_held_to_the_tensor_cap(fake_hub, monkeypatch):
    monkeypatch.setattr("hfmem.hub.MAX_TENSORS", 3)
    tensors = [Tensor(f"model.layers.{i}.mlp.weight", "F32", (64, 64)) for i in range(4)]
    fake_hub.add_repo(build_repo("org/sharded", tensors, {"model_type": "llama"}, shard_bytes=20_000))
    with pytest.raises(errors.HeaderError, match="org/sharded: the checkpoint declares 4 tensors \\(limit 3\\)"):
        open_snapshot("org/sharded")
    assert [r.route for r in fake_hub.requests_for("org/sharded") if r.route != "resolve"] == [
        "info", "safetensors-metadata"
    ]


def test_byte_identical_headers_of_two_repos_are_parsed_once(fake_hub):
    """Sibling repos (DeepSeek-R1 and DeepSeek-V3, a base model and its instruct tune) often hold the same headers:
    the second repo takes the first one's parse, the very same objects, from a bulk answer and from ranged reads."""
    tensors = [Tensor(f"model.layers.{i}.mlp.weight", "F32", (64, 64)) for i in range(4)]
    for repo_id in ("org/base-sharded", "org/tune-sharded"):
        fake_hub.add_repo(build_repo(repo_id, tensors, {"model_type": "llama"}, shard_bytes=20_000))
    for repo_id in ("org/base", "org/tune"):
        fake_hub.add_repo(build_repo(repo_id, tensors, {"model_type": "llama"}))
    for base, tune in (("org/base-sharded", "org/tune-sharded"), ("org/base", "org/tune")):
        first, second = open_snapshot(base), open_snapshot(tune)
        assert second.headers.keys() == first.headers.keys() and len(first.headers) in (1, 4)
        assert all(second.headers[name] is first.headers[name] for name in first.headers)
        assert second.commit != first.commit
    assert [r.route for r in fake_hub.requests_for("org/tune-sharded") if r.route != "resolve"] == [
        "info", "safetensors-metadata"
    ]  # the answer is read all the same: only its parse is spared


def test_malformed_and_missing_config(hub_repo):
    repo = hub_repo(TINY)
    repo.files["config.json"] = b'{"model_type": "llama",'
    with pytest.raises(errors.ConfigError, match="not valid JSON"):
        open_snapshot(TINY)
    del repo.files["config.json"]
    with pytest.raises(errors.NoUsableFiles, match="no config.json"):
        open_snapshot(TINY)


def test_pickle_only_repo_is_never_downloaded(hub_repo, fake_hub):
    hub_repo(TINY, weights="bin")
    snapshot = open_snapshot(TINY)
    spec = build_spec(snapshot)
    assert snapshot.headers == {}
    assert snapshot.formats == ("pytorch",)
    assert not spec.parameters.exact
    assert abs(spec.parameters.total - 106_816) / 106_816 < 0.005
    assert_headers_only(fake_hub, TINY)


def test_remote_code_repo(hub_repo):
    hub_repo("hfmem-test/tiny-remote-code")
    assert open_snapshot("hfmem-test/tiny-remote-code").custom_code


def test_local_directory_single_and_sharded(tmp_path):
    tensors = [Tensor("model.embed_tokens.weight", "F16", (32, 8)), Tensor("lm_head.weight", "F16", (32, 8))]
    config = {"model_type": "llama", "hidden_size": 8, "vocab_size": 32, "num_hidden_layers": 0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    for i, tensor in enumerate(tensors):
        file = safetensors_file([tensor])
        (tmp_path / f"model-0000{i + 1}-of-00002.safetensors").write_bytes(file.head + bytes(file.size - len(file.head)))
    weight_map = {t.name: f"model-0000{i + 1}-of-00002.safetensors" for i, t in enumerate(tensors)}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    snapshot = open_snapshot(str(tmp_path))
    spec = build_spec(snapshot)
    assert snapshot.source == "local"
    assert spec.parameters.total == 512
    assert spec.parameters.embedding == 512
    assert spec.files.count == 4


def test_local_directory_without_config(tmp_path):
    with pytest.raises(errors.NoUsableFiles):
        open_snapshot(str(tmp_path))
