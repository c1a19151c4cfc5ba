"""Rows for machines: an audit as CSV, a JSON array or JSON lines (sizes in bytes), or the text or Markdown table,
written as the rows come."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import IO

from ..audit import COLUMNS, AuditRow
from ..untrusted import for_spreadsheet
from .text import WIDTH, Paint, fits_text, plain, render_audit_markdown, render_audit_table

FORMATS = ("table", "markdown", "csv", "json", "jsonl")


def write_rows(
    rows: Iterable[AuditRow], fmt: str, out: IO[str], units: str = "gib", width: int = WIDTH, paint: Paint = plain
) -> int:
    """Write rows as a text or Markdown table (sizes in `units`), CSV, a JSON array or JSON lines (sizes in bytes).
    CSV and JSON rows go out one by one as they come (and are flushed), so what was written survives a kill; a stop
    (an exception from `rows`) still closes the table or the JSON array over the rows done. Returns the number of
    rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt in ("table", "markdown"):  # widths need every row: written at the end, or at a stop with the rows done
        table: list[AuditRow] = []
        try:
            table.extend(rows)
        finally:
            if fmt == "markdown":
                out.write(render_audit_markdown(table, units) + "\n")
            else:
                out.write(render_audit_table(table, units, width, paint) + "\n")
        return len(table)
    written = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
    elif fmt == "json":
        out.write("[")
    try:
        for row in rows:
            data = row.to_dict()
            if fmt == "csv":
                data["fits"] = fits_text(row.fits)
                data["error"], data["error_type"] = (row.error.message, row.error.type) if row.error else (None, None)
                writer.writerow({key: for_spreadsheet(value) for key, value in data.items()})
            elif fmt == "json":
                out.write(("," if written else "") + "\n  " + json.dumps(data, indent=2).replace("\n", "\n  "))
            else:
                out.write(json.dumps(data) + "\n")
            out.flush()
            written += 1
    finally:
        if fmt == "json":  # a stop still leaves a valid array of the rows done
            out.write("\n]\n" if written else "]\n")
    return written
