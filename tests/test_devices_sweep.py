"""Sweeps across devices and the device commands, end to end.

The SSH board is a real OpenSSH server on 127.0.0.1 running the real runner on real artifacts; the phone is
faked at the adb protocol boundary (tests/adb_endpoint.py) and replays a captured benchmark_model log.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exporters.export import export
from harness.cli.main import app
from harness.cli.sweep import inventory_threads, open_devices
from harness.measure.spec import parse_spec
from harness.measure.sweep import SweepResult, run_sweep
from harness.store import Store
from harness.zoo.registry import ModelSpec
from tests.adb_endpoint import AdbEndpoint, FakePhone
from tests.conftest import Sshd, _free_port, cached_exporter
from tests.sweep_files import ssh_board, sweep_spec, write_inventory


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _inventory(tmp_path: Path, sshd: Sshd, ghost_port: int | None = None) -> Path:
    board = ssh_board(sshd, tmp_path / "board", threads=[1, 2])
    ghost = ssh_board(sshd, tmp_path / "ghost", port=ghost_port or sshd.port, connect_timeout=60)
    return write_inventory(tmp_path / "devices.toml", {"board": board, "ghost": ghost})


def _sweep(store: Store, text: str, names: list[str], inventory: Path, cache_dir: Path) -> SweepResult:
    """Sweeps spec ``text`` over the inventory's devices ``names`` into ``store``, then cleans the devices up."""
    devices = open_devices(names, inventory)
    threads = inventory_threads(names, inventory)
    result = run_sweep(parse_spec(text), text, store, devices, cached_exporter(cache_dir), device_threads=threads)
    for dev in devices.values():
        dev.cleanup()
    return result


def test_sweep_over_local_and_ssh_board_into_one_database(tmp_path: Path, sshd: Sshd, cache_dir: Path) -> None:
    # 'ghost' points at a closed port first: its points fail with the reason, the other devices go on.
    inventory = _inventory(tmp_path, sshd, ghost_port=_free_port())
    names = ["local", "board", "ghost"]
    text = sweep_spec("two devices", ["onnxruntime", "litert"], names, runs=30)
    db = tmp_path / "r.db"
    with Store(db) as store:
        result = _sweep(store, text, names, inventory, cache_dir)
        points = store.points_frame()
        # local: 2 models x 2 runtimes x [1] thread; board: x [1, 2] threads from the inventory; ghost: x [1]
        assert points.groupby("device").size().to_dict() == {"board": 8, "ghost": 4, "local": 4}
        by_status = points.groupby(["device", "status"]).size().to_dict()
        assert by_status == {("board", "done"): 8, ("ghost", "failed"): 4, ("local", "done"): 4}
        ghost_reasons = set(points[points["device"] == "ghost"]["failure_reason"])
        assert len(ghost_reasons) == 1 and "device 'ghost'" in ghost_reasons.pop()
        assert result.failed_points == 4
        facts = store.devices_frame().set_index("name")["facts_json"].map(json.loads)
        assert facts["board"]["cpu_count"] == facts["local"]["cpu_count"] == os.cpu_count()
        # unreachable: no facts to keep, its error recorded apart from them
        assert facts["ghost"] == {}
        assert "device 'ghost'" in store.devices_frame().set_index("name").loc["ghost", "last_error"]
        # never two benchmarks on one device at once: each device's trials ran one after another
        trials = store.trials_frame().merge(points[["point_id", "device"]], on="point_id")
        for _device, group in trials.groupby("device"):
            spans = sorted(
                (json.loads(b)["time_unix"], json.loads(a)["time_unix"])
                for b, a in zip(group["state_before_json"], group["state_after_json"], strict=True)
            )
            assert all(end <= nxt_start for (_, end), (nxt_start, _) in itertools.pairwise(spans))

    # The ghost comes back: a rerun of the same sweep measures only its points.
    inventory = _inventory(tmp_path, sshd)
    with Store(db) as store:
        again = _sweep(store, text, names, inventory, cache_dir)
        assert again.skipped_points == 12 and again.measured_trials == 4 * 2
        assert set(store.points_frame()["status"]) == {"done"}


# --- adb: the phone faked at its protocol boundary -------------------------------------------------------------


def _arm64_elf(path: Path) -> Path:
    head = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HH", 3, 183)
    path.write_bytes(head + bytes(4096 - len(head)))
    return path


@pytest.fixture()
def phone_inventory(tmp_path: Path) -> Iterator[tuple[Path, FakePhone]]:
    phone = FakePhone(tmp_path / "phone")
    with AdbEndpoint({"FAKE01": phone}) as endpoint:
        inventory = tmp_path / "devices.toml"
        inventory.write_text(
            f"""
[devices.pixel7]
transport = "adb"
serial = "FAKE01"
server = "127.0.0.1:{endpoint.port}"
runner = "benchmark_model"
binary = "{_arm64_elf(tmp_path / "benchmark_model")}"
affinity = "f0"
"""
        )
        yield inventory, phone


