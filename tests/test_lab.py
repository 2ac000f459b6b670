"""The lab on a real Ray cluster (three nodes on 127.0.0.1): device actors pinned to their host's node, the
registry, unique names, status, trials through the object store, two drivers sharing one device.

Devices spread over nodes: this machine's local device on the head ('host-a'), a board behind the loopback sshd on
'host-b', and a phone faked at its adb protocol boundary (tests/adb_endpoint.py) on 'host-c'.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devices.base import TrialRequest
from devices.inventory import parse_inventory
from devices.vocabulary import Format, Precision
from harness.cli.main import app
from harness.lab.device_actor import ArtifactBlob, DeviceStatus
from harness.lab.membership import device_actor, entries, join_devices, leave, registry, statuses
from harness.lab.ray_session import LabError, connect
from harness.measure.spec import SweepPoint
from harness.measure.sweep import Reporter
from harness.zoo import ModelSpec
from tests.adb_endpoint import AdbEndpoint, FakePhone
from tests.conftest import SSHD, Sshd, cached_exporter
from tests.environment import Need, needs, require_module
from tests.lab_cluster import LabCluster, lab_cluster
from tests.sweep_files import inventory_text, ssh_board, sweep_spec, write_inventory

# Ray's loopback mode, set before Ray is imported (flopgap and these helpers import it lazily): every node, worker and
# driver (the second driver inherits it) uses 127.0.0.1, where Ray would otherwise turn 127.0.0.1 into this machine's
# network address.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# Ray is in the README's test install line: missing, these tests skip, or fail where FLOPGAP_REQUIRE asks for it.
NO_RAY = "no Ray: pip install -c constraints.txt -e '.[lab]'"
require_module(Need.RAY, None if importlib.util.find_spec("ray") else NO_RAY)
NO_SSHD = "no OpenSSH server at /usr/sbin/sshd (apt-get install openssh-server)"
NEEDS_SSHD = needs(Need.SSHD, None if SSHD.exists() else NO_SSHD)

REQUEST = TrialRequest(warmup_runs=2, warmup_seconds=0, runs=20, min_seconds=0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    with lab_cluster(["host-a", "host-b", "host-c"]) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbEndpoint]:
    with AdbEndpoint({"FAKE01": FakePhone(tmp_path_factory.mktemp("phone"))}) as endpoint:
        yield endpoint


def _configs(tmp: Path, sshd: Sshd, phone: AdbEndpoint) -> dict[str, Any]:
    elf = tmp / "benchmark_model"
    head = b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + (183).to_bytes(2, "little")
    elf.write_bytes(head + bytes(4096 - len(head)))
    pixel7 = {"transport": "adb", "serial": "FAKE01", "server": f"127.0.0.1:{phone.port}",
              "runner": "benchmark_model", "binary": str(elf)}  # fmt: skip
    text = inventory_text({"here": {"transport": "local"}, "board": ssh_board(sshd, tmp / "board"), "pixel7": pixel7})
    return parse_inventory(text, base=tmp)


def _blob(cache: Path) -> ArtifactBlob:
    art = cached_exporter(cache)(
        ModelSpec("conv1x1", (("cin", 8), ("cout", 8), ("h", 8), ("w", 8), ("stride", 1))), Format.ONNX, Precision.FP32
    )
    return ArtifactBlob(art.path.name, art.sha256, art.path.read_bytes())


@NEEDS_SSHD
def test_lab_devices_pinned_to_their_hosts_node_registry_status_and_a_trial_by_object_store(
    lab: LabCluster, sshd: Sshd, phone: AdbEndpoint, tmp_path: Path
) -> None:
    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    cfg = _configs(tmp_path, sshd, phone)
    placed = {"here": "host-a", "board": "host-b", "pixel7": "host-c"}
    registry(ray, lab.node_id("host-a"))
    for name, host in placed.items():
        assert join_devices(ray, [cfg[name]], host, lab.node_id(host), tmp_path / host) == [name]
    try:
        # Each actor runs on its own host's node; the registry says the same.
        for name, host in placed.items():
            assert ray.get(device_actor(ray, name).node_id.remote()) == lab.node_id(host)
        assert {(e.name, e.host, e.node_id, e.transport) for e in entries(ray)} == {
            (n, h, lab.node_id(h), t) for (n, h), t in zip(placed.items(), ["local", "ssh", "adb"], strict=True)
        }
        # A name another host already has: one line naming both hosts; nothing replaced.
        with pytest.raises(LabError, match=r"device 'board' of host 'host-c' clashes .* on host 'host-b'"):
            join_devices(ray, [cfg["board"]], "host-c", lab.node_id("host-c"), tmp_path / "c")
        assert ray.get(device_actor(ray, "board").node_id.remote()) == lab.node_id("host-b")
        # Facts come from the device's own host: the board reports the loopback host's CPUs, the phone its props.
        facts = {n: ray.get(device_actor(ray, n).facts.remote()) for n in placed}
        assert facts["board"]["cpu_count"] == os.cpu_count()
        assert facts["pixel7"]["abi"] == "arm64-v8a"
        # A real trial: the artifact's bytes travel by the object store, the board measures them.
        blob = _blob(tmp_path / "cache")
        result = ray.get(device_actor(ray, "board").measure.remote(ray.put(blob), REQUEST, "tester"))
        assert result.median_ms is not None and result.median_ms > 0
        assert len(result.samples_ns or []) >= 20
        # The host kept it under the sha256 of the bytes it received, which the export recorded.
        assert (tmp_path / "host-b" / f"{blob.sha256}.onnx").read_bytes() == blob.data
        # The command line shows the same: each host's devices and the trials each has run.
        shown = CliRunner().invoke(app, ["lab", "status", lab.address])
        assert shown.exit_code == 0, shown.output
        for name, host in placed.items():
            assert re.search(rf"{host}\W+{name}\W", shown.output), shown.output
        status = dict(statuses(ray))
        board = next(s for e, s in status.items() if e.name == "board")
        assert board == DeviceStatus("board", "host-b", None, None, 0, 1, None)
        # A changed artifact (its bytes not what the export's sha256 says) fails at the point of use.
        bad = ArtifactBlob(blob.name, blob.sha256, blob.data + b"\0")
        with pytest.raises(Exception, match="changed after export"):
            ray.get(device_actor(ray, "here").measure.remote(bad, REQUEST, "tester"))
    finally:
        assert sorted(leave(ray)) == sorted(placed)
    with pytest.raises(LabError, match="the lab has no device 'board'"):
        device_actor(ray, "board")


DRIVER = textwrap.dedent(
    """
    import json, sys, pickle
    from harness.lab.ray_session import connect
    from harness.lab.membership import device_actor
    ray = connect(sys.argv[1], _node_ip_address="127.0.0.1")
    blob, request = pickle.loads(open(sys.argv[2], "rb").read())
    actor = device_actor(ray, "here")
    results = ray.get([actor.measure.remote(blob, request, "driver-2") for _ in range(3)])
    print(json.dumps([[r.state_before["time_unix"], r.state_after["time_unix"]] for r in results]))
    """
)


def test_two_drivers_share_one_device_trial_by_trial_never_overlapping(lab: LabCluster, tmp_path: Path) -> None:
    import pickle

    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    cfg = parse_inventory('[devices.here]\ntransport = "local"\n', base=tmp_path)
    join_devices(ray, [cfg["here"]], "host-b", lab.node_id("host-b"), tmp_path / "host-b")
    try:
        blob = _blob(tmp_path / "cache")
        job = tmp_path / "job.pickle"
        job.write_bytes(pickle.dumps((blob, REQUEST)))
        other = subprocess.Popen(
            [sys.executable, "-c", DRIVER, lab.address, str(job)], stdout=subprocess.PIPE, text=True
        )
        actor = device_actor(ray, "here")
        mine = ray.get([actor.measure.remote(blob, REQUEST, "driver-1") for _ in range(3)])
        out, _ = other.communicate(timeout=300)
        assert other.returncode == 0
        spans = sorted([*json.loads(out), *([r.state_before["time_unix"], r.state_after["time_unix"]] for r in mine)])
        assert len(spans) == 6
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
        assert ray.get(actor.status.remote()).trials_done == 6
    finally:
        leave(ray)


def test_lab_status_without_an_address_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOPGAP_LAB", raising=False)
    result = CliRunner().invoke(app, ["lab", "status"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: no lab address: pass --lab ADDRESS (what 'flopgap lab start' printed) or set $FLOPGAP_LAB"
    ]


SWEEP = sweep_spec("lab or not", ["onnxruntime"], ["here", "board"], channels=8)


def _board_inventory(tmp: Path, sshd: Sshd) -> Path:
    return write_inventory(
        tmp / "devices.toml", {"here": {"transport": "local"}, "board": ssh_board(sshd, tmp / "board")}
    )


def _join_here_and_board(lab: LabCluster, sshd: Sshd, tmp: Path, board_host: str) -> tuple[Any, Path, dict[str, Any]]:
    """Connects to ``lab`` and joins this machine's local device 'here' on host-b and the loopback board on
    ``board_host`` (a node added for it if the lab has none); returns the connection, the inventory naming both and
    its parsed configs."""
    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    inventory = _board_inventory(tmp, sshd)
    cfg = parse_inventory(inventory.read_text(), base=tmp)
    join_devices(ray, [cfg["here"]], "host-b", lab.node_id("host-b"), tmp / "host-b")
    # A new node only now: the registry, placed by the first join, must not land on a host a test will kill.
    node = lab.node_id(board_host) if board_host in lab.nodes else lab.add_host(board_host)
    join_devices(ray, [cfg["board"]], board_host, node, tmp / board_host)
    return ray, inventory, cfg


def _stored(db: Path) -> dict[str, tuple[str, int]]:
    """Each point's key with its status and how many trials it has."""
    from harness.store import Store

    with Store(db, readonly=True) as store:
        points = store.points_frame()
        trials = store.trials_frame(list(points["point_id"]))
        counts = trials.groupby("point_id").size().to_dict()
        return {row.point_key: (row.status, int(counts.get(row.point_id, 0))) for row in points.itertuples()}


