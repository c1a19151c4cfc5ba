"""A loopback fake of the Hugging Face Hub, for tests and benchmarks (stdlib HTTP server).

It serves the routes huggingface_hub 2.4 calls for model repos, with the Hub's headers and `X-Error-Code`s, so the
real client and its `hf_raise_for_status` run unchanged:

    GET       /api/models?author=&search=&filter=&limit=&expand=  list_models, `FakeHub.page_size` models a page,
                                                                the next page in a `Link: <...>; rel="next"` header
    GET       /api/models/{repo}[/revision/{rev}]               model_info (blobs=true: sizes and LFS info)
    GET       /api/models/{repo}/tree/{rev}[/{path}]            list_repo_tree
    GET       /api/models/{repo}/safetensors-metadata/{index}   get_sharded_safetensors_metadata (main only)
    HEAD/GET  /{repo}/resolve/{rev}/{path}                      file metadata and (ranged) downloads
    GET /api/agent-harnesses, HEAD /api/telemetry/...           answered so that the client stays quiet

Anything else gets 501 and is logged (`FakeHub.unhandled`). Weight files are virtual (`LazyFile`): real header bytes,
then zeros up to a declared size, generated on the fly, so a 1 TB repo costs only its headers in memory.

Faults are FakeRepo fields (`gated`, `private`, `fail_first` / `fail_path` / `retry_after`) or edits of `repo.files`
(`truncated(...)`, `oversized_header()`, malformed or deleted config.json). Unknown repos, revisions and files get
RepoNotFound / RevisionNotFound / EntryNotFound, as on the Hub.

    python -m tests.fakehub --latency 0.05 [--dataset]    # serve the fixture (and dataset) repos; prints the URL
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import struct
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from huggingface_hub import split_state_dict_into_shards_factory

from hfmem.header import Tensor, write_header

from .dataset import model_dirs, repo_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hub"
SHARD_BYTES = 5_000_000_000  # transformers' default max_shard_size, "5GB"
SAFETENSORS_INDEX = "model.safetensors.index.json"
LAST_MODIFIED = "2024-06-01T12:00:00.000Z"
_ZEROS = memoryview(bytes(1 << 20))


@dataclass(frozen=True)
class LazyFile:
    """A large (LFS) file: `head` holds its real leading bytes, the other `size - len(head)` bytes are zeros."""

    head: bytes
    size: int

    def __post_init__(self) -> None:
        if self.size < len(self.head):
            raise ValueError("size is smaller than head")

    @cached_property
    def sha256(self) -> str:
        """Stands in for the LFS content hash (hashing terabytes of zeros would prove nothing)."""
        return hashlib.sha256(self.head + str(self.size).encode()).hexdigest()

    @cached_property
    def header(self) -> dict[str, Any] | None:
        """The decoded safetensors header, or None when the file does not start with a whole, valid one."""
        if len(self.head) < 8:
            return None
        (length,) = struct.unpack("<Q", self.head[:8])
        if 8 + length > len(self.head):
            return None
        try:
            decoded = json.loads(self.head[8 : 8 + length])
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None

    @property
    def header_json(self) -> bytes:
        """The header's JSON text as stored (meaningful when `header` is not None)."""
        return self.head[8 : 8 + struct.unpack("<Q", self.head[:8])[0]]

    @cached_property
    def parameters(self) -> dict[str, int]:
        """Elements per dtype in the header, as the Hub reports them in model_info's `safetensors`."""
        counts: dict[str, int] = {}
        try:
            for name, info in (self.header or {}).items():
                if name != "__metadata__":
                    counts[info["dtype"]] = counts.get(info["dtype"], 0) + math.prod(info["shape"])
        except (KeyError, TypeError):  # a deliberately malformed header: the Hub shows no counts
            return {}
        return counts


Content = bytes | LazyFile  # bytes: a small file stored in git; LazyFile: an LFS file


@dataclass
class Commit:
    sha: str
    files: dict[str, Content]


