"""What hfmem does with a hostile endpoint: crafted commit ids, paths, sizes, encodings, slow and endless bodies.

Every case ends in a typed, one-line error (or a right answer) within seconds and a bounded amount of memory, with
nothing written outside $HF_HOME/hfmem, no request outside the repo's URLs, and the token nowhere but where it
belongs."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import constants

from hfmem import errors
from hfmem.api import open_snapshot
from hfmem.cli import cli
from hfmem.header import Tensor
from hfmem.hub import HubOptions
from hfmem.spec import build_spec
from hfmem.untrusted import MAX_BYTES
from tests.fakehub import FIXTURES, FakeHub, LazyFile, _Call, _chunks, _Reply, build_repo, repo_from_dataset
from tests.hostilehub import (
    ENDLESS,
    HostileHub,
    bomb_reply,
    endless,
    json_reply,
    raw_reply,
    slow,
    streamed_json,
)

TINY = "hfmem-test/tiny-llama"
TOKEN = FakeHub.valid_token
MiB = 2**20


@pytest.fixture
def hostile(hostile_server: HostileHub, monkeypatch: pytest.MonkeyPatch) -> HostileHub:
    """The hostile Hub, emptied, serving the tiny fixture repo (and a sharded copy, org/sharded), as the endpoint."""
    hostile_server.reset()
    hostile_server.add_repo(repo_from_dataset(FIXTURES / "hfmem-test__tiny-llama"))
    tensors = [Tensor(f"model.layers.{i}.mlp.weight", "F32", (64, 64)) for i in range(4)]
    hostile_server.add_repo(build_repo("org/sharded", tensors, {"model_type": "llama"}, shard_bytes=20_000))
    monkeypatch.setattr(constants, "ENDPOINT", hostile_server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hostile_server.url + "/{repo_id}/resolve/{revision}/{filename}")
    return hostile_server


def resolve(model: str = TINY, **options) -> object:
    return open_snapshot(model, hub=HubOptions(backoff=0, **options))


def honest_info(hub: HostileHub, repo_id: str = TINY) -> dict:
    """The model_info answer the honest fake Hub gives, to edit."""
    call = _Call("GET", f"/api/models/{repo_id}", {"blobs": ["true"]}, None, None)
    return json.loads(FakeHub._route(hub, call)[1].body[0])


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


# --- commit ids and paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sha", ["../../../escaped", "ABSOLUTE", "A" * 40, "0" * 39, None, 42])
def test_a_commit_id_that_is_not_40_hex_digits_is_refused_and_names_no_file(hostile, sha, tmp_path):
    escaped = tmp_path / "escaped-hfmem"
    info = honest_info(hostile)
    info["sha"] = str(escaped) if sha == "ABSOLUTE" else sha  # an absolute path
    hostile.tamper("info", lambda call, reply: json_reply(info))
    before = files_under(tmp_path)
    with pytest.raises(errors.BadResponse, match="no valid commit id"):
        resolve()
    written = files_under(tmp_path) - before
    assert all((tmp_path / "hf_home" / "hfmem") in p.parents for p in written)
    assert not escaped.with_suffix(".json").exists()


def test_shard_names_outside_the_repo_never_become_requests(hostile):
    repo = hostile.repos["org/sharded"]
    index = json.loads(repo.files["model.safetensors.index.json"])
    for i, tensor in enumerate(index["weight_map"]):
        index["weight_map"][tensor] = ["../../../../etc/passwd", "/etc/passwd", "..%2F..%2Fx.safetensors",
                                       "a\\..\\b.safetensors"][i % 4]  # fmt: skip
    repo.files["model.safetensors.index.json"] = json.dumps(index).encode()
    with pytest.raises(errors.HeaderError, match="not a safetensors file path inside the repo|does not hold"):
        resolve("org/sharded@" + repo.sha, token=TOKEN)  # pinned: the index is read, shard by shard
    for request in hostile.log:
        assert request.path.startswith(("/api/models/org/sharded", "/org/sharded/resolve/")), request.path
        assert ".." not in request.path and "passwd" not in request.path


def test_aliases_of_one_shard_are_refused_not_read_2000_times(hostile):
    repo = hostile.repos["org/sharded"]
    index = json.loads(repo.files["model.safetensors.index.json"])
    first = sorted(set(index["weight_map"].values()))[0]
    aliases = [f"./{first}", f"sub/../{first}", f".//{first}"] * 700
    index["weight_map"] = {f"t{i}": name for i, name in enumerate([first, *aliases])}
    repo.files["model.safetensors.index.json"] = json.dumps(index).encode()
    with pytest.raises(errors.HeaderError):
        resolve("org/sharded@" + repo.sha)
    assert len(hostile.requests_for("org/sharded", "resolve")) <= 6


def test_the_bulk_metadata_may_only_name_files_the_repo_holds(hostile):
    def rename(call, reply: _Reply) -> _Reply:
        answer = json.loads(b"".join(bytes(c) for c in reply.body))
        answer["headers"] = {f"../{name}": header for name, header in answer["headers"].items()}
        return json_reply(answer)

    hostile.tamper("safetensors-metadata", rename)
    with pytest.raises(errors.BadResponse, match="a file the repo does not hold"):
        resolve("org/sharded")


def test_a_bulk_answer_parsed_for_another_repo_is_held_to_this_repos_files(hostile):
    """A byte-identical answer is parsed once per process (hub.PARSED), but whether the files it names are this
    repo's is asked again for every repo."""
    resolve("org/sharded")  # its answer parsed, and kept
    call = _Call("GET", "/api/models/org/sharded/safetensors-metadata/model.safetensors.index.json", {}, None, None)
    answer = b"".join(bytes(c) for c in FakeHub._route(hostile, call)[1].body)
    tensors = [Tensor(f"model.layers.{i}.mlp.weight", "F32", (64, 64)) for i in range(6)]
    hostile.add_repo(build_repo("org/other", tensors, {"model_type": "llama"}, shard_bytes=50_000))  # 2 shards
    hostile.tamper("safetensors-metadata", lambda call, reply: raw_reply(answer), path="org/other")
    with pytest.raises(errors.BadResponse, match="org/other: .* a file the repo does not hold"):
        resolve("org/other")


