"""What `flopgap sweep` and `flopgap run` do: wire spec, devices, exporter and store, show progress, summarise."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from core.errors import ExitCode, FlopgapError, Interrupted
from devices.base import Device
from devices.vocabulary import Format, Precision, Runtime
from exporters.artifact import Artifact
from harness.measure.spec import (
    QUICK_SPEC,
    Protocol,
    SweepPoint,
    SweepSpec,
    load_spec,
    model_selection,
    parse_spec,
)
from harness.measure.sweep import Exporter, Reporter, SweepResult, run_sweep
from harness.sources import ModelRef
from harness.store import Store
from harness.store.status import PointStatus


class ProgressReporter(Reporter):
    """Rich progress: points exported, then trials done/total with the current point and an ETA."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}"),
            console=console,
            transient=False,
        )
        self._export: Any = None
        self._measure: Any = None

    def __enter__(self) -> ProgressReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def exporting(self, done: int, total: int, label: str) -> None:
        if self._export is None:
            self._export = self.progress.add_task("export", total=total, current="")
        self.progress.update(self._export, completed=done, current=label)

    def measuring_started(self, total_trials: int, skipped_points: int) -> None:
        self._measure = self.progress.add_task("measure", total=total_trials, current="")

    def trial_started(self, point: SweepPoint, trial: int) -> None:
        self.progress.update(self._measure, current=f"{point.label} trial {trial + 1}")

    def trial_finished(self, point: SweepPoint, trial: int, median_ms: float | None) -> None:
        self.progress.advance(self._measure)

    def warning(self, message: str) -> None:
        self.progress.console.print(f"[yellow]warning[/] {escape(message)}", highlight=False)

    def point_failed(self, point: SweepPoint, reason: str) -> None:
        self.progress.console.print(f"[red]failed[/] {escape(point.label)}: {escape(reason)}", highlight=False)


def make_exporter(cache_dir: Path | None, parity: bool) -> Exporter:
    from harness.sources import source_artifact

    def _export(model: ModelRef, fmt: Format, precision: Precision) -> Artifact:
        return source_artifact(model, fmt, precision, cache_dir=cache_dir, check_parity=parity)

    return _export


def prepare_artifact(
    model: ModelRef,
    runtime: Runtime,
    precision: Precision,
    cache_dir: Path | None,
    console: Console,
    device: str,
    devices_file: Path | None,
) -> Artifact:
    """Export (or check) the one artifact of a single-point command first, so a model the runtime cannot take
    fails in one line (exit 2) instead of as a failed point; the sweep then finds it in the cache. An unknown
    device fails before any export."""
    from devices.inventory import load_inventory
    from harness.sources import source_artifact

    load_inventory(devices_file).get(device)
    with console.status(f"preparing {model.label} for {runtime} {precision}..."):
        return source_artifact(model, runtime.artifact_format, precision, cache_dir=cache_dir)


def open_devices(names: list[str], devices_file: Path | None) -> dict[str, Device]:
    from devices.inventory import load_inventory, open_device

    inventory = load_inventory(devices_file)
    return {name: open_device(inventory.get(name)) for name in names}


def inventory_threads(names: list[str], devices_file: Path | None) -> dict[str, list[int]]:
    from devices.inventory import load_inventory

    inventory = load_inventory(devices_file)
    return {name: list(getattr(inventory.get(name), "threads", None) or [1]) for name in names}


def run_sweep_command(
    spec_path: Path | None,
    quick: bool,
    db: Path | None,
    cache_dir: Path | None,
    devices_file: Path | None,
    console: Console,
) -> SweepResult:
    if quick == (spec_path is not None):
        raise FlopgapError("give either a sweep spec file or --quick (see 'flopgap sweep --help')")
    if spec_path is not None:
        spec = load_spec(spec_path)
        text = spec_path.read_text()  # the file as written, comments included
    else:
        spec, text = parse_spec(QUICK_SPEC, "quick"), QUICK_SPEC
    return run_spec_command(spec, text, db, cache_dir, devices_file, console)


def one_point_spec(
    title: str,
    model: ModelRef,
    runtime: Runtime,
    precision: Precision,
    threads: int,
    device: str,
    protocol: Protocol,
) -> SweepSpec:
    """The sweep spec of a single point (``flopgap run`` and ``flopgap profile``), named ``title model-label``."""
    return SweepSpec(
        name=f"{title} {model.label}",
        models=[model_selection(model)],
        runtimes=[runtime],
        precisions=[precision],
        threads=[threads],
        devices=[device],
        protocol=protocol,
    )


