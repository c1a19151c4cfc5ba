"""Units for people: GiB (2^30, the default) or GB (10^9), always labelled. JSON is always bytes."""

from __future__ import annotations

from collections.abc import Iterable

UNITS = {"gib": (2**30, "GiB"), "gb": (10**9, "GB")}


def size(n: int, units: str = "gib") -> str:
    """A size as a number in `units`, without the label (tables say it in their heading)."""
    return f"{n / UNITS[units][0]:,.2f}"


def label(units: str) -> str:
    return UNITS[units][1]


def format_bytes(n: int | None, units: str = "gib") -> str:
    """GiB (or GB), stepping down to MiB / KiB (MB / kB) for small sizes so that nothing reads as 0.00."""
    if n is None:
        return "?"
    divisor, name = UNITS[units]
    step, smaller = (2**10, ("MiB", "KiB")) if units == "gib" else (10**3, ("MB", "kB"))
    for unit in smaller:
        if n >= divisor / 10:
            break
        divisor, name = divisor // step, unit
    return f"{n / divisor:,.2f} {name}"


def message(parts: Iterable[str | int], units: str = "gib") -> str:
    """A library message made of text and byte counts (checks.Size): the counts shown in `units`."""
    return "".join(part if isinstance(part, str) else format_bytes(part, units) for part in parts)


def format_count(n: int) -> str:
    """8,030,261,248 (8.03B)."""
    return f"{n:,}" if n < 1000 else f"{n:,} ({short_count(n)})"


def short_count(n: int) -> str:
    """8.03B, 999.89M: a count in a narrow column."""
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}{suffix}"
    return str(n)