@NEEDS_SSHD
def test_sweep_with_lab_stores_the_same_points_as_without_and_a_rerun_resumes(
    lab: LabCluster, sshd: Sshd, tmp_path: Path
) -> None:
    ray, inventory, _ = _join_here_and_board(lab, sshd, tmp_path, "host-c")
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP)
    try:
        common = ["sweep", str(spec), "--cache-dir", str(tmp_path / "cache"), "--format", "json"]
        local = CliRunner().invoke(app, [*common, "--db", str(tmp_path / "local.db"), "--devices", str(inventory)])
        assert local.exit_code == 0, local.output
        labbed = CliRunner().invoke(app, [*common, "--db", str(tmp_path / "lab.db"), "--lab", lab.address])
        assert labbed.exit_code == 0, labbed.output
        here, there = _stored(tmp_path / "local.db"), _stored(tmp_path / "lab.db")
        assert len(here) == 4
        assert there == here
        assert set(there.values()) == {("done", 2)}
        # The trials ran on the devices' own actors, for this driver.
        done = {s.name: s.trials_done for _, s in statuses(ray) if isinstance(s, DeviceStatus)}
        assert done == {"here": 4, "board": 4}
        # A rerun through the lab (address from $FLOPGAP_LAB) skips every point: nothing measured twice.
        again = CliRunner().invoke(app, [*common, "--db", str(tmp_path / "lab.db")], env={"FLOPGAP_LAB": lab.address})
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["skipped_points"] == 4
        assert _stored(tmp_path / "lab.db") == here
    finally:
        leave(ray)


