"""What the CLI writes into a pipe: tables at natural width, one line per point, and --format csv|json for scripts.

The sweep tests run the real `flopgap` process with stdout redirected to a file, as a log or a script would read it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.markup import escape
from rich.table import Table
from typer.testing import CliRunner

from harness.cli.main import app
from harness.cli.output import OutputFormat, make_console, write_records
from harness.store import Store
from tests.test_predictor_cli import _store_predictor

LABELS = ("mobilenet_v3_small[alpha=0.75]", "shufflenet_v2_unit")
SPEC = """
name = "piped"
runtimes = ["onnxruntime"]
threads = [1]

[[models]]
name = "mobilenet_v3_small"
params = { alpha = 0.75 }

[[models]]
name = "shufflenet_v2_unit"

[protocol]
trials = 2
runs = 5
min_seconds = 0.05
warmup_runs = 2
warmup_seconds = 0.02
"""


def _flopgap(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run `flopgap ARGS` as its own process, stdout and stderr to files (not a terminal)."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = {**os.environ, "COLUMNS": "80"}  # what a CI log or a pipe reports; tables must not squeeze to it
    with out.open("w") as o, err.open("w") as e:
        rc = subprocess.run([sys.executable, "-m", "harness.cli", *args], stdout=o, stderr=e, env=env).returncode
    return rc, out.read_text(), err.read_text()


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    """A two-point sweep measured once, its piped stdout and stderr."""
    tmp = tmp_path_factory.mktemp("piped")
    spec, db = tmp / "spec.toml", tmp / "r.db"
    spec.write_text(SPEC)
    rc, out, err = _flopgap(tmp, "sweep", str(spec), "--db", str(db))
    assert rc == 0, out + err
    return spec, db, out, err


def test_a_piped_sweep_summary_reads_one_line_per_point(swept: tuple[Path, Path, str, str]) -> None:
    _, db, out, err = swept
    for label in LABELS:
        lines = [line for line in out.splitlines() if label in line]
        assert len(lines) == 1, out  # the whole label on one line, never folded into narrow cells
    with Store(db, readonly=True) as store:
        medians = store.points_frame()["median_ms"].tolist()
    for median in medians:
        assert f"{median:.3f}" in out
    title = next(line for line in out.splitlines() if "sweep 'piped'" in line)
    assert "device local)" in title  # the caption is not wrapped onto a second line
    progress = ("eta 0:", "@local trial ")
    assert not any(p in out for p in progress)  # progress went to stderr ...
    assert all(p in err for p in progress)  # ... where it is still shown
    assert "trials measured" in out


def test_sweep_and_run_csv_and_json_hold_the_stored_points(swept: tuple[Path, Path, str, str], tmp_path: Path) -> None:
    spec, db, _, _ = swept
    with Store(db, readonly=True) as store:
        stored = {r.model_label: r for r in store.points_frame().itertuples()}
    rc, out, err = _flopgap(tmp_path, "sweep", str(spec), "--db", str(db), "--format", "csv")  # resumes: all skipped
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["model"] for r in rows] == sorted(LABELS, key=lambda label: stored[label].macs)
    for row in rows:
        point = stored[row["model"]]
        assert float(row["median_ms"]) == pytest.approx(point.median_ms)
        assert float(row["ci_low_ms"]) <= float(row["median_ms"]) <= float(row["ci_high_ms"])
        assert (row["status"], row["runtime"], row["threads"]) == ("done", "onnxruntime", "1")
    assert "2 points already done (skipped)" in err

    rc, out, err = _flopgap(tmp_path, "sweep", str(spec), "--db", str(db), "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)  # stdout is one JSON document, nothing else
    assert doc["spec"] == "piped" and doc["skipped_points"] == 2 and doc["failed_points"] == 0
    assert {p["model"]: p["median_ms"] for p in doc["points"]} == pytest.approx(
        {label: stored[label].median_ms for label in LABELS}
    )
    assert all(isinstance(p["threads"], int) and isinstance(p["noisy"], bool) for p in doc["points"])

    run_args = ("run", "shufflenet_v2_unit", "--runtime", "onnxruntime", "--runs", "5", "--min-seconds", "0.05")
    rc, out, err = _flopgap(tmp_path, *run_args, "--trials", "2", "--db", str(tmp_path / "run.db"), "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert [p["model"] for p in doc["points"]] == ["shufflenet_v2_unit"]
    assert doc["points"][0]["median_ms"] > 0 and doc["measured_trials"] == 2


def test_results_show_as_csv_and_json(swept: tuple[Path, Path, str, str]) -> None:
    _, db, _, _ = swept
    with Store(db, readonly=True) as store:
        run_id = store.latest_run_id()
        stored = {r.model_label: r.median_ms for r in store.points_frame(run_id).itertuples()}
    runner = CliRunner()
    result = runner.invoke(app, ["results", "show", str(run_id), "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["run"] == run_id
    assert {p["model"]: p["median_ms"] for p in doc["points"]} == pytest.approx(stored)
    result = runner.invoke(app, ["results", "show", "--db", str(db), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["model"]: float(r["median_ms"]) for r in rows} == pytest.approx(stored)


def test_predict_as_json_lists_every_kernel_and_csv_one_per_line(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _store_predictor(db)
    args = ["predict", "shufflenet_v2_unit", "--runtime", "onnxruntime", "--db", str(db), "--top", "2"]
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    kernels = doc["kernels"]
    assert len(kernels) > 2  # --top limits the table, never the data
    assert sum(k["predicted_ms"] for k in kernels) == pytest.approx(doc["kernel_sum_ms"], rel=1e-6)
    assert sum(k["share"] for k in kernels) == pytest.approx(1.0)
    # measured: the point's p10, what a predictor is fitted to, with its median beside
    assert doc["measured_ms"] == pytest.approx(0.18) and doc["measured_median_ms"] == pytest.approx(0.2)
    assert doc["error"] == pytest.approx(doc["predicted_ms"] / 0.18 - 1)
    assert any(k["module"] == "branch2.pw1.conv" and k["type"] == "pointwise_conv" for k in kernels)
    result = CliRunner().invoke(app, [*args, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["kernel"] for r in rows] == [k["kernel"] for k in kernels]


def test_a_table_off_a_terminal_keeps_its_natural_width(capsys: pytest.CaptureFixture[str]) -> None:
    console = make_console()
    assert not console.is_terminal
    table = Table(title="t")
    table.add_column("model", overflow="fold", ratio=3)
    table.add_column("reason", overflow="fold", ratio=1)
    label, reason = "mobilenet_v3_small[alpha=0.75,resolution=224]", "x" * 150
    table.add_row(escape(label), reason)
    console.print(table)
    row = next(line for line in capsys.readouterr().out.splitlines() if label in line)
    assert reason in row


def test_records_as_csv_and_json_unwrap_numpy_and_missing_values(capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    records = [{"a": np.int64(3), "b": np.float64(float("nan")), "c": "x,y"}]
    write_records(records, ("a", "b", "c"), OutputFormat.CSV)
    assert capsys.readouterr().out == 'a,b,c\n3,,"x,y"\n'
    write_records(records, ("a", "b", "c"), OutputFormat.JSON, {"n": np.int64(1)}, key="rows")
    assert json.loads(capsys.readouterr().out) == {"n": 1, "rows": [{"a": 3, "b": None, "c": "x,y"}]}
