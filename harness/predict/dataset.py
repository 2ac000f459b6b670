"""What a predictor learns from and is judged on, read from the results database for one context.

- **Kernel rows** (:class:`~harness.predict.predictor.TrainingRow`): ONNX Runtime: every profiled node of a kernel
  probe or a zoo model, joined to its kernel by the name the op profile stores (the exported node it runs, or
  ORT's own name for layout nodes); LiteRT: each single-kernel probe's median, and every convolution and fully
  connected layer of a zoo model or training net that its op profile times (``benchmark_model``'s, or LiteRT's C
  API profiler read by flopgap's runner: :mod:`harness.predict.tflite_profile`; memory-bound operators in place are
  left to their probes, below). A row's ``source`` is ``space`` for probes and the model's
  family for a zoo model's nodes. A model's profile that sums far from the model's timed latency (one the sweep
  took again and still found astray: :func:`~harness.measure.profile.profile_agrees`) gives none.
- **Model points** (:class:`ModelPoint`): zoo models measured in the context, with their kernels, MACs and
  roofline sum (when the device is calibrated), which the calibration is fitted on and the evaluation predicts;
  and a build's training nets (family :data:`TRAINING_FAMILY`), which the calibration is fitted on too and whose
  profiled ops are kernel rows, but which no leave-one-family-out fold predicts.

A model's ONNX Runtime kernel rows carry the model's timed run as their weights' reuse interval (:func:`in_run_of`):
in a model run back to back its weights are used once per run, and a long run lets them leave the cache. LiteRT's
keep reuse 0, as its probes do, so LiteRT learns no cold-weight terms: the in-context rows would be the only LiteRT
rows with a reuse interval, and the dense-conv regressor learnt its steps from the training nets' small convs and
extrapolated them to ResNet-50's 9 MiB 3x3 weights (1.0 ms -> 44.6 ms a kernel). Refitted offline on a LiteRT 48-net
build per seed with their in-context rows (README, "LiteRT's operators timed inside the nets"): 80-87% and 3-67%
within ±10% on the random nets with reuse, 87% and 87% without.

LiteRT's memory-bound operators (transposes, activations, element-wise ops, pools, copies) timed inside a model are
not rows: XNNPACK fuses some into their producer (a hard-swish after a conv reads 0 µs) and times the others with
whatever cache state the producer left, and the rows taught steep per-byte slopes that the trees' factor then
multiplied: two 15-minute LiteRT builds with every in-context row priced a 2.6 M-element transpose at 28 ms (a
19x factor on a base with a steep slope past the 8 MiB knee; the net measured 4.7 ms) and scored 83% and 70%
within ±10% on their random nets (RMSE 16% and 118%); refitted with in-context rows of convolutions and fully
connected layers alone, 87% and 63% (RMSE 9.4% and 10.5%), against 67% and 43% (8.6%, 12.9%) with no in-context
rows (README, "LiteRT builds with their operators timed inside the nets").

What a point contributes, as a probe's time or a model's latency, is :func:`target_ms`: its pooled 10th percentile,
the latency the device gives when nothing else runs on it, not its median (see there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from devices.vocabulary import Precision, Runtime
from harness.measure.profile import profile_agrees
from harness.measure.stats import target_ms
from harness.measure.versions import PointVersions
from harness.predict.device_graph import kernel_key
from harness.predict.kernels import COMPUTE_TYPES, Kernel
from harness.predict.predictor import TrainingRow
from harness.predict.tflite_profile import DELEGATE_NODES, ProfiledOp, join_profile
from harness.store import Store
from harness.store.status import PointStatus

SPACE = "space"
NOT_MODELS = frozenset({"kernel", "block", "guideline"})  # probes, building blocks, guideline experiments
# The random nets `predictor eval --random` measures (their factory's labels): held out of every build, always.
RANDOM_NETS = "harness.predict.random_nets:random_net["
# A build's training nets (random_nets' training stream: never one of the nets above), and their family here.
TRAINING_NETS = "harness.predict.random_nets:training_net["
TRAINING_FAMILY = "random-train"


@dataclass(frozen=True)
class PredictContext:
    """What a predictor is for: one device, runtime, thread count and precision."""

    device: str
    runtime: Runtime
    threads: int = 1
    precision: Precision = Precision.FP32

    def to_json(self) -> dict[str, str | int]:
        return {"device": self.device, "runtime": self.runtime.value, "threads": self.threads,
                "precision": self.precision.value}  # fmt: skip

    def __str__(self) -> str:
        return f"{self.device} {self.runtime} t{self.threads} {self.precision}"


@dataclass(frozen=True)
class ModelPoint:
    point_id: int
    label: str
    family: str
    artifact_sha: str
    macs: float
    median_ms: float
    ci_low_ms: float | None
    ci_high_ms: float | None
    kernels: tuple[Kernel, ...]
    roofline_ms: float | None
    trial_spread: float | None = None  # (max - min) / median of the trials' medians: how far the device drifted
    p10_ms: float | None = None  # of the pooled samples (None: the runner printed a summary only)

    @property
    def target_ms(self) -> float:
        """The latency a predictor is fitted to and judged against (:func:`target_ms`)."""
        return target_ms(self.median_ms, self.p10_ms)


@dataclass
class Dataset:
    context: PredictContext
    rows: list[TrainingRow]
    models: list[ModelPoint]

    @property
    def families(self) -> list[str]:
        """The families leave-one-family-out predicts: the zoo's (and a user's own), never the training nets."""
        return sorted({m.family for m in self.models} - {TRAINING_FAMILY})

    @property
    def training_nets(self) -> int:
        """How many of the models are a build's training nets (the rest are zoo models and a user's own)."""
        return sum(m.family == TRAINING_FAMILY for m in self.models)

    def without(self, family: str | None) -> tuple[list[TrainingRow], list[ModelPoint]]:
        """Training rows and calibration models with nothing from ``family`` (None: everything)."""
        rows = [r for r in self.rows if family is None or r.source != family]
        models = [m for m in self.models if family is None or m.family != family]
        return rows, models


def join_key(kernel: Kernel) -> str:
    """The node name an op profile stores for this kernel (see :func:`harness.measure.profile.map_ort_rows`)."""
    return kernel.source_ops[0] if kernel.source_ops else kernel.name


def same_versions(points: pd.DataFrame, versions: PointVersions) -> pd.Series:
    """Points measured with these runtime and runner versions (a version not recorded matches any)."""
    keep = pd.Series(True, index=points.index)
    for column, version in (("runtime_version", versions.runtime_version), ("runner_version", versions.runner_version)):
        if version is not None:
            keep &= points[column].isna() | (points[column] == version)
    return keep


def context_points(store: Store, ctx: PredictContext, versions: PointVersions | None = None) -> pd.DataFrame:
    """The context's done points; with ``versions``, only those measured with them (a build fits on what the
    device runs now: an upgraded runtime's points are others, as in a sweep)."""
    frame = store.points_frame()
    keep = (
        (frame["device"] == ctx.device)
        & (frame["runtime"] == ctx.runtime.value)
        & (frame["threads"] == ctx.threads)
        & (frame["precision"] == ctx.precision.value)
        & (frame["status"] == PointStatus.DONE)
    )
    if versions is not None:
        keep &= same_versions(frame, versions)
    return frame[keep]


