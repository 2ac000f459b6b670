"""`flopgap predictor build --device a,b,c`: one build per device, in parallel through a lab, else one after another.

With ``--lab`` each device's trials run on its own actor on its own host, so the driver mostly waits: one thread per
device, each build with its own :class:`~harness.store.Store` connection (WAL; every write is a short ``BEGIN
IMMEDIATE`` transaction, so writers from threads wait their turn). Without a lab the devices share this host's CPU,
so they build one after another. A device that fails (a lost host, a version mismatch) fails only its own build.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from devices.base import Device
from devices.core.errors import FlopgapError
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.measure.spec import SweepPoint
from harness.measure.sweep import Exporter
from harness.predict.adapt import AdaptPlan, adapt_predictor
from harness.predict.build import BuildPlan, BuildReporter, BuildResult, build_predictor
from harness.sources import ModelRef
from harness.store import Store

DEVICES_FILE_MIXUP = "--devices is the inventory file; name several devices with --device a,b,c"


def device_names(device: str, devices_file: Path | None) -> list[str]:
    """The devices of ``--device a,b,c``, in order, each once; a ``--devices a,b,c`` meant as names refused in one
    line (``--devices`` is the inventory file on every command)."""
    if devices_file is not None and "," in devices_file.name and not devices_file.exists():
        raise FlopgapError(DEVICES_FILE_MIXUP)
    names = list(dict.fromkeys(n.strip() for n in device.split(",") if n.strip()))
    if not names:
        raise FlopgapError(f"--device '{device}' names no device; write e.g. --device local or --device a,b,c")
    return names


@dataclass
class BuildEvents:
    """What the builds did, in the order it happened (thread-safe): ``(device, "start" | "probe" | "trial" | "done" |
    "failed")``."""

    order: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, device: str, event: str) -> None:
        with self._lock:
            self.order.append((device, event))


class DeviceLines(BuildReporter):
    """One device's progress as plain lines prefixed with its name (several builds' live bars would overwrite
    each other)."""

    def __init__(self, device: str, console: Console, events: BuildEvents) -> None:
        self.device = device
        self.console = console
        self.events = events

    def _line(self, text: str) -> None:
        self.console.print(f"[bold]{escape(self.device)}[/] {text}", highlight=False, soft_wrap=True)

    def stage(self, message: str) -> None:
        self._line(escape(message))

    def probe_measured(self, done: int, label: str, median_ms: float | None, round_: int) -> None:
        self.events.add(self.device, "probe")
        if done % 25 == 0:
            ms = f"{median_ms:.3f} ms" if median_ms is not None else "-"
            self._line(f"{done} probes measured (round {round_}; last {escape(label)}: {ms})")

    def trial_finished(self, point: SweepPoint, trial: int, median_ms: float | None) -> None:
        self.events.add(self.device, "trial")

    def warning(self, message: str) -> None:
        self._line(f"[yellow]warning[/] {escape(message)}")

    def point_failed(self, point: SweepPoint, reason: str) -> None:
        self._line(f"[red]failed[/] {escape(point.label)}: {escape(reason)}")


@dataclass(frozen=True)
class DeviceBuild:
    """One device's build: its result, or the one line it failed with."""

    device: str
    result: BuildResult | None
    error: str | None = None

    def summary(self) -> str:
        if self.result is None:
            return f"{self.device}: failed: {self.error}"
        r = self.result
        return (f"{self.device}: predictor {r.predictor_id}, {r.probes_total} probes ({r.probes_measured} measured "
                f"now), {r.models} zoo models, build time {r.build_s:.0f}s")  # fmt: skip


def serialised(exporter: Exporter) -> Exporter:
    """``exporter`` one call at a time: torch's exporters are not thread-safe, and exports are this host's CPU work
    either way (the devices' trials still overlap)."""
    lock = threading.Lock()

    def export(model: ModelRef, fmt: Format, precision: Precision) -> Artifact:
        with lock:
            return exporter(model, fmt, precision)

    return export


def run_builds(
    devices: dict[str, Device],
    plan_for: Callable[[str], BuildPlan],
    db: Path | None,
    exporter: Exporter,
    console: Console,
    parallel: bool,
    events: BuildEvents | None = None,
) -> list[DeviceBuild]:
    """Build (or adapt, for an :class:`AdaptPlan`) each device's predictor into ``db``: in parallel threads or one
    after another; a device's failure is its own :class:`DeviceBuild`, the others go on."""
    log = events or BuildEvents()
    with Store(db) as store:  # created and upgraded once, before the threads open their own connections
        path = store.path
    export = serialised(exporter)

    def one(name: str) -> DeviceBuild:
        log.add(name, "start")
        plan = plan_for(name)
        reporter = DeviceLines(name, console, log)
        try:
            with Store(path) as store:
                if isinstance(plan, AdaptPlan):
                    result = adapt_predictor(plan, store, devices[name], export, reporter)
                else:
                    result = build_predictor(plan, store, devices[name], export, reporter)
        except FlopgapError as exc:
            log.add(name, "failed")
            return DeviceBuild(name, None, str(exc).strip().splitlines()[0])
        log.add(name, "done")
        return DeviceBuild(name, result)

    started = time.monotonic()
    builds = _in_threads(one, list(devices)) if parallel and len(devices) > 1 else [one(name) for name in devices]
    for b in builds:
        console.print(escape(b.summary()), highlight=False, soft_wrap=True)
    failed = [b.device for b in builds if b.result is None]
    console.print(f"{len(builds) - len(failed)} of {len(builds)} predictors built in "
                  f"{time.monotonic() - started:.0f}s; stored in {path}"
                  + (f"; failed: {', '.join(failed)}" if failed else ""), highlight=False)  # fmt: skip
    return builds


def _in_threads(one: Callable[[str], DeviceBuild], names: list[str]) -> list[DeviceBuild]:
    """``one`` of each name, each in its own thread. Daemon threads: Ctrl-C ends the driver at once (every write is
    its own transaction, so a build cut short resumes); a bug in one build is raised here once all are over."""
    done: dict[str, DeviceBuild] = {}
    crashed: list[BaseException] = []

    def run(name: str) -> None:
        try:
            done[name] = one(name)
        except BaseException as exc:  # raised again in the driver's own thread, with its traceback
            crashed.append(exc)

    threads = [threading.Thread(target=run, args=(n,), name=f"build-{n}", daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()  # interruptible: Ctrl-C reaches the driver while it waits
    if crashed:
        raise crashed[0]
    return [done[n] for n in names]
