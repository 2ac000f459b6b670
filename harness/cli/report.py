"""``flopgap report``: every figure as PNG and one self-contained HTML page from a results database.

The lead mounts it with ``app.command("report")(report)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devices.core.errors import FlopgapError
from harness.cli.options import DbOpt
from harness.cli.user_errors import one_line_errors
from harness.store import resolve_db_path

DEFAULT_OUT = Path("results") / "report"


@one_line_errors
def report(
    db: DbOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Directory for report.html and the PNG figures.")] = DEFAULT_OUT,
    baseline: Annotated[
        str | None,
        typer.Option(help="Add a comparison with this run: a results database, DB:RUN, or a run id of --db."),
    ] = None,
) -> None:
    """Write the FLOP-gap report: headline table and findings, latency vs MACs, residuals, op shares, building blocks,
    roofline, guideline experiments, devices compared, sustained runs, and a comparison with --baseline.

    Sections whose data is missing say what to run to get it. Example: flopgap report --db results/flopgap.db
    """
    from harness.report.html import write_report  # matplotlib and pandas load only when reporting

    path = resolve_db_path(db)
    if not path.is_file():
        raise FlopgapError(f"no results database at {path}; run 'flopgap sweep' first or pass --db")
    written = write_report(path, out, baseline)
    typer.echo(f"wrote {written.html_path} and {len(written.figures)} figure(s) in {out}")
    for number, finding in enumerate(written.findings, 1):
        typer.echo(f"{number}. {finding}")
    if written.headlines:
        typer.echo("share of FLOPs vs share of measured time (profiled models with shuffles or depthwise convs):")
    for line in written.headlines:
        typer.echo(f"  {line}")
    if written.missing:
        typer.echo(f"{len(written.missing)} section(s) lack data:")
        for line in dict.fromkeys(written.missing):
            typer.echo(f"  - {line}")