def test_push_prints_the_on_device_path_fake_phone_endpoint(
    phone_inventory: tuple[Path, FakePhone], tmp_path: Path, cache_dir: Path
) -> None:
    inventory, phone = phone_inventory
    art = export(ModelSpec("conv1x1", (("cin", 16), ("cout", 16), ("h", 8), ("w", 8), ("stride", 1))), "tflite", "fp32",
                 cache_dir=cache_dir)  # fmt: skip
    res = CliRunner().invoke(app, ["push", "--device", "pixel7", "--devices", str(inventory), str(art.path)])
    assert res.exit_code == 0, res.output
    remote = res.output.strip()
    assert remote.startswith("/data/local/tmp/flopgap/") and remote.endswith(art.path.name)
    on_phone = phone.root / remote.lstrip("/")
    assert on_phone.read_bytes() == art.path.read_bytes()


def test_run_on_phone_stores_the_parsed_benchmark_fake_phone_endpoint(
    phone_inventory: tuple[Path, FakePhone], tmp_path: Path, cache_dir: Path
) -> None:
    inventory, _phone = phone_inventory
    db = tmp_path / "r.db"
    args = ["run", "conv1x1", "-p", "cin=16", "-p", "cout=16", "-p", "h=8", "-p", "w=8", "--device", "pixel7",
            "--devices", str(inventory), "--db", str(db), "--cache-dir", str(cache_dir), "--trials", "2"]  # fmt: skip
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    with Store(db) as store:
        point = store.points_frame().iloc[0]
        trials = store.trials_frame()
    assert point["status"] == "done" and point["device"] == "pixel7"
    doc = json.loads(trials.iloc[0]["runner_json"])
    assert doc["affinity_mask"] == "f0" and "taskset" in doc["tool"]["argv"]
    # the replayed log's inference summary, parsed: every trial replays the same capture
    avg_ms = doc["summary_ns"]["mean"] / 1e6
    assert point["mean_ms"] == pytest.approx(avg_ms)
    assert f"{point['median_ms']:.3f}" in res.output


def test_profile_on_phone_pulls_and_stores_the_op_csv_fake_phone_endpoint(
    phone_inventory: tuple[Path, FakePhone], tmp_path: Path, cache_dir: Path
) -> None:
    from devices.parsers import parse_tflite_op_csv

    inventory, phone = phone_inventory
    db = tmp_path / "r.db"
    model = ["conv1x1", "-p", "cin=16", "-p", "cout=16", "-p", "h=8", "-p", "w=8", "--runtime", "litert"]
    where = ["--device", "pixel7", "--devices", str(inventory), "--db", str(db), "--cache-dir", str(cache_dir)]
    args = ["profile", *model, *where]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    expected = parse_tflite_op_csv(phone.op_csv.read_text())  # what the phone wrote, pulled back and parsed
    with Store(db) as store:
        rows = store.op_profiles_frame()
    assert len(rows) == len(expected)
    by_type = rows.groupby("op_type")["time_us"].sum().to_dict()
    for op_type in {r.op_type for r in expected}:
        want = sum(r.avg_ms for r in expected if r.op_type == op_type) * 1e3
        assert by_type[op_type] == pytest.approx(want)


# --- ssh + benchmark_model: the binary stood in for at its protocol boundary ------------------------------------

STAND_IN = """#!/bin/sh
# A stand-in for TFLite's benchmark_model at its protocol boundary: it records its flags and the CPUs it may use,
# writes the op-profile CSV where asked, and prints a real captured benchmark_model log, its parameter echo replaced
# by the flags it was given (as a build that obeys them prints it).
printf '%s\\n' "$@" >> {flags}
grep Cpus_allowed_list /proc/$$/status >> {flags}
for a in "$@"; do
  case "$a" in
    --op_profiling_output_file=*) cat {csv} > "${{a#*=}}";;
    --num_threads=*) echo "INFO: Num threads: [${{a#*=}}]";;
    --num_runs=*) echo "INFO: Min num runs: [${{a#*=}}]";;
    --graph=*) echo "INFO: Graph: [${{a#*=}}]";;
    --use_xnnpack=true) echo "INFO: Use xnnpack: [1]";;
    --use_xnnpack=false) echo "INFO: Use xnnpack: [0]";;
  esac
done
grep -v -e "Min num runs: \\[" -e "Graph: \\[" -e "threads used for CPU inference" -e "Num threads: \\[" {log}
"""


