"""`flopgap predict` and `flopgap predictor build|eval` on a real results database: output and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.core.errors import FlopgapError
from devices.vocabulary import Format, Precision, Runtime
from exporters.export import export
from harness.cli.main import app
from harness.cli.predict import parse_budget
from harness.predict.extract import extract_kernels
from harness.store import Store
from harness.zoo.registry import resolve
from tests.stored_predictor import store_linear_predictor, store_measured
from tests.zoo_labels import zoo_names

runner = CliRunner()
UNIT = resolve("shufflenet_v2_unit")


def test_budget_durations() -> None:
    assert parse_budget("15m") == 900
    assert parse_budget("1h30m") == 5400
    assert parse_budget("90s") == parse_budget("90") == 90
    with pytest.raises(FlopgapError, match=r"--budget 'soon' is not a duration; write e\.g\. 15m"):
        parse_budget("soon")


def _store_predictor(db: Path) -> str:
    """A predictor for local/onnxruntime fitted on the unit's own kernels (times: 1 µs per 10 kFLOP + 1 µs per
    kB), and a measured point of the unit at 0.2 ms (median; p10 0.18 ms); returns the artifact's sha256."""
    art = export(UNIT, Format.ONNX, Precision.FP32)
    with Store(db) as store:
        store_linear_predictor(store, extract_kernels(art.path, Runtime.ONNXRUNTIME))
        store_measured(store, "measured", [(art, 0.2, {"macs": None, "params_count": None, **zoo_names(art)})],
                       fast_runs=3)  # fmt: skip
    return art.sha256


def test_predict_prints_the_kernel_table_and_the_measured_error(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _store_predictor(db)
    args = ["predict", "shufflenet_v2_unit", "--runtime", "onnxruntime", "--db", str(db)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "branch2.pw1.conv" in out and "pointwise_conv" in out and "depthwise_conv" in out
    # the error is against the p10, the latency a predictor is fitted to
    hit = re.search(r"predicted ([0-9.]+) ms .*; measured p10 0\.180 ms \(median 0\.200\), error ([-+0-9.]+)%", out)
    assert hit is not None, out
    assert float(hit[2]) / 100 == pytest.approx(float(hit[1]) / 0.18 - 1, abs=2e-3)


def test_predict_takes_a_model_file_as_run_does_and_writes_nothing_beside_it(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _store_predictor(db)
    mine = tmp_path / "mine"
    mine.mkdir()
    model = mine / "unit.onnx"
    model.write_bytes(export(UNIT, Format.ONNX, Precision.FP32).path.read_bytes())
    result = runner.invoke(app, ["predict", str(model), "--db", str(db)], env={"COLUMNS": "200"})  # runtime: the file's
    assert result.exit_code == 0, result.output
    assert "on local (onnxruntime, 1 thread(s), fp32)" in result.output and "depthwise_conv" in result.output
    assert "measured p10 0.180 ms" in result.output  # the same bytes: the same artifact as the measured point
    assert sorted(p.name for p in mine.iterdir()) == ["unit.onnx"]  # no kernel list cached beside a user's file
    as_tflite = runner.invoke(app, ["predict", str(model), "--runtime", "litert", "--db", str(db)])
    assert as_tflite.exit_code == 2 and "Traceback" not in as_tflite.output


def test_predict_without_a_predictor_says_how_to_build_one(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    Store(db).close()
    result = runner.invoke(app, ["predict", "shufflenet_v2_unit", "--device", "local", "--runtime", "litert",
                                 "--db", str(db)])  # fmt: skip
    assert result.exit_code == 2
    assert "no predictor for local litert t1 fp32" in result.output
    assert "flopgap predictor build --device local --runtime litert" in result.output
    assert "Traceback" not in result.output


def test_eval_without_models_and_build_at_an_unsupported_precision_fail_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    Store(db).close()
    evaluated = runner.invoke(app, ["predictor", "eval", "--runtime", "litert", "--db", str(db)])
    assert evaluated.exit_code == 2 and "0 zoo models in 0 families measured" in evaluated.output
    built = runner.invoke(app, ["predictor", "build", "--precision", "int8", "--db", str(db), "--budget", "1m"])
    assert built.exit_code == 2 and "precision int8 is not supported yet" in built.output
    assert "Traceback" not in evaluated.output + built.output
