"""The only module that talks to the Hub: resolve a repo reference into a Snapshot.

Two sequential round trips per model: (1) model_info with file sizes gives the commit, the file list and the
gated flag, while config.json is fetched beside it (again, pinned, only if a push landed in between); (2) every
safetensors header, concurrently and pinned to that commit. A sharded repo on main has all its shard headers in
one request (the endpoint behind `get_sharded_safetensors_metadata`); elsewhere each shard header is a ranged
read (100 kB, plus one more only for a longer header). Weights are never downloaded. Resolved snapshots are kept
in the metadata cache (cache.py), keyed by commit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from huggingface_hub import HfApi, ModelInfo, constants, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    SafetensorsParsingError,
)
from huggingface_hub.utils import SafetensorsFileMetadata, build_hf_headers, get_session, hf_raise_for_status

try:  # huggingface_hub 2.x ships its own httpx fork
    from httpx2 import Response, TransportError
except ImportError:  # pragma: no cover
    from httpx import Response, TransportError  # type: ignore[no-redef]

from .cache import MetadataCache
from .errors import (
    AccessDenied,
    ConfigError,
    HeaderError,
    HfmemError,
    HubUnavailable,
    ModelNotFound,
    NoUsableFiles,
    RevisionNotFound,
)
from .header import Header, header_from_dict
from .local import read_snapshot
from .refs import ModelRef
from .snapshot import INDEX, SINGLE, RepoFile, Snapshot

RETRY_STATUS = {429, 500, 502, 503, 504}
T = TypeVar("T")


@dataclass(frozen=True)
class HubOptions:
    endpoint: str | None = None  # None: huggingface_hub's setting (HF_ENDPOINT)
    token: str | bool | None = None  # None: huggingface_hub's (HF_TOKEN, the token file); False: anonymous
    timeout: float = 10.0  # seconds per request
    attempts: int = 4  # per request, on 429 / 5xx / connection faults
    backoff: float = 0.5  # first wait when the server gives no Retry-After; doubles each time
    max_wait: float = 30.0  # total seconds one request may spend waiting between attempts

    @property
    def url(self) -> str:
        return self.endpoint or constants.ENDPOINT


def fetch_snapshot(ref: ModelRef, options: HubOptions) -> Snapshot:
    """Resolve `ref` on the Hub, or from the metadata cache. Raises an HfmemError subclass for every failure.

    A pinned commit found in the cache needs no request; a branch or tag resolved before costs one small sha lookup
    when its commit is cached; in offline mode (HF_HUB_OFFLINE) there is the cache, then what huggingface_hub
    downloaded before. When the Hub cannot be reached or keeps failing, the same two answer, with a warning.
    """
    assert ref.repo_id is not None
    cache = MetadataCache.default()
    known = ref.revision if ref.pinned else cache.commit(ref.repo_id, ref.revision or constants.DEFAULT_REVISION)
    if known is not None and (ref.pinned or constants.HF_HUB_OFFLINE) and (hit := cache.load(ref, known)):
        return hit
    if constants.HF_HUB_OFFLINE:
        if downloaded := _downloaded(ref):
            return downloaded
        raise HubUnavailable(
            f"{ref.text}: HF_HUB_OFFLINE is set and the model is neither in hfmem's cache nor downloaded"
        )
    try:
        return _resolve_online(ref, options, cache, known)
    except HubUnavailable as e:  # down, unreachable or rate-limiting: an answer from disk beats an error
        try:
            kept = (cache.load(ref, known) if known is not None else None) or _downloaded(ref)
        except HfmemError:  # an incomplete download: the Hub's fault is the one to report
            kept = None
        if kept is None:
            raise e
        warning = f"{e}: showing what was resolved before (commit {kept.commit and kept.commit[:12]})"
        return replace(kept, warnings=(*kept.warnings, warning))


def _resolve_online(ref: ModelRef, options: HubOptions, cache: MetadataCache, known: str | None) -> Snapshot:
    """Ask the Hub; `known` is the commit this reference resolved to last time, if any."""
    repo_id = ref.repo_id
    assert repo_id is not None
    revision = ref.revision or constants.DEFAULT_REVISION
    api = HfApi(endpoint=options.endpoint, token=options.token)
    with _translated_errors(ref, options):
        if known is not None and not ref.pinned:
            # Resolved before: look up the sha alone; if that commit is cached, nothing else is needed.
            latest = _retrying(
                lambda: api.model_info(repo_id, revision=ref.revision, expand=["sha", "gated"], timeout=options.timeout),
                options,
            )
            if latest.sha and (hit := cache.load(ref, latest.sha)):
                if latest.sha != known:
                    cache.save_commit(repo_id, revision, latest.sha)
                return replace(hit, gated=_gated(latest))
        with ThreadPoolExecutor(max_workers=16) as pool:
            # config.json travels beside the file listing; its X-Repo-Commit says whether it is that commit's.
            early_config = pool.submit(_get_file, repo_id, "config.json", ref.revision, options)
            info = _retrying(
                lambda: api.model_info(repo_id, revision=ref.revision, files_metadata=True, timeout=options.timeout),
                options,
            )
            commit = info.sha
            if commit is not None:
                cache.save_commit(repo_id, revision, commit)
                if hit := cache.load(ref, commit):
                    return replace(hit, gated=_gated(info))
            files = tuple(RepoFile(s.rfilename, s.size) for s in info.siblings or ())
            names = {f.path for f in files}
            if "config.json" not in names:
                raise NoUsableFiles(f"{ref.text} has no config.json (hfmem reads transformers-style repos)")
            on_main = ref.revision in (None, constants.DEFAULT_REVISION)
            headers = _read_headers(api, pool, repo_id, commit, names, on_main, options)
            response = early_config.result()
            if commit is not None and response.headers.get(constants.HUGGINGFACE_HEADER_X_REPO_COMMIT) != commit:
                response = _get_file(repo_id, "config.json", commit, options)
            config = _decode_config(ref, response.content)
    snapshot = Snapshot(ref.text, repo_id, ref.revision, commit, "hub", files, config, headers, _gated(info))
    if commit is not None:
        cache.save(snapshot)
    return snapshot


def _gated(info: ModelInfo) -> str | None:
    return info.gated if isinstance(info.gated, str) else None


def _read_headers(
    api: HfApi, pool: ThreadPoolExecutor, repo_id: str, commit: str | None, names: set[str], on_main: bool,
    options: HubOptions,
) -> dict[str, Header]:
    """The headers of the files that make up the checkpoint: the index's shards, or model.safetensors."""
    root_files = sorted(n for n in names if n.endswith(".safetensors") and "/" not in n)
    if INDEX in names:
        if on_main:
            try:
                return _sharded_headers(repo_id, options)
            except GatedRepoError:
                raise
            except HfHubHTTPError:
                pass  # an endpoint without the bulk metadata API: read the shards one by one below
        # The index and every root-level header at once (one round trip), then keep the index's shards.
        index = pool.submit(_get_file, repo_id, INDEX, commit, options)
        headers = _read_files(api, pool, repo_id, commit, root_files, options)
        try:
            shards = set(json.loads(index.result().content)["weight_map"].values())
        except (ValueError, KeyError, TypeError) as e:
            raise HeaderError(f"{repo_id}: {INDEX} is not a valid index") from e
        missing = shards - headers.keys()
        headers.update(_read_files(api, pool, repo_id, commit, sorted(missing), options))
        return {name: headers[name] for name in sorted(shards)}
    if SINGLE in names:
        return _read_files(api, pool, repo_id, commit, [SINGLE], options)
    return _read_files(api, pool, repo_id, commit, root_files, options)


