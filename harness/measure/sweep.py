"""Run a sweep: export every artifact, then measure every point in interleaved trials, committing as it goes.

Trials are interleaved across points (trial 0 of every point, then trial 1 of every point, ...) so drift and
heat spread evenly over models. Each trial is committed when it completes; a point's summary when its last
trial is in. A rerun of the same sweep skips finished points and finished trials, so an interrupted sweep
resumes where it stopped and never duplicates.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from devices.base import Device, TrialRequest
from devices.bounded import bounded
from devices.core.errors import FlopgapError
from devices.errors import DeviceError, DeviceUnreachable, RunnerMissing, TrialFailed
from devices.result import TrialResult
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.measure.cooldown import ThermalCooldown, device_temperatures, hot_trials
from harness.measure.placement import place_points
from harness.measure.recording import ensure_point, record_devices
from harness.measure.spec import Cooldown, SweepPoint, SweepSpec, expand_points
from harness.measure.spec import Protocol as SweepProtocol
from harness.measure.stats import combine_summaries, combine_trials, target_ms
from harness.measure.sustained import summarize_point
from harness.measure.trial import trial_request
from harness.measure.versions import point_versions
from harness.sources import ModelRef, source_counts
from harness.store import DuplicateTrialError, PointStatus, Store
from harness.store.status import RunStatus

if TYPE_CHECKING:
    from harness.measure.profile import OpProfile


class Reporter:
    """What a sweep tells as it goes; every hook does nothing here, so a reporter overrides only what it shows."""

    def exporting(self, done: int, total: int, label: str) -> None:
        pass

    def measuring_started(self, total_trials: int, skipped_points: int) -> None:
        pass

    def trial_started(self, point: SweepPoint, trial: int) -> None:
        pass

    def trial_finished(self, point: SweepPoint, trial: int, median_ms: float | None) -> None:
        pass

    def point_failed(self, point: SweepPoint, reason: str) -> None:
        pass

    def point_profiled(self, point: SweepPoint, profile: OpProfile) -> None:
        pass

    def warning(self, message: str) -> None:
        pass


@dataclass
class PointState:
    point: SweepPoint
    point_id: int
    artifact: Artifact
    done_trials: set[int] = field(default_factory=set)
    failed: bool = False
    run_id: int | None = None
    runtime_version: str | None = None  # what the device's facts promised; a trial reporting another fails
    request: TrialRequest | None = None  # what its trials ask where not the protocol's (a probe's per-node profile)
    result: TrialResult | None = None  # its last trial measured in this run


@dataclass(frozen=True)
class SweepResult:
    run_id: int
    point_ids: list[int]  # every point of this sweep, in spec order: measured, skipped and failed alike
    measured_trials: int
    skipped_points: int
    failed_points: int
    profile_failures: int = 0

    @property
    def all_done(self) -> bool:
        return self.failed_points == 0 and self.profile_failures == 0


Exporter = Callable[[ModelRef, Format, Precision], Artifact]


def run_sweep(
    spec: SweepSpec,
    spec_text: str,
    store: Store,
    devices: dict[str, Device],
    exporter: Exporter,
    reporter: Reporter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    device_threads: dict[str, list[int]] | None = None,
) -> SweepResult:
    """Measure every point of ``spec`` on ``devices``; failures are recorded per point and the sweep goes on.

    ``device_threads`` gives each device's thread counts (from the inventory) where the spec names none.
    """
    rep = reporter or Reporter()
    points = expand_points(spec, device_threads)
    missing = sorted({p.device for p in points} - set(devices))
    if missing:
        raise FlopgapError(f"sweep '{spec.name}' names unknown device(s) {', '.join(missing)}")
    run_id = store.start_run(spec.name, spec_text)
    status = RunStatus.FAILED
    try:
        states, skipped, finished, point_ids = _prepare(spec, store, run_id, points, devices, exporter, rep)
        measured = _measure(spec, store, states, devices, rep, sleep)
        profile_failures = 0
        if spec.protocol.profile:
            profile_failures = _profile_pass(spec, store, [*finished, *states], devices, rep)
        status = RunStatus.COMPLETED
        # Every point of the spec (finished before this run, measured now, failed), so `run` and `profile` show all.
        ids = list(dict.fromkeys(point_ids))
        failed = sum(1 for pid in ids if store.point_status(pid) == PointStatus.FAILED)
        return SweepResult(run_id, ids, measured, skipped, failed, profile_failures)
    except KeyboardInterrupt:
        status = RunStatus.INTERRUPTED
        raise
    finally:
        store.finish_run(run_id, status)


def _prepare(
    spec: SweepSpec,
    store: Store,
    run_id: int,
    points: list[SweepPoint],
    devices: dict[str, Device],
    exporter: Exporter,
    rep: Reporter,
) -> tuple[list[PointState], int, list[PointState], list[int]]:
    # Export each (model, format, precision) once; a failed export fails its points, not the sweep.
    artifacts: dict[tuple[ModelRef, str, str], Artifact | str] = {}
    wanted = list(dict.fromkeys((p.model, p.format, p.precision) for p in points))
    for i, (model, fmt, precision) in enumerate(wanted):
        rep.exporting(i, len(wanted), f"{model.label} {fmt} {precision}")
        try:
            art = exporter(model, Format(fmt), Precision(precision))
        except FlopgapError as exc:
            artifacts[(model, fmt, precision)] = str(exc)
            continue
        counts = source_counts(model, art)
        store.upsert_artifact(
            art,
            macs=counts.macs if counts else None,
            params_count=counts.params if counts else None,
            family=model.family,
            label=model.label,
        )
        if not store.has_op_account(art.sha256):
            _store_account(store, art, rep, model, exporter)
        artifacts[(model, fmt, precision)] = art
    rep.exporting(len(wanted), len(wanted), "")

    stored, facts = record_devices(store, sorted({p.device for p in points}), devices, rep)
    points = place_points(points, facts, devices)  # clusters to CPU ids, per device: part of each point's key

    states: list[PointState] = []
    finished: list[PointState] = []  # done before this run; the profile pass may still need them
    point_ids: list[int] = []
    skipped = 0
    for p in points:
        versions = point_versions(p.runtime, facts[p.device])
        exported = artifacts[(p.model, p.format, p.precision)]
        if isinstance(exported, str):  # the export failed; this is its reason
            pid = ensure_point(store, run_id, p, None, stored[p.device], versions, spec.protocol)
            point_ids.append(pid)
            store.fail_point(pid, exported)
            rep.point_failed(p, exported)
            continue
        art = exported
        pid = ensure_point(store, run_id, p, art, stored[p.device], versions, spec.protocol)
        point_ids.append(pid)
        if store.point_status(pid) is PointStatus.DONE:
            skipped += 1
            finished.append(PointState(p, pid, art))
            continue
        done = store.trials_done(pid)
        states.append(
            PointState(p, pid, art, done_trials=done, run_id=run_id, runtime_version=versions.runtime_version)
        )
    return states, skipped, finished, point_ids


def _store_account(store: Store, art: Artifact, rep: Reporter, model: ModelRef, exporter: Exporter) -> None:
    """Keep the artifact's per-op graph account in the database, so analysis works without the file.

    An ExecuTorch program has no graph the proxies read: it gets the account of the same model's fp32 ONNX export
    (same torch graph, same FLOPs per category, module paths like its profile rows), so its FLOP shares exist.
    """
    from harness.proxies import account

    try:
        acc = account(exporter(model, Format.ONNX, Precision.FP32) if art.format is Format.PTE else art)
    except Exception as exc:  # accounting is analysis support: a graph it cannot read must not stop measuring
        reason = f"{type(exc).__name__}: {exc}"
        rep.warning(f"graph accounting of {art.path.name} failed ({reason}); FLOP shares unavailable")
        return
    store.put_op_account(art.sha256, acc.frame(), len(acc.unsupported))


def _measure(
    spec: SweepSpec,
    store: Store,
    states: list[PointState],
    devices: dict[str, Device],
    rep: Reporter,
    sleep: Callable[[float], None],
) -> int:
    """Measure all points: devices in parallel (one worker thread each), one benchmark at a time per device."""
    proto = spec.protocol
    todo = sum(proto.trials - len(s.done_trials & set(range(proto.trials))) for s in states)
    rep.measuring_started(todo, 0)
    by_device: dict[str, list[PointState]] = {}
    for st in states:
        by_device.setdefault(st.point.device, []).append(st)
    if len(by_device) <= 1:
        return sum(_measure_device(spec, store, group, devices, rep, sleep, None) for group in by_device.values())
    stop = threading.Event()
    # SQLite connections belong to one thread: each worker writes through its own (WAL serialises commits).
    with ThreadPoolExecutor(max_workers=len(by_device), thread_name_prefix="flopgap-device") as pool:
        futures = [
            pool.submit(_measure_device_own_store, spec, store.path, group, devices, rep, sleep, stop)
            for group in by_device.values()
        ]
        try:
            # Wait for the first failure, not in submission order: a bug on one device must stop the others now.
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()  # re-raises a worker's exception with its traceback
            return sum(f.result() for f in futures)
        except BaseException:
            stop.set()  # Ctrl-C or a bug: workers finish the trial in flight, commit it, and stop
            raise


def _measure_device_own_store(
    spec: SweepSpec,
    path: Path,
    states: list[PointState],
    devices: dict[str, Device],
    rep: Reporter,
    sleep: Callable[[float], None],
    stop: threading.Event,
) -> int:
    with Store(path) as own:
        return _measure_device(spec, own, states, devices, rep, sleep, stop)


class TrialOutcome(StrEnum):
    """What became of one trial of one point."""

    MEASURED = "measured"  # measured and stored
    ALREADY_IN = "already_in"  # another flopgap on the same database committed it first
    POINT_FAILED = "point_failed"  # this point fails (reason stored); the device's other points go on
    DEVICE_LOST = "device_lost"  # the device is gone or unusable: all its remaining points failed


def _measure_device(
    spec: SweepSpec,
    store: Store,
    states: list[PointState],
    devices: dict[str, Device],
    rep: Reporter,
    sleep: Callable[[float], None],
    stop: threading.Event | None,
) -> int:
    """Trials of one device's points, interleaved: trial 0 of every point, then trial 1, ..."""
    proto = spec.protocol
    measured = 0
    cooldowns = _cooldowns(spec, states, devices, rep)
    for trial in range(proto.trials):
        for st in states:
            if stop is not None and stop.is_set():
                return measured
            if st.failed or trial in st.done_trials:
                continue
            device = devices[st.point.device]
            outcome = measure_trial(proto, store, st, trial, device, cooldowns.get(st.point.device), rep, states)
            if outcome is TrialOutcome.DEVICE_LOST:
                return measured
            if outcome is TrialOutcome.MEASURED:
                measured += 1
                if proto.cooldown_s:
                    sleep(proto.cooldown_s)
    for st in states:  # points whose trials were all in before an interruption
        done = store.point_status(st.point_id) is PointStatus.DONE
        if not st.failed and set(range(proto.trials)) <= st.done_trials and not done:
            _complete(store, st, proto)
    return measured


