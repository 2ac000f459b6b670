"""The machine flopgap runs on, as a :class:`~devices.base.Transport`.

Each command runs in its own subprocess (and process group), so a runtime that crashes or hangs fails one
point, not the sweep: on timeout the whole group is killed. Commands run under :mod:`devices.supervisor`'s script,
which kills them when flopgap dies (its stdin is a pipe flopgap holds open until the command ends); trials hold this
machine's device lock (:func:`devices.lock.local_lock`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from devices.base import Device, Machine, ShellReturn
from devices.binary import normalize_arch
from devices.bounded import drain, stderr_buffer, stdout_buffer
from devices.core.digest import file_digest
from devices.errors import DeviceError, DeviceTimeout, PullFailed, PushFailed, RunnerMissing
from devices.facts import DeviceFacts, DeviceState
from devices.linux_state import read_facts, read_state
from devices.lock import local_lock, registry
from devices.supervisor import signal_of, supervised
from devices.vocabulary import TransportKind


class LocalTransport:
    """Subprocesses on this machine; files stay where they are."""

    kind = TransportKind.LOCAL

    def __init__(self, name: str = "local", work_dir: Path | None = None, lock_dir: Path | None = None) -> None:
        self.name = name
        self._work_dir = work_dir
        self._owned_dir: Path | None = None
        self._lock_dir = lock_dir
        self._held = threading.local()  # commands run while this thread holds the lock are registered for reaping

    def __repr__(self) -> str:
        return f"LocalTransport({self.name!r})"

    @property
    def work_dir(self) -> Path:
        """Where commands write their files: the inventory's ``work_dir``, else a temporary dir of this session."""
        if self._work_dir is None:
            self._owned_dir = Path(tempfile.mkdtemp(prefix="flopgap-local-"))
            self._work_dir = self._owned_dir
        return self._work_dir

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        start = time.perf_counter()
        _check_startable(self.name, argv[0])
        reg = str(registry(self._lock_dir)) if getattr(self._held, "on", False) else ""
        # stdin: a pipe held open until the command ends, so the supervisor's watchdog sees EOF only if flopgap dies.
        leash, held = os.pipe()
        try:
            proc = subprocess.Popen(
                supervised(argv, registry=reg), stdin=leash, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            os.close(held)
            raise DeviceError(f"device '{self.name}': cannot start {argv[0]}: {exc.strerror}") from None
        finally:
            os.close(leash)
        # Streamed, head and tail kept: a command that floods its output neither fills memory nor blocks on a pipe.
        out, err = stdout_buffer(), stderr_buffer()
        readers = [drain(proc.stdout, out), drain(proc.stderr, err)]  # type: ignore[arg-type]
        try:
            proc.wait(timeout=timeout)
            for reader in readers:
                reader.join()
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise DeviceTimeout(
                f"device '{self.name}': '{' '.join(argv[:3])} ...' ran past {timeout:.0f}s and was killed; "
                "raise the point timeout or check the runtime"
            ) from None
        except KeyboardInterrupt:
            _kill_group(proc)
            raise
        finally:
            os.close(held)
        return ShellReturn(tuple(argv), signal_of(proc.returncode), out.text(), err.text(), time.perf_counter() - start)

    @contextlib.contextmanager
    def lock(self, on_wait: Callable[[str], None]) -> Iterator[list[str]]:
        """This machine's device lock (shared by every local device: they share the CPUs)."""
        with local_lock(self.name, on_wait, self._lock_dir) as reaped:
            self._held.on = True
            try:
                yield reaped
            finally:
                self._held.on = False

    def push(self, local: Path, executable: bool = False) -> str:
        # Local files need no copy; the command reads them where they are.
        if not local.is_file():
            raise PushFailed(f"device '{self.name}': {local} does not exist or is not a file")
        if executable and not os.access(local, os.X_OK):
            raise PushFailed(f"device '{self.name}': {local} is not executable; chmod +x it")
        return str(local.resolve())

    def pull(self, remote: str, local: Path) -> Path:
        try:
            shutil.copyfile(remote, local)
        except OSError as exc:
            raise PullFailed(f"device '{self.name}': cannot copy {remote} to {local}: {exc.strerror}") from None
        return local

    def fingerprint(self, remote: str) -> tuple[str, str] | None:
        try:
            return "sha256", file_digest(Path(remote))
        except OSError:
            return None

    def scratch(self, name: str) -> str:
        return str(self.work_dir / name)

    def machine(self) -> Machine:
        return this_machine()

    def facts(self) -> DeviceFacts:
        return {"transport": str(self.kind), **read_facts(self)}

    def state(self) -> DeviceState:
        return read_state(self)

    def cleanup(self) -> None:
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None
            self._work_dir = None

    def close(self) -> None:
        pass  # no connection


def this_machine() -> Machine:
    """The architecture flopgap itself runs on."""
    arch = normalize_arch(platform.machine())
    return Machine(arch, f"this machine is {arch}")


def local_device(
    name: str = "local", python: str = sys.executable, affinity: list[int] | None = None, facts_timeout: float = 60
) -> Device:
    """This machine running flopgap's runner with ``python`` (default: the interpreter running flopgap)."""
    from devices.agent import AgentBackend

    return Device(name, LocalTransport(name), AgentBackend(python, affinity, facts_timeout))


def _check_startable(device: str, program: str) -> None:
    """What exec would refuse, said before the supervisor's shell would only say 'not found' (exit 127)."""
    path = Path(program) if "/" in program else None
    missing = shutil.which(program) is None if path is None else not path.exists()
    if missing:
        raise RunnerMissing(f"device '{device}': '{program}' not found on this machine")
    if path is not None and (path.is_dir() or not os.access(path, os.X_OK)):
        raise DeviceError(f"device '{device}': cannot start {program}: Permission denied")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command's whole process group and reap it (its output threads end with the pipes)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
