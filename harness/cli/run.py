"""``flopgap run``: measure one point and print its statistics (stored like a one-point sweep)."""

from __future__ import annotations

from typing import Annotated

import typer

from devices.core.errors import FlopgapError
from devices.vocabulary import Runtime
from harness.cli.options import (
    CacheDirOpt,
    DbOpt,
    DeviceOpt,
    DevicesFileOpt,
    InputShapeOpt,
    LabOpt,
    MinSecondsOpt,
    ModelArg,
    ModelPrecisionOpt,
    ModelRuntimeOpt,
    ParamOpt,
    RunsOpt,
    ThreadsOpt,
)
from harness.cli.output import OutputFormat, OutputFormatOpt, notes_console
from harness.cli.user_errors import one_line_errors


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
    fmt: OutputFormatOpt = OutputFormat.TABLE,
    lab: LabOpt = None,
) -> None:
    """Measure one point (one model, runtime, precision, thread count, device) and print its statistics.

    The runtime defaults to litert (a model file: its own format's runtime). With --format csv or json, stdout holds
    the point's row (progress and notes go to stderr).

    Example: flopgap run shufflenet_v2 --param scale=0.5 --runtime onnxruntime --threads 2
    """
    from harness.cli.model_args import cli_model, pick_precision, pick_runtime
    from harness.cli.sustained import report_sustained
    from harness.cli.sweep import exit_if_failed, one_point_spec, prepare_artifact, run_spec_command
    from harness.measure.duration import parse_duration
    from harness.measure.spec import Protocol, spec_to_toml
    from harness.store import resolve_db_path

    console = notes_console(fmt)
    model = cli_model(name, param, input_shape)
    chosen = pick_runtime(model, runtime, Runtime.LITERT)
    level = pick_precision(model, precision)
    seconds = parse_duration(sustained) if sustained is not None else None
    window_s = parse_duration(window)
    if seconds is not None and window_s > seconds:
        raise FlopgapError(f"--window {window} is longer than --sustained {sustained}; choose a shorter window")
    prepare_artifact(model, chosen, level, cache_dir, console, device, devices_file, lab)
    protocol = Protocol(
        trials=trials or (1 if seconds else 3),
        runs=runs,
        min_seconds=min_seconds,
        sustained=seconds,
        sustained_window=window_s,
    )
    spec = one_point_spec("run", model, chosen, level, threads, device, protocol)
    result = run_spec_command(spec, spec_to_toml(spec), db, cache_dir, devices_file, fmt, lab)
    if seconds is not None:
        path = resolve_db_path(db)
        report_sustained(console, path, result.point_ids, path.parent / "timelines")
    exit_if_failed(result)
