"""`flopgap calibrate`: measure a device's roofline (peak GFLOP/s, GB/s) through one runtime and store it.

Mount it with ``app.command("calibrate")(calibrate)`` in :mod:`harness.cli.main`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from devices.vocabulary import Runtime
from harness.cli.options import (
    CacheDirOpt,
    DbOpt,
    DeviceOpt,
    DevicesFileOpt,
    LabOpt,
    RuntimeOpt,
    ThreadsOpt,
    TrialsOpt,
)
from harness.cli.output import make_console
from harness.cli.sweep import make_exporter, open_named_devices
from harness.cli.user_errors import one_line_errors
from harness.measure.calibrate import PROTOCOL, Calibration, Kernel, store_calibration
from harness.measure.calibrate import calibrate as run_calibration
from harness.store import Store


def run_calibrate_command(
    device: str,
    runtime: Runtime,
    threads: int,
    trials: int,
    db: Path | None,
    cache_dir: Path | None,
    devices_file: Path | None,
    console: Console,
    lab: str | None = None,
    kernels: Sequence[Kernel] | None = None,
) -> Calibration:
    """Calibrate ``device`` (this host's, or with ``lab`` the lab's: its actor times the kernels on its own host,
    exported here) and store the result here; ``kernels`` default to the roofline's own."""
    protocol = PROTOCOL.model_copy(update={"trials": trials})
    dev = open_named_devices([device], devices_file, lab)[device]
    try:
        with console.status(f"calibrating {device} / {runtime} / {threads} thread(s)..."):
            exporter = make_exporter(cache_dir, protocol.parity)
            cal = run_calibration(dev, runtime, threads, exporter, kernels, protocol=protocol)
        with Store(db) as store:
            cal_id = store_calibration(store, dev, cal)
            where = store.path
    finally:
        dev.cleanup()
    console.print(calibration_table(cal))
    console.print(
        f"peak {cal.peak_gflops:.1f} GFLOP/s, bandwidth {cal.bandwidth_gbs:.1f} GB/s, ridge "
        f"{cal.ridge_flops_per_byte:.1f} FLOP/byte; stored as calibration {cal_id} in {where}",
        highlight=False,
    )
    return cal


def calibration_table(cal: Calibration) -> Table:
    table = Table(title=f"roofline of {cal.device} ({cal.runtime} {cal.runtime_version}, {cal.threads} thread(s))")
    for col in ("kernel", "kind", "MFLOP", "MB moved", "best median ms", "GFLOP/s", "GB/s"):
        table.add_column(col, justify="left" if col in {"kernel", "kind"} else "right")
    for t in cal.timings:
        table.add_row(
            t.kernel.name,
            t.kernel.kind,
            f"{t.kernel.flops / 1e6:.1f}",
            f"{t.kernel.bytes / 1e6:.1f}",
            f"{t.median_ns / 1e6:.3f}",
            f"{t.gflops:.1f}",
            f"{t.gbs:.1f}",
        )
    return table


@one_line_errors
def calibrate(
    device: DeviceOpt = "local",
    runtime: RuntimeOpt = Runtime.ONNXRUNTIME,
    threads: ThreadsOpt = 1,
    trials: TrialsOpt = PROTOCOL.trials,
    db: DbOpt = None,
    cache_dir: CacheDirOpt = None,
    devices_file: DevicesFileOpt = None,
    lab: LabOpt = None,
) -> None:
    """Measure peak GFLOP/s (1x1 convs) and memory GB/s (ReLU over 64-128 MiB) with the device's runtime.

    One calibration is stored per device, runtime and thread count; each kernel's best trial median is kept.
    Example: flopgap calibrate --device local --runtime litert --threads 2
    Example: flopgap calibrate --device pixel7 --runtime litert --lab 10.0.0.1:6379
    """
    run_calibrate_command(device, runtime, threads, trials, db, cache_dir, devices_file, make_console(), lab)
