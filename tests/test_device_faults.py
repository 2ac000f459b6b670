"""Faults at the device boundary, injected for real (issue 9): ``kill -9`` of a sweep's process group then an
immediate rerun, on this machine and over the loopback sshd; a second flopgap on a busy device; a stale runner; a
segfault over SSH.

The device's Python is a wrapper script that logs each runner's pid and start, and checks, as it starts, whether any
runner logged before it is still alive: a line ``OVERLAP`` in the log means two benchmarks ran on the device at once.
"""

from __future__ import annotations

import os
import pwd
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.base import Device
from devices.local import LocalTransport
from devices.lock import local_lock, registry
from devices.ssh import SshTransport
from tests.conftest import Sshd
from tests.sweep_files import committed_trials, ssh_board, sweep_spec, write_inventory

REPO = Path(__file__).resolve().parents[1]

# Stands in for the device's python: logs "start PID", reports any earlier runner still alive, then runs the runner.
WATCHED_PYTHON = """#!/bin/sh
log={log}
if [ "$2" != "--facts" ]; then
  for p in $(sed -n 's/^start //p' "$log" 2>/dev/null); do
    if [ -r /proc/$p/stat ] && ! grep -q '^[0-9]* (.*) Z' /proc/$p/stat; then echo "OVERLAP $p" >> "$log"; fi
  done
  echo "start $$" >> "$log"
fi
exec {python} "$@"
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _starts(log: Path) -> list[int]:
    return (
        [int(ln.split()[1]) for ln in log.read_text().splitlines() if ln.startswith("start ")] if log.exists() else []
    )


@pytest.fixture
def cache_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a flopgap subprocess: this repo first, a lock dir of the test's own."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FLOPGAP_LOCK_DIR": str(tmp_path / "locks"), "COLUMNS": "200"}
    yield env


def _watched_python(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "runners.log"
    python = tmp_path / "python-watched"
    python.write_text(WATCHED_PYTHON.format(log=log, python=sys.executable))
    python.chmod(0o755)
    return python, log


def _sweep(tmp_path: Path, inventory: Path, device: str) -> list[str]:
    spec = tmp_path / "s.toml"
    spec.write_text(sweep_spec("faults", ["onnxruntime"], [device], runs=50, min_seconds=3))
    return [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--db", str(tmp_path / "r.db"),
            "--devices", str(inventory)]  # fmt: skip


def _kill_mid_trial_then_rerun(tmp_path: Path, cmd: list[str], log: Path, env: dict[str, str]) -> None:
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while not _starts(log):  # wait until a runner is measuring
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "no runner started in time"
        time.sleep(0.05)
    time.sleep(0.3)
    victim = _starts(log)[-1]
    assert _alive(victim)
    # Stopped, the runner cannot end its trial by itself: if it dies now, its controller's death killed it, however
    # long that takes on a loaded machine (SIGKILL, the watchdog's signal, ends a stopped process too).
    os.kill(victim, signal.SIGSTOP)
    try:
        os.killpg(first.pid, signal.SIGKILL)  # the sweep's whole process group, as a user's kill -9 -PGID
        first.wait()
        gone_by = time.monotonic() + 60
        while _alive(victim) and time.monotonic() < gone_by:
            time.sleep(0.02)
        assert not _alive(victim), "the runner outlived its controller"
    finally:
        if _alive(victim):
            os.kill(victim, signal.SIGKILL)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    text = log.read_text()
    assert "OVERLAP" not in text, text
    assert len(_starts(log)) >= 2  # the rerun measured after the kill
    with sqlite3.connect(tmp_path / "r.db") as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM points")]
    assert statuses == ["done", "done"]


def test_kill_9_of_a_local_sweep_then_an_immediate_rerun_never_overlaps(
    tmp_path: Path, cache_env: dict[str, str]
) -> None:
    python, log = _watched_python(tmp_path)
    inventory = tmp_path / "devices.toml"
    inventory.write_text(f'[devices.local]\ntransport = "local"\npython = "{python}"\n')
    _kill_mid_trial_then_rerun(tmp_path, _sweep(tmp_path, inventory, "local"), log, cache_env)


def test_kill_9_of_a_sweep_over_ssh_then_an_immediate_rerun_never_overlaps(
    tmp_path: Path, sshd: Sshd, cache_env: dict[str, str]
) -> None:
    python, log = _watched_python(tmp_path)
    inventory = write_inventory(tmp_path / "devices.toml", {"pi": ssh_board(sshd, tmp_path / "pi", python=str(python))})
    _kill_mid_trial_then_rerun(tmp_path, _sweep(tmp_path, inventory, "pi"), log, cache_env)


def test_a_second_flopgap_waits_for_a_busy_device_and_says_who_holds_it(
    tmp_path: Path, cache_env: dict[str, str]
) -> None:
    cmd = [sys.executable, "-m", "harness.cli", "run", "conv1x1", "-p", "cin=8", "-p", "cout=8", "-p", "h=8",
           "-p", "w=8", "--runtime", "onnxruntime", "--db", str(tmp_path / "r.db")]  # fmt: skip
    stderr = tmp_path / "stderr.txt"
    with local_lock("local", lambda _: None, tmp_path / "locks"), stderr.open("w") as err:
        second = subprocess.Popen(cmd, env=cache_env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = time.monotonic() + 240
        while "is busy" not in stderr.read_text():
            assert second.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "the second flopgap never reached the device"
            time.sleep(0.1)
        time.sleep(1.0)
        assert second.poll() is None and committed_trials(tmp_path / "r.db") == 0  # it waits while we hold the device
    assert second.wait(timeout=300) == 0, stderr.read_text()
    assert f"device 'local' is busy: held by pid {os.getpid()} on " in stderr.read_text()
    assert committed_trials(tmp_path / "r.db") == 3  # it measured once the device was free


def test_a_stale_runner_is_killed_and_reported_before_the_next_trial(tmp_path: Path) -> None:
    """A runner registered as running whose controller is gone (the watchdog itself killed, say) is found, killed and
    reported by the next flopgap to take the lock."""
    locks = tmp_path / "locks"
    stale = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        registry(locks).mkdir(parents=True)
        (registry(locks) / str(stale.pid)).write_text(f"{stale.pid}\n")
        seen: list[str] = []
        transport = LocalTransport("local", lock_dir=locks)
        with transport.lock(seen.append) as reaped:
            assert stale.wait(timeout=5) == -signal.SIGKILL
            assert reaped == [
                f"device 'local': killed a stale runner left by an earlier flopgap (pid {stale.pid}: sleep 300); "
                "its measurement was lost"
            ]
            assert seen == []  # nobody held the lock: no waiting
        assert not list(registry(locks).iterdir())
    finally:
        stale.kill()
        stale.wait()


# --------------------------------------------------------------------------- signals over SSH


def _board(sshd: Sshd, work: Path) -> SshTransport:
    return SshTransport("pi-test", "127.0.0.1", user=pwd.getpwuid(os.getuid()).pw_name, port=sshd.port,
                        key=sshd.client_key, known_hosts=sshd.known_hosts, work_dir=str(work))  # fmt: skip


def test_a_segfault_over_ssh_is_reported_as_signal_11(sshd: Sshd, tmp_path: Path) -> None:
    board = _board(sshd, tmp_path / "board")
    try:
        assert board.run(["sh", "-c", "kill -SEGV $$"], timeout=30).returncode == -signal.SIGSEGV
        assert board.run(["sh", "-c", "kill -INT $$"], timeout=30).returncode == -signal.SIGINT
        assert board.run(["sh", "-c", "exit 3"], timeout=30).returncode == 3
        from devices.agent import AgentBackend
        from devices.base import TrialRequest
        from devices.errors import TrialFailed

        crash = tmp_path / "python-segfaults"
        crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
        crash.chmod(0o755)
        model = tmp_path / "m.onnx"
        model.write_bytes(b"onnx")
        dev = Device("pi-test", board, AgentBackend(str(crash)))
        with pytest.raises(TrialFailed, match="runner crashed: killed by signal 11"):
            dev.measure(model, TrialRequest(timeout_s=30))
    finally:
        board.cleanup()
