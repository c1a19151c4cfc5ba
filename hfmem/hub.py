"""The only module that talks to the Hub: resolve a repo reference into a Snapshot.

Two sequential round trips per model: (1) model_info with file sizes gives the commit, the file list and the
gated flag, while config.json is fetched beside it (again, pinned, only if a push landed in between); (2) every
safetensors header, concurrently and pinned to that commit. A reference resolved before costs one request on
config.json (the commit it is served from names the cached snapshot), in the Hub's resolvers bucket rather than
the scarcer API one. A sharded repo on main has all its shard headers in
one request (the endpoint behind `get_sharded_safetensors_metadata`); elsewhere each shard header is a ranged
read (100 kB, plus one more only for a longer header). Weights are never downloaded. Resolved snapshots are kept
in the metadata cache (cache.py), keyed by commit. A gated repo whose files the token does not open resolves to what
model_info tells anyone (files, sizes, the Hub's parameter counts), and nothing cached is shown in its place. Where
a reference is resolved from (this module, the cache, huggingface_hub's downloads) is hfmem.sources' policy.

Every answer is untrusted (see untrusted.py): bodies are streamed and refused past their cap, a ranged read never
takes more than it asked for even from a server that ignores Range, commit ids and file names are checked before
they name a cache file or a URL, and one deadline bounds everything a model costs, retries and slow bodies
included. huggingface_hub provides the session, the headers (token, user agent) and the error types.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from huggingface_hub import constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import (
    build_hf_headers,
    get_session,
    hf_raise_for_status,
    parse_ratelimit_headers,
    validate_repo_id,
)

try:  # huggingface_hub 2.x ships its own httpx fork
    from httpx2 import Headers, RequestError, Response, TransportError
except ImportError:  # pragma: no cover
    from httpx import Headers, RequestError, Response, TransportError  # type: ignore[no-redef]

from .cache import MetadataCache
from .diffusers import MODEL_INDEX, is_pipeline_repo, read_pipeline
from .errors import (
    AccessDenied,
    BadResponse,
    ConfigError,
    HeaderError,
    HubUnavailable,
    ModelNotFound,
    NoUsableFiles,
    RevisionNotFound,
    TimedOut,
    UnsupportedModel,
)
from .gguf import GgufHeader, is_gguf_repo, open_repo, read_header
from .header import Header, ParsedOnce, header_from_dict, header_length, parse_header
from .peft import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_snapshot, is_adapter_repo
from .refs import ModelRef
from .sentence import MODULES, is_sentence_repo, no_root_transformer, read_sentence_model
from .snapshot import INDEX, SINGLE, PublicInfo, RepoFile, Snapshot, shard_names
from .untrusted import MAX_BYTES, MAX_FILES, MAX_LISTED, MAX_TENSORS, decode_json, is_commit, is_repo_path

RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_RATE_LIMITED = 100  # 429s one request may wait out (each within max_wait)
FIRST_READ = 100_001  # bytes of a safetensors file read first, as huggingface_hub does (~97% of headers fit)
# A sharded repo's bulk metadata request falls back to one read per shard only where the endpoint lacks it.
NO_BULK_API = {404, 405, 501}
# list_models' sort keys as the Hub's API names them (huggingface_hub sends no direction: the Hub sorts descending)
LISTED_FIELDS = ("sha", "gated", "siblings")  # what a listing says of each model: enough to skip its model_info
T = TypeVar("T")
Params = dict[str, Any] | list[tuple[str, Any]] | None  # a query, as httpx takes one


@dataclass(frozen=True)
class HubOptions:
    endpoint: str | None = None  # None: huggingface_hub's setting (HF_ENDPOINT)
    token: str | bool | None = None  # None: huggingface_hub's (HF_TOKEN, the token file); False: anonymous
    timeout: float = 10.0  # seconds a request may wait for the server to connect or send the next bytes
    attempts: int = 4  # per request, on 429 / 5xx / connection faults
    backoff: float = 0.5  # first wait when the server gives no Retry-After; doubles each time
    max_wait: float = 600.0  # seconds one model may wait for the Hub's rate limits and retries, in all
    deadline: float = 120.0  # seconds one model may take, rate-limit waits aside: every request and body
    # Told (seconds, bucket) when the Hub's rate limit for a bucket ("api", "resolvers") is spent and every request
    # to it waits for the window to reset; the CLI shows it on a terminal.
    on_wait: Callable[[float, str], None] | None = field(default=None, compare=False)

    @property
    def url(self) -> str:
        return self.endpoint or constants.ENDPOINT


@dataclass(frozen=True)
class Listing:
    """What model_info says about a repo at a revision, validated."""

    commit: str
    files: tuple[RepoFile, ...]
    gated: str | None  # "auto" / "manual"
    public: PublicInfo | None = None  # model_info's parameter counts and config summary (listings have none)


@dataclass(frozen=True)
class ListedModel:
    """A model of a Hub listing: its id, and what the listing says of its main branch (None when too little)."""

    repo_id: str
    listing: Listing | None


def list_models(
    options: HubOptions,
    *,
    author: str | None = None,
    search: str | None = None,
    filter: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> Iterator[ListedModel]:
    """The models of a Hub listing, asked for as huggingface_hub's list_models(..., expand=[sha, gated, siblings])
    asks (GET /api/models), page by page as the `Link: rel="next"` header leads, each page read when the one before
    is used up. At most `limit` models (and MAX_LISTED); each page is capped, each name checked, and a next page must
    be the endpoint's own /api/models. A page has the deadline and rate-limit waits a model has. `sort` is the
    listing's own field name (audit.SORTS maps the command line's)."""
    where = ModelRef("the Hub's model list")
    query = {"search": search, "author": author, "filter": filter, "sort": sort, "limit": limit}
    params: Params = [(k, v) for k, v in query.items() if v is not None] + [("expand", f) for f in LISTED_FIELDS]
    url: str | None = f"{options.url}/api/models"
    left = min(limit or MAX_LISTED, MAX_LISTED)
    while url is not None and left > 0:
        with _translated_errors(where, options):
            headers, body = _Client(options, where).get(url, "models", params=params)
        page = decode_json(body, where.text, BadResponse)
        del body
        if not isinstance(page, list):
            raise BadResponse(f"{where.text} is not a JSON array")
        # A page of 1,000 models decodes to some 8 MB of objects: each model's entry is let go once it is yielded,
        # so a page shrinks as the audit takes its models, and the next one is read only when it is used up.
        more = bool(page)
        del page[left:]
        left -= len(page)
        page.reverse()
        while page:
            yield _listed(page.pop())
        url, params = _next_page(url, headers, options.url) if more else None, None  # the link holds the query


def _listed(item: Any) -> ListedModel:
    """A listed model, its id checked; a model whose sha or files the listing lacks or garbles resolves alone."""
    repo_id = item.get("id") if isinstance(item, dict) else None
    if not _is_repo_id(repo_id):
        raise BadResponse("the Hub's model list holds an entry without a valid repo id")
    sha, siblings, gated = item.get("sha"), item.get("siblings"), item.get("gated")
    try:
        files = _files(repo_id, siblings) if is_commit(sha) else None
    except BadResponse:
        files = None
    gated = gated if gated in ("auto", "manual") else None
    return ListedModel(repo_id, Listing(sha, files, gated) if files is not None else None)


def _is_repo_id(value: Any) -> TypeGuard[str]:
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return isinstance(value, str)


def _next_page(url: str, headers: Headers, endpoint: str) -> str | None:
    """The next page's URL from the `Link` header: only ever the endpoint's own model list."""
    link = Response(200, headers=headers).links.get("next", {}).get("url")
    if link is None:
        return None
    target, expected = urlsplit(urljoin(url, link)), urlsplit(f"{endpoint}/api/models")
    if (target.scheme, target.netloc, target.path) != (expected.scheme, expected.netloc, expected.path):
        raise BadResponse(f"the Hub's model list leads to {target.scheme}://{target.netloc}{target.path}: refused")
    return target.geturl()


@dataclass(frozen=True)
class Variant:
    """--file / --quant: which GGUF variant of a repo to read."""

    file: str | None = None
    quant: str | None = None


def _resolve_online(
    ref: ModelRef,
    client: _Client,
    cache: MetadataCache,
    known: str | None,
    listed: Listing | None,
    variant: Variant,
    as_base: bool,
) -> Snapshot:
    """Ask the Hub; `known` is the commit this reference resolved to last time, if any; `listed` stands in for
    model_info, except for a repo without safetensors files (whose weights are counted from file sizes, which
    listings lack)."""
    repo_id = ref.repo_id
    assert repo_id is not None
    revision = ref.revision or constants.DEFAULT_REVISION
    if listed is not None and not any(f.format == "safetensors" for f in listed.files):
        listed = None
    with _translated_errors(ref, client.options):
        resolved_before = known is not None and not ref.pinned and listed is None
        if resolved_before and (hit := _still_cached(ref, client, cache, variant)):
            return hit
        with ThreadPoolExecutor(max_workers=16) as pool:
            # config.json travels beside the file listing; its X-Repo-Commit says whether it is that commit's.
            pinned = listed.commit if listed is not None else ref.revision
            early_config = pool.submit(client.file, repo_id, "config.json", pinned, "config")
            info = listed or client.listing(repo_id, ref.revision)
            commit = info.commit
            cache.save_commit(repo_id, revision, commit)
            if info.gated is not None and not _opens(early_config):  # a gated repo the token does not open
                return _public_only(ref, client, info if listed is None else client.listing(repo_id, commit))
            chosen = variant != Variant()
            names = {f.path for f in info.files}
            if hit := cache.load(ref, commit, file=variant.file, quant=variant.quant):
                return replace(hit, gated=info.gated)
            if is_adapter_repo(names):
                return _kept(cache, _resolve_adapter(ref, client, pool, info, names, as_base))
            if is_gguf_repo(info.files, chosen):
                gguf = open_repo(info.files, lambda name: client.gguf_header(repo_id, name, commit),
                                 file=variant.file, quant=variant.quant, read_all=pool.map)  # fmt: skip
                return _kept(cache, Snapshot(ref.name, repo_id, ref.revision, commit, "hub", info.files, {}, {},
                                             info.gated, gguf=gguf))  # fmt: skip
            if is_pipeline_repo(names):
                pipeline = read_pipeline(
                    client.file(repo_id, MODEL_INDEX, commit, "config")[1], names, ref.text,
                    lambda name: client.file(repo_id, name, commit, "config")[1],
                    lambda name: client.header(repo_id, name, commit), pool.map)  # fmt: skip
                return _kept(cache, Snapshot(ref.name, repo_id, ref.revision, commit, "hub", info.files, {}, {},
                                             info.gated, pipeline=pipeline))  # fmt: skip
            if "config.json" not in names:
                raise no_root_transformer(names, ref.text) or NoUsableFiles(
                    f"{ref.text} has no config.json (hfmem reads transformers-style repos)")
            on_main = ref.revision in (None, constants.DEFAULT_REVISION)
            headers = _read_headers(client, pool, repo_id, commit, names, on_main)
            config_commit, raw_config = early_config.result()
            if config_commit != commit:
                _, raw_config = client.file(repo_id, "config.json", commit, "config")
            config = decode_json(raw_config, f"{ref.text}: config.json", ConfigError)
            if not isinstance(config, dict):
                raise ConfigError(f"{ref.text}: config.json is not a JSON object")
            sentence = None
            if is_sentence_repo(names):
                sentence = read_sentence_model(
                    client.file(repo_id, MODULES, commit, "config")[1], names, ref.text,
                    lambda name: client.file(repo_id, name, commit, "config")[1],
                    lambda name: client.header(repo_id, name, commit), pool.map)  # fmt: skip
    snapshot = Snapshot(ref.name, repo_id, ref.revision, commit, "hub", info.files, config, headers, info.gated,
                        sentence=sentence)  # fmt: skip
    return _kept(cache, snapshot)


def _kept(cache: MetadataCache, snapshot: Snapshot) -> Snapshot:
    cache.save(snapshot)
    return snapshot


def _opens(config: Future[Any]) -> bool:
    """Whether the token opens the repo's files: config.json was not refused as gated (another fault is raised where
    config.json is read, or does not matter: an adapter or GGUF repo may have none)."""
    try:
        config.result()
    except GatedRepoError:
        return False
    except Exception:
        return True
    return True


def _public_only(ref: ModelRef, client: _Client, info: Listing) -> Snapshot:
    """A gated repo the token does not open: what model_info tells anyone (files and sizes, the Hub's parameter
    counts, config.json's model_type), read no further and not cached."""
    note = (f"gated, and {'this token has no access' if client.options.token else 'no token was given'}: shown "
            "from the Hub's public metadata only; with access (accept its terms at "
            f"{client.options.url}/{ref.repo_id}, then use a token) hfmem adds the architecture, exact headers and "
            "the memory estimate")  # fmt: skip
    return Snapshot(ref.name, ref.repo_id, ref.revision, info.commit, "hub", info.files, {}, {}, info.gated,
                    warnings=(note,), public=info.public or PublicInfo({}))  # fmt: skip


def _resolve_adapter(
    ref: ModelRef, client: _Client, pool: ThreadPoolExecutor, info: Listing, names: set[str], as_base: bool
) -> Snapshot:
    """A PEFT adapter repo: its config and weights header (the resolve chain adds its base model, hfmem.sources)."""
    repo_id = ref.repo_id
    assert repo_id is not None
    if as_base:
        raise UnsupportedModel(f"{ref.text}: the base model is itself an adapter (hfmem follows one level)")
    if ADAPTER_WEIGHTS not in names:
        raise NoUsableFiles(f"{ref.text}: an adapter repo without {ADAPTER_WEIGHTS}")
    config = pool.submit(client.file, repo_id, ADAPTER_CONFIG, info.commit, "config")
    header = client.header(repo_id, ADAPTER_WEIGHTS, info.commit)
    repo = Snapshot(ref.name, repo_id, ref.revision, info.commit, "hub", info.files, {}, {}, info.gated)
    return adapter_snapshot(config.result()[1], header, ref.text, repo)


def _still_cached(ref: ModelRef, client: _Client, cache: MetadataCache, variant: Variant) -> Snapshot | None:
    """A reference resolved before: the commit that config.json is served from now (a request in the Hub's
    resolvers bucket, not the scarcer API one), and that commit's snapshot if it is cached."""
    assert ref.repo_id is not None
    try:
        commit, _ = client.file(ref.repo_id, "config.json", ref.revision, "config")
    except GatedRepoError:
        return None  # what was cached with a token is not shown to a run without one: model_info decides
    except RemoteEntryNotFoundError as e:  # a GGUF or adapter repo: the Hub's 404 names the commit all the same
        # (huggingface_hub's file_download.py reads it there to cache a file's absence)
        commit = e.response.headers.get(constants.HUGGINGFACE_HEADER_X_REPO_COMMIT) if e.response is not None else None
    except HfHubHTTPError:
        return None  # the file moved or went: resolve in full
    if not is_commit(commit):
        return None
    hit = cache.load(ref, commit, file=variant.file, quant=variant.quant)
    if hit is not None:
        cache.save_commit(ref.repo_id, ref.revision or constants.DEFAULT_REVISION, commit)
    return hit


def _read_headers(
    client: _Client, pool: ThreadPoolExecutor, repo_id: str, commit: str, names: set[str], on_main: bool
) -> dict[str, Header]:
    """The headers of the files that make up the checkpoint: the index's shards, or model.safetensors."""
    root_files = sorted(n for n in names if n.endswith(".safetensors") and "/" not in n)
    if INDEX in names:
        if on_main:
            try:
                return _within_tensor_cap(repo_id, client.bulk_headers(repo_id, names))
            except HfHubHTTPError as e:
                if e.response is None or e.response.status_code not in NO_BULK_API:
                    raise
                # an endpoint without the bulk metadata API: read the shards one by one below
        # The index and every root-level header at once (one round trip), then keep the index's shards.
        index = pool.submit(client.file, repo_id, INDEX, commit, "index")
        headers = _read_files(client, pool, repo_id, commit, root_files)
        shards = shard_names(index.result()[1], f"{repo_id}: {INDEX}", names)
        headers.update(_read_files(client, pool, repo_id, commit, [s for s in shards if s not in headers]))
        return _within_tensor_cap(repo_id, {name: headers[name] for name in shards})
    if SINGLE in names:
        return _read_files(client, pool, repo_id, commit, [SINGLE])
    return _within_tensor_cap(repo_id, _read_files(client, pool, repo_id, commit, root_files))


def _read_files(
    client: _Client, pool: ThreadPoolExecutor, repo_id: str, commit: str, filenames: list[str]
) -> dict[str, Header]:
    return dict(zip(filenames, pool.map(lambda name: client.header(repo_id, name, commit), filenames)))


def _within_tensor_cap(repo_id: str, headers: dict[str, Header]) -> dict[str, Header]:
    tensors = sum(t.count for h in headers.values() for t in h.tensors)
    if tensors > MAX_TENSORS:
        raise HeaderError(f"{repo_id}: the checkpoint declares {tensors:,} tensors (limit {MAX_TENSORS:,})")
    return headers


# Bulk metadata answers are read and decoded one at a time, always by this one thread (the request itself is sent,
# and waited for, by the model's own): decoding holds the GIL, so doing several at once is no faster; an answer is
# the largest thing an audit holds (6 MB for DeepSeek-V3, some 40 MB of objects decoded); and the C allocator keeps
# what a thread freed for that thread's next allocations (glibc: an arena per thread, up to 8 per core), so reading
# and decoding in whichever worker asked left an answer's worth in each of them.
_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hfmem-decode")
# Sibling repos often hold byte-identical headers (DeepSeek-R1 and DeepSeek-V3; a base model and its instruct tune;
# a copy under another name): each distinct header, or bulk answer, is decoded and validated once per process.
# 20,000 tensor entries (some 6 MB) hold DeepSeek-V3's 1,806 ten times over, or a dense model's few hundred 50 times.
PARSED = ParsedOnce(max_entries=20_000)


def _tensor_entries(shards: dict[str, Header]) -> int:
    return sum(len(h.tensors) for h in shards.values())


def _only_listed(repo_id: str, shards: dict[str, Any], listed: set[str]) -> None:
    if any(not (is_repo_path(name) and name in listed) for name in shards):
        raise BadResponse(f"{repo_id}: the Hub's safetensors metadata names a file the repo does not hold")


class _Client:
    """One model's requests: streamed reads with a cap per kind of body, retries, and the model's deadline."""

    def __init__(self, options: HubOptions, ref: ModelRef) -> None:
        self.options, self.ref = options, ref
        self.deadline = time.monotonic() + options.deadline
        self.waited = 0.0  # seconds spent waiting for retries and rate limits

    def file_url(self, repo_id: str, filename: str, revision: str | None) -> str:
        """A file's resolve URL, as huggingface_hub's hf_hub_url builds it (without importing its file_download
        module, which brings yaml and filelock into every start-up)."""
        url = constants.HUGGINGFACE_CO_URL_TEMPLATE.format(
            repo_id=repo_id, revision=quote(revision or constants.DEFAULT_REVISION, safe=""), filename=quote(filename)
        )
        return self.options.url + url[len(constants.ENDPOINT) :]

    def listing(self, repo_id: str, revision: str | None) -> Listing:
        """model_info with file metadata: the commit, every file with its size, and the gated flag."""
        url = f"{self.options.url}/api/models/{repo_id}"
        if revision is not None:
            url += f"/revision/{quote(revision, safe='')}"
        answer = self.get(url, "listing", params={"blobs": True})[1]
        info = decode_json(answer, f"{repo_id}: the Hub's model info", BadResponse)
        if not isinstance(info, dict):
            raise BadResponse(f"{repo_id}: the Hub's model info is not a JSON object")
        if not is_commit(info.get("sha")):
            raise BadResponse(f"{repo_id}: the Hub's model info names no valid commit id")
        gated = info.get("gated")
        gated = gated if gated in ("auto", "manual") else None
        return Listing(info["sha"], _files(repo_id, info.get("siblings")), gated, _public_info(info))

    def file(self, repo_id: str, filename: str, revision: str | None, kind: str) -> tuple[str | None, bytes]:
        """(the commit the Hub served it from, its bytes): a small file of the repo, whole."""
        headers, body = self.get(self.file_url(repo_id, filename, revision), kind)
        return headers.get(constants.HUGGINGFACE_HEADER_X_REPO_COMMIT), body

    def header(self, repo_id: str, filename: str, commit: str) -> Header:
        """A safetensors file's header: its first 100 kB, then, for a longer header, its first 8 + N bytes."""
        url = self.file_url(repo_id, filename, commit)
        where = f"{repo_id}: {filename}"
        head = self.prefix(url, FIRST_READ)
        end = 8 + header_length(head, where)
        if end > len(head) == FIRST_READ:  # a shorter answer means the file ended: parse_header says so
            head = self.prefix(url, end)
        return PARSED.parse(head[:end], lambda: parse_header(head, where), lambda h: len(h.tensors))

    def bulk_headers(self, repo_id: str, listed: set[str]) -> dict[str, Header]:
        """Every shard header of a sharded repo on main in one request: the endpoint behind huggingface_hub's
        get_sharded_safetensors_metadata, read raw because that method's per-tensor objects cost more CPU than our
        validation of the same headers (0.15 s for DeepSeek-V3's 45k tensors, then a second conversion)."""
        url = f"{self.options.url}/api/models/{repo_id}/safetensors-metadata/{INDEX}"
        body = self._retrying(lambda: self._fetch(url, None, MAX_BYTES["metadata"], None, reader=_DECODER))[1]
        parse = lambda: self._bulk_headers(repo_id, body, listed)  # noqa: E731
        shards = _DECODER.submit(PARSED.parse, body, parse, _tensor_entries).result()
        _only_listed(repo_id, shards, listed)  # an answer parsed for another repo names that repo's files
        return dict(shards)

    @staticmethod
    def _bulk_headers(repo_id: str, body: bytes, listed: set[str]) -> dict[str, Header]:
        answer = decode_json(body, f"{repo_id}: the Hub's safetensors metadata", BadResponse)
        shards = answer.get("headers") if isinstance(answer, dict) else None
        if not isinstance(shards, dict) or not shards:
            raise BadResponse(f"{repo_id}: the Hub's safetensors metadata has no headers")
        _only_listed(repo_id, shards, listed)
        declared = sum(len(h) - ("__metadata__" in h) for h in shards.values() if isinstance(h, dict))
        if declared > MAX_TENSORS:
            raise HeaderError(f"{repo_id}: the checkpoint declares {declared:,} tensors (limit {MAX_TENSORS:,})")
        return {name: header_from_dict(header, f"{repo_id}: {name}", parsed_by_hub=True) for name, header in sorted(shards.items())}

    def get(self, url: str, kind: str, *, params: Params = None) -> tuple[Headers, bytes]:
        """GET `url`, retried; (headers, body), the body refused past MAX_BYTES[kind]."""
        return self._retrying(lambda: self._fetch(url, params, MAX_BYTES[kind], None))

    def prefix(self, url: str, length: int) -> bytes:
        """A file's first `length` bytes, asked for with Range and read no further, whatever the server sends."""
        return self._retrying(lambda: self._fetch(url, None, length, f"bytes=0-{length - 1}"))[1]

    def span(self, url: str, start: int, length: int) -> bytes:
        """`length` bytes of a file from `start` (fewer where the file ends), capped as prefix() caps them; an
        answer from another offset (a server that ignores Range) is refused."""
        try:
            headers, body = self._retrying(
                lambda: self._fetch(url, None, length, f"bytes={start}-{start + length - 1}")
            )
        except HfHubHTTPError as e:
            if e.response is not None and e.response.status_code == 416:  # nothing from `start` on
                return b""
            raise
        if start and not headers.get("Content-Range", "").startswith(f"bytes {start}-"):
            raise BadResponse(f"{self.ref.text}: a ranged read was answered from another offset")
        return body

    def gguf_header(self, repo_id: str, filename: str, commit: str) -> GgufHeader:
        """A GGUF file's header, read front to back in ranged reads that never reach its tensor data."""
        url = self.file_url(repo_id, filename, commit)
        return read_header(lambda offset, length: self.span(url, offset, length), f"{repo_id}: {filename}")

    def _fetch(self, url: str, params: Params, cap: int, byte_range: str | None, *,
               reader: ThreadPoolExecutor | None = None) -> tuple[Headers, bytes]:  # fmt: skip
        """One GET; its body read by `reader`'s thread when given (see _DECODER), else by this one."""
        headers = build_hf_headers(token=self.options.token)
        if byte_range is not None:
            headers["Range"] = byte_range
        bucket = "resolvers" if "/resolve/" in url else "api"
        self._pause(RATE_LIMITS.of(self.options.url).pause(bucket))
        timeout = min(self.options.timeout, self._left())
        with get_session().stream("GET", url, headers=headers, params=params, timeout=timeout) as response:
            RATE_LIMITS.of(self.options.url).note(bucket, response, self.options.on_wait)
            if response.status_code >= 400:
                hf_raise_for_status(self._buffered(response, self._read(response, MAX_BYTES["error"], True)))
            if reader is not None:
                return response.headers, reader.submit(self._read, response, cap, byte_range is not None).result()
            return response.headers, self._read(response, cap, byte_range is not None)

    def _read(self, response: Response, cap: int, truncate: bool) -> bytes:
        """The decoded body, at most `cap` bytes: cut there when `truncate`, else refused; and never past the
        deadline, however slowly the server sends."""
        stated = response.headers.get("Content-Length", "")
        if not truncate and stated.isdigit() and int(stated) > cap and "Content-Encoding" not in response.headers:
            raise BadResponse(f"{self.ref.text}: an answer of {int(stated):,} bytes is over hfmem's {cap:,}-byte limit")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= cap:
                if truncate:
                    return bytes(body[:cap])
                if len(body) > cap:
                    raise BadResponse(f"{self.ref.text}: an answer is over hfmem's {cap:,}-byte limit")
            self._left()
        return bytes(body)

    @staticmethod
    def _buffered(response: Response, body: bytes) -> Response:
        """An error answer rebuilt around the part of its body that was read, for hf_raise_for_status."""
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")}  # fmt: skip
        return Response(response.status_code, headers=headers, content=body, request=response.request)

    def _left(self) -> float:
        """Seconds left before the model's deadline; TimedOut when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimedOut(f"{self.ref.text}: no answer within {self.options.deadline:g} s (the Hub is too slow)")
        return left

    def _retrying(self, call: Callable[[], T]) -> T:
        """Call, retrying server errors and connection faults (backing off, honouring Retry-After) and rate limits
        (waiting for the window the Hub announces, which spends no attempt)."""
        attempt = limited = 0
        while True:
            try:
                return call()
            except (HfHubHTTPError, TransportError) as e:
                response = getattr(e, "response", None) if isinstance(e, HfHubHTTPError) else None
                if response is not None and response.status_code not in RETRY_STATUS:
                    raise
                announced = _announced_wait(response) if response is not None and response.status_code == 429 else None
                if announced and limited < MAX_RATE_LIMITED:
                    limited += 1
                    self._pause(announced, e)  # the window resets: no attempt spent
                    continue
                attempt += 1
                wait = _retry_after(response) if response is not None else None
                if wait is None:
                    wait = self.options.backoff * 2 ** (attempt - 1)
                if attempt >= self.options.attempts:
                    raise
                self._pause(wait, e, rate_limit=False)

    def _pause(self, seconds: float, cause: Exception | None = None, *, rate_limit: bool = True) -> None:
        """Wait `seconds`, within the model's max_wait. A rate-limit window moves the deadline on by as much (the
        Hub asked for the wait: it is not slowness); a retry's backoff must fit before the deadline."""
        if seconds <= 0:
            return
        if self.waited + seconds > self.options.max_wait:
            raise HubUnavailable(
                f"{self.ref.text}: the Hub asks to wait {seconds:g} s more, past the {self.options.max_wait:g} s this "
                "model may wait", hint="max_wait"
            ) from cause
        if not rate_limit and seconds >= self._left():
            raise TimedOut(f"{self.ref.text}: no answer within {self.options.deadline:g} s (the Hub keeps failing)"
                           ) from cause  # fmt: skip
        time.sleep(seconds)
        self.waited += seconds
        if rate_limit:
            self.deadline += seconds


