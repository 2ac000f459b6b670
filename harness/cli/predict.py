"""`flopgap predictor build|eval` and `flopgap predict`: a kernel-level latency predictor per device context.

Mount with ``app.add_typer(predictor_app, name="predictor")`` and ``app.command("predict")(predict)`` in
:mod:`harness.cli.main`.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from devices.core.errors import ExitCode, FlopgapError, Interrupted
from devices.vocabulary import Precision, Runtime
from harness.cli.options import (
    CacheDirOpt,
    DbOpt,
    DevicesFileOpt,
    InputShapeOpt,
    LabOpt,
    MinSecondsOpt,
    ModelArg,
    ModelPrecisionOpt,
    ModelRuntimeOpt,
    ParamOpt,
    PrecisionOpt,
    RunsOpt,
    ThreadsOpt,
    TrialsOpt,
)
from harness.cli.output import OutputFormat, OutputFormatOpt, make_console, notes_console, write_records
from harness.cli.sweep import ProgressReporter, make_exporter, open_named_devices
from harness.cli.user_errors import one_line_errors
from harness.predict.build import MODEL_PROTOCOL, TRAIN_NETS, TRAIN_NETS_UNPROFILED, BuildReporter
from harness.predict.dataset import PredictContext, target_ms  # a point's p10 (harness.measure.stats)
from harness.predict.evaluate import METHODS, Evaluation
from harness.predict.predictor import KernelPredictor
from harness.predict.random_nets import Size
from harness.predict.trust import Caveat, caveats, interval_ms
from harness.store import PointStatus, Store
from harness.store.predictor_tables import PredictorRow

predictor_app = typer.Typer(help="Build and evaluate per-device kernel-level latency predictors.", no_args_is_help=True)

DeviceNameOpt = Annotated[str, typer.Option("--device", help="Device name from the inventory ('local' always exists).")]
DeviceListOpt = Annotated[
    str,
    typer.Option("--device", help="Device name from the inventory ('local' always exists); a,b,c builds each of them."),
]
RuntimeReqOpt = Annotated[Runtime, typer.Option(help="Runtime the predictor is for.")]
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_budget(text: str) -> float:
    """Seconds in ``15m``, ``90s``, ``1h30m`` or a plain number of seconds."""
    match = _DURATION.match(text)
    if not text.strip() or match is None or not any(match.groups()):
        raise FlopgapError(f"--budget '{text}' is not a duration; write e.g. 15m, 90s or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


class _BuildProgress(ProgressReporter, BuildReporter):
    """The sweep's progress for the zoo models, one line per stage and a counter for the probes."""

    def stage(self, message: str) -> None:
        self.progress.console.print(f"[bold]{escape(message)}[/]", highlight=False)

    def probe_measured(self, done: int, label: str, median_ms: float | None, round_: int) -> None:
        if done % 25 == 0:
            ms = f"{median_ms:.3f} ms" if median_ms is not None else "-"
            self.progress.console.print(f"  {done} probes measured (round {round_}; last {escape(label)}: {ms})",
                                        highlight=False)  # fmt: skip


