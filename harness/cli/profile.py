"""`flopgap profile`: measure one model point and store where its time goes (per ONNX node, per LiteRT operator or
TFLite block, per ExecuTorch event).

It is `flopgap run` with the sweep protocol's ``profile = true``: the point is timed in trials as usual, then
profiled once (see :mod:`harness.measure.profile`), and both land in the results database. A point that already has
a profile is not profiled again; its stored rows are shown.

Mount it with ``app.command("profile")(profile)`` in :mod:`harness.cli.main`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from devices.core.errors import ExitCode
from devices.vocabulary import Runtime
from harness.cli.model_args import cli_model, pick_precision, pick_runtime
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
    TrialsOpt,
)
from harness.cli.output import make_console
from harness.cli.sweep import ProgressReporter, exit_if_failed, measure, one_point_spec, prepare_artifact
from harness.cli.user_errors import one_line_errors
from harness.measure.profile import OpProfile
from harness.measure.spec import Protocol, SweepPoint, SweepSpec, spec_to_toml
from harness.store import Store
from harness.store.status import PointStatus


class _ProfileReporter(ProgressReporter):
    """Progress as for a sweep, and the profiles as they are taken (with the whole-model median of that pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.profiles: list[tuple[SweepPoint, OpProfile]] = []

    def point_profiled(self, point: SweepPoint, profile: OpProfile) -> None:
        self.profiles.append((point, profile))


def run_profile_command(
    spec: SweepSpec,
    db: Path | None,
    cache_dir: Path | None,
    devices_file: Path | None,
    top: int,
    console: Console,
    lab: str | None = None,
) -> None:
    """Measure and profile the point(s) of ``spec`` and print the ``top`` rows of each profile."""
    started = time.monotonic()
    rep = _ProfileReporter()
    result, path = measure(spec, spec_to_toml(spec), db, rep, cache_dir, devices_file, lab)
    unprofiled = 0
    with Store(path, readonly=True) as store:
        points = store.points_frame()
        points = points[points["point_id"].isin(result.point_ids)]
        for row in points.itertuples():
            ops = store.op_profiles_frame([int(row.point_id)])
            if row.status != PointStatus.DONE or ops.empty:
                console.print(f"[red]no profile[/] for {escape(str(row.model_label))} ({row.status})")
                unprofiled += 1
                continue
            title = f"{row.model_label} {row.runtime} t{row.threads} @{row.device}"
            if not has_module_paths(ops):
                console.print(f"{NO_MODULE_PATHS}: grouped by op type", highlight=False)
                console.print(op_type_table(ops, title))
            else:
                console.print(profile_table(ops, title, top))
            same_pass = next((p for _, p in rep.profiles), None)
            console.print(ratio_line(ops, float(row.median_ms), same_pass), highlight=False)
            if row.runtime == Runtime.EXECUTORCH.value:
                console.print(xnnpack_mapping_line(ops), highlight=False)
    console.print(f"done in {time.monotonic() - started:.0f}s; results in {path}", highlight=False)
    if unprofiled:
        raise typer.Exit(ExitCode.SOME_FAILED)
    exit_if_failed(result)


def ratio_line(ops: pd.DataFrame, point_median_ms: float, same_pass: OpProfile | None) -> str:
    """Sum of the rows against the point's median (and against the median of the profiling pass itself)."""
    total_ms = float(ops["time_us"].sum()) / 1e3
    line = (
        f"{len(ops)} rows sum to {total_ms:.3f} ms; point median {point_median_ms:.3f} ms; "
        f"ratio {total_ms / point_median_ms:.3f}"
    )
    if same_pass is not None:
        line += f" (same pass: whole {same_pass.whole_us / 1e3:.3f} ms, ratio {same_pass.ratio:.3f})"
    return line


def xnnpack_mapping_line(ops: pd.DataFrame) -> str:
    """How many of an ExecuTorch profile's XNNPACK rows were given a graph node, and how much time the rest hold."""
    from harness.proxies.executorch_ops import named_by_op

    xnnpack = ops[ops["op_type"].astype(str).str.contains(" (", regex=False)]
    by_name = xnnpack["node_name"].astype(str).map(named_by_op)
    total = float(ops["time_us"].sum()) or 1.0
    share = float(xnnpack.loc[by_name, "time_us"].sum()) / total
    zero = int((xnnpack["time_us"] <= 0).sum())
    return (
        f"XNNPACK ops: {int((~by_name).sum())} mapped to graph nodes by their order in the delegate, "
        f"{int(by_name.sum())} reported by op name only ({share:.1%} of the summed time: layout transposes, "
        "reshapes, copies, and the compute ops of delegate calls whose op order did not match; their module is "
        "the one holding the whole delegate call)"
        + (f"; {zero} read 0 µs: XNNPACK times its ops in whole microseconds, so theirs is in their delegate call's "
           "row (profile a larger input for per-op times)" if zero else "")
    )  # fmt: skip


NO_MODULE_PATHS = "this graph names no torch modules (exported by another tool)"


def has_module_paths(ops: pd.DataFrame) -> bool:
    """Whether any row of a profile maps to a torch module (a foreign graph's rows map to none)."""
    paths = ops["module_path"].dropna().astype(str)
    return bool((paths != "").any())


def op_type_table(ops: pd.DataFrame, title: str) -> Table:
    """A profile summed per op type, most expensive first (for graphs with no module paths)."""
    total = float(ops["time_us"].sum()) or 1.0
    grouped = ops.groupby("op_type", as_index=False).agg(nodes=("node_name", "count"), time_us=("time_us", "sum"))
    table = Table(title=f"{title} · by op type")
    for col in ("op", "nodes", "time us", "share"):
        table.add_column(col, justify="left" if col == "op" else "right")
    for row in grouped.sort_values("time_us", ascending=False).itertuples():
        table.add_row(escape(str(row.op_type)), str(row.nodes), f"{row.time_us:.1f}", f"{row.time_us / total:.1%}")
    return table


def profile_table(ops: pd.DataFrame, title: str, top: int) -> Table:
    """The ``top`` most expensive rows with their share of the summed time."""
    total = float(ops["time_us"].sum()) or 1.0
    table = Table(title=title)
    for col in ("node / block", "op", "module", "time us", "share"):
        table.add_column(col, justify="right" if col in {"time us", "share"} else "left")
    shown = ops.sort_values("time_us", ascending=False).head(top)
    for row in shown.itertuples():
        table.add_row(
            escape(str(row.node_name)),
            escape(str(row.op_type)),
            escape(_text(row.module_path)),
            f"{row.time_us:.1f}",
            f"{row.time_us / total:.1%}",
        )
    if len(ops) > len(shown):
        rest = ops.sort_values("time_us", ascending=False).iloc[len(shown) :]["time_us"].sum()
        table.add_row(f"... {len(ops) - len(shown)} more", "", "", f"{rest:.1f}", f"{rest / total:.1%}")
    return table


def _text(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value) or "(model)"


@one_line_errors
def profile(
    name: ModelArg,
    param: ParamOpt = None,
    input_shape: InputShapeOpt = None,
    runtime: ModelRuntimeOpt = None,
    precision: ModelPrecisionOpt = None,
    threads: ThreadsOpt = 1,
    trials: TrialsOpt = 1,
    runs: RunsOpt = 50,
    min_seconds: MinSecondsOpt = 1.0,
    depth: Annotated[
        int,
        typer.Option(
            min=1,
            help="TFLite timed block by block (a LiteRT without per-op profiler): module-tree "
            "depth of the blocks (Sequentials expand).",
        ),
    ] = 1,
    top: Annotated[int, typer.Option(min=1, help="Rows to show.")] = 25,
    device: DeviceOpt = "local",
    db: DbOpt = None,
    cache_dir: CacheDirOpt = None,
    devices_file: DevicesFileOpt = None,
    lab: LabOpt = None,
) -> None:
    """Time one model, then store where its time goes: per ONNX node (ORT profiler), per LiteRT operator (LiteRT 2.3's
    C API profiler; per TFLite block where the device's LiteRT has none) or per ExecuTorch event (ETDump).

    The runtime defaults to onnxruntime (a model file: its own format's runtime).

    Example: flopgap profile shufflenet_v2 --param scale=0.5 --runtime litert
    """
    console = make_console()
    model = cli_model(name, param, input_shape)
    chosen = pick_runtime(model, runtime, Runtime.ONNXRUNTIME)
    level = pick_precision(model, precision)
    prepare_artifact(model, chosen, level, cache_dir, console, device, devices_file, lab)
    protocol = Protocol(trials=trials, runs=runs, min_seconds=min_seconds, profile=True, profile_depth=depth)
    spec = one_point_spec("profile", model, chosen, level, threads, device, protocol)
    run_profile_command(spec, db, cache_dir, devices_file, top, console, lab)
