"""Boards over SSH (Raspberry Pi, Jetson, RK3588, any Linux with a POSIX shell) as a :class:`~devices.base.Transport`.

Connecting (host keys, keys, typed errors) is :mod:`devices.ssh_connect`. Safety rules kept here:

- Commands are argv lists. The one shell string sent, ``sh -c SCRIPT sh ARG...``, is built with
  :func:`shlex.join`; the script is a constant and every path or argument reaches it as a positional parameter.
- Every command runs under :mod:`devices.supervisor`'s script and the board's ``timeout``: the script kills the
  command when its channel's stdin ends, i.e. when flopgap closes the channel (past the deadline, on Ctrl-C) or dies
  or loses the connection, so nothing keeps running after :class:`~devices.errors.DeviceTimeout` or ``kill -9``. A
  command killed by a signal is reported as that signal (the script's ``128+N``), not as paramiko's -1.
- Trials hold the board's device lock (:data:`devices.lock.REMOTE_LOCK`) on a channel of their own.
- Files travel by SFTP to ``<work_dir>/artifacts/<sha256>/``, content-addressed and kept for later sessions; what
  commands write goes to a per-session dir (``mktemp -d`` under ``work_dir``), removed by :meth:`cleanup`; session
  dirs left by a flopgap that died are removed when the next one starts.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import posixpath
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko

from devices.base import Machine, ShellReturn
from devices.binary import normalize_arch
from devices.bounded import stderr_buffer, stdout_buffer
from devices.core.digest import file_digest
from devices.errors import (
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    NoSpaceLeft,
    PullFailed,
    PushFailed,
    RunnerMissing,
)
from devices.facts import DeviceFacts, DeviceState
from devices.linux_state import read_facts, read_state
from devices.lock import REMOTE_LOCK, busy_message, holder, stale_message
from devices.ssh_connect import DEFAULT_SSH_CONFIG, SshTarget, connect, os_message, resolve
from devices.supervisor import REAP, signal_of, supervised
from devices.vocabulary import TransportKind

_SETUP_TIMEOUT_S = 30.0


class SshTransport:
    """One board reached over SSH; one connection and one remote work dir per session (until :meth:`cleanup`).

    Safe to use from one worker thread per device: connection, work dir and SFTP are guarded by a lock, and
    each command gets its own channel.
    """

    kind = TransportKind.SSH

    def __init__(
        self,
        name: str,
        host: str,
        *,
        user: str | None = None,
        port: int | None = None,
        key: Path | None = None,
        known_hosts: Path = Path("~/.ssh/known_hosts"),
        work_dir: str = "/tmp/flopgap",
        connect_timeout: float = 10.0,
        ssh_config: Path | None = DEFAULT_SSH_CONFIG,
    ) -> None:
        self.name = name
        key = key.expanduser() if key else None
        self.target: SshTarget = resolve(
            name, host, user=user, port=port, key=key, known_hosts=known_hosts, timeout=connect_timeout,
            ssh_config=ssh_config,
        )  # fmt: skip
        self.work_dir = work_dir.rstrip("/") or "/"
        self._lock = threading.RLock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._dir: str | None = None
        self._has_timeout = True
        self._hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256
        self._sent: dict[tuple[str, str], str] = {}  # (sha256, extension) -> a path on the board holding those bytes
        self._machine: Machine | None = None
        self._held = threading.local()  # commands run while this thread holds the lock are registered for reaping

    def __repr__(self) -> str:
        return f"SshTransport({self.name!r}, {self.target.where})"

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ Transport protocol

    @property
    def remote_dir(self) -> str:
        """This session's work dir on the board (created on first use with ``mktemp -d`` under ``work_dir``)."""
        with self._lock:
            if self._dir is None:
                self._dir = self._make_session_dir()
            return self._dir

    def machine(self) -> Machine:
        """The board's architecture, from ``uname -m`` (read once per session)."""
        if self._machine is None:
            res = self.run(["uname", "-m"], timeout=_SETUP_TIMEOUT_S)
            raw = res.stdout.strip()
            self._machine = Machine(normalize_arch(raw) if res.ok and raw else None, f"the board's uname -m is {raw}")
        return self._machine

    def facts(self) -> DeviceFacts:
        return {"transport": str(self.kind), "host": self.target.where, **read_facts(self)}

    def state(self) -> DeviceState:
        return read_state(self)

    def scratch(self, name: str) -> str:
        return posixpath.join(self.remote_dir, name)

    def push(self, local: Path, executable: bool = False) -> str:
        """Copy ``local`` to ``<work_dir>/artifacts/<sha256>/<its name>`` over SFTP, unless a file with that content is
        already there (``sha256sum`` on the board): pushes are reused across sessions and by ``run`` after ``push``,
        and within a session the same bytes under another name (same extension) are not sent again.

        The copy lands under a temporary name and is renamed into place, so a half-sent file never carries the hash.
        """
        if not local.is_file():
            raise PushFailed(f"device '{self.name}': {local} does not exist or is not a file")
        sha = self._sha256(local)
        folder = posixpath.join(self.work_dir, "artifacts", sha)
        remote = posixpath.join(folder, local.name)
        content = (sha, local.suffix.lower())  # the runner reads the extension: only a copy with the same one will do
        with self._lock:
            for there in dict.fromkeys((self._sent.get(content), remote)):
                if there is not None and self.fingerprint(there) == ("sha256", sha):
                    self._sent[content] = there
                    return there
            part = f"{remote}.part-{self.remote_dir.rsplit('.', 1)[-1]}"
            sftp = self._sftp_client()
            try:
                self._exec(["mkdir", "-p", "--", folder], _SETUP_TIMEOUT_S)
                sftp.put(str(local), part, confirm=True)
                sftp.chmod(part, 0o755 if executable else 0o644)
                sftp.posix_rename(part, remote)
            except OSError as exc:  # paramiko raises IOError (OSError) for SFTP status errors
                with contextlib.suppress(OSError):
                    sftp.remove(part)
                if self._is_full(exc, folder, local.stat().st_size):
                    raise NoSpaceLeft(
                        f"device '{self.name}': no space left under {self.work_dir} while pushing {local.name} "
                        f"({local.stat().st_size / 1e6:.1f} MB); free space on the board or set another work_dir"
                    ) from None
                raise PushFailed(
                    f"device '{self.name}': cannot push {local.name} to {remote}: {os_message(exc)}"
                ) from None
            self._sent[content] = remote
            return remote

    def fingerprint(self, remote: str) -> tuple[str, str] | None:
        """``("sha256", hex)`` of a file on the board, None when it is not there."""
        res = self._exec(["sha256sum", "--", remote], _SETUP_TIMEOUT_S)
        words = res.stdout.split()
        return ("sha256", words[0].lower()) if res.ok and words else None

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        """Run ``argv`` in the session work dir; raise :class:`DeviceTimeout` (and kill it) past ``timeout``.

        Exit code 127 (the board has no such program) raises :class:`RunnerMissing`, as a missing executable
        raises on the local transport.
        """
        if not argv:
            raise ValueError("empty argv")
        work = self.remote_dir
        reg = posixpath.join(self.work_dir, "running") if getattr(self._held, "on", False) else ""
        limit = math.ceil(timeout) + 2 if self._has_timeout else None
        res = self._exec(supervised(argv, work, reg, limit), timeout, shown=argv)
        if res.returncode == 127:
            raise RunnerMissing(
                f"device '{self.name}': '{argv[0]}' not found on the board ({res.last_line()}); "
                'install it or set its path in the inventory (e.g. python = "/usr/bin/python3")'
            )
        if self._has_timeout and res.returncode in (124, 137, -1) and res.elapsed_s >= timeout:
            raise _timeout_error(self.name, argv, timeout)  # the board's own `timeout` fired first
        return ShellReturn(res.argv, signal_of(res.returncode), res.stdout, res.stderr, res.elapsed_s)

    @contextmanager
    def lock(self, on_wait: Callable[[str], None]) -> Iterator[list[str]]:
        """The board's device lock, held by a shell on a channel of its own until this context ends (or flopgap
        dies: the channel closes and the shell lets go); yields the notices of stale runners it killed."""
        try:
            chan = self._connection().open_session()
            chan.exec_command(shlex.join(["sh", "-c", REMOTE_LOCK, "sh", self.work_dir, holder(), REAP]))
        except (paramiko.SSHException, EOFError, OSError) as exc:  # paramiko's EOFError: the board went away
            self.close()
            why = str(exc) or type(exc).__name__
            raise DeviceUnreachable(f"device '{self.name}': lost connection to {self.target.where} ({why})") from None
        try:
            notices = self._await_lock(chan, on_wait)
            self._held.on = True
            yield notices
        finally:
            self._held.on = False
            chan.close()  # the holder's stdin ends: it exits and the lock is free

    def _await_lock(self, chan: paramiko.Channel, on_wait: Callable[[str], None]) -> list[str]:
        notices: list[str] = []
        buffer = b""
        while True:
            data = chan.recv(4096)
            if not data:
                err = chan.recv_stderr(4096).decode(errors="replace").strip()
                raise DeviceError(
                    f"device '{self.name}': cannot take the device lock in {self.work_dir} ({err or 'no answer'}); "
                    "set a writable work_dir in the inventory"
                )
            buffer += data
            *lines, rest = buffer.split(b"\n")
            buffer = rest
            for raw in lines:
                line = raw.decode(errors="replace")
                if line.startswith("busy "):
                    on_wait(busy_message(self.name, line.removeprefix("busy ")))
                elif line.startswith("stale "):
                    notices.append(stale_message(self.name, line.removeprefix("stale ")))
                elif line == "locked":
                    return notices

    def pull(self, remote: str, local: Path) -> Path:
        part = local.with_name(local.name + ".part")
        with self._lock:
            try:
                self._sftp_client().get(remote, str(part))
            except OSError as exc:
                part.unlink(missing_ok=True)
                raise PullFailed(f"device '{self.name}': cannot pull {remote} to {local}: {os_message(exc)}") from None
        part.replace(local)
        return local

    def cleanup(self) -> None:
        """Remove this session's work dir on the board and close the connection (best effort, never raises)."""
        with self._lock:
            if self._dir is not None:
                try:
                    self._exec(["rm", "-rf", "--", self._dir], _SETUP_TIMEOUT_S)
                except DeviceError as exc:
                    logging.getLogger(__name__).warning("%s; %s was left on the board", exc, self._dir)
                    # removed at this process's next contact with the board (a later process: by its dead pid)
                    _LEFT_BEHIND.setdefault((self.target.where, self.work_dir), set()).add(self._dir)
                self._dir = None
            self.close()

    def close(self) -> None:
        """Close the connection (the work dir stays; a later call reconnects)."""
        with self._lock:
            # Closing says goodbye over the connection: on a dead one paramiko raises (EOFError, socket errors),
            # and a close must never replace the error that made flopgap close it.
            if self._sftp is not None:
                with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
                    self._sftp.close()
                self._sftp = None
            if self._client is not None:
                with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
                    self._client.close()
                self._client = None

    # ------------------------------------------------------------------ connection

    def _connection(self) -> paramiko.Transport:
        with self._lock:
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                self.close()
                self._client = connect(self.target)
                transport = self._client.get_transport()
                assert transport is not None
            return transport

    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            transport = self._connection()
            if self._sftp is None:  # close() drops it whenever the connection is replaced
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except paramiko.SSHException as exc:
                    raise DeviceError(
                        f"device '{self.name}': SFTP is not available on {self.target.where}: {exc}"
                    ) from None
                if self._sftp is None:
                    raise DeviceError(f"device '{self.name}': SFTP is not available on {self.target.where}")
            return self._sftp

    # ------------------------------------------------------------------ commands

    def _exec(self, argv: list[str], timeout: float, shown: list[str] | None = None) -> ShellReturn:
        """Run ``argv`` (joined with shlex, so the login shell sees each word quoted) and collect its output.

        stdin stays open while it runs: a supervised command takes its end (closing the channel) as flopgap gone.
        """
        shown = shown if shown is not None else argv
        start = time.perf_counter()
        deadline = start + timeout
        try:
            chan = self._connection().open_session()
            chan.exec_command(shlex.join(argv))
        except (paramiko.SSHException, EOFError, OSError) as exc:  # paramiko's EOFError: the board went away
            self.close()
            why = str(exc) or type(exc).__name__
            raise DeviceUnreachable(f"device '{self.name}': lost connection to {self.target.where} ({why})") from None
        out, err = stdout_buffer(), stderr_buffer()  # head and tail kept: a flood neither fills memory nor stalls
        try:
            while True:
                while chan.recv_ready():
                    out.add(chan.recv(1 << 16))
                while chan.recv_stderr_ready():
                    err.add(chan.recv_stderr(1 << 16))
                if chan.exit_status_ready() and (chan.eof_received or chan.closed):
                    if not chan.recv_ready() and not chan.recv_stderr_ready():
                        break
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise _timeout_error(self.name, shown, timeout)  # the handler below kills it
                select.select([chan], [], [], min(remaining, 0.05))
        except BaseException:  # timeout, Ctrl-C, lost connection: closing the channel ends the supervised command
            chan.close()
            raise
        status = chan.recv_exit_status()
        chan.close()
        if status == -1 and not self._connection_alive():
            raise DeviceUnreachable(f"device '{self.name}': lost connection to {self.target.where} during {shown[0]}")
        return ShellReturn(
            tuple(shown),
            status,
            out.text(),
            err.text(),
            time.perf_counter() - start,
        )

    def _connection_alive(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _make_session_dir(self) -> str:
        # run.<host>.<pid>.XXXXXXXX: who made it, so a later session can tell a dead one's dir (see _clean_stale)
        script = (
            'mkdir -p -- "$1" && d=$(mktemp -d "$1/run.$2.XXXXXXXX") && echo "$d" && '
            "if command -v timeout >/dev/null 2>&1; then echo timeout; fi; "
            'cd "$1" && for o in run.*; do [ "$1/$o" = "$d" ] || [ ! -d "$o" ] || echo "session $o"; done; '
            'find . -maxdepth 1 -name "run.*" -type d -mtime +7 | sed "s|^./|old |"'
        )
        res = self._exec(["sh", "-c", script, "sh", self.work_dir, session_tag()], _SETUP_TIMEOUT_S)
        lines = res.stdout.split("\n")
        if not res.ok or not lines[0].startswith(self.work_dir.rstrip("/") + "/run."):
            why = res.last_line()
            if "No space left" in why:
                raise NoSpaceLeft(f"device '{self.name}': no space left to create a work dir under {self.work_dir}")
            raise DeviceError(
                f"device '{self.name}': cannot create a work dir under {self.work_dir} ({why}); set a writable "
                "work_dir in the inventory"
            )
        self._has_timeout = "timeout" in lines[1:]
        stale = [posixpath.join(self.work_dir, d) for d in stale_sessions(lines[1:])]
        stale += sorted(_LEFT_BEHIND.pop((self.target.where, self.work_dir), set()))
        if stale:
            self._exec(["rm", "-rf", "--", *stale], _SETUP_TIMEOUT_S)
        return lines[0]

    # ------------------------------------------------------------------ helpers

    def _sha256(self, local: Path) -> str:
        st = local.stat()
        key = (str(local.resolve()), st.st_size, st.st_mtime_ns)
        sha = self._hashes.get(key)
        if sha is None:
            sha = self._hashes[key] = file_digest(local)
        return sha

    def _is_full(self, exc: OSError, folder: str, needed: int) -> bool:
        """ENOSPC, said plainly or not: OpenSSH's sftp-server reports it as a bare 'Failure', so ask ``df``."""
        if exc.errno == errno.ENOSPC or "No space left" in str(exc):
            return True
        try:
            res = self._exec(["df", "-Pk", posixpath.dirname(folder)], _SETUP_TIMEOUT_S)
            avail_kib = int(res.stdout.strip().splitlines()[-1].split()[3])
        except (DeviceError, ValueError, IndexError):
            return False
        return avail_kib * 1024 < needed


# Session dirs this process could not remove (the board was gone when its session ended), per (board, work_dir).
_LEFT_BEHIND: dict[tuple[str, str], set[str]] = {}


def session_tag() -> str:
    """``<host>.<pid>`` of this flopgap, as its session dirs on a board are named."""
    return f"{re.sub(r'[^A-Za-z0-9-]', '-', socket.gethostname())}.{os.getpid()}"


def stale_sessions(listing: list[str]) -> list[str]:
    """The session dirs (``session run.<host>.<pid>.X`` and ``old run.X`` lines) whose flopgap is gone: made on
    this host by a pid that no longer runs, or (any host) untouched for over a week."""
    host = session_tag().split(".")[0]
    stale = {line.split(" ", 1)[1] for line in listing if line.startswith("old ")}
    for line in listing:
        if not line.startswith("session "):
            continue
        name = line.split(" ", 1)[1]
        parts = name.split(".")
        if len(parts) == 4 and parts[1] == host and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            stale.add(name)
    return sorted(stale)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _timeout_error(name: str, argv: list[str], timeout: float) -> DeviceTimeout:
    return DeviceTimeout(
        f"device '{name}': '{' '.join(argv[:3])} ...' ran past {timeout:.0f}s and was killed; "
        "raise the point timeout or check the runtime"
    )