def test_the_listing_may_only_hold_plain_paths(hostile):
    info = honest_info(hostile)
    info["siblings"].append({"rfilename": "../../outside", "size": 1})
    hostile.tamper("info", lambda call, reply: json_reply(info))
    with pytest.raises(errors.BadResponse, match="not a path inside the repo"):
        resolve()


# --- sizes, encodings and time ----------------------------------------------------------------------------------


def test_a_server_that_ignores_range_gives_the_header_and_no_more(hostile):
    def whole_file(call, reply: _Reply) -> _Reply:
        file = hostile.repos[TINY].files["model.safetensors"]
        big = LazyFile(file.head, 2**30)  # the same header, then a gigabyte of zeros
        return _Reply(200, {"Content-Type": "application/octet-stream"}, _chunks(big, 0, big.size), big.size)

    hostile.tamper("resolve", whole_file, path="model.safetensors")
    tracemalloc.start()
    try:
        spec = build_spec(resolve())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spec.parameters.total == 106_816
    assert peak < 64 * MiB


@pytest.mark.parametrize("route, path", [("resolve", "config.json"), ("info", ""), ("safetensors-metadata", "")])
def test_a_gzip_bomb_is_refused_at_the_cap(hostile, route, path):
    hostile.tamper(route, lambda call, reply: bomb_reply(), path=path)
    tracemalloc.start()
    try:
        with pytest.raises(errors.BadResponse, match="limit"):
            resolve("org/sharded")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * MiB


@pytest.mark.parametrize("route, path", [("resolve", "config.json"), ("info", ""), ("safetensors-metadata", "")])
def test_an_endless_body_is_refused_at_the_cap(hostile, route, path):
    hostile.tamper(route, lambda call, reply: endless(), path=path)
    started = time.monotonic()
    with pytest.raises(errors.BadResponse, match="limit"):
        resolve("org/sharded")
    assert time.monotonic() - started < 10


def test_a_content_length_over_the_cap_is_refused_before_reading(hostile):
    hostile.tamper("resolve", lambda call, reply: _Reply(200, {}, iter([b"{}"]), ENDLESS), path="config.json")
    with pytest.raises(errors.BadResponse, match=f"over hfmem's {MAX_BYTES['config']:,}-byte limit"):
        resolve()


def test_a_million_tensors_in_the_bulk_metadata_are_refused(hostile):
    entry = b'"t%d":{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}'
    shard = sorted(n for n in hostile.repos["org/sharded"].files if n.endswith(".safetensors"))[0]
    hostile.tamper("safetensors-metadata", lambda call, reply: streamed_json(
        b'{"headers":{"%s":{' % shard.encode(), lambda i: entry % (i, 4 * i, 4 * i + 4), 1_000_000, b"}}}"))
    tracemalloc.start()
    try:
        with pytest.raises((errors.BadResponse, errors.HeaderError)):
            resolve("org/sharded")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 400 * MiB


