"""`flopgap profile`: measure one model point and store where its time goes (per ONNX node, per TFLite block).

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

from devices.errors import FlopgapError, Interrupted
from harness.cli.options import CacheDirOpt, DbOpt, DeviceOpt, DevicesFileOpt, ParamOpt, PrecisionOpt, ThreadsOpt
from harness.cli.sweep import ProgressReporter, make_exporter, open_devices
from harness.measure.profile import OpProfile
from harness.measure.spec import RUNTIMES, SweepPoint, parse_spec
from harness.measure.sweep import run_sweep
from harness.store import Store
from harness.zoo.registry import parse_param_args, resolve


class _ProfileReporter(ProgressReporter):
    """Progress as for a sweep, and the profiles as they are taken (with the whole-model median of that pass)."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.profiles: list[tuple[SweepPoint, OpProfile]] = []

    def point_profiled(self, point: SweepPoint, profile: OpProfile) -> None:
        self.profiles.append((point, profile))


def profile_spec_text(
    name: str,
    params: list[str],
    runtime: str,
    precision: str,
    threads: int,
    trials: int,
    runs: int,
    min_seconds: float,
    device: str,
    depth: int,
) -> str:
    """The one-point sweep spec (TOML) that `flopgap profile` runs."""
    model = resolve(name, **parse_param_args(params))
    if runtime not in RUNTIMES:
        raise FlopgapError(f"--runtime '{runtime}' is not supported; allowed: {', '.join(RUNTIMES)}")
    kv = ", ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {str(v).lower()}" for k, v in model.params)
    return (
        f'name = "profile {model.label}"\nruntimes = ["{runtime}"]\nprecisions = ["{precision}"]\n'
        f'threads = [{threads}]\ndevices = ["{device}"]\n'
        f'[[models]]\nname = "{model.name}"\nparams = {{ {kv} }}\n'
        f"[protocol]\ntrials = {trials}\nruns = {runs}\nmin_seconds = {min_seconds}\n"
        f"profile = true\nprofile_depth = {depth}\n"
    )


def run_profile_command(
    name: str,
    params: list[str],
    runtime: str,
    precision: str,
    threads: int,
    trials: int,
    runs: int,
    min_seconds: float,
    device: str,
    depth: int,
    top: int,
    db: Path | None,
    cache_dir: Path | None,
    devices_file: Path | None,
    console: Console,
) -> None:
    text = profile_spec_text(name, params, runtime, precision, threads, trials, runs, min_seconds, device, depth)
    spec = parse_spec(text, "flopgap profile")
    devices = open_devices(spec.devices, devices_file)
    started = time.monotonic()
    with Store(db) as store:
        rep = _ProfileReporter(console)
        try:
            with rep:
                result = run_sweep(spec, text, store, devices, make_exporter(cache_dir, spec.protocol.parity), rep)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; everything measured so far is saved in {store.path}; rerun the same command to resume"
            ) from None
        finally:
            for dev in devices.values():
                dev.cleanup()
        points = store.points_frame()
        points = points[points["point_id"].isin(result.point_ids)]
        for row in points.itertuples():
            ops = store.op_profiles_frame([int(row.point_id)])
            if row.status != "done" or ops.empty:
                console.print(f"[red]no profile[/] for {escape(str(row.model_label))} ({row.status})")
                continue
            console.print(profile_table(ops, f"{row.model_label} {row.runtime} t{row.threads} @{row.device}", top))
            same_pass = next((p for _, p in rep.profiles), None)
            console.print(ratio_line(ops, float(row.median_ms), same_pass), highlight=False)
    console.print(f"done in {time.monotonic() - started:.0f}s; results in {store.path}", highlight=False)


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


def profile(
    name: Annotated[str, typer.Argument(help="Registered model name (see 'flopgap models').")],
    param: ParamOpt = None,
    runtime: Annotated[str, typer.Option(help="onnxruntime (per node) or litert / litert-builtin (per block).")] = (
        "onnxruntime"
    ),
    precision: PrecisionOpt = "fp32",
    threads: ThreadsOpt = 1,
    trials: Annotated[int, typer.Option(help="Timed trials before profiling.")] = 1,
    runs: Annotated[int, typer.Option(help="Minimum timed runs per trial (and per block).")] = 50,
    min_seconds: Annotated[float, typer.Option(help="Minimum timed seconds per trial (and per block).")] = 1.0,
    depth: Annotated[int, typer.Option(help="TFLite: module-tree depth of the blocks (Sequentials expand).")] = 1,
    top: Annotated[int, typer.Option(help="Rows to show.")] = 25,
    device: DeviceOpt = "local",
    db: DbOpt = None,
    cache_dir: CacheDirOpt = None,
    devices_file: DevicesFileOpt = None,
) -> None:
    """Time one model, then store where its time goes: per ONNX node (ORT profiler) or per TFLite block.

    Example: flopgap profile shufflenet_v2 --param scale=0.5 --runtime litert --depth 2
    """
    run_profile_command(
        name,
        param or [],
        runtime,
        precision,
        threads,
        trials,
        runs,
        min_seconds,
        device,
        depth,
        top,
        db,
        cache_dir,
        devices_file,
        Console(),
    )
