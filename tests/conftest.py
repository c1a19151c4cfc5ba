"""Shared fixtures: the fake Hub, huggingface_hub state isolated per test, and no network beyond loopback."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import huggingface_hub
import pytest
from huggingface_hub import constants

from hfmem.hub import RATE_LIMITS

from .dataset import DATASET
from .fakehub import FIXTURES, SHARD_BYTES, FakeHub, FakeRepo, repo_from_dataset
from .hostilehub import HostileHub


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite the golden files from the current output")


def pytest_report_header() -> str:
    return f"huggingface_hub {huggingface_hub.__version__}; dataset: {DATASET if DATASET.is_dir() else 'absent'}"


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def fake_hub_server() -> Iterator[FakeHub]:
    """The fake Hub, started once per session. Tests use `fake_hub`, which empties it first."""
    with FakeHub() as hub:
        yield hub


@pytest.fixture(scope="session")
def hostile_server() -> Iterator[HostileHub]:
    """The hostile fake Hub (tests/hostilehub.py), started once per session."""
    with HostileHub() as hub:
        yield hub


@pytest.fixture
def fake_hub(fake_hub_server: FakeHub) -> FakeHub:
    """The session's fake Hub with no repos, an empty log and no latency; the requests of an earlier test's
    abandoned models (a timeout row, a closed audit) finished first, so that none lands in this test's log."""
    settle_client_threads()
    fake_hub_server.reset()
    return fake_hub_server


def settle_client_threads(timeout: float = 10.0) -> None:
    """Wait for hfmem's worker threads (and the request pools inside them) left running by an earlier test."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.name.startswith("hfmem-decode"):  # hub._DECODER: for good
            continue
        if thread.name.startswith(("hfmem", "ThreadPoolExecutor")):
            thread.join(max(0.0, deadline - time.monotonic()))


@pytest.fixture
def hub_repo(fake_hub: FakeHub) -> Callable[..., FakeRepo]:
    """Factory: `hub_repo("org/name", gated=True, ...)` serves the fixtures/hub or dataset model of that id.

    Keyword arguments are FakeRepo fields (faults), or `shard_bytes` / `weights` for repo_from_dataset. A dataset
    model skips the test when ../shared/hub-dataset is absent."""

    def add(
        repo_id: str,
        *,
        shard_bytes: int = SHARD_BYTES,
        weights: Literal["safetensors", "bin"] = "safetensors",
        **fields: Any,
    ) -> FakeRepo:
        folder = repo_id.replace("/", "__")
        model_dir = next((d for d in (FIXTURES / folder, DATASET / "models" / folder) if d.is_dir()), None)
        if model_dir is None:
            if not DATASET.is_dir():
                pytest.skip("../shared/hub-dataset is not present")
            raise LookupError(f"no fixture or dataset model named {repo_id}")
        repo = repo_from_dataset(model_dir, shard_bytes=shard_bytes, weights=weights)
        return fake_hub.add_repo(dataclasses.replace(repo, **fields))

    return add


@pytest.fixture(autouse=True)
def hf_isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_hub_server: FakeHub) -> None:
    """huggingface_hub per test: HF_HOME in tmp_path, no token, telemetry off, offline mode off, the fake Hub as
    default endpoint. Environment variables reach subprocesses; the values huggingface_hub read at import are
    patched in its `constants` so that `HfApi()` without `endpoint=` reaches the fake Hub too."""
    home = tmp_path / "hf_home"
    url = fake_hub_server.url
    unset = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
    for name in unset + ["HF_ASSETS_CACHE", "HF_XET_CACHE", "HUGGINGFACE_HUB_CACHE"]:
        monkeypatch.delenv(name, raising=False)
    environment = {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ENDPOINT": url,
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    patched: dict[str, object] = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for name, constant in patched.items():
        monkeypatch.setattr(constants, name, constant)
    RATE_LIMITS.forget()  # rate-limit windows are per process: a test starts with none


def _is_loopback(host: str | bytes | None) -> bool:
    if host is None:  # getaddrinfo(None, port): the local host
        return True
    name = host.decode() if isinstance(host, bytes) else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse name lookups and connections beyond loopback, so that no test can reach the real Hub."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"tests may only connect to loopback, not {address[0]}")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host: str | bytes | None, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"tests may only resolve loopback names, not {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
