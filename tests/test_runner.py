"""The on-device runner, run as a subprocess on real tiny models with the real runtimes."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices import runner

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "devices" / "runner.py"
FAST = ["--runs", "20", "--min-seconds", "0", "--warmup-runs", "3", "--warmup-seconds", "0"]


def tiny_net() -> tuple[Any, tuple[Any, ...]]:
    """Conv(3→8, 3×3) → ReLU → Conv(8→8, 1×1) on a 1×3×32×32 input, and an example input."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.relu = torch.nn.ReLU()
            self.pointwise = torch.nn.Conv2d(8, 8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pointwise(self.relu(self.conv(x)))

    torch.manual_seed(0)
    return Net().eval(), (torch.randn(1, 3, 32, 32),)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny .onnx and one tiny .tflite, exported once per session."""
    import litert_torch
    import torch

    folder = tmp_path_factory.mktemp("runner_models")
    model, example = tiny_net()
    onnx_path = folder / "tiny.onnx"
    torch.onnx.export(model, example, str(onnx_path), dynamo=True)
    tflite_path = folder / "tiny.tflite"
    litert_torch.convert(model, example).export(str(tflite_path))
    return {"onnx": onnx_path, "tflite": tflite_path}


def run_runner(*argv: str, mode: str = "module", cwd: Path = REPO) -> tuple[int, dict[str, Any], str]:
    """Run the runner in a fresh interpreter; return (exit code, the one JSON document, stderr)."""
    if mode == "module":
        command = [sys.executable, "-m", "devices.runner", *argv]
    else:  # a path to runner.py, in isolated mode: no PYTHONPATH, no script dir on sys.path, no user site
        command = [sys.executable, "-I", mode, *argv]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stdout, got {proc.stdout!r}; stderr: {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(lines[0]), proc.stderr


def installed_version(module: str) -> str:
    return __import__(module).__version__


# --------------------------------------------------------------------------- measuring


def test_onnx_measurement_as_module(models: dict[str, Path]) -> None:
    code, doc, _ = run_runner(str(models["onnx"]), "--threads", "2", *FAST)
    assert code == 0, doc["error"]
    assert doc["schema"] == "flopgap.runner/1"
    assert doc["error"] is None
    assert doc["format"] == "onnx"
    assert doc["runtime"] == "onnxruntime"
    assert doc["runtime_version"] == installed_version("onnxruntime")
    assert doc["threads"] == 2
    assert doc["xnnpack"] is None
    assert doc["inputs"] == [{"name": "x", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    samples = doc["samples_ns"]
    assert len(samples) >= 20 and all(isinstance(s, int) and s > 0 for s in samples)
    assert doc["warmup_runs"] >= 3
    assert doc["init_ns"] > 0 and doc["first_inference_ns"] > 0
    assert doc["peak_rss_kib"] >= doc["rss_before_load_kib"] > 0
    assert doc["python"] == ".".join(map(str, sys.version_info[:3]))
    assert doc["affinity"] == sorted(os.sched_getaffinity(0))
    assert doc["protocol"]["runs"] == 20 and doc["protocol"]["warmup_runs"] == 3
    assert doc["profile"] is None
    for state in (doc["state_before"], doc["state_after"]):
        assert state["time_unix"] > 0
        assert len(state["loadavg"]) == 3
    assert doc["state_after"]["time_unix"] >= doc["state_before"]["time_unix"]
    assert list(doc) == list(runner.RunnerDocument.__annotations__)  # the declared contract, key for key
    assert set(doc["protocol"]) == set(runner.ProtocolEcho.__annotations__)


def test_tflite_measurement_as_script(models: dict[str, Path]) -> None:
    code, doc, stderr = run_runner(str(models["tflite"]), "--threads", "1", *FAST, mode=str(RUNNER))
    assert code == 0, doc["error"]
    assert doc["runtime"] == "ai_edge_litert"
    assert doc["runtime_version"] == installed_version("ai_edge_litert")
    assert doc["threads"] == 1
    assert doc["xnnpack"] is True
    assert doc["inputs"][0]["shape"] == [1, 3, 32, 32]  # litert-torch keeps the torch NCHW signature
    assert len(doc["samples_ns"]) >= 20
    assert doc["init_ns"] > 0 and doc["first_inference_ns"] > 0
    assert "XNNPACK" in stderr  # the runtime's own log went to stderr, not into the JSON on stdout


def test_warmup_and_timed_minimums_are_both_respected(models: dict[str, Path]) -> None:
    argv = [
        "--warmup-runs",
        "4",
        "--warmup-seconds",
        "0.2",
        "--runs",
        "10",
        "--min-seconds",
        "0.3",
        "--max-runs",
        "10000000",
    ]
    code, doc, _ = run_runner(str(models["onnx"]), *argv)
    assert code == 0, doc["error"]
    # The tiny model takes ~20 µs, so time, not count, ends both phases.
    assert doc["warmup_runs"] > 4 and doc["warmup_ns"] >= 0.2e9
    assert len(doc["samples_ns"]) > 10 and doc["timed_ns"] >= 0.3e9
    assert sum(doc["samples_ns"]) <= doc["timed_ns"]


def test_max_runs_caps_the_timed_loop(models: dict[str, Path]) -> None:
    code, doc, _ = run_runner(str(models["tflite"]), "--runs", "5", "--min-seconds", "60", "--max-runs", "30")
    assert code == 0, doc["error"]
    assert len(doc["samples_ns"]) == 30


def test_xnnpack_switch_changes_delegate_report(models: dict[str, Path]) -> None:
    _, on, _ = run_runner(str(models["tflite"]), *FAST)
    _, off, _ = run_runner(str(models["tflite"]), "--no-xnnpack", *FAST)
    # litert-torch emits TRANSPOSE, CONV_2D (ReLU fused), CONV_2D, TRANSPOSE; XNNPACK takes all four.
    assert on["delegate"] == {
        "name": "xnnpack",
        "nodes_total": 4,
        "nodes_delegated": 4,
        "delegate_kernels": 1,
        "nodes_on_cpu": 0,
    }
    assert off["xnnpack"] is False
    assert off["delegate"] == {
        "name": None,
        "nodes_total": 4,
        "nodes_delegated": 0,
        "delegate_kernels": 0,
        "nodes_on_cpu": 4,
    }


def test_affinity_pins_the_process(models: dict[str, Path]) -> None:
    cpu = min(os.sched_getaffinity(0))
    code, doc, _ = run_runner(str(models["onnx"]), "--affinity", str(cpu), *FAST)
    assert code == 0, doc["error"]
    assert doc["affinity"] == [cpu]
    assert doc["protocol"]["affinity"] == [cpu]


def test_cpu_list_parsing() -> None:
    assert runner._cpu_list("0,2-4") == [0, 2, 3, 4]
    with pytest.raises(Exception, match="invalid CPU list"):
        runner._cpu_list("a-b")


# --------------------------------------------------------------------------- self-containment


def test_runner_imports_only_stdlib_numpy_and_runtimes() -> None:
    allowed = set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime"}
    allowed |= {"executorch", "torch"}  # ExecuTorch's Python runtime takes torch tensors
    tree = ast.parse(RUNNER.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - allowed - {"__future__"} == set()


def test_runner_copied_alone_runs(models: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "runner.py"
    shutil.copy(RUNNER, copy)
    code, doc, _ = run_runner(str(models["onnx"]), *FAST, mode=str(copy), cwd=tmp_path)
    assert code == 0, doc["error"]
    assert len(doc["samples_ns"]) >= 20


# --------------------------------------------------------------------------- failures


def assert_failed(code: int, doc: dict[str, Any], kind: str) -> None:
    assert code == 2
    assert doc["error"]["kind"] == kind
    message = doc["error"]["message"]
    assert message and "\n" not in message
    assert doc["samples_ns"] is None
    assert list(doc) == list(runner.RunnerDocument.__annotations__)  # a failure has the same shape


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
def test_missing_model(tmp_path: Path, suffix: str) -> None:
    missing = tmp_path / f"absent{suffix}"
    code, doc, _ = run_runner(str(missing))
    assert_failed(code, doc, "ModelNotFound")
    assert str(missing) in doc["error"]["message"]


@pytest.mark.parametrize(("suffix", "runtime"), [(".onnx", "onnxruntime"), (".tflite", "ai_edge_litert")])
def test_corrupt_model(tmp_path: Path, suffix: str, runtime: str) -> None:
    corrupt = tmp_path / f"corrupt{suffix}"
    corrupt.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    code, doc, _ = run_runner(str(corrupt))
    assert_failed(code, doc, "ModelLoadFailed")
    assert doc["runtime"] == runtime  # the runtime was found; it is the file that failed


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["model.pt"], ".onnx, .tflite or .pte"),
        (["m.onnx", "--threads", "0"], "--threads"),
        (["m.onnx", "--runs", "10", "--max-runs", "5"], "--max-runs"),
        (["m.onnx", "--no-such-flag"], "--no-such-flag"),
        (["m.tflite", "--instances", "0"], "--instances must be >= 1"),
        (["m.tflite", "--instances", "2", "--sustained", "1"], "--sustained times one instance"),
        ([], "model path is required"),
    ],
)
def test_bad_arguments(argv: list[str], needle: str) -> None:
    code, doc, _ = run_runner(*argv)
    assert_failed(code, doc, "BadArguments")
    assert needle in doc["error"]["message"]


@pytest.mark.parametrize(("suffix", "hidden"), [(".onnx", ["onnxruntime"]), (".tflite", ["ai_edge_litert"])])
def test_runtime_missing(models: dict[str, Path], suffix: str, hidden: list[str]) -> None:
    hidden = [*hidden, "tflite_runtime"]  # the TFLite fallback must not be found either
    model = models[suffix.lstrip(".")]
    # sys.modules[name] = None makes "import name" raise ImportError, as on a device without the wheel.
    script = (
        "import runpy, sys\n"
        f"for name in {hidden!r}: sys.modules[name] = None\n"
        f"sys.argv = ['runner.py', {str(model)!r}]\n"
        f"runpy.run_path({str(RUNNER)!r}, run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert_failed(proc.returncode, doc, "RuntimeMissing")


# --------------------------------------------------------------------------- facts and profiles


def test_facts() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "devices.runner", "--facts"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["cpu_count"] == os.cpu_count()
    assert facts["cpus_usable"] == len(os.sched_getaffinity(0))
    assert facts["machine"] == os.uname().machine
    assert facts["kernel"] == os.uname().release
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    runtimes = facts["runtimes"]
    assert runtimes["onnxruntime"] == installed_version("onnxruntime")
    assert runtimes["ai_edge_litert"] == installed_version("ai_edge_litert")
    assert runtimes["numpy"] == np.__version__
    meminfo = Path("/proc/meminfo").read_text().splitlines()[0]
    assert facts["mem_total_kib"] == int(meminfo.split()[1])
    assert facts["cpu_model"] or facts.get("cpu_hardware") or facts.get("cpu_parts")


def test_cpuinfo_parses_arm_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    # Excerpt of a Raspberry Pi 4 /proc/cpuinfo (Cortex-A72 is part 0xd08, ARM is implementer 0x41).
    text = (
        "processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
        "processor\t: 1\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
        "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    )
    monkeypatch.setattr(runner, "_read_text", lambda path: text if path == "/proc/cpuinfo" else None)
    info = runner._cpuinfo()
    assert info["cpu_hardware"] == "BCM2835"
    assert info["cpu_parts"] == ["0xd08"]
    assert info["cpu_part_per_core"] == ["0xd08", "0xd08"]
    assert info["cpu_implementers"] == ["0x41"]
    assert info["board_model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert "cpu_model" not in info


def test_device_state_reads_cpufreq_and_thermal_sysfs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A big.LITTLE-like tree: cpu0 fully readable, cpu1 without a governor, cpu2 with no cpufreq at all.
    cpu = tmp_path / "cpu"
    for index, files in {
        0: {"scaling_cur_freq": "1800000\n", "cpuinfo_max_freq": "1800000\n", "scaling_governor": "performance\n"},
        1: {"scaling_cur_freq": "600000\n", "cpuinfo_max_freq": "2400000\n"},
    }.items():
        freq = cpu / f"cpu{index}" / "cpufreq"
        freq.mkdir(parents=True)
        for name, text in files.items():
            (freq / name).write_text(text)
    (cpu / "cpu2").mkdir()
    (cpu / "cpufreq").mkdir()  # not a cpuN directory
    thermal = tmp_path / "thermal"
    for name, files in {
        "thermal_zone0": {"type": "cpu-thermal\n", "temp": "48312\n"},
        "thermal_zone1": {"type": "gpu-thermal\n"},  # temp unreadable: skipped
        "thermal_zone10": {"temp": "-2000\n"},
    }.items():
        (thermal / name).mkdir(parents=True)
        for file, text in files.items():
            (thermal / name / file).write_text(text)
    monkeypatch.setattr(runner, "SYS_CPU", str(cpu))
    monkeypatch.setattr(runner, "SYS_THERMAL", str(thermal))

    state = runner.device_state()
    assert state["cpus"] == [
        {"cpu": 0, "cur_khz": 1800000, "max_khz": 1800000, "governor": "performance"},
        {"cpu": 1, "cur_khz": 600000, "max_khz": 2400000},
    ]
    assert state["thermal"] == [
        {"zone": "thermal_zone0", "temp_c": 48.312, "type": "cpu-thermal"},
        {"zone": "thermal_zone10", "temp_c": -2.0},
    ]


def test_device_state_survives_unreadable_sysfs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_read_text", lambda path: None)
    state = runner.device_state()
    assert "cpus" not in state and "thermal" not in state
    assert state["time_unix"] > 0


def test_onnx_profile_rows_match_optimized_graph(models: dict[str, Path], tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    code, doc, _ = run_runner(str(models["onnx"]), "--profile", "--profile-runs", "7", *FAST)
    assert code == 0, doc["error"]
    rows = doc["profile"]
    assert {"Conv"} <= {r["op_type"] for r in rows}
    assert all(r["calls"] == 7 and r["time_us"] > 0 for r in rows)
    # ORT_ENABLE_ALL renames nodes as it fuses them; the names must be those of the graph ORT actually runs.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(models["onnx"]), options, providers=["CPUExecutionProvider"])
    optimized = {n.name for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert {r["name"] for r in rows} <= optimized


def test_onnx_profile_without_optimization_names_every_exported_node(models: dict[str, Path]) -> None:
    import onnx

    argv = ["--profile", "--graph-optimization", "disable", *FAST]
    code, doc, _ = run_runner(str(models["onnx"]), *argv)
    assert code == 0, doc["error"]
    graph = onnx.load(str(models["onnx"])).graph
    assert [(r["name"], r["op_type"]) for r in doc["profile"]] == [(n.name, n.op_type) for n in graph.node]


def test_a_tflite_profile_times_xnnpacks_operators_through_litert_c_api(models: dict[str, Path]) -> None:
    """The tiny net (3x3 conv, ReLU, 1x1 conv; NCHW in and out) as XNNPACK runs it: the layout transposes the
    export adds, the ReLU fused into the first convolution, the 1x1 convolution run as a fully connected GEMM over
    the pixels; each operator timed in every profiled run."""
    code, doc, _ = run_runner(str(models["tflite"]), "--profile", "--profile-runs", "15", *FAST)
    assert code == 0, doc["error"]
    assert doc["profile_note"] is None
    rows = doc["profile"]
    assert [(r["name"], r["op_type"], r["calls"]) for r in rows] == [
        ("0", "Transpose (ND, X32) Transpose", 15), ("1", "Convolution (NHWC, F32) IGEMM", 15),
        ("2", "Fully Connected (NC, F32) GEMM", 15), ("3", "Transpose (ND, X32) Transpose", 15)]  # fmt: skip
    # LiteRT times events in whole µs: the 32x32x8 transposes take under one, the convolutions several
    assert rows[1]["median_us"] >= 1 and rows[2]["median_us"] >= 1 and all(r["time_us"] >= 0 for r in rows)
    # the operators' times make up the model's (within what profiling adds and a noisy machine moves)
    run_us = sorted(doc["samples_ns"])[len(doc["samples_ns"]) // 2] / 1e3
    assert 0.3 * run_us < sum(r["median_us"] for r in rows) < 3 * run_us


def test_a_tflite_profile_on_a_litert_release_of_unread_layout_is_null_with_a_note(models: dict[str, Path]) -> None:
    """The C API is reached through ctypes, its layout read off per release: another release gets no rows."""
    code = ("import sys, devices.runner as r; r.LITERT_PROFILER_RELEASES = ('9.9.',); "
            "sys.exit(r.main(sys.argv[1:]))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, str(models["tflite"]), "--profile", *FAST],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    doc = json.loads(proc.stdout.splitlines()[-1])
    assert proc.returncode == 0, doc["error"]
    assert doc["profile"] is None
    assert "ai-edge-litert 9.9.x" in doc["profile_note"] and "layout is read off per release" in doc["profile_note"]


def test_litert_profiler_events_parse_to_operator_rows_and_refuse_an_unknown_layout() -> None:
    import struct

    from devices.runner import parse_litert_events

    def event(tag: int, kind: int, elapsed: int, index: int) -> bytes:
        record = struct.pack("<QI4xQQ", tag, kind, 0, elapsed) + bytes(48) + struct.pack("<QQI4x", index, 0, 0)
        assert len(record) == 104
        return record

    tags = {1: b"Convolution (NHWC, F32) IGEMM", 2: b"Add (ND)", 3: b"Invoke"}
    data = b"".join([event(3, 1, 900, 0),  # a DEFAULT event (the whole invoke): not an operator's
                     event(1, 8, 40, 0), event(2, 8, 3, 1), event(1, 8, 60, 0), event(2, 8, 1, 1),
                     event(1, 8, 50, 0), event(2, 8, 2, 1)])  # fmt: skip
    rows = parse_litert_events(data, tags.__getitem__)
    assert rows == [
        {"name": "0", "op_type": "Convolution (NHWC, F32) IGEMM", "provider": "xnnpack", "time_us": 50.0,
         "median_us": 50.0, "calls": 3},
        {"name": "1", "op_type": "Add (ND)", "provider": "xnnpack", "time_us": 2.0, "median_us": 2.0, "calls": 3},
    ]  # fmt: skip
    with pytest.raises(RuntimeError, match="event type 3 is unknown"):
        parse_litert_events(event(1, 3, 40, 0), tags.__getitem__)


def test_parse_ort_profile_averages_after_skipping_warmup() -> None:
    def event(name: str, dur: float, op: str) -> dict[str, Any]:
        return {"cat": "Node", "name": f"{name}_kernel_time", "dur": dur, "args": {"op_name": op}}

    events = [
        {"cat": "Session", "name": "model_run", "dur": 100},
        event("conv", 50, "Conv"),  # the cold first call, skipped
        {"cat": "Node", "name": "conv_fence_before", "dur": 0, "args": {"op_name": "Conv"}},
        event("relu", 9, "Relu"),
        event("conv", 10, "Conv"),
        event("relu", 3, "Relu"),
        event("conv", 14, "Conv"),
        event("relu", 5, "Relu"),
        event("conv", 30, "Conv"),  # one preempted call: the mean moves, the median does not
        event("relu", 4, "Relu"),
    ]
    rows = runner.parse_ort_profile(events, skip_first=1)
    assert rows == [
        {"name": "conv", "op_type": "Conv", "provider": None, "time_us": 18.0, "median_us": 14.0, "calls": 3},
        {"name": "relu", "op_type": "Relu", "provider": None, "time_us": 4.0, "median_us": 4.0, "calls": 3},
    ]


# --------------------------------------------------------------------------- inputs


def test_random_input_dtypes() -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.int8, np.uint8):
        x = runner.random_input((4096,), np.dtype(dtype), rng)
        info = np.iinfo(dtype)
        assert x.dtype == dtype
        assert x.min() == info.min and x.max() == info.max  # full range is hit with 4096 draws from 256 values
    f = runner.random_input((2, 3), np.dtype(np.float32), rng)
    assert f.dtype == np.float32 and f.shape == (2, 3)
    a = runner.random_input((8,), np.dtype(np.float32), np.random.default_rng(5))
    b = runner.random_input((8,), np.dtype(np.float32), np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_tflite_input_set_once_survives_repeated_invokes(models: dict[str, Path]) -> None:
    """The runner sets inputs once and only invokes in the loop; check the runtime keeps them (with XNNPACK)."""
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32), dtype=np.float32)
    reference = Interpreter(model_path=str(models["tflite"]))
    reference.allocate_tensors()
    reference.set_tensor(reference.get_input_details()[0]["index"], x)
    reference.invoke()
    expected = reference.get_tensor(reference.get_output_details()[0]["index"]).copy()

    backend = runner.TfliteBackend(threads=2, xnnpack=True)
    backend.load(str(models["tflite"]), models["tflite"].read_bytes())
    interpreter = backend._interpreter
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    for _ in range(25):
        backend.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- peak memory and ORT settings


def test_peak_rss_is_the_runners_own_not_its_big_parents(models: dict[str, Path]) -> None:
    """Linux carries ru_maxrss over fork and exec: a parent that peaked at 500 MB must not lend the runner its peak."""
    parent = (
        "import json, resource, subprocess, sys\n"
        "big = b'\\x01' * (500 << 20)  # 500 MiB, every page written\n"
        f"out = subprocess.run([sys.executable, '-m', 'devices.runner', {str(models['onnx'])!r}, *{FAST!r}],\n"
        "                     capture_output=True, text=True, check=True).stdout\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'parent_kib': peak, 'doc': json.loads(out)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", parent], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    doc = got["doc"]
    assert got["parent_kib"] > 500 * 1024
    assert doc["peak_rss_source"] == "VmHWM"
    assert 10_000 < doc["peak_rss_kib"] < got["parent_kib"] / 3  # a tiny conv in onnxruntime: tens of MiB
    assert doc["rss_before_load_kib"] <= doc["peak_rss_kib"]


def test_peak_rss_falls_back_to_ru_maxrss_without_proc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(runner, "PROC_SELF_STATUS", str(tmp_path / "absent"))
    kib, source = runner.peak_rss()
    assert source == "ru_maxrss" and kib > 0


def test_ort_settings_are_applied_and_read_back_from_the_session(models: dict[str, Path]) -> None:
    code, doc, _ = run_runner(str(models["onnx"]), *FAST)
    assert code == 0, doc["error"]
    assert doc["ort_settings"] == {
        "allow_spinning": True,
        "graph_optimization": "all",
        "execution_mode": "sequential",
        "intra_op_threads": 1,
        "inter_op_threads": 1,
    }
    code, doc, _ = run_runner(
        str(models["onnx"]), *FAST, "--threads", "2", "--ort-allow-spinning", "0",
        "--ort-execution-mode", "parallel", "--graph-optimization", "basic",
    )  # fmt: skip
    assert code == 0, doc["error"]
    assert doc["ort_settings"] == {
        "allow_spinning": False,
        "graph_optimization": "basic",
        "execution_mode": "parallel",
        "intra_op_threads": 2,
        "inter_op_threads": 1,
    }
    assert doc["protocol"]["ort_allow_spinning"] is False and doc["protocol"]["ort_execution_mode"] == "parallel"
    code, doc, _ = run_runner(str(models["tflite"]), *FAST)
    assert code == 0 and doc["ort_settings"] is None