class _RateLimits:
    """The Hub's rate limits, shared by every request of the process to one endpoint. The Hub counts requests per
    bucket in fixed windows and says on each answer how many are left and when the window resets (RateLimit,
    RateLimit-Policy; parsed by huggingface_hub); a 429 says when to come back (Retry-After). Once a bucket is spent,
    every request to it waits for the reset, so a batch slows down instead of failing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reopens: dict[tuple[str, str], float] = {}  # (endpoint, bucket) -> when requests may go again

    def of(self, endpoint: str) -> _EndpointLimits:
        return _EndpointLimits(self, endpoint)

    def forget(self) -> None:
        """Forget every window (a new run, or a test)."""
        with self._lock:
            self._reopens.clear()


@dataclass(frozen=True)
class _EndpointLimits:
    limits: _RateLimits
    endpoint: str

    def pause(self, bucket: str) -> float:
        """Seconds a request to `bucket` must wait now."""
        with self.limits._lock:
            return max(0.0, self.limits._reopens.get((self.endpoint, bucket), 0.0) - time.monotonic())

    def note(self, bucket: str, response: Response, on_wait: Callable[[float, str], None] | None) -> None:
        """Read an answer's rate-limit headers; when they say the bucket is spent, close it until the reset."""
        wait = _announced_wait(response)
        if wait is None:
            return
        key, reopens = (self.endpoint, bucket), time.monotonic() + wait
        with self.limits._lock:
            closing = reopens > self.limits._reopens.get(key, 0.0) + 1  # a new or longer pause
            if closing:
                self.limits._reopens[key] = reopens
        if closing and on_wait is not None:
            on_wait(wait, bucket)


