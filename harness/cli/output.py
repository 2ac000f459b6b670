"""How the CLI writes what it found: rich tables for people, CSV or JSON for scripts, never squeezed in a pipe.

Rich wraps a table to 80 columns when stdout is not a terminal, which turns a model name into 3-character cells
over 7 lines in a log. :func:`make_console` gives a console that prints tables at their natural width there.
Commands whose result is a table take ``--format table|csv|json``: with csv or json, stdout holds only the data
(one header line and one line per row, or one JSON document) and everything else (progress, notes, the closing
summary) goes to stderr.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

# Wide enough for any table flopgap prints; rich still sizes each table to its content (tables do not expand).
_NATURAL_WIDTH = 100_000


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


OutputFormatOpt = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="table for people; csv or json for scripts (stdout then holds only the data, notes go to stderr).",
    ),
]


def make_console(stderr: bool = False) -> Console:
    """A rich console: the terminal's width in a terminal, else natural width (no wrapping, no truncation)."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=_NATURAL_WIDTH)


def notes_console(fmt: OutputFormat) -> Console:
    """Where a command writes everything but its data: stdout for a table, stderr when stdout carries csv/json."""
    return make_console(stderr=fmt is not OutputFormat.TABLE)


def human(n: float | None, unit: str = "") -> str:
    """``3.50M``-style short numbers for tables (``-`` for None)."""
    if n is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def plain(value: Any) -> Any:
    """A JSON/CSV-ready scalar: numpy and pandas scalars unwrapped, NaN and pandas' missing values as None."""
    if value is None:
        return None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and not isinstance(value, str | bytes):
        with contextlib.suppress(TypeError, ValueError):
            value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in {"NAType", "NaTType"}:
        return None
    return value


def write_records(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: OutputFormat,
    document: Mapping[str, Any] | None = None,
    key: str = "rows",
) -> None:
    """Write ``records`` to stdout as CSV (``columns`` in order, one line per record) or JSON (``document`` with
    the records under ``key``, or the bare list when there is no document)."""
    rows = [{c: plain(r.get(c)) for c in columns} for r in records]
    if fmt is OutputFormat.CSV:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if v is None else v for c, v in row.items()})
    elif fmt is OutputFormat.JSON:
        payload: Any = rows if document is None else {**{k: plain(v) for k, v in document.items()}, key: rows}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:  # pragma: no cover - callers render tables themselves
        raise ValueError(f"write_records writes csv or json, not {fmt}")
    sys.stdout.flush()