@predictor_app.command("build")
@one_line_errors
def build(
    device: DeviceListOpt = "local",
    runtime: RuntimeReqOpt = Runtime.ONNXRUNTIME,
    threads: ThreadsOpt = 1,
    precision: PrecisionOpt = Precision.FP32,
    budget: Annotated[str, typer.Option(help="Device time for measuring (15m, 90s, 1h): earlier runs count.")] = "15m",
    seed: Annotated[int, typer.Option(help="Seed of the kernel sampling order and of the training nets.")] = 0,
    train_nets: Annotated[
        int | None,
        typer.Option(
            min=0,
            help=f"Random nets of the training stream measured whole (never the nets 'eval --random' measures); 0: "
            f"the zoo alone. Default: {TRAIN_NETS} where the device profiles their ops, else {TRAIN_NETS_UNPROFILED}.",
            show_default=False,
        ),
    ] = None,
    from_id: Annotated[
        int | None,
        typer.Option("--from", help="Adapt this stored predictor (an id from 'flopgap predictor list') instead."),
    ] = None,
    db: DbOpt = None,
    cache_dir: CacheDirOpt = None,
    devices_file: DevicesFileOpt = None,
    lab: LabOpt = None,
) -> None:
    """Measure zoo models, training nets and kernel probes on a device within a budget, then fit and store its
    predictor.

    Resumable: a rerun skips what is measured and counts earlier runs' time against the budget.
    With --from ID: adapt predictor ID to this device, threads or precision from a few zoo models and probes of
    the kernel types that dominate them (minutes, not a full build).

    Example: flopgap predictor build --device local --runtime litert --budget 15m

    Example: flopgap predictor build --device local --threads 2 --from 1 --budget 3m

    With --lab, the device's actor measures on its own host and this driver fits and stores the predictor; with
    --device a,b,c, each device gets its own build: in parallel through a lab, else one after another.

    Example: flopgap predictor build --device pixel7,board --lab 10.0.0.1:6379 --budget 15m
    """
    from harness.cli.predictor_builds import device_names, run_builds
    from harness.predict.adapt import AdaptPlan, adapt_predictor, calibration_note, scaling_note
    from harness.predict.build import BuildPlan, build_predictor

    console = make_console()
    seconds = parse_budget(budget)
    names = device_names(device, devices_file)
    exporter = make_exporter(cache_dir, True)
    if len(names) > 1:

        def plan_for(name: str) -> BuildPlan:
            ctx = PredictContext(name, runtime, threads, precision)
            if from_id is None:
                return BuildPlan(ctx, seconds, seed, train_nets=train_nets)
            return AdaptPlan(ctx, seconds, seed, source_id=from_id)

        found = open_named_devices(names, devices_file, lab)
        try:
            builds = run_builds(found, plan_for, db, exporter, console, parallel=lab is not None)
        except KeyboardInterrupt as stop:
            raise Interrupted.by(stop, "interrupted; everything measured so far is saved; rerun the same command to "
                                 "resume") from None  # fmt: skip
        if any(b.result is None for b in builds):
            raise typer.Exit(ExitCode.SOME_FAILED)
        return
    (device,) = names
    ctx = PredictContext(device, runtime, threads, precision)
    dev = open_named_devices([device], devices_file, lab)[device]
    try:
        progress = _BuildProgress()
        with Store(db) as store, progress:
            try:
                if from_id is None:
                    plan = BuildPlan(ctx, seconds, seed, train_nets=train_nets)
                    result = build_predictor(plan, store, dev, exporter, progress)
                else:
                    adapting = AdaptPlan(ctx, seconds, seed, source_id=from_id)
                    result = adapt_predictor(adapting, store, dev, exporter, progress)
            except KeyboardInterrupt as stop:
                raise Interrupted.by(
                    stop,
                    f"interrupted; everything measured so far is saved in {store.path}; rerun the same command to "
                    "resume",
                ) from None
            where = store.path
    finally:
        dev.cleanup()
    summary = result.predictor.summary
    if from_id is not None:
        console.print(
            f"predictor {result.predictor_id} for {result.context}, adapted from predictor {from_id}: "
            f"{result.probes_measured} probes and {result.models} zoo models measured, {result.kernel_rows} kernel "
            f"rows; {scaling_note(summary)}; {calibration_note(summary)}; build time {result.build_s:.0f}s; stored in "
            f"{where}",
            highlight=False,
        )
        return
    console.print(
        f"predictor {result.predictor_id} for {result.context}: {result.probes_total} kernel probes "
        f"({result.probes_measured} measured now), {result.kernel_rows} kernel rows, {result.models} zoo models and "
        f"{result.nets} training nets; "
        f"build time {result.build_s:.0f}s (this run {result.elapsed_s:.0f}s); rows per type "
        f"{summary.get('rows_per_type')}; stored in {where}",
        highlight=False,
    )


