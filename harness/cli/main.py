"""The ``flopgap`` command line.

User errors (:class:`devices.errors.FlopgapError`) print one line and exit 2 (see :mod:`harness.cli.user_errors`);
anything else is a bug and keeps its traceback. Bad option values are typer's usage errors, also exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from devices.errors import FlopgapError
from devices.vocabulary import Format, Runtime
from harness.cli.options import (
    CacheDirOpt,
    DbOpt,
    DeviceOpt,
    DevicesFileOpt,
    InputShapeOpt,
    MinSecondsOpt,
    ModelArg,
    ModelPrecisionOpt,
    ModelRuntimeOpt,
    ParamOpt,
    RunsOpt,
    ThreadsOpt,
)
from harness.cli.user_errors import one_line_errors
from harness.zoo.registry import EntryKind

app = typer.Typer(
    help="flopgap: measure how fast efficient CNNs really run, and where FLOP counts lie.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()


def _human(n: float | None, unit: str = "") -> str:
    if n is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


@app.command()
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
                    _human(counts.params),
                    _human(counts.macs),
                    _human(ref.macs) if ref else "-",
                    _human(ref.params) if ref else "-",
                    ref.source if ref else "",
                )
    console.print(table)


@app.command()
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

    spec = cli_model(name, param, input_shape)
    fmt = pick_format(spec, fmt, Format.ONNX)
    precision = pick_precision(spec, precision)
    with console.status(f"exporting {spec.label} to {fmt} {precision}..."):
        art = source_artifact(spec, fmt, precision, cache_dir=cache_dir, check_parity=not no_parity, out_dir=out)
    table = Table(show_header=False, title=f"{escape(spec.label)} → {fmt} {precision}")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # paths and hashes are copied by users: never truncate them
    table.add_row("path", str(art.path))
    table.add_row("size", _human(art.size_bytes, "B"))
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


@app.command()
@one_line_errors
def sweep(
    spec_path: Annotated[Path | None, typer.Argument(metavar="SPEC", help="Sweep spec (TOML).")] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Run the built-in quick sweep (6 models, ONNX and TFLite).")
    ] = False,
    db: DbOpt = None,
    cache_dir: CacheDirOpt = None,
    devices_file: DevicesFileOpt = None,
) -> None:
    """Measure every point of a sweep spec; resumable: a rerun skips finished points and trials.

    Example: flopgap sweep --quick      or      flopgap sweep examples/sweep.toml
    """
    from harness.cli.sustained import report_sustained
    from harness.cli.sweep import exit_if_failed, run_sweep_command
    from harness.store import resolve_db_path

    result = run_sweep_command(spec_path, quick, db, cache_dir, devices_file, console)
    path = resolve_db_path(db)
    report_sustained(console, path, result.point_ids, path.parent / "timelines")  # nothing without sustained trials
    exit_if_failed(result)


@app.command("run")
@one_line_errors
def run_point(
    name: ModelArg,
    param: ParamOpt = None,
    input_shape: InputShapeOpt = None,
    runtime: ModelRuntimeOpt = None,
    precision: ModelPrecisionOpt = None,
    threads: ThreadsOpt = 1,
    trials: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Interleaved trials, each a fresh runner process [default: 3; 1 with --sustained].",
            show_default=False,
        ),
    ] = None,
    runs: RunsOpt = 50,
    min_seconds: MinSecondsOpt = 1.0,
    sustained: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Run continuously this long (e.g. 30s, 10m) and record a timeline of latency, CPU frequencies and "
            "temperatures; prints minute-1 vs last-minute medians and whether it throttled.",
        ),
    ] = None,
    window: Annotated[str, typer.Option(metavar="DURATION", help="Timeline window of --sustained.")] = "1s",
    device: DeviceOpt = "local",
    db: DbOpt = None,
    cache_dir: CacheDirOpt = None,
    devices_file: DevicesFileOpt = None,
) -> None:
    """Measure one point (one model, runtime, precision, thread count, device) and print its statistics.

    The runtime defaults to litert (a model file: its own format's runtime).

    Example: flopgap run shufflenet_v2 --param scale=0.5 --runtime onnxruntime --threads 2
    """
    from harness.cli.model_args import cli_model, pick_precision, pick_runtime
    from harness.cli.sustained import report_sustained
    from harness.cli.sweep import exit_if_failed, one_point_spec, prepare_artifact, run_spec_command
    from harness.measure.duration import parse_duration
    from harness.measure.spec import Protocol, spec_to_toml
    from harness.store import resolve_db_path

    model = cli_model(name, param, input_shape)
    chosen = pick_runtime(model, runtime, Runtime.LITERT)
    level = pick_precision(model, precision)
    seconds = parse_duration(sustained) if sustained is not None else None
    window_s = parse_duration(window)
    if seconds is not None and window_s > seconds:
        raise FlopgapError(f"--window {window} is longer than --sustained {sustained}; choose a shorter window")
    prepare_artifact(model, chosen, level, cache_dir, console, device, devices_file)
    protocol = Protocol(
        trials=trials or (1 if seconds else 3),
        runs=runs,
        min_seconds=min_seconds,
        sustained=seconds,
        sustained_window=window_s,
    )
    spec = one_point_spec("run", model, chosen, level, threads, device, protocol)
    result = run_spec_command(spec, spec_to_toml(spec), db, cache_dir, devices_file, console)
    if seconds is not None:
        path = resolve_db_path(db)
        report_sustained(console, path, result.point_ids, path.parent / "timelines")
    exit_if_failed(result)


def _mount_subcommands() -> None:
    from harness.cli.calibrate import calibrate
    from harness.cli.compare import compare
    from harness.cli.devices import devices_app, push
    from harness.cli.predict import predict, predictor_app
    from harness.cli.profile import profile
    from harness.cli.proxies import proxies_app
    from harness.cli.report import report
    from harness.cli.results import results_app

    app.add_typer(results_app, name="results")
    app.add_typer(devices_app, name="devices")
    app.add_typer(proxies_app, name="proxies")
    app.add_typer(predictor_app, name="predictor")
    app.command("push")(push)
    app.command("report")(report)
    app.command("profile")(profile)
    app.command("calibrate")(calibrate)
    app.command("predict")(predict)
    app.command("compare")(compare)


_mount_subcommands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