@dataclass
class FakeRepo:
    """One model repo. `files` is its main branch; the fields after it inject faults."""

    repo_id: str
    files: dict[str, Content]
    # Files (resolve, safetensors-metadata) need FakeHub.valid_token; model_info and tree stay public. True = "manual".
    gated: bool | Literal["auto", "manual"] = False
    # Everything needs FakeHub.valid_token; otherwise RepoNotFound, exactly as for an unknown repo.
    private: bool = False
    # {status: n}: the next n matching requests get that status, statuses in insertion order. Counts down as served.
    fail_first: dict[int, int] = field(default_factory=dict)
    fail_path: str = ""  # only requests whose URL path contains this get the injected failures
    retry_after: int | None = 0  # Retry-After sent with injected failures (None: no header)
    revisions: dict[str, Commit] = field(default_factory=dict)  # branch or tag name -> commit; see add_revision
    sha: str = ""  # main's commit; derived from repo_id when empty
    # A push racing the client: once a request whose URL path contains push_after is answered, main moves to a
    # new commit holding these files.
    push: dict[str, Content] | None = None
    push_after: str = ""

    def __post_init__(self) -> None:
        self.sha = self.sha or _sha1(self.repo_id)
        if self.gated is True:
            self.gated = "manual"

    def add_revision(self, name: str, files: dict[str, Content] | None = None) -> Commit:
        """Add a branch or tag `name` with its own commit (files default to a copy of main's)."""
        commit = Commit(_sha1(f"{self.repo_id}@{name}"), dict(self.files) if files is None else files)
        self.revisions[name] = commit
        return commit

    def commit(self, revision: str) -> Commit | None:
        """The commit a branch, tag or full commit sha names, or None."""
        if revision in ("main", self.sha):
            return Commit(self.sha, self.files)
        if revision in self.revisions:
            return self.revisions[revision]
        return next((c for c in self.revisions.values() if c.sha == revision), None)


# --- building repos ---------------------------------------------------------------------------------------------


def safetensors_file(tensors: Sequence[Tensor], metadata: Mapping[str, str] | None = None) -> LazyFile:
    """A safetensors file holding `tensors` back to back (metadata defaults to transformers' {"format": "pt"})."""
    head = write_header(list(tensors), {"format": "pt"} if metadata is None else metadata)
    return LazyFile(head, len(head) + sum(t.nbytes for t in tensors))


def truncated(file: LazyFile, at: int | None = None) -> LazyFile:
    """`file` ending after `at` bytes (default: halfway through its header), so its header runs past EOF."""
    if at is None:
        at = 8 + struct.unpack("<Q", file.head[:8])[0] // 2
    return LazyFile(file.head[:at], at)


def oversized_header(claimed: int = 200_000_000) -> LazyFile:
    """A safetensors file whose length prefix claims a `claimed`-byte header (huggingface_hub refuses > 25 MB)."""
    return LazyFile(struct.pack("<Q", claimed) + b'{"', 8 + claimed)


def weight_files(
    tensors: Sequence[Tensor],
    *,
    shard_bytes: int = SHARD_BYTES,
    weights: Literal["safetensors", "bin"] = "safetensors",
) -> dict[str, Content]:
    """Weight files as transformers' save_pretrained writes them, split by the same huggingface_hub function:
    `model.safetensors`, or `model-0000i-of-0000N.safetensors` shards plus the index; or one `pytorch_model.bin`."""
    if weights == "bin":
        return {"pytorch_model.bin": LazyFile(b"", sum(t.nbytes for t in tensors))}
    by_name = {t.name: t for t in tensors}
    split = split_state_dict_into_shards_factory(
        by_name,
        get_storage_size=lambda t: t.nbytes,
        filename_pattern="model{suffix}.safetensors",
        max_shard_size=shard_bytes,
    )
    files: dict[str, Content] = {
        filename: safetensors_file([by_name[n] for n in names]) for filename, names in split.filename_to_tensors.items()
    }
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        files[SAFETENSORS_INDEX] = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    return files