class _KillsHostAfterFirstTrial(Reporter):
    """Kills the host of ``device`` right after that device's first trial is stored (between two trials)."""

    def __init__(self, lab: LabCluster, device: str, host: str) -> None:
        self.lab, self.device, self.host = lab, device, host
        self.failed: list[str] = []

    def trial_finished(self, point: SweepPoint, trial: int, median_ms: float | None) -> None:
        if point.device == self.device and self.host in self.lab.nodes:
            self.lab.kill_host(self.host)

    def point_failed(self, point: SweepPoint, reason: str) -> None:
        self.failed.append(f"{point.device}: {reason}")


@NEEDS_SSHD
def test_a_host_killed_mid_sweep_fails_its_points_naming_it_the_others_go_on_and_a_rerun_resumes(
    lab: LabCluster, sshd: Sshd, tmp_path: Path
) -> None:
    from harness.lab.driver import LabExporter, lab_devices
    from harness.measure.spec import parse_spec
    from harness.measure.sweep import run_sweep
    from harness.store import Store

    ray, _, cfg = _join_here_and_board(lab, sshd, tmp_path, "host-d")
    db = tmp_path / "lab.db"
    try:
        spec = parse_spec(SWEEP, "sweep.toml")
        found = lab_devices(ray, spec.devices)
        exporter = LabExporter(ray, found.shelf, tmp_path / "cache", parity=False)
        reporter = _KillsHostAfterFirstTrial(lab, "board", "host-d")
        with Store(db) as store:
            result = run_sweep(spec, SWEEP, store, found.devices, exporter, reporter, device_threads=found.threads)
        assert "host-d" not in lab.nodes
        assert result.failed_points == 2
        assert all("host 'host-d' left the lab or died" in r for r in reporter.failed), reporter.failed
        assert {r.split(":")[0] for r in reporter.failed} == {"board"}
        stored = _stored(db)
        assert sorted(stored.values()) == [("done", 2), ("done", 2), ("failed", 0), ("failed", 1)]
        # The host joins again (here on another node); the rerun measures only what is missing.
        join_devices(ray, [cfg["board"]], "host-c", lab.node_id("host-c"), tmp_path / "host-c")
        spec_file = tmp_path / "sweep.toml"
        spec_file.write_text(SWEEP)
        again = CliRunner().invoke(
            app, ["sweep", str(spec_file), "--db", str(db), "--lab", lab.address, "--format", "json"]
        )
        assert again.exit_code == 0, again.output
        # Ray's news of the dead node went to stderr: stdout holds the JSON alone.
        assert json.loads(again.stdout)["measured_trials"] == 3
        assert set(_stored(db).values()) == {("done", 2)}
    finally:
        leave(ray)


