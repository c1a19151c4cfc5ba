"""What hfmem accepts from outside, in one place: how much of each kind of body is read, what a commit id or a
path named by a repo's own files may be, how remote JSON is decoded, and what remote text may reach a terminal or
a spreadsheet.

A repo's files are written by whoever owns the repo, and an endpoint (HF_ENDPOINT, a mirror, a proxy) can answer
anything. So every body is read as a stream and refused past its cap, every name a repo's files give is checked
before it becomes a URL or a local path, and remote strings are cleaned where they are shown (pure; no I/O).
"""

from __future__ import annotations

import json
import re
import reprlib
from typing import Any, TypeGuard

from .errors import HfmemError

KiB, MiB = 2**10, 2**20

# The most bytes read of each kind of body (decoded, so a compressed bomb stops here too); past it the read stops
# and the model fails with a typed error. Each is far above the largest real one seen on the Hub.
MAX_BYTES = {
    "config": 8 * MiB,  # config.json: the largest real ones (label maps) are about 1 MB
    "index": 32 * MiB,  # model.safetensors.index.json: DeepSeek-V3's 91k-entry weight map is 8.9 MB
    "listing": 32 * MiB,  # model_info with file metadata: ~300 B per file
    "metadata": 32 * MiB,  # every shard header in one answer: DeepSeek-V3's 45k tensors are ~6 MB
    "models": 32 * MiB,  # a page of the Hub's model list (up to 1,000 models, each with its file names)
    "error": 64 * KiB,  # the body of an error answer, read only for its message
}
MAX_FILES = 100_000  # files one repo may list
MAX_LISTED = 100_000  # models one Hub listing may give (an organisation with more: narrow it, or --limit)
MAX_TENSORS = 500_000  # tensors one checkpoint may declare, over all its shards
MAX_PATH_CHARS = 1_000

COMMIT = re.compile(r"[0-9a-f]{40}")
# C0 and C1 control characters, DEL, and the bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
_LINE_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x85\u2028\u2029]+")
# A URL's userinfo (https://user:token@host/...): everything between the scheme and the last '@' before the path.
_USERINFO = re.compile(r"^(https?://)[^/?#]*@", re.IGNORECASE)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_commit(value: object) -> TypeGuard[str]:
    """A full commit id: 40 lowercase hex digits (the only shape a cache file or folder may be named by)."""
    return isinstance(value, str) and COMMIT.fullmatch(value) is not None


def is_repo_path(name: object) -> TypeGuard[str]:
    """A plain relative path inside a repo: '/'-separated, no empty, '.' or '..' part, no backslash, no control
    character. Shard names from an index and file names from a listing must be such paths before they become a URL
    or a local path."""
    if not isinstance(name, str) or not name or len(name) > MAX_PATH_CHARS:
        return False
    if "\\" in name or _CONTROL.search(name) or _LINE_BREAKS.search(name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def decode_json(raw: bytes, what: str, error: type[HfmemError]) -> Any:
    """Decode remote JSON; anything that is not valid, reasonable JSON (bad UTF-8, syntax, integers over Python's
    digit limit, nesting deeper than the parser's recursion limit) is `error`, naming `what`."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as e:
        raise error(f"{what} is not UTF-8 text") from e
    except RecursionError as e:
        raise error(f"{what} is nested too deeply to be JSON hfmem reads") from e
    except ValueError as e:  # JSONDecodeError, and the integer digit limit
        raise error(f"{what} is not valid JSON ({str(e).splitlines()[0][:80]})") from e


def for_terminal(text: str, *, keep_colour: bool = False) -> str:
    """Text safe to print: control characters (escape sequences, bells, carriage returns, bidirectional overrides)
    removed; line breaks kept. With `keep_colour`, colour codes (SGR: ESC [ digits m) stay: the views paint their
    own words with them, and remote strings reach a view already without an ESC (one_line)."""
    if not keep_colour:
        return _CONTROL.sub("", text)
    pieces = _COLOUR.split(text)
    colours = _COLOUR.findall(text)
    return "".join(_CONTROL.sub("", piece) + (colours[i] if i < len(colours) else "") for i, piece in enumerate(pieces))


def one_line(text: str) -> str:
    """A remote string shown inside a line (a name, a dtype, a message): line breaks and tabs become one space, and
    control characters go."""
    return for_terminal(_LINE_BREAKS.sub(" ", text))


def without_credentials(text: str) -> str:
    """A reference as it may be shown: a URL's user name and password (a token, often) removed."""
    return _USERINFO.sub(r"\1", text)


def for_spreadsheet(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a string that would start a formula (=, +, -, @, tab, CR) is
    prefixed with a single quote, as OWASP advises; control characters go. Numbers pass unchanged."""
    if not isinstance(value, str):
        return value
    value = one_line(value)
    return "'" + value if value.lstrip().startswith(_FORMULA_START) else value


# What gives text a meaning inside a Markdown table cell (GitHub's included): emphasis, code, strikethrough, links
# and images (brackets), inline HTML and entities, the cell separator. Each is escaped with a backslash.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~&])")


def for_markdown(value: str) -> str:
    """A Markdown table cell that reads as the text itself: on one line, with what Markdown gives a meaning
    (emphasis, links, images, inline HTML, the cell separator `|`) escaped, so a remote string adds no link text,
    image or column to a pasted report."""
    return _MARKDOWN.sub(r"\\\1", one_line(value))


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxlong = _SHORT.maxother = 60
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 2, 4, 4


def shortened(value: object) -> str:
    """A value read from a repo's file, as a message shows it: its repr, cut to about 60 characters (whatever its
    size or nesting), with control characters escaped."""
    return _SHORT.repr(value)


# GGUF headers (hfmem.gguf): the metadata holds the tokenizer (vocabulary, scores, merges), so a real header runs to
# several MB (a 262k-token vocabulary alone is some 4 MB of strings). llama.cpp allows 1 GiB per string and per array.
MAX_BYTES["gguf"] = 64 * MiB  # the whole header: metadata and tensor infos
MAX_GGUF_STRING_BYTES = 4 * MiB  # one string (the longest real ones are chat templates, tens of kB)
MAX_GGUF_ARRAY_LENGTH = 2**22  # elements of one array (the longest real ones are vocabularies and merges)
MAX_GGUF_PAIRS = 65_536  # metadata pairs of one file (real ones hold under 100; each costs far more held than read)
MAX_GGUF_DIMS = 4  # dimensions of one tensor: GGML_MAX_DIMS (ggml/include/ggml.h)