def measure(
    spec: SweepSpec,
    spec_text: str,
    db: Path | None,
    reporter: ProgressReporter,
    cache_dir: Path | None,
    devices_file: Path | None,
) -> tuple[SweepResult, Path]:
    """Run ``spec`` into the results database with progress; returns the result and the database's path.

    The devices are looked up first, so a bad name fails before a database is created; they are always closed.
    """
    devices = open_devices(spec.devices, devices_file)
    exporter = make_exporter(cache_dir, spec.protocol.parity)
    try:
        with Store(db) as store, reporter:
            try:
                result = run_sweep(
                    spec, spec_text, store, devices, exporter, reporter,
                    device_threads=inventory_threads(spec.devices, devices_file),
                )  # fmt: skip
            except KeyboardInterrupt:
                raise Interrupted(
                    f"interrupted; everything measured so far is saved in {store.path}; "
                    "rerun the same command to resume"
                ) from None
            return result, store.path
    finally:
        for dev in devices.values():
            dev.cleanup()


def run_spec_command(
    spec: SweepSpec,
    spec_text: str,
    db: Path | None,
    cache_dir: Path | None,
    devices_file: Path | None,
    console: Console,
) -> SweepResult:
    """Measure ``spec`` (stored with ``spec_text``) and print the summary table; returns the sweep's result, which
    the caller passes to :func:`exit_if_failed` after its own output (code 3 when a point or a profile failed)."""
    started = time.monotonic()
    result, path = measure(spec, spec_text, db, ProgressReporter(console), cache_dir, devices_file)
    with Store(path, readonly=True) as store:
        console.print(summary_table(store, result.point_ids, spec.name))
    profiles = f", {result.profile_failures} profiles failed" if result.profile_failures else ""
    console.print(
        f"{result.measured_trials} trials measured, {result.skipped_points} points already done (skipped), "
        f"{result.failed_points} failed{profiles}, in {time.monotonic() - started:.0f}s; results in {path}",
        highlight=False,
    )
    return result


def exit_if_failed(result: SweepResult) -> None:
    """Exit with code 3 when some of the sweep failed (each reason was printed): a script must not read it as done."""
    if not result.all_done:
        raise typer.Exit(ExitCode.SOME_FAILED)


def summary_table(store: Store, point_ids: list[int], title: str) -> Table:
    """One row per point of ``point_ids`` (exactly this sweep's: measured, skipped and failed); columns whose value
    is the same for every row move into the title (narrow terminals)."""
    frame = store.points_frame()
    frame = frame[frame["point_id"].isin(point_ids)]
    frame = frame.sort_values(["device", "macs", "model_label", "runtime", "format", "cluster"])
    # runtime before format: litert and litert-builtin share the tflite format and differ only by runtime
    varying = {k: k for k in ("runtime", "format", "precision", "threads", "device", "cluster")}
    if not frame["cluster"].notna().any():  # nothing pinned to a cluster: no column, no caption
        del varying["cluster"]
    constant = {k: frame[k].iloc[0] for k in varying if len(frame) and frame[k].nunique(dropna=False) == 1}
    shown = [k for k in varying if k not in constant]
    caption = " · ".join(f"{k} {v}" for k, v in constant.items())
    table = Table(title=f"sweep '{escape(title)}'" + (f" ({escape(caption)})" if caption else ""))
    # Numbers never wrap or truncate; the model label and the status fold onto more lines instead.
    table.add_column("model", overflow="fold", ratio=3)
    table.add_column("MACs", justify="right", no_wrap=True, min_width=6)
    for col in shown:
        table.add_column(col, justify="right" if col == "threads" else "left", no_wrap=True, min_width=len(col))
    table.add_column("median ms", justify="right", no_wrap=True, min_width=9)
    table.add_column("95% CI", no_wrap=True, min_width=11)
    table.add_column("CV", justify="right", no_wrap=True, min_width=5)
    table.add_column("noisy", overflow="fold", ratio=1)
    for row in frame.itertuples():
        head = [escape(row.model_label), _macs(row.macs), *(str(getattr(row, col)) for col in shown)]
        if row.status != PointStatus.DONE:
            reason = escape(str(row.failure_reason or ""))
            table.add_row(*head, "-", "-", "-", f"[red]{row.status}[/]: {reason}")
            continue
        no_ci = row.ci_low_ms is None or row.ci_low_ms != row.ci_low_ms  # NaN: summary-only trials have no CI
        ci = "-" if no_ci else f"{row.ci_low_ms:.3f}-{row.ci_high_ms:.3f}"
        table.add_row(*head, f"{row.median_ms:.3f}", ci, f"{row.cv:.1%}", "[yellow]noisy[/]" if row.noisy else "")
    return table


def _macs(v: Any) -> str:
    try:
        return f"{float(v) / 1e6:.1f}M"
    except (TypeError, ValueError):
        return "-"
