"""Sweeps end to end on this machine: real exporter, real runner subprocesses, real SQLite store.

Failure modes are produced for real: a corrupt model file, an interpreter that cannot import the runtime, a
runner that segfaults, one that hangs, SIGINT and SIGKILL of a running `flopgap sweep`, a full filesystem.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from devices.local import local_device
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.measure.spec import parse_spec
from harness.measure.sweep import run_sweep
from harness.store import Store
from harness.zoo.registry import ModelSpec
from tests.conftest import cached_exporter, small_tmpfs
from tests.sweep_files import committed_trials, sweep_spec


def spec_text(trials: int = 2, runs: int = 20, timeout: float = 60) -> str:
    return sweep_spec("test", ["onnxruntime"], trials=trials, runs=runs, timeout_s=timeout)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def wrapper(tmp_path: Path, name: str, body: str) -> str:
    """An executable that stands in for the device's python: same argv, different behaviour."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_sweep_measures_every_point_then_resumes_without_duplicates(tmp_path: Path, cache_dir: Path) -> None:
    text = spec_text(trials=2, runs=25)
    spec = parse_spec(text)
    with Store(tmp_path / "r.db") as store:
        first = run_sweep(spec, text, store, {"local": local_device()}, cached_exporter(cache_dir))
        assert first.measured_trials == 4 and first.failed_points == 0
        points = store.points_frame()
        assert list(points["status"]) == ["done", "done"]
        assert (points["n"] >= 2 * 25).all()
        assert set(points["runtime_version"]) == {__import__("onnxruntime").__version__}
        samples = store.samples_frame()
        # the stored median is the median of the stored samples
        for row in points.itertuples():
            mine = samples[samples["point_id"] == row.point_id]["latency_ns"].median() / 1e6
            assert row.median_ms == pytest.approx(mine)
            assert row.ci_low_ms <= row.median_ms <= row.ci_high_ms
        # each artifact's graph account travels with the database: the conv1x1 is 8*8*16*16 MACs
        accounts = store.op_accounts()
        assert set(accounts) == set(points["artifact_sha"])
        conv = points.set_index("model").loc["conv1x1", "artifact_sha"]
        assert int(accounts[conv]["macs"].sum()) == 8 * 8 * 16 * 16
        # ONNX Runtime's session settings travel with every trial (README: protocol)
        for doc in store.trials_frame()["runner_json"]:
            settings = json.loads(doc)["ort_settings"]
            assert (settings["allow_spinning"], settings["graph_optimization"]) == (True, "all")
        again = run_sweep(spec, text, store, {"local": local_device()}, cached_exporter(cache_dir))
        assert again.measured_trials == 0 and again.skipped_points == 2
        assert len(store.trials_frame()) == 4


def test_corrupt_model_file_fails_its_point_and_the_sweep_goes_on(tmp_path: Path, cache_dir: Path) -> None:
    text = spec_text(trials=1)
    spec = parse_spec(text)
    real = cached_exporter(cache_dir)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(os.urandom(2048))

    def exporter(model: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        art = real(model, fmt, precision)
        if model.name == "conv1x1":  # hand the sweep a damaged file with a distinct identity
            return replace(art, path=corrupt, sha256="0" * 64)
        return art

    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, text, store, {"local": local_device()}, exporter)
        frame = store.points_frame().set_index("model")
        assert result.failed_points == 1
        assert frame.loc["conv1x1", "status"] == "failed"
        assert "corrupt.onnx" in frame.loc["conv1x1", "failure_reason"]
        assert "\n" not in frame.loc["conv1x1", "failure_reason"]
        assert frame.loc["depthwise_conv", "status"] == "done"


# Only the hanging runner is held to a 2 s limit; the others have a minute, so that a loaded machine's slow Python
# start can never turn their failure into a timeout.
@pytest.mark.parametrize(
    ("case", "body", "timeout", "expected"),
    [
        (
            "runtime_missing",
            # the device's python cannot import onnxruntime
            f'exec {sys.executable} -c \'import runpy, sys; sys.modules["onnxruntime"] = None; '
            'sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")\' "$@"',
            60,
            "onnxruntime is not importable",
        ),
        ("crash", "kill -SEGV $$", 60, "runner crashed: killed by signal 11"),
        ("hang", "exec sleep 60", 2, "ran past 2s and was killed"),
    ],
)
def test_broken_runner_fails_points_with_one_line_reason(
    tmp_path: Path, cache_dir: Path, case: str, body: str, timeout: int, expected: str
) -> None:
    text = spec_text(trials=1, timeout=timeout)
    spec = parse_spec(text)
    device = local_device(python=wrapper(tmp_path, f"python-{case}", body), facts_timeout=timeout)
    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, text, store, {"local": device}, cached_exporter(cache_dir))
        assert result.failed_points == 2
        reasons = list(store.points_frame()["failure_reason"])
        assert all(expected in r and "\n" not in r for r in reasons), reasons
        assert store.runs()[-1].status == "completed"


def _sweep_cmd(spec: Path, db: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--db", str(db), "--cache-dir", str(cache)]


def _interrupt_after_first_trial(tmp_path: Path, cache: Path, sig: int) -> tuple[Path, Path, subprocess.Popen[str]]:
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(trials=3, runs=400))
    db = tmp_path / "r.db"
    proc = subprocess.Popen(
        _sweep_cmd(spec, db, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while committed_trials(db) < 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no trial was committed in time"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return spec, db, proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "kill-9"])
def test_interrupted_sweep_keeps_what_it_measured_and_resumes_without_duplicates(
    tmp_path: Path, cache_dir: Path, sig: int
) -> None:
    spec, db, proc = _interrupt_after_first_trial(tmp_path, cache_dir, sig)
    kept = committed_trials(db)
    assert 1 <= kept < 6
    if sig != signal.SIGKILL:  # SIGTERM (systemd, timeout, CI runners) is handled as Ctrl-C, with 128 + 15
        assert proc.returncode == (130 if sig == signal.SIGINT else 143)
        assert "interrupted; everything measured so far is saved" in proc.stderr.read()  # type: ignore[union-attr]
        with Store(db) as store:
            assert store.runs()[-1].status == "interrupted"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = subprocess.run(_sweep_cmd(spec, db, cache_dir), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Store(db) as store:
        trials = store.trials_frame()
        assert len(trials) == 2 * 3  # two points, three trials, each exactly once
        assert not trials.duplicated(["point_id", "trial_index"]).any()
        assert list(store.points_frame()["status"]) == ["done", "done"]
        assert f"{6 - kept} trials measured" in done.stdout.replace("\n", " ")


def test_full_disk_at_results_path_stops_with_one_line_and_keepscommitted_trials(
    tmp_path: Path, cache_dir: Path
) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(trials=50, runs=5000))  # ~80 kB of samples per trial: fills 512 kB fast
    with small_tmpfs(tmp_path / "disk", "512k") as disk:
        db = disk / "r.db"
        res = subprocess.run(_sweep_cmd(spec, db, cache_dir), capture_output=True, text=True, timeout=600)
        assert res.returncode == 2, res.stderr
        last = res.stderr.strip().splitlines()[-1]
        assert "full" in last and str(db) in last
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            trials = conn.execute("SELECT id FROM trials").fetchall()
            assert trials
            for (tid,) in trials:  # every committed trial kept all of its samples
                n = conn.execute("SELECT count(*) FROM samples WHERE trial_id = ?", (tid,)).fetchone()[0]
                assert n >= 5000
