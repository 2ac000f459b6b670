"""A build's kernel probes on the device: each a one-trial point of its build's run, timed several to a runner process
where the device's runner is flopgap's, one by one through the sweep's trial where it is a stock binary."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from devices.base import Device, TrialRequest
from devices.errors import DeviceError, DeviceUnreachable
from devices.result import TrialResult
from devices.vocabulary import Format
from exporters.artifact import Artifact
from harness.measure.profile import GraphIndex, map_ort_rows
from harness.measure.spec import Protocol as SweepProtocol
from harness.measure.spec import SweepPoint
from harness.measure.stats import combine_trials
from harness.measure.sweep import PointState, Reporter, TrialOutcome, measure_trial, version_mismatch
from harness.measure.trial import trial_request
from harness.measure.versions import PointVersions
from harness.predict.dataset import PredictContext, same_versions
from harness.predict.device_graph import store_device_kernels
from harness.predict.probes import FAMILY, probe_artifact, probe_label
from harness.predict.space import KernelConfig
from harness.sources.file import load_file
from harness.store import Store
from harness.store.status import PointStatus

if TYPE_CHECKING:
    from harness.predict.build import BuildPlan, BuildReporter

PROFILE_RUNS = 20
# Probes timed in one runner process: its start-up (~0.5 s of a ~0.7 s probe on the development machine) is paid
# once per batch; small enough that a budget overruns by little and a crash loses few probes.
PROBE_BATCH = 8


@dataclass
class Probing:
    plan: BuildPlan
    ctx: PredictContext  # the plan's, with the device as stored
    versions: PointVersions  # the runtime and runner versions that key this build's points
    store: Store
    device: Device
    run_id: int
    rep: BuildReporter
    clock: Callable[[], float]
    measured: int = 0
    tried: int = 0  # probes sent to the device by this run, measured or failed (the plan's max_probes caps it)
    lost: bool = False  # the device went away: the remaining probes wait for a rerun
    lost_because: str = ""  # why, where its error said (a lab host that died names itself)

    def check_reachable(self) -> None:
        """Raise, once the probes are over, if the device went away: a build that lost its device stores no
        predictor (what it measured is saved; a rerun resumes)."""
        if self.lost:
            raise DeviceUnreachable(self.lost_because or f"device '{self.device.name}' went away; rerun to resume")


def measure_probes(
    state: Probing,
    configs: Sequence[KernelConfig],
    round_: int,
    source: str,
    until: float,
    sources: dict[str, str] | None = None,
) -> None:
    """Measure the configs not done yet until ``until`` or the device is lost. Where the device's runner is
    flopgap's, :data:`PROBE_BATCH` at a time in one runner process (a batch started before ``until`` finishes: the
    budget may run over by one batch); a stock binary's probes one by one, each a one-trial point measured through
    the sweep's trial (its version check, its summary of a binary's summary-only trial)."""
    ctx = state.ctx
    done = done_configs(state.store, ctx, state.versions)
    batch: list[tuple[KernelConfig, Artifact, int]] = []
    for cfg in configs:
        if state.lost or state.clock() >= until or state.tried == state.plan.max_probes:
            break
        if cfg.key in done:
            continue
        art = probe_artifact(cfg, ctx.runtime)
        state.store.upsert_artifact(art, macs=cfg.macs, params_count=None, family=FAMILY, label=probe_label(cfg))
        pid = state.store.ensure_point(state.run_id, art.sha256, ctx.device, ctx.runtime.value, ctx.threads,
                                       ctx.runtime.options, state.versions.runtime_version,
                                       runner_version=state.versions.runner_version)  # fmt: skip
        state.store.mark_kernel_sample(pid, cfg.type.value, cfg.to_json(), (sources or {}).get(cfg.key, source), round_)
        if state.store.point_status(pid) is PointStatus.DONE:
            _probe_kernels(state, art)
            continue
        state.tried += 1
        if state.device.runner.is_binary:
            _measure_one(state, cfg, art, pid, round_)
            continue
        batch.append((cfg, art, pid))
        if len(batch) >= PROBE_BATCH:
            _measure_batch(state, batch, round_)
            batch = []
    if batch and not state.lost:
        _measure_batch(state, batch, round_)


def _measure_one(state: Probing, cfg: KernelConfig, art: Artifact, pid: int, round_: int) -> None:
    """One probe through the sweep's trial, as a sweep measures a one-trial point on this device."""
    st = PointState(_probe_point(state.ctx, art), pid, art, run_id=state.run_id,
                    runtime_version=state.versions.runtime_version, request=_probe_request(state, art))  # fmt: skip
    # The build's own reporter counts probes: the sweep's per-trial hooks stay quiet here.
    outcome = measure_trial(probe_protocol(state), state.store, st, 0, state.device, None, Reporter(), [st])
    if outcome is TrialOutcome.DEVICE_LOST:
        state.lost = True
        return
    if outcome is not TrialOutcome.MEASURED or st.result is None:
        return
    _probe_kernels(state, art, st.result.optimized_graph)
    if st.result.ops and art.format is Format.ONNX and state.store.op_profiles_frame([pid]).empty:
        state.store.add_op_profile(pid, map_ort_rows(st.result.ops, GraphIndex.of(art.path)))
    state.measured += 1
    state.rep.probe_measured(state.measured, probe_label(cfg), st.result.median_ms, round_)