RATE_LIMITS = _RateLimits()


def _announced_wait(response: Response) -> float | None:
    """Seconds the Hub says to wait before the next request to the bucket that answered: Retry-After on a 429, or
    the window's reset once no request is left in it; None when it says nothing of the kind."""
    info = parse_ratelimit_headers(response.headers)
    if response.status_code == 429:
        wait = _retry_after(response)
        return wait if wait else (float(info.reset_in_seconds) if info else None)
    return float(info.reset_in_seconds) if info is not None and info.remaining == 0 else None


def _files(repo_id: str, siblings: Any) -> tuple[RepoFile, ...]:
    """The listing's files, each a plain path with a non-negative size (or none)."""
    if not isinstance(siblings, list):
        raise BadResponse(f"{repo_id}: the Hub's model info has no file list")
    if len(siblings) > MAX_FILES:
        raise BadResponse(f"{repo_id}: the Hub lists {len(siblings):,} files (limit {MAX_FILES:,})")
    files = []
    for sibling in siblings:
        name = sibling.get("rfilename") if isinstance(sibling, dict) else None
        size = sibling.get("size") if isinstance(sibling, dict) else None
        if not is_repo_path(name):
            raise BadResponse(f"{repo_id}: the Hub's file list holds a name that is not a path inside the repo")
        if not (size is None or (type(size) is int and size >= 0)):
            raise BadResponse(f"{repo_id}: the Hub's file list gives {name} an invalid size")
        files.append(RepoFile(name, size))
    return tuple(files)


