"""The metadata cache: round trips, corrupt entries, and what a warm, pinned or offline resolve asks of the Hub."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from huggingface_hub import constants, hf_hub_download

from hfmem import errors
from hfmem.api import open_snapshot
from hfmem.cache import FORMAT, MetadataCache
from hfmem.diffusers import Component, Pipeline
from hfmem.header import Header, Tensor
from hfmem.hub import HubOptions
from hfmem.refs import parse_ref
from hfmem.sentence import SentenceModel, SentenceModule
from hfmem.snapshot import RepoFile, Snapshot
from hfmem.spec import build_spec
from tests.fakehub import FakeHub

TINY = "hfmem-test/tiny-llama"
SHA = "0123456789abcdef0123456789abcdef01234567"


def snapshot(repo_id: str = "org/model", commit: str = SHA) -> Snapshot:
    experts = Tensor("layers.0.experts.*.w.weight", "BF16", (2, 2), 8, count=4)
    header = Header((Tensor("a.weight", "BF16", (4, 2)), Tensor("b.bias", "F32", ()), experts), {"format": "pt"})
    files = (RepoFile("config.json", 12), RepoFile("model.safetensors", 100))
    config = {"model_type": "llama", "text_config": {"vocab_size": 3}}
    return Snapshot(repo_id, repo_id, None, commit, "hub", files, config, {"model.safetensors": header}, "manual")


def entry_path(cache: MetadataCache, repo_id: str, commit: str) -> Path:
    return cache.root / f"models--{repo_id.replace('/', '--')}" / "snapshots" / f"{commit}.json"


def test_lives_beside_huggingface_hubs_cache():
    assert MetadataCache.default().root == Path(constants.HF_HOME) / "hfmem"


def test_round_trip(tmp_path):
    cache, original = MetadataCache(tmp_path), snapshot()
    cache.save(original)
    loaded = cache.load(parse_ref("org/model@v1"), SHA)
    assert loaded == dataclasses.replace(original, model="org/model", revision="v1", source="cache")
    assert not list(tmp_path.rglob("*.tmp")), "written atomically: no temporary file left behind"


def test_refs_map_revisions_to_commits(tmp_path):
    cache = MetadataCache(tmp_path)
    assert cache.commit("org/model", "main") is None
    cache.save_commit("org/model", "refs/pr/1", SHA)
    assert cache.commit("org/model", "refs/pr/1") == SHA
    assert cache.commit("org/model", "main") is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_text("{not json"),
        lambda path: path.write_bytes(b"\xff\xfe"),
        lambda path: path.write_text('{"format": 1}'),
        lambda path: path.write_text(path.read_text().replace(f'"format":{FORMAT}', '"format":99')),
        lambda path: path.write_text(path.read_text().replace('[4,2]', '"x"')),
        lambda path: path.write_text("[]"),
    ],
    ids=["not-json", "not-utf8", "fields-missing", "other-format", "bad-shape", "not-an-object"],
)
def test_a_corrupt_entry_is_a_miss(tmp_path, damage):
    cache = MetadataCache(tmp_path)
    cache.save(snapshot())
    damage(entry_path(cache, "org/model", SHA))
    assert cache.load(parse_ref("org/model"), SHA) is None


def test_an_entry_for_another_repo_or_commit_is_a_miss(tmp_path):
    cache = MetadataCache(tmp_path)
    cache.save(snapshot())
    other = SHA.replace("0", "f")
    entry_path(cache, "org/model", SHA).rename(entry_path(cache, "org/model", other))
    assert cache.load(parse_ref("org/model"), other) is None


def test_a_garbled_ref_is_a_miss(tmp_path):
    cache = MetadataCache(tmp_path)
    cache.save_commit("org/model", "main", "not a sha")
    assert cache.commit("org/model", "main") is None


def test_an_unwritable_cache_is_skipped(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = MetadataCache(blocker / "hfmem")  # a folder under a file cannot be created
    cache.save(snapshot())
    cache.save_commit("org/model", "main", SHA)
    assert cache.load(parse_ref("org/model"), SHA) is None


def corrupt(change):
    """A damage done to the decoded entry (its JSON rewritten afterwards)."""

    def damage(path: Path) -> None:
        entry = json.loads(path.read_text())
        change(entry)
        path.write_text(json.dumps(entry))

    return damage


def tensor(index: int, value) -> object:
    """Set field `index` of the first tensor entry ([name, dtype, shape, nbytes, count])."""
    return corrupt(lambda e: e["headers"]["model.safetensors"]["tensors"][0].__setitem__(index, value))


FIELD_DAMAGE = {
    "format-string": corrupt(lambda e: e.update(format=str(FORMAT))),
    "other-commit": corrupt(lambda e: e.update(commit="f" * 40)),
    "no-gated": corrupt(lambda e: e.pop("gated")),
    "files-object": corrupt(lambda e: e.update(files={})),
    "file-not-a-pair": corrupt(lambda e: e["files"].append(["a", 1, 2])),
    "file-escapes": corrupt(lambda e: e["files"].append(["../../etc/passwd", 1])),
    "file-absolute": corrupt(lambda e: e["files"].append(["/etc/passwd", 1])),
    "file-newline": corrupt(lambda e: e["files"].append(["a\nb", 1])),
    "file-size-negative": corrupt(lambda e: e["files"].append(["a", -1])),
    "file-size-string": corrupt(lambda e: e["files"].append(["a", "12"])),
    "file-size-bool": corrupt(lambda e: e["files"].append(["a", True])),
    "config-list": corrupt(lambda e: e.update(config=[])),
    "config-null": corrupt(lambda e: e.update(config=None)),
    "headers-list": corrupt(lambda e: e.update(headers=[])),
    "header-name-escapes": corrupt(lambda e: e.update(headers={"../x.safetensors": e["headers"]["model.safetensors"]})),
    "header-not-object": corrupt(lambda e: e["headers"].update({"model.safetensors": 1})),
    "metadata-list": corrupt(lambda e: e["headers"]["model.safetensors"].update(metadata=[])),
    "metadata-number": corrupt(lambda e: e["headers"]["model.safetensors"]["metadata"].update(format=1)),
    "tensors-object": corrupt(lambda e: e["headers"]["model.safetensors"].update(tensors={})),
    "tensor-short": corrupt(lambda e: e["headers"]["model.safetensors"]["tensors"][0].pop()),
    "tensor-name-number": tensor(0, 7),
    "dtype-lowercase": tensor(1, "bf16"),
    "dtype-number": tensor(1, 16),
    "shape-string": tensor(2, "x"),
    "shape-negative": tensor(2, [-4, -2]),
    "shape-bool": tensor(2, [True, 8]),
    "shape-float": tensor(2, [4.0, 2]),
    "nbytes-negative": tensor(3, -16),
    "nbytes-inconsistent": tensor(3, 17),
    "count-zero": tensor(4, 0),
    "count-string": tensor(4, "1"),
    "count-huge": tensor(4, 10**30),
    "gated-number": corrupt(lambda e: e.update(gated=1)),
    "gated-object": corrupt(lambda e: e.update(gated={})),
    "deep": lambda path: path.write_text("[" * 200_000 + "]" * 200_000),
    "huge-int": lambda path: path.write_text('{"format": ' + "9" * 5_000 + "}"),
}


def sentence_snapshot() -> Snapshot:
    """snapshot() as a sentence-transformers repo: modules.json, a Pooling folder and a Dense module's weights."""
    dense = (Tensor("2_Dense.linear.weight", "F32", (8, 4)), Tensor("2_Dense.linear.bias", "F32", (8,)))
    model = SentenceModel((SentenceModule("0", "", "Transformer"), SentenceModule("1", "1_Pooling", "Pooling"),
                           SentenceModule("2", "2_Dense", "Dense", dense, "2_Dense/model.safetensors")),
                          ("the Dense module in 3_Dense/ has only pickled weights: not counted",))  # fmt: skip
    files = (RepoFile("modules.json", 10), RepoFile("2_Dense/model.safetensors", 200))
    base = snapshot()
    return dataclasses.replace(base, files=base.files + files, sentence=model)


