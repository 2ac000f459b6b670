"""``flopgap sweep``, and what it shares with ``run``: wire spec, devices, exporter and store, show progress,
summarise as a table, CSV or JSON."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from devices.base import Device
from devices.core.errors import ExitCode, FlopgapError, Interrupted
from devices.vocabulary import Format, Precision, Runtime
from exporters.artifact import Artifact
from harness.cli.options import CacheDirOpt, DbOpt, DevicesFileOpt, LabOpt
from harness.cli.output import OutputFormat, OutputFormatOpt, make_console, notes_console, plain, write_records
from harness.cli.user_errors import one_line_errors
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


@one_line_errors
def sweep(
    spec_path: Annotated[Path | None, typer.Argument(metavar="SPEC", help="Sweep spec (TOML).")] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Run the built-in quick sweep (6 models, ONNX and TFLite).")
    ] = False,
    db: DbOpt = None,
    cache_dir: CacheDirOpt = None,
    devices_file: DevicesFileOpt = None,
    fmt: OutputFormatOpt = OutputFormat.TABLE,
    lab: LabOpt = None,
) -> None:
    """Measure every point of a sweep spec; resumable: a rerun skips finished points and trials.

    With --format csv or json, stdout holds one row per point of the sweep (progress goes to stderr). With --lab,
    the spec's devices are the lab's, measured on their own hosts; the results go to this host's database.

    Example: flopgap sweep --quick      or      flopgap sweep examples/sweep.toml --lab 10.0.0.1:6379
    """
    from harness.cli.sustained import report_sustained
    from harness.store import resolve_db_path

    result = run_sweep_command(spec_path, quick, db, cache_dir, devices_file, fmt, lab)
    path = resolve_db_path(db)
    # nothing without sustained trials
    report_sustained(notes_console(fmt), path, result.point_ids, path.parent / "timelines")
    exit_if_failed(result)


class ProgressReporter(Reporter):
    """Rich progress: points exported, then trials done/total with the current point and an ETA.

    Progress, warnings and failures go to stderr, so stdout holds only the result (a table, CSV or JSON) when it
    is piped to a file or a script."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or make_console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}"),
            console=self.console,
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
    lab: str | None = None,
) -> Artifact:
    """Export (or check) the one artifact of a single-point command first, so a model the runtime cannot take
    fails in one line (exit 2) instead of as a failed point; the sweep then finds it in the cache. An unknown
    device fails before any export (a lab's device: when the lab is asked for it)."""
    from devices.inventory import load_inventory
    from harness.sources import source_artifact

    if lab is None:
        load_inventory(devices_file).get(device)
    with console.status(f"preparing {model.label} for {runtime} {precision}..."):
        return source_artifact(model, runtime.artifact_format, precision, cache_dir=cache_dir)


def open_devices(names: list[str], devices_file: Path | None) -> dict[str, Device]:
    from devices.inventory import load_inventory, open_device

    inventory = load_inventory(devices_file)
    return {name: open_device(inventory.get(name)) for name in names}