@predictor_app.command("eval")
@one_line_errors
def evaluate(
    device: DeviceNameOpt = "local",
    runtime: RuntimeReqOpt = Runtime.ONNXRUNTIME,
    threads: ThreadsOpt = 1,
    precision: PrecisionOpt = Precision.FP32,
    db: DbOpt = None,
    per_model: Annotated[bool, typer.Option("--per-model", help="Also list every model's prediction, errors.")] = False,
    random: Annotated[
        int | None, typer.Option("--random", min=1, help="Measure and predict N random architectures instead.")
    ] = None,
    seed: Annotated[int, typer.Option(help="With --random: which N architectures (the same seed, the same nets).")] = 0,
    net_size: Annotated[Size, typer.Option(help="With --random: full (zoo-sized) or small nets.")] = Size.FULL,
    models: Annotated[
        Path | None, typer.Option("--models", help="Measure and predict this folder's .onnx/.tflite files instead.")
    ] = None,
    trials: TrialsOpt = MODEL_PROTOCOL.trials,
    runs: RunsOpt = MODEL_PROTOCOL.runs,
    min_seconds: MinSecondsOpt = MODEL_PROTOCOL.min_seconds,
    cache_dir: CacheDirOpt = None,
    devices_file: DevicesFileOpt = None,
) -> None:
    """Leave-one-family-out over the measured zoo models; or, with --random N or --models DIR, models nobody
    tuned to, measured now (resumable) and predicted by the stored predictor, baselines fitted on the zoo models.

    Example: flopgap predictor eval --device local --runtime onnxruntime

    Example: flopgap predictor eval --device local --runtime litert --random 20 --seed 1

    Example: flopgap predictor eval --runtime onnxruntime --models ./my_models
    """
    from harness.cli.held_out import evaluate_held_out_cli
    from harness.predict.dataset import latest_versions, load_dataset
    from harness.predict.evaluate import leave_one_family_out

    console = make_console()
    ctx = PredictContext(device, runtime, threads, precision)
    if random is not None or models is not None:
        protocol = MODEL_PROTOCOL.model_copy(update={"trials": trials, "runs": runs, "min_seconds": min_seconds})
        evaluation, title, rows_note = evaluate_held_out_cli(ctx, random, seed, net_size, models, protocol, db,
                                                             cache_dir, devices_file)  # fmt: skip
        console.print(evaluation_table(evaluation, title))
        if per_model:
            console.print(models_table(evaluation))
        console.print(f"{rows_note}; noise floor: {evaluation.noise_floor()}", highlight=False)
        return
    started = time.monotonic()
    with Store(db, readonly=True) as store:
        versions = latest_versions(store, ctx)  # what the device runs now: older versions' points stay out
        dataset = load_dataset(store, ctx, versions)
    if len(dataset.families) < 2:
        raise FlopgapError(
            f"{ctx}: {len(dataset.models) - dataset.training_nets} zoo models in {len(dataset.families)} families "
            "measured; "
            f"run 'flopgap predictor build --device {device} --runtime {runtime}' first"
        )
    evaluation = leave_one_family_out(dataset)
    console.print(evaluation_table(evaluation, f"leave-one-family-out, {ctx}"))
    if per_model:
        console.print(models_table(evaluation))
    floor = f"; noise floor: {evaluation.noise_floor()}"
    version = f"{runtime} {versions.runtime_version}" if versions and versions.runtime_version else f"{runtime}"
    console.print(
        f"{len(dataset.rows)} kernel rows, {len(dataset.models) - dataset.training_nets} zoo models and "
        f"{dataset.training_nets} training nets measured with {version}{floor}; "
        f"evaluated in {time.monotonic() - started:.1f}s",
        highlight=False,
    )


METHOD_LABELS = {"predictor": "kernel predictor", "macs_linear": "linear in MACs", "roofline": "roofline sum"}


