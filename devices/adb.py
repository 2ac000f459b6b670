"""An Android phone reached through an adb server, as a :class:`~devices.base.Transport`.

Transport: ``adbutils``. It speaks the adb server's host protocol over TCP (``host:tport:serial``, ``shell,v2``,
``sync:``), so a phone plugged into another machine is reached by pointing at that machine's server
(``adb -a nodaemon server`` there, ``server_host``/``server_port`` here) with no adb binary on this side, shell v2
gives separate stdout/stderr and the real exit code, and failures arrive as exceptions rather than CLI text to
scrape. The Debian ``adb`` client would need one subprocess per call and parsing of its messages. ``sync`` SEND is
:mod:`devices.adb_sync` (adbutils drops the device's FAIL message).

Files are pushed into ``work_dir`` and reused while their sha256 (md5 where the phone has no ``sha256sum``) matches
the local file; executables go to ``work_dir/bin`` and stay there between sessions. Device state (per-cluster
cpufreq and governor, thermal zones, battery temperature and charging) is read through the phone's shell.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import adbutils
from adbutils._adb import AdbConnection
from adbutils.errors import AdbError, AdbTimeout

from devices.adb_sync import adb_message, sync_send
from devices.base import Machine, ShellReturn
from devices.core.digest import file_digest
from devices.errors import (
    DeviceError,
    DeviceOffline,
    DeviceTimeout,
    DeviceUnauthorized,
    DeviceUnreachable,
    NoSpaceLeft,
    PullFailed,
    PushFailed,
    UnknownSerial,
)
from devices.facts import Battery, DeviceFacts, DeviceState
from devices.linux_state import arm_core_facts, read_state
from devices.lock import local_lock
from devices.vocabulary import TransportKind

DEFAULT_WORK_DIR = "/data/local/tmp/flopgap"
# ro.product.cpu.abi → the architecture name uname -m gives.
ABI_ARCH = {"arm64-v8a": "aarch64", "armeabi-v7a": "arm", "armeabi": "arm", "x86_64": "x86_64", "x86": "x86",
            "riscv64": "riscv64"}  # fmt: skip
_PROPS = (
    "ro.product.model",
    "ro.product.manufacturer",
    "ro.soc.model",
    "ro.soc.manufacturer",
    "ro.board.platform",
    "ro.hardware",
    "ro.build.version.release",
    "ro.build.version.sdk",
    "ro.product.cpu.abi",
)


class _ServerOnlyConnection(AdbConnection):  # type: ignore[misc]  # adbutils ships no type information
    """adbutils' connection without its fallback: when the server does not answer, adbutils runs ``adb start-server``
    on this machine (a daemon left behind, and never the configured remote server anyway). Here it just fails."""

    def _safe_connect(self) -> socket.socket:
        sock: socket.socket = self._create_socket()
        return sock


class ServerOnlyClient(adbutils.AdbClient):  # type: ignore[misc]  # adbutils ships no type information
    """An adb client that only ever talks to the configured server and never starts one."""

    def __init__(self, host: str, port: int, socket_timeout: float | None = None) -> None:
        super().__init__(host=host, port=port, socket_timeout=socket_timeout)
        self._socket_timeout = socket_timeout

    def make_connection(self, timeout: float | None = None) -> AdbConnection:
        conn = _ServerOnlyConnection(self.host, self.port)
        if timeout or self._socket_timeout:
            conn.conn.settimeout(timeout or self._socket_timeout)
        return conn


class AdbTransport:
    """An Android phone behind an adb server (local or remote)."""

    kind = TransportKind.ADB

    def __init__(
        self,
        name: str,
        serial: str,
        server_host: str = "127.0.0.1",
        server_port: int = 5037,
        work_dir: str = DEFAULT_WORK_DIR,
        socket_timeout: float = 15.0,
    ) -> None:
        self.name = name
        self.serial = serial
        self.server = (server_host, server_port)
        self.work_dir = work_dir.rstrip("/") or "/"
        self._timeout = socket_timeout
        self._client = ServerOnlyClient(server_host, server_port, socket_timeout)
        self._dev: adbutils.AdbDevice | None = None
        self._pushed: list[str] = []  # what cleanup removes: models and the files commands wrote
        self._digest_algo: str | None = None
        self._props: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"AdbTransport({self.name!r}, serial={self.serial!r}, server={self.server[0]}:{self.server[1]})"

    @property
    def where(self) -> str:
        return f"device '{self.name}' (adb serial {self.serial} via {self.server[0]}:{self.server[1]})"

    # -- connection --------------------------------------------------------------------------------------------------

    def _device(self) -> adbutils.AdbDevice:
        if self._dev is not None:
            return self._dev
        host, port = self.server
        try:
            states = {d.serial: d.state for d in self._client.list()}
        except (AdbError, OSError) as exc:
            raise DeviceUnreachable(
                f"{self.where}: adb server {host}:{port} unreachable ({exc}); start it there "
                "(`adb -a nodaemon server`) or fix server_host/server_port in the inventory"
            ) from None
        state = states.get(self.serial)
        if state is None:
            known = ", ".join(sorted(states)) or "none"
            raise UnknownSerial(
                f"{self.where}: serial not attached to the adb server (attached: {known}); "
                "plug the phone in or fix the serial in the inventory"
            )
        if state == "unauthorized":
            raise DeviceUnauthorized(
                f"{self.where}: unauthorized; unlock the phone and accept the 'Allow USB debugging' prompt"
            )
        if state != "device":
            raise DeviceOffline(
                f"{self.where}: state '{state}'; replug the cable or run `adb reconnect offline` on the server host"
            )
        self._dev = self._client.device(self.serial)
        return self._dev

    # -- Transport protocol ------------------------------------------------------------------------------------------

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        """Run ``argv`` on the phone (each argument quoted) and wait up to ``timeout`` seconds."""
        dev = self._device()
        command = shlex.join(argv)
        start = time.perf_counter()
        try:
            res = dev.shell2(command, timeout=timeout, v2=True)
        except AdbTimeout:
            raise DeviceTimeout(
                f"{self.where}: '{command[:60]}' ran past {timeout:.0f}s; raise the point timeout"
            ) from None
        except (AdbError, OSError, EOFError) as exc:
            self._dev = None
            raise DeviceUnreachable(f"{self.where}: shell failed ({exc}); check the cable and `adb devices`") from None
        stdout = res.stdout if res.stdout or res.stderr else res.output  # shell v1 fallback merges the streams
        return ShellReturn(tuple(argv), res.returncode, stdout, res.stderr, time.perf_counter() - start)

    def push(self, local: Path, executable: bool = False) -> str:
        """Copy ``local`` into the work dir unless an identical copy is already there; return its remote path.

        Executables go to ``work_dir/bin`` and stay there for the next session; anything else is removed by
        :meth:`cleanup`.
        """
        local = Path(local)
        if not local.is_file():
            raise PushFailed(f"{self.where}: {local} does not exist; export the artifact first")
        remote = f"{self.work_dir}/bin/{local.name}" if executable else f"{self.work_dir}/{local.name}"
        self._push_verified(local, remote, mode=0o755 if executable else 0o644)
        if executable:
            chmod = self.run(["chmod", "755", remote], timeout=30)
            if not chmod.ok:
                raise PushFailed(f"{self.where}: chmod 755 {remote} failed: {chmod.last_line()}")
        elif remote not in self._pushed:
            self._pushed.append(remote)
        return remote

    def pull(self, remote: str, local: Path) -> Path:
        local = Path(local)
        try:
            self._device().sync.pull_file(remote, local)
        except (AdbError, OSError) as exc:
            local.unlink(missing_ok=True)
            raise PullFailed(f"{self.where}: cannot pull {remote}: {adb_message(exc)}") from None
        return local

    def scratch(self, name: str) -> str:
        remote = f"{self.work_dir}/{name}"
        if remote not in self._pushed:
            self._pushed.append(remote)
        return remote

    def machine(self) -> Machine:
        abi = self.props().get("ro.product.cpu.abi", "")
        return Machine(ABI_ARCH.get(abi), f"the phone's ABI is {abi or 'unknown'}")

    def cleanup(self) -> None:
        """Remove the models and outputs this session put there; executables in ``work_dir/bin`` stay for reuse."""
        if self._pushed:
            # Best effort: the phone may be gone; the files stay in work_dir for a later cleanup.
            with contextlib.suppress(DeviceError):
                self.run(["rm", "-f", *self._pushed], timeout=60)
            self._pushed.clear()

    def close(self) -> None:
        self._dev = None  # adbutils opens a connection per call; nothing to hold

    @contextlib.contextmanager
    def lock(self, on_wait: Callable[[str], None]) -> Iterator[list[str]]:
        """The phone's lock, kept on this machine per adb server and serial: one benchmark at a time from every
        flopgap here (flopgaps on other hosts sharing a remote adb server are not seen)."""
        host, port = self.server
        key = "adb-" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{host}-{port}-{self.serial}")
        with local_lock(self.name, on_wait, key=key) as reaped:
            yield reaped

    # -- hash-verified pushes ----------------------------------------------------------------------------------------

    def _push_verified(self, local: Path, remote: str, mode: int) -> None:
        algo, digest = self._remote_digest(remote)
        if digest is not None and digest == file_digest(local, algo):
            return
        size = local.stat().st_size
        self.run(["mkdir", "-p", str(PurePosixPath(remote).parent)], timeout=30)
        free = self._free_bytes(str(PurePosixPath(remote).parent))
        if free is not None and free < size:
            raise NoSpaceLeft(
                f"{self.where}: {remote} needs {size / 1e6:.1f} MB but only {free / 1e6:.1f} MB are free; "
                "free space on the phone (e.g. `adb shell rm -r /data/local/tmp/...`)"
            )
        sync_send(self._device(), local, remote, mode, self._timeout, self.where)
        algo, digest = self._remote_digest(remote)
        if digest != file_digest(local, algo):
            raise PushFailed(f"{self.where}: {remote} differs from {local} after the push; push again")

    def fingerprint(self, remote: str) -> tuple[str, str] | None:
        algo, digest = self._remote_digest(remote)
        return None if digest is None else (algo, digest)

    def _remote_digest(self, remote: str) -> tuple[str, str | None]:
        """``(algo, hex)`` of a file on the phone; hex is None when the file is absent."""
        for algo in [self._digest_algo] if self._digest_algo else ["sha256", "md5"]:
            res = self.run([f"{algo}sum", remote], timeout=120)
            if res.ok and res.stdout.split():
                self._digest_algo = algo
                return algo, res.stdout.split()[0].lower()
            if "not found" not in (res.stderr + res.stdout):
                self._digest_algo = algo
                return algo, None  # the tool exists; the file does not
        raise DeviceError(f"{self.where}: neither sha256sum nor md5sum on the phone; cannot verify pushes")

    def _free_bytes(self, directory: str) -> int | None:
        res = self.run(["df", "-k", directory], timeout=30)
        rows = [ln.split() for ln in res.stdout.splitlines()[1:] if ln.strip()]
        try:
            return int(rows[-1][3]) * 1024 if res.ok and rows else None
        except (IndexError, ValueError):
            return None  # an unknown df layout must not block a push; the device's FAIL still will

    # -- facts and state ---------------------------------------------------------------------------------------------

    def props(self) -> dict[str, str]:
        """All system properties (``getprop``), read once per session."""
        if self._props is None:
            res = self.run(["getprop"], timeout=30)
            self._props = {}
            for ln in res.stdout.splitlines():
                key, sep, value = ln.partition("]: [")
                if sep and key.startswith("["):
                    self._props[key[1:]] = value.rstrip().removesuffix("]")
        return self._props

    def state(self) -> DeviceState:
        """What changes while measuring: per-cluster frequency and governor, thermal zones, battery."""
        return {**read_state(self), "battery": self._battery()}

    def _battery(self) -> Battery:
        res = self.run(["dumpsys", "battery"], timeout=30)
        kv = {}
        for ln in res.stdout.splitlines():
            key, sep, value = ln.strip().partition(":")
            if sep:
                kv[key.strip()] = value.strip()
        temp = kv.get("temperature")
        powered = [src for src in ("AC", "USB", "Wireless", "Dock") if kv.get(f"{src} powered") == "true"]
        return {
            "temperature_c": int(temp) / 10 if temp and temp.lstrip("-").isdigit() else None,
            "level": int(kv["level"]) if kv.get("level", "").isdigit() else None,
            "charging": bool(powered) if kv else None,
            "powered_by": powered,
        }

    def facts(self) -> DeviceFacts:
        props = self.props()
        st = self.state()
        cpus = sorted({c for cl in st["cpufreq"].values() for c in cl["cpus"]})
        return {
            "transport": str(self.kind),
            "serial": self.serial,
            "server": f"{self.server[0]}:{self.server[1]}",
            "model": props.get("ro.product.model"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "soc": props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware"),
            "board_platform": props.get("ro.board.platform"),
            "hardware": props.get("ro.hardware"),
            "os": f"Android {props.get('ro.build.version.release', '?')}",
            "sdk": props.get("ro.build.version.sdk"),
            "abi": props.get("ro.product.cpu.abi"),
            "cores": len(cpus) or None,
            "clusters": st["cpufreq"],
            **arm_core_facts(self, st["cpufreq"]),
            "temperatures_c": st["temperatures_c"],
            "battery": st["battery"],
            "props": {k: props[k] for k in _PROPS if k in props},
        }
