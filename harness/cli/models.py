"""``flopgap models``: list the zoo with parameters and MACs counted on the built models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from devices.core.errors import FlopgapError
from harness.cli.output import human, make_console
from harness.cli.user_errors import one_line_errors
from harness.zoo.registry import EntryKind


@one_line_errors
def models(
    pattern: Annotated[str, typer.Argument(help="Shell-style wildcard over model names, e.g. 'shufflenet_*'.")] = "*",
    all_configs: Annotated[
        bool, typer.Option("--all", help="One row per configuration in each model's parameter grid.")
    ] = False,
    kind: Annotated[EntryKind | None, typer.Option(help="Only whole models, or only building blocks.")] = None,
) -> None:
    """List the zoo: name, family, input size, params, MACs (counted on the built model) and reference MACs.

    Example: flopgap models 'mobilenet_v1' --all
    """
    from harness.zoo import get_entry, grid, list_models, resolve
    from harness.zoo.counting import count

    console = make_console()
    names = list_models(pattern, kind=kind)
    if not names:
        raise FlopgapError(f"no model matches '{pattern}'; run 'flopgap models' to list them all")
    table = Table(title=f"flopgap zoo ({pattern})")
    for col in ("name", "family", "input", "params", "MACs", "ref MACs", "ref params"):
        numeric = col in {"params", "MACs", "ref MACs", "ref params"}
        table.add_column(col, justify="right" if numeric else "left", no_wrap=True)
    table.add_column("source", overflow="fold", ratio=1)
    with console.status("building models to count params and MACs..."):
        for name in names:
            specs = grid(name) if all_configs else [resolve(name)]
            for spec in specs:
                counts = count(spec.build(), spec.example_input())
                ref = spec.reference
                table.add_row(
                    escape(spec.label),
                    get_entry(name).family,
                    "x".join(str(d) for d in spec.input_shape[1:]),
                    human(counts.params),
                    human(counts.macs),
                    human(ref.macs) if ref else "-",
                    human(ref.params) if ref else "-",
                    ref.source if ref else "",
                )
    console.print(table)
