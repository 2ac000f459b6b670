"""The runner on an emulated aarch64 board (tests/arm64_board.py), reached through the real loopback sshd exactly
as a Raspberry Pi is: `devices check`, `run` with ONNX Runtime and LiteRT, a small sweep, and a board with one
runtime only. qemu makes each runner start take seconds, so the models are tiny and the protocol short.

Skipped where the board cannot be built (no qemu-user-static, no arm64 dpkg architecture, not root); CI sets
FLOPGAP_REQUIRE=all (``arm64`` would do), which turns that skip into a failure (tests/environment.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.store import Store
from tests.arm64_board import Board, BoardUnavailable, ensure_executor_runner
from tests.conftest import Sshd, emulated_board
from tests.environment import Need, require, unmet
from tests.sweep_files import ssh_board, sweep_spec, write_inventory

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.arm64  # required whole by FLOPGAP_REQUIRE=arm64 (or all): its sshd too
TINY = ["-p", "cin=8", "-p", "cout=8", "-p", "h=8", "-p", "w=8"]  # conv1x1: 4096 MACs


@pytest.fixture(scope="module")
def board() -> Board:
    return emulated_board()


@pytest.fixture(scope="module")
def inventory(board: Board, sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two SSH boards on the loopback sshd: both runtimes installed, and ONNX Runtime only."""
    d = tmp_path_factory.mktemp("arm64")
    full = ssh_board(sshd, d / "board", python=str(board.pythons["full"]))
    ort = ssh_board(sshd, d / "board", python=str(board.pythons["onnxruntime-only"]))
    return write_inventory(d / "devices.toml", {"emu-arm64": full, "emu-arm64-ort": ort})