def evaluation_table(evaluation: Evaluation, title: str) -> Table:
    """Per family and overall, one row per method (narrow enough for an 80-column terminal)."""
    table = Table(title=title)
    for col in ("family", "models", "method", "±5%", "±10%", "RMSE %"):
        table.add_column(col, justify="left" if col in {"family", "method"} else "right")
    for family in [*evaluation.families, None]:
        scores = evaluation.scores(family)
        first = next((s for s in scores.values() if s is not None), None)
        name = family or "[bold]overall[/]"
        for i, m in enumerate(METHODS):
            s = scores[m]
            numbers = [f"{s.within5:.0%}", f"{s.within10:.0%}", f"{s.rmse_pct:.1f}"] if s else ["–", "–", "–"]
            table.add_row(name if i == 0 else "", str(first.models if first else 0) if i == 0 else "",
                          METHOD_LABELS[m], *numbers, end_section=i == len(METHODS) - 1)  # fmt: skip
    return table


def models_table(evaluation: Evaluation) -> Table:
    table = Table(title="per model (held out with its family)")
    for col in ("model", "family", "measured ms", "±CI", "±trials", "predicted ms", "error", "MACs-lin", "roofline"):
        table.add_column(col, justify="left" if col in {"model", "family"} else "right")
    for r in sorted(evaluation.results, key=lambda r: (r.family, r.measured_ms)):
        errs = [r.error(m) for m in METHODS]
        table.add_row(escape(r.label), r.family, f"{r.measured_ms:.3f}",
                      f"{r.ci_halfwidth:.1%}" if r.ci_halfwidth is not None else "–",
                      f"{r.trial_halfspread:.1%}" if r.trial_halfspread is not None else "–",
                      f"{r.predictor_ms:.3f}" if r.predictor_ms is not None else "–",
                      *(f"{e:+.1%}" if e is not None and math.isfinite(e) else "–" for e in errs))  # fmt: skip
    return table