def _public_info(info: dict[str, Any]) -> PublicInfo:
    """model_info's `safetensors.parameters` (dtype -> count) and `config` summary, each kept only when well formed:
    they are shown as they are for a repo nothing else can be read of."""
    counted = info.get("safetensors")
    parameters = counted.get("parameters") if isinstance(counted, dict) else None
    if not (isinstance(parameters, dict) and len(parameters) <= MAX_DTYPES
            and all(_is_dtype(k) and type(v) is int and v >= 0 for k, v in parameters.items())):  # fmt: skip
        parameters = {}
    config = info.get("config")
    config = config if isinstance(config, dict) else {}
    model_type, architectures = config.get("model_type"), config.get("architectures")
    if not (isinstance(architectures, list) and len(architectures) <= MAX_DTYPES
            and all(isinstance(a, str) and a.isidentifier() for a in architectures)):  # fmt: skip
        architectures = []
    model_type = model_type if isinstance(model_type, str) and _MODEL_TYPE.fullmatch(model_type) else None
    return PublicInfo(dict(parameters), model_type, tuple(architectures))


def _is_dtype(name: Any) -> bool:
    return isinstance(name, str) and _DTYPE.fullmatch(name) is not None


_DTYPE = re.compile(r"[A-Z0-9_]{1,16}")  # safetensors dtype names: BF16, F8_E4M3, ...
_MODEL_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_DTYPES = 64  # entries of model_info's per-dtype counts or architectures list kept


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        wait = float(value) if value is not None else None
    except ValueError:
        return None
    return None if wait is None or wait != wait else max(0.0, wait)  # NaN reads as no advice


