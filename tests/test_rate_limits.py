"""The Hub's rate limits: a batch waits for the window to reset instead of failing, and says so."""

from __future__ import annotations

import dataclasses
import time

import pytest

from hfmem import errors
from hfmem.api import open_snapshot
from hfmem.audit import audit_models
from hfmem.hub import HubOptions
from hfmem.header import Tensor
from tests.fakehub import FIXTURES, Quota, build_repo, repo_from_dataset

TINY = FIXTURES / "hfmem-test__tiny-llama"


def serve_copies(fake_hub, n: int) -> list[str]:
    repo = repo_from_dataset(TINY)
    names = [f"org/tiny-{i}" for i in range(n)]
    for name in names:
        fake_hub.add_repo(dataclasses.replace(repo, repo_id=name, sha=""))
    return names


def test_a_batch_waits_for_the_window_instead_of_failing(fake_hub):
    names = serve_copies(fake_hub, 12)
    fake_hub.quotas["api"] = Quota(limit=5, window=1.0)  # 12 model_info calls: three windows
    waits: list[tuple[float, str]] = []
    started = time.monotonic()
    rows = list(audit_models(names, hub=HubOptions(on_wait=lambda s, bucket: waits.append((s, bucket))), jobs=4))
    elapsed = time.monotonic() - started
    assert [row.error for row in rows] == [None] * 12
    assert elapsed >= 1.5  # two windows had to reset
    assert waits and all(bucket == "api" for _, bucket in waits)
    answered = [r for r in fake_hub.log if r.route == "info" and r.status == 200]
    assert len(answered) == 12


def test_the_rate_limit_headers_close_the_bucket_before_a_429(fake_hub):
    """Once an answer says no request is left, the next waits for the reset: the Hub never has to refuse."""
    names = serve_copies(fake_hub, 4)
    fake_hub.quotas["api"] = Quota(limit=2, window=1.0)
    for name in names:  # one after another: each model_info answer is seen before the next request leaves
        open_snapshot(name)
    assert all(r.status == 200 for r in fake_hub.log if r.route == "info")


def test_max_wait_bounds_the_wait_for_scripts_that_prefer_errors(fake_hub):
    names = serve_copies(fake_hub, 2)
    fake_hub.quotas["api"] = Quota(limit=1, window=30.0)
    open_snapshot(names[0])
    started = time.monotonic()
    with pytest.raises(errors.HubUnavailable, match="past the 5 s this model may wait"):
        open_snapshot(names[1], hub=HubOptions(max_wait=5))
    assert time.monotonic() - started < 2


def test_a_429_on_the_bulk_metadata_never_falls_back_to_one_read_per_shard(fake_hub):
    tensors = [Tensor(f"model.layers.{i}.mlp.weight", "F32", (64, 64)) for i in range(4)]
    fake_hub.add_repo(dataclasses.replace(
        build_repo("org/sharded", tensors, {"model_type": "llama"}, shard_bytes=20_000),
        fail_first={429: 10}, fail_path="safetensors-metadata", retry_after=0))  # fmt: skip
    with pytest.raises(errors.HubUnavailable, match="answered 429"):
        open_snapshot("org/sharded", hub=HubOptions(attempts=2, backoff=0))
    shard_reads = [r for r in fake_hub.log if r.route == "resolve" and r.file.endswith(".safetensors")]
    assert shard_reads == []
