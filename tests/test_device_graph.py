"""Kernels of the device, not of the host: ONNX Runtime's graph as the device optimized it (issue 20, item 2).

The runner saves the graph ORT optimized (``--save-optimized``) and the host pulls it back; on the emulated aarch64
board (tests/arm64_board.py, reached over the real loopback sshd) that graph is ARM's: NCHW ``FusedConv`` with the
activation and the residual add folded in, where this x86 host's ORT writes NCHWc convolutions between layout
reorders. A predictor built there records ``aarch64`` and refuses, in one line, to price this host's graph.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from devices import runner as runner_module
from devices.base import Device, TrialRequest
from devices.core.digest import file_digest
from devices.core.errors import FlopgapError
from devices.inventory import open_device, parse_inventory
from devices.local import local_device
from devices.vocabulary import Format, Precision, RunnerKind, Runtime
from exporters.export import export
from harness.measure.spec import Protocol as SweepProtocol
from harness.predict.build import BuildPlan, build_predictor
from harness.predict.dataset import PredictContext, load_dataset
from harness.predict.device_graph import (
    check_arch,
    graph_kernels,
    host_arch,
    keep_graph,
    kernel_key,
    normal_arch,
    store_device_kernels,
)
from harness.predict.extract import EXTRACTOR_VERSION, extract_kernels
from harness.predict.kernels import Kernel
from harness.predict.ort_kernels import ort_kernels
from harness.predict.predictor import TrainingRow, fit_predictor
from harness.store import Store
from harness.zoo.registry import resolve
from tests.arm64_board import Board
from tests.conftest import Sshd, emulated_board
from tests.fake_device import TrialLog, fake_device
from tests.sweep_files import inventory_text, ssh_board

ROOT = Path(__file__).resolve().parents[1]
UNIT = resolve("shufflenet_v2_unit")


class Residual(nn.Module):
    """conv3x3 + ReLU, then a 1×1 conv whose output is added to its input and ReLU'd: ORT fuses both differently
    on x86 (NCHWc conv with a Sum input between reorders) and ARM (FusedConv with a Z input)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(16, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c1(x))
        return torch.relu(self.c2(y) + y)


@pytest.fixture(scope="module")
def residual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("residual") / "residual.onnx"
    torch.onnx.export(Residual().eval(), (torch.randn(1, 16, 16, 16),), str(path), dynamo=False)
    return path


def _impls(kernels: list[Kernel]) -> list[tuple[str, str, bool]]:
    return [(k.op_type, k.impl, k.fused_add) for k in kernels]


def test_the_runner_saves_the_graph_it_timed_and_its_kernels_are_the_hosts_own(residual: Path, tmp_path: Path) -> None:
    saved = tmp_path / "optimized.onnx"
    argv = [str(residual), "--runs", "1", "--min-seconds", "0", "--warmup-runs", "0", "--warmup-seconds", "0",
            "--save-optimized", str(saved)]  # fmt: skip
    out = subprocess.run([sys.executable, runner_module.__file__, *argv], capture_output=True, text=True, timeout=120)
    doc = json.loads(out.stdout)
    assert doc["error"] is None and doc["optimized_model"] == str(saved)
    graph = onnx.load(str(saved), load_external_data=False)
    # Weights over 1 KiB live beside it: what a board sends back is the graph (the 32x16x3x3 conv's 18 KiB stay).
    assert saved.stat().st_size < 4096 and (tmp_path / "optimized.onnx.data").stat().st_size >= 32 * 16 * 9 * 4
    assert _impls(ort_kernels(residual, graph)) == _impls(extract_kernels(residual, Runtime.ONNXRUNTIME, cache=False))
    if host_arch() == "x86_64":  # this machine's ORT: NCHWc convs, the residual add in the second one's Sum input
        assert _impls(ort_kernels(residual, graph)) == [
            ("ReorderInput", "nchwc", False),
            ("Conv", "nchwc", False),
            ("Conv", "nchwc", True),
            ("ReorderOutput", "nchwc", False),
        ]