@contextmanager
def _translated_errors(ref: ModelRef, options: HubOptions) -> Iterator[None]:
    """Map huggingface_hub's and the HTTP client's exceptions onto ours, subclasses first."""
    name = ref.text
    try:
        yield
    except GatedRepoError as e:
        raise AccessDenied(
            f"{name} is gated: accept its terms at {options.url}/{ref.repo_id}, then use a token", hint="token"
        ) from e
    except RevisionNotFoundError as e:
        raise RevisionNotFound(f"{ref.repo_id} has no revision '{ref.revision}'") from e
    except RepositoryNotFoundError as e:
        raise ModelNotFound(
            f"{ref.repo_id} was not found on {options.url} (if it is private, a token is needed)", hint="token"
        ) from e
    except RemoteEntryNotFoundError as e:
        raise NoUsableFiles(f"{name}: a file listed by the Hub could not be found ({e.response.url})") from e
    except OfflineModeIsEnabled as e:
        raise HubUnavailable(f"{name}: HF_HUB_OFFLINE is set and the model is not in the local cache") from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise AccessDenied(f"{name}: access denied ({status}); check your token", hint="token") from e
        raise HubUnavailable(f"{name}: the Hub at {options.url} answered {status} after retries") from e
    except TransportError as e:
        raise HubUnavailable(f"{name}: cannot reach the Hub at {options.url} ({e.__class__.__name__}: {e})") from e
    except RequestError as e:  # a redirect loop, a body that does not decode: the answer, not the network
        raise BadResponse(f"{name}: the Hub at {options.url} sent an unusable answer ({e.__class__.__name__})") from e
