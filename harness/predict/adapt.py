"""A predictor for a new device (or another thread count or precision of this one) adapted from an existing one.

A full build spends 15 minutes learning how each kernel's time depends on its shape; on a similar device that
shape dependence carries over and what changes is mostly each kernel type's throughput and the per-model overhead.
So the adaptation measures, within its budget:

1. **A few zoo models** (:data:`ADAPT_MODELS`, one per family, the smaller configurations) with a short protocol,
   through the sweep (resumable, with ORT's per-node profile): they refit the model-level calibration and, on ORT,
   their profiled nodes are kernel rows of the new device.
2. **Probes of the dominant kernel types**: the types that make up :data:`DOMINANT_SHARE` of those models' time
   as the source predictor prices them, up to :data:`PROBES_PER_TYPE` each from the build's sampling order,
   interleaved by type, until the budget is spent.

Each of the source's regressors (per type, variant, group, fallback) keeps its shape (its base and trees) and gains a
:class:`~harness.predict.regressor.Rescale` of what it predicts: ``factor · t · (t / pivot)^exponent``. The exponent is
one for all of them, the slope of the log ratio of measured to source-predicted time against the log of the
predicted time within each regressor's rows (a new thread count speeds large kernels up more than small ones: at 2
threads on the development machine the slope was -0.19, a 5 ms convolution 0.55x, a 5 µs reshape 1.3x); the factor
is each regressor's median ratio at the pivot over the new rows it prices, the median over every row for one that
prices none. The model-level calibration (``c0 + c1·sum + c2·kernels``) keeps the source's shape times one scale,
the median ratio of measured to predicted time over the models; on :data:`FULL_REFIT_MODELS` models or more all
three terms are refitted, pulled towards that (:data:`SOURCE_PRIOR_WEIGHT`; :func:`adapted_calibration`). Every
measurement is a point of the new context, so a later full build there reuses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from devices.base import Device
from devices.core.errors import FlopgapError
from devices.vocabulary import Precision, Runtime
from harness.measure.spec import Protocol as SweepProtocol
from harness.measure.sweep import Exporter
from harness.measure.versions import point_versions
from harness.predict.build import (
    BuildPlan,
    BuildReporter,
    BuildResult,
    _check_device,
    _measure_models,
    _time_spent,
    record_device,
)
from harness.predict.dataset import SPACE, PredictContext, load_dataset
from harness.predict.device_graph import normal_arch
from harness.predict.kernels import Kernel, KernelType
from harness.predict.predictor import LIBRARY, Calibration, KernelPredictor, TrainingRow, fit_calibration
from harness.predict.probe_trials import Probing, measure_probes
from harness.predict.regressor import MIN_TIME_US, Rescale, TypeModel
from harness.predict.space import KernelConfig, sample
from harness.predict.trust import model_errors
from harness.store import RunStatus, Store
from harness.zoo.registry import ModelSpec, resolve

ADAPT_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("mobilenet_v1", {"alpha": 0.5}),
    ("mobilenet_v2", {"alpha": 0.75}),
    ("mobilenet_v3_small", {}),
    ("shufflenet_v1", {"scale": 0.5}),
    ("shufflenet_v2", {"scale": 1.0}),
    ("fd_mobilenet", {"alpha": 1.0}),
    ("efficientnet_b0", {}),
)
ADAPT_MODEL_PROTOCOL = SweepProtocol(trials=2, warmup_runs=5, warmup_seconds=0.1, runs=15, min_seconds=0.2)
ADAPT_PROBE_PROTOCOL = SweepProtocol(trials=1, warmup_runs=3, warmup_seconds=0.02, runs=10, min_seconds=0.05,
                                     parity=False)  # fmt: skip
DOMINANT_SHARE = 0.9
# About 0.35 s each at the probe protocol on the development machine: 6 dominant types fill 3 minutes. Refitted on
# a stored 2-thread adaptation with the full build's probes of those types added, 8 per type put 37% of the random
# nets within ±10% (RMSE 16.4%), 24 57% (14.1%), 48 50% (14.4%), 96 67% (10.4%); the full build there 53% (13.0%).
PROBES_PER_TYPE = 64
SLOPE_LIMIT = 0.5  # |exponent| of a rescale at most: a 100x larger kernel never gets a factor 10x apart
SAMPLED = 3000  # how far down the build's sampling order to look for each dominant type's probes
CALIBRATION_TERMS = 3  # c0, c1, c2 of :class:`Calibration`
# Three terms fitted on fewer than two models per term pass through the models' noise (three models: exactly, the
# prior aside) and extrapolate it to every other model; one scale over the source's shape cannot.
FULL_REFIT_MODELS = 2 * CALIBRATION_TERMS
# A full refit is pulled towards the source's calibration (fitted on a build's 37 models) times the models' median
# ratio, ten times as hard as a build's towards the identity: seven small zoo models pin the intercept badly. In one
# 2-thread adaptation on the development machine they put it at 270 µs (the source's: 5 µs) and the random nets'
# RMSE at 52%; pulled to the source's shape, 32%. In two others the RMSE moved by under a point (nets within ±10%:
# -10 and +10 points).
SOURCE_PRIOR_WEIGHT = 3.0


class CalibrationRefit(StrEnum):
    """What an adaptation did to the source's model-level calibration."""

    SOURCE = "source"  # no model measured: kept as it was
    SCALE = "scale"  # the source's shape times one scale
    FULL = "full"  # all three terms refitted on the models


