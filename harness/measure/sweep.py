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
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from devices.base import Device
from devices.errors import DeviceError, DeviceUnreachable, FlopgapError, RunnerMissing, TrialFailed
from devices.result import TrialResult
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.measure.spec import Protocol as SweepProtocol
from harness.measure.spec import SweepPoint, SweepSpec, expand_points
from harness.measure.stats import combine_summaries, combine_trials
from harness.measure.trial import trial_request
from harness.store import Store
from harness.zoo.counting import count
from harness.zoo.registry import ModelSpec


class Reporter(Protocol):
    def exporting(self, done: int, total: int, label: str) -> None: ...
    def measuring_started(self, total_trials: int, skipped_points: int) -> None: ...
    def trial_started(self, point: SweepPoint, trial: int) -> None: ...
    def trial_finished(self, point: SweepPoint, trial: int, median_ms: float | None) -> None: ...
    def point_failed(self, point: SweepPoint, reason: str) -> None: ...


class SilentReporter:
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


@dataclass
class PointState:
    point: SweepPoint
    point_id: int
    artifact: Artifact
    done_trials: set[int] = field(default_factory=set)
    failed: bool = False


@dataclass(frozen=True)
class SweepResult:
    run_id: int
    point_ids: list[int]
    measured_trials: int
    skipped_points: int
    failed_points: int


Exporter = Callable[[ModelSpec, Format, Precision], Artifact]


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
    rep = reporter or SilentReporter()
    points = expand_points(spec, device_threads)
    missing = sorted({p.device for p in points} - set(devices))
    if missing:
        raise FlopgapError(f"sweep '{spec.name}' names unknown device(s) {', '.join(missing)}")
    run_id = store.start_run(spec.name, spec_text)
    status = "failed"
    try:
        states, skipped, finished = _prepare(spec, store, run_id, points, devices, exporter, rep)
        measured = _measure(spec, store, states, devices, rep, sleep)
        if spec.protocol.profile:
            _profile_pass(spec, store, [*finished, *states], devices, rep)
        status = "completed"
        failed = sum(1 for s in states if s.failed)
        return SweepResult(run_id, [s.point_id for s in states], measured, skipped, failed)
    except KeyboardInterrupt:
        status = "interrupted"
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
) -> tuple[list[PointState], int, list[PointState]]:
    # Export each (model, format, precision) once; a failed export fails its points, not the sweep.
    artifacts: dict[tuple[ModelSpec, str, str], Artifact | str] = {}
    wanted = list(dict.fromkeys((p.model, p.format, p.precision) for p in points))
    for i, (model, fmt, precision) in enumerate(wanted):
        rep.exporting(i, len(wanted), f"{model.label} {fmt} {precision}")
        try:
            art = exporter(model, Format(fmt), Precision(precision))
        except FlopgapError as exc:
            artifacts[(model, fmt, precision)] = str(exc)
            continue
        counts = count(model.build(), model.example_input())
        store.upsert_artifact(art, macs=counts.macs, params_count=counts.params)
        if not store.has_op_account(art.sha256):
            _store_account(store, art, rep)
        artifacts[(model, fmt, precision)] = art
    rep.exporting(len(wanted), len(wanted), "")

    for name in sorted({p.device for p in points}):
        dev = devices[name]
        try:
            facts = dev.facts()
        except DeviceError as exc:
            facts = {"error": str(exc)}
        store.upsert_device(name, dev.transport.kind, facts)

    states: list[PointState] = []
    finished: list[PointState] = []  # done before this run; the profile pass may still need them
    skipped = 0
    for p in points:
        exported = artifacts[(p.model, p.format, p.precision)]
        if isinstance(exported, str):  # the export failed; this is its reason
            pid = store.ensure_point(run_id, *_key_fields(p, None, spec.protocol))
            store.fail_point(pid, exported)
            rep.point_failed(p, exported)
            continue
        art = exported
        pid = store.ensure_point(run_id, *_key_fields(p, art, spec.protocol))
        if store.point_status(pid) == "done":
            skipped += 1
            finished.append(PointState(p, pid, art))
            continue
        states.append(PointState(p, pid, art, done_trials=store.trials_done(pid)))
    return states, skipped, finished


def _store_account(store: Store, art: Artifact, rep: Reporter) -> None:
    """Keep the artifact's per-op graph account in the database, so analysis works without the file."""
    from harness.proxies import account

    try:
        acc = account(art)
    except Exception as exc:  # accounting is analysis support: a graph it cannot read must not stop measuring
        warn = getattr(rep, "warning", None)
        if warn is not None:
            warn(f"graph accounting of {art.path.name} failed ({type(exc).__name__}: {exc}); FLOP shares unavailable")
        return
    store.put_op_account(art.sha256, acc.frame(), len(acc.unsupported))