def build_repo(
    repo_id: str,
    tensors: Sequence[Tensor],
    config: Mapping[str, Any] | bytes | None,
    *,
    files: Mapping[str, Content] | None = None,
    shard_bytes: int = SHARD_BYTES,
    weights: Literal["safetensors", "bin"] = "safetensors",
) -> FakeRepo:
    """A repo from explicit tensors and config (a dict, raw bytes, or None for no config.json), plus `files`."""
    repo_files = dict(files or {})
    if config is not None:
        text = config if isinstance(config, bytes) else (json.dumps(config, indent=2) + "\n").encode()
        repo_files["config.json"] = text
    repo_files |= weight_files(tensors, shard_bytes=shard_bytes, weights=weights)
    return FakeRepo(repo_id, repo_files)


def sentence_files(dense: Sequence[tuple[int, int, bool]] = (), *, pickled: bool = False) -> dict[str, Content]:
    """The files sentence-transformers' save() writes beside a Transformer module at the root: modules.json
    (Transformer, Pooling, each Dense (in, out, bias) of `dense`, Normalize), 1_Pooling/config.json, and each
    Dense's config.json and nn.Linear weights (`linear.weight`, `linear.bias`; pytorch_model.bin when `pickled`).
    Normalize saves no file, so its folder is absent from the repo, as on the Hub."""
    modules = [("", "Transformer"), ("1_Pooling", "Pooling")]
    modules += [(f"{2 + i}_Dense", "Dense") for i in range(len(dense))] + [(f"{2 + len(dense)}_Normalize", "Normalize")]
    listed = [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
              for i, (path, kind) in enumerate(modules)]  # fmt: skip
    files: dict[str, Content] = {
        "modules.json": json.dumps(listed, indent=2).encode(),
        "1_Pooling/config.json": b'{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true}',
    }
    for i, (ins, outs, bias) in enumerate(dense):
        folder = f"{2 + i}_Dense"
        config = {"in_features": ins, "out_features": outs, "bias": bias,
                  "activation_function": "torch.nn.modules.activation.Tanh"}  # fmt: skip
        files[f"{folder}/config.json"] = json.dumps(config).encode()
        tensors = [Tensor("linear.weight", "F32", (outs, ins))] + [Tensor("linear.bias", "F32", (outs,))] * bias
        if pickled:
            files[f"{folder}/pytorch_model.bin"] = LazyFile(b"", sum(t.nbytes for t in tensors))
        else:
            files[f"{folder}/model.safetensors"] = safetensors_file(tensors)
    return files


def pipeline_files(
    layout: Path, weights: Mapping[str, Mapping[str | None, Sequence[Sequence[Tensor]]]]
) -> dict[str, Content]:
    """A Diffusers pipeline repo: the small files of `layout` (model_index.json, each component's config.json, the
    scheduler's config) as they are, and per component (folder) and variant (None: non-variant) its safetensors
    files as diffusers' save_pretrained names them: `diffusion_pytorch_model` for diffusers models, `model` for
    transformers ones, `.VARIANT` before the suffix, one list of tensors per shard (`-0000i-of-0000N`, with the
    index `NAME.safetensors.index[.VARIANT].json`)."""
    files: dict[str, Content] = {
        p.relative_to(layout).as_posix(): p.read_bytes() for p in sorted(layout.rglob("*")) if p.is_file()
    }
    library = {name: value[0] for name, value in json.loads(files["model_index.json"]).items()
               if isinstance(value, list)}  # fmt: skip
    for component, variants in weights.items():
        stem = "diffusion_pytorch_model" if library[component] == "diffusers" else "model"
        for variant, shards in variants.items():
            dot = f".{variant}" if variant else ""
            if len(shards) == 1:
                files[f"{component}/{stem}{dot}.safetensors"] = safetensors_file(shards[0])
                continue
            weight_map = {}
            for i, shard in enumerate(shards, 1):
                name = f"{stem}{dot}-{i:05d}-of-{len(shards):05d}.safetensors"
                files[f"{component}/{name}"] = safetensors_file(shard)
                weight_map |= {t.name: name for t in shard}
            total = sum(t.nbytes for shard in shards for t in shard)
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            files[f"{component}/{stem}.safetensors.index{dot}.json"] = json.dumps(index, indent=2).encode()
    return files


