"""``flopgap results``: list runs, show the points of a run, export tables from the results database."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from devices.core.errors import FlopgapError
from harness.cli.options import DbOpt
from harness.cli.output import OutputFormat, OutputFormatOpt, make_console, plain, write_records
from harness.cli.user_errors import one_line_errors
from harness.store import EXPORT_TABLES, ExportFormat, Store, resolve_db_path
from harness.store.status import PointStatus

results_app = typer.Typer(
    help="Inspect stored measurements: list runs, show a run's points, export tables to CSV or Parquet.",
    no_args_is_help=True,
)


def _open(db: Path | None) -> Store:
    """Open an existing database read-only (never creates one, never blocks a running sweep)."""
    path = resolve_db_path(db)
    if not path.is_file():
        raise FlopgapError(f"no results database at {path}; run 'flopgap sweep' first or pass --db")
    return Store(path, readonly=True)


def _ms(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if value < 100 else f"{value:.1f}"


def _table(title: str) -> Table:
    """A compact table: no vertical rules, so wide sweeps still fit a terminal."""
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


@results_app.command("list")
@one_line_errors
def list_runs(db: DbOpt = None) -> None:
    """List the sweep runs: how many of their points were done, failed and pending when each ended, and the
    runtime (and runner) versions they measured with. A run whose process was killed shows as interrupted."""
    with _open(db) as store:
        runs = store.runs()
        versions = store.versions()
    if not runs:
        typer.echo(f"no runs in {resolve_db_path(db)}")
        return
    table = _table(escape(f"runs in {resolve_db_path(db)}"))
    for header in ("run", "started (UTC)", "status", "done", "failed", "pending", "versions", "spec"):
        numeric = header in ("run", "done", "failed", "pending")
        table.add_column(header, justify="right" if numeric else "left", overflow="fold")
    for run in runs:
        table.add_row(
            str(run.id),
            run.started_at[:19].replace("T", " "),
            run.shown_status,
            str(run.counts.done),
            str(run.counts.failed),
            str(run.counts.pending),
            escape(", ".join(str(v) for v in run.versions) or "–"),
            escape(run.spec_name),
        )
    console = make_console()
    console.print(table)
    if versions:
        console.print(escape("versions in this database: " + "; ".join(str(v) for v in versions)), soft_wrap=True)


SHOW_COLUMNS = (
    "point_id", "model", "device", "runtime", "format", "precision", "threads", "status",
    "median_ms", "ci_low_ms", "ci_high_ms", "noisy", "failure_reason",
)  # fmt: skip


@results_app.command("show")
@one_line_errors
def show_run(
    run_id: Annotated[int | None, typer.Argument(help="Run id (default: the latest run).", show_default=False)] = None,
    db: DbOpt = None,
    fmt: OutputFormatOpt = OutputFormat.TABLE,
) -> None:
    """Show the points of a run: model, device, format, precision, threads, median and its 95% CI.

    Example: flopgap results show 3 --format json
    """
    with _open(db) as store:
        if run_id is None:
            run_id = store.latest_run_id()
            if run_id is None:
                raise FlopgapError(f"no runs in {store.path}; run 'flopgap sweep' first")
        elif run_id not in {r.id for r in store.runs()}:
            raise FlopgapError(f"no run {run_id} in {store.path}; see 'flopgap results list'")
        frame = store.points_frame(run_id)
    frame = frame.sort_values(["device", "runtime", "model_label", "format", "precision", "threads"], kind="stable")
    records = [
        {
            "point_id": row.point_id,
            "model": row.model_label,
            "device": row.device,
            "runtime": row.runtime,
            "format": row.format,
            "precision": row.precision,
            "threads": row.threads,
            "status": row.status,
            "median_ms": row.median_ms,
            "ci_low_ms": row.ci_low_ms,
            "ci_high_ms": row.ci_high_ms,
            "noisy": bool(row.noisy) if pd.notna(row.noisy) else None,
            "failure_reason": row.failure_reason,
        }
        for row in frame.itertuples(index=False)
    ]
    if fmt is not OutputFormat.TABLE:
        write_records(records, SHOW_COLUMNS, fmt, {"run": run_id}, key="points")
        return
    _show_table(run_id, records)


def _show_table(run_id: int, records: list[dict[str, Any]]) -> None:
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []  # printed under the table so long reasons do not squeeze the columns
    for r in records:
        low, high = plain(r["ci_low_ms"]), plain(r["ci_high_ms"])
        ci = "–" if low is None else f"{_ms(low)}–{_ms(high)}"
        status = r["status"]
        if status == PointStatus.FAILED:
            failures.append(r["failure_reason"] or "no reason recorded")
            status = f"failed ({len(failures)})"
        artifact = f"{r['format']} {r['precision']}" if isinstance(r["format"], str) else "–"
        noisy = "yes" if r["noisy"] else ""
        rows.append((r["model"], r["device"], r["runtime"], artifact, str(r["threads"]), _ms(r["median_ms"]), ci,
                     noisy, status))  # fmt: skip
    headers = ("model", "device", "runtime", "artifact", "threads", "median ms", "95% CI ms", "noisy", "status")
    table = _table(f"run {run_id}: {len(records)} points")
    for header in headers:
        numeric = header in ("threads", "median ms", "95% CI ms")
        # Numbers never wrap; names wrap (rather than lose their ends) when the terminal is narrow.
        table.add_column(header, justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
    for cells in rows:
        # escape: labels like "shufflenet_v2[width=1.5]" would otherwise read as rich markup
        table.add_row(*(escape(c) for c in cells))
    console = make_console()
    console.print(table)
    for number, reason in enumerate(failures, start=1):
        console.print(escape(f"({number}) {reason}"), soft_wrap=True)


@results_app.command("export")
@one_line_errors
def export_table(
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    format: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = ExportFormat.CSV,
    table: Annotated[str, typer.Option("--table", help=f"One of: {', '.join(EXPORT_TABLES)}.")] = "points",
    run_id: Annotated[int | None, typer.Option("--run", help="Only this run's points (and their rows).")] = None,
    db: DbOpt = None,
) -> None:
    """Export a table (points by default) to CSV or Parquet for pandas, R or a spreadsheet."""
    with _open(db) as store:
        rows = store.export(out, format, table, run_id)
    typer.echo(f"wrote {rows} {table} rows to {out}")