def adapt_models() -> tuple[ModelSpec, ...]:
    return tuple(resolve(name, **params) for name, params in ADAPT_MODELS)


@dataclass(frozen=True)
class AdaptPlan(BuildPlan):
    """A build plan for ``context`` adapted from predictor ``source_id``: its own models, protocols and name (its
    runs count against its budget and resume it)."""

    budget_s: float = 180.0
    models: tuple[ModelSpec, ...] = field(default_factory=adapt_models)
    probe_protocol: SweepProtocol = ADAPT_PROBE_PROTOCOL
    model_protocol: SweepProtocol = ADAPT_MODEL_PROTOCOL
    source_id: int = 0
    train_nets: int = 0  # minutes of device time: the few zoo models alone calibrate
    probes_per_type: int = PROBES_PER_TYPE

    @property
    def name(self) -> str:
        return f"predictor-adapt {self.context} from={self.source_id} seed={self.seed}"


def source_predictor(store: Store, source_id: int, ctx: PredictContext) -> KernelPredictor:
    """The stored predictor ``source_id``, refused in one line when it cannot be adapted to ``ctx``."""
    row = store.predictor(source_id)
    if row is None:
        raise FlopgapError(f"--from {source_id}: no such predictor in {store.path}; 'flopgap predictor list' shows "
                           "the ids")  # fmt: skip
    if row.runtime != ctx.runtime.value:
        raise FlopgapError(
            f"--from {source_id}: predictor {source_id} is for {row.runtime}, not {ctx.runtime} (its kernels are that "
            f"runtime's); give --runtime {row.runtime} or another predictor"
        )
    return KernelPredictor.from_json(row.model)