def version_mismatch(device: str, expected: str | None, reported: str | None, work: str = "the sweep") -> str | None:
    """Why a trial timed by another runtime version than the device's facts named when ``work`` started is not
    stored (None when they agree or either is unknown)."""
    if expected is None or reported is None or reported == expected:
        return None
    return (
        f"device '{device}': the runtime reports version {reported}, but the device's facts said {expected} when "
        f"{work} started (upgraded meanwhile?); rerun {work}"
    )


def measure_trial(
    protocol: SweepProtocol,
    store: Store,
    st: PointState,
    trial: int,
    dev: Device,
    cooldown: ThermalCooldown | None,
    rep: Reporter,
    states: list[PointState],
) -> TrialOutcome:
    """Measure trial ``trial`` of ``st`` on ``dev`` and store it (or the point's or the device's failure): the
    runtime version checked against the facts', the point completed when its last trial is in. ``states`` are the
    device's other points, failed with it when the device is lost."""
    if trial in store.trials_done(st.point_id):  # another flopgap on the same database measured it
        return _already_in(store, st, trial, protocol)
    cooled = cooldown.wait() if cooldown is not None else None
    rep.trial_started(st.point, trial)
    started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    try:
        request = st.request or trial_request(protocol, st.point.threads, st.point.options, sustained=True)
        result = dev.measure(st.artifact.path, request, sha256=st.artifact.sha256)
    except (DeviceUnreachable, RunnerMissing) as exc:
        # The device itself is gone or unusable: fail its remaining points now; a rerun retries them.
        reason = bounded(str(exc))  # a runner's flood of output stays out of rows and terminals
        store.record_device_error(dev.name, dev.transport.kind, reason)  # its last good facts stay
        for other in states:
            if not other.failed and store.point_status(other.point_id) is not PointStatus.DONE:
                _fail(store, other, reason, rep)
        return TrialOutcome.DEVICE_LOST
    except (TrialFailed, DeviceError) as exc:
        return _fail(store, st, bounded(str(exc)), rep)
    mismatch = version_mismatch(dev.name, st.runtime_version, result.runtime_version)
    if mismatch is not None:
        return _fail(store, st, mismatch, rep)
    try:
        trial_result = cooled.attach(result) if cooled else result
        store.add_trial(st.point_id, trial, trial_result, run_id=st.run_id, started_at=started_at)
    except DuplicateTrialError:  # another flopgap running the same spec committed it first: keep its trial
        return _already_in(store, st, trial, protocol)
    st.done_trials.add(trial)
    st.result = result
    rep.trial_finished(st.point, trial, result.median_ms)
    if set(range(protocol.trials)) <= st.done_trials:
        _complete(store, st, protocol)
    return TrialOutcome.MEASURED


