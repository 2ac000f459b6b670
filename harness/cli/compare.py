"""``flopgap compare A B``: B/A per matching point with a bootstrap 95% CI, changes marked, CI-gate exit code."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from devices.core.errors import ExitCode
from harness.cli.options import DbOpt

if TYPE_CHECKING:
    import pandas as pd

    from harness.analysis.compare import Side
from harness.cli.output import make_console
from harness.cli.user_errors import one_line_errors

EXIT_REGRESSED = ExitCode.REGRESSED  # user errors exit 2; 1 means "measured, and it got slower"


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@one_line_errors
def compare(
    a: Annotated[str, typer.Argument(help="Baseline: a run id (of --db), a results database, or DB:RUN.")],
    b: Annotated[str, typer.Argument(help="Candidate: a run id (of --db), a results database, or DB:RUN.")],
    db: DbOpt = None,
    threshold: Annotated[
        str, typer.Option(help="Mark a change only when B/A differs from 1 by more than this (and its CI excludes 1).")
    ] = "5%",
    fail_above: Annotated[
        str | None,
        typer.Option(help="Exit with code 1 when a marked slowdown exceeds this, e.g. 5% (for CI gates)."),
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table for people; csv or json for scripts.")] = (
        OutputFormat.TABLE
    ),
    plot: Annotated[Path | None, typer.Option(help="Also write a PNG of the ratios with their CIs here.")] = None,
) -> None:
    """Compare two runs point by point: B/A of medians with a bootstrap 95% CI from the raw samples.

    Example: flopgap compare results/main.db results/branch.db --fail-above 5%
    """
    from harness.analysis.compare import compare as run_compare
    from harness.analysis.compare import parse_fraction, parse_side

    mark = parse_fraction(threshold)
    fail = parse_fraction(fail_above) if fail_above is not None else None
    result = run_compare(parse_side(a, db), parse_side(b, db), mark)
    rows = result.rows
    if fmt is OutputFormat.CSV:
        typer.echo(rows.to_csv(index=False), nl=False)
    elif fmt is OutputFormat.JSON:
        records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                   for r in rows.to_dict("records")]  # fmt: skip
        typer.echo(json.dumps({"a": str(result.a), "b": str(result.b), "threshold": mark, "points": records}))
    else:
        _print_table(result.a, result.b, rows, mark, result.only_a, result.only_b)
    if plot is not None:
        from harness.report.comparison import ratio_figure

        if rows.empty:
            typer.echo(f"no plot: no point of {result.a} matches one of {result.b}", err=True)
        else:
            ratio_figure(rows, f"B = {result.b} over A = {result.a}", mark).savefig(plot, dpi=110)
            typer.echo(f"wrote {plot}", err=fmt is not OutputFormat.TABLE)
    if fail is not None:
        regressed = result.regressions(fail)
        if not regressed.empty:
            typer.echo(
                f"{len(regressed)} point(s) regressed by more than {fail:.0%}: "
                + ", ".join(f"{r.model_label} {r.runtime} ×{r.ratio:.3f}" for r in regressed.itertuples()),
                err=True,
            )
            raise typer.Exit(EXIT_REGRESSED)


def _print_table(a: Side, b: Side, rows: pd.DataFrame, threshold: float, only_a: int, only_b: int) -> None:
    console = make_console()
    table = Table(title=escape(f"B = {b} over A = {a}"))
    for column in ("model", "runtime", "prec", "thr", "device", "A ms", "B ms", "B/A", "95% CI", "change"):
        numeric = column in ("thr", "A ms", "B ms", "B/A")
        table.add_column(
            column, justify="right" if numeric else "left", overflow="fold" if column == "model" else "ellipsis"
        )
    colors = {"slower": "red", "faster": "green"}
    for r in rows.itertuples():
        ci = f"{r.ci_low:.3f}–{r.ci_high:.3f}" if r.has_ci else "no CI (summary only)"
        where = r.device if r.cluster == "any" else f"{r.device} [{r.cluster}]"
        change = f"[{colors[r.change]}]{r.change}[/]" if r.change in colors else str(r.change)
        table.add_row(
            escape(str(r.model_label)), str(r.runtime), str(r.precision), str(r.threads), escape(str(where)),
            f"{r.a_ms:.3f}", f"{r.b_ms:.3f}", f"{r.ratio:.3f}", ci, change,
        )  # fmt: skip
    console.print(table)
    counts = rows["change"].value_counts().to_dict()
    console.print(
        f"{len(rows)} point(s) matched: {counts.get('slower', 0)} slower, {counts.get('faster', 0)} faster, "
        f"{counts.get('no change', 0)} no significant change (threshold {threshold:.0%}); "
        f"{only_a} only in A, {only_b} only in B",
        highlight=False,
        soft_wrap=True,
    )
