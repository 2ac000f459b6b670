"""The SSH transport against a real OpenSSH server on 127.0.0.1, started by these tests, running the real runner."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.agent import AgentBackend
from devices.base import Device, Transport, TrialRequest
from devices.binary import binary_backend
from devices.errors import (
    AuthFailed,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyMismatch,
    HostKeyUnknown,
    NoSpaceLeft,
    PullFailed,
    RunnerMissing,
    WrongABI,
)
from devices.ssh import SshTransport
from devices.vocabulary import RunnerKind
from tests.conftest import Sshd, _free_port, _keygen, small_tmpfs


def _transport(sshd: Sshd, work: Path, **kw: object) -> SshTransport:
    opts: dict[str, object] = {
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "port": sshd.port,
        "key": sshd.client_key,
        "known_hosts": sshd.known_hosts,
        "work_dir": str(work),
        "connect_timeout": 60.0,  # the loopback sshd always answers, but under load its handshake can take seconds
    }
    opts.update(kw)
    return SshTransport("pi-test", "127.0.0.1", **opts)  # type: ignore[arg-type]


def _device(
    sshd: Sshd, work: Path, python: str = sys.executable, affinity: list[int] | None = None, **kw: object
) -> Device:
    """The board running flopgap's runner with ``python``."""
    return Device("pi-test", _transport(sshd, work, **kw), AgentBackend(python, affinity))


@pytest.fixture
def board(sshd: Sshd, tmp_path: Path) -> Iterator[SshTransport]:
    transport = _transport(sshd, tmp_path / "board")
    yield transport
    transport.cleanup()


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny_conv.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation chatter, not ours
        program = torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), dynamo=True, verbose=False)
    assert program is not None
    program.save(str(path))
    return path


def test_runner_measures_tiny_conv_over_ssh(sshd: Sshd, tiny_onnx: Path, tmp_path: Path) -> None:
    import onnxruntime  # type: ignore[import-untyped]

    cpu = min(os.sched_getaffinity(0))
    board = _device(sshd, tmp_path / "board", affinity=[cpu])  # the inventory's affinity reaches the runner
    assert isinstance(board.transport, Transport)
    remote = board.push(tiny_onnx)
    transport = board.transport
    assert isinstance(transport, SshTransport)
    sha = hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert remote == f"{tmp_path / 'board'}/artifacts/{sha}/tiny_conv.onnx"  # content-addressed, kept for reuse
    request = TrialRequest(threads=1, warmup_runs=2, warmup_seconds=0, runs=7, min_seconds=0, timeout_s=120)
    result = board.measure(tiny_onnx, request)
    assert result.runtime == "onnxruntime" and result.runtime_version == onnxruntime.__version__
    assert result.threads == 1 and result.details["model_path"] == remote
    assert len(result.samples_ns) >= 7 and min(result.samples_ns) > 0
    assert result.affinity == (cpu,)
    assert result.state_before is not None and result.state_before["time_unix"] > 0

    facts = board.facts()
    assert facts["runtimes"]["onnxruntime"] == onnxruntime.__version__
    assert facts["cpu_count"] == os.cpu_count() and facts["hostname"] == socket.gethostname()
    assert facts["transport"] == "ssh" and facts["system"] == "Linux"  # the transport's own facts, merged
    board.cleanup()


def test_binary_for_another_architecture_is_refused_by_uname(sshd: Sshd, tmp_path: Path) -> None:
    import platform
    import struct

    machine, arch = (183, "aarch64") if platform.machine() != "aarch64" else (62, "x86_64")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HH", 2, machine) + bytes(64))
    dev = Device("pi-test", _transport(sshd, tmp_path / "board"), binary_backend(RunnerKind.BENCHMARK_MODEL, binary))
    with pytest.raises(WrongABI) as info:
        dev.push_binary()
    assert f"benchmark_model is built for {arch} but the board's uname -m is {platform.machine()}" in str(info.value)
    dev.cleanup()


def test_push_skips_a_file_already_there(board: SshTransport, tmp_path: Path) -> None:
    f = tmp_path / "m.onnx"
    f.write_bytes(b"\x00" * 1000)
    first = board.push(f)
    mtime = os.stat(first).st_mtime_ns  # the "board" is this machine: its files are visible here
    time.sleep(0.02)
    assert board.push(f) == first
    assert os.stat(first).st_mtime_ns == mtime  # not sent again
    f.write_bytes(b"\x01" * 1000)  # same name, new content: a new place, the old one untouched
    second = board.push(f)
    assert second != first and Path(second).read_bytes() == b"\x01" * 1000