def _runners(lab: LabCluster) -> list[str]:
    """flopgap runners still alive anywhere in the lab (processes of any node running runner.py)."""
    import psutil

    found = []
    for host in list(lab.nodes):
        for proc in lab.processes(host):
            with contextlib.suppress(psutil.Error):
                if any(arg.endswith("runner.py") for arg in proc.cmdline()):
                    found.append(f"{host}: {proc.pid} {' '.join(proc.cmdline())}")
    return found


def test_the_driver_killed_with_9_leaves_no_runner_on_any_host_and_a_rerun_resumes_with_no_duplicate(
    lab: LabCluster, tmp_path: Path
) -> None:
    from harness.store import Store

    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    cfg = parse_inventory('[devices.here]\ntransport = "local"\n', base=tmp_path)
    join_devices(ray, [cfg["here"]], "host-b", lab.node_id("host-b"), tmp_path / "host-b")
    spec = tmp_path / "sweep.toml"
    spec.write_text(sweep_spec("lab or not", ["onnxruntime"], ["here"], channels=8, min_seconds=0.5))
    db = tmp_path / "lab.db"
    cmd = ["sweep", str(spec), "--db", str(db), "--lab", lab.address, "--cache-dir", str(tmp_path / "cache")]
    actor = device_actor(ray, "here")
    try:
        driver = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            # Kill it while its second trial runs on the device's host (the first one is stored).
            deadline = time.monotonic() + 300
            while not (db.exists() and _trial_rows(db) >= 1 and ray.get(actor.status.remote()).measuring):
                assert driver.poll() is None and time.monotonic() < deadline, "the driver ended before it was killed"
                time.sleep(0.05)
        finally:
            driver.kill()  # SIGKILL: nothing of the driver runs after this
            driver.wait()
        stored = _trial_rows(db)
        # The trial in flight ends on its host and goes nowhere; then nothing of the sweep runs on any host.
        deadline = time.monotonic() + 120
        while ray.get(actor.status.remote()).measuring is not None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert _runners(lab) == []
        again = CliRunner().invoke(app, [*cmd, "--format", "json"])
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["measured_trials"] == 4 - stored
        assert set(_stored(db).values()) == {("done", 2)}
        with Store(db, readonly=True) as store:
            frame = store.trials_frame()
        assert len(frame) == 4
        assert not frame.duplicated(["point_id", "trial_index"]).any()
    finally:
        leave(ray)


