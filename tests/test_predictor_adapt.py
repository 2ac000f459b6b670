"""`flopgap predictor build --from ID`: a stored predictor adapted to another context of this machine (2 threads)
from a few zoo models and probes of its dominant kernel types, on the real local device with a tiny budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from devices.local import local_device
from devices.vocabulary import Format, Precision, Runtime
from exporters.export import export
from harness.cli.main import app
from harness.measure.spec import Protocol
from harness.predict.adapt import (
    AdaptPlan,
    adapt_predictor,
    dominant_types,
    priced_by,
    probe_configs,
    scale_factors,
)
from harness.predict.build import BuildReporter
from harness.predict.dataset import PredictContext, load_dataset
from harness.predict.extract import extract_kernels
from harness.predict.predictor import KernelPredictor, TrainingRow, fit_predictor
from harness.predict.regressor import MIN_TIME_US
from harness.sources import source_artifact
from harness.store import Store
from harness.zoo.registry import resolve

runner = CliRunner()
MODELS = (resolve("mobilenet_v1", alpha=0.25, resolution=128), resolve("shufflenet_v2", scale=0.5),
          resolve("mobilenet_v3_small", alpha=0.75))  # fmt: skip
FAST = Protocol(trials=2, warmup_runs=2, warmup_seconds=0.0, runs=5, min_seconds=0.02)
FAST_PROBES = Protocol(trials=1, warmup_runs=2, warmup_seconds=0.0, runs=5, min_seconds=0.01, parity=False)


def _source(db: Path) -> tuple[int, KernelPredictor]:
    """A 1-thread predictor fitted on the models' own kernels with made-up times (1 µs + 1 µs per 10 kFLOP + 1 µs
    per kB: wrong for this machine by a different factor per type), stored as if built here."""
    kernels = [k for m in MODELS for k in extract_kernels(source_artifact(m, Format.ONNX, Precision.FP32).path,
                                                         Runtime.ONNXRUNTIME)]  # fmt: skip
    rows = [TrainingRow(k, 1 + k.flops / 1e4 + k.bytes_moved / 1e3, "space") for k in kernels]
    predictor = fit_predictor({"device": "local", "runtime": "onnxruntime", "threads": 1}, rows, [])
    with Store(db) as store:
        pid = store.add_predictor("local", "onnxruntime", 1, "fp32", "lightgbm", predictor.versions,
                                  predictor.to_json(), {})  # fmt: skip
    return pid, predictor


def test_adapting_to_two_threads_scales_each_dominant_type_and_beats_the_source_on_the_new_context(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.db"
    source_id, source = _source(db)
    ctx = PredictContext("local", Runtime.ONNXRUNTIME, threads=2)
    # A budget no loaded machine exhausts: every planned probe is measured, so what is asserted never depends on
    # how fast this machine happens to be (the budget's cut-off is the build's, tested in test_predictor.py).
    plan = AdaptPlan(ctx, budget_s=3600, seed=0, models=MODELS, probe_protocol=FAST_PROBES, model_protocol=FAST,
                     source_id=source_id)  # fmt: skip
    with Store(db) as store:
        result = adapt_predictor(plan, store, local_device(), export, BuildReporter())
        row = store.predictor(result.predictor_id)
        dataset = load_dataset(store, ctx)
        probed = set(store.kernel_samples_frame()["kernel_type"])
    assert row is not None and (row.device, row.threads) == ("local", 2) and row.summary["adapted_from"] == source_id
    dominant = dominant_types(source, [m.kernels for m in dataset.models])
    assert result.models == 3 and result.probes_measured == len(probe_configs(dominant, Runtime.ONNXRUNTIME, 0)) > 0
    assert probed <= {t.value for t in dominant}  # probes only of the types that dominate the models
    # each regressor's factor is the median measured / source-predicted time of the new rows it prices
    factors, overall = scale_factors(source, dataset.rows)
    assert row.summary["scales"] == {name: round(f, 4) for name, f in factors.items()}
    assert {"pointwise_conv", "depthwise_conv"} <= set(factors)  # what dominates these nets has a factor of its own
    adapted = KernelPredictor.from_json(row.model)
    name_of = {id(m): name for name, m in priced_by(source).items()}
    for r in dataset.rows:
        ratio = adapted.kernel_times_us([r.kernel])[0] / source.kernel_times_us([r.kernel])[0]
        floor = source.kernel_times_us([r.kernel])[0] <= MIN_TIME_US  # the base's floor: not scaled
        assert floor or np.isclose(ratio, factors[name_of[id(source.model_for(r.kernel))]], rtol=1e-6)
    # the three models measured with 2 threads: the adapted predictor is far closer than the made-up source (how
    # close is the benchmark's figure, not this test's: on a loaded machine models and probes see other loads)
    measured = np.array([m.median_ms for m in dataset.models])
    before = np.array([source.predict(m.kernels).total_ms for m in dataset.models]) / measured - 1
    after = np.array([adapted.predict(m.kernels).total_ms for m in dataset.models]) / measured - 1
    print(f"relative errors before {before.round(3)}, after {after.round(3)}")
    assert np.abs(after).mean() < 0.5 * np.abs(before).mean()
    assert overall > 0 and row.summary["overall_scale"] == overall


def test_build_from_refuses_an_unknown_predictor_and_another_runtime_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    with Store(db) as store:
        predictor = fit_predictor({"device": "local", "runtime": "onnxruntime"}, [], [])
        store.add_predictor("local", "onnxruntime", 1, "fp32", "lightgbm", {}, predictor.to_json(), {})
    for args, says in (
        (["--from", "7"], "--from 7: no such predictor in"),
        (["--from", "1", "--runtime", "litert"], "predictor 1 is for onnxruntime, not litert"),
    ):
        result = runner.invoke(app, ["predictor", "build", "--threads", "2", "--budget", "1m", *args, "--db", str(db)])
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
    with Store(db, readonly=True) as store:
        assert store.points_frame().empty  # refused before measuring anything
