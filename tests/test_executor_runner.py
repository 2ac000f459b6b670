"""ExecuTorch's ``executor_runner`` as a benchmark binary: the pure ETDump and log parsers on captured output, and the
backend end to end on the fake adb phone with a stand-in binary (``tests/executor_runner_standin.py``) that really
runs the program with this machine's ExecuTorch and writes the real ETDump its event tracer recorded."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.adb import AdbTransport
from devices.base import Device, TrialRequest
from devices.binary import binary_backend
from devices.errors import TrialFailed
from devices.etdump_timing import (
    etdump_document,
    missing_flag,
    parse_etdump,
    parse_etdump_json,
    parse_executor_runner_log,
)
from devices.parsers import ParseError
from devices.vocabulary import Format, Precision, RunnerKind
from exporters.export import export
from harness.cli.main import app
from harness.store import Store
from harness.zoo.registry import resolve
from tests.adb_endpoint import DATA, AdbEndpoint, FakePhone
from tests.exporter_blocks import register

register()

STANDIN = Path(__file__).with_name("executor_runner_standin.py")
ETDUMP = DATA / "etdump_conv3x3_xnnpack_3runs.etdump"
ETDUMP_JSON = DATA / "etdump_conv3x3_xnnpack_3runs.json"
# conv3x3 lowered to XNNPACK runs three delegate ops per execution: NCHW→NHWC, the conv, NHWC→NCHW.
XNNPACK_OPS_PER_RUN = 3


# --- pure parsers, on captured output -------------------------------------------------------------------------------


def test_etdump_json_gives_one_execute_time_per_run() -> None:
    timing = parse_etdump_json(ETDUMP_JSON.read_text())
    assert timing.executions_ns == (146939, 104996, 103414)  # Method::execute of the 3 Execute blocks
    assert timing.load_method_ns == 68632
    assert timing.delegate_events == 3 * XNNPACK_OPS_PER_RUN


def test_etdump_bytes_decode_to_the_same_document() -> None:
    """The binary ETDump, read with the installed ExecuTorch's schema, is the captured JSON."""
    doc = etdump_document(ETDUMP.read_bytes())
    assert doc == json.loads(ETDUMP_JSON.read_text())
    assert parse_etdump(doc) == parse_etdump_json(ETDUMP_JSON.read_text())


def test_etdump_tick_scale_applies_to_every_span() -> None:
    timing = parse_etdump_json(ETDUMP_JSON.read_text(), tick_ns=1000 / 24)  # a 24 MHz tick counter
    assert timing.executions_ns[0] == round(146939 * 1000 / 24)


def test_etdump_without_execute_blocks_says_so() -> None:
    doc = json.loads(ETDUMP_JSON.read_text())
    doc["run_data"] = doc["run_data"][:1]
    with pytest.raises(ParseError, match=r"no 'Execute' run blocks \(1 other blocks\)"):
        parse_etdump(doc)


def test_etdump_block_without_its_execute_event_is_an_error() -> None:
    doc = json.loads(ETDUMP_JSON.read_text())
    doc["run_data"][2]["events"] = doc["run_data"][2]["events"][:-1]
    with pytest.raises(ParseError, match="ETDump run block 2 has 0 'Method::execute' events"):
        parse_etdump(doc)


def test_etdump_that_is_not_one_fails_in_one_line() -> None:
    with pytest.raises(ParseError, match="no 'run_data' list"):
        parse_etdump_json('{"version": 0}')
    with pytest.raises(ParseError, match=r"^the ETDump is not JSON \(Expecting value at line 1\)$"):
        parse_etdump_json("P50 Latency: 1 s")
    with pytest.raises(ParseError, match=r"^the ETDump is not an ETDump document \(a JSON object\)$"):
        parse_etdump_json("[]")
    with pytest.raises(ParseError, match=r"^the ETDump \(4096 bytes\) does not decode"):
        etdump_document(bytes(4096))


def test_executor_runner_log_captured_on_arm64() -> None:
    """A published run of the XNNPACK build with ETDump on an Arm64 board (tests/data/README.md)."""
    log = parse_executor_runner_log((DATA / "executor_runner_xnnpack_etdump_arm64.txt").read_text())
    assert log is not None and (log.executions, log.total_ms) == (1, 2.904883)
    assert parse_executor_runner_log("I 00:00:00.1 executorch:method.cpp:793] Loading method: forward.") is None


def test_missing_flag_names_what_the_build_lacks() -> None:
    # gflags' message for a flag the binary was not built with (ET_EVENT_TRACER_ENABLED off: no --etdump_path)
    assert missing_flag("ERROR: unknown command line flag 'etdump_path'\n") == "etdump_path"
    assert missing_flag("ERROR: unknown command line flag 'cpu_threads'") == "cpu_threads"
    assert missing_flag("ERROR: unknown command line flag 'graph'") is None


# --- the backend on the fake phone, with the stand-in binary --------------------------------------------------------