def latest_versions(store: Store, ctx: PredictContext) -> PointVersions | None:
    """The runtime and runner versions of the context's most recent done point (None: no point yet): what the
    device runs now, so an evaluation never mixes medians of two runtime versions."""
    points = context_points(store, ctx)
    if points.empty:
        return None
    last = points.sort_values("point_id").iloc[-1]

    def text(value: object) -> str | None:
        return str(value) if isinstance(value, str) and value else None

    return PointVersions(text(last["runtime_version"]), text(last["runner_version"]))


def load_dataset(store: Store, ctx: PredictContext, versions: PointVersions | None = None) -> Dataset:
    """What a predictor learns from in ``ctx`` (with ``versions``: only points measured with them)."""
    points = context_points(store, ctx, versions)
    probes = store.kernel_samples_frame().set_index("point_id")
    key = kernel_key(ctx.runtime, ctx.device)  # ORT: the kernels of the graph the device itself optimized
    kernels_by_sha: dict[str, list[Kernel]] = {}

    def kernels(sha: str) -> list[Kernel]:
        if sha not in kernels_by_sha:
            kernels_by_sha[sha] = [Kernel.from_json(r.kernel) for r in store.kernels_of(sha, key)]
        return kernels_by_sha[sha]

    is_probe = points["point_id"].isin(probes.index)
    model_rows = points[~is_probe & points["family"].notna() & ~points["family"].isin(NOT_MODELS)
                        & ~points["model_label"].astype(str).str.startswith(RANDOM_NETS)]  # fmt: skip
    training = model_rows["model_label"].astype(str).str.startswith(TRAINING_NETS)
    model_rows = model_rows.assign(family=model_rows["family"].where(~training, TRAINING_FAMILY))
    rows: list[TrainingRow] = []
    if ctx.runtime is Runtime.ONNXRUNTIME:
        profiled = store.op_profiles_frame(points["point_id"].tolist())
        by_point = {int(pid): group for pid, group in profiled.groupby("point_id")}
        probe_ids = {int(p) for p in points.loc[is_probe, "point_id"]}
        sources = {p: str(probes.loc[p, "source"]) for p in probe_ids}
        sources.update({int(r.point_id): str(r.family) for r in model_rows.itertuples()})
        for row in points[points["point_id"].isin(list(sources))].itertuples():
            group = by_point.get(int(row.point_id))
            if group is None:
                continue
            times = group.groupby("node_name")["time_us"].sum().to_dict()
            probe = int(row.point_id) in probe_ids
            run_us = target_ms(row.median_ms, optional_float(row.p10_ms)) * 1e3
            if not probe and not profile_agrees(sum(times.values()), run_us):
                continue
            for k in kernels(str(row.artifact_sha)):
                t = times.get(join_key(k))
                if t is not None and t > 0:
                    rows.append(TrainingRow(k if probe else in_run_of(k, run_us), float(t), sources[int(row.point_id)],
                                            int(row.point_id)))  # fmt: skip
    else:
        for row in points[is_probe].itertuples():
            ks = kernels(str(row.artifact_sha))
            if len(ks) == 1:
                source = str(probes.loc[row.point_id, "source"])
                rows.append(TrainingRow(ks[0], target_ms(row.median_ms, optional_float(row.p10_ms)) * 1e3, source,
                                        int(row.point_id)))  # fmt: skip
        # A whole model's op profile (benchmark_model's, or LiteRT's C API profiler read by flopgap's runner): its
        # kernels timed where they run, among their neighbours (reuse 0: the module doc).
        profiled = store.op_profiles_frame(model_rows["point_id"].tolist())
        by_point = {int(pid): group for pid, group in profiled.groupby("point_id")}
        for row in model_rows.itertuples():
            group = by_point.get(int(row.point_id))
            if group is None:
                continue
            ops = [ProfiledOp(str(t), float(us)) for t, us in zip(group["op_type"], group["time_us"], strict=True)]
            run_us = target_ms(row.median_ms, optional_float(row.p10_ms)) * 1e3
            if not profile_agrees(sum(op.time_us for op in ops if op.op_type not in DELEGATE_NODES), run_us):
                continue
            for k, t in join_profile(ops, kernels(str(row.artifact_sha))):
                if k.type in COMPUTE_TYPES:  # memory-bound operators in place: see the module doc
                    rows.append(TrainingRow(k, t, str(row.family), int(row.point_id)))
    roof = roofline_by_artifact(store, ctx)
    models = []
    for row in model_rows.itertuples():
        ks = kernels(str(row.artifact_sha))  # none: measured by a sweep, not a build (the baselines still apply)
        models.append(
            ModelPoint(
                point_id=int(row.point_id),
                label=str(row.model_label),
                family=str(row.family),
                artifact_sha=str(row.artifact_sha),
                macs=optional_float(row.macs) or 0.0,
                median_ms=float(row.median_ms),
                ci_low_ms=optional_float(row.ci_low_ms),
                ci_high_ms=optional_float(row.ci_high_ms),
                kernels=tuple(ks),
                roofline_ms=roof.get(str(row.artifact_sha)),
                trial_spread=optional_float(row.trial_spread),
                p10_ms=optional_float(row.p10_ms),
            )
        )
    return Dataset(ctx, rows, models)