def test_pushes_are_reused_across_sessions_and_stale_session_dirs_cleaned(sshd: Sshd, tmp_path: Path) -> None:
    from devices.ssh import session_tag

    work = tmp_path / "board"
    f = tmp_path / "m.onnx"
    f.write_bytes(b"\x02" * 1000)
    first = _transport(sshd, work)
    remote = first.push(f)
    mtime = os.stat(remote).st_mtime_ns
    first.cleanup()  # the session ends; its artifacts stay for the next one (and for `run` after `push`)
    host = session_tag().split(".")[0]
    dead = work / f"run.{host}.{2**22 + 7}.AbCdEfGh"  # a pid above pid_max: a flopgap that is gone
    alive = work / f"run.{host}.{os.getpid()}.AbCdEfGh"  # a live flopgap's session on this host
    other = work / "run.otherhost.12.AbCdEfGh"  # another host's: not ours to judge, and recent
    for d in (dead, alive, other):
        d.mkdir()
    time.sleep(0.02)
    second = _transport(sshd, work)
    try:
        assert second.push(f) == remote and os.stat(remote).st_mtime_ns == mtime  # found by hash, not sent again
        assert second.run(["true"], timeout=30).ok  # the first command makes the session's dir, and cleans up
        assert not dead.exists() and alive.is_dir() and other.is_dir()
    finally:
        second.cleanup()
    assert not list(work.glob("**/*.part-*"))  # no half-sent files


def test_a_copy_changed_on_the_board_is_pushed_again_before_the_trial(
    sshd: Sshd, tiny_onnx: Path, tmp_path: Path
) -> None:
    board = _device(sshd, tmp_path / "board")
    notices: list[str] = []
    board.notify = notices.append
    request = TrialRequest(warmup_runs=1, warmup_seconds=0, runs=3, min_seconds=0, timeout_s=120)
    sha = hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    try:
        board.measure(tiny_onnx, request, sha256=sha)
        remote = Path(board.push(tiny_onnx))
        remote.write_bytes(b"another model")  # swapped on the board between trials
        result = board.measure(tiny_onnx, request, sha256=sha)
        assert len(result.samples_ns) >= 3 and result.details["model_path"] == str(remote)
        assert hashlib.sha256(remote.read_bytes()).hexdigest() == sha
        assert notices == [
            f"device 'pi-test': {remote} there has sha256 {hashlib.sha256(b'another model').hexdigest()}, not sha256 "
            f"{sha}; pushing it again"
        ]
    finally:
        board.cleanup()


def test_hostile_file_name_travels_intact_and_runs_nothing(board: SshTransport, tmp_path: Path) -> None:
    marker = f"flopgap-pwned-{os.getpid()}"
    name = f"a b; touch {marker}; $(touch {marker}2) `touch {marker}3` 'q\" $HOME.onnx"
    f = tmp_path / name
    f.write_bytes(b"payload \x00\xff\n")
    remote = board.push(f)
    assert Path(remote).name == name
    res = board.run(["cat", remote], timeout=30)
    assert res.ok and res.stdout == "payload \x00\ufffd\n"  # bytes that are not UTF-8 decode as U+FFFD
    back = board.pull(remote, tmp_path / "back.bin")
    assert back.read_bytes() == b"payload \x00\xff\n"
    res = board.run(["echo", "$(id)", ";", "`id`", "|", "x"], timeout=30)
    assert res.stdout == "$(id) ; `id` | x\n"
    for where in (Path(pwd.getpwuid(os.getuid()).pw_dir), Path(board.remote_dir), tmp_path, Path.cwd()):
        assert not list(where.glob(f"{marker}*")), where


def test_run_returns_code_stdout_stderr_in_work_dir(board: SshTransport) -> None:
    res = board.run(["sh", "-c", 'echo "out $(pwd)"; echo err >&2; exit 3'], timeout=30)
    assert (res.returncode, res.stdout, res.stderr) == (3, f"out {board.remote_dir}\n", "err\n")
    assert res.argv == ("sh", "-c", 'echo "out $(pwd)"; echo err >&2; exit 3')