def test_benchmark_model_over_ssh_stand_in_binary_into_the_store(tmp_path: Path, sshd: Sshd, cache_dir: Path) -> None:
    """A Raspberry Pi running Google's benchmark_model over SSH: pushed, pinned, parsed, stored."""
    from devices.parsers import parse_tflite_benchmark
    from tests.adb_endpoint import DATA

    log = DATA / "tflite_benchmark_android_aarch64_percentiles.txt"
    flags = tmp_path / "flags.txt"
    stand_in = tmp_path / "benchmark_model"
    stand_in.write_text(STAND_IN.format(flags=flags, csv=DATA / "tflite_op_profile_mobilenet_v1.csv", log=log))
    stand_in.chmod(0o755)
    cpu = min(os.sched_getaffinity(0))
    pi = ssh_board(sshd, tmp_path / "pi", python=None, runner="benchmark_model", binary=str(stand_in), affinity=[cpu])
    inventory = write_inventory(tmp_path / "devices.toml", {"pi": pi})
    runtimes = ["litert", "litert-builtin", "onnxruntime"]
    defaults = dict.fromkeys(("warmup_runs", "warmup_seconds", "min_seconds"))  # the spec's own
    text = sweep_spec("pi", runtimes, ["pi"], depthwise=False, runs=1000, **defaults)
    devices = open_devices(["pi"], inventory)
    with Store(tmp_path / "r.db") as store:
        result = run_sweep(parse_spec(text), text, store, devices, cached_exporter(cache_dir))
        devices["pi"].cleanup()
        points = store.points_frame().set_index("runtime")
        trials = store.trials_frame()
        facts = json.loads(store.devices_frame().set_index("name").loc["pi", "facts_json"])
    assert result.failed_points == 1 and result.measured_trials == 4
    # the ONNX point cannot run on benchmark_model: it fails with the reason, the TFLite points go on
    assert points.loc["onnxruntime", "status"] == "failed"
    assert "runs benchmark_model, which times .tflite models" in points.loc["onnxruntime", "failure_reason"]
    inference = parse_tflite_benchmark(log.read_text()).inference
    assert inference is not None and inference.median_us == 51891
    for runtime in ("litert", "litert-builtin"):
        row = points.loc[runtime]
        assert row["status"] == "done" and row["n"] == 2 * 1000
        assert row["median_ms"] == pytest.approx(51.891) and row["mean_ms"] == pytest.approx(63.7432)
        assert row["init_ms"] == pytest.approx(119.515)
    doc = json.loads(trials.iloc[0]["runner_json"])
    assert doc["tool"]["name"] == "benchmark_model" and doc["tool"]["argv"][:2] == ["taskset", f"{1 << cpu:x}"]
    assert doc["summary_ns"]["p50"] == 51891000 and doc["samples_kind"] == "summary"
    assert trials["median_ms"].tolist() == pytest.approx([51.891] * 4)
    # what reached the binary: its flags, and the CPU taskset pinned it to
    seen = flags.read_text().splitlines()
    assert seen.count("--use_xnnpack=true") == 2 and seen.count("--use_xnnpack=false") == 2
    assert "--num_threads=1" in seen and "--num_runs=1000" in seen
    graphs = {a for a in seen if a.startswith("--graph=")}
    assert len(graphs) == 1 and graphs.pop().startswith(f"--graph={tmp_path / 'pi'}/artifacts/")  # by content
    assert set(a for a in seen if a.startswith("Cpus_allowed_list")) == {f"Cpus_allowed_list:\t{cpu}"}
    assert facts["runner"] == "benchmark_model" and facts["transport"] == "ssh" and facts["system"] == "Linux"
    left = sorted(p.name for p in (tmp_path / "pi").iterdir())
    assert [n for n in left if n.startswith("run.")] == []  # the session's work dir is gone
    assert not list((tmp_path / "pi" / "running").iterdir())  # no runner is registered as running


def test_profile_with_benchmark_model_over_ssh_stand_in_binary(tmp_path: Path, sshd: Sshd, cache_dir: Path) -> None:
    from devices.parsers import parse_tflite_op_csv
    from tests.adb_endpoint import DATA

    csv = DATA / "tflite_op_profile_mobilenet_v1.csv"
    stand_in = tmp_path / "benchmark_model"
    log = DATA / "tflite_benchmark_mobilenet_v1_op_profiling.txt"
    stand_in.write_text(STAND_IN.format(flags=tmp_path / "flags.txt", csv=csv, log=log))
    stand_in.chmod(0o755)
    pi = ssh_board(sshd, tmp_path / "pi", python=None, runner="benchmark_model", binary=str(stand_in))
    inventory = write_inventory(tmp_path / "devices.toml", {"pi": pi})
    db = tmp_path / "r.db"
    args = ["profile", "conv1x1", "-p", "cin=16", "-p", "cout=16", "-p", "h=8", "-p", "w=8", "--runtime", "litert",
            "--device", "pi", "--devices", str(inventory), "--db", str(db), "--cache-dir", str(cache_dir)]  # fmt: skip
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    expected = parse_tflite_op_csv(csv.read_text())
    with Store(db) as store:
        rows = store.op_profiles_frame()
    assert sorted(rows["time_us"]) == pytest.approx(sorted(r.avg_ms * 1e3 for r in expected))
