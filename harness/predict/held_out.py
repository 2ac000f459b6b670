"""Evaluation on models nobody tuned to: random architectures (:mod:`harness.predict.random_nets`) or a user's files.

The models are measured by a sweep (exports cached, trials interleaved, each point committed as it completes, so an
interrupted evaluation resumes), then predicted by the context's stored predictor from their kernels, which are
extracted here and never stored: nothing of these models reaches a predictor's training data (the dataset leaves
the random nets out of every build). The two baselines, linear in MACs and the scaled roofline sum, are fitted on the
context's zoo models, as the predictor's calibration is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from devices.base import Device
from devices.core.errors import FlopgapError
from devices.vocabulary import Runtime
from harness.measure.spec import ModelRef, SweepSpec, model_selection
from harness.measure.spec import Protocol as SweepProtocol
from harness.measure.sweep import Exporter, Reporter, run_sweep
from harness.predict.dataset import (
    ModelPoint,
    PredictContext,
    latest_versions,
    load_dataset,
    optional_float,
    roofline_by_artifact,
)
from harness.predict.device_graph import fetch_graphs, store_device_kernels
from harness.predict.evaluate import Evaluation, ModelResult, fit_baselines
from harness.predict.extract import extract_kernels
from harness.predict.predictor import KernelPredictor
from harness.predict.random_nets import TARGET, TRAINING_TARGET, Size, draw
from harness.sources import FileSource, TorchFactory
from harness.sources.factory import load_factory
from harness.sources.file import load_file
from harness.store import PointStatus, Store

RANDOM_FAMILY = "random"
FILE_FAMILY = "file"
MODEL_SUFFIXES = (".onnx", ".tflite")


@dataclass(frozen=True)
class HeldOutPlan:
    context: PredictContext
    models: tuple[ModelRef, ...]
    family: str  # what the table calls them: random or file
    name: str  # the sweep's name: a rerun with the same name resumes it
    protocol: SweepProtocol


def random_models(n: int, seed: int, size: Size = Size.FULL, training: bool = False) -> list[TorchFactory]:
    """The first ``n`` random nets of ``seed`` as torch factories the sweep exports (``training``: a build's
    training nets, another stream of the same space; see :mod:`harness.predict.random_nets`)."""
    target = TRAINING_TARGET if training else TARGET
    return [load_factory(target, (draw(seed, i, size, training).input_shape,),
                         {"seed": seed, "index": i, "size": size.value}) for i in range(n)]  # fmt: skip


def file_models(directory: Path, runtime: Runtime) -> list[FileSource]:
    """The .onnx and .tflite files of ``directory`` that ``runtime`` runs, in name order."""
    if not directory.is_dir():
        raise FlopgapError(f"--models {directory}: no such directory; give a folder of .onnx or .tflite files")
    files = sorted(p for p in directory.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())
    sources = [load_file(p) for p in files]
    usable = [s for s in sources if s.runtime_error(runtime) is None]
    if not usable:
        found = ", ".join(p.name for p in files) or "no .onnx or .tflite file"
        raise FlopgapError(f"--models {directory}: nothing {runtime} runs ({found}); give a folder of "
                           f"{runtime.artifact_format} files or another --runtime")  # fmt: skip
    return usable


def evaluate_held_out(
    plan: HeldOutPlan,
    store: Store,
    device: Device,
    exporter: Exporter,
    predictor: KernelPredictor,
    reporter: Reporter | None = None,
) -> Evaluation:
    """Measure ``plan.models`` on ``device`` (resumable), then score the predictor and both baselines on them."""
    ctx = plan.context
    spec = SweepSpec(
        name=plan.name,
        models=[model_selection(m) for m in plan.models],
        runtimes=[ctx.runtime],
        precisions=[ctx.precision],
        threads=[ctx.threads],
        devices=[device.name],
        protocol=plan.protocol,
    )
    result = run_sweep(spec, f"# {plan.name}\n", store, {device.name: device}, exporter, reporter)
    points = store.points_frame()
    points = points[points["point_id"].isin(result.point_ids) & (points["status"] == PointStatus.DONE)]
    if points.empty:
        raise FlopgapError(f"{plan.name}: no model was measured (see 'flopgap results'); fix the device and rerun")
    stored_ctx = PredictContext(str(points["device"].iloc[0]), ctx.runtime, ctx.threads, ctx.precision)
    held_out = set(points["artifact_sha"])  # a user's file measured earlier by a sweep is no zoo model here
    # The baselines see the whole models the predictor's calibration saw: zoo models and the build's training nets.
    seen = [m for m in load_dataset(store, stored_ctx, latest_versions(store, stored_ctx)).models
            if m.artifact_sha not in held_out]  # fmt: skip
    macs_linear, roofline = fit_baselines(seen)
    roof = roofline_by_artifact(store, stored_ctx)
    paths = store.artifacts_frame().set_index("sha256")["path"]
    results = []
    models = _model_points(points, plan.family, roof)
    if ctx.runtime is Runtime.ONNXRUNTIME:  # the device's graphs of them all, a few runner processes in all
        fetch_graphs(device, stored_ctx.device, [(Path(str(paths[m.artifact_sha])), m.artifact_sha) for m in models],
                     ctx.threads)  # fmt: skip
    for m in models:
        path = Path(str(paths[m.artifact_sha]))
        if ctx.runtime is Runtime.ONNXRUNTIME:  # the graph ORT optimizes on the device, never this machine's
            kernels = store_device_kernels(store, device, stored_ctx.device, ctx.runtime, path, m.artifact_sha,
                                           threads=ctx.threads)  # fmt: skip
        else:  # a user's file is read where it is (no kernel list cached beside it); a random net's is in the cache
            kernels = extract_kernels(path, ctx.runtime, cache=plan.family != FILE_FAMILY)
        results.append(
            ModelResult(
                label=m.label,
                family=m.family,
                measured_ms=m.target_ms,
                predictor_ms=predictor.predict(kernels).total_ms if kernels else None,
                macs_linear_ms=macs_linear(m),
                roofline_ms=roofline(m) if roofline is not None and m.roofline_ms is not None else None,
                ci_halfwidth=(m.ci_high_ms - m.ci_low_ms) / 2 / m.median_ms
                if m.ci_low_ms is not None and m.ci_high_ms is not None
                else None,
                trial_halfspread=m.trial_spread / 2 if m.trial_spread is not None else None,
            )
        )
    return Evaluation(results, baseline_models=len(seen))


def _model_points(points: pd.DataFrame, family: str, roof: dict[str, float]) -> list[ModelPoint]:
    return [
        ModelPoint(
            point_id=int(r.point_id),
            label=str(r.model_label),
            family=family,
            artifact_sha=str(r.artifact_sha),
            macs=optional_float(r.macs) or 0.0,
            median_ms=float(r.median_ms),
            ci_low_ms=optional_float(r.ci_low_ms),
            ci_high_ms=optional_float(r.ci_high_ms),
            kernels=(),
            roofline_ms=roof.get(str(r.artifact_sha)),
            trial_spread=optional_float(r.trial_spread),
            p10_ms=optional_float(r.p10_ms),
        )
        for r in points.itertuples()
    ]
