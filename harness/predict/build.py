"""Build a predictor for one device context within a time budget, resumably, through the usual protocol.

1. **Zoo models** (:data:`EVAL_MODELS`): a sweep (exports cached, trials interleaved, each committed as it
   completes) with per-node ORT profiles; their kernels are extracted and stored. They calibrate the kernel sum
   and are what ``predictor eval`` predicts.
2. **Round 0**: kernel probes drawn from the configuration space (:mod:`harness.predict.space`) in a fixed order
   from the seed, each a single-kernel model timed as a one-trial point (ORT: with its per-node profile), until
   :data:`FIRST_ROUND_SHARE` of the remaining budget is spent.
3. **Adaptive rounds**: each probe's error under K-fold cross-validation of its type's regressor; the worst
   :data:`ADAPTIVE_SHARE` get :data:`NEIGHBOURS` neighbours each (channels and resolution perturbed), measured in
   the round's share of the budget. Seeds are probes, never zoo models, so nothing here depends on a family.
4. The predictor is fitted on everything and stored.

Resuming: every probe is a point keyed by its artifact's sha256, so a rerun skips what is done. The budget counts
the time of earlier runs of the same build (the ``runs`` table's start and finish), so an interrupted build
resumed finishes within the budget it was given; a build whose budget is spent only refits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from devices.base import Device, TrialRequest
from devices.core.errors import FlopgapError
from devices.vocabulary import Format, Precision, Runtime
from exporters.artifact import Artifact
from harness.measure.profile import GraphIndex, map_ort_rows
from harness.measure.recording import record_devices
from harness.measure.spec import ModelSelection, SweepPoint, SweepSpec
from harness.measure.spec import Protocol as SweepProtocol
from harness.measure.sweep import Exporter, PointState, Reporter, TrialOutcome, measure_trial, run_sweep
from harness.measure.trial import trial_request
from harness.measure.versions import PointVersions, point_versions
from harness.predict.dataset import SPACE, PredictContext, context_points, load_dataset, same_versions
from harness.predict.kernels import Kernel, feature_matrix
from harness.predict.predictor import LIBRARY, KernelPredictor, TrainingRow, fit_predictor
from harness.predict.probes import FAMILY, probe_artifact, probe_label
from harness.predict.regressor import fit_type_model
from harness.predict.space import KernelConfig, neighbours, sample
from harness.sources.file import load_file
from harness.store import Store
from harness.store.status import PointStatus, RunStatus
from harness.zoo.registry import ModelSpec, resolve

# The zoo models a build measures whole: every family, the sample sweep's configurations and a few more widths.
EVAL_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("mobilenet_v1", {"alpha": 0.25}),
    ("mobilenet_v1", {"alpha": 0.5}),
    ("mobilenet_v1", {"alpha": 0.75, "resolution": 160}),
    ("mobilenet_v1", {"alpha": 1.0}),
    ("mobilenet_v2", {"alpha": 0.35}),
    ("mobilenet_v2", {"alpha": 0.75}),
    ("mobilenet_v2", {"alpha": 1.0}),
    ("mobilenet_v3_small", {}),
    ("mobilenet_v3_small", {"alpha": 0.75}),
    ("mobilenet_v3_large", {}),
    ("shufflenet_v1", {"scale": 0.5}),
    ("shufflenet_v1", {"scale": 1.0}),
    ("shufflenet_v1", {"groups": 8, "scale": 1.0}),
    ("shufflenet_v2", {"scale": 0.5}),
    ("shufflenet_v2", {"scale": 1.0}),
    ("shufflenet_v2", {"scale": 2.0}),
    ("fd_mobilenet", {"alpha": 0.5}),
    ("fd_mobilenet", {"alpha": 1.0}),
    ("efficientnet_b0", {}),
    ("resnet50", {}),
    ("resnext50_32x4d", {}),
)
PROBE_PROTOCOL = SweepProtocol(trials=1, warmup_runs=5, warmup_seconds=0.05, runs=20, min_seconds=0.1, parity=False)
MODEL_PROTOCOL = SweepProtocol(trials=5, warmup_runs=10, warmup_seconds=0.2, runs=30, min_seconds=0.3)
PROFILE_RUNS = 20
MAX_PROBES = 5000  # the fixed sampling order's length; a build stops at its budget long before
FIRST_ROUND_SHARE = 0.6
ADAPTIVE_ROUNDS = 2
ADAPTIVE_SHARE = 0.15
NEIGHBOURS = 3
CV_FOLDS = 4


def eval_models() -> list[ModelSpec]:
    return [resolve(name, **params) for name, params in EVAL_MODELS]


class BuildReporter(Reporter):
    """What a build tells as it goes: the sweep's hooks for the zoo models, and its stages and probes (no-ops)."""

    def stage(self, message: str) -> None:
        pass

    def probe_measured(self, done: int, label: str, median_ms: float | None, round_: int) -> None:
        pass


