"""Faults, third round (issue 23), end to end with real components: a model file swapped between the hash check and
the runner's read, a runner that floods its output, a board lost between two trials, input checked where it
enters, SIGTERM.

Where a device is faked it is at its protocol boundary, and the test's name says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devices.agent import AgentBackend
from devices.base import Device, TrialRequest
from devices.errors import DeviceUnreachable
from devices.local import local_device
from devices.vocabulary import Format, Precision
from exporters.export import export
from harness.measure.spec import SweepPoint, parse_spec
from harness.measure.sweep import Reporter, run_sweep
from harness.store import Store
from harness.zoo.registry import resolve
from tests.conftest import SSHD, Sshd, cached_exporter, running_sshd
from tests.test_ssh_device import _transport

UNIT = "{ cin = 16, cout = 16, h = 8, w = 8 }"


def _spec(trials: int = 2, model: str = UNIT) -> str:
    return (
        f'name = "round3"\nruntimes = ["onnxruntime"]\n[[models]]\nname = "conv1x1"\nparams = {model}\n'
        f"[protocol]\ntrials = {trials}\nwarmup_runs = 1\nwarmup_seconds = 0\nruns = 5\nmin_seconds = 0\n"
        "timeout_s = 120\nparity = false\n"
    )


# --------------------------------------------------------------------------- 1. the swap race


def test_a_file_swapped_right_after_the_hash_check_is_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook swaps another model's bytes into the artifact right after the check, before the runner reads it (the
    window that was open): the runner reports the sha256 of what it loaded, and that trial is discarded."""
    cache = tmp_path / "cache"
    point_model = export(resolve("conv1x1", cin=16, cout=16, h=8, w=8), Format.ONNX, Precision.FP32, cache_dir=cache)
    other = export(resolve("conv1x1", cin=64, cout=64, h=56, w=56), Format.ONNX, Precision.FP32, cache_dir=cache)
    good = point_model.path.read_bytes()
    checked = Device._verified
    swaps: list[str] = []

    def check_then_swap(self: Device, local: Path, remote: str, expected: str | None) -> tuple[str, str]:
        found = checked(self, local, remote, expected)
        if not swaps:  # the first trial only
            local.write_bytes(other.path.read_bytes())
            swaps.append(str(local))
        else:
            local.write_bytes(good)  # the right bytes are back for the trials after it
        return found

    monkeypatch.setattr(Device, "_verified", check_then_swap)
    text = _spec(trials=3)
    spec = parse_spec(text, "round3")
    device = local_device()
    try:
        with Store(tmp_path / "r.db") as store:
            run_sweep(spec, text, store, {"local": device}, cached_exporter(cache))
            point = store.points_frame().iloc[0]
            assert swaps == [str(point_model.path)]
            # The trial timed on the swapped bytes is discarded, and the point fails naming both hashes.
            assert point["status"] == "failed" and store.trials_frame().empty
            assert f"the runner timed a model with sha256 {other.sha256}, not the {point_model.sha256}" in str(
                point["failure_reason"]
            )
            monkeypatch.setattr(Device, "_verified", checked)
            run_sweep(spec, text, store, {"local": device}, cached_exporter(cache))  # the rerun measures it again
            trials = store.trials_frame()
            assert list(store.points_frame()["status"]) == ["done"]
    finally:
        device.cleanup()
    assert len(trials) == 3
    for doc in trials["runner_json"]:  # every stored trial was timed on the point's own bytes
        assert json.loads(doc)["model_sha256"] == point_model.sha256


def test_the_runner_reports_the_sha256_of_the_bytes_it_loaded(tmp_path: Path) -> None:
    art = export(resolve("conv1x1", cin=16, cout=16, h=8, w=8), Format.ONNX, Precision.FP32, cache_dir=tmp_path)
    device = local_device()
    try:
        result = device.measure(art.path, TrialRequest(runs=3, min_seconds=0, warmup_runs=1, warmup_seconds=0))
    finally:
        device.cleanup()
    assert result.details["model_sha256"] == art.sha256