def test_timeout_kills_the_remote_process_group(board: SshTransport) -> None:
    tag = f"31.{os.getpid() % 1000:03d}7"  # a sleep only this test starts
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="pi-test"):
        board.run(["sh", "-c", f"sleep {tag}; echo done"], timeout=1)
    assert time.monotonic() - t0 < 20  # the 1 s timeout cut it, not the 31 s sleep (margin for a loaded machine)
    deadline = time.monotonic() + 30
    while _processes_with(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(tag) == []
    assert board.run(["true"], timeout=10).ok  # the connection is still usable


def _processes_with(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def test_cleanup_removes_the_work_dir(sshd: Sshd, tmp_path: Path) -> None:
    dev = _transport(sshd, tmp_path / "board")
    f = tmp_path / "x.onnx"
    f.write_bytes(b"x")
    remote = dev.push(f)
    work = Path(dev.remote_dir)
    assert Path(remote).is_file() and work.parent == tmp_path / "board"
    dev.cleanup()
    assert not work.exists() and (tmp_path / "board").is_dir()
    dev.cleanup()  # twice is fine
    assert Path(dev.push(f)).is_file()  # and the device can start a new session
    dev.cleanup()


def test_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyUnknown) as exc:
        _transport(sshd, tmp_path, known_hosts=empty).run(["true"], timeout=10)
    msg = str(exc.value)
    keygen = subprocess.run(["ssh-keygen", "-lf", str(sshd.dir / "host_ed25519.pub")], capture_output=True, text=True)
    fingerprint = keygen.stdout.split()[1]  # what the user compares on the board
    assert "\n" not in msg and "pi-test" in msg and f"ssh-ed25519 {fingerprint}" in msg
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in msg
    assert empty.read_text() == ""  # never added


def test_changed_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = _keygen(tmp_path / "impostor")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {other.with_suffix('.pub').read_text()}")
    with pytest.raises(HostKeyMismatch, match=r"device 'pi-test': host key of \[127.0.0.1\]:\d+ CHANGED") as exc:
        _transport(sshd, tmp_path, known_hosts=kh).run(["touch", str(tmp_path / "ran")], timeout=10)
    assert "\n" not in str(exc.value) and "ssh-keygen -R" in str(exc.value)
    assert not (tmp_path / "ran").exists()


def test_hashed_known_hosts_entry_is_accepted(sshd: Sshd, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    shutil.copy(sshd.known_hosts, kh)
    subprocess.run(["ssh-keygen", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert kh.read_text().startswith("|1|")
    dev = _transport(sshd, tmp_path / "board", known_hosts=kh)
    assert dev.run(["echo", "ok"], timeout=10).stdout == "ok\n"
    dev.cleanup()


def test_wrong_client_key_fails_auth(sshd: Sshd, tmp_path: Path) -> None:
    stranger = _keygen(tmp_path / "stranger")
    with pytest.raises(AuthFailed, match=f"device 'pi-test': .*127.0.0.1:{sshd.port} refused key {stranger}"):
        _transport(sshd, tmp_path, key=stranger).run(["true"], timeout=10)


def test_closed_port_is_unreachable_quickly(sshd: Sshd, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(DeviceUnreachable, match="device 'pi-test': cannot reach"):
        _transport(sshd, tmp_path, port=_free_port(), connect_timeout=30.0).run(["true"], timeout=10)
    assert time.monotonic() - t0 < 20  # refused at once: no wait for the 30 s connect timeout


def test_missing_python_is_runner_missing(sshd: Sshd, tmp_path: Path) -> None:
    dev = _device(sshd, tmp_path / "board", python="/nonexistent/python3")
    with pytest.raises(RunnerMissing, match="device 'pi-test': '/nonexistent/python3' not found on the board"):
        dev.facts()
    dev.cleanup()


def test_pull_of_missing_file_names_it(board: SshTransport, tmp_path: Path) -> None:
    with pytest.raises(PullFailed, match=r"no-such\.json"):
        board.pull(f"{board.remote_dir}/no-such.json", tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.json.part").exists()


def test_full_disk_is_no_space_left(sshd: Sshd, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "256k") as small:
        dev = _transport(sshd, small)
        big = tmp_path / "big.onnx"
        big.write_bytes(os.urandom(1 << 20))
        with pytest.raises(NoSpaceLeft, match=f"device 'pi-test': no space left under {small}"):
            dev.push(big)
        dev.cleanup()