def test_a_sentence_transformers_repo_keeps_its_modules(tmp_path):
    cache, original = MetadataCache(tmp_path), sentence_snapshot()
    cache.save(original)
    loaded = cache.load(parse_ref("org/model"), SHA)
    assert loaded == dataclasses.replace(original, source="cache")
    assert build_spec(loaded).parameters.total == build_spec(original).parameters.total


def pipeline_snapshot() -> Snapshot:
    """A Diffusers pipeline: a UNet with non-variant and fp16 weights, a scheduler without weights."""
    files = {None: ("unet/diffusion_pytorch_model.safetensors",),
             "fp16": ("unet/diffusion_pytorch_model.fp16.safetensors",)}  # fmt: skip
    tensors = {None: (Tensor("unet.conv_in.weight", "F32", (8, 4)),),
               "fp16": (Tensor("unet.conv_in.weight", "F16", (8, 4)),)}  # fmt: skip
    unet = Component("unet", "diffusers", "UNet2DConditionModel", {"sample_size": 128}, files, tensors)
    pipeline = Pipeline("StableDiffusionXLPipeline", (unet,), None, ("scheduler",), ("a warning",))
    listed = (RepoFile("model_index.json", 9), RepoFile("unet/config.json", 9), RepoFile(files[None][0], 136),
              RepoFile(files["fp16"][0], 72))  # fmt: skip
    return Snapshot("org/model", "org/model", None, SHA, "hub", listed, {}, {}, None, pipeline=pipeline)