def test_a_million_files_in_the_listing_are_refused(hostile):
    head = b'{"sha":"%s","siblings":[' % hostile.repos[TINY].sha.encode()
    hostile.tamper("info", lambda call, reply: streamed_json(
        head, lambda i: b'{"rfilename":"f%d.txt","size":1}' % i, 1_000_000, b"]}"))
    with pytest.raises(errors.BadResponse, match="limit"):
        resolve()


def test_an_error_answer_is_read_only_for_its_message(hostile):
    hostile.tamper("info", lambda call, reply: _Reply(404, {"X-Error-Code": "RepoNotFound"}, endless().body, ENDLESS))
    started = time.monotonic()
    with pytest.raises(errors.ModelNotFound):
        resolve()
    assert time.monotonic() - started < 10


def test_a_slow_body_meets_the_models_deadline(hostile):
    config = hostile.repos[TINY].files["config.json"]
    hostile.tamper("resolve", lambda call, reply: slow(config, 0.2), path="config.json")
    started = time.monotonic()
    with pytest.raises(errors.TimedOut, match="within 1 s"):
        resolve(deadline=1, timeout=1)
    assert time.monotonic() - started < 3


def test_a_retry_after_past_max_wait_is_not_waited_for(hostile):
    hostile.tamper("info", lambda call, reply: raw_reply(b"{}", 429, {"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(errors.HubUnavailable, match="wait 3600 s more, past the 600 s"):
        resolve()
    assert time.monotonic() - started < 2


def test_a_redirect_loop_is_a_typed_error(hostile):
    hostile.tamper("info", lambda call, reply: _Reply(302, {"Location": call.path}, [], 0))
    with pytest.raises(errors.BadResponse, match="TooManyRedirects"):
        resolve()


@pytest.mark.parametrize("body", [
    b"<!doctype html><html><body>Sign in</body></html>",
    b"[" * 200_000 + b"]" * 200_000,
    b'{"sha": ' + b"9" * 5000 + b"}",
    b"\xff\xfe{}",
    b'["not", "an", "object"]',
])  # fmt: skip
def test_a_model_info_that_is_not_reasonable_json_is_a_typed_error(hostile, body):
    hostile.tamper("info", lambda call, reply: raw_reply(body))
    with pytest.raises(errors.BadResponse):
        resolve()


@pytest.mark.parametrize("body", [b"[" * 200_000 + b"]" * 200_000, b'{"hidden_size": ' + b"9" * 5000 + b"}"])
def test_a_config_that_is_not_reasonable_json_is_a_typed_error(hostile, body):
    hostile.tamper("resolve", lambda call, reply: raw_reply(body), path="config.json")
    with pytest.raises(errors.ConfigError):
        resolve()


# --- through the command line -------------------------------------------------------------------------------------


def test_hostile_answers_are_one_error_object_under_json_and_the_token_never_shows(hostile, tmp_path):
    info = honest_info(hostile)
    info["sha"] = "../../../escaped"
    hostile.tamper("info", lambda call, reply: json_reply(info))
    result = CliRunner().invoke(cli, ["inspect", TINY, "--json", "--token", TOKEN])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "bad_response"
    assert TOKEN not in result.output
    assert all(TOKEN not in p.read_text(errors="replace") for p in files_under(tmp_path) if p.is_file())


def test_the_token_does_not_follow_a_redirect_to_another_host(hostile, fake_hub):
    """The hostile Hub (127.0.0.1) sends config.json to the honest fake Hub under another name (localhost)."""
    fake_hub.add_repo(repo_from_dataset(FIXTURES / "hfmem-test__tiny-llama"))
    elsewhere = fake_hub.url.replace("127.0.0.1", "localhost")
    hostile.tamper("resolve", lambda call, reply: _Reply(302, {"Location": elsewhere + call.path}, [], 0),
                   path="config.json")  # fmt: skip
    build_spec(resolve(token=TOKEN))
    redirected = fake_hub.requests_for(TINY, "resolve")
    assert redirected and all(r.token is None for r in redirected)
    assert all(r.token == TOKEN for r in hostile.log if r.route == "info")
