"""Audits straight from a Hub listing (`hfmem audit --author/--search/--filter`): one request per page of the list,
then per model only what the listing lacks; and what a hostile listing gets."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import parse_qs

import pytest
from click.testing import CliRunner

from hfmem import errors, hub
from hfmem.cli import cli
from hfmem.hub import HubOptions, list_models
from tests.fakehub import FIXTURES, FakeHub, _Call, _Reply, repo_from_dataset
from tests.hostilehub import HostileHub, endless, json_reply

TINY = FIXTURES / "hfmem-test__tiny-llama"


def organisation(fake_hub: FakeHub, size: int, org: str = "acme") -> list[str]:
    """`size` distinct copies of the tiny fixture model under `org`, and one repo elsewhere."""
    repo = repo_from_dataset(TINY)
    names = [f"{org}/tiny-{i:02d}" for i in range(size)]
    for name in [*names, "elsewhere/tiny"]:
        fake_hub.add_repo(dataclasses.replace(repo, repo_id=name, sha=""))
    return names


def audit(*args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["audit", "--format", "jsonl", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_an_organisation_costs_one_request_per_page_then_only_what_the_listing_lacks(fake_hub):
    names = organisation(fake_hub, 25)
    fake_hub.page_size = 10
    rows = audit("--author", "acme")
    assert [row["model"] for row in rows] == names
    assert all(row["error"] is None and row["params"] for row in rows)
    pages = [r for r in fake_hub.log if r.route == "models"]
    assert len(pages) == 3
    first = parse_qs(pages[0].query)
    assert first["author"] == ["acme"] and first["expand"] == ["sha", "gated", "siblings"]
    # Each model: its config.json and its one header, pinned to the listed commit; no model_info.
    for name in names:
        requests = fake_hub.requests_for(name)
        assert sorted(r.file for r in requests) == ["config.json", "model.safetensors"]
        assert all(f"/resolve/{fake_hub.repos[name].sha}/" in r.path for r in requests)
    fake_hub.reset_log()
    assert audit("--author", "acme") == rows  # warm: the listed commits are cached, so the pages are all it costs
    assert {r.route for r in fake_hub.log} == {"models"} and len(fake_hub.log) == 3


def test_search_filter_sort_and_limit_reach_the_query(fake_hub):
    organisation(fake_hub, 5)
    rows = audit("--search", "TINY-0", "--filter", "llama", "--sort", "modified", "--limit", "2")
    assert [row["model"] for row in rows] == ["acme/tiny-00", "acme/tiny-01"]
    (page,) = [r for r in fake_hub.log if r.route == "models"]
    query = parse_qs(page.query)
    assert (query["search"], query["filter"], query["sort"], query["limit"]) == (
        ["TINY-0"], ["llama"], ["lastModified"], ["2"])  # fmt: skip


def test_a_listed_gated_model_still_proves_access(fake_hub, tmp_path):
    organisation(fake_hub, 1)
    repo = fake_hub.repos["acme/tiny-00"]
    repo.gated = "manual"
    (full,) = audit("--author", "acme", "--token", FakeHub.valid_token)  # cached with a token
    assert full["access"] == "granted" and full["inference"] > 0
    fake_hub.reset_log()
    (row,) = audit("--author", "acme")  # the listing pins the commit, yet the cached entry is not shown
    assert (row["access"], row["error"], row["inference"], row["training"], row["lora"]) == ("gated", None, None,
                                                                                                 None, None)
    # the public metadata: the Hub's count of the headers, and its bytes at BF16
    assert (row["params"], row["dtype"], row["weights"]) == (full["params"], "bfloat16", 2 * full["params"])
    assert [(r.file, r.status) for r in fake_hub.requests_for("acme/tiny-00", "resolve")] == [("config.json", 401)]


def test_a_file_and_a_listing_are_exclusive(fake_hub, tmp_path):
    listed = tmp_path / "models.txt"
    listed.write_text("acme/tiny-00\n")
    result = CliRunner().invoke(cli, ["audit", str(listed), "--author", "acme"])
    assert result.exit_code == 2 and "not both" in result.stderr
    result = CliRunner().invoke(cli, ["audit", str(listed), "--limit", "3"])
    assert result.exit_code == 2 and "--limit" in result.stderr


@pytest.fixture
def hostile(hostile_server: HostileHub) -> HostileHub:
    hostile_server.reset()
    return hostile_server


def listed(server: FakeHub, **query: object) -> list[str]:
    return [model.repo_id for model in list_models(HubOptions(endpoint=server.url, token=False), **query)]


def test_a_huge_page_is_refused(hostile):
    hostile.tamper("models", lambda call, reply: endless())
    with pytest.raises(errors.BadResponse, match="over hfmem's"):
        listed(hostile)


@pytest.mark.parametrize("entry", [{"id": "../../etc/passwd"}, {"id": "a/b/c"}, {"id": 7}, "acme/x", {"sha": "0" * 40}])
def test_a_listing_entry_without_a_valid_repo_id_is_refused(hostile, entry):
    hostile.tamper("models", lambda call, reply: json_reply([entry]))
    with pytest.raises(errors.BadResponse, match="valid repo id"):
        listed(hostile)


def test_a_garbled_sha_or_file_list_makes_the_model_resolve_alone(hostile):
    page = [{"id": "a/b", "sha": "../x", "siblings": []},
            {"id": "a/c", "sha": "0" * 40, "siblings": [{"rfilename": "../x"}]}]  # fmt: skip
    hostile.tamper("models", lambda call, reply: json_reply(page))
    assert [m.listing for m in list_models(HubOptions(endpoint=hostile.url, token=False))] == [None, None]


def test_a_next_page_on_another_site_is_refused(hostile):
    def leading_away(call: _Call, reply: _Reply) -> _Reply:
        answer = json_reply([{"id": "a/b"}])
        answer.headers["Link"] = '<http://example.com/api/models?cursor=1>; rel="next"'
        return answer

    hostile.tamper("models", leading_away)
    with pytest.raises(errors.BadResponse, match="example.com"):
        listed(hostile)
    assert len(hostile.log) == 1


def test_an_endless_chain_of_pages_stops_at_the_limit_and_the_cap(hostile, monkeypatch):
    def one_more(call: _Call, reply: _Reply) -> _Reply:
        answer = json_reply([{"id": f"a/m{len(hostile.log)}"}])
        answer.headers["Link"] = f'<{hostile.url}/api/models?cursor={len(hostile.log) + 1}>; rel="next"'
        return answer

    hostile.tamper("models", one_more)
    assert len(listed(hostile, limit=5)) == 5 and len(hostile.log) == 5
    monkeypatch.setattr(hub, "MAX_LISTED", 3)
    hostile.reset_log()
    assert len(listed(hostile)) == 3 and len(hostile.log) == 3
