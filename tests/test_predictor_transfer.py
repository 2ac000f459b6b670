"""Predictors that travel (`predictor export/import/list`) and search by latency (`predict --grid`), on real
results databases and real exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.predict.search import configurations, parse_grid
from harness.store import Store
from harness.zoo.counting import count
from harness.zoo.registry import resolve
from tests.test_predictor_cli import _store_predictor

runner = CliRunner()
PREDICT = ["predict", "shufflenet_v2_unit", "--runtime", "onnxruntime", "--format", "json"]
BUILT_ON = {"cpu_model": "Cortex-A76", "cpu_count": 4, "machine_id_digest": "aa11"}


def _invoke(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--format" in args else {"output": result.output}


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A database with one predictor for local/onnxruntime, built on a machine whose facts it recorded."""
    db = tmp_path / "built.db"
    _store_predictor(db)
    with Store(db) as store:
        store.record_device("local", "local", BUILT_ON)
    return db


def test_an_exported_predictor_imported_elsewhere_predicts_the_same(built: Path, tmp_path: Path) -> None:
    file, other = tmp_path / "local-ort.json", tmp_path / "other.db"
    out = _invoke("predictor", "export", "1", str(file), "--db", str(built))["output"]
    assert f"written to {file}" in out and "Cortex-A76" in out
    doc = json.loads(file.read_text())
    assert (doc["device"], doc["runtime"], doc["threads"], doc["precision"]) == ("local", "onnxruntime", 1, "fp32")
    assert doc["device_identity"]["facts"]["machine_id_digest"] == "aa11" and doc["device_identity"]["fingerprint"]
    assert "lightgbm" in doc["versions"]

    out = _invoke("predictor", "import", str(file), "--db", str(other))["output"]
    assert "imported as predictor 1 for local onnxruntime t1 fp32 (built on Cortex-A76, 4 cores)" in out
    listed = _invoke("predictor", "list", "--db", str(other), "--format", "json")
    assert [(p["id"], p["device"], p["imported_from"]) for p in listed] == [(1, "local", str(file))]

    here = _invoke(*PREDICT, "--db", str(built))
    there = _invoke(*PREDICT, "--db", str(other))
    assert there["predicted_ms"] == pytest.approx(here["predicted_ms"], rel=1e-12)
    assert [k["predicted_ms"] for k in there["kernels"]] == pytest.approx([k["predicted_ms"] for k in here["kernels"]])


