"""Model references: "ORG/NAME", "NAME", "ORG/NAME@REVISION", a Hub URL, or a local directory (pure; no network)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .errors import ModelRefError
from .untrusted import is_commit, without_credentials

MAX_REFERENCE_CHARS = 4096  # PATH_MAX: no repo id, URL or directory is longer


@dataclass(frozen=True)
class ModelRef:
    text: str  # the reference as the user wrote it, less a URL's credentials (without_credentials)
    repo_id: str | None = None
    revision: str | None = None  # None: the repo's default branch
    path: Path | None = None  # a local directory

    @property
    def pinned(self) -> bool:
        """True when the revision is a full commit sha, whose contents never change."""
        return is_commit(self.revision)

    @property
    def name(self) -> str:
        """How reports name the model: the repo id (its revision is shown apart), or the directory as given."""
        return self.repo_id or self.text


def parse_ref(text: str, revision: str | None = None) -> ModelRef:
    """Parse a reference; `revision` (from --revision) applies when the text names none, and one that names
    another is an error."""
    text = without_credentials(text.strip())
    if not text:
        raise ModelRefError("empty model reference")
    if len(text) > MAX_REFERENCE_CHARS:
        raise ModelRefError(f"a model reference of {len(text):,} characters (at most {MAX_REFERENCE_CHARS:,})")
    path_like = text.startswith(("./", "../", "/", "~"))
    path = _directory(text)
    if path is not None and (path_like or (path / "config.json").is_file()):
        return ModelRef(text, path=path)
    if path_like:
        raise ModelRefError(f"'{text}' is not a directory")
    repo_id, at, rev = _strip_url(text).partition("@")
    if at and not rev:
        raise ModelRefError(f"'{text}': nothing after '@' (expected ORG/NAME@REVISION)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ModelRefError(f"'{text}' is not a Hub repo id (expected ORG/NAME or ORG/NAME@REVISION)") from None
    if rev and revision and rev != revision:
        raise ModelRefError(f"'{text}' names revision '{rev}' but revision '{revision}' was asked for: give one")
    return ModelRef(text, repo_id=repo_id, revision=rev or revision)


def _directory(text: str) -> Path | None:
    """`text` as an existing directory, or None (also for a name the system refuses, or ~user for no such user)."""
    try:
        path = Path(text).expanduser()
        return path if path.is_dir() else None
    except (OSError, RuntimeError):  # a name or part too long; RuntimeError: an unknown ~user
        return None


def _strip_url(text: str) -> str:
    """'https://host/ORG/NAME/tree/REV' -> 'ORG/NAME@REV'; anything else unchanged."""
    if not text.startswith(("http://", "https://")):
        return text
    try:
        path = urlparse(text).path
    except ValueError:  # an unbalanced '[' in the host
        raise ModelRefError(f"'{text}' is not a URL hfmem reads") from None
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 4 and parts[2] in ("tree", "blob", "resolve"):
        return f"{parts[0]}/{parts[1]}@{parts[3]}"
    return "/".join(parts[:2])
