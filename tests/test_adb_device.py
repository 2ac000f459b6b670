"""The adb transport end to end over the real adb wire protocol, against a fake phone at the protocol boundary, with
the benchmark-binary backends and flopgap's own runner.

tests/adb_endpoint.py is a fake adb server on 127.0.0.1; adbutils (and, where installed, Debian's ``adb``
client) talk to it over TCP exactly as they would to a real server with a phone attached.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.adb import AdbTransport
from devices.agent import AgentBackend
from devices.base import Device, TrialRequest
from devices.binary import affinity_mask, binary_backend
from devices.errors import (
    BinaryMissing,
    DeviceOffline,
    DeviceUnauthorized,
    DeviceUnreachable,
    NoSpaceLeft,
    RunnerMissing,
    TrialFailed,
    UnknownSerial,
    WrongABI,
)
from devices.vocabulary import RunnerKind
from tests.adb_endpoint import AdbEndpoint, FakePhone
from tests.environment import Need, needs

AARCH64, X86_64 = 183, 62


def _elf(path: Path, machine: int, size: int = 4096) -> Path:
    head = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HH", 3, machine)
    path.write_bytes(head + bytes(size - len(head)))
    return path


@pytest.fixture()
def phone(tmp_path: Path) -> FakePhone:
    return FakePhone(tmp_path / "phone")


@pytest.fixture()
def endpoint(phone: FakePhone, tmp_path: Path) -> Iterator[AdbEndpoint]:
    others = {"OFF01": FakePhone(tmp_path / "off", state="offline"),
              "UNAUTH01": FakePhone(tmp_path / "unauth", state="unauthorized")}  # fmt: skip
    with AdbEndpoint({"FAKE01": phone, **others}) as ep:
        yield ep


def _device(
    endpoint: AdbEndpoint,
    tmp_path: Path,
    serial: str = "FAKE01",
    binary: Path | None = None,
    runner: RunnerKind = RunnerKind.BENCHMARK_MODEL,
    affinity: list[int] | None = None,
) -> Device:
    binary = binary or _elf(tmp_path / "benchmark_model", AARCH64)
    transport = AdbTransport("pixel", serial, "127.0.0.1", endpoint.port)
    return Device("pixel", transport, binary_backend(runner, binary, affinity))


def test_adb_push_fake_phone_endpoint_pushes_once_and_reuses_by_hash(
    endpoint: AdbEndpoint, phone: FakePhone, tmp_path: Path
) -> None:
    dev = _device(endpoint, tmp_path)
    assert isinstance(dev, Device)
    remote = dev.push_binary()
    assert remote == "/data/local/tmp/flopgap/bin/benchmark_model"
    assert phone.sends == [remote] and phone.data_bytes == 4096
    assert phone.modes[remote] == 0o755
    assert any(c.startswith("sha256sum ") for c in phone.commands)
    # A new session finds the same bytes on the phone: hash check, no DATA sent.
    again = _device(endpoint, tmp_path)
    assert again.push_binary() == remote
    assert phone.sends == [remote] and phone.data_bytes == 4096
    model = tmp_path / "mbv1.tflite"
    model.write_bytes(b"TFL3" * 100)
    assert dev.push(model) == "/data/local/tmp/flopgap/mbv1.tflite"
    assert dev.push(model) == "/data/local/tmp/flopgap/mbv1.tflite"
    assert phone.sends.count("/data/local/tmp/flopgap/mbv1.tflite") == 1
    dev.cleanup()
    assert not phone.path("/data/local/tmp/flopgap/mbv1.tflite").exists()
    assert phone.path(remote).exists()  # the runner stays for the next session


def test_adb_run_fake_phone_endpoint_taskset_and_parsed_latency(
    endpoint: AdbEndpoint, phone: FakePhone, tmp_path: Path
) -> None:
    dev = _device(endpoint, tmp_path, affinity=[4, 5, 6, 7])
    model = tmp_path / "my model.tflite"  # a space: every argument must arrive quoted
    model.write_bytes(b"TFL3" * 10)
    result = dev.measure(model, TrialRequest(threads=4, runs=50, xnnpack=False, profile=True))
    run = next(c for c in phone.commands if c.startswith("taskset "))
    assert run.startswith("taskset f0 /data/local/tmp/flopgap/bin/benchmark_model ")
    assert "'--graph=/data/local/tmp/flopgap/my model.tflite'" in run
    assert "--num_threads=4" in run and "--use_xnnpack=false" in run and "--enable_op_profiling=true" in run
    assert result.samples_ns == () and result.summary is not None
    s = result.summary  # the captured log: count=50 ... min=2727568 max=3189954 avg=2.95034e+06 std=109798
    assert (s.count, s.min, s.max, s.mean, s.std) == (50, 2727568000, 3189954000, 2950340000, 109798000)
    assert result.n == 50 and result.centre_ns == 2950340000  # this build prints no median: the mean stands in
    assert result.init_ns == 17187000 and result.first_inference_ns == 3512391000
    assert result.affinity_mask == "f0" and result.threads == 4
    assert result.tool is not None and result.tool.argv[:2] == ("taskset", "f0")
    # op profile: the CSV was written on the phone, pulled and parsed
    assert result.ops is not None and len(result.ops) == 8
    assert (result.ops[1].op_type, result.ops[1].time_us) == ("DEPTHWISE_CONV_2D", 49870.0)
    before = result.state_before
    assert before is not None
    assert before["cpufreq"]["policy6"] == {
        "cpus": [6, 7],
        "cur_khz": 2850000,
        "max_khz": 2850000,
        "governor": "schedutil",
    }
    assert before["temperatures_c"] == {"BIG": 41.0, "battery": 31.2}
    assert before["battery"] == {"temperature_c": 31.2, "level": 87, "charging": True, "powered_by": ["USB"]}


def test_adb_benchmark_model_that_ignores_a_flag_fails_the_trial_fake_phone_endpoint(
    endpoint: AdbEndpoint, phone: FakePhone, tmp_path: Path
) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3" * 10)
    dev = _device(endpoint, tmp_path)
    assert dev.measure(model, TrialRequest(threads=2, runs=50)).threads == 2  # a build that obeys: no complaint
    phone.ignored_flags = {"--num_threads"}  # an old build: runs its default 4 threads whatever it is told
    with pytest.raises(TrialFailed) as caught:
        dev.measure(model, TrialRequest(threads=2, runs=50))
    assert "did not run as asked: --num_threads=2 but it echoed Num threads: [4]" in str(caught.value)


def test_adb_ort_fake_phone_endpoint_gives_raw_samples(endpoint: AdbEndpoint, tmp_path: Path) -> None:
    binary = _elf(tmp_path / "onnxruntime_perf_test", AARCH64)
    dev = _device(endpoint, tmp_path, binary=binary, runner=RunnerKind.ONNXRUNTIME_PERF_TEST)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    result = dev.measure(model, TrialRequest(threads=2, runs=10))
    assert result.tool is not None and result.tool.argv[:10] == (
        "/data/local/tmp/flopgap/bin/onnxruntime_perf_test", "-I", "-m", "times", "-r", "10", "-x", "2", "-e", "cpu",
    )  # fmt: skip
    assert result.tool.argv[10:14] == ("-o", "99", "-C", "session.intra_op.allow_spinning|1")  # ORT's defaults
    assert result.details["ort_settings"]["graph_optimization"] == "all"
    assert len(result.samples_ns) == 10 and result.samples_ns[0] == 61200000
    assert result.summary is not None and (result.summary.p50, result.summary.mean) == (60356200, 62293500)
    assert result.record()["samples_kind"] == "raw"


def test_adb_ort_perf_test_op_profile_is_pulled_parsed_and_stored_fake_phone_endpoint(
    endpoint: AdbEndpoint, phone: FakePhone, tmp_path: Path
) -> None:
    """``onnxruntime_perf_test -p``: the phone writes ORT's trace (a real one of tests/data's shuffle block); it is
    pulled, read into per-node rows and stored as a local ORT profile is, mapped to the exported graph."""
    import hashlib

    from devices.vocabulary import Format, Precision
    from exporters.artifact import Artifact
    from harness.measure.profile import ORT_KIND, profile_onnx, store_profile
    from harness.measure.spec import Protocol
    from harness.store import Store
    from tests.adb_endpoint import DATA

    binary = _elf(tmp_path / "onnxruntime_perf_test", AARCH64)
    dev = _device(endpoint, tmp_path, binary=binary, runner=RunnerKind.ONNXRUNTIME_PERF_TEST)
    model = DATA / "ort_profile_shuffle_block.onnx"
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    art = Artifact(model, Format.ONNX, Precision.FP32, sha, "shuffle_block", (), (1, 8, 16, 16), "NCHW", {}, None, None,
                   model.stat().st_size)  # fmt: skip
    assert dev.profiles_ops(Format.ONNX)
    profile = profile_onnx(dev, art, 1, Protocol(runs=10))
    run = next(c for c in phone.commands if "onnxruntime_perf_test" in c and " -p " in c)
    assert "-p /data/local/tmp/flopgap/ort_profile_shuffle_block.onnx.profile" in run
    assert profile.kind == ORT_KIND
    rows = {op.node_name: op for op in profile.ops}
    # ORT's names mapped back to the exported graph: the fused conv+relu to the Conv that runs it
    assert list(rows) == ["node_conv2d", "node_conv2d_1", "ReorderOutput", "node_view", "node_transpose",
                          "node__unsafe_view"]  # fmt: skip
    assert rows["node_transpose"].time_us == 3 and rows["node_transpose"].calls == 3  # the median of 4, 3, 3 us
    assert profile.notes["runtime_only_nodes"] == ["ReorderOutput"]
    with Store(tmp_path / "r.db") as store:
        run_id = store.start_run("profile", "")
        store.upsert_device("pixel", "adb", {})
        store.upsert_artifact(art, macs=None, params_count=None, family=None, label=art.model)  # not a zoo model
        point = store.ensure_point(run_id, sha, "pixel", "onnxruntime", 1)
        assert store_profile(store, point, profile) == 6
        stored = store.op_profiles_frame([point]).set_index("node_name")
        assert stored.loc["node_transpose", "time_us"] == 3 and stored.loc["node_transpose", "op_type"] == "Transpose"
    dev.cleanup()
    assert not any(phone.root.rglob("*.profile_*.json"))  # the trace was removed with the session's files


def test_adb_binary_cannot_time_the_other_format_fake_phone_endpoint(endpoint: AdbEndpoint, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(TrialFailed, match=r"runs benchmark_model, which times \.tflite models, not m\.onnx"):
        _device(endpoint, tmp_path).measure(model, TrialRequest())


def test_runner_over_adb_python_mapped_to_this_interpreter_fake_phone_endpoint(
    endpoint: AdbEndpoint, phone: FakePhone, tmp_path: Path
) -> None:
    """flopgap's own runner on a phone (Termux's Python): pushed over sync, started through the adb shell."""
    import onnxruntime  # type: ignore[import-untyped]
    import torch

    model = tmp_path / "tiny.onnx"
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)).eval()
    torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), str(model), dynamo=True)
    transport = AdbTransport("termux", "FAKE01", "127.0.0.1", endpoint.port)
    dev = Device("termux", transport, AgentBackend(phone.python, affinity=None))
    result = dev.measure(model, TrialRequest(threads=1, warmup_runs=1, warmup_seconds=0, runs=5, min_seconds=0))
    assert result.runtime == "onnxruntime" and result.runtime_version == onnxruntime.__version__
    assert len(result.samples_ns) >= 5 and min(result.samples_ns) > 0 and result.summary is None
    runs = [c for c in phone.commands if c.startswith(phone.python + " ")]
    assert runs[-1].startswith(f"{phone.python} /data/local/tmp/flopgap/runner.py /data/local/tmp/flopgap/tiny.onnx")
    assert phone.path("/data/local/tmp/flopgap/runner.py").read_bytes() == Path("devices/runner.py").read_bytes()
    facts = dev.facts()
    assert (facts["model"], facts["abi"]) == ("Pixel 7", "arm64-v8a")  # the phone's, from getprop
    assert facts["runtimes"]["onnxruntime"] == onnxruntime.__version__  # the runner's, from --facts
    dev.cleanup()
    assert not phone.path("/data/local/tmp/flopgap/tiny.onnx").exists()


def test_runner_over_adb_without_python_is_runner_missing_fake_phone_endpoint(
    endpoint: AdbEndpoint, tmp_path: Path
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    dev = Device("termux", AdbTransport("termux", "FAKE01", "127.0.0.1", endpoint.port), AgentBackend("/no/python3"))
    with pytest.raises(RunnerMissing, match="device 'termux': '/no/python3' not found there"):
        dev.measure(model, TrialRequest())


def test_adb_facts_fake_phone_endpoint(endpoint: AdbEndpoint, tmp_path: Path) -> None:
    facts = _device(endpoint, tmp_path).facts()
    assert (facts["model"], facts["soc"], facts["os"], facts["abi"], facts["cores"]) == (
        "Pixel 7", "GS201", "Android 14", "arm64-v8a", 8,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("serial", "error", "hint"),
    [
        ("OFF01", DeviceOffline, "adb reconnect"),
        ("UNAUTH01", DeviceUnauthorized, "Allow USB debugging"),
        ("NOPE", UnknownSerial, "attached: FAKE01, OFF01, UNAUTH01"),
    ],
)
def test_adb_state_errors_fake_phone_endpoint(
    endpoint: AdbEndpoint, tmp_path: Path, serial: str, error: type[Exception], hint: str
) -> None:
    with pytest.raises(error) as info:
        _device(endpoint, tmp_path, serial=serial).run(["getprop", "ro.product.model"], timeout=10)
    assert hint in str(info.value) and "\n" not in str(info.value) and serial in str(info.value)


def test_adb_wrong_abi_fake_phone_endpoint(endpoint: AdbEndpoint, phone: FakePhone, tmp_path: Path) -> None:
    dev = _device(endpoint, tmp_path, binary=_elf(tmp_path / "benchmark_model", X86_64))
    with pytest.raises(WrongABI, match="built for x86_64 but the phone's ABI is arm64-v8a") as info:
        dev.push_binary()
    assert "\n" not in str(info.value) and phone.sends == []


def test_adb_binary_missing(endpoint: AdbEndpoint, tmp_path: Path) -> None:
    with pytest.raises(BinaryMissing, match="not found on this machine"):
        _device(endpoint, tmp_path, binary=tmp_path / "nope" / "benchmark_model").push_binary()


def test_adb_no_space_fake_phone_endpoint(endpoint: AdbEndpoint, phone: FakePhone, tmp_path: Path) -> None:
    phone.free_bytes = 1000
    with pytest.raises(NoSpaceLeft) as info:
        _device(endpoint, tmp_path).push_binary()
    assert "only 0.0 MB are free" in str(info.value) and "\n" not in str(info.value)
    # Without a usable df, the device's own FAIL message ("No space left on device") is what tells.
    phone._cmd_df = lambda rest: (b"", b"df: unknown\n", 1)  # type: ignore[method-assign]
    with pytest.raises(NoSpaceLeft, match="no space left on the phone"):
        _device(endpoint, tmp_path).push_binary()


def test_adb_server_unreachable_fails_with_one_line_and_starts_no_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    called = tmp_path / "adb-was-run"
    fake_adb = tmp_path / "adb"  # adbutils runs `adb start-server` when the server does not answer: record it
    fake_adb.write_text(f'#!/bin/sh\necho "$@" >> {called}\n')
    fake_adb.chmod(0o755)
    monkeypatch.setenv("ADBUTILS_ADB_PATH", str(fake_adb))
    dev = Device("pixel", AdbTransport("pixel", "FAKE01", "127.0.0.1", port), AgentBackend("python3"))
    with pytest.raises(DeviceUnreachable, match=f"adb server 127.0.0.1:{port} unreachable") as caught:
        dev.facts()
    assert "\n" not in str(caught.value)
    assert not called.exists(), f"adb was started behind our back: adb {called.read_text()}"


def test_affinity_mask() -> None:
    assert affinity_mask([0]) == "1" and affinity_mask([4, 5, 6, 7]) == "f0" and affinity_mask([0, 2, 9]) == "205"


@needs(Need.ADB, None if shutil.which("adb") else "no adb client on PATH (apt-get install adb)")
def test_debian_adb_client_speaks_to_fake_phone_endpoint(
    endpoint: AdbEndpoint, phone: FakePhone, tmp_path: Path
) -> None:
    base = ["adb", "-H", "127.0.0.1", "-P", str(endpoint.port), "-s", "FAKE01"]
    out = subprocess.run([*base, "shell", "getprop", "ro.product.model"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Pixel 7"
    src = tmp_path / "hello.bin"
    src.write_bytes(b"hello phone" * 1000)
    push = subprocess.run(
        [*base, "push", str(src), "/data/local/tmp/hello.bin"], capture_output=True, text=True, timeout=20
    )
    assert push.returncode == 0, push.stderr + push.stdout
    assert phone.path("/data/local/tmp/hello.bin").read_bytes() == src.read_bytes()
