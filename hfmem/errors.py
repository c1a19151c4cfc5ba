"""Every exception hfmem raises. Messages are one line, shown to the user as they are; what the user can do about
one is its `hint`, a key the command line words with its own flags (views.text.HINTS)."""

from __future__ import annotations


class HfmemError(Exception):
    """Base class: a problem to report to the user, never a traceback."""

    code = "error"

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ModelRefError(HfmemError, ValueError):
    """The model reference cannot be parsed."""

    code = "bad_reference"


class ResolveError(HfmemError):
    """The model could not be resolved on the Hub or on disk."""

    code = "unresolved"


class ModelNotFound(ResolveError):
    code = "not_found"


class RevisionNotFound(ModelNotFound):
    code = "revision_not_found"


class AccessDenied(ResolveError):
    """Gated or private repo without (sufficient) credentials."""

    code = "gated"


class HubUnavailable(ResolveError):
    """Network fault, timeout, rate limit or server error after retries; or offline with nothing cached."""

    code = "network"


class BadResponse(ResolveError):
    """The Hub (or whatever answers at HF_ENDPOINT) sent an answer hfmem refuses: malformed, too large, too slow,
    or naming a commit or a path that cannot be one."""

    code = "bad_response"


class TimedOut(HubUnavailable):
    """The model's deadline passed: the Hub answered too slowly, or asked to wait too long."""

    code = "timeout"


class NoUsableFiles(ResolveError):
    """No config.json, or no weights we can read."""

    code = "no_weights"


class ConfigError(ResolveError):
    """config.json is not valid JSON, or not an object."""

    code = "bad_config"


class HeaderError(ResolveError):
    """A safetensors header is truncated, too large or malformed."""

    code = "bad_header"


class GgufError(HeaderError):
    """A GGUF header is truncated, too large or malformed."""

    code = "bad_gguf"


class GgufChoiceError(ResolveError):
    """--file or --quant names no GGUF variant of the repo, or several, or none was named and several exist.
    `choices` lists the names that would pick one."""

    code = "gguf_choice"

    def __init__(self, message: str, choices: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.choices = choices


class UnsupportedModel(HfmemError):
    """The config lacks what the memory model needs."""

    code = "unsupported"


class Interrupted(BaseException):
    """A signal (SIGINT, SIGTERM or SIGHUP) asked hfmem to stop. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` (a model's failure becoming a row) swallows it; the command line exits with 128 + `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def error_fields(error: Exception) -> dict[str, str]:
    """{"type", "message"} of a failure: an HfmemError's code, or "internal" for any other exception (a bug); and
    its "hint" key when it has one."""
    if isinstance(error, HfmemError):
        return {"type": error.code, "message": str(error), **({"hint": error.hint} if error.hint else {})}
    return {"type": "internal", "message": f"internal error: {error.__class__.__name__}: {error}"}
