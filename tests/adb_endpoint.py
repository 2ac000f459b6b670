"""A fake adb server on 127.0.0.1 for tests: the phone is faked at the protocol boundary.

It speaks the subset of the adb host protocol that :class:`devices.adb.AdbTransport` (via adbutils) and the Debian
``adb`` client use: ``host:version``, ``host:devices(-l)``, ``host:features``, ``host:tport:serial:S`` /
``host:transport:S`` / ``host-serial:S:...``, ``shell:`` (v1), ``shell,v2:``, and ``sync:`` with STAT, SEND
(DATA/DONE), RECV and QUIT. Its phone is a sandbox directory (paths on the phone map below it), a getprop table and
a fake sysfs; the shell answers only the commands the adb transport and the backends send. A benchmark binary run
replays a real captured log from ``tests/data``, and a stand-in binary that is a script (``#!``) runs on this
machine; the phone's Python (``FakePhone.python``) is this machine's interpreter, given the sandboxed paths of its
arguments, so flopgap's real runner runs "on the phone".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import socket
import socketserver
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from devices.tflite_echo import TFLITE_ECHOED

DATA = Path(__file__).with_name("data")

DEFAULT_PROPS = {
    "ro.product.model": "Pixel 7",
    "ro.product.manufacturer": "Google",
    "ro.soc.model": "GS201",
    "ro.board.platform": "gs201",
    "ro.hardware": "panther",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "arm64-v8a",
}

BATTERY = """Current Battery Service state:
  AC powered: false
  USB powered: true
  Wireless powered: false
  status: 2
  health: 2
  present: true
  level: 87
  scale: 100
  voltage: 4301
  temperature: 312
  technology: Li-ion
"""


def _arm64_cpuinfo(parts: list[tuple[int, int]]) -> str:
    """An arm64 kernel's /proc/cpuinfo for cores of these (variant, part) codes, all by Arm (implementer 0x41)."""
    blocks = [
        f"processor\t: {cpu}\nBogoMIPS\t: 49.15\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n"
        f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x{variant:x}\nCPU part\t: 0x{part:03x}\n"
        "CPU revision\t: 0\n"
        for cpu, (variant, part) in enumerate(parts)
    ]
    return "\n".join(blocks) + "\n"


# The fake phone is a Pixel 7 (Tensor G2): 4x Cortex-A55, 2x Cortex-A78, 2x Cortex-X1, matching its cpufreq policies
# below. Synthesized in the arm64 kernel's layout; the parser is tested on real captured dumps in tests/data.
PIXEL7_CPUINFO = _arm64_cpuinfo([(2, 0xD05)] * 4 + [(1, 0xD41)] * 2 + [(1, 0xD44)] * 2)


def obeying(log: str, args: list[str], ignored: set[str]) -> str:
    """A captured ``benchmark_model`` log with its parameter echo rewritten to the flags given, as a build that obeys
    them prints it; flags in ``ignored`` keep the captured echo, as an old build that ignores them would."""
    given = {}
    for arg in args:
        flag, sep, value = arg.partition("=")
        if sep and flag in TFLITE_ECHOED and flag not in ignored:
            given[TFLITE_ECHOED[flag]] = {"true": "1", "false": "0"}.get(value, value)
    if "Num threads" in given:
        given["#threads used for CPU inference"] = given["Num threads"]
    lines = [ln for ln in log.splitlines() if not any(ln.strip().startswith(f"{label}: [") for label in given)]
    at = next((i + 1 for i, ln in enumerate(lines) if "Log parameter values verbosely" in ln), 0)
    lines[at:at] = [f"{label}: [{value}]" for label, value in given.items()]
    return "\n".join(lines) + "\n"


_MOUNT_SYSFS = (
    'mount --bind "$1" /sys/class/thermal && mount --bind "$2" /sys/devices/system/cpu || exit 126; shift 2; exec "$@"'
)