def test_save_optimized_is_refused_for_a_tflite_model(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    out = subprocess.run([sys.executable, runner_module.__file__, str(model), "--save-optimized", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    doc = json.loads(out.stdout)
    assert doc["error"] == {
        "kind": "BadArguments",
        "message": "--save-optimized is for ONNX models (ONNX Runtime's optimized graph)",
    }


def test_architectures_are_compared_in_one_spelling() -> None:
    assert normal_arch("AMD64") == normal_arch("x86_64") == "x86_64"
    assert normal_arch("arm64") == normal_arch("aarch64") == "aarch64"
    assert normal_arch(None) is None
    assert kernel_key(Runtime.ONNXRUNTIME, "pi5") == "onnxruntime@pi5" and kernel_key(Runtime.LITERT, "pi5") == "litert"
    check_arch({"arch": host_arch()}, "local", Runtime.ONNXRUNTIME)  # same machine: nothing to refuse
    check_arch({}, "local", Runtime.ONNXRUNTIME)  # a predictor from before the check: trusted as before
    check_arch({"arch": "riscv64"}, "board", Runtime.LITERT)  # a .tflite op list is the same on every CPU


def _store_foreign_predictor(db: Path, arch: str) -> str:
    """A predictor of ONNX Runtime on device 'board' recorded as built on ``arch`` (times: 1 µs per 10 kFLOP);
    returns the unit's artifact sha256."""
    art = export(UNIT, Format.ONNX, Precision.FP32)
    kernels = extract_kernels(art.path, Runtime.ONNXRUNTIME)
    rows = [TrainingRow(k, 1 + k.flops / 1e4, "space") for k in kernels * 3]
    predictor = fit_predictor({"device": "board", "runtime": "onnxruntime"}, rows, [])
    predictor.summary["arch"] = arch
    with Store(db) as store:
        store.add_predictor("board", "onnxruntime", 1, "fp32", "lightgbm", predictor.versions, predictor.to_json(),
                            predictor.summary)  # fmt: skip
    return art.sha256


def _flopgap(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", "NO_COLOR": "1"}
    argv = [sys.executable, "-m", "harness.cli", *(str(a) for a in args)]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_predictor_of_another_architecture_refuses_this_hosts_graph_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    other = "aarch64" if host_arch() != "aarch64" else "x86_64"
    _store_foreign_predictor(db, other)
    res = _flopgap("predict", "shufflenet_v2_unit", "--device", "board", "--db", db)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == (
        f"error: the onnxruntime predictor of 'board' was built on {other}, and ONNX Runtime on this {host_arch()} "
        f"machine optimizes graphs for {host_arch()} (other kernels); export it ('flopgap predictor export') and "
        f"predict on a {other} machine"
    )
    grid = _flopgap("predict", "shufflenet_v2_unit", "--device", "board", "--db", db, "--grid", "groups=2,4")
    assert grid.returncode == 2 and grid.stderr.count("\n") == 1 and f"was built on {other}" in grid.stderr


def test_a_foreign_predictor_prices_the_devices_own_kernels_where_the_device_optimized_the_model(
    tmp_path: Path,
) -> None:
    """The refusal is only for graphs the device never optimized: kernels stored from its own graph are used."""
    db = tmp_path / "r.db"
    other = "aarch64" if host_arch() != "aarch64" else "x86_64"
    sha = _store_foreign_predictor(db, other)
    kernels = extract_kernels(export(UNIT, Format.ONNX, Precision.FP32).path, Runtime.ONNXRUNTIME)[:3]
    with Store(db) as store:  # stand-in for the board's graph: three of its kernels, so the count shows which
        store.put_kernels(sha, kernel_key(Runtime.ONNXRUNTIME, "board"), [k.to_json() | {"extractor": 5} for k in
                                                                          kernels])  # fmt: skip
    res = _flopgap("predict", "shufflenet_v2_unit", "--device", "board", "--db", db, "--format", "json")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["kernels"]) == 3


# ---- on the emulated aarch64 board ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def board() -> Board:
    return emulated_board()


@pytest.fixture(scope="module")
def arm_device(board: Board, sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    d = tmp_path_factory.mktemp("arm64-graph")
    text = inventory_text({"emu-arm64": ssh_board(sshd, d / "board", python=str(board.pythons["full"]))})
    device = open_device(parse_inventory(text, "test")["emu-arm64"])
    yield device
    device.cleanup()
    device.close()


@pytest.mark.arm64
def test_the_boards_graph_is_arms_and_its_kernels_differ_from_the_hosts(
    arm_device: Device, residual: Path, tmp_path: Path
) -> None:
    request = TrialRequest(warmup_runs=0, warmup_seconds=0, runs=1, min_seconds=0, max_runs=1, save_graph=True)
    result = arm_device.measure(residual, request)
    assert result.optimized_graph is not None and len(result.optimized_graph) < 4096  # the graph, not its weights
    board = graph_kernels(residual, keep_graph("emu-arm64", "residual", result.optimized_graph, tmp_path))
    # ARM: no layout reorders; both convs FusedConv (ReLU folded in), the second with the residual add as input Z.
    assert _impls(board) == [("Conv", "fused", False), ("Conv", "fused", True)]
    assert [k.activation for k in board] == ["relu", "relu"]
    assert [k.inputs for k in board] == [1, 2]  # the residual is read by the conv that adds it
    host = extract_kernels(residual, Runtime.ONNXRUNTIME, cache=False)
    if host_arch() == "x86_64":  # what the host would have priced instead: NCHWc convs and two reorders
        assert _impls(host) == [
            ("ReorderInput", "nchwc", False),
            ("Conv", "nchwc", False),
            ("Conv", "nchwc", True),
            ("ReorderOutput", "nchwc", False),
        ]
        assert len(host) - len(board) == 2


@pytest.mark.arm64
def test_a_predictor_built_on_the_board_learns_its_graph_and_refuses_this_host(
    arm_device: Device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOPGAP_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "r.db"
    quick = SweepProtocol(trials=1, warmup_runs=1, warmup_seconds=0, runs=2, min_seconds=0, parity=False)
    plan = BuildPlan(PredictContext("emu-arm64", Runtime.ONNXRUNTIME), budget_s=3600, models=(), train_nets=0,
                     probe_protocol=quick, max_probes=3)  # fmt: skip
    with Store(db) as store:
        result = build_predictor(plan, store, arm_device, export)
        assert result.probes_measured >= 2
        assert result.predictor.summary["arch"] == "aarch64"
        frame = store.kernels_frame()
    keys = set(frame["runtime"])
    assert keys == {f"onnxruntime@{result.context.device}"}  # the board's graph, never a host extraction
    impls = {json.loads(k)["impl"] for k in frame["kernel_json"]}
    assert "nchwc" not in impls
    graphs = list((tmp_path / "cache" / "device-graphs" / result.context.device).glob("*.onnx"))
    assert len(graphs) == frame["artifact_sha"].nunique()
    kept = onnx.load(str(graphs[0]), load_external_data=False)
    assert not [n for n in kept.graph.node if n.domain == "com.microsoft.nchwc"]
    if host_arch() != "aarch64":
        res = _flopgap("predict", "shufflenet_v2_unit", "--device", result.context.device, "--db", db)
        assert res.returncode == 2 and res.stderr.count("\n") == 1
        assert f"predictor of '{result.context.device}' was built on aarch64" in res.stderr
    assert np.isfinite(result.predictor.calibration.c1)


@pytest.mark.parametrize("kind", [RunnerKind.AGENT, RunnerKind.ONNXRUNTIME_PERF_TEST])
def test_a_device_whose_tool_returns_no_graph_fails_the_build_in_one_line_never_using_the_hosts(
    kind: RunnerKind, residual: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faked at the backend's protocol boundary (tests/fake_device.py): a tool that times models but brings back no
    optimized graph. The stock binary is not even asked; no kernels are stored from this machine's graph."""
    monkeypatch.setenv("FLOPGAP_CACHE_DIR", str(tmp_path / "cache"))
    log = TrialLog()
    device = fake_device("phone", log)
    device.backend.kind = kind  # type: ignore[misc]
    with Store(tmp_path / "r.db") as store:
        with pytest.raises(FlopgapError) as caught:
            store_device_kernels(store, device, "phone", Runtime.ONNXRUNTIME, residual, file_digest(residual))
        assert store.kernels_frame().empty
    assert str(caught.value) == (
        f"device 'phone' runs {kind}, which cannot return ONNX Runtime's optimized graph; build ONNX Runtime "
        'predictors with flopgap\'s runner there (runner = "agent")'
    )
    assert len(log.records) == (0 if kind.is_binary else 1)


def test_a_build_over_kernels_no_device_graph_was_kept_for_brings_the_graphs_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database whose ORT kernels an older flopgap stored (no device graph kept, another extractor): a build whose
    budget is spent only refits, and first brings the device's graphs back, so no probe loses its kernels."""
    monkeypatch.setenv("FLOPGAP_CACHE_DIR", str(tmp_path / "cache"))
    quick = SweepProtocol(trials=1, warmup_runs=2, warmup_seconds=0.0, runs=5, min_seconds=0.01, parity=False)
    plan = BuildPlan(PredictContext("local", Runtime.ONNXRUNTIME), budget_s=12, seed=2, models=(), train_nets=0,
                     probe_protocol=quick)  # fmt: skip
    graphs = tmp_path / "cache" / "device-graphs"
    with Store(tmp_path / "b.db") as store:
        first = build_predictor(plan, store, local_device(), export)
        rows = len(load_dataset(store, first.context).rows)
        key = kernel_key(Runtime.ONNXRUNTIME, first.context.device)
        shas = sorted(set(store.kernels_frame(key)["artifact_sha"]))
        for sha in shas:  # as an older flopgap left them: another extractor's, and no graph kept
            store.put_kernels(sha, key, [{**r.kernel, "extractor": 4} for r in store.kernels_of(sha, key)])
    assert rows >= first.probes_total >= 1 and len(shas) == first.probes_total
    shutil.rmtree(graphs)
    with Store(tmp_path / "b.db") as store:
        second = build_predictor(plan, store, local_device(), export)
        assert second.probes_measured == 0 and second.probes_total == first.probes_total
        assert len(load_dataset(store, second.context).rows) == rows
        assert {r.kernel["extractor"] for sha in shas for r in store.kernels_of(sha, key)} == {EXTRACTOR_VERSION}
    assert sorted(p.stem for p in (graphs / first.context.device).glob("*.onnx")) == shas