@one_line_errors
def predict(
    name: ModelArg,
    param: ParamOpt = None,
    input_shape: InputShapeOpt = None,
    device: DeviceNameOpt = "local",
    runtime: ModelRuntimeOpt = None,
    threads: ThreadsOpt = 1,
    precision: ModelPrecisionOpt = None,
    top: Annotated[int, typer.Option(min=1, help="Kernels to show.")] = 20,
    db: DbOpt = None,
    cache_dir: CacheDirOpt = None,
    fmt: OutputFormatOpt = OutputFormat.TABLE,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=V1,V2",
            help="Rank every configuration of these parameter (or factory keyword) values by predicted latency; "
            "repeatable, the grid is their product.",
        ),
    ] = None,
    budget_ms: Annotated[
        float | None, typer.Option(min=0, help="With --grid: mark the configurations predicted within this latency.")
    ] = None,
) -> None:
    """Predict a model's latency on a device from its kernels, with the per-kernel table.

    The model is what 'flopgap run' takes: a zoo name, a model file or a torch factory.
    The runtime defaults to onnxruntime (a model file: its own format's runtime).
    Where the same point was measured, prints what was measured and the error too: against the point's p10, the
    latency a predictor is fitted to (its median beside; the median alone where the runner printed no percentiles).
    With --format csv (every kernel, one per line) or json (the prediction with every kernel), stdout holds only data.

    With --grid, ranks every configuration of the grid instead (MACs beside; --budget-ms marks those that fit).

    Example: flopgap predict shufflenet_v2 --param scale=0.5 --device local --runtime litert

    Example: flopgap predict mobilenet_v2 --grid alpha=0.35,0.5,0.75,1.0 --budget-ms 2
    """
    from harness.cli.model_args import cli_model, pick_precision, pick_runtime
    from harness.predict.device_graph import prediction_kernels
    from harness.sources import FileSource

    console = notes_console(fmt)
    if grid:
        from harness.cli.grid import predict_grid

        predict_grid(name, param, input_shape, grid, budget_ms, device, runtime, threads, precision, db, cache_dir,
                     fmt)  # fmt: skip
        return
    if budget_ms is not None:
        raise FlopgapError("--budget-ms ranks a --grid; add e.g. --grid alpha=0.5,1.0")
    spec = cli_model(name, param, input_shape)
    runtime = pick_runtime(spec, runtime, Runtime.ONNXRUNTIME)
    precision = pick_precision(spec, precision)
    art = make_exporter(cache_dir, True)(spec, runtime.artifact_format, precision)
    started = time.monotonic()
    with Store(db, readonly=True) as store:
        row, predictor = load_predictor(store, device, runtime, threads, precision)
        built_with = row.summary.get("runtime_version")
        measured = _measured(store, art.sha256, device, runtime, threads, built_with)
        # The device's own kernels where it optimized this model; else extracted here (a user's own model file is
        # read where it is: no kernel list is cached beside it), refused where this CPU is another architecture.
        kernels = prediction_kernels(store, predictor.summary, row.device, runtime, art.path, art.sha256,
                                     cache=not isinstance(spec, FileSource))  # fmt: skip
    prediction = predictor.predict(kernels)
    took = time.monotonic() - started
    interval = interval_ms(prediction.total_ms, predictor.summary)
    warnings = caveats(prediction.kernels, prediction.sources, predictor.summary.get("ranges"))
    if fmt is OutputFormat.TABLE:
        title = f"{spec.label} on {device} ({runtime}, {threads} thread(s), {precision})"
        console.print(kernel_table(prediction, title, top))
    else:
        document = {
            "model": spec.label, "device": device, "runtime": runtime.value, "threads": threads,
            "precision": precision.value, "predicted_ms": prediction.total_ms,
            "interval_ms": list(interval) if interval else None, "calibrated": prediction.calibrated,
            "kernel_sum_ms": prediction.kernel_sum_ms, "measured_ms": measured.target_ms if measured else None,
            "measured_median_ms": measured.median_ms if measured else None,
            "error": prediction.total_ms / measured.target_ms - 1 if measured else None,
            "predictor_id": row.id, "predictor_runtime_version": built_with,
            "caveats": [{"kernel": c.kernel, "kernel_type": c.kernel_type, "reason": c.reason} for c in warnings],
        }  # fmt: skip
        write_records(kernel_records(prediction), KERNEL_COLUMNS, fmt, document, key="kernels")
    how = "calibrated" if prediction.calibrated else "uncalibrated: the calibration would give <= 0 ms here"
    line = f"predicted {prediction.total_ms:.3f} ms (kernel sum {prediction.kernel_sum_ms:.3f} ms, {how})"
    if interval is not None:
        errors = len(predictor.summary.get("calibration_errors") or [])
        line += f", expected {interval[0]:.3f}–{interval[1]:.3f} ms (90% of the {errors} training models' errors)"
    if measured is not None:
        what = (
            f"p10 {measured.target_ms:.3f} ms (median {measured.median_ms:.3f})"
            if measured.p10_ms
            else f"median {measured.median_ms:.3f} ms"
        )
        line += f"; measured {what}, error {prediction.total_ms / measured.target_ms - 1:+.1%}"
    built = f" ({runtime} {built_with})" if built_with else ""
    console.print(f"{line}; predictor {row.id}{built} of {row.created_at[:19]}; {took * 1e3:.0f} ms", highlight=False,
                  soft_wrap=True)  # fmt: skip
    _print_caveats(console, warnings, predictor.summary.get("ranges") is None)


SHOWN_CAVEATS = 10


def _print_caveats(console: Console, warnings: list[Caveat], no_ranges: bool) -> None:
    """The kernels a prediction should not be trusted on, on the notes stream (stderr with csv/json)."""
    if no_ranges:
        console.print("[yellow]warning[/] this predictor predates stored training ranges: shapes are not checked; "
                      "rebuild it to check them", highlight=False)  # fmt: skip
    if not warnings:
        return
    console.print(f"[yellow]warning[/] do not trust this prediction blindly: {len(warnings)} kernel(s)",
                  highlight=False)  # fmt: skip
    for c in warnings[:SHOWN_CAVEATS]:
        console.print(f"  {escape(c.kernel)} ({c.kernel_type}): {escape(c.reason)}", highlight=False, soft_wrap=True)
    if len(warnings) > SHOWN_CAVEATS:
        console.print(f"  ... and {len(warnings) - SHOWN_CAVEATS} more (--format json lists every one)")


