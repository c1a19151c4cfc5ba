"""The resolve chain (hfmem.sources): which source answers, in which order, online, offline and with the Hub down;
the answering source is Snapshot.source."""

from __future__ import annotations

import dataclasses

import pytest
from huggingface_hub import constants, hf_hub_download

from hfmem import errors
from hfmem.hub import HubOptions
from hfmem.refs import parse_ref
from hfmem.sources import CacheSource, DownloadsSource, HubSource, LocalDirectory, Request, Source, resolve
from tests.fakehub import FIXTURES, FakeHub, FakeRepo
from tests.test_peft import adapter_config, adapter_weights

TINY, OTHER = "hfmem-test/tiny-llama", "hfmem-test/tiny-remote-code"
DOWN = HubOptions(endpoint="http://127.0.0.1:9", attempts=1)  # nothing listens on the discard port


def test_every_source_names_what_it_answers(hub_repo, fake_hub, tmp_path):
    hub_repo(TINY)
    sources: list[Source] = [HubSource(), CacheSource(), DownloadsSource(), LocalDirectory()]
    ref = parse_ref(TINY)
    hub = sources[0].resolve(ref, Request())
    assert hub is not None and hub.source == sources[0].name == "hub"
    cached = sources[1].resolve(ref, Request(known=hub.commit))
    assert cached is not None and cached.source == sources[1].name == "cache"
    assert sources[2].resolve(ref, Request()) is None  # huggingface_hub downloaded nothing yet
    hf_hub_download(TINY, "config.json")
    downloaded = sources[2].resolve(ref, Request())
    assert downloaded is not None and downloaded.source == sources[2].name == "hub-cache"
    local = sources[3].resolve(parse_ref(str(FIXTURES / "hfmem-test__tiny-llama")), Request())
    assert local is not None and local.source == sources[3].name == "local"


def test_online_the_hub_answers_then_a_pinned_commit_needs_no_request(hub_repo, fake_hub):
    repo = hub_repo(TINY)
    assert resolve(parse_ref(TINY)).source == "hub"
    fake_hub.reset_log()
    assert resolve(parse_ref(f"{TINY}@{repo.sha}")).source == "cache"
    assert fake_hub.log == []


def test_offline_the_cache_answers_before_the_downloads(hub_repo, fake_hub, monkeypatch):
    hub_repo(TINY), hub_repo(OTHER)
    resolve(parse_ref(TINY))  # in hfmem's cache
    hf_hub_download(TINY, "config.json")  # and in huggingface_hub's downloads
    hf_hub_download(OTHER, "config.json")  # only downloaded
    fake_hub.reset_log()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve(parse_ref(TINY)).source == "cache"
    assert resolve(parse_ref(OTHER)).source == "hub-cache"
    with pytest.raises(errors.HubUnavailable, match="neither in hfmem's cache nor downloaded"):
        resolve(parse_ref("nobody/nothing"))
    assert fake_hub.log == []


def test_with_the_hub_down_the_cache_then_the_downloads_answer_with_a_warning(hub_repo, fake_hub):
    hub_repo(TINY), hub_repo(OTHER)
    resolve(parse_ref(TINY))
    hf_hub_download(TINY, "config.json")
    hf_hub_download(OTHER, "config.json")
    cached, downloaded = resolve(parse_ref(TINY), Request(hub=DOWN)), resolve(parse_ref(OTHER), Request(hub=DOWN))
    assert (cached.source, downloaded.source) == ("cache", "hub-cache")
    for snapshot in (cached, downloaded):
        assert "cannot reach the Hub" in snapshot.warnings[-1] and "resolved before" in snapshot.warnings[-1]


def test_an_adapters_base_goes_through_the_same_chain(hub_repo, fake_hub, monkeypatch, tmp_path):
    hub_repo(TINY)
    fake_hub.add_repo(FakeRepo("org/lora", {"adapter_config.json": adapter_config(),
                                            "adapter_model.safetensors": adapter_weights()}))  # fmt: skip
    online = resolve(parse_ref("org/lora"))
    assert (online.source, online.adapter.base_model) == ("hub", TINY)
    fake_hub.reset_log()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # offline: the adapter and its base from the cache
    offline = resolve(parse_ref("org/lora"))
    assert fake_hub.log == [] and offline.source == "cache"
    assert (offline.headers, offline.config, offline.adapter) == (online.headers, online.config, online.adapter)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    folder = tmp_path / "run"  # a training run's output: local, its base on the Hub (here: the cache, pinned)
    folder.mkdir()
    (folder / "adapter_config.json").write_bytes(adapter_config(revision=fake_hub.repos[TINY].sha))
    weights = adapter_weights()
    (folder / "adapter_model.safetensors").write_bytes(weights.head + bytes(weights.size - len(weights.head)))
    local = resolve(parse_ref(str(folder)))
    assert (local.source, local.repo_id, local.headers) == ("local", None, online.headers)
    assert fake_hub.log == [], "the base, pinned and cached, needs no request"


def test_a_gated_repo_cached_with_a_token_is_shown_offline_only(hub_repo, fake_hub, monkeypatch):
    repo = hub_repo(TINY, gated="manual")
    resolve(parse_ref(f"{TINY}@{repo.sha}"), Request(hub=HubOptions(token=FakeHub.valid_token)))
    assert resolve(parse_ref(f"{TINY}@{repo.sha}")).access == "gated"  # online: the Hub decides
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve(parse_ref(f"{TINY}@{repo.sha}")).source == "cache"  # as huggingface_hub's own downloads are


def test_a_listing_pins_the_commit_of_an_ungated_repo(hub_repo, fake_hub):
    from hfmem.hub import list_models

    hub_repo(TINY)
    resolve(parse_ref(TINY))
    (listed,) = [m for m in list_models(HubOptions(), author="hfmem-test") if m.repo_id == TINY]
    fake_hub.reset_log()
    snapshot = resolve(parse_ref(TINY), Request(listed=listed.listing))
    assert snapshot.source == "cache" and fake_hub.log == []


def test_with_the_hub_down_a_gated_repo_cached_with_a_token_is_shown_to_a_tokened_run_only(hub_repo, fake_hub):
    repo = hub_repo(TINY, gated="manual")
    resolve(parse_ref(TINY), Request(hub=HubOptions(token=FakeHub.valid_token)))
    with pytest.raises(errors.HubUnavailable, match="cannot reach the Hub"):
        resolve(parse_ref(TINY), Request(hub=DOWN))
    kept = resolve(parse_ref(TINY), Request(hub=dataclasses.replace(DOWN, token=FakeHub.valid_token)))
    assert (kept.source, kept.commit, kept.access) == ("cache", repo.sha, "granted")