@pytest.fixture(scope="module")
def pte(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("pte-executor-runner")
    return export(resolve("conv3x3", cin=16, cout=16, h=16, w=16), Format.PTE, Precision.FP32, cache_dir=cache).path


@pytest.fixture()
def phone(tmp_path: Path) -> FakePhone:
    return FakePhone(tmp_path / "phone")


@pytest.fixture()
def endpoint(phone: FakePhone) -> Iterator[AdbEndpoint]:
    with AdbEndpoint({"FAKE01": phone}) as ep:
        yield ep


def _standin(tmp_path: Path, name: str = "executor_runner") -> Path:
    binary = tmp_path / name
    shutil.copy(STANDIN, binary)
    return binary


def test_executor_runner_standin_on_fake_phone_gives_one_sample_per_execution(
    endpoint: AdbEndpoint, phone: FakePhone, pte: Path, tmp_path: Path
) -> None:
    transport = AdbTransport("pixel", "FAKE01", "127.0.0.1", endpoint.port)
    dev = Device("pixel", transport, binary_backend(RunnerKind.EXECUTOR_RUNNER, _standin(tmp_path), [6, 7]))
    assert dev.can_run(Format.PTE) and not dev.can_run(Format.TFLITE) and not dev.profiles_ops(Format.PTE)
    request = TrialRequest(threads=2, warmup_runs=3, warmup_seconds=0.5, runs=7, min_seconds=1.0)
    result = dev.measure(pte, request)
    run = next(c for c in phone.commands if "/bin/executor_runner " in c)
    assert run == (
        f"taskset c0 /data/local/tmp/flopgap/bin/executor_runner --model_path=/data/local/tmp/flopgap/{pte.name} "
        f"--num_executions=11 --etdump_path=/data/local/tmp/flopgap/{pte.name}.etdump --cpu_threads=2"
    )
    assert result.runtime == "executorch" and result.threads == 2 and result.affinity == (6, 7)
    # 1 first inference + 3 warm-up + 7 timed executions, each an Execute block of the real ETDump
    assert len(result.samples_ns) == 7 and result.warmup_runs == 3 and result.summary is None
    assert all(s > 0 for s in result.samples_ns) and result.first_inference_ns and result.init_ns
    assert result.details["delegate_events"] == 11 * XNNPACK_OPS_PER_RUN
    assert result.details["etdump_bytes"] > 1000
    assert result.details["not_applied"] == {"warmup_seconds": 0.5, "min_seconds": 1.0}
    log = result.details["log"]
    assert log["executions"] == 11
    # the stand-in's log times the Python calls around each execution: at least the ETDump's total of them
    total_ns = result.first_inference_ns + result.warmup_ns + result.timed_ns
    assert log["total_ms"] * 1e6 >= total_ns
    assert result.record()["timed_ns"] == sum(result.samples_ns)
    dev.cleanup()
    assert not phone.path(f"/data/local/tmp/flopgap/{pte.name}.etdump").exists()


def test_executor_runner_without_event_tracer_fails_naming_the_build_flags_fake_phone_endpoint(
    endpoint: AdbEndpoint, pte: Path, tmp_path: Path
) -> None:
    """A build without ETDump: the stand-in, like gflags in such a build, rejects ``--etdump_path``."""
    binary = _standin(tmp_path)
    binary.write_text(binary.read_text().replace('"etdump_path": "model.etdump", ', ""))
    transport = AdbTransport("pixel", "FAKE01", "127.0.0.1", endpoint.port)
    dev = Device("pixel", transport, binary_backend(RunnerKind.EXECUTOR_RUNNER, binary))
    with pytest.raises(TrialFailed) as info:
        dev.measure(pte, TrialRequest(runs=2, warmup_runs=0))
    message = str(info.value)
    assert message.startswith("device 'pixel': executor_runner exited 1: this executor_runner has no --etdump_path;")
    assert "-DEXECUTORCH_ENABLE_EVENT_TRACER=ON" in message and "\n" not in message


def test_cli_run_executorch_on_phone_with_executor_runner_stores_samples_fake_phone_endpoint(
    endpoint: AdbEndpoint, tmp_path: Path
) -> None:
    """The README's inventory entry: ``flopgap run --runtime executorch`` on a phone with executor_runner."""
    inventory = tmp_path / "devices.toml"
    inventory.write_text(
        f'[devices.pixel7]\ntransport = "adb"\nserial = "FAKE01"\nserver = "127.0.0.1:{endpoint.port}"\n'
        f'runner = "executor_runner"\nbinary = "{_standin(tmp_path)}"\n'
    )
    db = tmp_path / "r.db"
    args = ["run", "conv3x3", "-p", "cin=16", "-p", "cout=16", "-p", "h=16", "-p", "w=16", "--runtime", "executorch",
            "--device", "pixel7", "--devices", str(inventory), "--db", str(db), "--cache-dir", str(tmp_path / "cache"),
            "--trials", "2", "--runs", "5"]  # fmt: skip
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    with Store(db) as store:
        point = store.points_frame().iloc[0]
        samples = store.samples_frame()
    assert (point["status"], point["runtime"], point["device"]) == ("done", "executorch", "pixel7")
    assert len(samples) == 2 * 5 and (samples["latency_ns"] > 0).all()