def open_named_devices(names: list[str], devices_file: Path | None, lab: str | None) -> dict[str, Device]:
    """``names`` from this host's inventory, or with ``lab`` the lab's devices (each measured by its actor)."""
    if lab is None:
        return open_devices(names, devices_file)
    from harness.lab.driver import lab_devices, open_lab

    return lab_devices(open_lab(lab), names).devices


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
    fmt: OutputFormat = OutputFormat.TABLE,
    lab: str | None = None,
) -> SweepResult:
    if quick == (spec_path is not None):
        raise FlopgapError("give either a sweep spec file or --quick (see 'flopgap sweep --help')")
    if spec_path is not None:
        spec = load_spec(spec_path)
        text = spec_path.read_text()  # the file as written, comments included
    else:
        spec, text = parse_spec(QUICK_SPEC, "quick"), QUICK_SPEC
    return run_spec_command(spec, text, db, cache_dir, devices_file, fmt, lab)


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
    lab: str | None = None,
) -> tuple[SweepResult, Path]:
    """Run ``spec`` into the results database with progress; returns the result and the database's path.

    The devices are looked up first, so a bad name fails before a database is created; they are always closed.
    With ``lab`` (an address) they are the lab's devices, and zoo models export as tasks across the lab.
    """
    devices, exporter, threads = _open(spec, cache_dir, devices_file, lab)
    try:
        with Store(db) as store, reporter:
            try:
                result = run_sweep(
                    spec, spec_text, store, devices, exporter, reporter,
                    device_threads=threads,
                )  # fmt: skip
            except KeyboardInterrupt as stop:
                raise Interrupted.by(
                    stop,
                    f"interrupted; everything measured so far is saved in {store.path}; "
                    "rerun the same command to resume",
                ) from None
            return result, store.path
    finally:
        for dev in devices.values():
            dev.cleanup()


def _open(
    spec: SweepSpec, cache_dir: Path | None, devices_file: Path | None, lab: str | None
) -> tuple[dict[str, Device], Exporter, dict[str, list[int]]]:
    """The spec's devices, its exporter and each device's thread counts: this host's inventory, or the lab's."""
    if lab is None:
        devices = open_devices(spec.devices, devices_file)
        return devices, make_exporter(cache_dir, spec.protocol.parity), inventory_threads(spec.devices, devices_file)
    from harness.lab.driver import LabExporter, lab_devices, open_lab
    from harness.measure.spec import expand_points

    ray = open_lab(lab)
    found = lab_devices(ray, spec.devices)
    exporter = LabExporter(ray, found.shelf, cache_dir, spec.protocol.parity)
    points = expand_points(spec, found.threads)
    exporter.start(list(dict.fromkeys((p.model, Format(p.format), Precision(p.precision)) for p in points)))
    return found.devices, exporter, found.threads


def run_spec_command(
    spec: SweepSpec,
    spec_text: str,
    db: Path | None,
    cache_dir: Path | None,
    devices_file: Path | None,
    fmt: OutputFormat = OutputFormat.TABLE,
    lab: str | None = None,
) -> SweepResult:
    """Measure ``spec`` (stored with ``spec_text``) and print its summary (a table, or CSV/JSON on stdout with the
    closing line on stderr); returns the sweep's result, which the caller passes to :func:`exit_if_failed` after its
    own output (code 3 when a point or a profile failed)."""
    started = time.monotonic()
    result, path = measure(spec, spec_text, db, ProgressReporter(), cache_dir, devices_file, lab)
    with Store(path, readonly=True) as store:
        records = summary_records(store, result.point_ids)
    elapsed = time.monotonic() - started
    if fmt is OutputFormat.TABLE:
        make_console().print(summary_table(records, spec.name))
    else:
        totals = {
            "spec": spec.name,
            "db": str(path),
            "measured_trials": result.measured_trials,
            "skipped_points": result.skipped_points,
            "failed_points": result.failed_points,
            "profile_failures": result.profile_failures,
            "elapsed_s": round(elapsed, 1),
        }
        write_records(records, SUMMARY_COLUMNS, fmt, totals, key="points")
    profiles = f", {result.profile_failures} profiles failed" if result.profile_failures else ""
    notes_console(fmt).print(
        f"{result.measured_trials} trials measured, {result.skipped_points} points already done (skipped), "
        f"{result.failed_points} failed{profiles}, in {elapsed:.0f}s; results in {path}",
        highlight=False,
        soft_wrap=True,
    )
    return result


def exit_if_failed(result: SweepResult) -> None:
    """Exit with code 3 when some of the sweep failed (each reason was printed): a script must not read it as done."""
    if not result.all_done:
        raise typer.Exit(ExitCode.SOME_FAILED)