def calibration_set(models: Sequence[ModelPoint]) -> tuple[list[tuple[Sequence[Kernel], float]], list[float]]:
    """What a predictor's calibration is fitted on: each model with kernels as (kernels, measured µs), and its
    weight. A build's training nets together weigh at most what the other models (the zoo's, a user's) together
    weigh: where the device profiles their ops a build measures more nets than zoo models
    (:data:`~harness.predict.build.TRAIN_NETS`), and unweighted they would bend the model-level line to the nets
    alone. Refitted on a 15-minute ONNX Runtime build with 48 nets (README, "The accuracy table with 48 training
    nets"), its zoo leave-one-family-out went from 76% to 81% within ±10% (as with 16 nets) and its random nets
    stayed at 97%; another seed's build stayed at 95% and 93%."""
    usable = [m for m in models if m.kernels]
    nets = sum(m.family == TRAINING_FAMILY for m in usable)
    others = len(usable) - nets
    net_weight = min(1.0, others / nets) if nets and others else 1.0  # nets alone: nothing to weigh them against
    weights = [net_weight if m.family == TRAINING_FAMILY else 1.0 for m in usable]
    return [(m.kernels, m.target_ms * 1e3) for m in usable], weights


def in_run_of(kernel: Kernel, run_us: float) -> Kernel:
    """A model's kernel as it was timed: its weights reused once per run of the model (``run_us``; see
    :attr:`~harness.predict.kernels.Kernel.reuse_us`). A probe's kernels stay as they are: timed alone, reuse 0."""
    return replace(kernel, reuse_us=run_us)