@pytest.fixture(scope="module")
def et_inventory(board: Board, sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SSH board on the loopback sshd whose runner is the board's executor_runner (an aarch64 ELF under qemu)."""
    try:
        binary = ensure_executor_runner(board)
    except BoardUnavailable as exc:
        unmet(Need.ARM64, f"the emulated arm64 board's executor_runner cannot be built: {exc}")
    d = tmp_path_factory.mktemp("arm64-et")
    et = ssh_board(sshd, d / "board", python=None, runner="executor_runner", binary=str(binary))
    return write_inventory(d / "devices.toml", {"emu-arm64-et": et})


def flopgap(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", "NO_COLOR": "1"}
    argv = [sys.executable, "-m", "harness.cli", *(str(a) for a in args)]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _points(db: Path) -> list[tuple[Any, ...]]:
    """(model, runtime, status, failure_reason) per point, sorted."""
    with Store(db) as store:
        frame = store.points_frame()
    rows = frame[["model", "runtime", "status", "failure_reason"]].astype(object).where(frame.notna(), None)
    return sorted(tuple(row) for row in rows.itertuples(index=False))


def _facts(db: Path, device: str) -> dict[str, Any]:
    with Store(db) as store:
        devices = store.devices_frame()
    [facts] = devices.loc[devices["name"] == device, "facts_json"]
    return dict(json.loads(facts))


def test_devices_check_shows_aarch64_core_names_and_clusters(inventory: Path, board: Board) -> None:
    res = flopgap("devices", "check", "emu-arm64", "--devices", inventory, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "emu-arm64 (ssh) is reachable" in out and "aarch64" in out
    assert "onnxruntime 1.32.0" in out and "ai_edge_litert 2.3.0" in out
    little = [c.cpu for c in board.cores if c.name == "Cortex-A55"]
    big = [c.cpu for c in board.cores if c.name == "Cortex-A76"]
    assert f"big: {len(big)}x Cortex-A76 (cpus {big[0]}" in out and "@ 2.40 GHz" in out
    if little:  # one-CPU hosts get a single big core
        assert f"LITTLE: {len(little)}x Cortex-A55 (cpus 0" in out and "@ 1.80 GHz" in out


@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_run_measures_on_the_emulated_board(runtime: str, inventory: Path, tmp_path: Path) -> None:
    db = tmp_path / "arm.db"
    args = ["run", "conv1x1", *TINY, "--runtime", runtime, "--device", "emu-arm64", "--trials", "1"]
    res = flopgap(*args, "--runs", "5", "--min-seconds", "0", "--db", db, "--devices", inventory)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _points(db) == [("conv1x1", runtime, "done", None)]
    with Store(db) as store:
        samples = store.samples_frame()
    assert len(samples) >= 5
    facts = _facts(db, "emu-arm64")
    assert facts["machine"] == "aarch64" and facts["python"] == "3.11.2"
    assert {core["part"] for core in facts["cpu_cores"]} <= {"0xd05", "0xd0b"}


def test_run_measures_a_pte_point_with_executor_runner_on_the_emulated_board(
    et_inventory: Path, tmp_path: Path
) -> None:
    """ExecuTorch on aarch64: the wheel's runtime (XNNPACK, ETDump) in the board's executor_runner, over SSH."""
    db = tmp_path / "et.db"
    args = ["run", "conv3x3", "-p", "cin=8", "-p", "cout=8", "-p", "h=8", "-p", "w=8", "--runtime", "executorch"]
    res = flopgap(
        *args, "--device", "emu-arm64-et", "--trials", "1", "--runs", "5", "--db", db, "--devices", et_inventory
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert _points(db) == [("conv3x3", "executorch", "done", None)]
    with Store(db) as store:
        samples = store.samples_frame()
        [doc] = [json.loads(text) for text in store.trials_frame()["runner_json"]]
    assert len(samples) == 5 and (samples["latency_ns"] > 0).all()
    executions = 1 + doc["warmup_runs"] + 5
    assert doc["tool"]["argv"][2] == f"--num_executions={executions}"
    # conv3x3 in XNNPACK: NCHW->NHWC, the conv, NHWC->NCHW, per execution, in the ETDump the board wrote
    assert doc["delegate_events"] == 3 * executions and doc["log"]["executions"] == executions


def test_small_sweep_on_the_emulated_board(inventory: Path, tmp_path: Path) -> None:
    spec = tmp_path / "arm.toml"
    runtimes = ["onnxruntime", "litert", "litert-builtin"]
    spec.write_text(sweep_spec("arm64 smoke", runtimes, ["emu-arm64"], channels=8, trials=1, warmup_runs=1, runs=3))
    db = tmp_path / "sweep.db"
    res = flopgap("sweep", spec, "--db", db, "--devices", inventory)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _points(db) == [
        (model, runtime, "done", None)
        for model in ("conv1x1", "depthwise_conv")
        for runtime in ("litert", "litert-builtin", "onnxruntime")
    ]
    assert _facts(db, "emu-arm64")["machine"] == "aarch64"


def test_sweep_over_big_and_little_clusters_stores_both(inventory: Path, board: Board, tmp_path: Path) -> None:
    little = [c.cpu for c in board.cores if c.name == "Cortex-A55"]
    big = [c.cpu for c in board.cores if c.name == "Cortex-A76"]
    require(Need.CPUS, None if little else "a one-CPU host's board has a single big core, no LITTLE one")
    spec = tmp_path / "clusters.toml"
    spec.write_text(
        sweep_spec("big.LITTLE", ["onnxruntime"], ["emu-arm64"], channels=8, depthwise=False,
                   clusters=["big", "little"], trials=1, warmup_runs=1, runs=3)
    )  # fmt: skip
    db = tmp_path / "clusters.db"
    res = flopgap("sweep", spec, "--db", db, "--devices", inventory)
    assert res.returncode == 0, res.stdout + res.stderr
    with Store(db) as store:
        points = store.points_frame()
        trials = store.trials_frame()
    assert list(points["status"]) == ["done", "done"]
    placed = sorted((json.loads(o)["cluster"], json.loads(o)["cpus"]) for o in points["options"])
    assert placed == [("LITTLE", little), ("big", big)]
    # each trial ran pinned to its cluster's CPUs, as the runner on the board reports
    assert sorted(json.loads(doc)["affinity"] for doc in trials["runner_json"]) == sorted([little, big])
    assert "LITTLE (cpus 0" in res.stdout and f"big (cpus {big[0]}" in res.stdout  # the summary's cluster column


def test_a_board_with_only_onnxruntime_runs_it_and_names_the_missing_runtime(inventory: Path, tmp_path: Path) -> None:
    check = flopgap("devices", "check", "emu-arm64-ort", "--devices", inventory, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "onnxruntime 1.32.0" in check.stdout and "ai_edge_litert" not in check.stdout.split("runtimes", 1)[1][:80]
    spec = tmp_path / "ort.toml"
    spec.write_text(
        'runtimes = ["onnxruntime", "litert"]\ndevices = ["emu-arm64-ort"]\n'
        '[[models]]\nname = "conv1x1"\nparams = { cin = 8, cout = 8, h = 8, w = 8 }\n'
        "[protocol]\ntrials = 1\nwarmup_runs = 1\nwarmup_seconds = 0\nruns = 3\nmin_seconds = 0\n"
    )
    db = tmp_path / "ort.db"
    res = flopgap("sweep", spec, "--db", db, "--devices", inventory)
    [litert, ort] = _points(db)
    assert ort == ("conv1x1", "onnxruntime", "done", None), res.stdout + res.stderr
    assert litert[1:3] == ("litert", "failed")
    why = litert[3]
    assert why.startswith("device 'emu-arm64-ort': no TFLite runtime is importable (ai_edge_litert: No module named")
    assert "; install ai-edge-litert (or tflite-runtime) for /" in why and "\n" not in why


def test_nothing_is_left_running_or_mounted(inventory: Path, board: Board) -> None:
    """Runs last in this module (pytest keeps file order): every board process ended, every mount went with it."""
    res = flopgap("devices", "check", "emu-arm64", "--devices", inventory, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    cache = str(board.cache).encode()
    left = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if cache in (proc / "cmdline").read_bytes():
                    left.append(proc.name)
            except OSError:
                pass
    assert left == []
    assert str(board.cache) not in Path("/proc/self/mounts").read_text()
    assert Path("/proc/cpuinfo").read_text() != (next(board.cache.glob("topology-*")) / "cpuinfo").read_text()
    assert not list((inventory.parent / "board").glob("run.*"))  # each session removed its work dir