# One row per point, as scripts read it (--format csv|json) and as the table shows it.
SUMMARY_COLUMNS = (
    "point_id", "model", "macs", "device", "cluster", "runtime", "format", "precision", "threads", "status",
    "median_ms", "ci_low_ms", "ci_high_ms", "cv", "noisy", "failure_reason",
)  # fmt: skip


def summary_records(store: Store, point_ids: list[int]) -> list[dict[str, Any]]:
    """Exactly this sweep's points (measured, skipped and failed), sorted as the table shows them."""
    frame = store.points_frame()
    frame = frame[frame["point_id"].isin(point_ids)]
    # runtime before format: litert and litert-builtin share the tflite format and differ only by runtime
    frame = frame.sort_values(["device", "macs", "model_label", "runtime", "format", "cluster"])
    records = []
    for row in frame.itertuples():
        done = row.status == PointStatus.DONE
        records.append(
            {
                "point_id": int(row.point_id),
                "model": row.model_label,
                "macs": plain(row.macs),
                "device": row.device,
                "cluster": plain(row.cluster),
                "runtime": row.runtime,
                "format": plain(row.format),
                "precision": plain(row.precision),
                "threads": plain(row.threads),
                "status": row.status,
                "median_ms": plain(row.median_ms) if done else None,
                "ci_low_ms": plain(row.ci_low_ms) if done else None,  # None: summary-only trials have no CI
                "ci_high_ms": plain(row.ci_high_ms) if done else None,
                "cv": plain(row.cv) if done else None,
                "noisy": bool(row.noisy) if done and plain(row.noisy) is not None else None,
                "failure_reason": plain(row.failure_reason),
            }
        )
    return records


def summary_table(records: list[dict[str, Any]], title: str) -> Table:
    """The records as a table; columns whose value is the same for every row move into the title."""
    varying = ["runtime", "format", "precision", "threads", "device", "cluster"]
    if not any(r["cluster"] is not None for r in records):  # nothing pinned to a cluster: no column, no caption
        varying.remove("cluster")
    constant = {k: records[0][k] for k in varying if records and len({str(r[k]) for r in records}) == 1}
    shown = [k for k in varying if k not in constant]
    caption = " · ".join(f"{k} {v}" for k, v in constant.items())
    heading = f"sweep '{title}'" + (f" ({caption})" if caption else "")
    # min_width: the title stays on one line where the console is wide enough (always, in a pipe)
    table = Table(title=escape(heading), min_width=len(heading))
    # Numbers never wrap or truncate; the model label and the status fold onto more lines in a narrow terminal.
    table.add_column("model", overflow="fold", ratio=3)
    table.add_column("MACs", justify="right", no_wrap=True, min_width=6)
    for col in shown:
        table.add_column(col, justify="right" if col == "threads" else "left", no_wrap=True, min_width=len(col))
    table.add_column("median ms", justify="right", no_wrap=True, min_width=9)
    table.add_column("95% CI", no_wrap=True, min_width=11)
    table.add_column("CV", justify="right", no_wrap=True, min_width=5)
    table.add_column("noisy", overflow="fold", ratio=1)
    for r in records:
        head = [escape(str(r["model"])), _macs(r["macs"]), *(str(r[col]) for col in shown)]
        if r["status"] != PointStatus.DONE:
            reason = escape(" ".join(str(r["failure_reason"] or "").split()))  # one line per point, even in a pipe
            table.add_row(*head, "-", "-", "-", f"[red]{r['status']}[/]: {reason}")
            continue
        ci = "-" if r["ci_low_ms"] is None else f"{r['ci_low_ms']:.3f}-{r['ci_high_ms']:.3f}"
        table.add_row(*head, f"{r['median_ms']:.3f}", ci, f"{r['cv']:.1%}", "[yellow]noisy[/]" if r["noisy"] else "")
    return table


def _macs(v: Any) -> str:
    try:
        return f"{float(v) / 1e6:.1f}M"
    except (TypeError, ValueError):
        return "-"
