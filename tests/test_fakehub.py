"""The fake Hub itself, checked with the real huggingface_hub client: hfmem's tests can trust what it serves."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import pytest
from huggingface_hub import HfApi, RepoFile, RepoFolder, constants, get_token
from huggingface_hub.errors import (
    BadRequestError,
    GatedRepoError,
    HfHubHTTPError,
    NotASafetensorsRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    SafetensorsParsingError,
)
from huggingface_hub.utils import get_session

from hfmem.header import Tensor

from .dataset import DATASET, expected, needs_dataset, tensors
from .fakehub import (
    FIXTURES,
    SAFETENSORS_INDEX,
    FakeHub,
    FakeRepo,
    LazyFile,
    build_repo,
    load_tensors,
    oversized_header,
    repo_from_dataset,
    truncated,
)

TINY = "hfmem-test/tiny-llama"
TINY_TENSORS = load_tensors(FIXTURES / "hfmem-test__tiny-llama" / "tensors.json")
HubRepo = Callable[..., FakeRepo]


@pytest.fixture
def api(fake_hub: FakeHub) -> HfApi:
    return HfApi(endpoint=fake_hub.url, token=False)


def as_triples(file_metadata) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(name, t.dtype, tuple(t.shape)) for name, t in file_metadata.tensors.items()]


def triples(tensor_list: list[Tensor]) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(t.name, t.dtype, t.shape) for t in tensor_list]


def lazy(repo: FakeRepo, path: str) -> LazyFile:
    content = repo.files[path]
    assert isinstance(content, LazyFile)
    return content


def small(repo: FakeRepo, path: str) -> bytes:
    content = repo.files[path]
    assert isinstance(content, bytes)
    return content


def test_model_info_with_files_metadata(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    repo = hub_repo(TINY)
    info = api.model_info(TINY, files_metadata=True)
    weights = lazy(repo, "model.safetensors")
    assert info.sha == repo.sha and len(repo.sha) == 40
    assert info.siblings is not None
    assert [s.rfilename for s in info.siblings] == ["config.json", "model.safetensors"]
    config, model = info.siblings
    assert (config.size, config.lfs) == (len(small(repo, "config.json")), None)
    assert model.size == weights.size == len(weights.head) + 2 * 106_816
    assert model.lfs is not None and model.lfs.sha256 == weights.sha256 and model.lfs.size == weights.size
    assert info.gated is False and info.private is False
    assert info.config == {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    assert info.safetensors is not None and info.safetensors.parameters == {"BF16": 106_816}
    [request] = fake_hub.log
    assert (request.route, request.query, request.status) == ("info", "blobs=true", 200)
    assert [s.size for s in api.model_info(TINY).siblings or []] == [None, None]  # sizes only with blobs=true


def test_revisions(api: HfApi, hub_repo: HubRepo) -> None:
    repo = hub_repo(TINY)
    tag = repo.add_revision("v1.0", files={"config.json": b"{}"})
    assert api.model_info(TINY, revision="v1.0").sha == tag.sha
    assert api.model_info(TINY, revision=tag.sha).sha == tag.sha
    assert api.model_info(TINY, revision="main").sha == repo.sha
    assert api.file_exists(TINY, "model.safetensors", revision="v1.0") is False
    with pytest.raises(RevisionNotFoundError):
        api.model_info(TINY, revision="nope")
    with pytest.raises(RevisionNotFoundError):
        api.hf_hub_download(TINY, "config.json", revision="nope")


def test_header_read_is_one_ranged_get(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    hub_repo(TINY)
    metadata = api.parse_safetensors_file_metadata(TINY, "model.safetensors")
    assert as_triples(metadata) == triples(TINY_TENSORS)
    assert metadata.metadata == {"format": "pt"}
    [request] = fake_hub.requests_for(TINY)
    assert (request.method, request.range, request.status) == ("GET", "bytes=0-100000", 206)
    assert request.bytes_sent == 100_001


def test_long_header_takes_a_second_read(api: HfApi, fake_hub: FakeHub) -> None:
    many = [Tensor(f"model.layers.{i}.a_rather_long_tensor_name.weight", "F16", (8, 8)) for i in range(2_000)]
    repo = fake_hub.add_repo(build_repo("hfmem-test/long-header", many, {"model_type": "llama"}))
    length = len(lazy(repo, "model.safetensors").head) - 8
    assert length > 100_000
    metadata = api.parse_safetensors_file_metadata(repo.repo_id, "model.safetensors")
    assert as_triples(metadata) == triples(many)
    first, second = fake_hub.requests_for(repo.repo_id)
    assert (first.range, second.range) == ("bytes=0-100000", f"bytes=8-{length + 7}")
    assert fake_hub.bytes_sent_for(repo.repo_id, "model.safetensors") <= 100_001 + length


def test_sharded_repo_without_dataset(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    repo = hub_repo(TINY, shard_bytes=60_000)
    shards = sorted(f for f in repo.files if f.endswith(".safetensors"))
    assert shards == [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    walked = api.get_safetensors_metadata(TINY)
    assert walked.sharded and walked.metadata == {"total_size": 2 * 106_816}
    fake_hub.reset_log()
    one_call = api.get_sharded_safetensors_metadata(TINY)
    assert [r.route for r in fake_hub.log] == ["safetensors-metadata"]
    assert one_call.metadata == walked.metadata and one_call.weight_map == walked.weight_map
    assert {f: as_triples(m) for f, m in one_call.files_metadata.items()} == {
        f: as_triples(m) for f, m in walked.files_metadata.items()
    }
    assert sum((as_triples(walked.files_metadata[s]) for s in shards), []) == triples(TINY_TENSORS)


@needs_dataset
def test_dataset_single_file_repo(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    hub_repo("openai-community/gpt2")
    model_dir = DATASET / "models" / "openai-community__gpt2"
    metadata = api.get_safetensors_metadata("openai-community/gpt2")
    [file_metadata] = metadata.files_metadata.values()
    assert [(n, t["dtype"], tuple(t["shape"])) for n, t in tensors(model_dir).items()] == as_triples(file_metadata)
    assert metadata.parameter_count == expected(model_dir)["params"]["checkpoint_elements_by_dtype"]
    assert [(r.method, r.status) for r in fake_hub.log] == [("HEAD", 200), ("GET", 206)]


@needs_dataset
def test_dataset_sharded_repo(api: HfApi, hub_repo: HubRepo) -> None:
    repo = hub_repo("meta-llama/Llama-3.1-8B")
    model_dir = DATASET / "models" / "meta-llama__Llama-3.1-8B"
    params = expected(model_dir)["params"]
    walked = api.get_safetensors_metadata(repo.repo_id)
    one_call = api.get_sharded_safetensors_metadata(repo.repo_id)
    assert sorted(walked.files_metadata) == [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    assert walked.metadata == one_call.metadata == {"total_size": params["checkpoint_bytes_at_listed_dtypes"]}
    assert walked.parameter_count == one_call.parameter_count == params["checkpoint_elements_by_dtype"]
    assert set(walked.weight_map) == set(one_call.weight_map) == set(tensors(model_dir))
    info = api.model_info(repo.repo_id, files_metadata=True)
    assert info.safetensors is not None and info.safetensors.total == params["checkpoint_elements"]


@needs_dataset
def test_dataset_giant_repo_builds_quickly() -> None:
    repo = repo_from_dataset(DATASET / "models" / "deepseek-ai__DeepSeek-V3")
    shards = [f for f in repo.files if f.endswith(".safetensors")]
    assert len(shards) == 270 and SAFETENSORS_INDEX in repo.files
    assert all(isinstance(repo.files[s], LazyFile) for s in shards)


@needs_dataset
def test_real_header_file(api: HfApi, fake_hub: FakeHub) -> None:
    """A repo can serve real header bytes: the all-MiniLM header shipped in the dataset, at its real file size."""
    head = DATASET / "safetensors-headers" / "sentence-transformers__all-MiniLM-L6-v2.model.safetensors.header.bin"
    weights = LazyFile(head.read_bytes(), 90_868_376)
    repo = fake_hub.add_repo(FakeRepo("sentence-transformers/all-MiniLM-L6-v2", {"model.safetensors": weights}))
    metadata = api.parse_safetensors_file_metadata(repo.repo_id, "model.safetensors")
    assert len(metadata.tensors) == 104 and metadata.parameter_count == {"F32": 22_713_216, "I64": 512}


def test_resolve_headers_and_ranges(hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    repo = hub_repo(TINY)
    weights = lazy(repo, "model.safetensors")
    size, url = weights.size, f"{fake_hub.url}/{TINY}/resolve/main/model.safetensors"
    session = get_session()
    head = session.head(url)
    assert head.status_code == 200 and head.headers["X-Repo-Commit"] == repo.sha
    assert head.headers["ETag"] == head.headers["X-Linked-Etag"] == f'"{weights.sha256}"'
    assert int(head.headers["X-Linked-Size"]) == int(head.headers["Content-Length"]) == size
    assert head.headers["Accept-Ranges"] == "bytes"
    config_head = session.head(f"{fake_hub.url}/{TINY}/resolve/main/config.json")
    assert "X-Linked-Size" not in config_head.headers
    assert int(config_head.headers["Content-Length"]) == len(small(repo, "config.json"))

    def get(byte_range: str):
        return session.get(url, headers={"Range": byte_range})

    first = get("bytes=0-9")
    assert (first.status_code, first.content) == (206, weights.head[:10])
    assert first.headers["Content-Range"] == f"bytes 0-9/{size}"
    assert get(f"bytes={size - 4}-").content == get("bytes=-4").content == bytes(4)
    assert get(f"bytes={size - 2}-{size + 100}").headers["Content-Range"] == f"bytes {size - 2}-{size - 1}/{size}"
    too_far = get(f"bytes={size}-")
    assert too_far.status_code == 416 and too_far.headers["Content-Range"] == f"bytes */{size}"
    assert fake_hub.bytes_sent_for(TINY, "model.safetensors") == 10 + 4 + 4 + 2 + len(too_far.content)  # + error JSON


def test_hf_hub_download(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub, tmp_path) -> None:
    repo = hub_repo(TINY)
    path = api.hf_hub_download(TINY, "config.json")
    assert path.startswith(str(tmp_path)) and open(path, "rb").read() == repo.files["config.json"]
    assert [(r.method, r.status) for r in fake_hub.log] == [("HEAD", 200), ("GET", 200)]
    assert api.get_hf_file_metadata(url=f"{fake_hub.url}/{TINY}/resolve/main/config.json").commit_hash == repo.sha


def test_gated_repo(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    hub_repo(TINY, gated=True, shard_bytes=60_000)
    assert api.model_info(TINY).gated == "manual"  # metadata stays public
    for token, status in ((False, 401), ("hf_someone_else", 403)):
        with pytest.raises(GatedRepoError) as raised:
            api.parse_safetensors_file_metadata(TINY, "model-00001-of-00004.safetensors", token=token)
        assert raised.value.response.status_code == status
        with pytest.raises(GatedRepoError):
            api.get_sharded_safetensors_metadata(TINY, token=token)
    with pytest.raises(GatedRepoError):
        api.get_safetensors_metadata(TINY)  # file_exists lets GatedRepoError through
    assert api.get_sharded_safetensors_metadata(TINY, token=FakeHub.valid_token).sharded
    assert fake_hub.log[-1].token == FakeHub.valid_token


@pytest.mark.parametrize("case", ["private", "missing"])
def test_repo_not_found(api: HfApi, hub_repo: HubRepo, case: str) -> None:
    hub_repo(TINY, private=case == "private")
    repo_id = TINY if case == "private" else "hfmem-test/no-such-model"
    for token, status in ((False, 401), ("hf_someone_else", 404)):
        with pytest.raises(RepositoryNotFoundError) as raised:
            api.model_info(repo_id, token=token)
        assert raised.value.response.status_code == status and not isinstance(raised.value, GatedRepoError)
        with pytest.raises(RepositoryNotFoundError):
            api.parse_safetensors_file_metadata(repo_id, "model.safetensors", token=token)
    if case == "private":
        assert api.model_info(repo_id, token=FakeHub.valid_token).private is True


def test_missing_file(api: HfApi, hub_repo: HubRepo) -> None:
    hub_repo(TINY)
    with pytest.raises(RemoteEntryNotFoundError):
        api.hf_hub_download(TINY, "generation_config.json")
    assert api.file_exists(TINY, "generation_config.json") is False
    with pytest.raises(NotASafetensorsRepoError):
        api.get_safetensors_metadata("hfmem-test/no-such-model")  # file_exists swallows RepoNotFound


def test_injected_transient_failures(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    repo = hub_repo(TINY, fail_first={429: 1, 503: 1})
    for status in (429, 503):
        with pytest.raises(HfHubHTTPError) as raised:
            api.model_info(TINY)
        assert raised.value.response.status_code == status
        assert raised.value.response.headers["Retry-After"] == "0"
    assert api.model_info(TINY).sha == repo.sha
    assert [r.status for r in fake_hub.requests_for(TINY)] == [429, 503, 200]
    assert repo.fail_first == {429: 0, 503: 0}


def test_injected_failures_on_one_path(api: HfApi, hub_repo: HubRepo) -> None:
    hub_repo(TINY, fail_first={503: 1}, fail_path="/resolve/", retry_after=None)
    api.model_info(TINY)
    with pytest.raises(HfHubHTTPError) as raised:
        api.parse_safetensors_file_metadata(TINY, "model.safetensors")
    assert raised.value.response.status_code == 503 and "Retry-After" not in raised.value.response.headers
    api.parse_safetensors_file_metadata(TINY, "model.safetensors")


def test_broken_headers(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    repo = hub_repo(TINY, shard_bytes=60_000)
    shard = "model-00002-of-00004.safetensors"
    repo.files[shard] = truncated(lazy(repo, shard))
    with pytest.raises(SafetensorsParsingError):
        api.parse_safetensors_file_metadata(TINY, shard)
    with pytest.raises(BadRequestError):
        api.get_sharded_safetensors_metadata(TINY)
    repo.files[shard] = oversized_header()
    fake_hub.reset_log()
    with pytest.raises(SafetensorsParsingError, match="too big"):
        api.parse_safetensors_file_metadata(TINY, shard)
    assert [r.range for r in fake_hub.log] == ["bytes=0-100000"]
    assert struct.unpack("<Q", lazy(repo, shard).head[:8])[0] > 100_000_000


def test_bin_only_repo(api: HfApi, hub_repo: HubRepo) -> None:
    hub_repo(TINY, weights="bin")
    info = api.model_info(TINY, files_metadata=True)
    sizes = [(s.rfilename, s.size) for s in info.siblings or []]
    assert sizes == [("config.json", 667), ("pytorch_model.bin", 213_632)]
    assert info.safetensors is None and "safetensors" not in (info.tags or [])
    with pytest.raises(NotASafetensorsRepoError):
        api.get_safetensors_metadata(TINY)


def test_remote_code_repo(api: HfApi, hub_repo: HubRepo) -> None:
    repo = hub_repo("hfmem-test/tiny-remote-code")
    info = api.model_info(repo.repo_id)
    assert info.config is not None and info.config["auto_map"]["AutoModelForCausalLM"].startswith("modeling_tiny.")
    assert "custom_code" in (info.tags or [])
    assert api.file_exists(repo.repo_id, "modeling_tiny.py")


@pytest.mark.parametrize("config", [b'{"model_type": "llama",', None], ids=["malformed", "absent"])
def test_bad_or_missing_config(api: HfApi, hub_repo: HubRepo, config: bytes | None) -> None:
    repo = hub_repo(TINY)
    if config is None:
        del repo.files["config.json"]
    else:
        repo.files["config.json"] = config
    assert api.model_info(TINY).config is None
    if config is None:
        assert not api.file_exists(TINY, "config.json")
    else:
        assert open(api.hf_hub_download(TINY, "config.json"), "rb").read() == config


def test_unknown_route_is_501_and_logged(fake_hub: FakeHub) -> None:
    session = get_session()
    assert session.get(f"{fake_hub.url}/api/spaces/a/b").status_code == 501
    assert session.post(f"{fake_hub.url}/api/models/a/b", json={}).status_code == 501
    assert [(r.method, r.path, r.status) for r in fake_hub.unhandled] == [
        ("GET", "/api/spaces/a/b", 501),
        ("POST", "/api/models/a/b", 501),
    ]


def test_latency(api: HfApi, hub_repo: HubRepo, fake_hub: FakeHub) -> None:
    hub_repo(TINY)
    fake_hub.latency = 0.05
    api.model_info(TINY)
    [request] = fake_hub.log
    assert request.answered - request.received >= 0.05


def test_tree(api: HfApi, hub_repo: HubRepo) -> None:
    repo = hub_repo(TINY)
    repo.files["tokenizer/vocab.txt"] = b"a\nb\n"
    assert api.list_repo_files(TINY) == ["config.json", "model.safetensors", "tokenizer/vocab.txt"]
    top = list(api.list_repo_tree(TINY))
    assert [(type(e).__name__, e.path) for e in top] == [
        ("RepoFile", "config.json"),
        ("RepoFile", "model.safetensors"),
        ("RepoFolder", "tokenizer"),
    ]
    weights, folder = top[1:]
    assert isinstance(weights, RepoFile) and isinstance(folder, RepoFolder)
    assert weights.lfs is not None and weights.size == lazy(repo, "model.safetensors").size


def test_isolation_defaults(hub_repo: HubRepo, fake_hub: FakeHub, tmp_path) -> None:
    """HfApi() with no endpoint reaches the fake Hub; cache and token live in tmp_path."""
    hub_repo(TINY)
    assert HfApi().model_info(TINY).id == TINY
    assert fake_hub.log[0].token is None and get_token() is None
    assert constants.HF_HUB_CACHE.startswith(str(tmp_path))


def test_no_network() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("hub.example.org", 443)
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("192.0.2.1", 443))