def test_a_diffusers_pipeline_keeps_its_components(tmp_path):
    cache, original = MetadataCache(tmp_path), pipeline_snapshot()
    cache.save(original)
    loaded = cache.load(parse_ref("org/model"), SHA)
    assert loaded == dataclasses.replace(original, source="cache")
    assert loaded.pipeline.choose("fp16", "org/model").tensors(loaded.pipeline.components[0])[0].dtype == "F16"


def component(index: int, value) -> object:
    """Set field `index` of the UNet ([name, library, class, config, [[variant, files, tensors], ...]])."""
    return corrupt(lambda e: e["pipeline"]["components"][0].__setitem__(index, value))


def variant(index: int, value) -> object:
    """Set field `index` of the UNet's first variant ([variant, files, tensors])."""
    return corrupt(lambda e: e["pipeline"]["components"][0][4][0].__setitem__(index, value))


PIPELINE_DAMAGE = {
    "pipeline-list": corrupt(lambda e: e.update(pipeline=[])),
    "no-pipeline": corrupt(lambda e: e.update(pipeline=None)),  # model_index.json is listed: its components are due
    "no-components": corrupt(lambda e: e["pipeline"].update(components=[])),
    "class-two-lines": corrupt(lambda e: e["pipeline"].update(class_name="A\nB")),
    "others-number": corrupt(lambda e: e["pipeline"]["others"].append(1)),
    "component-escapes": component(0, "../unet"),
    "component-nested": component(0, "a/unet"),
    "library-number": component(1, 3),
    "config-list": component(3, []),
    "no-variants": component(4, []),
    "variant-twice": corrupt(lambda e: e["pipeline"]["components"][0][4].append(e["pipeline"]["components"][0][4][0])),
    "variant-number": variant(0, 16),
    "file-not-listed": variant(1, ["unet/other.safetensors"]),
    "no-files": variant(1, []),
    "tensor-off": variant(2, [["unet.conv_in.weight", "F32", [8, 4], 7, 1]]),
}


def module(index: int, value) -> object:
    """Set field `index` of the Dense module ([name, path, type, weights_file, tensors])."""
    return corrupt(lambda e: e["sentence"]["modules"][2].__setitem__(index, value))


SENTENCE_DAMAGE = {
    "sentence-list": corrupt(lambda e: e.update(sentence=[])),
    "no-sentence": corrupt(lambda e: e.update(sentence=None)),  # modules.json is listed: the modules must be kept
    "no-modules": corrupt(lambda e: e["sentence"].update(modules=[])),
    "too-many-modules": corrupt(lambda e: e["sentence"].update(modules=e["sentence"]["modules"] * 30)),
    "warning-number": corrupt(lambda e: e["sentence"]["warnings"].append(1)),
    "module-short": corrupt(lambda e: e["sentence"]["modules"][2].pop()),
    "path-escapes": module(1, "../outside"),
    "type-two-lines": module(2, "Dense\nRow"),
    "weights-file-escapes": module(3, "/etc/passwd"),
    "tensor-off": module(4, [["2_Dense.linear.weight", "F32", [8, 4], 7, 1]]),
}


@pytest.mark.parametrize(
    "made, damage",
    [(snapshot, d) for d in FIELD_DAMAGE.values()] + [(sentence_snapshot, d) for d in SENTENCE_DAMAGE.values()]
    + [(pipeline_snapshot, d) for d in PIPELINE_DAMAGE.values()],
    ids=[*FIELD_DAMAGE, *SENTENCE_DAMAGE, *PIPELINE_DAMAGE],
)
def test_an_entry_with_any_field_off_is_a_miss(tmp_path, made, damage):
    cache = MetadataCache(tmp_path)
    cache.save(made())
    assert cache.load(parse_ref("org/model"), SHA) is not None
    damage(entry_path(cache, "org/model", SHA))
    assert cache.load(parse_ref("org/model"), SHA) is None