def _trial_rows(db: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM trials").fetchone()[0])
        except sqlite3.OperationalError:  # the driver has not created its tables yet
            return 0


def _sweep_subprocess(tmp_path: Path, address: str, prelude: str = "pass") -> subprocess.CompletedProcess[str]:
    """`flopgap sweep SPEC --lab ADDRESS` in a fresh process (this one is connected to the test's lab)."""
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP)
    argv = ["flopgap", "sweep", str(spec), "--db", str(tmp_path / "lab.db"), "--lab", address]
    code = f"{prelude}; import sys; sys.argv = {argv!r}; from harness.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_sweep_lab_address_nobody_answers_at_is_one_line_exit_2_in_seconds(tmp_path: Path) -> None:
    from tests.conftest import _free_port

    address = f"127.0.0.1:{_free_port()}"
    done = _sweep_subprocess(tmp_path, address)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: no lab answers at {address} (Connection refused); start one with 'flopgap lab start' or check "
        "the address"
    ]
    assert not (tmp_path / "lab.db").exists()


def test_sweep_lab_address_of_another_server_is_one_line_exit_2_in_seconds(tmp_path: Path, sshd: Sshd) -> None:
    """The loopback sshd, a real server that is no lab's head: Ray's own client waited 40 s on it, then raised a
    multi-line RpcError."""
    address = f"127.0.0.1:{sshd.port}"
    done = _sweep_subprocess(tmp_path, address)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert re.fullmatch(
        rf"error: {re.escape(address)} answers, but not as a lab's head \(it said 'SSH-2\.0-OpenSSH_[^']+', not "
        r"Ray's gRPC\); give the address 'flopgap lab start' printed",
        line,
    ), line
    assert not (tmp_path / "lab.db").exists()


def test_sweep_lab_without_ray_faked_by_blocking_its_import_is_one_line_exit_2(tmp_path: Path) -> None:
    done = _sweep_subprocess(tmp_path, "127.0.0.1:6379", prelude="import sys; sys.modules['ray'] = None")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: a lab needs Ray, which is not installed: pip install -e '.[lab]'"
    ]
    assert not (tmp_path / "lab.db").exists()


PHONE_SWEEP = sweep_spec("a phone unplugged", ["litert"], ["here", "pixel7"], channels=8, depthwise=False)


def test_a_phone_unplugged_from_its_host_shows_in_lab_status_and_fails_only_its_points(
    lab: LabCluster, sshd: Sshd, phone: AdbEndpoint, tmp_path: Path
) -> None:
    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    cfg = _configs(tmp_path, sshd, phone)
    join_devices(ray, [cfg["here"]], "host-b", lab.node_id("host-b"), tmp_path / "host-b")
    join_devices(ray, [cfg["pixel7"]], "host-c", lab.node_id("host-c"), tmp_path / "host-c")
    spec = tmp_path / "sweep.toml"
    spec.write_text(PHONE_SWEEP)
    unplugged = phone.phones.pop("FAKE01")
    try:
        done = CliRunner().invoke(
            app, ["sweep", str(spec), "--db", str(tmp_path / "lab.db"), "--lab", lab.address, "--format", "json"]
        )
        assert done.exit_code == 3, done.output
        points = {p["device"]: p for p in json.loads(done.stdout)["points"]}
        assert points["here"]["status"] == "done"
        assert points["pixel7"]["status"] == "failed"
        assert "FAKE01" in points["pixel7"]["failure_reason"]
        problems = {s.name: s.problem for _, s in statuses(ray) if isinstance(s, DeviceStatus)}
        assert problems["here"] is None
        assert "FAKE01" in (problems["pixel7"] or "")
        shown = CliRunner().invoke(app, ["lab", "status", lab.address])
        assert "FAKE01" in shown.output, shown.output
    finally:
        phone.phones["FAKE01"] = unplugged
        leave(ray)