def test_import_refuses_another_machine_under_the_same_name_unless_renamed(built: Path, tmp_path: Path) -> None:
    file, mine = tmp_path / "p.json", tmp_path / "mine.db"
    _invoke("predictor", "export", "1", str(file), "--db", str(built))
    with Store(mine) as store:
        store.record_device("local", "local", {**BUILT_ON, "machine_id_digest": "bb22"})
    result = runner.invoke(app, ["predictor", "import", str(file), "--db", str(mine)])
    assert result.exit_code == 2
    assert "device 'local'" in result.output and "another machine" in result.output and "--as" in result.output
    assert len(result.output.strip().splitlines()) == 1
    out = _invoke("predictor", "import", str(file), "--as", "rpi5", "--db", str(mine))["output"]
    assert "for rpi5 onnxruntime" in out
    with Store(mine, readonly=True) as store:
        assert store.latest_predictor("rpi5", "onnxruntime", 1, "fp32") is not None
        assert store.latest_predictor("local", "onnxruntime", 1, "fp32") is None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda doc: "not json {", "is not a flopgap predictor file"),
        (lambda doc: json.dumps({**doc, "kind": "something-else"}), "is not a flopgap predictor file"),
        (lambda doc: json.dumps({**doc, "file_version": 99}), "of version 99"),
        (lambda doc: json.dumps({k: v for k, v in doc.items() if k != "runtime"}), "lacks runtime"),
        (lambda doc: json.dumps({**doc, "predictor": {**doc["predictor"], "format_version": 1}}), "rebuild it"),
        (
            lambda doc: json.dumps(
                {
                    **doc,
                    "predictor": {
                        **doc["predictor"],
                        "fallback": {**doc["predictor"]["fallback"], "lightgbm_model": "tree\nnonsense"},
                    },
                }
            ),
            "does not load",
        ),
    ],
)
def test_a_damaged_predictor_file_is_one_line_and_stores_nothing(built: Path, tmp_path: Path, damage, message) -> None:  # type: ignore[no-untyped-def]
    good, bad, other = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "other.db"
    _invoke("predictor", "export", "1", str(good), "--db", str(built))
    doc = json.loads(good.read_text())
    assert doc["predictor"]["fallback"]["lightgbm_model"]  # the damage below has a tree to break
    bad.write_text(damage(doc))
    result = runner.invoke(app, ["predictor", "import", str(bad), "--db", str(other)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    with Store(other, readonly=True) as store:
        assert store.predictors_frame().empty


def test_export_of_an_unknown_id_names_the_command_that_lists_them(built: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["predictor", "export", "7", str(tmp_path / "x.json"), "--db", str(built)])
    assert result.exit_code == 2 and "no predictor 7" in result.output and "flopgap predictor list" in result.output


def test_grid_parsing_and_product() -> None:
    grid = parse_grid(["h=14,28", "stride=1, 2,2"])
    assert grid == {"h": ["14", "28"], "stride": ["1", "2"]}
    assert configurations(grid) == [{"h": "14", "stride": "1"}, {"h": "14", "stride": "2"},
                                    {"h": "28", "stride": "1"}, {"h": "28", "stride": "2"}]  # fmt: skip
    for bad in (["h"], ["=1,2"], ["h="], ["h=1", "h=2"]):
        with pytest.raises(Exception, match="--grid"):
            parse_grid(bad)


def test_grid_ranks_every_configuration_by_its_own_prediction(built: Path) -> None:
    args = [*PREDICT[:-2], "--db", str(built), "--grid", "h=14,28", "--grid", "stride=1,2", "--param", "cin=116"]
    doc = _invoke(*args, "--budget-ms", "0", "--format", "json")
    configs = doc["configurations"]
    assert len(configs) == 4 and [c["rank"] for c in configs] == [1, 2, 3, 4]
    predicted = [c["predicted_ms"] for c in configs]
    assert predicted == sorted(predicted)
    for c in configs:  # each row is what `flopgap predict` says of that configuration alone, MACs counted on it
        alone = _invoke(*PREDICT, "--db", str(built), "-p", f"h={c['h']}", "-p", f"stride={c['stride']}")
        assert c["predicted_ms"] == pytest.approx(alone["predicted_ms"], rel=1e-12)
        spec = resolve("shufflenet_v2_unit", h=int(c["h"]), stride=int(c["stride"]))
        assert c["macs"] == count(spec.build(), spec.example_input()).macs
        assert c["kernels"] == len(alone["kernels"])
        assert c["within_budget"] is False
    budget = (predicted[1] + predicted[2]) / 2
    doc = _invoke(*args, "--budget-ms", str(budget), "--format", "json")
    assert [c["within_budget"] for c in doc["configurations"]] == [True, True, False, False]
    table = runner.invoke(app, [*args, "--budget-ms", str(budget)], env={"COLUMNS": "200"}).output
    assert table.count("within") >= 2 and "4 configurations predicted" in table and "2 within" in table


def test_grid_refuses_a_key_given_twice_and_a_model_file(built: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, [*PREDICT[:-2], "--db", str(built), "--grid", "h=14,28", "-p", "h=7"])
    assert result.exit_code == 2 and "'h' is both a --param and a --grid key" in result.output
    result = runner.invoke(app, [*PREDICT[:-2], "--db", str(built), "--budget-ms", "1"])
    assert result.exit_code == 2 and "--budget-ms ranks a --grid" in result.output