def test_modules_kept_for_a_repo_without_modules_json_are_a_miss(tmp_path):
    cache = MetadataCache(tmp_path)
    cache.save(dataclasses.replace(sentence_snapshot(), files=snapshot().files))
    assert cache.load(parse_ref("org/model"), SHA) is None


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


@pytest.mark.parametrize("commit", ["../../../escaped", "ABSOLUTE", SHA + "\n", SHA.upper(), "", "."])
def test_a_name_that_is_no_commit_never_becomes_a_file_name(tmp_path, commit):
    commit = str(tmp_path / "absolute") if commit == "ABSOLUTE" else commit  # an absolute path
    root = tmp_path / "home" / "hfmem"
    cache = MetadataCache(root)
    cache.save(snapshot(commit=commit))
    cache.save_commit("org/model", "main", commit)
    assert files_under(tmp_path) == []
    assert cache.load(parse_ref("org/model"), commit) is None


@pytest.mark.parametrize("revision", [".", "..", ""])
def test_refs_dot_and_dot_dot_are_refused(tmp_path, revision):
    cache = MetadataCache(tmp_path)
    cache.save_commit("org/model", revision, SHA)
    assert files_under(tmp_path) == []
    assert cache.commit("org/model", revision) is None
    cache.save_commit("org/model", "main", SHA)  # the refs folder still works
    assert cache.commit("org/model", "main") == SHA


def test_revisions_with_slashes_stay_one_file_inside_refs(tmp_path):
    cache = MetadataCache(tmp_path)
    cache.save_commit("org/model", "../../../x", SHA)
    assert files_under(tmp_path) == ["models--org--model/refs/..%2F..%2F..%2Fx"]
    assert cache.commit("org/model", "../../../x") == SHA


def test_a_symlink_out_of_the_root_is_neither_written_nor_read(tmp_path):
    root, outside = tmp_path / "hfmem", tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "models--org--model").symlink_to(outside)
    cache = MetadataCache(root)
    cache.save(snapshot())
    cache.save_commit("org/model", "main", SHA)
    assert files_under(outside) == []
    MetadataCache(outside.parent / "elsewhere").save(snapshot())  # an entry that the link would reach
    (outside / "snapshots").mkdir()
    entry_path(MetadataCache(tmp_path / "elsewhere"), "org/model", SHA).rename(outside / "snapshots" / f"{SHA}.json")
    assert cache.load(parse_ref("org/model"), SHA) is None


def test_a_config_too_deep_to_write_is_not_kept(tmp_path):
    deep: object = []
    for _ in range(5_000):
        deep = [deep]
    cache = MetadataCache(tmp_path)
    cache.save(dataclasses.replace(snapshot(), config={"deep": deep}))
    assert files_under(tmp_path) == []


# --- through the resolver, against the fake Hub ---


def routes(hub: FakeHub) -> list[str]:
    return [r.route or "?" for r in hub.log]


def test_second_resolve_is_one_small_request(hub_repo, fake_hub):
    hub_repo(TINY)
    first = open_snapshot(TINY)
    assert first.source == "hub" and "resolve" in routes(fake_hub)
    fake_hub.reset_log()
    second = open_snapshot(TINY)
    assert routes(fake_hub) == ["resolve"], "only the revision -> sha lookup, in the resolvers bucket"
    assert fake_hub.log[0].file == "config.json" and fake_hub.log[0].bytes_sent < 2_000
    assert second.source == "cache"
    assert dataclasses.replace(second, source="hub") == first


def test_pinned_commit_in_the_cache_needs_no_request(hub_repo, fake_hub):
    repo = hub_repo(TINY)
    open_snapshot(TINY)
    fake_hub.reset_log()
    pinned = open_snapshot(f"{TINY}@{repo.sha}")
    assert fake_hub.log == []
    assert pinned.commit == repo.sha and pinned.revision == repo.sha and pinned.source == "cache"


def test_a_moved_branch_is_fetched_again(hub_repo, fake_hub):
    repo = hub_repo(TINY)
    open_snapshot(TINY)
    repo.sha = SHA  # main now points at another commit
    fake_hub.reset_log()
    moved = open_snapshot(TINY)
    assert moved.commit == SHA and moved.source == "hub"
    assert "resolve" in routes(fake_hub)
    assert MetadataCache.default().commit(TINY, "main") == SHA