def _read_files(
    api: HfApi, pool: ThreadPoolExecutor, repo_id: str, commit: str | None, filenames: list[str], options: HubOptions
) -> dict[str, Header]:
    def read(filename: str) -> Header:
        meta = _retrying(
            lambda: api.parse_safetensors_file_metadata(repo_id, filename, revision=commit, timeout=options.timeout),
            options,
        )
        return _to_header(filename, meta)

    return dict(zip(filenames, pool.map(read, filenames)))


def _to_header(filename: str, meta: SafetensorsFileMetadata) -> Header:
    decoded: dict[str, object] = {
        name: {"dtype": t.dtype, "shape": t.shape, "data_offsets": list(t.data_offsets)}
        for name, t in meta.tensors.items()
    }
    decoded["__metadata__"] = meta.metadata
    return header_from_dict(decoded, filename)


def _sharded_headers(repo_id: str, options: HubOptions) -> dict[str, Header]:
    """Every shard header of a sharded repo on main in one request: the endpoint behind huggingface_hub's
    get_sharded_safetensors_metadata, read raw because that method's per-tensor objects cost more CPU than our
    validation of the same headers (0.15 s for DeepSeek-V3's 45k tensors, then a second conversion)."""
    response = _get(f"{options.url}/api/models/{repo_id}/safetensors-metadata/{INDEX}", options)
    try:
        shards = response.json()["headers"]
        return {name: header_from_dict(header, name) for name, header in shards.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise HeaderError(f"{repo_id}: the Hub's safetensors metadata is malformed ({e.__class__.__name__})") from e


def _get_file(repo_id: str, filename: str, revision: str | None, options: HubOptions) -> Response:
    """A small file of the repo, whole."""
    return _get(hf_hub_url(repo_id, filename, revision=revision, endpoint=options.endpoint), options)


def _get(url: str, options: HubOptions) -> Response:
    headers = build_hf_headers(token=options.token)

    def get() -> Response:
        response = get_session().get(url, headers=headers, timeout=options.timeout)
        hf_raise_for_status(response)
        return response

    return _retrying(get, options)


def _decode_config(ref: ModelRef, raw: bytes) -> dict:
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{ref.text}: config.json is not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise ConfigError(f"{ref.text}: config.json is not a JSON object")
    return config


def _downloaded(ref: ModelRef) -> Snapshot | None:
    """The model as huggingface_hub downloaded it before (from_pretrained, `hf download`), read from its snapshot
    folder in the hub cache; None when its config.json was never downloaded."""
    assert ref.repo_id is not None
    config = try_to_load_from_cache(ref.repo_id, "config.json", revision=ref.revision)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    snapshot = read_snapshot(replace(ref, path=folder))
    note = "offline: read from huggingface_hub's downloads, which list only the files downloaded"
    return replace(
        snapshot, repo_id=ref.repo_id, revision=ref.revision, commit=folder.name, source="hub-cache", warnings=(note,)
    )


def _retrying(call: Callable[[], T], options: HubOptions) -> T:
    """Call, retrying rate limits (honouring Retry-After), server errors and connection faults."""
    waited = 0.0
    for attempt in range(1, options.attempts + 1):
        try:
            return call()
        except (HfHubHTTPError, TransportError) as e:
            response = getattr(e, "response", None) if isinstance(e, HfHubHTTPError) else None
            if response is not None and response.status_code not in RETRY_STATUS:
                raise
            wait = _retry_after(response) if response is not None else None
            if wait is None:
                wait = options.backoff * 2 ** (attempt - 1)
            if attempt == options.attempts or waited + wait > options.max_wait:
                raise
            time.sleep(wait)
            waited += wait
    raise AssertionError("unreachable")


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@contextmanager
def _translated_errors(ref: ModelRef, options: HubOptions) -> Iterator[None]:
    """Map huggingface_hub's exceptions onto ours, subclasses first."""
    name = ref.text
    try:
        yield
    except GatedRepoError as e:
        raise AccessDenied(
            f"{name} is gated: accept its terms at {options.url}/{ref.repo_id}, then log in (`hf auth login`), "
            "set HF_TOKEN or pass --token"
        ) from e
    except RevisionNotFoundError as e:
        raise RevisionNotFound(f"{ref.repo_id} has no revision '{ref.revision}'") from e
    except RepositoryNotFoundError as e:
        raise ModelNotFound(
            f"{ref.repo_id} was not found on {options.url} (if it is private, set HF_TOKEN or pass --token)"
        ) from e
    except RemoteEntryNotFoundError as e:
        raise NoUsableFiles(f"{name}: a file listed by the Hub could not be found ({e.response.url})") from e
    except SafetensorsParsingError as e:
        raise HeaderError(f"{name}: {str(e).splitlines()[0]}") from e
    except OfflineModeIsEnabled as e:
        raise HubUnavailable(f"{name}: HF_HUB_OFFLINE is set and the model is not in the local cache") from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise AccessDenied(f"{name}: access denied ({status}); check your token (HF_TOKEN or --token)") from e
        raise HubUnavailable(f"{name}: the Hub at {options.url} answered {status} after retries") from e
    except TransportError as e:
        raise HubUnavailable(f"{name}: cannot reach the Hub at {options.url} ({e.__class__.__name__}: {e})") from e