def _already_in(store: Store, st: PointState, trial: int, protocol: SweepProtocol) -> TrialOutcome:
    st.done_trials.add(trial)
    _complete_if_all_in(store, st, protocol)
    return TrialOutcome.ALREADY_IN


def _fail(store: Store, st: PointState, reason: str, rep: Reporter) -> TrialOutcome:
    st.failed = True
    store.fail_point(st.point_id, reason)
    rep.point_failed(st.point, reason)
    return TrialOutcome.POINT_FAILED


def _cooldowns(
    spec: SweepSpec, states: list[PointState], devices: dict[str, Device], rep: Reporter
) -> dict[str, ThermalCooldown]:
    """A thermal cooldown per device when the protocol asks for one, its baseline read now (sweep start)."""
    proto = spec.protocol
    if proto.cooldown is not Cooldown.THERMAL:
        return {}
    out = {}
    for name in dict.fromkeys(st.point.device for st in states):
        cooldown = ThermalCooldown(
            name, device_temperatures(devices[name]), proto.cooldown_margin_c, proto.cooldown_max_s, warn=rep.warning
        )
        cooldown.start()
        out[name] = cooldown
    return out


def _profile_pass(
    spec: SweepSpec, store: Store, states: list[PointState], devices: dict[str, Device], rep: Reporter
) -> int:
    """Per-op times (per-block for a TFLite model whose device cannot profile its ops) for every done point that
    has none yet; after all trials, so
    profiling never sits between timed trials (an ORT profile far from the point's timed latency is taken again,
    see :func:`_profile_point`). A failure is reported and leaves the point's timing untouched; returns how many
    failed."""
    from harness.measure.profile import has_profile, store_profile

    failures = 0
    timed: dict[int, float] = {}  # µs per done point id: what an ORT profile is held to, read once when needed
    for st in states:
        if st.failed or store.point_status(st.point_id) is not PointStatus.DONE or has_profile(store, st.point_id):
            continue
        if st.point_id not in timed:
            frame = store.points_frame()
            timed = {int(r.point_id): target_ms(float(r.median_ms), r.p10_ms) * 1e3
                     for r in frame[frame["status"] == PointStatus.DONE].itertuples()}  # fmt: skip
        try:
            profile = _profile_point(st, devices[st.point.device], spec.protocol, timed[st.point_id])
        except FlopgapError as exc:
            rep.point_failed(st.point, f"profiling failed (timing kept): {exc}")
            failures += 1
            continue
        store_profile(store, st.point_id, profile)
        rep.point_profiled(st.point, profile)
    return failures