def test_run_and_profile_with_lab_measure_on_the_devices_actor_and_store_here(lab: LabCluster, tmp_path: Path) -> None:
    from harness.measure.profile import PROFILE_RETRIES, has_profile
    from harness.store import Store

    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    cfg = parse_inventory('[devices.here]\ntransport = "local"\n', base=tmp_path)
    join_devices(ray, [cfg["here"]], "host-c", lab.node_id("host-c"), tmp_path / "host-c")
    db = tmp_path / "lab.db"
    point = ["conv1x1", "-p", "cin=8", "-p", "cout=8", "-p", "h=8", "-p", "w=8", "--runtime", "onnxruntime"]
    common = ["--device", "here", "--db", str(db), "--cache-dir", str(tmp_path / "cache"), "--lab", lab.address]
    try:
        ran = CliRunner().invoke(
            app, ["run", *point, *common, "--trials", "2", "--runs", "20", "--min-seconds", "0", "--format", "json"]
        )
        assert ran.exit_code == 0, ran.output
        assert ray.get(device_actor(ray, "here").status.remote()).trials_done == 2
        profiled = CliRunner().invoke(app, ["profile", *point, *common, "--runs", "20", "--min-seconds", "0"])
        assert profiled.exit_code == 0, profiled.output
        # The point is done already (same key): only the profiled pass runs, on the actor of host-c; an ORT profile
        # whose nodes sum far from the timed latency is taken again (at most PROFILE_RETRIES times), so on a busy
        # machine one run may take two or three passes (one CI run took two).
        passes = ray.get(device_actor(ray, "here").status.remote()).trials_done - 2
        assert 1 <= passes <= 1 + PROFILE_RETRIES
        with Store(db, readonly=True) as store:
            frame = store.points_frame()
            assert set(frame["status"]) == {"done"}
            # and the timed trials were not taken again
            assert len(store.trials_frame([int(pid) for pid in frame["point_id"]])) == 2
            assert any(has_profile(store, int(pid)) for pid in frame["point_id"])
    finally:
        leave(ray)


def test_calibrate_with_lab_times_every_kernel_on_the_devices_actor_and_stores_here(
    lab: LabCluster, tmp_path: Path
) -> None:
    import io

    from rich.console import Console

    from devices.vocabulary import Runtime
    from harness.cli.calibrate import run_calibrate_command
    from harness.measure.calibrate import conv1x1_kernel, relu_kernel
    from harness.store import Store

    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    cfg = parse_inventory('[devices.here]\ntransport = "local"\n', base=tmp_path)
    join_devices(ray, [cfg["here"]], "host-b", lab.node_id("host-b"), tmp_path / "host-b")
    kernels = [conv1x1_kernel(16, 32, 8, 8), relu_kernel(8, 16, 16)]  # small: the roofline's own take minutes
    db = tmp_path / "lab.db"
    try:
        cal = run_calibrate_command(
            "here", Runtime.ONNXRUNTIME, 1, 2, db, tmp_path / "cache", None, Console(file=io.StringIO()), lab.address,
            kernels,
        )  # fmt: skip
        # Every trial ran on host-b's actor: 2 kernels x 2 trials, none in this process.
        assert ray.get(device_actor(ray, "here").status.remote()).trials_done == 4
        with Store(db, readonly=True) as store:
            row = store.calibrations_frame().iloc[0]
        assert (row["device"], row["runtime"], row["threads"]) == ("here", "onnxruntime", 1)
        stored = {k["name"]: k["medians_ns"] for k in json.loads(row["details_json"])["kernels"]}
        assert stored == {t.kernel.name: list(t.medians_ns) for t in cal.timings}
        assert {name: len(medians) for name, medians in stored.items()} == {k.name: 2 for k in kernels}
        assert row["peak_gflops"] == pytest.approx(cal.peak_gflops) and row["bandwidth_gbs"] > 0
    finally:
        leave(ray)


def test_the_registry_a_host_creates_by_joining_lives_on_the_head_never_on_a_host_that_may_leave(
    lab: LabCluster, tmp_path: Path
) -> None:
    """The registry dies with its node: created by whichever join comes first after a lab-wide leave, it must still
    land on the head (a sweep test once failed when the registry had landed on the host it then killed)."""
    from harness.lab.membership import head_node_id

    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    leave(ray)  # no registry: the join below creates it
    cfg = parse_inventory('[devices.here]\ntransport = "local"\n', base=tmp_path)
    try:
        join_devices(ray, [cfg["here"]], "host-c", lab.node_id("host-c"), tmp_path / "host-c")
        assert head_node_id(ray) == lab.node_id("host-a")
        assert ray.get(registry(ray).node.remote()) == lab.node_id("host-a")
    finally:
        leave(ray)