def adapt_predictor(
    plan: AdaptPlan,
    store: Store,
    device: Device,
    exporter: Exporter,
    reporter: BuildReporter | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BuildResult:
    """Measure a few models and probes of ``plan.context`` within the budget, then store the adapted predictor."""
    rep = reporter or BuildReporter()
    ctx = plan.context
    if ctx.precision is not Precision.FP32:
        raise FlopgapError(f"predictor build: precision {ctx.precision} is not supported yet; use --precision fp32")
    _check_device(device, ctx)
    source = source_predictor(store, plan.source_id, ctx)
    started = clock()
    rep.stage(f"measuring {len(plan.models)} zoo models on {ctx}")
    _measure_models(plan, store, device, exporter, rep)
    deadline = clock() + max(0.0, plan.budget_s - _time_spent(store, plan.name))
    stored_name, device_facts = record_device(store, device, rep)
    ctx = replace(ctx, device=stored_name)
    versions = point_versions(ctx.runtime, device_facts)
    models = load_dataset(store, ctx, versions).models
    types = dominant_types(source, [m.kernels for m in models])
    rep.stage(f"probes of the dominant kernel types: {', '.join(t.value for t in types)}")
    run_id = store.start_run(plan.name, f"# {plan.name}\n")
    status = RunStatus.FAILED
    state = Probing(plan, ctx, versions, store, device, run_id, rep, clock)
    try:
        measure_probes(state, probe_configs(types, ctx.runtime, plan.seed, plan.probes_per_type), 0, SPACE,
                       deadline)  # fmt: skip
        state.check_reachable()
        status = RunStatus.COMPLETED
    except KeyboardInterrupt:
        status = RunStatus.INTERRUPTED
        raise
    finally:
        store.finish_run(run_id, status)
    rep.stage("scaling the source predictor's kernel types and its calibration")
    dataset = load_dataset(store, ctx, versions)
    adapted = adapt_from(source, dataset.rows, [(m.kernels, m.target_ms * 1e3) for m in dataset.models if m.kernels])
    build_s = _time_spent(store, plan.name)
    adapted.context = ctx.to_json()
    adapted.summary.update({"adapted_from": plan.source_id, "probes": state.measured, "kernel_rows": len(dataset.rows),
                            "models": [m.label for m in dataset.models],
                            "build_s": round(build_s, 1), "budget_s": plan.budget_s, "seed": plan.seed,
                            "runtime_version": versions.runtime_version,
                            "runner_version": versions.runner_version,
                            "arch": normal_arch(device_facts.get("machine"))})  # fmt: skip
    pid = store.add_predictor(ctx.device, ctx.runtime.value, ctx.threads, ctx.precision.value, LIBRARY,
                              adapted.versions, adapted.to_json(), adapted.summary)  # fmt: skip
    return BuildResult(ctx, pid, adapted, state.measured, state.measured, len(dataset.rows), len(dataset.models),
                       clock() - started, build_s)  # fmt: skip


def adapt_from(
    source: KernelPredictor, rows: Sequence[TrainingRow], models: Sequence[tuple[Sequence[Kernel], float]]
) -> KernelPredictor:
    """``source`` with its regressors scaled to the new ``rows`` and its calibration adapted on ``models`` (kernel
    lists with measured µs); the summary says how (``calibration_refit``, ``calibration_scale``)."""
    adapted = scaled(source, rows)
    sums = [float(adapted.model_times_us(k).sum()) for k, _ in models]
    counts = [len(k) for k, _ in models]
    measured = [t for _, t in models]
    adapted.calibration, how, factor = adapted_calibration(source.calibration, sums, counts, measured)
    calibrated = [adapted.calibration.apply(s, n) for s, n in zip(sums, counts, strict=True)]
    adapted.summary.update({"calibration_refit": how.value, "calibration_scale": round(factor, 4),
                            "calibration_errors": model_errors(calibrated, measured),
                            "calibration_models": len(models)})  # fmt: skip
    return adapted


def adapted_calibration(
    source: Calibration, sums_us: Sequence[float], counts: Sequence[int], measured_us: Sequence[float]
) -> tuple[Calibration, CalibrationRefit, float]:
    """The calibration for the models' kernel sums and counts and measured µs, what was done and the scale taken
    (1 for a full refit): all three terms on :data:`FULL_REFIT_MODELS` models or more (pulled towards the source's
    times that scale), else the source's times the
    median ratio of measured to source-calibrated time. A positive scale keeps where the calibration holds, so it
    never turns a total the source priced into zero (where neither holds, the kernel sum is the total)."""
    kept = [(s, n, m) for s, n, m in zip(sums_us, counts, measured_us, strict=True) if m > 0]
    ratios = [m / source.apply(s, n) for s, n, m in kept if source.apply(s, n) > 0]
    f = float(np.median(ratios)) if ratios else 1.0
    shape = Calibration(source.c0 * f, source.c1 * f, source.c2 * f)
    if len(kept) >= FULL_REFIT_MODELS:
        fitted = fit_calibration([s for s, _, _ in kept], [n for _, n, _ in kept], [m for _, _, m in kept],
                                 prior=shape, prior_weight=SOURCE_PRIOR_WEIGHT)  # fmt: skip
        return fitted, CalibrationRefit.FULL, 1.0
    if not ratios:
        return source, CalibrationRefit.SOURCE, 1.0
    return shape, CalibrationRefit.SCALE, f


def scaling_note(summary: Mapping[str, Any]) -> str:
    """How an adapted predictor's regressors were rescaled, for its build line."""
    return (
        f"type scales {summary.get('scales')} (others {summary.get('overall_scale', 1.0):.3f}) at "
        f"{summary.get('size_pivot_us', 0.0):.0f} µs, times (t / it)^{summary.get('size_exponent', 0.0):+.3f}"
    )


def calibration_note(summary: Mapping[str, Any]) -> str:
    """How an adapted predictor's calibration was obtained, for its build line."""
    models = summary.get("calibration_models", 0)
    how = summary.get("calibration_refit")
    if how == CalibrationRefit.FULL:
        return f"calibration refitted on {models} models"
    if how == CalibrationRefit.SCALE:
        return (f"calibration: the source's scaled by {summary.get('calibration_scale', 1.0):.3f} over {models} models "
                f"(a full refit needs {FULL_REFIT_MODELS})")  # fmt: skip
    return "calibration: the source's (no model measured)"


def dominant_types(predictor: KernelPredictor, models: Sequence[Sequence[Kernel]]) -> list[KernelType]:
    """The kernel types that make up :data:`DOMINANT_SHARE` of the models' time as ``predictor`` prices them,
    largest first (each model weighs the same: shares are taken per model, then averaged)."""
    shares: dict[KernelType, float] = {}
    for kernels in models:
        times = predictor.model_times_us(kernels)
        total = float(times.sum())
        if total <= 0:
            continue
        for k, t in zip(kernels, times, strict=True):
            shares[k.type] = shares.get(k.type, 0.0) + float(t) / total / len(models)
    out: list[KernelType] = []
    covered = 0.0
    for kind, share in sorted(shares.items(), key=lambda item: -item[1]):
        if covered >= DOMINANT_SHARE:
            break
        out.append(kind)
        covered += share
    return out


def probe_configs(
    types: Sequence[KernelType], runtime: Runtime, seed: int, per_type: int = PROBES_PER_TYPE
) -> list[KernelConfig]:
    """Up to ``per_type`` probes of each type from the build's sampling order, interleaved by type so a budget cut
    anywhere leaves every dominant type as many probes as the others."""
    chosen: dict[KernelType, list[KernelConfig]] = {t: [] for t in types}
    for cfg in sample(np.random.default_rng(seed), runtime, SAMPLED):
        group = chosen.get(cfg.type)
        if group is not None and len(group) < per_type:
            group.append(cfg)
    return [group[i] for i in range(per_type) for group in chosen.values() if i < len(group)]


def priced_by(predictor: KernelPredictor) -> dict[str, TypeModel]:
    """Every regressor of ``predictor`` by name: a type, a variant, ``group compute|memory`` or ``fallback``."""
    named = {t.value: m for t, m in predictor.models.items()}
    named.update(predictor.variants)
    named.update({f"group {g}": m for g, m in predictor.groups.items()})
    named["fallback"] = predictor.fallback
    return named


@dataclass(frozen=True)
class Scaling:
    """How an adaptation rescales the source's regressors (:class:`~harness.predict.regressor.Rescale`): a factor
    per regressor by name, one for those without new rows, and the exponent, pivot and range all share."""

    factors: dict[str, float]
    overall: float
    exponent: float = 0.0
    pivot_us: float = 1.0
    low_us: float = 1.0
    high_us: float = 1.0

    def rescale(self, name: str) -> Rescale:
        return Rescale(self.factors.get(name, self.overall), self.exponent, self.pivot_us, self.low_us, self.high_us)


def scale_factors(source: KernelPredictor, rows: Sequence[TrainingRow]) -> Scaling:
    """The rescaling of ``source``'s regressors that the new ``rows`` show: the exponent is the slope of
    ``log(measured / predicted)`` on ``log(predicted)`` within each regressor's rows (pooled; within
    ±:data:`SLOPE_LIMIT`), each factor the median ratio at the pivot (the rows' median predicted time) over the rows
    the regressor prices, the overall one over every row; no rows: no change."""
    if not rows:
        return Scaling({}, 1.0)
    predicted = np.maximum(source.kernel_times_us([r.kernel for r in rows]), MIN_TIME_US)
    log_ratio = np.log(np.maximum(np.array([r.time_us for r in rows]), MIN_TIME_US) / predicted)
    pivot = float(np.exp(np.median(np.log(predicted))))
    x = np.log(predicted / pivot)
    name_of = {id(m): name for name, m in priced_by(source).items()}
    names = np.array([name_of[id(source.model_for(r.kernel))] for r in rows])
    dx, dy = np.zeros_like(x), np.zeros_like(x)
    for name in set(names):
        mine = names == name
        dx[mine], dy[mine] = x[mine] - x[mine].mean(), log_ratio[mine] - log_ratio[mine].mean()
    spread = float(np.dot(dx, dx))
    slope = float(np.clip(np.dot(dx, dy) / spread, -SLOPE_LIMIT, SLOPE_LIMIT)) if spread > 0 else 0.0
    at_pivot = log_ratio - slope * x
    factors = {str(name): float(np.exp(np.median(at_pivot[names == name]))) for name in sorted(set(names))}
    return Scaling(factors, float(np.exp(np.median(at_pivot))), slope, pivot, float(predicted.min()),
                   float(predicted.max()))  # fmt: skip


def scaled(source: KernelPredictor, rows: Sequence[TrainingRow]) -> KernelPredictor:
    """``source`` with each regressor rescaled as the new ``rows`` show (:func:`scale_factors`)."""
    scaling = scale_factors(source, rows)

    def scale(name: str, model: TypeModel) -> TypeModel:
        return replace(model, rescales=(*model.rescales, scaling.rescale(name)))

    summary = {**source.summary, "scales": {n: round(f, 4) for n, f in scaling.factors.items()},
               "overall_scale": scaling.overall, "size_exponent": round(scaling.exponent, 4),
               "size_pivot_us": round(scaling.pivot_us, 2)}  # fmt: skip
    return KernelPredictor(
        context=dict(source.context),
        models={t: scale(t.value, m) for t, m in source.models.items()},
        fallback=scale("fallback", source.fallback),
        calibration=source.calibration,
        versions=dict(source.versions),
        summary=summary,
        groups={g: scale(f"group {g}", m) for g, m in source.groups.items()},
        variants={v: scale(v, m) for v, m in source.variants.items()},
    )