def test_offline_mode_reads_the_cache(hub_repo, fake_hub, monkeypatch):
    hub_repo(TINY)
    online = open_snapshot(TINY)
    fake_hub.reset_log()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = open_snapshot(TINY)
    assert fake_hub.log == []
    assert offline.source == "cache" and offline.commit == online.commit
    with pytest.raises(errors.HubUnavailable, match="HF_HUB_OFFLINE"):
        open_snapshot("nobody/nothing")


@pytest.mark.parametrize("downloaded", [("config.json", "model.safetensors"), ("config.json",)])
def test_offline_mode_reads_what_huggingface_hub_downloaded(downloaded, hub_repo, fake_hub, monkeypatch):
    repo = hub_repo(TINY)
    for filename in downloaded:  # as from_pretrained would have: files in the hub cache, nothing in hfmem's
        hf_hub_download(TINY, filename)
    fake_hub.reset_log()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    snapshot = open_snapshot(TINY)
    assert fake_hub.log == []
    assert (snapshot.source, snapshot.repo_id, snapshot.commit) == ("hub-cache", TINY, repo.sha)
    assert snapshot.shown_revision == "main" and "only the files downloaded" in snapshot.warnings[0]
    spec = build_spec(snapshot)
    assert spec.parameters.exact is ("model.safetensors" in downloaded)
    assert abs(spec.parameters.total - 106_816) / 106_816 < 0.005


def test_offline_mode_with_nothing_cached_or_downloaded(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(errors.HubUnavailable, match="neither in hfmem's cache nor downloaded"):
        open_snapshot(TINY)


@pytest.mark.parametrize("fault", ["unreachable", "server errors"])
def test_a_failing_hub_falls_back_to_what_was_resolved_before(fault, hub_repo, fake_hub):
    repo, never_resolved = hub_repo(TINY), hub_repo("hfmem-test/tiny-remote-code")
    open_snapshot(TINY)
    options = HubOptions(backoff=0, attempts=2)
    if fault == "unreachable":
        options = dataclasses.replace(options, endpoint="http://127.0.0.1:9")
    else:
        repo.fail_first, never_resolved.fail_first = {503: 100}, {503: 100}
    snapshot = open_snapshot(TINY, hub=options)
    assert (snapshot.source, snapshot.commit) == ("cache", repo.sha)
    reason = "cannot reach the Hub" if fault == "unreachable" else "answered 503"
    assert reason in snapshot.warnings[-1] and "showing what was resolved before" in snapshot.warnings[-1]
    with pytest.raises(errors.HubUnavailable, match=reason):  # nothing on disk: the fault is the answer
        open_snapshot(never_resolved.repo_id, hub=options)


def test_a_corrupt_entry_is_refetched_and_rewritten(hub_repo, fake_hub):
    repo = hub_repo(TINY)
    open_snapshot(TINY)
    path = entry_path(MetadataCache.default(), TINY, repo.sha)
    path.write_text("garbage")
    fake_hub.reset_log()
    again = open_snapshot(TINY)
    assert again.source == "hub" and "resolve" in routes(fake_hub)
    fake_hub.reset_log()
    assert open_snapshot(TINY).source == "cache"
    assert routes(fake_hub) == ["resolve"]


def test_what_was_cached_is_not_shown_once_the_repo_is_gated_and_no_token_is_given(hub_repo, fake_hub):
    repo = hub_repo(TINY)
    open_snapshot(TINY)
    repo.gated = "auto"  # gating is a repo setting, not part of a commit
    public = open_snapshot(TINY)  # only what the Hub shows anyone
    assert (public.source, public.access, public.config, public.headers) == ("hub", "gated", {}, {})
    assert open_snapshot(TINY, hub=HubOptions(token=FakeHub.valid_token)).source == "cache"


def test_a_pinned_commit_of_a_gated_repo_is_not_shown_from_the_cache_without_a_token(hub_repo, fake_hub):
    repo = hub_repo(TINY, gated="manual")
    pinned = f"{TINY}@{repo.sha}"
    token = HubOptions(token=FakeHub.valid_token)
    assert open_snapshot(pinned, hub=token).source == "hub"
    public = open_snapshot(pinned)  # pinned and cached, but cached with a token: the Hub decides
    assert (public.source, public.access, public.headers) == ("hub", "gated", {})
    fake_hub.reset_log()
    assert open_snapshot(pinned, hub=token).source == "cache"  # the token proves access with one round trip
    assert sorted(r.route for r in fake_hub.log) == ["info", "resolve"]
