"""The audit library: reading lists, the concurrent runner (order, faults, timeouts, retries) and the row formats."""

from __future__ import annotations

import csv
import io
import json
import threading
from contextlib import closing

import pytest

from hfmem import errors
from hfmem.api import inspect_model
from hfmem.audit import COLUMNS, AuditRow, RowError, audit_models, read_models
from hfmem.views.rows import write_rows
from hfmem.views.text import render_audit_table as render_table
from hfmem.gpus import Gpu
from hfmem.hub import HubOptions
from hfmem.memory import Settings
from tests.fakehub import FakeHub

TINY = "hfmem-test/tiny-llama"
REMOTE = "hfmem-test/tiny-remote-code"


# --- reading ---


def test_read_a_plain_list():
    text = "# models to audit\n\norg/a\n  org/b@v1  \norg/c  # inline note\n   # indented comment\n./local/dir\n"
    assert read_models(text) == ["org/a", "org/b@v1", "org/c", "./local/dir"]


def test_read_a_csv_with_a_model_column():
    text = "# exported\nname,Model ,notes\nA,org/a,\"x, y\"\nB,,skip me\nC,org/c@main,\n"
    assert read_models(text) == ["org/a", "org/c@main"]


def test_read_a_one_column_csv():
    assert read_models("model\norg/a\norg/b\n") == ["org/a", "org/b"]


def test_a_csv_without_a_model_column_is_refused():
    with pytest.raises(errors.ModelRefError, match="'model' column"):
        read_models("name,size\norg/a,1\n")


def test_an_empty_list():
    assert read_models("\n# nothing\n\n") == []


# --- rows ---


def test_failed_rows_carry_the_error_as_a_value():
    gated = AuditRow.failed("org/x", errors.AccessDenied("org/x is gated: ..."))
    assert gated.error == RowError("gated", "org/x is gated: ...")
    internal = AuditRow.failed("org/y", ZeroDivisionError("division by zero"))
    assert internal.error == RowError("internal", "internal error: ZeroDivisionError: division by zero")
    data = gated.to_dict()
    assert list(data) == [c for c in COLUMNS if c != "error_type"]
    assert data["error"] == {"type": "gated", "message": "org/x is gated: ..."}
    assert all(data[key] is None for key in ("params", "dtype", "weights", "inference", "training", "lora", "fits"))


def test_rows_from_the_hub(hub_repo):
    hub_repo(TINY)
    (row,) = audit_models([TINY], gpu=Gpu("80 GiB", 80 * 2**30))
    report = inspect_model(TINY)
    assert row.error is None
    data = row.to_dict()
    assert data["params"] == 106_816 and data["dtype"] == "bfloat16" and data["weights"] == 2 * 106_816
    memory = report.memory
    assert (data["inference"], data["training"], data["lora"]) == (
        memory.inference.total_bytes, memory.training.total_bytes, memory.lora.total_bytes)
    assert data["fits"] == {"inference": True, "training": True, "lora": True}
    assert data["commit"] == report.spec.commit


def test_every_memory_setting_applies_to_every_row(hub_repo):
    hub_repo(TINY)
    hub_repo(REMOTE)
    small = list(audit_models([TINY, REMOTE]))
    large = list(audit_models([TINY, REMOTE], Settings(batch_size=8)))
    assert len(small) == len(large) == 2
    for a, b in zip(small, large):
        assert b.to_dict()["inference"] > a.to_dict()["inference"]


# --- the runner ---


def settle() -> None:
    """Wait for models abandoned by a timeout or a close, so that their requests do not reach the next test."""
    for thread in threading.enumerate():
        if thread.name.startswith("hfmem-audit"):
            thread.join(timeout=10)


def test_faults_become_rows_and_input_order_is_kept(hub_repo, fake_hub):
    hub_repo(TINY)
    hub_repo(REMOTE, gated=True)
    fake_hub.latency = 0.01
    models = ["nobody/nothing", TINY, REMOTE, "not a repo id!", f"{TINY}@nope", TINY]
    rows = list(audit_models(models, jobs=3))
    assert [row.model for row in rows] == models
    assert [row.error.type if row.error else None for row in rows] == [
        "not_found", None, None, "bad_reference", "revision_not_found", None]
    assert (rows[2].access, rows[2].totals) == ("gated", None)  # public metadata only