def _measured(
    store: Store, sha: str, device: str, runtime: Runtime, threads: int, runtime_version: str | None
) -> Measured | None:
    """The newest measurement of this point, with the runtime version the predictor was built on (any version
    when the predictor does not say)."""
    frame = store.points_frame()
    hit = frame[(frame["artifact_sha"] == sha) & (frame["device"] == device) & (frame["runtime"] == runtime.value)
                & (frame["threads"] == threads) & (frame["status"] == PointStatus.DONE)]  # fmt: skip
    if runtime_version:
        hit = hit[hit["runtime_version"].isna() | (hit["runtime_version"] == runtime_version)]
    if hit.empty:
        return None
    last = hit.iloc[-1]
    return Measured(float(last["median_ms"]), float(last["p10_ms"]) if pd.notna(last["p10_ms"]) else None)


@dataclass(frozen=True)
class Measured:
    median_ms: float
    p10_ms: float | None

    @property
    def target_ms(self) -> float:
        return target_ms(self.median_ms, self.p10_ms)


KERNEL_COLUMNS = (
    "kernel", "type", "module", "cin", "cout", "h_in", "w_in", "kernel_size", "stride", "groups", "predicted_ms",
    "share", "priced_by",
)  # fmt: skip


def kernel_records(prediction: object) -> list[dict[str, object]]:
    """Every kernel of a prediction, most expensive first."""
    from harness.predict.predictor import Prediction

    assert isinstance(prediction, Prediction)
    total = float(prediction.kernel_us.sum()) or 1.0
    order = sorted(range(len(prediction.kernels)), key=lambda i: -prediction.kernel_us[i])
    records: list[dict[str, object]] = []
    for i in order:
        k, us = prediction.kernels[i], float(prediction.kernel_us[i])
        records.append({
            "kernel": k.name, "type": k.type.value, "module": k.module_path, "cin": k.cin, "cout": k.cout,
            "h_in": k.h_in, "w_in": k.w_in, "kernel_size": k.kernel_size, "stride": k.stride, "groups": k.groups,
            "predicted_ms": us / 1e3, "share": us / total, "priced_by": prediction.sources.get(i),
        })  # fmt: skip
    return records


def kernel_table(prediction: object, title: str, top: int) -> Table:
    from harness.predict.predictor import Prediction

    assert isinstance(prediction, Prediction)
    total = float(prediction.kernel_us.sum()) or 1.0
    table = Table(title=title)
    for col in ("kernel", "type", "module", "shape", "predicted ms", "share"):
        table.add_column(col, justify="right" if col in {"predicted ms", "share"} else "left")
    order = sorted(range(len(prediction.kernels)), key=lambda i: -prediction.kernel_us[i])
    for i in order[:top]:
        k, us = prediction.kernels[i], float(prediction.kernel_us[i])
        shape = f"{k.cin}→{k.cout} @{k.h_in}×{k.w_in}" + (f" k{k.kernel_size}" if k.kernel_size > 1 else "")
        shape += f" s{k.stride}" if k.stride > 1 else ""
        table.add_row(escape(k.name), k.type.value, escape(k.module_path or "-"), shape, f"{us / 1e3:.4f}",
                      f"{us / total:.1%}")  # fmt: skip
    if len(order) > top:
        rest = float(sum(prediction.kernel_us[i] for i in order[top:]))
        table.add_row(f"... {len(order) - top} more", "", "", "", f"{rest / 1e3:.4f}", f"{rest / total:.1%}")
    return table


def load_predictor(
    store: Store, device: str, runtime: Runtime, threads: int, precision: Precision
) -> tuple[PredictorRow, KernelPredictor]:
    row = store.latest_predictor(device, runtime.value, threads, precision.value)
    if row is None:
        raise FlopgapError(
            f"no predictor for {device} {runtime} t{threads} {precision} in {store.path}; run 'flopgap predictor "
            f"build --device {device} --runtime {runtime}' first (or 'flopgap predictor import FILE')"
        )
    return row, KernelPredictor.from_json(row.model)