def optional_float(value: object) -> float | None:
    """A frame cell as a float, None where it is missing (NULL / NaN)."""
    return float(value) if pd.notna(value) else None  # type: ignore[arg-type]


def roofline_by_artifact(store: Store, ctx: PredictContext) -> dict[str, float]:
    """Artifact sha -> Σ over its graph's ops of max(FLOPs / peak, bytes / bandwidth), in ms, from the context's
    latest calibration; empty when the device is not calibrated for this runtime and thread count."""
    cals = store.calibrations_frame()
    cals = cals[(cals["device"] == ctx.device) & (cals["runtime"] == ctx.runtime.value)
                & (cals["threads"] == ctx.threads)]  # fmt: skip
    if cals.empty:
        return {}
    latest = cals.iloc[-1]
    peak, bandwidth = latest["peak_gflops"], latest["bandwidth_gbs"]
    if not (pd.notna(peak) and pd.notna(bandwidth) and peak > 0 and bandwidth > 0):
        return {}
    out = {}
    for sha, frame in store.op_accounts().items():
        flops = pd.to_numeric(frame["flops"], errors="coerce").fillna(0.0)
        moved = pd.to_numeric(frame["mac_bytes"], errors="coerce").fillna(0.0)
        per_op_ns = (flops / float(peak)).combine(moved / float(bandwidth), max)  # GFLOP/s = FLOP/ns
        out[sha] = float(per_op_ns.sum()) / 1e6
    return out


def model_contexts(store: Store) -> list[PredictContext]:
    """Contexts with measured zoo models (what the baselines can be evaluated on), in first-measured order."""
    frame = store.points_frame()
    frame = frame[(frame["status"] == PointStatus.DONE) & frame["family"].notna() & ~frame["family"].isin(NOT_MODELS)]
    seen = dict.fromkeys(
        PredictContext(str(r.device), Runtime(r.runtime), int(r.threads), Precision(r.precision))
        for r in frame.itertuples()
    )
    return list(seen)


def predictor_contexts(store: Store) -> list[PredictContext]:
    """Contexts that have a stored predictor, in the order they were first built."""
    frame = store.predictors_frame()
    seen = dict.fromkeys(
        PredictContext(str(r.device), Runtime(r.runtime), int(r.threads), Precision(r.precision))
        for r in frame.itertuples()
    )
    return list(seen)
