"""``flopgap predictor list|export|import``: predictors as files that travel between databases and people."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.options import DbOpt
from harness.cli.output import OutputFormat, OutputFormatOpt, make_console, write_records
from harness.cli.predict import predictor_app
from harness.cli.user_errors import one_line_errors
from harness.store import Store


@predictor_app.command("list")
@one_line_errors
def list_predictors(db: DbOpt = None, fmt: OutputFormatOpt = OutputFormat.TABLE) -> None:
    """List the stored predictors: id, device, runtime, threads, precision, when built, and where from.

    Example: flopgap predictor list
    """
    import json

    with Store(db, readonly=True) as store:
        frame = store.predictors_frame()
    records = []
    for r in frame.itertuples():
        summary = json.loads(r.summary_json)
        records.append({"id": r.id, "device": r.device, "runtime": r.runtime, "threads": r.threads,
                        "precision": r.precision, "created_at": r.created_at,
                        "runtime_version": summary.get("runtime_version"),
                        "imported_from": summary.get("imported_from")})  # fmt: skip
    columns = ("id", "device", "runtime", "threads", "precision", "created_at", "runtime_version", "imported_from")
    if fmt is not OutputFormat.TABLE:
        write_records(records, columns, fmt)
        return
    table = Table(title=f"predictors ({len(records)})")
    for col in columns:
        table.add_column(col, justify="right" if col in {"id", "threads"} else "left")
    for rec in records:
        table.add_row(*(escape(str(rec[c])) if rec[c] is not None else "-" for c in columns))
    make_console().print(table)


@predictor_app.command("export")
@one_line_errors
def export_predictor_file(
    predictor_id: Annotated[int, typer.Argument(metavar="ID", help="Predictor id ('flopgap predictor list').")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSON file to write.")],
    db: DbOpt = None,
) -> None:
    """Write a stored predictor to a JSON file, tagged with its device's identity, runtime and versions.

    Example: flopgap predictor export 3 pixel7-litert.json
    """
    from harness.predict.transfer import export_predictor

    with Store(db, readonly=True) as store:
        doc = export_predictor(store, predictor_id, file)
    built_on = doc["device_identity"]["description"] or "a machine without recorded facts"
    make_console().print(
        f"predictor {predictor_id} ({doc['device']} {doc['runtime']} t{doc['threads']} {doc['precision']}, built on "
        f"{built_on}) written to {file}",
        highlight=False,
        soft_wrap=True,
    )


@predictor_app.command("import")
@one_line_errors
def import_predictor_file(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A file 'flopgap predictor export' wrote.")],
    as_device: Annotated[
        str | None, typer.Option("--as", help="Store it under this device name (default: the file's device).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Store a predictor another database exported, so 'flopgap predict' uses it (JSON only: nothing is executed).

    Example: flopgap predictor import pixel7-litert.json --as pixel7
    """
    from harness.predict.transfer import import_predictor

    with Store(db) as store:
        done = import_predictor(store, file, as_device)
        where = store.path
    make_console().print(
        f"imported as predictor {done.predictor_id} for {done.device} {done.runtime} t{done.threads} "
        f"{done.precision} (built on {done.built_on}) into {where}",
        highlight=False,
        soft_wrap=True,
    )
