"""`flopgap results list|show|export` on a real results database, through typer's CliRunner."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.cli.results import results_app
from harness.store import Store
from tests.zoo_labels import zoo_names

SHA_A = hashlib.sha256(b"a").hexdigest()
SHA_B = hashlib.sha256(b"b").hexdigest()
WIDE = {"COLUMNS": "200"}  # rich tables would wrap cells at the runner's default 80 columns


def artifact(tmp_path: Path, sha: str, model: str, params: tuple[tuple[str, object], ...], fmt: Format) -> Artifact:
    return Artifact(
        path=tmp_path / f"{sha[:8]}{fmt.extension}",
        format=fmt,
        precision=Precision.FP32 if fmt is Format.ONNX else Precision.INT8,
        sha256=sha,
        model=model,
        params=params,
        input_shape=(1, 3, 224, 224) if fmt is Format.ONNX else (1, 224, 224, 3),
        layout="NCHW" if fmt is Format.ONNX else "NHWC",
        tool_versions={"torch": "2.13.0"},
        parity_error=1e-6,
        parity_bound=1e-4,
        size_bytes=1_000_000,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two runs; the second has a done point (noisy, with a CI) and a failed one."""
    path = tmp_path / "r.db"
    with Store(path) as store:
        store.upsert_device("pi4", "ssh", {"cores": 4})
        shuffle = artifact(tmp_path, SHA_A, "shufflenet_v2", (("width", 1.5),), Format.ONNX)
        mobile = artifact(tmp_path, SHA_B, "mobilenet_v2", (("width", 1.0),), Format.TFLITE)
        store.upsert_artifact(shuffle, 299, 3, **zoo_names(shuffle))
        store.upsert_artifact(mobile, 300, 3, **zoo_names(mobile))
        first = store.start_run("warmup", "")
        store.finish_run(first, "interrupted")
        run = store.start_run("quick", "")
        done = store.ensure_point(run, SHA_A, "pi4", "onnxruntime", 4)
        store.add_trial(done, 0, {}, [12_000_000, 12_345_678, 13_000_000])
        store.complete_point(
            done, {"n": 3, "median_ms": 12.345678, "ci_low_ms": 12.1, "ci_high_ms": 12.75, "noisy": True}
        )
        failed = store.ensure_point(run, SHA_B, "pi4", "tflite", 1)
        store.fail_point(failed, "benchmark_model exited 134")
        store.ensure_point(run, SHA_B, "pi4", "tflite", 4)
    return path


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(results_app, list(args), env={**WIDE, **(env or {})})


def test_list_shows_runs_with_point_counts(db: Path) -> None:
    result = invoke("list", "--db", str(db))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if re.search(r"\b(warmup|quick)\b", line)]
    assert len(lines) == 2
    assert re.search(r"\b1\b.*interrupted\s.*\b0\s.*\b0\s.*\b0\s.*warmup", lines[0])
    assert re.search(r"\b2\b.*running\s.*\b1\s.*\b1\s.*\b1\s.*quick", lines[1])


def test_show_defaults_to_latest_run(db: Path) -> None:
    result = invoke("show", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "run 2: 3 points" in result.output
    done = next(line for line in result.output.splitlines() if "shufflenet_v2" in line)
    cells = r"shufflenet_v2\[width=1\.5\] +pi4 +onnxruntime +onnx fp32 +4 +12\.346 +12\.100–12\.750 +yes +done"
    assert re.search(cells, done), done
    failed = next(line for line in result.output.splitlines() if "failed" in line)
    assert re.search(r"mobilenet_v2\[width=1\.0\] +pi4 +tflite +tflite int8 +1 +– +– +failed \(1\)", failed)
    assert "\n(1) benchmark_model exited 134\n" in result.output


def test_show_an_older_or_unknown_run(db: Path) -> None:
    assert "run 1: 0 points" in invoke("show", "1", "--db", str(db)).output
    result = invoke("show", "99", "--db", str(db))
    assert result.exit_code == 2
    assert result.output == f"error: no run 99 in {db}; see 'flopgap results list'\n"


def test_missing_database_is_one_line_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "flopgap.db"
    for command in ("list", "show", "export"):
        extra = ["--out", str(tmp_path / "x.csv")] if command == "export" else []
        result = invoke(command, "--db", str(missing), *extra)
        assert result.exit_code == 2
        assert result.output == f"error: no results database at {missing}; run 'flopgap sweep' first or pass --db\n"
    assert not missing.parent.exists()


def test_db_from_environment(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path / "..")
    result = invoke("list", env={"FLOPGAP_DB": str(db)})
    assert result.exit_code == 0 and "quick" in result.output


def test_export_csv_and_parquet(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "exports" / "points.csv"
    result = invoke("export", "--db", str(db), "--out", str(out), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 3 points rows to {out}\n"
    frame = pd.read_csv(out)
    assert frame.loc[frame["status"] == "done", "median_ms"].tolist() == [12.345678]
    assert sorted(frame["runtime"]) == ["onnxruntime", "tflite", "tflite"]

    out = tmp_path / "samples.parquet"
    result = invoke("export", "--db", str(db), "--out", str(out), "--format", "parquet", "--table", "samples")
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(out)["latency_ns"].tolist() == [12_000_000, 12_345_678, 13_000_000]

    out = tmp_path / "run1.csv"
    result = invoke("export", "--db", str(db), "--out", str(out), "--run", "1")
    assert result.output == f"wrote 0 points rows to {out}\n"
    assert pd.read_csv(out).empty and "median_ms" in pd.read_csv(out).columns


def test_export_unknown_table_is_one_line(db: Path, tmp_path: Path) -> None:
    result = invoke("export", "--db", str(db), "--out", str(tmp_path / "x.csv"), "--table", "nope")
    assert result.exit_code == 2
    assert result.output.startswith("error: unknown table 'nope'; tables: points, samples, trials")
    assert result.output.count("\n") == 1


def test_show_a_point_whose_export_failed(db: Path) -> None:
    with Store(db) as store:
        run = store.start_run("broken", "")
        point = store.ensure_point(run, "unexported:mobilenet_v3:tflite:int8", "pi4", "tflite", 4)
        store.fail_point(point, "export failed")
    result = invoke("show", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert re.search(r"unexported:mobilenet_v3:tflite:int8 +pi4 +tflite +– +4 +– +– +failed \(1\)", result.output)
    assert "(1) export failed\n" in result.output


def test_list_shows_each_runs_versions_and_what_the_database_holds(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    with Store(path) as store:
        store.upsert_device("pi4", "ssh", {"cores": 4})
        for version in ("1.20.1", "1.21.0"):  # the same spec before and after an upgrade of onnxruntime
            run = store.start_run(f"ort {version}", "")
            store.ensure_point(run, SHA_A, "pi4", "onnxruntime", 4, None, version, runner_version="1")
            store.ensure_point(run, SHA_B, "pi4", "litert", 4, None, "2.3.0", runner_version="1")
            store.finish_run(run, "completed")
    result = invoke("list", "--db", str(path))
    assert result.exit_code == 0, result.output
    first = next(line for line in result.output.splitlines() if "ort 1.20.1" in line)
    second = next(line for line in result.output.splitlines() if "ort 1.21.0" in line)
    assert "litert 2.3.0 (runner 1), onnxruntime 1.20.1 (runner 1)" in first
    assert "litert 2.3.0 (runner 1), onnxruntime 1.21.0 (runner 1)" in second
    assert (
        "versions in this database: litert 2.3.0 (runner 1); onnxruntime 1.20.1 (runner 1); "
        "onnxruntime 1.21.0 (runner 1)" in result.output
    )
