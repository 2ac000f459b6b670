"""`flopgap predictor build --from ID`: a stored predictor adapted to another context of this machine (2 threads)
from a few zoo models and probes of its dominant kernel types, on the real local device with a tiny budget; and the
calibration an adaptation keeps from its source (one scale) or refits (enough models), on models built in code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from devices.local import local_device
from devices.vocabulary import Format, Precision, Runtime
from exporters.export import export
from harness.cli.main import app
from harness.measure.spec import Protocol
from harness.predict.adapt import (
    FULL_REFIT_MODELS,
    PROBES_PER_TYPE,
    SLOPE_LIMIT,
    SOURCE_PRIOR_WEIGHT,
    AdaptPlan,
    CalibrationRefit,
    adapt_from,
    adapt_predictor,
    calibration_note,
    dominant_types,
    priced_by,
    probe_configs,
    scale_factors,
    scaling_note,
)
from harness.predict.build import BuildReporter
from harness.predict.dataset import PredictContext, load_dataset
from harness.predict.device_graph import host_arch
from harness.predict.extract import extract_kernels
from harness.predict.kernels import Kernel, KernelType
from harness.predict.predictor import Calibration, KernelPredictor, TrainingRow, fit_calibration, fit_predictor
from harness.sources import source_artifact
from harness.store import Store
from harness.zoo.registry import resolve

runner = CliRunner()
MODELS = (resolve("mobilenet_v1", alpha=0.25, resolution=128), resolve("shufflenet_v2", scale=0.5),
          resolve("mobilenet_v3_small", alpha=0.75))  # fmt: skip
FAST = Protocol(trials=2, warmup_runs=2, warmup_seconds=0.0, runs=5, min_seconds=0.02)
FAST_PROBES = Protocol(trials=1, warmup_runs=2, warmup_seconds=0.0, runs=5, min_seconds=0.01, parity=False)
PER_TYPE = 8  # probes per dominant type: a budget no loaded machine exhausts measures all of them


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
                     source_id=source_id, probes_per_type=PER_TYPE)  # fmt: skip
    with Store(db) as store:
        result = adapt_predictor(plan, store, local_device(), export, BuildReporter())
        row = store.predictor(result.predictor_id)
        dataset = load_dataset(store, ctx)
        probed = set(store.kernel_samples_frame()["kernel_type"])
    assert row is not None and (row.device, row.threads) == ("local", 2) and row.summary["adapted_from"] == source_id
    assert row.summary["arch"] == host_arch()  # the device it was adapted to, whatever the source's
    dominant = dominant_types(source, [m.kernels for m in dataset.models])
    planned = probe_configs(dominant, Runtime.ONNXRUNTIME, 0, PER_TYPE)
    assert result.models == 3 and result.probes_measured == len(planned) > 0
    assert probed <= {t.value for t in dominant}  # probes only of the types that dominate the models
    # each regressor's factor is the median measured / source-predicted time of the new rows it prices (at the
    # pivot, with the shared exponent), and the adapted predictor prices every row through its regressor's rescale
    scaling = scale_factors(source, dataset.rows)
    assert row.summary["scales"] == {name: round(f, 4) for name, f in scaling.factors.items()}
    assert row.summary["size_exponent"] == round(scaling.exponent, 4)
    assert {"pointwise_conv", "depthwise_conv"} <= set(scaling.factors)  # what dominates these nets: own factors
    adapted = KernelPredictor.from_json(row.model)
    name_of = {id(m): name for name, m in priced_by(source).items()}
    for r in dataset.rows:
        before = source.kernel_times_us([r.kernel])
        expected = scaling.rescale(name_of[id(source.model_for(r.kernel))]).apply(before)
        assert adapted.kernel_times_us([r.kernel]) == pytest.approx(expected, rel=1e-9)
    # the three models measured with 2 threads: the adapted predictor is far closer than the made-up source (how
    # close is the benchmark's figure, not this test's: on a loaded machine models and probes see other loads)
    measured = np.array([m.median_ms for m in dataset.models])
    before = np.array([source.predict(m.kernels).total_ms for m in dataset.models]) / measured - 1
    after = np.array([adapted.predict(m.kernels).total_ms for m in dataset.models]) / measured - 1
    print(f"relative errors before {before.round(3)}, after {after.round(3)}")
    assert np.abs(after).mean() < 0.5 * np.abs(before).mean()
    assert scaling.overall > 0 and row.summary["overall_scale"] == scaling.overall
    # three models are too few for three calibration terms: the source's shape, one scale
    assert row.summary["calibration_refit"] == CalibrationRefit.SCALE and row.summary["calibration_models"] == 3
    scale = row.summary["calibration_scale"]
    assert (adapted.calibration.c0, adapted.calibration.c1, adapted.calibration.c2) == pytest.approx(
        (source.calibration.c0 * scale, source.calibration.c1 * scale, source.calibration.c2 * scale), rel=1e-3
    )


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


# The source's calibration: not the identity, so keeping its shape is something a refit can fail to do (µs, ratio,
# µs per kernel).
SOURCE_CALIBRATION = Calibration(c0=400.0, c1=0.85, c2=4.0)
TRUE_SCALE = 1.3  # the new device's models take 1.3x what the source predicts
PERTURBATION = 0.01  # each calibration model's measurement is off by at most this (relative)


@pytest.fixture(scope="module")
def unit_models() -> dict[tuple[int, int], list[Kernel]]:
    """Models built in code: a ShuffleNetV2 unit at 28, 56 and 112 px, repeated 1, 2 or 4 times (kernel sums from
    6 to 376 ms at the source's prices, 8 to 32 kernels)."""
    units = {h: extract_kernels(export(resolve("shufflenet_v2_unit", h=h, w=h), Format.ONNX, Precision.FP32).path,
                                Runtime.ONNXRUNTIME) for h in (28, 56, 112)}  # fmt: skip
    return {(h, r): kernels * r for h, kernels in units.items() for r in (1, 2, 4)}


def _unit_source(models: dict[tuple[int, int], list[Kernel]]) -> KernelPredictor:
    kernels = {k.name + str(k.h_in): k for m in models.values() for k in m}.values()
    rows = [TrainingRow(k, 1 + k.flops / 1e4 + k.bytes_moved / 1e3, "space") for k in list(kernels) * 3]
    source = fit_predictor({"device": "local", "runtime": "onnxruntime"}, rows, [])
    source.calibration = SOURCE_CALIBRATION
    return source


def _measured(source: KernelPredictor, kernels: list[Kernel], error: float = 0.0) -> float:
    return TRUE_SCALE * source.predict(kernels).total_ms * 1e3 * (1 + error)


def test_adapting_on_three_models_scales_the_source_calibration_and_carries_to_models_it_never_saw(
    unit_models: dict[tuple[int, int], list[Kernel]],
) -> None:
    source = _unit_source(unit_models)
    chosen = {(28, 1): PERTURBATION, (56, 1): -PERTURBATION, (28, 4): PERTURBATION / 2}
    models = [(unit_models[key], _measured(source, unit_models[key], e)) for key, e in chosen.items()]
    adapted = adapt_from(source, [], models)  # no kernel rows: the kernels keep the source's prices
    # models not among the three (2 to 60x their kernel sums) follow the 1.3x within the same perturbation; a
    # 3-term refit through the three models' noise misses the larger ones by up to 2.4%
    held_out = [key for key in unit_models if key not in chosen]
    errors = {key: adapted.predict(unit_models[key]).total_ms * 1e3 / _measured(source, unit_models[key]) - 1
              for key in held_out}  # fmt: skip
    assert all(abs(e) <= PERTURBATION for e in errors.values()), errors
    # the scale is the median of TRUE_SCALE * (1 + e) over the models: within the perturbation of TRUE_SCALE
    scale = adapted.summary["calibration_scale"]
    assert adapted.summary["calibration_refit"] == CalibrationRefit.SCALE and adapted.summary["calibration_models"] == 3
    assert abs(scale / TRUE_SCALE - 1) <= PERTURBATION
    cal = adapted.calibration
    assert (cal.c0, cal.c1, cal.c2) == pytest.approx(
        (SOURCE_CALIBRATION.c0 * scale, SOURCE_CALIBRATION.c1 * scale, SOURCE_CALIBRATION.c2 * scale), rel=1e-3
    )
    assert "scaled by 1.3" in calibration_note(adapted.summary) and "over 3 models" in calibration_note(adapted.summary)


def test_adapting_on_enough_models_refits_all_three_calibration_terms(
    unit_models: dict[tuple[int, int], list[Kernel]],
) -> None:
    source = _unit_source(unit_models)
    keys = sorted(unit_models)[:FULL_REFIT_MODELS]
    # a per-kernel overhead the source's shape does not have: 30 µs more per kernel
    models = [(unit_models[k], _measured(source, unit_models[k]) + 30.0 * len(unit_models[k])) for k in keys]
    adapted = adapt_from(source, [], models)
    sums = [float(source.kernel_times_us(m).sum()) for m, _ in models]
    ratio = float(np.median([t / SOURCE_CALIBRATION.apply(s, len(m)) for s, (m, t) in zip(sums, models, strict=True)]))
    shape = Calibration(SOURCE_CALIBRATION.c0 * ratio, SOURCE_CALIBRATION.c1 * ratio, SOURCE_CALIBRATION.c2 * ratio)
    expected = fit_calibration(sums, [len(m) for m, _ in models], [t for _, t in models], prior=shape,
                               prior_weight=SOURCE_PRIOR_WEIGHT)  # fmt: skip
    assert adapted.summary["calibration_refit"] == CalibrationRefit.FULL and adapted.calibration == expected
    assert adapted.calibration.c2 > SOURCE_CALIBRATION.c2 * TRUE_SCALE  # it found the extra per-kernel time
    assert calibration_note(adapted.summary) == f"calibration refitted on {FULL_REFIT_MODELS} models"


def test_an_adapted_calibration_never_gives_zero_and_no_model_keeps_the_source_as_is(
    unit_models: dict[tuple[int, int], list[Kernel]],
) -> None:
    source = _unit_source(unit_models)
    kernels = unit_models[(28, 1)]
    kernel_sum = float(source.kernel_times_us(kernels).sum())
    source.calibration = Calibration(c0=-2 * kernel_sum, c1=1.0, c2=0.0)  # zero or less on the smallest model
    big = unit_models[(112, 4)]
    adapted = adapt_from(source, [], [(big, 2 * source.predict(big).total_ms * 1e3)])
    assert adapted.summary["calibration_scale"] == pytest.approx(2.0, rel=1e-3)
    small = adapted.predict(kernels)
    assert not small.calibrated and small.total_ms == pytest.approx(kernel_sum / 1e3) and small.total_ms > 0
    unchanged = adapt_from(source, [], [])
    assert unchanged.calibration == source.calibration
    assert unchanged.summary["calibration_refit"] == CalibrationRefit.SOURCE


def _law_rows(source: KernelPredictor, kernels: list[Kernel], exponent: float) -> list[TrainingRow]:
    """Rows of a new device where each kernel takes its type's factor times the source's price, times
    (price / 100 µs)^exponent: larger kernels gain more (a negative exponent), as with a second thread."""
    factor = {KernelType.POINTWISE_CONV: 0.6, KernelType.DEPTHWISE_CONV: 0.9}
    priced = source.kernel_times_us(kernels)
    return [TrainingRow(k, float(factor.get(k.type, 1.2) * t * (t / 100.0) ** exponent), "space")
            for k, t in zip(kernels, priced, strict=True)]  # fmt: skip


def test_adapting_finds_how_the_new_device_speeds_up_large_kernels_more_than_small_ones(
    unit_models: dict[tuple[int, int], list[Kernel]],
) -> None:
    source = _unit_source(unit_models)
    kernels = unit_models[(28, 1)] + unit_models[(56, 1)] + unit_models[(112, 1)]
    rows = _law_rows(source, kernels, -0.2)
    scaling = scale_factors(source, rows)
    assert scaling.exponent == pytest.approx(-0.2, abs=1e-6)
    adapted = adapt_from(source, rows, [])
    # every row priced exactly, small and large (a plain factor per type, the earlier adaptation, misses both ends)
    priced = adapted.kernel_times_us([r.kernel for r in rows])
    assert priced == pytest.approx([r.time_us for r in rows], rel=1e-6)
    times = np.array([r.time_us for r in rows])
    assert times.max() / times.min() > 10  # the rows span enough sizes for the exponent to matter
    plain = {name: float(np.median([r.time_us / float(source.kernel_times_us([r.kernel])[0]) for r in rows
                                    if source.model_for(r.kernel) is model]))
             for name, model in priced_by(source).items()}  # fmt: skip
    name_of = {id(m): name for name, m in priced_by(source).items()}
    by_plain = [plain[name_of[id(source.model_for(r.kernel))]] * float(source.kernel_times_us([r.kernel])[0])
                for r in rows]  # fmt: skip
    assert max(abs(b / r.time_us - 1) for b, r in zip(by_plain, rows, strict=True)) > 0.2
    assert "^-0.200" in scaling_note(adapted.summary)


def test_the_size_exponent_is_bounded_and_never_extrapolated_past_the_measured_kernels(
    unit_models: dict[tuple[int, int], list[Kernel]],
) -> None:
    source = _unit_source(unit_models)
    measured = unit_models[(28, 1)] + unit_models[(56, 1)]
    steep = scale_factors(source, _law_rows(source, measured, -2.0))
    assert steep.exponent == -SLOPE_LIMIT  # a law this steep is a fit through noise: held at the limit
    rows = _law_rows(source, measured, -0.2)
    adapted = adapt_from(source, rows, [])
    largest = float(np.max(source.kernel_times_us([r.kernel for r in rows])))
    large = [k for k in unit_models[(112, 1)] if source.kernel_times_us([k])[0] > 1.5 * largest]
    assert len(large) >= 3
    # past the largest measured kernel the rescale is a plain factor: twice the price, twice the prediction
    scaling = scale_factors(source, rows)
    for k in large:
        ratio = adapted.kernel_times_us([k])[0] / source.kernel_times_us([k])[0]
        rescale = scaling.rescale(priced_by_name(source, k))
        at_edge = rescale.factor * (rescale.high_us / rescale.pivot_us) ** rescale.exponent
        assert ratio == pytest.approx(at_edge, rel=1e-9)


def priced_by_name(source: KernelPredictor, kernel: Kernel) -> str:
    return {id(m): name for name, m in priced_by(source).items()}[id(source.model_for(kernel))]


def test_probes_of_the_dominant_types_are_interleaved_up_to_the_cap_per_type() -> None:
    types = [KernelType.POINTWISE_CONV, KernelType.DEPTHWISE_CONV, KernelType.DENSE_CONV]
    configs = probe_configs(types, Runtime.ONNXRUNTIME, 0)
    assert len(configs) == PROBES_PER_TYPE * len(types)  # the sampling order has that many of each
    # in rounds of one per type, so a budget cut anywhere leaves the types within one probe of each other
    assert [c.type for c in configs[: 2 * len(types)]] == types * 2
    assert probe_configs(types, Runtime.ONNXRUNTIME, 0, 2) == [c for i, c in enumerate(configs) if i < 2 * len(types)]


def test_an_adapted_predictor_round_trips_its_rescales_and_format_4_files_still_load(
    unit_models: dict[tuple[int, int], list[Kernel]],
) -> None:
    source = _unit_source(unit_models)
    kernels = unit_models[(28, 1)] + unit_models[(56, 1)]
    adapted = adapt_from(source, _law_rows(source, kernels, -0.2), [])
    again = KernelPredictor.from_json(json.loads(json.dumps(adapted.to_json())))
    every = unit_models[(112, 4)]
    assert again.kernel_times_us(every) == pytest.approx(adapted.kernel_times_us(every), rel=1e-12)
    assert not np.allclose(adapted.kernel_times_us(every), source.kernel_times_us(every))
    # a predictor stored before rescales existed (format 4, no "rescales") means the same as one without them
    older = source.to_json()
    older["format_version"] = 4
    for model in [*older["models"], *older["groups"].values(), *older["variants"].values(), older["fallback"]]:
        del model["rescales"]
    assert KernelPredictor.from_json(older).predict(every).total_ms == pytest.approx(source.predict(every).total_ms)


def test_a_full_refit_on_few_noisy_models_stays_near_the_source_calibration(
    unit_models: dict[tuple[int, int], list[Kernel]],
) -> None:
    source = _unit_source(unit_models)
    keys = sorted(unit_models)[:FULL_REFIT_MODELS]
    # the new device: 1.3x the source's prices, but the two smallest models measured 40% slow (a noisy spell)
    slow = sorted(keys, key=lambda k: _measured(source, unit_models[k]))[:2]
    models = [(unit_models[k], _measured(source, unit_models[k], 0.4 if k in slow else 0.0)) for k in keys]
    adapted = adapt_from(source, [], models)
    sums = [float(source.kernel_times_us(m).sum()) for m, _ in models]
    towards_identity = fit_calibration(sums, [len(m) for m, _ in models], [t for _, t in models])
    # pulled towards the identity the fit reads the slow small models as a fixed cost (not what the source has)
    assert towards_identity.c0 > 2 * SOURCE_CALIBRATION.c0
    assert abs(adapted.calibration.c0 - SOURCE_CALIBRATION.c0) < abs(towards_identity.c0 - SOURCE_CALIBRATION.c0)
    # and a held-out model's prediction stays nearer the truth (1.3x the source's price)
    held_out = unit_models[(112, 4)] if (112, 4) not in keys else unit_models[(112, 2)]
    truth = _measured(source, held_out)
    by_identity = towards_identity.apply(float(source.kernel_times_us(held_out).sum()), len(held_out))
    assert abs(adapted.predict(held_out).total_ms * 1e3 / truth - 1) < abs(by_identity / truth - 1)
