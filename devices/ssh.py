"""Boards over SSH (Raspberry Pi, Jetson, RK3588, any Linux with Python) as a :class:`~devices.base.Device`.

Why paramiko and not the system ``ssh``/``scp`` client: paramiko raises typed exceptions for a changed host key
(``BadHostKeyException``), an unknown one (the missing-host-key policy) and a refused key
(``AuthenticationException``), so each maps to one typed :class:`~devices.base.DeviceError` without parsing
``ssh`` stderr in whatever language the host is set to; SFTP moves files by path, with no remote shell and so no
quoting; one connection is kept and reused for every command without ControlMaster sockets; and it works on hosts
that have no OpenSSH client. The price: ``~/.ssh/config`` is not read (no host aliases, no ProxyJump), so the
inventory names the host, user, port and key itself.

Safety rules kept here:

- Host keys are checked against ``known_hosts`` and unknown hosts are rejected (never added automatically).
- Commands are argv lists. The one shell string sent, ``sh -c SCRIPT sh ARG...``, is built with
  :func:`shlex.join`; the script is a constant and every path or argument reaches it as a positional parameter.
- Every command runs under the board's ``timeout`` (its own process group); past the deadline the host kills
  that group through a second channel, so nothing keeps running after :class:`~devices.base.DeviceTimeout`.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import math
import posixpath
import select
import shlex
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn

import paramiko

from devices.base import ShellReturn
from devices.errors import (
    AuthFailed,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyMismatch,
    HostKeyUnknown,
    NoSpaceLeft,
    PullFailed,
    PushFailed,
    RunnerMissing,
)

RUNNER_PATH = Path(__file__).with_name("runner.py")
KILL_AFTER_S = 3  # the board's `timeout` follows SIGTERM with SIGKILL this much later
_SETUP_TIMEOUT_S = 30.0

# paramiko logs transport errors itself; without a handler Python would print them to stderr next to our one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"{hostname} not found in known_hosts")
        self.key = key


class _RejectUnknownHost(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, keeping the offered key so the error can show its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise _UnknownHostKey(hostname, key)


class SshDevice:
    """One board reached over SSH; one connection and one remote work dir per session (until :meth:`cleanup`).

    Safe to use from one worker thread per device: connection, work dir and SFTP are guarded by a lock, and
    each command gets its own channel.
    """

    transport = "ssh"

    def __init__(
        self,
        name: str,
        host: str,
        *,
        user: str | None = None,
        port: int = 22,
        key: Path | None = None,
        known_hosts: Path = Path("~/.ssh/known_hosts"),
        python: str = "python3",
        work_dir: str = "/tmp/flopgap",
        runner: str = "agent",
        binary: Path | None = None,
        affinity: list[int] | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.host = host
        self.user = user
        self.port = port
        self.key = key.expanduser() if key else None
        self.known_hosts = known_hosts.expanduser()
        self.python = python
        self.work_dir = work_dir.rstrip("/") or "/"
        self.runner = runner
        self.binary = binary
        self.affinity = affinity
        self.connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._dir: str | None = None
        self._has_timeout = True
        self._pushed: dict[str, str] = {}  # sha256 -> remote path, this session
        self._hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256
        self._agent: list[str] | None = None

    def __repr__(self) -> str:
        return f"SshDevice({self.name!r}, {self._where})"

    def __enter__(self) -> SshDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @property
    def _where(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    @property
    def _host_key_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    # ------------------------------------------------------------------ Device protocol

    @property
    def remote_dir(self) -> str:
        """This session's work dir on the board (created on first use with ``mktemp -d`` under ``work_dir``)."""
        with self._lock:
            if self._dir is None:
                self._dir = self._make_session_dir()
            return self._dir

    def runner_argv(self) -> list[str]:
        """How to start flopgap's runner on the board; pushes ``runner.py`` and checks Python once per session."""
        if self.runner != "agent":
            raise DeviceError(
                f"device '{self.name}' runs '{self.runner}', not flopgap's agent; set runner = \"agent\" in the "
                "inventory to measure with runner.py"
            )
        argv = self._agent_argv()
        if self.affinity:
            argv += ["--affinity", ",".join(str(c) for c in self.affinity)]
        return argv

    def push_binary(self) -> str:
        """Push the configured benchmark binary (``benchmark_model``, ...) as an executable; its path on the board."""
        if self.binary is None:
            raise DeviceError(f"device '{self.name}' has no benchmark binary; set binary = \"PATH\" in the inventory")
        remote = self.push(self.binary)
        with self._lock:
            self._sftp_client().chmod(remote, 0o755)
        return remote

    def facts(self) -> dict[str, Any]:
        res = self.run([*self._agent_argv(), "--facts"], timeout=60)
        if not res.ok:
            raise DeviceError(f"device '{self.name}': runner --facts failed: {_last_line(res)}")
        try:
            facts: dict[str, Any] = json.loads(res.stdout)
        except json.JSONDecodeError:
            raise DeviceError(f"device '{self.name}': runner --facts printed no JSON: {_last_line(res)}") from None
        return facts

    def push(self, local: Path) -> str:
        """Copy ``local`` into this session's work dir over SFTP; a file already pushed (same sha256) is not resent.

        Each file lands in a folder named by its hash, under its own name (the runner reads the extension).
        """
        if not local.is_file():
            raise PushFailed(f"device '{self.name}': {local} does not exist or is not a file")
        sha = self._sha256(local)
        with self._lock:
            known = self._pushed.get(sha)
            if known is not None and self._remote_size(known) == local.stat().st_size:
                return known
            folder = posixpath.join(self.remote_dir, sha[:16])
            remote = posixpath.join(folder, local.name)
            sftp = self._sftp_client()
            try:
                if self._remote_size(folder) is None:
                    sftp.mkdir(folder)
                sftp.put(str(local), remote, confirm=True)
            except OSError as exc:  # paramiko raises IOError (OSError) for SFTP status errors
                if self._is_full(exc, folder, local.stat().st_size):
                    raise NoSpaceLeft(
                        f"device '{self.name}': no space left under {self.work_dir} while pushing {local.name} "
                        f"({local.stat().st_size / 1e6:.1f} MB); free space on the board or set another work_dir"
                    ) from None
                raise PushFailed(
                    f"device '{self.name}': cannot push {local.name} to {remote}: {_os_msg(exc)}"
                ) from None
            self._pushed[sha] = remote
            return remote

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        """Run ``argv`` in the session work dir; raise :class:`DeviceTimeout` (and kill it) past ``timeout``.

        Exit code 127 (the board has no such program) raises :class:`RunnerMissing`, as a missing executable
        raises on the local transport.
        """
        if not argv:
            raise ValueError("empty argv")
        work = self.remote_dir
        pidfile = posixpath.join(work, f".pid-{uuid.uuid4().hex[:12]}")
        # $$ is this sh, which execs `timeout`: its pid is then the process group `timeout` puts itself and the
        # command in, and the group the host kills on a deadline (`kill -- -PGID`).
        guard = f"timeout -k {KILL_AFTER_S} {math.ceil(timeout) + 2} " if self._has_timeout else ""
        script = f'cd {shlex.quote(work)} && echo $$ > {shlex.quote(pidfile)} && exec {guard}"$@"'
        res = self._exec(["sh", "-c", script, "sh", *argv], timeout, pidfile=pidfile, shown=argv)
        if res.returncode == 127:
            raise RunnerMissing(
                f"device '{self.name}': '{argv[0]}' not found on the board ({_last_line(res)}); "
                'install it or set its path in the inventory (e.g. python = "/usr/bin/python3")'
            )
        if self._has_timeout and res.returncode in (124, 137, -1) and res.elapsed_s >= timeout:
            raise _timeout_error(self.name, argv, timeout)  # the board's own `timeout` fired first
        return res

    def pull(self, remote: str, local: Path) -> Path:
        part = local.with_name(local.name + ".part")
        with self._lock:
            try:
                self._sftp_client().get(remote, str(part))
            except OSError as exc:
                part.unlink(missing_ok=True)
                raise PullFailed(f"device '{self.name}': cannot pull {remote} to {local}: {_os_msg(exc)}") from None
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
                self._dir = None
            self._pushed.clear()
            self._agent = None
            self.close()

    def close(self) -> None:
        """Close the connection (the work dir stays; a later call reconnects)."""
        with self._lock:
            if self._sftp is not None:
                self._sftp.close()
                self._sftp = None
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------------ connection

    def _connection(self) -> paramiko.Transport:
        with self._lock:
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                self.close()
                self._client = self._connect()
                transport = self._client.get_transport()
                assert transport is not None
            return transport

    def _connect(self) -> paramiko.SSHClient:
        if self.key is not None and not self.key.is_file():
            raise AuthFailed(f"device '{self.name}': ssh key {self.key} does not exist; fix `key` in the inventory")
        client = paramiko.SSHClient()
        if self.known_hosts.is_file():
            try:
                client.load_system_host_keys(str(self.known_hosts))  # read only: never written back
            except (OSError, paramiko.SSHException) as exc:
                raise DeviceError(f"device '{self.name}': cannot read {self.known_hosts}: {exc}") from None
        client.set_missing_host_key_policy(_RejectUnknownHost())
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                key_filename=str(self.key) if self.key else None,
                # With an explicit key, use only that key, so a wrong key fails here rather than another key passing.
                allow_agent=self.key is None,
                look_for_keys=self.key is None,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
            )
        except _UnknownHostKey as exc:
            client.close()
            raise HostKeyUnknown(
                f"device '{self.name}': host {self._host_key_name} is not in {self.known_hosts} (it offers "
                f"{exc.key.get_name()} {_fingerprint(exc.key)}); check that fingerprint on the board "
                f"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then run: "
                f"ssh-keyscan -p {self.port} {shlex.quote(self.host)} >> {shlex.quote(str(self.known_hosts))}"
            ) from None
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyMismatch(
                f"device '{self.name}': host key of {self._host_key_name} CHANGED (offers {exc.key.get_name()} "
                f"{_fingerprint(exc.key)}, {self.known_hosts} has {_fingerprint(exc.expected_key)}); not connecting. "
                f"If the board was reinstalled, verify the new key, then run: "
                f"ssh-keygen -R {shlex.quote(self._host_key_name)} -f {shlex.quote(str(self.known_hosts))}"
            ) from None
        except paramiko.PasswordRequiredException:
            client.close()
            raise AuthFailed(
                f"device '{self.name}': ssh key {self.key} is passphrase-protected; add it to ssh-agent and "
                "leave `key` unset in the inventory"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            which = f"key {self.key}" if self.key else "the ssh-agent and default keys"
            raise AuthFailed(
                f"device '{self.name}': {self._where} refused {which}; add the public key to "
                "~/.ssh/authorized_keys on the board (ssh-copy-id) or fix `user`/`key` in the inventory"
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as exc:  # refused, no route, DNS, timeout, bad banner
            client.close()
            raise DeviceUnreachable(
                f"device '{self.name}': cannot reach {self._where} ({_os_msg(exc)}); is the board on, on this "
                "network and running sshd?"
            ) from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(30)
        return client

    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            transport = self._connection()
            if self._sftp is None:  # close() drops it whenever the connection is replaced
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except paramiko.SSHException as exc:
                    raise DeviceError(f"device '{self.name}': SFTP is not available on {self._where}: {exc}") from None
                if self._sftp is None:
                    raise DeviceError(f"device '{self.name}': SFTP is not available on {self._where}")
            return self._sftp

    # ------------------------------------------------------------------ commands

    def _exec(
        self, argv: list[str], timeout: float, pidfile: str | None = None, shown: list[str] | None = None
    ) -> ShellReturn:
        """Run ``argv`` (joined with shlex, so the login shell sees each word quoted) and collect its output."""
        shown = shown if shown is not None else argv
        start = time.perf_counter()
        deadline = start + timeout
        try:
            chan = self._connection().open_session()
            chan.exec_command(shlex.join(argv))
            chan.shutdown_write()  # stdin at EOF: nothing on the board waits for input
        except paramiko.SSHException as exc:
            self.close()
            raise DeviceUnreachable(f"device '{self.name}': lost connection to {self._where} ({exc})") from None
        out, err = bytearray(), bytearray()
        try:
            while True:
                while chan.recv_ready():
                    out += chan.recv(1 << 16)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(1 << 16)
                if chan.exit_status_ready() and (chan.eof_received or chan.closed):
                    if not chan.recv_ready() and not chan.recv_stderr_ready():
                        break
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise _timeout_error(self.name, shown, timeout)  # the handler below kills it
                select.select([chan], [], [], min(remaining, 0.05))
        except BaseException:  # timeout, Ctrl-C, lost connection: leave nothing running on the board
            if not chan.exit_status_ready():
                self._kill(pidfile)
            chan.close()
            raise
        status = chan.recv_exit_status()
        chan.close()
        if status == -1 and not self._connection_alive():
            raise DeviceUnreachable(f"device '{self.name}': lost connection to {self._where} during {shown[0]}")
        return ShellReturn(
            tuple(shown),
            status,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
            time.perf_counter() - start,
        )

    def _kill(self, pidfile: str | None) -> None:
        """Kill the process group a command recorded in ``pidfile`` (best effort, through a fresh channel)."""
        if pidfile is None:
            return
        # `kill -s KILL -- -PGID` is the POSIX spelling; dash rejects `kill -KILL -- -PGID`.
        script = 'p=$(cat "$1" 2>/dev/null) || exit 0; kill -s KILL -- "-$p" 2>/dev/null || kill -s KILL "$p"'
        script += '; rm -f "$1"'
        try:
            chan = self._connection().open_session(timeout=5)
            chan.settimeout(10)
            chan.exec_command(shlex.join(["sh", "-c", script, "sh", pidfile]))
            chan.recv_exit_status()
            chan.close()
        except (OSError, paramiko.SSHException, DeviceError):
            pass

    def _connection_alive(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _make_session_dir(self) -> str:
        script = (
            'mkdir -p -- "$1" && d=$(mktemp -d "$1/run.XXXXXXXX") && echo "$d" && '
            "if command -v timeout >/dev/null 2>&1; then echo timeout; fi"
        )
        res = self._exec(["sh", "-c", script, "sh", self.work_dir], _SETUP_TIMEOUT_S)
        lines = res.stdout.split("\n")
        if not res.ok or not lines[0].startswith(self.work_dir.rstrip("/") + "/run."):
            why = _last_line(res)
            if "No space left" in why:
                raise NoSpaceLeft(f"device '{self.name}': no space left to create a work dir under {self.work_dir}")
            raise DeviceError(
                f"device '{self.name}': cannot create a work dir under {self.work_dir} ({why}); set a writable "
                "work_dir in the inventory"
            )
        self._has_timeout = "timeout" in lines[1:]
        return lines[0]

    def _agent_argv(self) -> list[str]:
        """``[python, runner.py]`` on the board, after pushing the runner and checking Python and numpy once."""
        with self._lock:
            if self._agent is None:
                check = [self.python, "-c", "import sys, numpy; print(sys.version.split()[0])"]
                res = self.run(check, timeout=60)
                if not res.ok:
                    missing = "numpy" if "numpy" in res.stderr else self.python
                    raise RunnerMissing(
                        f"device '{self.name}': {missing} is not usable on the board ({_last_line(res)}); "
                        "install python3 and numpy there (and onnxruntime or ai-edge-litert)"
                    )
                self._agent = [self.python, self.push(RUNNER_PATH)]
            return list(self._agent)

    # ------------------------------------------------------------------ helpers

    def _sha256(self, local: Path) -> str:
        st = local.stat()
        key = (str(local.resolve()), st.st_size, st.st_mtime_ns)
        sha = self._hashes.get(key)
        if sha is None:
            h = hashlib.sha256()
            with local.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            sha = self._hashes[key] = h.hexdigest()
        return sha

    def _remote_size(self, remote: str) -> int | None:
        try:
            return self._sftp_client().stat(remote).st_size
        except OSError:
            return None

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


def _timeout_error(name: str, argv: list[str], timeout: float) -> DeviceTimeout:
    return DeviceTimeout(
        f"device '{name}': '{' '.join(argv[:3])} ...' ran past {timeout:.0f}s and was killed; "
        "raise the point timeout or check the runtime"
    )


def _fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: ``SHA256:`` and the unpadded base64 of the key blob's sha256."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _os_msg(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def _last_line(res: ShellReturn) -> str:
    lines = (res.stderr or res.stdout).strip().splitlines()
    return lines[-1].strip() if lines else f"exit code {res.returncode}"