def _measure_batch(state: Probing, batch: Sequence[tuple[KernelConfig, Artifact, int]], round_: int) -> None:
    """One trial of each probe in one go (see :meth:`Device.measure_many`), each committed as a one-trial point."""
    started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    for (cfg, art, pid), result in zip(batch, _time_probes(state, [art for _, art, _ in batch]), strict=True):
        if isinstance(result, DeviceError):  # TrialFailed included: the probe fails, the build goes on
            state.store.fail_point(pid, str(result))
            if isinstance(result, DeviceUnreachable):  # ... unless the device itself is gone
                state.lost, state.lost_because = True, str(result)
            continue
        mismatch = version_mismatch(state.device.name, state.versions.runtime_version, result.runtime_version,
                                    "the build")  # fmt: skip
        if mismatch is not None:
            state.store.fail_point(pid, mismatch)
            continue
        _probe_kernels(state, art, result.optimized_graph)
        if 0 not in state.store.trials_done(pid):
            state.store.add_trial(pid, 0, result, run_id=state.run_id, started_at=started_at)
        if result.ops and state.store.op_profiles_frame([pid]).empty:
            state.store.add_op_profile(pid, map_ort_rows(result.ops, GraphIndex.of(art.path)))
        proto = probe_protocol(state)
        stats = combine_trials([np.asarray(result.samples_ns, dtype=np.int64)], proto.cv_threshold,
                               proto.spread_threshold)  # fmt: skip
        state.store.complete_point(pid, stats)
        state.measured += 1
        state.rep.probe_measured(state.measured, probe_label(cfg), result.median_ms, round_)


def probe_protocol(state: Probing) -> SweepProtocol:
    """The plan's probe protocol; a LiteRT probe on flopgap's runner is timed in ``plan.probe_instances`` instances
    of itself (its samples pooled, so its p10 follows the better buffer placements)."""
    proto = state.plan.probe_protocol
    if state.ctx.runtime.artifact_format is Format.TFLITE and not state.device.runner.is_binary:
        return proto.model_copy(update={"instances": state.plan.probe_instances})
    return proto


def _probe_point(ctx: PredictContext, art: Artifact) -> SweepPoint:
    return SweepPoint(load_file(art.path), ctx.runtime, ctx.precision, ctx.threads, ctx.device)


def _probe_request(state: Probing, art: Artifact) -> TrialRequest:
    """A probe's one trial; an ONNX probe's also returns its per-node profile where the device's tool gives one
    (flopgap's runner: a separate session), since its kernels are the nodes ORT runs, not the probe's one op."""
    ctx, proto = state.ctx, probe_protocol(state)
    profile = art.format is Format.ONNX and state.device.profiles_ops(Format.ONNX)
    return trial_request(proto, ctx.threads, ctx.runtime.options, profile=profile,
                         profile_runs=PROFILE_RUNS if profile else None)  # fmt: skip


def _probe_kernels(state: Probing, art: Artifact, graph: bytes | None = None) -> None:
    """A probe's kernels as the device runs them (ORT: from the graph its trial brought back)."""
    store_device_kernels(state.store, state.device, state.ctx.device, state.ctx.runtime, art.path, art.sha256, graph,
                         state.ctx.threads)  # fmt: skip


def done_configs(store: Store, ctx: PredictContext, versions: PointVersions) -> set[str]:
    """Keys of the configs whose probe points of this context are done with these versions (skipped without
    touching their files); a probe measured with another runtime or runner version is measured again."""
    samples = store.kernel_samples_frame()
    points = store.points_frame()
    done = points[(points["status"] == PointStatus.DONE) & (points["device"] == ctx.device)
                  & (points["runtime"] == ctx.runtime.value) & (points["threads"] == ctx.threads)
                  & same_versions(points, versions)]  # fmt: skip
    chosen = samples[samples["point_id"].isin(done["point_id"])]
    return {KernelConfig.from_json(json.loads(text)).key for text in chosen["config_json"]}


def _time_probes(state: Probing, arts: Sequence[Artifact]) -> list[TrialResult | DeviceError]:
    """One trial of each probe, in one runner process where the device's runner can; an ONNX probe's trial also
    returns its per-node profile (a separate session) and the graph ORT optimized on the device."""
    ctx, proto = state.ctx, probe_protocol(state)
    profile = ctx.runtime.artifact_format is Format.ONNX
    request = trial_request(proto, ctx.threads, ctx.runtime.options, profile=profile,
                            profile_runs=PROFILE_RUNS if profile else None)  # fmt: skip
    return state.device.measure_many([a.path for a in arts], replace(request, save_graph=profile),
                                     [a.sha256 for a in arts])  # fmt: skip
