"""Build a predictor for one device context within a time budget, resumably, through the usual protocol.

1. **Zoo models** (:data:`EVAL_MODELS`) and **training nets** (:data:`TRAIN_NETS` of the random space's training
   stream, :mod:`harness.predict.random_nets`): one sweep (exports cached, trials interleaved, each committed as it
   completes) with per-op profiles where the device's tool gives them; their kernels are extracted (ORT: from the
   graph ORT optimized on the device, :mod:`harness.predict.device_graph`) and stored. Both calibrate the kernel
   sum, and their profiled ops are kernel rows timed inside whole nets; the zoo models are what ``predictor eval``
   predicts family by family, and the training nets are never among the nets ``eval --random`` measures.
2. **Round 0**: kernel probes drawn from the configuration space (:mod:`harness.predict.space`) in a fixed order
   from the seed, each a single-kernel model timed as a one-trial point (ORT: with its per-node profile and the
   device's optimized graph), several to a runner process (:mod:`harness.predict.probe_trials`), until
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

from devices.base import Device
from devices.core.errors import FlopgapError
from devices.facts import DeviceFacts
from devices.vocabulary import Precision, Runtime
from exporters.artifact import Artifact
from harness.measure.recording import record_devices
from harness.measure.spec import Protocol as SweepProtocol
from harness.measure.spec import SweepSpec, model_selection
from harness.measure.sweep import Exporter, Reporter, run_sweep
from harness.measure.versions import PointVersions, point_versions
from harness.predict.dataset import (
    SPACE,
    PredictContext,
    calibration_set,
    context_points,
    load_dataset,
    same_versions,
)
from harness.predict.device_graph import (
    fetch_graphs,
    graph_refusal,
    has_current_kernels,
    normal_arch,
    refresh_device_kernels,
    store_device_kernels,
)
from harness.predict.held_out import random_models
from harness.predict.kernels import feature_matrix
from harness.predict.predictor import LIBRARY, KernelPredictor, TrainingRow, fit_predictor
from harness.predict.probe_trials import Probing, measure_probes
from harness.predict.random_nets import Size
from harness.predict.regressor import Loss, fit_type_model, loss_for
from harness.predict.space import KernelConfig, neighbours, sample
from harness.sources import ModelRef
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
# Nets of the random space's training stream measured whole in every build: the zoo's 21 models are the only other
# whole models the calibration sees, and nets of the space `eval --random` draws from differ from them in what a
# kernel sum misses (grouped convs of small group widths, SE blocks, concatenations: 31% of the nets' time in grouped
# convs against 8% of the zoo's). Where the device profiles ops inside whole models (ONNX Runtime's per-node profile,
# benchmark_model's op profile) each net's kernels are also training rows timed where they run, among their
# neighbours, which the probes (each kernel timed alone) are not; each net costs about 7 s of device time at 1 thread
# on the development machine, taken from the probes' share of the budget. Refitted on a 15-minute ONNX Runtime build
# with 16 (README, "The accuracy table with 48 training nets"), its 30 random nets within ±10% went 70% / 73% / 77% /
# 87% / 83% with 0 / 4 / 8 / 12 / 16 of its nets, while half its 1190 probes (five draws) scored 85% on average and
# 30% of them 84%: the probes were saturated, the nets were not. Builds with 48 scored 97% and 93% (seeds 0 and 1;
# 80% and 87% refitted with their first 16 nets).
TRAIN_NETS = 48
# Where the device gives no per-op profile (a LiteRT whose profiler flopgap's runner cannot read: not ai-edge-litert
# 2.3) the nets only calibrate the kernel sum (three coefficients), and every second they take is a second of probes
# lost: a LiteRT build with 48 whose nets were not profiled scored 83% within ±10% on its random nets refitted with
# its first 16, 32 or 48 (README, "A second machine, LiteRT with 48 nets").
TRAIN_NETS_UNPROFILED = 16


def default_train_nets(device: Device, runtime: Runtime) -> int:
    """Training nets a build measures on ``device`` unless told: :data:`TRAIN_NETS` where their ops are profiled."""
    return TRAIN_NETS if device.profiles_ops(runtime.artifact_format) else TRAIN_NETS_UNPROFILED


PROBE_PROTOCOL = SweepProtocol(trials=1, warmup_runs=5, warmup_seconds=0.05, runs=20, min_seconds=0.1, parity=False)
MODEL_PROTOCOL = SweepProtocol(trials=5, warmup_runs=10, warmup_seconds=0.2, runs=30, min_seconds=0.3)
# A LiteRT probe is loaded this many times in its runner process and timed in each (the protocol's runs shared out):
# where one op's buffers land moves its time by up to 1.8x on a VM guest, and one placement is one draw of that.
# benchmarks/probe_instances.py measures it: the same probes in separate processes agree better (README).
PROBE_INSTANCES = 3
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
    # At most this many probes tried by one run, whatever the budget leaves: a build whose size does not depend on
    # how fast the device happens to be (a reproducible build; the tests' builds on a loaded machine).
    max_probes: int | None = None
    # LiteRT probes on flopgap's runner: instances per probe (see PROBE_INSTANCES); ONNX Runtime's probes are learnt
    # from their per-node profile, one session's, and a stock binary loads a model once.
    probe_instances: int = PROBE_INSTANCES
    # Training nets (the random space's training stream, of this seed) measured whole beside the zoo models; None:
    # the device's default (:func:`default_train_nets`), set by :meth:`on`.
    train_nets: int | None = None
    net_size: Size = Size.FULL

    @property
    def name(self) -> str:
        return f"predictor-build {self.context} seed={self.seed}"

    def on(self, device: Device) -> BuildPlan:
        """This plan with its training nets set for ``device`` where it leaves them to the default."""
        if self.train_nets is not None:
            return self
        return replace(self, train_nets=default_train_nets(device, self.context.runtime))

    def measured_models(self) -> list[ModelRef]:
        """What the build measures whole: its zoo models, then its training nets (set them first: :meth:`on`)."""
        if self.train_nets is None:
            raise ValueError("BuildPlan.measured_models: train_nets is not set; call plan.on(device) first")
        return [*self.models, *random_models(self.train_nets, self.seed, self.net_size, training=True)]

    def text(self) -> str:
        models = ", ".join(m.label for m in self.measured_models())
        return f"# {self.name}\nbudget_s = {self.budget_s}\nmodels = [{models}]\n"


@dataclass
class BuildResult:
    context: PredictContext  # the device as stored: another machine behind the inventory name is stored apart
    predictor_id: int
    predictor: KernelPredictor
    probes_measured: int  # in this invocation
    probes_total: int  # in the database for this context
    kernel_rows: int
    models: int  # zoo models measured in the context
    elapsed_s: float  # this invocation
    build_s: float  # every invocation of this build together
    nets: int = 0  # training nets measured in the context


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
    plan = plan.on(device)
    if ctx.precision is not Precision.FP32:
        raise FlopgapError(f"predictor build: precision {ctx.precision} is not supported yet; use --precision fp32")
    started = clock()
    if plan.models or plan.train_nets:
        rep.stage(f"measuring {len(plan.models)} zoo models and {plan.train_nets} training nets")
        _measure_models(plan, store, device, exporter, rep)
    # The budget is device time: what the runs of this build took (the zoo sweep's included), not the exports.
    deadline = clock() + max(0.0, plan.budget_s - _time_spent(store, plan.name))
    run_id = store.start_run(plan.name, plan.text())
    status = RunStatus.FAILED
    measured = 0
    try:
        # The device's row (another machine behind its name is stored apart) and the versions that key its points.
        stored_name, device_facts = record_device(store, device, rep)
        ctx = replace(ctx, device=stored_name)
        versions = point_versions(ctx.runtime, device_facts)
        state = Probing(plan, ctx, versions, store, device, run_id, rep, clock)
        measured = _probe_rounds(state, deadline)
        state.check_reachable()
        status = RunStatus.COMPLETED
    except KeyboardInterrupt:
        status = RunStatus.INTERRUPTED
        raise
    finally:
        store.finish_run(run_id, status)
    rep.stage("fitting the predictor")
    _refresh_kernels(store, ctx, versions, device)
    dataset = load_dataset(store, ctx, versions)
    if not dataset.rows:
        raise FlopgapError(_nothing_measured(store, ctx, versions))
    predictor = fit_predictor(ctx.to_json(), dataset.rows, *calibration_set(dataset.models))
    probes = int(store.kernel_samples_frame()["point_id"].isin(_context_point_ids(store, ctx, versions)).sum())
    build_s = _time_spent(store, plan.name)
    predictor.summary.update({"probes": probes, "build_s": round(build_s, 1), "budget_s": plan.budget_s,
                              "models": [m.label for m in dataset.models], "seed": plan.seed,
                              "runtime_version": versions.runtime_version,
                              "runner_version": versions.runner_version,
                              "arch": normal_arch(device_facts.get("machine"))})  # fmt: skip
    pid = store.add_predictor(ctx.device, ctx.runtime.value, ctx.threads, ctx.precision.value, LIBRARY,
                              predictor.versions, predictor.to_json(), predictor.summary)  # fmt: skip
    nets = dataset.training_nets
    return BuildResult(ctx, pid, predictor, measured, probes, len(dataset.rows), len(dataset.models) - nets,
                       clock() - started, build_s, nets)  # fmt: skip


def _nothing_measured(store: Store, ctx: PredictContext, versions: PointVersions) -> str:
    """The one line of a build that measured no kernel at all (every probe failed): fitting it would store a
    predictor of nothing, which every later `predict` would trust."""
    points = store.points_frame()
    mine = points["point_id"].isin(_context_point_ids_all(store, ctx, versions))
    failed = points[mine & (points["status"] == PointStatus.FAILED.value)]
    reason = str(failed["failure_reason"].iloc[-1]) if len(failed) else "no probe was measured within the budget"
    return (f"predictor build on {ctx.device}: no kernel was measured, so no predictor is stored ({len(failed)} "
            f"probe(s) failed; the last: {reason}); fix that and rerun the same command")  # fmt: skip


def record_device(store: Store, device: Device, rep: BuildReporter) -> tuple[str, DeviceFacts]:
    """The device's stored name and its facts read now. A device it cannot reach (a lab host that died) fails the
    build with its own error: a sweep goes on past it, but a build would fit and store a predictor of nothing."""
    stored, facts = record_devices(store, [device.name], {device.name: device}, rep)
    if not facts[device.name]:
        device.facts()  # record_devices kept the error in the store; asked again, it raises it (naming the host)
    return stored[device.name], facts[device.name]


def _check_device(device: Device, ctx: PredictContext) -> None:
    """Any backend builds (flopgap's runner, ``benchmark_model``, ``onnxruntime_perf_test``) if it runs the format."""
    fmt = ctx.runtime.artifact_format
    if not device.can_run(fmt):
        raise FlopgapError(
            f"device '{device.name}' runs {device.runner}, which cannot time {fmt.value} models; build the "
            f"{ctx.runtime} predictor on a device whose runner can, or pick its runtime with --runtime"
        )
    if ctx.runtime is Runtime.ONNXRUNTIME and device.runner.is_binary:
        raise FlopgapError(graph_refusal(device))


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
    # Per-op profiles where the device's own tool gives them (ORT's nodes; LiteRT's operators inside whole models,
    # from benchmark_model or LiteRT 2.3's C API profiler on flopgap's runner): their kernels are training rows.
    protocol = plan.model_protocol.model_copy(update={"profile": device.profiles_ops(ctx.runtime.artifact_format)})
    measured = plan.measured_models()
    spec = SweepSpec(
        name=plan.name,
        models=[model_selection(m) for m in measured],
        runtimes=[ctx.runtime],
        precisions=[ctx.precision],
        threads=[ctx.threads],
        devices=[device.name],
        protocol=protocol,
    )
    # Export first, outside the sweep's run: the budget is device time, and a cold cache's exports are host time.
    artifacts = []
    for i, model in enumerate(measured):
        rep.exporting(i, len(measured), f"{model.label} {ctx.runtime.artifact_format} {ctx.precision}")
        try:
            artifacts.append(exporter(model, ctx.runtime.artifact_format, ctx.precision))
        except FlopgapError:
            continue  # the sweep below fails its point with the reason
    result = run_sweep(spec, plan.text(), store, {device.name: device}, exporter, rep)
    _model_kernels(store, device, ctx, artifacts, result.point_ids)


def _model_kernels(
    store: Store, device: Device, ctx: PredictContext, artifacts: Sequence[Artifact], point_ids: Sequence[int]
) -> None:
    """The measured models' kernels as the device runs them (ORT: the graph it optimizes there, one short trial
    each)."""
    points = store.points_frame()
    names = points.loc[points["point_id"].isin(list(point_ids)), "device"]
    if names.empty:
        return  # nothing measured: nothing to learn from
    measured = set(points.loc[points["point_id"].isin(list(point_ids)) & (points["status"] == PointStatus.DONE),
                              "artifact_sha"])  # fmt: skip
    for art in artifacts:
        if art.sha256 in measured:
            store_device_kernels(store, device, str(names.iloc[0]), ctx.runtime, art.path, art.sha256,
                                 threads=ctx.threads)  # fmt: skip


def _refresh_kernels(store: Store, ctx: PredictContext, versions: PointVersions, device: Device) -> None:
    """Extract again the kernels a previous flopgap stored for this context's artifacts (where the files remain;
    ORT: from the device's graph kept in the cache, brought back first where an older flopgap kept none)."""
    points = store.points_frame()
    shas = set(points.loc[points["point_id"].isin(_context_point_ids(store, ctx, versions)), "artifact_sha"])
    artifacts = store.artifacts_frame().set_index("sha256")
    present = [(Path(str(artifacts.loc[sha, "path"])), sha) for sha in sorted(shas & set(artifacts.index))]
    present = [(path, sha) for path, sha in present if path.is_file()]
    if ctx.runtime is Runtime.ONNXRUNTIME:
        stale = [(path, sha) for path, sha in present if not has_current_kernels(store, ctx.runtime, ctx.device, sha)]
        fetch_graphs(device, ctx.device, stale, ctx.threads)
    for path, sha in present:
        refresh_device_kernels(store, ctx.device, ctx.runtime, sha, path)


def _probe_rounds(state: Probing, deadline: float) -> int:
    plan, store, rep, clock = state.plan, state.store, state.rep, state.clock
    done_rounds = _rounds_started(store, state.ctx, state.versions)
    remaining = max(0.0, deadline - clock())
    first_until = clock() + remaining * FIRST_ROUND_SHARE
    order = sample(np.random.default_rng(plan.seed), state.ctx.runtime, MAX_PROBES)
    if done_rounds <= 0:
        rep.stage("round 0: probes sampled from the configuration space")
        measure_probes(state, order, 0, SPACE, first_until)
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
        measure_probes(state, candidates, round_, SPACE, until, sources)
        measure_probes(state, order, round_, SPACE, until)  # what the neighbours left: more of the space
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
    errors = _cv_errors(main, loss_for(ctx.runtime.value))
    ranked = sorted(errors, key=lambda item: -abs(item[1]) * item[0].time_us)
    keep = ranked[: max(1, int(len(ranked) * ADAPTIVE_SHARE))] if ranked else []
    out = []
    for row, _ in keep:
        record = samples.loc[row.point_id]
        out.append((KernelConfig.from_json(json.loads(record["config_json"])), str(record["source"])))
    return out


def _cv_errors(rows: Sequence[TrainingRow], loss: Loss) -> list[tuple[TrainingRow, float]]:
    """Relative error of each row's time predicted by its type's model fitted on the other folds."""
    by_type: dict[str, list[TrainingRow]] = {}
    for r in rows:
        by_type.setdefault(r.kernel.type.value, []).append(r)
    out: list[tuple[TrainingRow, float]] = []
    for group in by_type.values():
        if len(group) < 2 * CV_FOLDS:
            continue
        folds = np.arange(len(group)) % CV_FOLDS
        features, terms = feature_matrix([r.kernel for r in group])
        times = np.array([r.time_us for r in group])
        for f in range(CV_FOLDS):
            train, test = folds != f, folds == f
            model = fit_type_model(group[0].kernel.type, features[train], terms[train], times[train], rounds=100,
                                   loss=loss)  # fmt: skip
            pred = model.predict(features[test], terms[test])
            out.extend((group[i], float(p / times[i] - 1)) for i, p in zip(np.flatnonzero(test), pred, strict=True))
    return out