def load_tensors(path: Path) -> list[Tensor]:
    """A dataset-style tensors.json (name -> {"dtype", "shape"}), in file order."""
    return [Tensor(name, info["dtype"], tuple(info["shape"])) for name, info in json.loads(path.read_bytes()).items()]


@cache
def _folder_files(model_dir: Path, shard_bytes: int, weights: Literal["safetensors", "bin"]) -> dict[str, Content]:
    files: dict[str, Content] = {
        p.name: p.read_bytes()
        for p in sorted(model_dir.iterdir())
        if p.is_file() and p.name not in ("tensors.json", "expected.json")
    }
    return files | weight_files(load_tensors(model_dir / "tensors.json"), shard_bytes=shard_bytes, weights=weights)


def repo_from_dataset(
    model_dir: Path,
    *,
    shard_bytes: int = SHARD_BYTES,
    weights: Literal["safetensors", "bin"] = "safetensors",
) -> FakeRepo:
    """A repo from a dataset or fixtures/hub folder ORG__NAME: its files as they are (config.json, *.py, ...) except
    tensors.json and expected.json, plus weight files written from tensors.json. Files are cached per folder."""
    model_dir = Path(model_dir)
    return FakeRepo(repo_id(model_dir), dict(_folder_files(model_dir, shard_bytes, weights)))


def fixture_repos() -> list[FakeRepo]:
    return [repo_from_dataset(d) for d in sorted(FIXTURES.iterdir()) if (d / "tensors.json").is_file()]


def dataset_repos() -> list[FakeRepo]:
    """Every dataset model with ground truth (the others have no tensors.json to build weights from)."""
    return [repo_from_dataset(d) for d in model_dirs(with_ground_truth=True)]


# --- serving ----------------------------------------------------------------------------------------------------


@dataclass
class Quota:
    """A rate limit as the Hub applies it to one bucket ("api" for /api/ routes, "resolvers" for file downloads):
    `limit` requests per fixed window of `window` seconds, announced on every answer in the IETF draft's RateLimit
    and RateLimit-Policy headers, and a 429 with Retry-After once the window's requests are spent."""

    limit: int
    window: float
    started: float = -math.inf
    used: int = 0


@dataclass
class LoggedRequest:
    """One request, as the fake Hub answered it."""

    method: str
    path: str  # URL path as sent (percent-encoded)
    query: str
    range: str | None  # the Range header
    token: str | None  # the bearer token sent, if any
    route: str | None  # "info", "tree", "safetensors-metadata", "resolve", ...; None: unknown (answered 501)
    repo_id: str | None
    file: str | None  # path in the repo, for resolve
    status: int
    bytes_sent: int  # body bytes
    received: float  # time.perf_counter() when the request arrived
    answered: float  # ... and when the response started, after `latency`
    thread: str


@dataclass
class _Call:
    method: str
    path: str
    query: dict[str, list[str]]
    range: str | None
    token: str | None
    repo_id: str | None = None
    rev: str | None = None
    file: str | None = None


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    body: Iterable[bytes | memoryview] = ()
    length: int = 0


