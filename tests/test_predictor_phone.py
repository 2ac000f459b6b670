"""`flopgap predictor build` on a phone that runs the stock ``benchmark_model`` or ``onnxruntime_perf_test``.

The phone is faked at the adb protocol boundary (tests/adb_endpoint.py); the binary it runs is a stand-in that really
runs each pushed model on this machine: tests/benchmark_model_stand_in.py with LiteRT, printing the real tool's
output and its csv op profile with XNNPACK's per-operator rows (their times split from the measured mean: LiteRT's
Python API has no per-op profiler), and tests/ort_perf_test_stand_in.py with ONNX Runtime and its own profiler.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devices.adb import AdbTransport
from devices.base import Device
from devices.binary import binary_backend
from devices.core.errors import FlopgapError
from devices.local import local_device
from devices.vocabulary import Format, Precision, RunnerKind, Runtime
from exporters.export import export
from harness.cli.main import app
from harness.measure import profile as profile_module
from harness.measure.spec import Protocol
from harness.predict.build import BuildPlan, BuildReporter, build_predictor
from harness.predict.dataset import SPACE, TRAINING_FAMILY, PredictContext, load_dataset
from harness.predict.extract import extract_kernels
from harness.predict.kernels import COMPUTE_TYPES, Kernel, KernelType
from harness.predict.predictor import KernelPredictor
from harness.predict.random_nets import Size
from harness.predict.tflite_profile import ProfiledOp, join_profile
from harness.store import Store
from harness.zoo.registry import resolve
from tests.adb_endpoint import AdbEndpoint, FakePhone

STAND_IN = Path(__file__).with_name("benchmark_model_stand_in.py")
PERF_TEST_STAND_IN = Path(__file__).with_name("ort_perf_test_stand_in.py")
MODELS = (resolve("mobilenet_v1", alpha=0.25, resolution=128), resolve("shufflenet_v2", scale=0.5))
HELD_OUT = resolve("mobilenet_v3_small", alpha=0.75)
FAST = Protocol(trials=2, warmup_runs=2, warmup_seconds=0.0, runs=5, min_seconds=0.02)
FAST_PROBES = Protocol(trials=1, warmup_runs=2, warmup_seconds=0.0, runs=5, min_seconds=0.01, parity=False)


@contextlib.contextmanager
def _phone(tmp_path: Path, runner: RunnerKind, program: Path) -> Iterator[tuple[FakePhone, Device]]:
    """A fake phone running ``program`` (a stand-in behind a #! line) as the prebuilt ``runner`` binary."""
    stand_in = tmp_path / runner.value
    stand_in.write_text(f"#!{sys.executable}\n" + program.read_text())
    stand_in.chmod(0o755)
    fake = FakePhone(tmp_path / "phone", run_pushed=True)
    with AdbEndpoint({"FAKE01": fake}) as endpoint:
        transport = AdbTransport("pixel", "FAKE01", "127.0.0.1", endpoint.port)
        yield fake, Device("pixel", transport, binary_backend(runner, stand_in))


@pytest.fixture()
def phone(tmp_path: Path) -> Iterator[tuple[FakePhone, Device]]:
    with _phone(tmp_path, RunnerKind.BENCHMARK_MODEL, STAND_IN) as running:
        yield running


def test_a_phone_running_benchmark_model_builds_a_litert_predictor_stand_in_binary_fake_phone_endpoint(
    phone: tuple[FakePhone, Device], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, device = phone
    # Every profile is learnt from whatever it sums to: on a loaded test machine the stand-in's profile of a small
    # net can stray from the net's timed p10 past what a build accepts (tests/test_predictor.py holds that check).
    monkeypatch.setattr(profile_module, "PROFILE_STRAY", math.inf)
    ctx = PredictContext("pixel", Runtime.LITERT)
    # a count bounds it, never this machine's load; one small training net is profiled inside the phone too
    plan = BuildPlan(ctx, budget_s=3600, seed=0, models=MODELS, train_nets=1, net_size=Size.SMALL,
                     probe_protocol=FAST_PROBES, model_protocol=FAST, max_probes=4)  # fmt: skip
    with Store(tmp_path / "phone.db") as store:
        result = build_predictor(plan, store, device, export, BuildReporter())
        dataset = load_dataset(store, result.context)
        points = store.points_frame()
        trials = store.trials_frame()
        profiles = store.op_profiles_frame()
        row = store.predictor(result.predictor_id)
    assert result.models == 2 and result.nets == 1 and result.probes_measured >= 3
    assert row is not None and row.device == "pixel"
    # Every point timed by the stock tool on the phone: summary-only trials (no raw samples), pooled into a median
    # (a probe under half a microsecond prints median=0, whole microseconds as the tool prints; its mean counts then).
    docs = [json.loads(d) for d in trials["runner_json"]]
    assert {d["tool"]["name"] for d in docs} == {"benchmark_model"}
    assert all(d["samples_kind"] == "summary" and d["summary_ns"]["mean"] > 0 for d in docs)
    assert (points["status"] == "done").all() and (points["median_ms"] > 0).all()
    assert points["runner_version"].str.startswith("benchmark_model@").all()  # the binary's hash keys the points
    # Pushed once each, content-addressed: the binary, every probe and model file.
    sent = Counter(fake.sends)
    assert sent and max(sent.values()) == 1
    assert sum(s.endswith("/benchmark_model") for s in sent) == 1
    assert len([s for s in sent if s.endswith(".tflite")]) == len(points)
    # Only the whole models' profile pass (zoo models and the training net) asks for the op profile, after their
    # timed trials.
    profiled = [c for c in fake.commands if "--enable_op_profiling=true" in c]
    assert len(profiled) == len(MODELS) + 1
    # Each zoo model's op profile (XNNPACK's operators, the delegate's row beside them) joined to its kernels:
    # every convolution the model runs is timed inside it, as a row of its family.
    model_points = points[points["family"].isin([m.family for m in MODELS])]
    (net,) = plan.measured_models()[len(MODELS) :]
    net_point = int(points.loc[points["model_label"] == net.label, "point_id"].iloc[0])
    assert set(profiles["point_id"]) == {*model_points["point_id"], net_point}
    assert "TfLiteXNNPackDelegate" in set(profiles["op_type"])
    for m in MODELS:
        pid = int(model_points.loc[model_points["model_label"] == m.label, "point_id"].iloc[0])
        kernels = extract_kernels(export(m, Format.TFLITE, Precision.FP32).path, Runtime.LITERT)
        rows = [r for r in dataset.rows if r.point_id == pid]
        assert {r.source for r in rows} == {m.family} and all(r.time_us > 0 for r in rows)
        per_type = Counter(r.kernel.type for r in rows)
        for conv in (KernelType.DEPTHWISE_CONV, KernelType.POINTWISE_CONV):
            assert per_type[conv] == sum(k.type is conv for k in kernels) > 0
        # the delegated operators' time is all on kernels, nothing timed dropped; the convolutions' and fully
        # connected layers' are rows (memory-bound operators in place are left to their probes)
        timed = profiles[(profiles["point_id"] == pid) & (profiles["op_type"] != "TfLiteXNNPackDelegate")]
        _all_on_kernels_the_compute_ones_rows(timed, kernels, rows)
    v1 = [r for r in dataset.rows if r.source == MODELS[0].family]
    assert Counter(r.kernel.type for r in v1)[KernelType.DEPTHWISE_CONV] == 13  # MobileNetV1's 13 separable blocks
    assert {r.source for r in dataset.rows} == {SPACE, MODELS[0].family, MODELS[1].family, TRAINING_FAMILY}
    # The training net's ops (SE, concatenations, its grouped convs) are timed inside it as well, none dropped.
    net_rows = [r for r in dataset.rows if r.point_id == net_point]
    net_timed = profiles[(profiles["point_id"] == net_point) & (profiles["op_type"] != "TfLiteXNNPackDelegate")]
    assert {r.source for r in net_rows} == {TRAINING_FAMILY}
    _all_on_kernels_the_compute_ones_rows(net_timed, _tflite_kernels(net), net_rows)
    # The predictor stored for the phone prices a model it never saw.
    predictor = KernelPredictor.from_json(row.model)
    held_out = extract_kernels(export(HELD_OUT, Format.TFLITE, Precision.FP32).path, Runtime.LITERT)
    prediction = predictor.predict(held_out)
    assert math.isfinite(prediction.total_ms) and prediction.total_ms > 0
    assert (prediction.kernel_us > 0).all()


def _tflite_kernels(model: Any) -> list[Kernel]:
    return extract_kernels(export(model, Format.TFLITE, Precision.FP32).path, Runtime.LITERT)


def _all_on_kernels_the_compute_ones_rows(timed: Any, kernels: list[Kernel], rows: list[Any]) -> None:
    """Every operator's time of a stored profile lands on a kernel, and the rows are its compute kernels' times."""
    joined = join_profile([ProfiledOp(t, us) for t, us in zip(timed["op_type"], timed["time_us"], strict=True)],
                          kernels)  # fmt: skip
    assert sum(t for _, t in joined) == pytest.approx(timed["time_us"].sum(), rel=1e-6)
    assert {r.kernel.type for r in rows} <= COMPUTE_TYPES
    compute = sum(t for k, t in joined if k.type in COMPUTE_TYPES)
    assert sum(r.time_us for r in rows) == pytest.approx(compute, rel=1e-6) and compute > 0


def test_a_phone_running_onnxruntime_perf_test_is_refused_an_ort_build_before_measuring_fake_phone_endpoint(
    tmp_path: Path,
) -> None:
    """ONNX Runtime's stock tool cannot return the graph ORT optimized on the phone, and the host's graph is never its
    stand-in (its kernels are x86's): the build is refused in one line before anything is pushed or measured."""
    ctx = PredictContext("pixel", Runtime.ONNXRUNTIME)
    plan = BuildPlan(ctx, budget_s=12, seed=0, models=(), train_nets=0, probe_protocol=FAST_PROBES)
    perf_test = _phone(tmp_path, RunnerKind.ONNXRUNTIME_PERF_TEST, PERF_TEST_STAND_IN)
    with perf_test as (fake, device), Store(tmp_path / "ort.db") as store:
        with pytest.raises(FlopgapError, match="cannot return ONNX Runtime's optimized graph") as refused:
            build_predictor(plan, store, device, export, BuildReporter())
        assert store.points_frame().empty
    assert "\n" not in str(refused.value) and 'runner = "agent"' in str(refused.value)
    assert not any("onnxruntime_perf_test" in s for s in fake.sends)


def _kernel(op_type: str, kind: KernelType, inputs: int = 1, cin: int = 8, cout: int = 8) -> Kernel:
    return Kernel(name=op_type, type=kind, op_type=op_type, inputs=inputs, cin=cin, cout=cout)


def test_an_op_profile_joins_operators_to_kernels_in_run_order() -> None:
    kernels = [
        _kernel("CONV_2D", KernelType.DENSE_CONV),
        _kernel("RESHAPE", KernelType.RESHAPE),
        _kernel("CONCATENATION", KernelType.CONCAT, inputs=3),
        _kernel("DEPTHWISE_CONV_2D", KernelType.DEPTHWISE_CONV),
        _kernel("TRANSPOSE", KernelType.TRANSPOSE),  # no operator timed it: no row, the join goes on past it
        _kernel("SPLIT", KernelType.SPLIT, cin=16, cout=8),
        _kernel("SLICE", KernelType.SPLIT, cin=16, cout=8),  # one output: one slice
        _kernel("MEAN", KernelType.GLOBAL_POOL),
    ]
    rows = [
        ProfiledOp("TfLiteXNNPackDelegate", 100.0),  # the sum of the operators below: no kernel's own time
        ProfiledOp("Convolution (NHWC, F32) IGEMM", 40.0),
        ProfiledOp("Copy (NC, X32)", 0.5),  # the reshape
        ProfiledOp("Copy (NC, X32)", 1.0),  # the concatenation's three copies
        ProfiledOp("Copy (NC, X32)", 2.0),
        ProfiledOp("Copy (NC, X32)", 3.0),
        ProfiledOp("Convolution (NHWC, F32) DWConv", 20.0),
        ProfiledOp("Slice (ND, X32)", 4.0),  # the split's two slices
        ProfiledOp("Slice (ND, X32)", 5.0),
        ProfiledOp("Slice (ND, X32)", 7.0),  # the slice's own
        ProfiledOp("SOFTMAX", 0.5),  # a builtin op no kernel nearby runs: left out
        ProfiledOp("Global Average Pooling (NWC, F32)", 6.0),
    ]
    joined = [(k.op_type, t) for k, t in join_profile(rows, kernels)]
    assert joined == [("CONV_2D", 40.0), ("RESHAPE", 0.5), ("CONCATENATION", 6.0), ("DEPTHWISE_CONV_2D", 20.0),
                      ("SPLIT", 9.0), ("SLICE", 7.0), ("MEAN", 6.0)]  # fmt: skip
    # the builtin kernels' rows (no delegate) join by their own op names
    builtin = [ProfiledOp("CONV_2D", 7.0), ProfiledOp("RESHAPE", 1.0), ProfiledOp("CONCATENATION", 2.0)]
    assert [(k.op_type, t) for k, t in join_profile(builtin, kernels)] == [
        ("CONV_2D", 7.0), ("RESHAPE", 1.0), ("CONCATENATION", 2.0)]  # fmt: skip


def test_a_pointwise_conv_xnnpack_runs_as_a_fully_connected_gemm_joins_to_its_own_kernel() -> None:
    """XNNPACK (LiteRT 2.3.0's, here) runs a 1x1 stride-1 CONV_2D as ``Fully Connected (NC, F32) GEMM``: the first
    rows of MobileNetV2 0.35's op profile as LiteRT's profiler printed them on the development machine. Read as
    FULLY_CONNECTED only, each GEMM row found no kernel and the next DWConv row took the skipped pointwise conv."""
    kernels = [
        _kernel("CONV_2D", KernelType.DENSE_CONV),
        _kernel("DEPTHWISE_CONV_2D", KernelType.DEPTHWISE_CONV),
        _kernel("CONV_2D", KernelType.POINTWISE_CONV),
        _kernel("CONV_2D", KernelType.POINTWISE_CONV),
        _kernel("DEPTHWISE_CONV_2D", KernelType.DEPTHWISE_CONV),
        _kernel("CONV_2D", KernelType.POINTWISE_CONV),
        _kernel("FULLY_CONNECTED", KernelType.FULLY_CONNECTED),
    ]
    rows = [
        ProfiledOp("Convolution (NHWC, F32) IGEMM", 80.45),
        ProfiledOp("Convolution (NHWC, F32) DWConv", 70.4),
        ProfiledOp("Fully Connected (NC, F32) GEMM", 42.95),
        ProfiledOp("Fully Connected (NC, F32) GEMM", 64.3),
        ProfiledOp("Convolution (NHWC, F32) DWConv", 42.3),
        ProfiledOp("Fully Connected (NC, F32) GEMM", 25.3),
        ProfiledOp("Fully Connected (NC, F32) GEMM", 88.0),  # the classifier
    ]
    joined = [(k.type, t) for k, t in join_profile(rows, kernels)]
    assert joined == [
        (KernelType.DENSE_CONV, 80.45), (KernelType.DEPTHWISE_CONV, 70.4), (KernelType.POINTWISE_CONV, 42.95),
        (KernelType.POINTWISE_CONV, 64.3), (KernelType.DEPTHWISE_CONV, 42.3), (KernelType.POINTWISE_CONV, 25.3),
        (KernelType.FULLY_CONNECTED, 88.0),
    ]  # fmt: skip


def test_a_probe_the_runtime_times_with_another_version_fails_as_in_a_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device's facts (read when the build starts) name an older onnxruntime than the runner then loads, as after
    an upgrade meanwhile: the sweep's version check fails each probe, and nothing of the other version is stored."""
    device = local_device()
    real = device.facts

    def facts_before_the_upgrade() -> dict[str, Any]:
        out = real()
        return {**out, "runtimes": {**out.get("runtimes", {}), "onnxruntime": "1.0.0"}}

    monkeypatch.setattr(device, "facts", facts_before_the_upgrade)
    ctx = PredictContext("local", Runtime.ONNXRUNTIME)
    plan = BuildPlan(ctx, budget_s=3600, seed=0, models=(), train_nets=0, probe_protocol=FAST_PROBES, max_probes=2)
    with Store(tmp_path / "b.db") as store:
        with pytest.raises(FlopgapError) as refused:  # every probe failed: a predictor of nothing is never stored
            build_predictor(plan, store, device, export, BuildReporter())
        points = store.points_frame()
        trials = store.trials_frame()
        assert store.predictors_frame().empty
    assert str(refused.value).startswith("predictor build on local: no kernel was measured, so no predictor is stored")
    assert len(points) >= 1 and set(points["status"]) == {"failed"} and trials.empty
    assert set(points["runtime_version"]) == {"1.0.0"}
    reason = points["failure_reason"].iloc[0]
    assert (
        f"the runtime reports version {__import__('onnxruntime').__version__}, but the device's facts said 1.0.0"
        in reason
    )


def test_a_runtime_the_phones_binary_cannot_time_is_refused_in_one_line_fake_phone_endpoint(tmp_path: Path) -> None:
    with AdbEndpoint({"FAKE01": FakePhone(tmp_path / "phone")}) as endpoint:
        inventory = tmp_path / "devices.toml"
        inventory.write_text(
            f'[devices.pixel7]\ntransport = "adb"\nserial = "FAKE01"\nserver = "127.0.0.1:{endpoint.port}"\n'
            f'runner = "benchmark_model"\nbinary = "{tmp_path / "benchmark_model"}"\n'
        )
        args = ["predictor", "build", "--device", "pixel7", "--runtime", "onnxruntime", "--budget", "1m",
                "--devices", str(inventory), "--db", str(tmp_path / "r.db")]  # fmt: skip
        res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == (
        "error: device 'pixel7' runs benchmark_model, which cannot time onnx models; build the onnxruntime predictor "
        "on a device whose runner can, or pick its runtime with --runtime"
    )