def _profile_point(st: PointState, device: Device, proto: SweepProtocol, timed_us: float) -> OpProfile:
    """The point's profile. An ORT or LiteRT profile (flopgap's runner) whose rows sum far from ``timed_us`` (the
    point's :func:`~harness.measure.stats.target_ms`) ran in another spell than the trials, and is taken again: the
    closest of at most 1 + ``PROFILE_RETRIES`` is kept (:func:`~harness.measure.profile.profile_agrees`); its notes
    say how many were taken."""
    from harness.measure.profile import (
        LITERT_KIND,
        ORT_KIND,
        PROFILE_RETRIES,
        profile_agrees,
        profile_artifact,
        profile_stray,
    )

    p = st.point

    def take() -> OpProfile:
        return profile_artifact(device, p.model, st.artifact, p.threads, proto, p.options, depth=proto.profile_depth)

    profile = take()
    if profile.kind not in (ORT_KIND, LITERT_KIND) or not timed_us > 0:  # nothing to hold it to (no timed latency)
        return profile
    taken = 1
    while not profile_agrees(profile.sum_us, timed_us) and taken <= PROFILE_RETRIES:
        again = take()
        taken += 1
        if profile_stray(again.sum_us, timed_us) < profile_stray(profile.sum_us, timed_us):
            profile = again
    profile.notes.update({"profiles_taken": taken, "timed_us": timed_us})
    return profile


