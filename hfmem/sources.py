"""Where a model reference resolves: four sources behind one interface, and the one chain that holds the policy.

    HubSource        the Hub (hub.py: model_info, config.json, headers), which also keeps what it read in the cache
    CacheSource      hfmem's metadata cache (cache.py), keyed by commit
    DownloadsSource  what huggingface_hub downloaded before (from_pretrained, `hf download`), read as a directory
    LocalDirectory   a directory given as the reference (local.py)

`resolve` is the chain. A local path goes to the local reader. A repo id: a commit known to the cache answers from
it without a request when the commit is pinned (by the reference, or by a listing that says the repo is ungated)
and the repo was not gated when cached; offline (HF_HUB_OFFLINE) the cache answers, then the downloads; otherwise
the Hub, and when the Hub is down, unreachable or keeps failing, the cache (a gated repo's entry only to a run with a
token) and then the downloads answer with a warning naming the fault. An adapter's base model resolves through the
same chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from huggingface_hub import constants, get_token

from .cache import MetadataCache
from .errors import HfmemError, HubUnavailable, ModelNotFound, UnsupportedModel
from .hub import HubOptions, Listing, Variant, _Client, _resolve_online
from .local import local_adapter, read_snapshot
from .refs import ModelRef
from .snapshot import Snapshot
from .untrusted import is_commit


@dataclass(frozen=True)
class Request:
    """What a resolution may use besides the reference."""

    hub: HubOptions = field(default_factory=HubOptions)
    listed: Listing | None = None  # what a Hub listing said of the repo's main branch: pins the commit
    variant: Variant = Variant()  # --file / --quant: the GGUF variant
    as_base: bool = False  # resolving an adapter's base, which may not be an adapter again
    known: str | None = None  # the commit the reference resolved to last time (the chain fills it in)


class Source(Protocol):
    """A place a reference may resolve from: a Snapshot (its `source` is the source's name), None when the source
    does not hold the model, or an HfmemError when it holds it wrongly or cannot be asked."""

    name: str

    def resolve(self, ref: ModelRef, request: Request) -> Snapshot | None: ...


class HubSource:
    name = "hub"

    def resolve(self, ref: ModelRef, request: Request) -> Snapshot | None:
        return _resolve_online(ref, _Client(request.hub, ref), MetadataCache.default(), request.known, request.listed,
                               request.variant, request.as_base)  # fmt: skip


@dataclass(frozen=True)
class CacheSource:
    cache: MetadataCache = field(default_factory=MetadataCache.default)
    name = "cache"

    def known(self, ref: ModelRef, request: Request) -> str | None:
        """The commit the reference names or resolved to last time: pinned, listed, or a cached branch or tag."""
        assert ref.repo_id is not None
        if request.listed is not None:
            return request.listed.commit
        if ref.pinned:
            return ref.revision
        return self.cache.commit(ref.repo_id, ref.revision or constants.DEFAULT_REVISION)

    def resolve(self, ref: ModelRef, request: Request) -> Snapshot | None:
        variant = request.variant
        known = request.known
        return self.cache.load(ref, known, file=variant.file, quant=variant.quant) if known is not None else None


class DownloadsSource:
    name = "hub-cache"

    def resolve(self, ref: ModelRef, request: Request) -> Snapshot | None:
        """The model as huggingface_hub downloaded it before, read from its snapshot folder in the hub cache; None
        when its config.json was never downloaded."""
        from huggingface_hub import try_to_load_from_cache  # file_download: imported only when this source is asked

        assert ref.repo_id is not None
        config = try_to_load_from_cache(ref.repo_id, "config.json", revision=ref.revision)
        if not isinstance(config, str):
            return None
        folder = Path(config).parent
        snapshot = read_snapshot(replace(ref, path=folder))
        note = "offline: read from huggingface_hub's downloads, which list only the files downloaded"
        commit = folder.name if is_commit(folder.name) else None
        return replace(snapshot, model=ref.name, repo_id=ref.repo_id, revision=ref.revision, commit=commit,
                       source=self.name, warnings=(note,))  # fmt: skip


class LocalDirectory:
    name = "local"

    def resolve(self, ref: ModelRef, request: Request) -> Snapshot | None:
        """A checkpoint or GGUF directory, or a training run's adapter directory (whose base is on the Hub)."""
        return local_adapter(ref) or read_snapshot(ref, file=request.variant.file, quant=request.variant.quant)


def resolve(ref: ModelRef, request: Request | None = None) -> Snapshot:
    """The snapshot `ref` resolves to, by the policy above; an adapter's with its base model. Raises an HfmemError
    subclass for every failure."""
    request = request or Request()
    if ref.path is not None:
        found = LocalDirectory().resolve(ref, request)
        assert found is not None
        return _with_base(found, request)
    return _with_base(_repo(ref, request), request)


def _repo(ref: ModelRef, request: Request) -> Snapshot:
    cache, downloads = CacheSource(), DownloadsSource()
    request = replace(request, known=cache.known(ref, request))
    offline = constants.HF_HUB_OFFLINE
    if offline or ref.pinned or request.listed is not None:
        hit = cache.resolve(ref, request)
        # What was cached of a gated repo (with a token) is shown only to a run the Hub lets in, or offline.
        if hit is not None and (offline or _ungated(hit, request)):
            return hit
    if offline:
        if found := downloads.resolve(ref, request):
            return found
        raise HubUnavailable(
            f"{ref.text}: HF_HUB_OFFLINE is set and the model is neither in hfmem's cache nor downloaded"
        )
    try:
        found = HubSource().resolve(ref, request)
        assert found is not None
        return found
    except HubUnavailable as e:  # down, unreachable or rate-limiting: an answer from disk beats an error
        try:
            kept = cache.resolve(ref, request)
            if kept is not None and kept.gated and not _has_token(request.hub):
                kept = None  # cached with a token: no run without one sees it while the Hub cannot say
            kept = kept or downloads.resolve(ref, request)
        except HfmemError:  # an incomplete download: the Hub's fault is the one to report
            kept = None
        if kept is None:
            raise e
        warning = f"{e}: showing what was resolved before (commit {kept.commit and kept.commit[:12]})"
        return replace(kept, warnings=(*kept.warnings, warning))


def _has_token(options: HubOptions) -> bool:
    """Whether requests carry a token: the one given, else huggingface_hub's (HF_TOKEN, the token file)."""
    return options.token is not False and bool(options.token or get_token())


def _ungated(hit: Snapshot, request: Request) -> bool:
    """A cached snapshot anyone may see: the listing says the repo is ungated now, or, for a pinned commit, it was
    not gated when cached."""
    if request.listed is not None:
        return request.listed.gated is None
    return hit.gated is None


def _with_base(snapshot: Snapshot, request: Request) -> Snapshot:
    """An adapter repo's snapshot (as a source answers it: adapter_config.json and the adapter's header) becomes its
    base model's, resolved through the chain, with the adapter's identity and the adapter; anything else is as it
    is."""
    adapter = snapshot.adapter
    if adapter is None:
        return snapshot
    if request.as_base:
        raise UnsupportedModel(f"{snapshot.model}: the base model is itself an adapter (hfmem follows one level)")
    base = ModelRef(adapter.base_model, adapter.base_model, adapter.base_revision)
    try:
        resolved = resolve(base, Request(hub=request.hub, as_base=True))
    except ModelNotFound as e:  # say whose base it is: a name like "llama-base" may be a folder on another machine
        raise type(e)(f"{snapshot.model}: the adapter's base model: {e}") from e
    return replace(resolved, adapter=adapter, model=snapshot.model, repo_id=snapshot.repo_id,
                   revision=snapshot.revision, commit=snapshot.commit, source=snapshot.source,
                   warnings=(*snapshot.warnings, *resolved.warnings))  # fmt: skip
