"""``flopgap export``: one model to ONNX or TFLite, verified against PyTorch and cached."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from devices.vocabulary import Format
from harness.cli.options import CacheDirOpt, InputShapeOpt, ModelArg, ModelPrecisionOpt, ParamOpt
from harness.cli.output import human, make_console
from harness.cli.user_errors import one_line_errors


@one_line_errors
def export(
    name: ModelArg,
    param: ParamOpt = None,
    input_shape: InputShapeOpt = None,
    fmt: Annotated[
        Format | None, typer.Option("--format", "-f", help="Artifact format (default: onnx, or a file's own).")
    ] = None,
    precision: ModelPrecisionOpt = None,
    out: Annotated[Path | None, typer.Option(help="Also copy the artifact (and its JSON) into this directory.")] = None,
    cache_dir: CacheDirOpt = None,
    no_parity: Annotated[
        bool, typer.Option("--no-parity", help="Skip the parity check against torch (not recommended).")
    ] = False,
) -> None:
    """Export a model to ONNX, TFLite or ExecuTorch, verified against PyTorch; print path, size, hash, parity error.

    A model file is checked (parsed, loaded by its runtime) and made self-contained with static inputs where needed.

    Example: flopgap export shufflenet_v1 --param groups=3 --format tflite --precision fp32
    """
    from harness.cli.model_args import cli_model, pick_format, pick_precision
    from harness.sources import source_artifact

    console = make_console()
    spec = cli_model(name, param, input_shape)
    fmt = pick_format(spec, fmt, Format.ONNX)
    precision = pick_precision(spec, precision)
    with console.status(f"exporting {spec.label} to {fmt} {precision}..."):
        art = source_artifact(spec, fmt, precision, cache_dir=cache_dir, check_parity=not no_parity, out_dir=out)
    table = Table(show_header=False, title=f"{escape(spec.label)} → {fmt} {precision}")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # paths and hashes are copied by users: never truncate them
    table.add_row("path", str(art.path))
    table.add_row("size", human(art.size_bytes, "B"))
    table.add_row("sha256", art.sha256)
    inputs = art.notes.get("inputs")
    if inputs:
        shown = "; ".join(
            f"{i.get('name', f'#{n}')} {'x'.join(map(str, i['shape']))} {i['dtype']}" for n, i in enumerate(inputs)
        )
        table.add_row("inputs", f"{shown} ({art.layout})")
    else:
        table.add_row("input", f"{'x'.join(map(str, art.input_shape))} ({art.layout})")
    bound = f" (bound {art.parity_bound:.0e})" if art.parity_bound is not None else ""
    table.add_row("parity error", "skipped" if art.parity_error is None else f"{art.parity_error:.2e}{bound}")
    transposes = art.notes.get("transpose_ops")
    if transposes is not None:
        table.add_row("TRANSPOSE ops", str(transposes))
    outside = art.notes.get("op_counts_outside_delegate")
    if outside is not None:  # pte: ops on ExecuTorch's portable kernels, not XNNPACK (a latency cliff)
        listed = ", ".join(f"{n} x{c}" for n, c in outside.items()) or "none"
        table.add_row("outside XNNPACK", f"{art.notes['ops_outside_delegate']} ({listed})")
    console.print(table)