@dataclass
class FakePhone:
    """The sandboxed phone behind one serial."""

    root: Path
    state: str = "device"
    props: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROPS))
    free_bytes: int = 1 << 30
    tflite_log: Path = DATA / "tflite_benchmark_mobilenet_v1_op_profiling.txt"
    op_csv: Path = DATA / "tflite_op_profile_mobilenet_v1.csv"
    ort_log: Path = DATA / "ort_perf_test_linux_riscv.txt"
    ort_runs: Path = DATA / "ort_perf_test_result_file.csv"
    ort_profile: Path = DATA / "ort_profile_trace_shuffle_block.json"
    python: str = "/data/data/com.termux/files/usr/bin/python3"  # runs as sys.executable
    commands: list[str] = field(default_factory=list)
    sends: list[str] = field(default_factory=list)  # remote paths of completed or failed SENDs
    data_bytes: int = 0  # DATA payload received over all SENDs
    modes: dict[str, int] = field(default_factory=dict)
    ignored_flags: set[str] = field(default_factory=set)  # benchmark_model flags this "old build" ignores
    # Run the pushed benchmark binary itself instead of replaying a log: a stand-in program for this machine (such as
    # tests/benchmark_model_stand_in.py behind a #! line), given the phone's argv and PHONE_ROOT, where its / lies.
    run_pushed: bool = False
    # Run the phone's Python in a private mount namespace whose /sys/class/thermal and /sys/devices/system/cpu are
    # this phone's fake ones (root only; see tests/fake_sysfs.py), so the runner on the "phone" reads them too.
    mount_sysfs: bool = False

    def __post_init__(self) -> None:
        (self.root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        policies = {0: ("0-3", 1803000, 1803000), 4: ("4-5", 2348000, 2348000), 6: ("6-7", 2850000, 2850000)}
        cpu_dir = self.root / "sys/devices/system/cpu"
        for first, (cpus, cur, top) in policies.items():
            d = cpu_dir / f"cpufreq/policy{first}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "related_cpus").write_text(_expand(cpus) + "\n")
            (d / "scaling_cur_freq").write_text(f"{cur}\n")
            (d / "cpuinfo_max_freq").write_text(f"{top}\n")
            (d / "scaling_governor").write_text("schedutil\n")
            for cpu in map(int, _expand(cpus).split()):  # cpuN/cpufreq links to its policy, as on a kernel
                (cpu_dir / f"cpu{cpu}").mkdir(exist_ok=True)
                if not (cpu_dir / f"cpu{cpu}/cpufreq").exists():
                    (cpu_dir / f"cpu{cpu}/cpufreq").symlink_to(f"../cpufreq/policy{first}")
        for name in ("possible", "present", "online"):
            (cpu_dir / name).write_text("0-7\n")
        (self.root / "proc").mkdir(exist_ok=True)
        (self.root / "proc/cpuinfo").write_text(PIXEL7_CPUINFO)
        for i, (kind, milli) in enumerate([("BIG", 41000), ("battery", 31200)]):
            z = self.root / f"sys/class/thermal/thermal_zone{i}"
            z.mkdir(parents=True, exist_ok=True)
            (z / "type").write_text(kind + "\n")
            (z / "temp").write_text(f"{milli}\n")

    def path(self, remote: str) -> Path:
        return self.root / remote.lstrip("/")

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.root / "data").rglob("*") if p.is_file())

    # -- shell -------------------------------------------------------------------------------------------------------

    def shell(self, command: str) -> tuple[bytes, bytes, int]:
        self.commands.append(command)
        if command.startswith("grep -s -H . "):
            return self._grep(command.split()[4:]), b"", 0
        try:
            args = shlex.split(command)
        except ValueError as exc:
            return b"", f"sh: {exc}\n".encode(), 2
        if args and args[0] == "taskset":
            args = args[2:]
        if not args:
            return b"", b"", 0
        cmd, rest = args[0], args[1:]
        if cmd == self.python:
            return self._python(rest)
        handler = getattr(self, "_cmd_" + cmd.replace("sum", "_sum"), None)
        if handler is not None:
            return handler(rest)
        if cmd.startswith("/"):
            return self._exec(cmd, rest)
        return b"", f"/system/bin/sh: {cmd}: inaccessible or not found\n".encode(), 127

    def _grep(self, patterns: list[str]) -> bytes:
        out = []
        for pat in patterns:
            base = self.root
            for p in sorted(base.glob(pat.lstrip("/"))):
                for line in p.read_text().splitlines():
                    out.append(f"/{p.relative_to(base).as_posix()}:{line}\n")
        return "".join(out).encode()

    def _cmd_sh(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        if rest[:1] != ["-c"] or len(rest) < 2:
            return b"", b"sh: only sh -c SCRIPT is faked\n", 2
        return self.shell(rest[1])

    def _python(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        """The phone's Python: this interpreter, with every argument that names a file on the phone sandboxed."""
        args = [str(self.path(a)) if a.startswith("/") and self.path(a).exists() else a for a in rest]
        argv = [sys.executable, *args]
        if self.mount_sysfs:
            thermal, cpu = self.path("/sys/class/thermal"), self.path("/sys/devices/system/cpu")
            argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _MOUNT_SYSFS, "sh",
                    str(thermal), str(cpu), *argv]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, timeout=300, cwd=self.root)
        code = done.returncode if done.returncode >= 0 else 128 - done.returncode  # the shell's view of a signal
        return done.stdout, done.stderr, code

    def _cmd_getprop(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        if rest:
            return (self.props.get(rest[0], "") + "\n").encode(), b"", 0
        return "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items())).encode(), b"", 0

    def _digest(self, algo: str, rest: list[str]) -> tuple[bytes, bytes, int]:
        p = self.path(rest[-1])
        if not p.is_file():
            return b"", f"{algo}sum: {rest[-1]}: No such file or directory\n".encode(), 1
        return f"{hashlib.new(algo, p.read_bytes()).hexdigest()}  {rest[-1]}\n".encode(), b"", 0

    def _cmd_sha256_sum(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        return self._digest("sha256", rest)

    def _cmd_md5_sum(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        return self._digest("md5", rest)

    def _cmd_chmod(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        mode, target = int(rest[0], 8), rest[1]
        if not self.path(target).exists():
            return b"", f"chmod: {target}: No such file or directory\n".encode(), 1
        self.modes[target] = mode
        return b"", b"", 0

    def _cmd_mkdir(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        self.path(rest[-1]).mkdir(parents=True, exist_ok=True)
        return b"", b"", 0

    def _cmd_rm(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        for r in rest[1:] if rest and rest[0] == "-f" else rest:
            self.path(r).unlink(missing_ok=True)
        return b"", b"", 0

    def _cmd_df(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        free_k = max(self.free_bytes - self.used_bytes(), 0) // 1024
        out = (
            "Filesystem      1K-blocks    Used Available Use% Mounted on\n"
            f"/dev/block/dm-48 {free_k * 2} {free_k} {free_k}  50% /data\n"
        )
        return out.encode(), b"", 0

    def _cmd_dumpsys(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        return (BATTERY.encode(), b"", 0) if rest == ["battery"] else (b"", b"", 0)

    def _cmd_ls(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        p = self.path(rest[-1])
        if not p.is_dir():
            return b"", f"ls: {rest[-1]}: No such file or directory\n".encode(), 1
        return "".join(f"{c.name}\n" for c in sorted(p.iterdir())).encode(), b"", 0

    def _cmd_cat(self, rest: list[str]) -> tuple[bytes, bytes, int]:
        p = self.path(rest[0])
        return (p.read_bytes(), b"", 0) if p.is_file() else (b"", f"cat: {rest[0]}: No such file\n".encode(), 1)

    def _exec(self, binary: str, rest: list[str]) -> tuple[bytes, bytes, int]:
        if not self.path(binary).is_file():
            return b"", f"/system/bin/sh: {binary}: inaccessible or not found\n".encode(), 127
        if not self.modes.get(binary, 0) & 0o111:
            return b"", f"/system/bin/sh: {binary}: can't execute: Permission denied\n".encode(), 126
        if self.path(binary).read_bytes()[:2] == b"#!":
            return self._script(binary, rest)
        name = Path(binary).name
        if self.run_pushed:
            program = self.path(binary)
            program.chmod(program.stat().st_mode | 0o100)  # the phone's chmod is kept in self.modes, not on the file
            env = {**os.environ, "PHONE_ROOT": str(self.root)}
            done = subprocess.run([str(program), *rest], capture_output=True, timeout=300, cwd=self.root,
                                  env=env)  # fmt: skip
            return done.stdout, done.stderr, done.returncode if done.returncode >= 0 else 128 - done.returncode
        if "benchmark_model" in name:
            for a in rest:
                if a.startswith("--op_profiling_output_file="):
                    self.path(a.split("=", 1)[1]).write_bytes(self.op_csv.read_bytes())
            return obeying(self.tflite_log.read_text(), rest, self.ignored_flags).encode(), b"", 0
        if name == "onnxruntime_perf_test":
            self.path(rest[-1]).write_bytes(self.ort_runs.read_bytes())
            if "-p" in rest:  # ORT names the profile <prefix>_<date>_<time>.json
                prefix = rest[rest.index("-p") + 1]
                self.path(f"{prefix}_2026-11-29_10-43-59_859.json").write_bytes(self.ort_profile.read_bytes())
            return self.ort_log.read_bytes(), b"", 0
        return b"", b"", 0

    def _script(self, script: str, rest: list[str]) -> tuple[bytes, bytes, int]:
        """A stand-in binary that is a Python script: run by this interpreter, phone paths in ``--flag=/path``
        arguments (files it reads or writes) mapped into the sandbox."""
        args = []
        for arg in rest:
            flag, sep, value = arg.partition("=")
            args.append(f"{flag}={self.path(value)}" if sep and value.startswith("/") else arg)
        done = subprocess.run([sys.executable, str(self.path(script)), *args], capture_output=True, timeout=300,
                              cwd=self.root)  # fmt: skip
        return done.stdout, done.stderr, done.returncode if done.returncode >= 0 else 128 - done.returncode


def _expand(cpus: str) -> str:
    lo, _, hi = cpus.partition("-")
    return " ".join(str(c) for c in range(int(lo), int(hi or lo) + 1))


class AdbEndpoint:
    """The fake adb server; ``phones`` maps serial → :class:`FakePhone`. Use as a context manager."""

    def __init__(self, phones: dict[str, FakePhone]) -> None:
        self.phones = phones
        self.requests: list[str] = []
        endpoint = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(ConnectionError, OSError, EOFError):
                    endpoint._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._server.allow_reuse_address = True
        self._server.daemon_threads = True
        self._server.server_bind()
        self._server.server_activate()
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> AdbEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- protocol ----------------------------------------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        phone: FakePhone | None = None
        while True:
            req = _read_request(sock)
            if req is None:
                return
            self.requests.append(req)
            if req == "host:version":
                return _okay_block(sock, f"{41:04x}")
            if req in ("host:devices", "host:devices-l"):
                long = req.endswith("-l")
                rows = [
                    f"{s:<22} {p.state} product:panther model:Pixel_7 transport_id:{i + 1}"
                    if long
                    else f"{s}\t{p.state}"
                    for i, (s, p) in enumerate(self.phones.items())
                ]
                return _okay_block(sock, "".join(r + "\n" for r in rows))
            if req in ("host:features", "host:host-features"):
                return _okay_block(sock, "shell_v2,cmd")
            if req.startswith("host-serial:"):
                serial, _, what = req[len("host-serial:") :].rpartition(":")
                phone = self._phone(sock, serial)
                if phone is None:
                    return
                if what == "features":
                    return _okay_block(sock, "shell_v2,cmd")
                return _okay_block(sock, phone.state)
            if req.startswith(("host:tport:serial:", "host:transport:")):
                serial = req.rsplit(":", 1)[1]
                phone = self._phone(sock, serial)
                if phone is None:
                    return
                sock.sendall(b"OKAY" + (struct.pack("<Q", 1) if req.startswith("host:tport:") else b""))
                continue
            if phone is None:
                return _fail(sock, f"unknown host service '{req}'")
            if req.split(":", 1)[0].split(",")[0] == "shell":  # "shell:", "shell,v2:", "shell,v2,TERM=xterm,raw:"
                return self._shell(sock, phone, req)
            if req == "sync:":
                sock.sendall(b"OKAY")
                return self._sync(sock, phone)
            return _fail(sock, f"unsupported service '{req}'")

    def _phone(self, sock: socket.socket, serial: str) -> FakePhone | None:
        phone = self.phones.get(serial)
        if phone is None:
            _fail(sock, f"device '{serial}' not found")
        elif phone.state == "unauthorized":
            _fail(sock, "device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set")
        elif phone.state != "device":
            _fail(sock, "device offline")
        else:
            return phone
        return None

    def _shell(self, sock: socket.socket, phone: FakePhone, req: str) -> None:
        service, _, command = req.partition(":")
        v2 = "v2" in service.split(",")
        out, err, rc = phone.shell(command)
        sock.sendall(b"OKAY")
        if v2:
            for kind, data in ((1, out), (2, err)):
                if data:
                    sock.sendall(bytes([kind]) + struct.pack("<I", len(data)) + data)
            sock.sendall(bytes([3]) + struct.pack("<I", 1) + bytes([rc & 0xFF]))
        else:
            sock.sendall(out + err)
        sock.shutdown(socket.SHUT_WR)

    def _sync(self, sock: socket.socket, phone: FakePhone) -> None:
        while True:
            head = _read_exact(sock, 8)
            if head is None:
                return
            cmd, n = head[:4], struct.unpack("<I", head[4:])[0]
            arg = (_read_exact(sock, n) or b"").decode()
            if cmd == b"QUIT":
                return
            if cmd == b"STAT":
                p = phone.path(arg)
                st = p.stat() if p.exists() else None
                sock.sendall(b"STAT" + struct.pack("<III", st.st_mode if st else 0, st.st_size if st else 0,
                                                   int(st.st_mtime) if st else 0))  # fmt: skip
            elif cmd == b"SEND":
                self._recv_file(sock, phone, arg)
            elif cmd == b"RECV":
                p = phone.path(arg)
                if not p.is_file():
                    _sync_fail(sock, f"remote object '{arg}' does not exist")
                    continue
                data = p.read_bytes()
                for i in range(0, len(data), 65536):
                    chunk = data[i : i + 65536]
                    sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                sock.sendall(b"DONE" + struct.pack("<I", 0))
            else:
                return _sync_fail(sock, f"unknown sync command {cmd!r}")

    def _recv_file(self, sock: socket.socket, phone: FakePhone, spec: str) -> None:
        remote, _, mode = spec.rpartition(",")
        chunks = []
        while True:
            head = _read_exact(sock, 8)
            if head is None:
                return
            kind, n = head[:4], struct.unpack("<I", head[4:])[0]
            if kind == b"DONE":
                break
            chunks.append(_read_exact(sock, n) or b"")
        data = b"".join(chunks)
        phone.sends.append(remote)
        phone.data_bytes += len(data)
        target = phone.path(remote)
        existing = target.stat().st_size if target.is_file() else 0
        if phone.used_bytes() - existing + len(data) > phone.free_bytes:
            return _sync_fail(sock, f"write failed: No space left on device, writing to {remote}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        phone.modes[remote] = int(mode) & 0o777 if mode.isdigit() else 0o644
        sock.sendall(b"OKAY" + struct.pack("<I", 0))


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _read_request(sock: socket.socket) -> str | None:
    head = _read_exact(sock, 4)
    if head is None:
        return None
    body = _read_exact(sock, int(head.decode(), 16))
    return None if body is None else body.decode()


def _okay_block(sock: socket.socket, text: str) -> None:
    data = text.encode()
    sock.sendall(b"OKAY" + f"{len(data):04x}".encode() + data)


def _fail(sock: socket.socket, message: str) -> None:
    data = message.encode()
    sock.sendall(b"FAIL" + f"{len(data):04x}".encode() + data)


def _sync_fail(sock: socket.socket, message: str) -> None:
    data = message.encode()
    sock.sendall(b"FAIL" + struct.pack("<I", len(data)) + data)