def test_retries_honour_retry_after(hub_repo, fake_hub):
    hub_repo(TINY, fail_first={429: 2, 503: 1}, fail_path="/api/models/", retry_after=0)
    # A backoff far above max_wait: only Retry-After: 0 lets the retries happen at all.
    patient = HubOptions(backoff=1000.0, max_wait=1.0)
    (row,) = audit_models([TINY], hub=patient)
    assert row.error is None
    assert [r.status for r in fake_hub.requests_for(TINY, "info")] == [429, 429, 503, 200]


def test_without_retry_after_the_budget_ends_the_retries(hub_repo, fake_hub):
    hub_repo(TINY, fail_first={429: 5}, fail_path="/api/models/", retry_after=None)
    (row,) = audit_models([TINY], hub=HubOptions(backoff=1000.0, max_wait=1.0))
    assert row.error is not None and row.error.type == "network"
    assert len(fake_hub.requests_for(TINY, "info")) == 1


def test_a_slow_model_meets_its_deadline_and_the_batch_goes_on(hub_repo, fake_hub):
    hub_repo(TINY)
    fake_hub.latency = 0.3
    rows = list(audit_models([TINY, "nobody/nothing"], jobs=2, timeout=0.1))
    settle()
    assert [row.error.type for row in rows] == ["timeout", "timeout"]
    assert "within 0.1 s" in rows[0].error.message


def test_closing_the_iterator_cancels_models_not_started(hub_repo, fake_hub):
    hub_repo(TINY)
    fake_hub.latency = 0.02
    models = [f"org/missing-{i}" for i in range(20)]
    with closing(audit_models(models, jobs=1)) as results:
        next(results)
    settle()
    asked = {r.repo_id for r in fake_hub.log}
    assert len(asked) < len(models)


# --- output ---


@pytest.fixture
def rows(hub_repo) -> list[AuditRow]:
    hub_repo(TINY)
    return list(audit_models([TINY, "nobody/nothing"], gpu=Gpu("tiny", 1000)))


def written(rows: list[AuditRow], fmt: str) -> str:
    out = io.StringIO()
    write_rows(rows, fmt, out)
    return out.getvalue()


def test_csv(rows):
    records = list(csv.DictReader(io.StringIO(written(rows, "csv"))))
    assert list(records[0]) == list(COLUMNS)
    assert records[0]["model"] == TINY and records[0]["params"] == "106816" and records[0]["fits"] == "none"
    assert records[0]["error"] == "" and records[1]["error_type"] == "not_found"
    assert "not found" in records[1]["error"] and records[1]["params"] == ""


def test_json_and_jsonl(rows):
    array = json.loads(written(rows, "json"))
    lines = [json.loads(line) for line in written(rows, "jsonl").splitlines()]
    assert array == lines == [row.to_dict() for row in rows]
    assert array[0]["fits"] == {"inference": False, "training": False, "lora": False}
    assert array[1]["error"]["type"] == "not_found"


def test_table(rows):
    table = render_table(rows, width=120)
    lines = table.splitlines()
    assert lines[0].split() == ["model", "params", "dtype", "weights", "inference", "training", "LoRA", "fits"]
    assert lines[2].split()[:3] == [TINY, "106.82K", "bfloat16"] and lines[3].split()[:3] == ["nobody/nothing", "error",
                                                                                        "not_found"]  # fmt: skip
    assert lines[4] == "sizes in GiB; fits: inf, train, lora"
    assert lines[5:] == ["errors:", "  nobody/nothing: not_found: nobody/nothing was not found on "
                         + lines[6].split(" on ")[1]]
    assert max(map(len, lines)) <= 120
    assert max(map(len, render_table(rows).splitlines())) <= 80  # a narrower terminal: names wrap
    failed_only = render_table([AuditRow("org/x", error=RowError("gated", "org/x is gated"))])
    assert failed_only.splitlines()[-1] == "  org/x: gated: org/x is gated"


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        write_rows([], "xml", io.StringIO())


def test_no_weights_requested_beyond_headers(hub_repo, fake_hub: FakeHub):
    hub_repo(TINY)
    (row,) = audit_models([TINY])
    assert row.error is None
    for request in fake_hub.requests_for(TINY, "resolve"):
        assert request.bytes_sent <= 100_001