_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_ROUTES: list[tuple[str, set[str], re.Pattern[str]]] = [
    ("safetensors-metadata", {"GET"}, re.compile(rf"/api/models/{_REPO}/safetensors-metadata/(?P<file>.+)")),
    ("tree", {"GET"}, re.compile(rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<file>.+))?")),
    ("info", {"GET"}, re.compile(rf"/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?")),
    ("resolve", {"GET", "HEAD"}, re.compile(rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)")),
    ("models", {"GET"}, re.compile(r"/api/models")),
    ("agent-harnesses", {"GET"}, re.compile(r"/api/agent-harnesses")),
    ("telemetry", {"GET", "HEAD"}, re.compile(r"/api/telemetry/.+")),
]
_GATED_ROUTES = {"resolve", "safetensors-metadata"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class FakeHub:
    """The fake Hub: add repos, start it (or use it as a context manager), point clients at `.url`, read `.log`."""

    valid_token = "hf_fake_token"

    def __init__(self, *, latency: float = 0.0, port: int = 0) -> None:
        self.latency = latency  # seconds slept before each response
        self.quotas: dict[str, Quota] = {}  # bucket -> its rate limit; none: unlimited
        self.repos: dict[str, FakeRepo] = {}
        self.page_size = 1000  # models per page of the model list (the Hub's most)
        self.log: list[LoggedRequest] = []
        self._port = port
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def with_dataset(cls, *, latency: float = 0.0, port: int = 0) -> FakeHub:
        """A hub (not started) serving the fixture repos and every dataset model with ground truth."""
        hub = cls(latency=latency, port=port)
        for repo in fixture_repos() + dataset_repos():
            hub.add_repo(repo)
        return hub

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Hub is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_repo(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def reset(self) -> None:
        """Forget every repo, request and quota, and set latency back to 0."""
        self.repos.clear()
        self.quotas.clear()
        self.reset_log()
        self.latency = 0.0
        self.page_size = 1000

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def requests_for(self, repo_id: str, route: str | None = None) -> list[LoggedRequest]:
        return [r for r in self.log if r.repo_id == repo_id and (route is None or r.route == route)]

    def bytes_sent_for(self, repo_id: str, path: str | None = None) -> int:
        """Body bytes sent for a repo's requests (file downloads and API answers), or for one file's downloads."""
        return sum(r.bytes_sent for r in self.requests_for(repo_id) if path is None or r.file == path)

    @property
    def unhandled(self) -> list[LoggedRequest]:
        """Requests for routes the fake does not know (each was answered 501)."""
        return [r for r in self.log if r.route is None]

    # --- request handling (called from server threads) ---

    def _route(self, call: _Call) -> tuple[str | None, _Reply]:
        for route, methods, pattern in _ROUTES:
            match = pattern.fullmatch(call.path)
            if match and call.method in methods:
                groups = match.groupdict()
                call.repo_id, call.rev, call.file = (
                    unquote(groups[k]) if groups.get(k) else None for k in ("repo", "rev", "file")
                )
                return route, self._answer(route, call)
        return None, _error(501, None, f"the fake Hub does not serve {call.method} {call.path}")

    def _answer(self, route: str, call: _Call) -> _Reply:
        if route == "agent-harnesses":
            return _json({"standardEnvVars": [], "harnesses": {}})
        if route == "telemetry":
            return _Reply(200, {})
        if route == "models":
            return self._model_list(call)
        assert call.repo_id is not None
        repo = self.repos.get(call.repo_id)
        if repo is not None and (failure := self._injected_failure(repo, call.path)):
            return failure
        if denied := self._denied(repo, call.token, gated=route in _GATED_ROUTES):
            return denied
        assert repo is not None
        if route == "safetensors-metadata":
            return _safetensors_metadata(repo, call)
        commit = repo.commit(call.rev or "main")
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {call.rev}")
        if route == "info":
            return _model_info(repo, commit, call.query)
        if route == "tree":
            return _tree(commit, call)
        reply = _resolve(commit, call)
        if repo.push is not None and repo.push_after and repo.push_after in call.path:
            repo.files, repo.sha, repo.push = repo.push, _sha1(repo.sha), None
        return reply

    def _model_list(self, call: _Call) -> _Reply:
        """A page of list_models: the repos the query selects, in the order added (sort is accepted, not applied),
        each as model_info with `expand` gives it, without file sizes (as on the Hub); `cursor` is the offset."""
        query = {k: v[-1] for k, v in call.query.items() if k != "expand"}
        search, author = query.get("search", "").lower(), query.get("author")
        authorized = call.token == self.valid_token
        selected = [
            repo for repo in list(self.repos.values())
            if (authorized or not repo.private) and search in repo.repo_id.lower()
            and (author is None or repo.repo_id.startswith(f"{author}/"))
            and ("filter" not in query or query["filter"] in _tags(repo.files))
        ]  # fmt: skip
        start, size = int(query.get("cursor", 0)), min(self.page_size, int(query.get("limit", self.page_size)))
        page = [_info(repo, repo.commit("main"), {"expand": call.query.get("expand", [])})  # type: ignore[arg-type]
                for repo in selected[start : start + size]]  # fmt: skip
        reply = _json(page)
        if start + size < len(selected):
            after = urlencode(call.query | {"cursor": [str(start + size)]}, doseq=True)
            reply.headers["Link"] = f'<{self.url}/api/models?{after}>; rel="next"'
        return reply

    def _metered(self, route: str | None, reply: _Reply) -> _Reply:
        """The reply, counted against its bucket's quota (or a 429 when the window's requests are spent)."""
        bucket = "resolvers" if route == "resolve" else "api"
        quota = self.quotas.get(bucket)
        if quota is None or route in ("agent-harnesses", "telemetry"):
            return reply
        with self._lock:
            now = time.monotonic()
            if now - quota.started >= quota.window:
                quota.started, quota.used = now, 0
            reset = max(1, math.ceil(quota.started + quota.window - now))
            spent = quota.used >= quota.limit
            quota.used += not spent
            remaining = quota.limit - quota.used
        if spent:
            reply = _error(429, None, f"rate limited: {quota.limit} {bucket} requests per {quota.window:g} s",
                           {"Retry-After": str(reset)})  # fmt: skip
        reply.headers |= {
            "RateLimit": f'"{bucket}";r={remaining};t={reset}',
            "RateLimit-Policy": f'"fixed window";"{bucket}";q={quota.limit};w={math.ceil(quota.window)}',
        }
        return reply

    def _injected_failure(self, repo: FakeRepo, path: str) -> _Reply | None:
        if repo.fail_path not in path:
            return None
        with self._lock:
            status = next((s for s, n in repo.fail_first.items() if n > 0), None)
            if status is None:
                return None
            repo.fail_first[status] -= 1
        headers = {} if repo.retry_after is None else {"Retry-After": str(repo.retry_after)}
        return _error(status, None, f"injected failure {status}", headers)

    def _denied(self, repo: FakeRepo | None, token: str | None, *, gated: bool) -> _Reply | None:
        # Like the Hub: anonymous requests get 401, requests with a token that lacks access 404 / 403.
        authorized = token == self.valid_token
        if repo is None or (repo.private and not authorized):
            return _error(401 if token is None else 404, "RepoNotFound", "Repository not found")
        if gated and repo.gated and not authorized:
            message = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated to "
                "access it. Please log in."
            )
            return _error(401 if token is None else 403, "GatedRepo", message)
        return None

    def _record(self, request: LoggedRequest) -> None:
        with self._lock:
            self.log.append(request)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # benchmarks open dozens of connections at once
    hub: FakeHub

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is no fault of the server
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of the Hub
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def _handle(self) -> None:
        start = time.perf_counter()
        if length := int(self.headers.get("Content-Length") or 0):
            self.rfile.read(length)
        url = urlsplit(self.path)
        auth = self.headers.get("Authorization") or ""
        call = _Call(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            range=self.headers.get("Range"),
            token=auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None,
        )
        hub = self.server.hub
        route, reply = hub._route(call)
        reply = hub._metered(route, reply)
        time.sleep(hub.latency)
        record = LoggedRequest(
            method=call.method,
            path=call.path,
            query=url.query,
            range=call.range,
            token=call.token,
            route=route,
            repo_id=call.repo_id,
            file=call.file,
            status=reply.status,
            bytes_sent=0 if call.method == "HEAD" else reply.length,
            received=start,
            answered=time.perf_counter(),
            thread=threading.current_thread().name,
        )
        hub._record(record)  # before sending: a client that has its answer finds its request in the log
        record.bytes_sent = self._send(reply)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _send(self, reply: _Reply) -> int:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(reply.length))
        self.end_headers()
        sent = 0
        if self.command == "HEAD":
            return sent
        try:
            for chunk in reply.body:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return sent

    def log_message(self, format: str, *args: Any) -> None:  # quiet: FakeHub.log records every request
        pass


# --- routes -----------------------------------------------------------------------------------------------------


def _tags(files: Mapping[str, Content]) -> list[str]:
    config = _json_object(files.get("config.json"))
    tags = ["transformers"]
    if any(path.endswith(".safetensors") for path in files):
        tags.append("safetensors")
    if config and "model_type" in config:
        tags.append(config["model_type"])
    if config and "auto_map" in config:
        tags.append("custom_code")
    return tags


def _model_info(repo: FakeRepo, commit: Commit, query: dict[str, list[str]]) -> _Reply:
    return _json(_info(repo, commit, query))


def _info(repo: FakeRepo, commit: Commit, query: dict[str, list[str]]) -> dict[str, Any]:
    config = _json_object(commit.files.get("config.json"))
    tags = _tags(commit.files)
    blobs = query.get("blobs") == ["true"]
    info: dict[str, Any] = {
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "sha": commit.sha,
        "lastModified": LAST_MODIFIED,
        "private": repo.private,
        "gated": repo.gated,
        "disabled": False,
        "tags": tags,
        "siblings": [_sibling(path, content, blobs) for path, content in sorted(commit.files.items())],
    }
    if config is not None:  # the Hub's summary of config.json
        info["config"] = {k: config[k] for k in ("architectures", "model_type", "auto_map") if k in config}
    parameters: dict[str, int] = {}
    for path, content in commit.files.items():
        if path.endswith(".safetensors") and isinstance(content, LazyFile):
            for dtype, n in content.parameters.items():
                parameters[dtype] = parameters.get(dtype, 0) + n
    if parameters:
        info["safetensors"] = {"parameters": parameters, "total": sum(parameters.values())}
    if query.get("securityStatus") == ["true"]:
        info["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
    if expand := query.get("expand"):
        info = {k: v for k, v in info.items() if k == "id" or k in expand}
    return info


def _sibling(path: str, content: Content, blobs: bool) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": path}
    if blobs:
        sibling |= {"size": _size(content), "blobId": _blob_id(content)}
        if isinstance(content, LazyFile):
            sibling["lfs"] = {"sha256": content.sha256, "size": content.size, "pointerSize": len(_lfs_pointer(content))}
    return sibling


def _tree(commit: Commit, call: _Call) -> _Reply:
    prefix = f"{call.file}/" if call.file else ""
    recursive = call.query.get("recursive") == ["true"]
    entries: dict[str, dict[str, Any]] = {}
    for path, content in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        if "/" in rest and not recursive:
            folder = prefix + rest.split("/")[0]
            entries.setdefault(folder, {"type": "directory", "oid": _sha1(folder), "size": 0, "path": folder})
            continue
        entry: dict[str, Any] = {"type": "file", "oid": _blob_id(content), "size": _size(content), "path": path}
        if isinstance(content, LazyFile):
            entry["lfs"] = {"oid": content.sha256, "size": content.size, "pointerSize": len(_lfs_pointer(content))}
        entries[path] = entry
    if prefix and not entries:
        return _error(404, "EntryNotFound", f"{call.file} does not exist on \"{call.rev}\"")
    return _json(list(entries.values()))


def _resolve(commit: Commit, call: _Call) -> _Reply:
    assert call.file is not None
    content = commit.files.get(call.file)
    if content is None:
        message = f"{call.file} does not exist on \"{call.rev}\""
        return _error(404, "EntryNotFound", message, {"X-Repo-Commit": commit.sha})
    size = _size(content)
    headers = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "X-Repo-Commit": commit.sha,
        "ETag": f'"{_etag(content)}"',
    }
    if isinstance(content, LazyFile):
        headers |= {"X-Linked-Size": str(size), "X-Linked-Etag": f'"{content.sha256}"'}
    if call.method == "HEAD" or call.range is None:
        return _Reply(200, headers, _chunks(content, 0, size), size)
    span = _parse_range(call.range, size)
    if span is None:
        return _error(416, None, "Requested Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
    start, stop = span
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return _Reply(206, headers, _chunks(content, start, stop), stop - start)


def _safetensors_metadata(repo: FakeRepo, call: _Call) -> _Reply:
    """Every shard header of a sharded repo on main, in one answer. A broken index or shard header gets a 400 (what
    the real Hub answers then is not known)."""
    index_bytes = repo.files.get(call.file or "")
    if not isinstance(index_bytes, bytes):
        return _error(404, "EntryNotFound", f"{call.file} does not exist on \"main\"")
    parsed = _parse_index(index_bytes)
    if parsed is None:
        return _error(400, None, f"{call.file} is not a valid safetensors index")
    shard_names, index_json = parsed
    headers = []
    for name in shard_names:
        shard = repo.files.get(name)
        if not isinstance(shard, LazyFile) or shard.header is None:
            return _error(400, None, f"could not parse the safetensors header of {name}")
        headers.append(json.dumps(name).encode() + b":" + shard.header_json)
    # Spliced from stored JSON text: serialising DeepSeek's 270 decoded headers would take longer than a round trip.
    body = b'{"headers":{' + b",".join(headers) + b'},"index":' + index_json + b"}"
    return _Reply(200, {"Content-Type": "application/json; charset=utf-8"}, [body], len(body))


@lru_cache(maxsize=64)
def _parse_index(index_bytes: bytes) -> tuple[tuple[str, ...], bytes] | None:
    """A safetensors index's shard names and its JSON without the weight_map; None if it is broken. Cached (4 MB for
    DeepSeek-V3)."""
    try:
        index = json.loads(index_bytes)
        shard_names = tuple(sorted(set(index["weight_map"].values())))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return shard_names, json.dumps({k: v for k, v in index.items() if k != "weight_map"}).encode()


# --- helpers ----------------------------------------------------------------------------------------------------


def _json(obj: Any, status: int = 200) -> _Reply:
    body = json.dumps(obj).encode()
    return _Reply(status, {"Content-Type": "application/json; charset=utf-8"}, [body], len(body))


def _error(status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None) -> _Reply:
    """An error as the Hub sends it: `X-Error-Code` (what hf_raise_for_status maps), `X-Error-Message`, JSON body."""
    reply = _json({"error": message}, status)
    if code is not None:
        reply.headers["X-Error-Code"] = code
    reply.headers["X-Error-Message"] = message
    reply.headers |= headers or {}
    return reply


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """[start, stop) of a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range; None if malformed or unsatisfiable."""
    match = _RANGE.fullmatch(value.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:
        start, stop = max(size - int(last), 0), size
    else:
        start, stop = int(first), min(int(last) + 1, size) if last else size
    return (start, stop) if start < stop else None


def _chunks(content: Content, start: int, stop: int) -> Iterator[bytes | memoryview]:
    if isinstance(content, bytes):
        yield content[start:stop]
        return
    if start < len(content.head):
        yield content.head[start : min(stop, len(content.head))]
        start = len(content.head)
    while start < stop:
        n = min(len(_ZEROS), stop - start)
        yield _ZEROS[:n]
        start += n


def _size(content: Content) -> int:
    return len(content) if isinstance(content, bytes) else content.size


def _json_object(content: Content | None) -> dict[str, Any] | None:
    if not isinstance(content, bytes):
        return None
    try:
        decoded = json.loads(content)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(file: LazyFile) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{file.sha256}\nsize {file.size}\n".encode()


def _blob_id(content: Content) -> str:
    """The git object id: of the file itself, or of its LFS pointer."""
    return _git_blob_sha(content if isinstance(content, bytes) else _lfs_pointer(content))


def _etag(content: Content) -> str:
    return _git_blob_sha(content) if isinstance(content, bytes) else content.sha256


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakehub", description="Serve the fake Hub until stopped.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept before each response")
    parser.add_argument("--dataset", action="store_true", help="also serve the ../shared/hub-dataset models")
    args = parser.parse_args(argv)
    hub = FakeHub(latency=args.latency, port=args.port)
    for repo in fixture_repos() + (dataset_repos() if args.dataset else []):
        hub.add_repo(repo)
    with hub:
        print(hub.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