ORT_SETTINGS = ("ort_allow_spinning", "ort_graph_optimization", "ort_execution_mode")


def ort_key(protocol: SweepProtocol) -> dict[str, Any]:
    """The ORT settings that differ from their defaults: part of an ONNX Runtime point's key, so a changed setting
    is measured anew while points measured at the defaults keep the keys they always had."""
    defaults = type(protocol).model_fields
    return {n: getattr(protocol, n) for n in ORT_SETTINGS if getattr(protocol, n) != defaults[n].default}


def _key_fields(
    p: SweepPoint, art: Artifact | None, protocol: SweepProtocol
) -> tuple[str, str, str, int, dict[str, Any]]:
    sha = art.sha256 if art else f"unexported:{p.model.label}:{p.format}:{p.precision}"
    options = {**p.options, **ort_key(protocol)} if p.format is Format.ONNX else p.options
    return (sha, p.device, p.runtime, p.threads, options)


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
    for trial in range(proto.trials):
        for st in states:
            if stop is not None and stop.is_set():
                return measured
            if st.failed or trial in st.done_trials:
                continue
            dev = devices[st.point.device]
            rep.trial_started(st.point, trial)
            try:
                request = trial_request(proto, st.point.threads, st.point.options)
                result = dev.measure(st.artifact.path, request, sha256=st.artifact.sha256)
            except (DeviceUnreachable, RunnerMissing) as exc:
                # The device itself is gone or unusable: fail its remaining points now; a rerun retries them.
                for other in states:
                    if not other.failed and store.point_status(other.point_id) != "done":
                        other.failed = True
                        store.fail_point(other.point_id, str(exc))
                        rep.point_failed(other.point, str(exc))
                return measured
            except (TrialFailed, DeviceError) as exc:
                st.failed = True
                store.fail_point(st.point_id, str(exc))
                rep.point_failed(st.point, str(exc))
                continue
            store.add_trial(st.point_id, trial, result)
            st.done_trials.add(trial)
            measured += 1
            rep.trial_finished(st.point, trial, result.median_ms)
            if set(range(proto.trials)) <= st.done_trials:
                _complete(store, st, spec)
            if proto.cooldown_s:
                sleep(proto.cooldown_s)
    for st in states:  # points whose trials were all in before an interruption
        if not st.failed and set(range(proto.trials)) <= st.done_trials and store.point_status(st.point_id) != "done":
            _complete(store, st, spec)
    return measured


def _profile_pass(
    spec: SweepSpec, store: Store, states: list[PointState], devices: dict[str, Device], rep: Reporter
) -> None:
    """Per-op (ONNX) or per-block (TFLite) times for every done point that has none yet; after all trials, so
    profiling never sits between timed trials. A failure is reported and leaves the point's timing untouched."""
    from harness.measure.profile import has_profile, profile_artifact, store_profile

    proto = spec.protocol
    for st in states:
        if st.failed or store.point_status(st.point_id) != "done" or has_profile(store, st.point_id):
            continue
        p = st.point
        try:
            profile = profile_artifact(
                devices[p.device], p.model, st.artifact, p.threads, proto, p.options, depth=proto.profile_depth
            )
        except FlopgapError as exc:
            rep.point_failed(p, f"profiling failed (timing kept): {exc}")
            continue
        store_profile(store, st.point_id, profile)
        hook = getattr(rep, "point_profiled", None)
        if hook is not None:
            hook(p, profile)


def _complete(store: Store, st: PointState, spec: SweepSpec) -> None:
    proto = spec.protocol
    trials = [t for t in store.trial_samples(st.point_id) if t]
    if trials:
        stats: Any = combine_trials(
            [np.asarray(t, dtype=np.int64) for t in trials],
            cv_threshold=proto.cv_threshold,
            spread_threshold=proto.spread_threshold,
        )
    else:  # summary-only trials (benchmark_model): no raw samples to pool
        docs = store.trials_frame([st.point_id]).sort_values("trial_index")["runner_json"]
        summaries = [TrialResult.from_json(json.loads(d)).summary for d in docs]
        stats = combine_summaries([s.to_json() for s in summaries if s], proto.cv_threshold, proto.spread_threshold)
    store.complete_point(st.point_id, stats)
