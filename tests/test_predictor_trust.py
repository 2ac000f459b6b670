"""Every fallback a prediction takes is said: kernels priced by their group's or the fallback model, ops without a
kernel type, shapes outside the training ranges, a calibration that would go to zero; and the interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from devices.vocabulary import Format, Precision, Runtime
from exporters.export import export
from harness.cli.main import app
from harness.predict.extract import extract_kernels
from harness.predict.kernels import Kernel, KernelType
from harness.predict.predictor import Calibration, TrainingRow, fit_predictor
from harness.predict.trust import caveats, interval_ms
from harness.store import Store
from harness.zoo.registry import resolve
from tests.test_predictor_cli import _store_predictor


def _kernels(**params: int) -> list[Kernel]:
    art = export(resolve("shufflenet_v2_unit", **params), Format.ONNX, Precision.FP32)
    return extract_kernels(art.path, Runtime.ONNXRUNTIME)


def _time(k: Kernel) -> float:
    return 1 + k.flops / 1e4 + k.bytes_moved / 1e3


@pytest.fixture(scope="module")
def unit28() -> list[Kernel]:
    return _kernels(h=28, w=28)


def test_a_calibration_that_would_give_zero_is_not_applied(unit28: list[Kernel]) -> None:
    rows = [TrainingRow(k, _time(k), "space") for k in unit28 * 8]
    predictor = fit_predictor({"device": "local"}, rows, [])
    predictor.calibration = Calibration(c0=-1e9, c1=1.0, c2=0.0)  # a fit far outside its models
    prediction = predictor.predict(unit28)
    assert prediction.total_ms == pytest.approx(prediction.kernel_sum_ms) and prediction.total_ms > 0
    assert not prediction.calibrated
    assert Calibration(c0=-5.0, c1=1.0).apply(10.0, 3) == pytest.approx(5.0)  # a positive total is kept as is


def test_each_kernel_says_which_model_priced_it(unit28: list[Kernel]) -> None:
    convs = [k for k in unit28 if k.type is KernelType.POINTWISE_CONV]
    depthwise = [k for k in unit28 if k.type is KernelType.DEPTHWISE_CONV]
    memory = [k for k in unit28 if k.type not in (KernelType.POINTWISE_CONV, KernelType.DEPTHWISE_CONV)]
    assert convs and depthwise and memory
    # pointwise: its own model (8+ rows); depthwise: 3 rows, priced by the compute group; memory kernels: no group
    # (no row of theirs), priced by the fallback over every row
    rows = [TrainingRow(k, _time(k), "space") for k in convs * 8 + depthwise * 3]
    predictor = fit_predictor({"device": "local"}, rows, [])
    prediction = predictor.predict(unit28)
    for i, k in enumerate(unit28):
        expected = "type" if k in convs else "group compute" if k in depthwise else "fallback"
        assert prediction.sources[i] == expected, k
    found = {c.kernel: c.reason for c in caveats(unit28, prediction.sources, predictor.summary["ranges"])}
    assert set(found) == {k.name for k in depthwise + memory}
    assert all("priced by its group's (compute) model" in found[k.name] for k in depthwise)
    assert all("priced by the fallback model" in found[k.name] for k in memory)


def test_shapes_outside_the_training_ranges_are_named(unit28: list[Kernel]) -> None:
    rows = [TrainingRow(k, _time(k), "space") for k in unit28 * 8]
    predictor = fit_predictor({"device": "local"}, rows, [])
    assert predictor.summary["ranges"]["depthwise_conv"]["h_in"] == [28, 28]
    inside = predictor.predict(unit28)
    assert caveats(unit28, inside.sources, predictor.summary["ranges"]) == []
    unit56 = _kernels(h=56, w=56)
    wider = predictor.predict(unit56)
    found = caveats(unit56, wider.sources, predictor.summary["ranges"])
    spatial = [k for k in unit56 if k.h_in != 1]
    assert {k.name for k in spatial} <= {c.kernel for c in found}  # and the shuffle's rank-5 views, whose sizes grow
    assert all(c.reason.startswith("shape outside the probed range: ") for c in found)
    dw = next(c for c in found if c.kernel_type == "depthwise_conv")
    assert "h_in 56 outside 28–28" in dw.reason and "w_in 56 outside 28–28" in dw.reason


def test_an_op_without_a_kernel_type_is_named() -> None:
    odd = Kernel(name="/head/Einsum", type=KernelType.OTHER, op_type="Einsum")
    (caveat,) = caveats([odd], {0: "type"}, {})
    assert caveat.kernel == "/head/Einsum" and "op Einsum has no kernel type of its own" in caveat.reason


def test_the_interval_comes_from_the_training_models_errors(unit28: list[Kernel]) -> None:
    rows = [TrainingRow(k, _time(k), "space") for k in unit28 * 8]
    sums = float(sum(_time(k) for k in unit28))
    factors = [0.8, 0.9, 1.0, 1.05, 1.1, 1.3]  # measured models scattered around their kernel sums
    models = [(unit28, sums * f) for f in factors]
    predictor = fit_predictor({"device": "local"}, rows, models)
    errors = predictor.summary["calibration_errors"]
    assert len(errors) == len(factors)
    prediction = predictor.predict(unit28)
    lo, hi = interval_ms(prediction.total_ms, predictor.summary)  # type: ignore[misc]
    q5, q95 = np.quantile(errors, [0.05, 0.95])
    assert (lo, hi) == pytest.approx((prediction.total_ms / (1 + q95), prediction.total_ms / (1 + q5)))
    assert lo < hi
    assert interval_ms(1.0, {"calibration_errors": errors[:3]}) is None  # three models say nothing


def test_predict_prints_the_interval_and_names_the_untrusted_kernels(tmp_path: Path, unit28: list[Kernel]) -> None:
    db = tmp_path / "r.db"
    _store_predictor(db)  # fitted with 3 rows per kernel: every type is priced by its group's model
    args = ["predict", "shufflenet_v2_unit", "--runtime", "onnxruntime", "--db", str(db)]
    out = CliRunner().invoke(app, args, env={"COLUMNS": "200"}).output
    assert f"do not trust this prediction blindly: {len(unit28)} kernel(s)" in out
    assert "no probe of type pointwise_conv (Conv): priced by its group's (compute) model" in out
    assert "predates stored training ranges" not in out
    doc = json.loads(CliRunner().invoke(app, [*args, "--format", "json"]).stdout)
    assert len(doc["caveats"]) == len(unit28) and doc["calibrated"] is True
    assert {k["priced_by"] for k in doc["kernels"]} == {"group compute", "group memory"}
    with Store(db) as store:  # a predictor stored before ranges were: said once, never a crash
        row = store.latest_predictor("local", "onnxruntime", 1, "fp32")
        assert row is not None
        model = {**row.model, "summary": {k: v for k, v in row.model["summary"].items() if k != "ranges"}}
        store.add_predictor("local", "onnxruntime", 1, "fp32", "lightgbm", row.versions, model, row.summary)
    out = CliRunner().invoke(app, args, env={"COLUMNS": "200"}).output
    assert "predates stored training ranges: shapes are not checked" in out