# --------------------------------------------------------------------------- 3. a board lost between two trials


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class _LoseBoardAfter(Reporter):
    """Stops the board's sshd, its sessions included, after ``n`` trials: between two trials, not during one."""

    def __init__(self, n: int, sshd_pid: int) -> None:
        self.n, self.sshd_pid, self.finished = n, sshd_pid, 0
        self.failed: list[str] = []

    def trial_finished(self, point: SweepPoint, trial: int, median_ms: float | None) -> None:
        self.finished += 1
        if self.finished == self.n:
            for pid in [*_descendants(self.sshd_pid), self.sshd_pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def point_failed(self, point: SweepPoint, reason: str) -> None:
        self.failed.append(reason)


def _sshd_pid(server: Sshd) -> int:
    return int((server.dir / "sshd.pid").read_text())


def _restart(server: Sshd) -> subprocess.Popen[bytes]:
    """The same sshd (config, port, host key) started again: the board is back."""
    argv = [str(SSHD), "-D", "-E", str(server.dir / "sshd2.log"), "-f", str(server.dir / "sshd_config")]
    proc = subprocess.Popen(argv)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("sshd did not come back within 30 s")
            time.sleep(0.1)


def test_a_board_lost_between_two_trials_fails_its_points_and_a_rerun_resumes(tmp_path: Path) -> None:
    """The board's sshd, sessions included, is stopped after the second trial, between two trials (the real sshd
    on loopback; nothing faked): its points fail with one line naming the board, the sweep returns, the device's
    last error is stored; with the board back, a rerun measures what is missing and cleans the lost session's dir."""
    text = _spec(trials=3).replace(f"params = {UNIT}", "params = { cin = [16, 32], cout = 16, h = 8, w = 8 }")
    text = 'devices = ["pi-test"]\n' + text  # two points on the board, their trials interleaved
    spec = parse_spec(text, "round3")
    cache, work = tmp_path / "cache", tmp_path / "work"
    with running_sshd(tmp_path / "sshd") as server, Store(tmp_path / "r.db") as store:
        board = Device("pi-test", _transport(server, work), AgentBackend(sys.executable))
        rep = _LoseBoardAfter(2, _sshd_pid(server))
        try:
            result = run_sweep(spec, text, store, {"pi-test": board}, cached_exporter(cache), rep)
        finally:
            board.cleanup()  # never raises: what it cannot remove stays for the next session to clean
        points = store.points_frame()
        assert result.failed_points == 2 and list(points["status"]) == ["failed", "failed"]
        for reason in points["failure_reason"]:
            assert reason.startswith("device 'pi-test': ") and f"127.0.0.1:{server.port}" in reason
            assert "\n" not in reason
        assert len(store.trials_frame()) == 2 and len(rep.failed) == 2
        last_error = store.devices_frame()["last_error"].iloc[0]
        assert f"127.0.0.1:{server.port}" in last_error
        lost_sessions = [d.name for d in work.iterdir() if d.name.startswith("run.")]
        assert len(lost_sessions) == 1  # left behind: the board was gone when the session ended

        back = _restart(server)
        board = Device("pi-test", _transport(server, work), AgentBackend(sys.executable))
        try:
            again = run_sweep(spec, text, store, {"pi-test": board}, cached_exporter(cache))
            assert not (work / lost_sessions[0]).exists()  # cleaned on the next contact
        finally:
            board.cleanup()
            back.kill()
            back.wait()
        assert again.failed_points == 0 and again.measured_trials == 4
        assert list(store.points_frame()["status"]) == ["done", "done"]
        trials = store.trials_frame()
        assert len(trials) == 6 and not trials.duplicated(["point_id", "trial_index"]).any()


@pytest.mark.parametrize("step", ["lock", "run"])
def test_paramiko_eof_on_a_dead_connection_is_device_unreachable_eof_faked_in_paramiko(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Which error a dead connection raises is a race inside paramiko: an SSHException, or EOFError when its
    transport still looks alive and the write fails (what aborted the CLI). The EOFError is raised here by paramiko's
    own open_session, every time, so both paths are held to one typed error."""
    import paramiko

    board = _transport(sshd, tmp_path / "work")
    try:
        board.run(["true"], 30)  # connected, session dir made

        board._sftp_client()  # an SFTP session too: closing it says goodbye over the dead connection

        def dead(self: object, *args: object, **kw: object) -> paramiko.Channel:
            raise EOFError()

        monkeypatch.setattr(paramiko.Transport, "open_session", dead)
        monkeypatch.setattr(paramiko.SFTPClient, "close", dead)  # must not replace the error that made us close
        lost = r"device 'pi-test': lost connection to .*127\.0\.0\.1.* \(EOFError\)"
        with pytest.raises(DeviceUnreachable, match=lost):
            if step == "lock":
                with board.lock(lambda _: None):
                    pass
            else:
                board.run(["true"], 30)
    finally:
        monkeypatch.undo()
        board.cleanup()


# --------------------------------------------------------------------------- 2. a runner that floods its output

FLOOD = 50 * 1024 * 1024


def _flooding_standin(path: Path, then: str) -> Path:
    """A stand-in for the runner's interpreter that first prints 50 MB (a runtime logging every op), then ``then``."""
    path.write_text(
        "#!/bin/sh\n"
        f"yes 'stand-in runner: a runtime that logs every op it runs' | head -c {FLOOD // 2}\n"
        f"yes 'stand-in runner: and warns about each of them' | head -c {FLOOD // 2} >&2\n"
        f"{then}\n"
    )
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("outcome", ["measured", "failed"])
def test_a_runner_flooding_50_mb_is_read_bounded_and_never_hangs_the_sweep_standin_runner(
    tmp_path: Path, outcome: str
) -> None:
    # failed: after the flood, one line of 1 MB (no newline at all) on stderr, then exit 1
    one_long_line = "head -c 1048576 /dev/zero | tr '\\0' x >&2; exit 1"
    then = f'exec {sys.executable} "$@"' if outcome == "measured" else one_long_line
    standin = _flooding_standin(tmp_path / "flooding-python", then)
    inventory = tmp_path / "devices.toml"
    inventory.write_text(f'[devices.flood]\ntransport = "local"\npython = "{standin}"\n')
    spec = tmp_path / "s.toml"
    spec.write_text('devices = ["flood"]\n' + _spec(trials=2))
    db = tmp_path / "r.db"
    argv = [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--db", str(db), "--devices", str(inventory),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert len(done.stdout) + len(done.stderr) < 64 * 1024  # what a terminal shows stays small
    with Store(db, readonly=True) as store:
        point = store.points_frame().iloc[0]
        runs = store.runs()
    assert runs[-1].status == "completed"  # the sweep ended on its own: no run left 'running'
    if outcome == "measured":  # the runner's document, at the end of 50 MB, is still read
        assert done.returncode == 0, done.stderr
        assert point["status"] == "done" and point["median_ms"] > 0
    else:
        assert done.returncode == 3, done.stderr
        reason = str(point["failure_reason"])
        assert point["status"] == "failed" and len(reason) <= 2000
        assert reason.startswith("device 'flood': runner crashed: xxx") and "characters dropped" in reason


# --------------------------------------------------------------------------- 4. input checked where it enters


def test_a_negative_cpu_id_in_a_spec_is_refused_at_validation_before_any_export(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(_spec().replace("[protocol]\n", "[protocol]\naffinity = [-1]\n"))
    db, cache = tmp_path / "r.db", tmp_path / "cache"
    argv = [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--db", str(db), "--cache-dir", str(cache)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    why = "CPU ids are >= 0 (got [-1]); give e.g. [4, 5, 6, 7]"
    assert done.stderr.strip() == f"error: {spec}: key 'protocol.affinity': {why}"
    assert not db.exists() and not cache.exists()  # nothing exported, no database made


@pytest.mark.parametrize("transport", ['"ssh"\nhost = "10.0.0.9"', '"adb"\nserial = "X1"'])
def test_an_inventory_table_named_local_must_stay_this_machine(tmp_path: Path, transport: str) -> None:
    inventory = tmp_path / "devices.toml"
    inventory.write_text(f"[devices.local]\ntransport = {transport}\n")
    argv = [sys.executable, "-m", "harness.cli", "devices", "list", "--devices", str(inventory)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "device 'local': 'local' is this machine" in done.stderr and "[devices.board1]" in done.stderr
    inventory.write_text('[devices.local]\ntransport = "local"\nthreads = [1, 2]\n')  # this machine's options: fine
    listed = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert listed.returncode == 0 and "1,2" in listed.stdout
