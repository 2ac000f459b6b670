"""A tiny predictor and measured points in a real results database, as the predictor CLI tests set them up: kernels
timed by a known law, so a test can say what each prediction must be."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from devices.result import TrialResult
from exporters.artifact import Artifact
from harness.measure.stats import combine_trials
from harness.predict.kernels import Kernel
from harness.predict.predictor import KernelPredictor, TrainingRow, fit_predictor
from harness.store import Store


def store_linear_predictor(store: Store, kernels: Sequence[Kernel]) -> KernelPredictor:
    """Fits and stores a local/onnxruntime predictor on ``kernels`` (each three times) timed 1 µs + 1 µs per
    10 kFLOP + 1 µs per kB."""
    rows = [TrainingRow(k, 1 + k.flops / 1e4 + k.bytes_moved / 1e3, "space") for k in list(kernels) * 3]
    predictor = fit_predictor({"device": "local", "runtime": "onnxruntime"}, rows, [])
    store.add_predictor("local", "onnxruntime", 1, "fp32", "lightgbm", predictor.versions, predictor.to_json(), {})
    return predictor


def store_measured(
    store: Store, run_name: str, measured: Sequence[tuple[Artifact, float, dict[str, Any]]], fast_runs: int = 0
) -> None:
    """A run of done points on local/onnxruntime: each artifact (stored with its ``upsert_artifact`` keywords)
    measured at its milliseconds, in one trial of 20 runs; the first ``fast_runs`` (3: the p10) at 90% of it."""
    run = store.start_run(run_name, "")
    store.upsert_device("local", "local", {})
    for art, ms, labels in measured:
        store.upsert_artifact(art, **labels)
        point = store.ensure_point(run, art.sha256, "local", "onnxruntime", 1, {})
        samples = np.full(20, int(ms * 1e6), dtype=np.int64)
        samples[:fast_runs] = int(ms * 0.9e6)
        store.add_trial(point, 0, TrialResult("onnxruntime", samples_ns=tuple(samples.tolist())), run_id=run)
        store.complete_point(point, combine_trials([samples]))
