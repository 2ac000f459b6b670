"""``flopgap proxies``: per-category FLOPs, bytes moved and intensity of a model's exported graphs."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from devices.vocabulary import Format
from harness.cli.options import CacheDirOpt, InputShapeOpt, ModelArg, ModelPrecisionOpt, ParamOpt
from harness.cli.output import make_console
from harness.cli.user_errors import one_line_errors

proxies_app = typer.Typer(
    help="Graph accounting of exported models: FLOPs, params, bytes moved and intensity per op category.",
    no_args_is_help=True,
)
console = make_console()
BOTH = "both"
# The graph formats the proxies account (an ExecuTorch program is a lowered program, not a graph they read).
ACCOUNTED = (Format.ONNX, Format.TFLITE)


def _format_or_both(value: str) -> str:
    if value != BOTH and value not in set(ACCOUNTED):
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(ACCOUNTED)}, {BOTH}")
    return value


FormatOrBothOpt = Annotated[
    str,
    typer.Option(
        "--format", "-f", callback=_format_or_both, metavar="[" + "|".join([*ACCOUNTED, BOTH]) + "]", help="Formats."
    ),
]


@proxies_app.command()
@one_line_errors
def show(
    name: ModelArg,
    param: ParamOpt = None,
    input_shape: InputShapeOpt = None,
    fmt: FormatOrBothOpt = BOTH,
    precision: ModelPrecisionOpt = None,
    cache_dir: CacheDirOpt = None,
    ops: Annotated[bool, typer.Option("--ops", help="Also print one row per op.")] = False,
) -> None:
    """Export (or reuse the cached export of) a model and print its per-category graph accounting.

    A model file is accounted in its own format ('both' means just that one).

    Example: flopgap proxies show shufflenet_v2 --param scale=0.5 --format both
    """
    from harness.cli.model_args import cli_model, pick_format, pick_precision
    from harness.proxies import account
    from harness.sources import FileSource, source_artifact

    spec = cli_model(name, param, input_shape)
    precision = pick_precision(spec, precision)
    if isinstance(spec, FileSource):
        formats = [pick_format(spec, None if fmt == BOTH else Format(fmt), spec.format)]
    else:
        formats = list(ACCOUNTED) if fmt == BOTH else [Format(fmt)]
    for f in formats:
        with console.status(f"exporting {spec.label} to {f} {precision}..."):
            art = source_artifact(spec, f, precision, cache_dir=cache_dir)
        acc = account(art)
        console.print(category_table(acc.totals_by_category(), f"{spec.label} · {f} {precision}"))
        t = acc.totals
        intensity = f"{t.intensity:.2f}" if t.intensity is not None else "–"
        line = (
            f"total: {t.ops} ops, {t.macs / 1e6:.2f} M MACs, {t.flops / 1e6:.2f} MFLOPs, {t.params:,} params, "
            f"{t.mac_bytes / 1e6:.2f} MB moved ({t.view_bytes / 1e6:.2f} MB by views), {intensity} FLOP/B"
        )
        if t.unsupported_ops:
            kinds = ", ".join(f"{k}×{v}" for k, v in t.unsupported_types.items())
            line += f"; [bold yellow]{t.unsupported_ops} unsupported ops not in the FLOPs: {kinds}[/]"
        console.print(line)
        if ops:
            cols = ["name", "category", "macs", "flops", "bytes_read", "bytes_written", "weight_bytes", "intensity"]
            console.print(acc.frame()[cols].to_string(index=False), highlight=False)


def category_table(df: pd.DataFrame, title: str) -> Table:
    """A rich table of :meth:`GraphAccount.totals_by_category`."""
    table = Table(title=title)
    for col in ("category", "ops", "M MACs", "MFLOPs", "FLOP %", "MB moved", "bytes %", "FLOP/B", "unsupported"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for category, row in df.iterrows():
        intensity = row["intensity"]
        table.add_row(
            str(category),
            str(int(row["ops"])),
            f"{row['macs'] / 1e6:.2f}",
            f"{row['flops'] / 1e6:.2f}",
            f"{100 * row['flops_share']:.1f}",
            f"{row['mac_bytes'] / 1e6:.2f}",
            f"{100 * row['bytes_share']:.1f}",
            "–" if pd.isna(intensity) else f"{intensity:.2f}",
            str(int(row["unsupported"])) if row["unsupported"] else "",
        )
    return table