@dataclass(frozen=True)
class BuildPlan:
    context: PredictContext
    budget_s: float = 900.0
    seed: int = 0
    models: tuple[ModelSpec, ...] = field(default_factory=lambda: tuple(eval_models()))
    probe_protocol: SweepProtocol = PROBE_PROTOCOL
    model_protocol: SweepProtocol = MODEL_PROTOCOL

    @property
    def name(self) -> str:
        return f"predictor-build {self.context} seed={self.seed}"

    def text(self) -> str:
        models = ", ".join(m.label for m in self.models)
        return f"# {self.name}\nbudget_s = {self.budget_s}\nmodels = [{models}]\n"


@dataclass
class BuildResult:
    context: PredictContext  # the device as stored: another machine behind the inventory name is stored apart
    predictor_id: int
    predictor: KernelPredictor
    probes_measured: int  # in this invocation
    probes_total: int  # in the database for this context
    kernel_rows: int
    models: int
    elapsed_s: float  # this invocation
    build_s: float  # every invocation of this build together


def build_predictor(
    plan: BuildPlan,
    store: Store,
    device: Device,
    exporter: Exporter,
    reporter: BuildReporter | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BuildResult:
    """Measure, then fit and store a predictor for ``plan.context`` on ``device`` (see the module doc)."""
    rep = reporter or BuildReporter()
    ctx = plan.context
    _check_device(device, ctx)
    if ctx.precision is not Precision.FP32:
        raise FlopgapError(f"predictor build: precision {ctx.precision} is not supported yet; use --precision fp32")
    started = clock()
    if plan.models:
        rep.stage(f"measuring {len(plan.models)} zoo models")
        _measure_models(plan, store, device, exporter, rep)
    # The budget is device time: what the runs of this build took (the zoo sweep's included), not the exports.
    deadline = clock() + max(0.0, plan.budget_s - _time_spent(store, plan.name))
    run_id = store.start_run(plan.name, plan.text())
    status = RunStatus.FAILED
    measured = 0
    try:
        # The device's row (another machine behind its name is stored apart) and the versions that key its points.
        stored, facts = record_devices(store, [device.name], {device.name: device}, rep)
        ctx = replace(ctx, device=stored[device.name])
        versions = point_versions(ctx.runtime, facts[device.name])
        state = _Probing(plan, ctx, versions, store, device, run_id, rep, clock)
        measured = _probe_rounds(state, deadline)
        status = RunStatus.COMPLETED
    except KeyboardInterrupt:
        status = RunStatus.INTERRUPTED
        raise
    finally:
        store.finish_run(run_id, status)
    rep.stage("fitting the predictor")
    _refresh_kernels(store, ctx, versions)
    dataset = load_dataset(store, ctx, versions)
    predictor = fit_predictor(ctx.to_json(), dataset.rows, [(m.kernels, m.median_ms * 1e3) for m in dataset.models])
    probes = int(store.kernel_samples_frame()["point_id"].isin(_context_point_ids(store, ctx, versions)).sum())
    build_s = _time_spent(store, plan.name)
    predictor.summary.update({"probes": probes, "build_s": round(build_s, 1), "budget_s": plan.budget_s,
                              "models": [m.label for m in dataset.models], "seed": plan.seed,
                              "runtime_version": versions.runtime_version,
                              "runner_version": versions.runner_version})  # fmt: skip
    pid = store.add_predictor(ctx.device, ctx.runtime.value, ctx.threads, ctx.precision.value, LIBRARY,
                              predictor.versions, predictor.to_json(), predictor.summary)  # fmt: skip
    return BuildResult(ctx, pid, predictor, measured, probes, len(dataset.rows), len(dataset.models),
                       clock() - started, build_s)  # fmt: skip


def _check_device(device: Device, ctx: PredictContext) -> None:
    """Any backend builds (flopgap's runner, ``benchmark_model``, ``onnxruntime_perf_test``) if it runs the format."""
    fmt = ctx.runtime.artifact_format
    if not device.can_run(fmt):
        raise FlopgapError(
            f"device '{device.name}' runs {device.runner}, which cannot time {fmt.value} models; build the "
            f"{ctx.runtime} predictor on a device whose runner can, or pick its runtime with --runtime"
        )


def _time_spent(store: Store, name: str) -> float:
    """Seconds the earlier runs of this build took (runs that never finished count up to their last write)."""
    runs = store.runs_frame()
    runs = runs[runs["spec_name"] == name]
    total = 0.0
    for row in runs.itertuples():
        if isinstance(row.finished_at, str):
            total += (datetime.fromisoformat(row.finished_at) - datetime.fromisoformat(row.started_at)).total_seconds()
    return total


def _context_point_ids(store: Store, ctx: PredictContext, versions: PointVersions) -> list[int]:
    return [int(p) for p in context_points(store, ctx, versions)["point_id"]]


def _measure_models(plan: BuildPlan, store: Store, device: Device, exporter: Exporter, rep: BuildReporter) -> None:
    ctx = plan.context
    # Per-op profiles where the device's own tool gives them (ORT's nodes; benchmark_model's ops inside whole models):
    # their kernels are training rows. LiteRT on flopgap's runner has no per-op profiler.
    protocol = plan.model_protocol.model_copy(update={"profile": device.profiles_ops(ctx.runtime.artifact_format)})
    spec = SweepSpec(
        name=plan.name,
        models=[ModelSelection(name=m.name, params=dict(m.params)) for m in plan.models],
        runtimes=[ctx.runtime],
        precisions=[ctx.precision],
        threads=[ctx.threads],
        devices=[device.name],
        protocol=protocol,
    )
    # Export first, outside the sweep's run: the budget is device time, and a cold cache's exports are host time.
    artifacts = []
    for i, model in enumerate(plan.models):
        rep.exporting(i, len(plan.models), f"{model.label} {ctx.runtime.artifact_format} {ctx.precision}")
        try:
            artifacts.append(exporter(model, ctx.runtime.artifact_format, ctx.precision))
        except FlopgapError:
            continue  # the sweep below fails its point with the reason
    run_sweep(spec, plan.text(), store, {device.name: device}, exporter, rep)
    for art in artifacts:
        _store_kernels(store, art, ctx.runtime)


def _store_kernels(store: Store, art: Artifact, runtime: Runtime) -> list[Kernel]:
    from harness.predict.extract import EXTRACTOR_VERSION, extract_kernels

    stored = store.kernels_of(art.sha256, runtime.value)
    if stored and all(r.kernel.get("extractor") == EXTRACTOR_VERSION for r in stored):
        return [Kernel.from_json(r.kernel) for r in stored]
    kernels = extract_kernels(art.path, runtime)
    store.put_kernels(art.sha256, runtime.value, [{**k.to_json(), "extractor": EXTRACTOR_VERSION} for k in kernels])
    return kernels


def _refresh_kernels(store: Store, ctx: PredictContext, versions: PointVersions) -> None:
    """Extract again the kernels a previous flopgap stored for this context's artifacts (where the files remain)."""
    from harness.predict.extract import EXTRACTOR_VERSION, extract_kernels

    points = store.points_frame()
    shas = set(points.loc[points["point_id"].isin(_context_point_ids(store, ctx, versions)), "artifact_sha"])
    artifacts = store.artifacts_frame().set_index("sha256")
    for sha in sorted(shas & set(artifacts.index)):
        stored = store.kernels_of(sha, ctx.runtime.value)
        current = bool(stored) and all(r.kernel.get("extractor") == EXTRACTOR_VERSION for r in stored)
        path = Path(str(artifacts.loc[sha, "path"]))
        if current or not path.is_file():
            continue
        kernels = extract_kernels(path, ctx.runtime)
        store.put_kernels(sha, ctx.runtime.value, [{**k.to_json(), "extractor": EXTRACTOR_VERSION} for k in kernels])


@dataclass
class _Probing:
    plan: BuildPlan
    ctx: PredictContext  # the plan's, with the device as stored
    versions: PointVersions  # the runtime and runner versions that key this build's points
    store: Store
    device: Device
    run_id: int
    rep: BuildReporter
    clock: Callable[[], float]
    measured: int = 0
    lost: bool = False  # the device went away: the remaining probes wait for a rerun


def _probe_rounds(state: _Probing, deadline: float) -> int:
    plan, store, rep, clock = state.plan, state.store, state.rep, state.clock
    done_rounds = _rounds_started(store, state.ctx, state.versions)
    remaining = max(0.0, deadline - clock())
    first_until = clock() + remaining * FIRST_ROUND_SHARE
    order = sample(np.random.default_rng(plan.seed), state.ctx.runtime, MAX_PROBES)
    if done_rounds <= 0:
        rep.stage("round 0: probes sampled from the configuration space")
        _measure_probes(state, order, 0, SPACE, first_until)
    for round_ in range(max(1, done_rounds), ADAPTIVE_ROUNDS + 1):
        left_rounds = ADAPTIVE_ROUNDS - round_ + 1
        until = clock() + max(0.0, deadline - clock()) / left_rounds
        if clock() >= until:
            break
        seeds = _worst_probes(store, state.ctx, state.versions, round_)
        rep.stage(f"round {round_}: {len(seeds)} probes with the largest cross-validated error get neighbours")
        rng = np.random.default_rng([plan.seed, round_])
        candidates: list[KernelConfig] = []
        sources: dict[str, str] = {}
        for cfg, source in seeds:
            for near in neighbours(rng, cfg, NEIGHBOURS):
                candidates.append(near)
                sources[near.key] = source  # a neighbour inherits its seed's provenance
        _measure_probes(state, candidates, round_, SPACE, until, sources)
        _measure_probes(state, order, round_, SPACE, until)  # what the neighbours left: more of the space
    return state.measured


def _rounds_started(store: Store, ctx: PredictContext, versions: PointVersions) -> int:
    samples = store.kernel_samples_frame()
    samples = samples[samples["point_id"].isin(_context_point_ids_all(store, ctx, versions))]
    return int(samples["round"].max()) if not samples.empty else -1


def _context_point_ids_all(store: Store, ctx: PredictContext, versions: PointVersions) -> list[int]:
    """Points of the context whatever their status (a pending probe still marks its round as started)."""
    frame = store.points_frame()
    keep = (frame["device"] == ctx.device) & (frame["runtime"] == ctx.runtime.value) & (frame["threads"] == ctx.threads)
    keep &= same_versions(frame, versions)
    return [int(p) for p in frame.loc[keep, "point_id"]]


def _measure_probes(
    state: _Probing,
    configs: Sequence[KernelConfig],
    round_: int,
    source: str,
    until: float,
    sources: dict[str, str] | None = None,
) -> None:
    """Each probe a one-trial point, measured through the sweep's trial (its version check, its summary of a
    binary's summary-only trial), until ``until`` or the device is lost."""
    ctx = state.ctx
    done = _done_configs(state.store, ctx, state.versions)
    for cfg in configs:
        if state.lost or state.clock() >= until:
            return
        if cfg.key in done:
            continue
        art = probe_artifact(cfg, ctx.runtime)
        state.store.upsert_artifact(art, macs=cfg.macs, params_count=None, family=FAMILY, label=probe_label(cfg))
        pid = state.store.ensure_point(state.run_id, art.sha256, ctx.device, ctx.runtime.value, ctx.threads,
                                       ctx.runtime.options, state.versions.runtime_version,
                                       runner_version=state.versions.runner_version)  # fmt: skip
        state.store.mark_kernel_sample(pid, cfg.type.value, cfg.to_json(), (sources or {}).get(cfg.key, source), round_)
        _store_kernels(state.store, art, ctx.runtime)
        if state.store.point_status(pid) is PointStatus.DONE:
            continue
        st = PointState(_probe_point(ctx, art), pid, art, run_id=state.run_id,
                        runtime_version=state.versions.runtime_version, request=_probe_request(state, art))  # fmt: skip
        # The build's own reporter counts probes: the sweep's per-trial hooks stay quiet here.
        outcome = measure_trial(state.plan.probe_protocol, state.store, st, 0, state.device, None, Reporter(), [st])
        if outcome is TrialOutcome.DEVICE_LOST:
            state.lost = True
            return
        if outcome is not TrialOutcome.MEASURED or st.result is None:
            continue
        if st.result.ops and art.format is Format.ONNX and state.store.op_profiles_frame([pid]).empty:
            state.store.add_op_profile(pid, map_ort_rows(st.result.ops, GraphIndex.of(art.path)))
        state.measured += 1
        state.rep.probe_measured(state.measured, probe_label(cfg), st.result.median_ms, round_)


def _probe_point(ctx: PredictContext, art: Artifact) -> SweepPoint:
    return SweepPoint(load_file(art.path), ctx.runtime, ctx.precision, ctx.threads, ctx.device)


def _probe_request(state: _Probing, art: Artifact) -> TrialRequest:
    """A probe's one trial; an ONNX probe's also returns its per-node profile where the device's tool gives one
    (flopgap's runner: a separate session), since its kernels are the nodes ORT runs, not the probe's one op."""
    ctx, proto = state.ctx, state.plan.probe_protocol
    profile = art.format is Format.ONNX and state.device.profiles_ops(Format.ONNX)
    return trial_request(proto, ctx.threads, ctx.runtime.options, profile=profile,
                         profile_runs=PROFILE_RUNS if profile else None)  # fmt: skip


def _done_configs(store: Store, ctx: PredictContext, versions: PointVersions) -> set[str]:
    """Keys of the configs whose probe points of this context are done with these versions (skipped without
    touching their files); a probe measured with another runtime or runner version is measured again."""
    samples = store.kernel_samples_frame()
    points = store.points_frame()
    done = points[(points["status"] == PointStatus.DONE) & (points["device"] == ctx.device)
                  & (points["runtime"] == ctx.runtime.value) & (points["threads"] == ctx.threads)
                  & same_versions(points, versions)]  # fmt: skip
    chosen = samples[samples["point_id"].isin(done["point_id"])]
    return {KernelConfig.from_json(json.loads(text)).key for text in chosen["config_json"]}


def _worst_probes(
    store: Store, ctx: PredictContext, versions: PointVersions, round_: int
) -> list[tuple[KernelConfig, str]]:
    """The probes of earlier rounds whose time their type's regressor predicts worst under K-fold CV, by absolute
    error: a relative error on a 3 µs kernel is mostly the machine's noise, and costs a model nothing."""
    dataset = load_dataset(store, ctx, versions)
    samples = store.kernel_samples_frame().set_index("point_id")
    earlier = {int(p) for p, r in samples["round"].items() if r < round_}
    main = [r for r in dataset.rows if r.point_id in earlier and r.kernel.type.value == samples.loc[r.point_id,
            "kernel_type"]]  # fmt: skip
    errors = _cv_errors(main)
    ranked = sorted(errors, key=lambda item: -abs(item[1]) * item[0].time_us)
    keep = ranked[: max(1, int(len(ranked) * ADAPTIVE_SHARE))] if ranked else []
    out = []
    for row, _ in keep:
        record = samples.loc[row.point_id]
        out.append((KernelConfig.from_json(json.loads(record["config_json"])), str(record["source"])))
    return out


def _cv_errors(rows: Sequence[TrainingRow]) -> list[tuple[TrainingRow, float]]:
    """Relative error of each row's time predicted by its type's model fitted on the other folds."""
    by_type: dict[str, list[TrainingRow]] = {}
    for r in rows:
        by_type.setdefault(r.kernel.type.value, []).append(r)
    out: list[tuple[TrainingRow, float]] = []
    for group in by_type.values():
        if len(group) < 2 * CV_FOLDS:
            continue
        folds = np.arange(len(group)) % CV_FOLDS
        features, flops, moved = feature_matrix([r.kernel for r in group])
        times = np.array([r.time_us for r in group])
        for f in range(CV_FOLDS):
            train, test = folds != f, folds == f
            model = fit_type_model(group[0].kernel.type, features[train], flops[train], moved[train], times[train],
                                   rounds=100)  # fmt: skip
            pred = model.predict(features[test], flops[test], moved[test])
            out.extend((group[i], float(p / times[i] - 1)) for i, p in zip(np.flatnonzero(test), pred, strict=True))
    return out
