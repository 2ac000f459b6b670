"""flopgap's runner on an ExecuTorch program: a real XNNPACK-delegated .pte in ExecuTorch's Python runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from devices.vocabulary import Format, Precision, Runtime
from exporters.export import export
from harness.cli.main import app
from harness.store import Store
from harness.zoo.registry import resolve
from tests.exporter_blocks import register
from tests.test_runner import RUNNER, assert_failed, run_runner

register()


@pytest.fixture(scope="module")
def pte(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("pte-runner")
    return export(resolve("conv3x3", cin=16, cout=16, h=16, w=16), Format.PTE, Precision.FP32, cache_dir=cache).path


def test_runner_times_a_pte_with_the_protocol(pte: Path) -> None:
    argv = ["--threads", "2", "--warmup-runs", "3", "--warmup-seconds", "0", "--runs", "25", "--min-seconds", "0"]
    code, doc, _ = run_runner(str(pte), *argv)
    assert code == 0, doc["error"]
    assert (doc["format"], doc["runtime"], doc["threads"]) == ("pte", "executorch", 2)
    assert doc["runtime_version"] == "1.5.1" and doc["xnnpack"] is True
    assert doc["inputs"] == [{"name": "input_0", "shape": [1, 16, 16, 16], "dtype": "float32"}]
    assert doc["warmup_runs"] >= 3 and len(doc["samples_ns"]) == 25
    assert all(s > 0 for s in doc["samples_ns"]) and doc["init_ns"] > 0 and doc["first_inference_ns"] > 0


def test_runner_without_executorch_fails_the_point_in_one_line(pte: Path) -> None:
    """A device without the wheel: ``import executorch`` raises, as sys.modules[name] = None makes it."""
    script = (
        "import runpy, sys\n"
        "sys.modules['executorch'] = None\n"
        f"sys.argv = ['runner.py', {str(pte)!r}]\n"
        f"runpy.run_path({str(RUNNER)!r}, run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    doc = json.loads(proc.stdout)
    assert_failed(proc.returncode, doc, "RuntimeMissing")
    assert "install executorch" in doc["error"]["message"]


def test_corrupt_pte_fails_to_load(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pte"
    corrupt.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    code, doc, _ = run_runner(str(corrupt))
    assert_failed(code, doc, "ModelLoadFailed")
    assert doc["runtime"] == "executorch"


def test_facts_report_executorch_without_importing_it() -> None:
    code, doc, _ = run_runner("--facts")
    assert code == 0
    assert doc["runtimes"]["executorch"] == "1.5.1"


def test_runtime_executorch_runs_the_pte_format() -> None:
    assert Runtime.EXECUTORCH.artifact_format is Format.PTE and Runtime.EXECUTORCH.options == {}


def test_cli_run_with_runtime_executorch_stores_raw_samples(tmp_path: Path) -> None:
    db = tmp_path / "et.db"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "conv3x3",
            "-p",
            "cin=16",
            "-p",
            "cout=16",
            "-p",
            "h=16",
            "-p",
            "w=16",
            "--runtime",
            "executorch",
            "--threads",
            "1",
            "--db",
            str(db),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "runtime executorch · format pte" in result.output
    with Store(db) as store:
        frame = store.points_frame()
    assert list(frame["runtime"]) == ["executorch"] and list(frame["format"]) == ["pte"]
    assert (frame["median_ms"] > 0).all()