def _complete_if_all_in(store: Store, st: PointState, protocol: SweepProtocol) -> None:
    if set(range(protocol.trials)) <= st.done_trials and store.point_status(st.point_id) is not PointStatus.DONE:
        _complete(store, st, protocol)


def _complete(store: Store, st: PointState, proto: SweepProtocol) -> None:
    trials = [t for t in store.trial_samples(st.point_id) if t]
    frame = store.trials_frame([st.point_id]).sort_values("trial_index")
    results = {
        int(i): TrialResult.from_json(json.loads(d))
        for i, d in zip(frame["trial_index"], frame["runner_json"], strict=True)
    }
    if trials:
        stats: Any = combine_trials(
            [np.asarray(t, dtype=np.int64) for t in trials],
            cv_threshold=proto.cv_threshold,
            spread_threshold=proto.spread_threshold,
        )
    else:  # summary-only trials (benchmark_model): no raw samples to pool
        summaries = [r.summary.to_json() for r in results.values() if r.summary]
        stats = combine_summaries(summaries, proto.cv_threshold, proto.spread_threshold)
    row = dict(stats) if isinstance(stats, dict) else dict(stats.to_row())
    hot = hot_trials(results)
    if hot:  # a trial that started before the device cooled down is not comparable with the others
        row["noisy"] = True
        row["noisy_reasons"] = [*(row.get("noisy_reasons") or []), *hot]
    store.complete_point(st.point_id, row)
    summarize_point(store, st.point_id)
