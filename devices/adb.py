"""An Android phone reached through an adb server, as a :class:`~devices.base.Device`.

Transport: ``adbutils``. It speaks the adb server's host protocol over TCP (``host:tport:serial``, ``shell,v2``,
``sync:``), so a phone plugged into another machine is reached by pointing at that machine's server
(``adb -a nodaemon server`` there, ``server_host``/``server_port`` here) with no adb binary on this side, shell v2
gives separate stdout/stderr and the real exit code, and failures arrive as exceptions rather than CLI text to
scrape. The Debian ``adb`` client would need one subprocess per call and parsing of its messages. ``sync`` SEND is
done here directly (a few lines over adbutils' connection) because adbutils drops the device's FAIL message,
which is the only place "No space left on device" appears.

The runner is an official prebuilt arm64 binary (TFLite ``benchmark_model`` / ``benchmark_model_plus_flex`` or
``onnxruntime_perf_test``): pushed once into ``work_dir/bin`` and reused while its sha256 (md5 where the phone has
no ``sha256sum``) matches the local file, run under ``taskset`` when an affinity is given, and its output parsed by
:mod:`devices.parsers` into a ``flopgap.runner/1`` document. ``benchmark_model`` prints only a summary of the timed
runs, so its documents carry ``samples_kind: "summary"`` and no raw samples; ``onnxruntime_perf_test`` writes one
line per run to its result file, so its documents carry raw ``samples_ns``.
"""

from __future__ import annotations

import datetime
import hashlib
import shlex
import stat
import struct
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import adbutils
from adbutils.errors import AdbError, AdbTimeout

from devices.base import ShellReturn
from devices.errors import (
    BinaryMissing,
    DeviceError,
    DeviceOffline,
    DeviceTimeout,
    DeviceUnauthorized,
    DeviceUnreachable,
    NoSpaceLeft,
    PullFailed,
    PushFailed,
    UnknownSerial,
    WrongABI,
)
from devices.parsers import (
    ParseError,
    RunStats,
    parse_ort_perf_test,
    parse_ort_result_file,
    parse_tflite_benchmark,
    parse_tflite_op_csv,
)

RUNNER_SCHEMA = "flopgap.runner/1"
DEFAULT_WORK_DIR = "/data/local/tmp/flopgap"
TFLITE_RUNNERS = ("benchmark_model", "benchmark_model_plus_flex")
ORT_RUNNERS = ("onnxruntime_perf_test",)
# ELF e_machine per Android ABI (ro.product.cpu.abi).
ABI_MACHINE = {"arm64-v8a": 183, "armeabi-v7a": 40, "armeabi": 40, "x86_64": 62, "x86": 3, "riscv64": 243}
_MACHINE_NAME = {183: "aarch64", 40: "arm", 62: "x86_64", 3: "x86", 243: "riscv"}
_SYNC_CHUNK = 64 * 1024  # adb's SYNC_DATA_MAX
# Constant globs (no user input) so the phone's shell expands them; everything else is quoted.
_SYSFS_GLOBS = (
    "/sys/devices/system/cpu/cpufreq/policy*/scaling_cur_freq",
    "/sys/devices/system/cpu/cpufreq/policy*/cpuinfo_max_freq",
    "/sys/devices/system/cpu/cpufreq/policy*/scaling_governor",
    "/sys/devices/system/cpu/cpufreq/policy*/related_cpus",
    "/sys/class/thermal/thermal_zone*/type",
    "/sys/class/thermal/thermal_zone*/temp",
)
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


@dataclass(frozen=True)
class BenchmarkOptions:
    """What one trial asks of the benchmark binary."""

    threads: int = 1
    warmup_runs: int = 10
    warmup_seconds: float = 0.5
    runs: int = 50
    min_seconds: float = 1.0
    max_seconds: float | None = None
    xnnpack: bool = True

    @classmethod
    def from_protocol(cls, protocol: Any, threads: int, options: dict[str, Any] | None = None) -> BenchmarkOptions:
        """From a sweep :class:`~harness.measure.spec.Protocol` (read by attribute) and a point's options."""
        return cls(
            threads=threads,
            warmup_runs=protocol.warmup_runs,
            warmup_seconds=protocol.warmup_seconds,
            runs=protocol.runs,
            min_seconds=protocol.min_seconds,
            xnnpack=(options or {}).get("xnnpack", True) is not False,
        )


def affinity_mask(cpus: list[int]) -> str:
    """CPU list → the hex mask ``taskset`` takes (``[4, 5, 6, 7]`` → ``"f0"``)."""
    if not cpus or any(c < 0 for c in cpus):
        raise ValueError(f"affinity must be a non-empty list of CPU ids, got {cpus!r}")
    return f"{sum(1 << c for c in set(cpus)):x}"


def elf_machine(path: Path) -> int | None:
    """The ELF ``e_machine`` of a file, or None if it is not an ELF file."""
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class AdbDevice:
    """An Android phone behind an adb server (local or remote) that runs an official benchmark binary."""

    transport = "adb"

    def __init__(
        self,
        name: str,
        serial: str,
        server_host: str = "127.0.0.1",
        server_port: int = 5037,
        work_dir: str = DEFAULT_WORK_DIR,
        runner: str = "benchmark_model",
        binary: Path | str | None = None,
        affinity: list[int] | None = None,
        socket_timeout: float = 15.0,
    ) -> None:
        if runner not in TFLITE_RUNNERS + ORT_RUNNERS:
            raise DeviceError(
                f"device '{name}': unknown runner '{runner}'; use one of {', '.join(TFLITE_RUNNERS + ORT_RUNNERS)}"
            )
        self.name = name
        self.serial = serial
        self.server = (server_host, server_port)
        self.work_dir = work_dir.rstrip("/") or "/"
        self.runner = runner
        self.binary = Path(binary) if binary is not None else None
        self.affinity = list(affinity) if affinity else None
        self._timeout = socket_timeout
        self._client = adbutils.AdbClient(host=server_host, port=server_port, socket_timeout=socket_timeout)
        self._dev: adbutils.AdbDevice | None = None
        self._pushed: list[str] = []
        self._binary_remote: str | None = None
        self._digest_algo: str | None = None
        self._props: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"AdbDevice({self.name!r}, serial={self.serial!r}, server={self.server[0]}:{self.server[1]})"

    # -- connection --------------------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"device '{self.name}' (adb serial {self.serial} via {self.server[0]}:{self.server[1]})"

    def _device(self) -> adbutils.AdbDevice:
        if self._dev is not None:
            return self._dev
        host, port = self.server
        try:
            states = {d.serial: d.state for d in self._client.list()}
        except (AdbError, OSError) as exc:
            raise DeviceUnreachable(
                f"{self._where()}: adb server {host}:{port} unreachable ({exc}); start it there "
                "(`adb -a nodaemon server`) or fix server_host/server_port in the inventory"
            ) from None
        state = states.get(self.serial)
        if state is None:
            known = ", ".join(sorted(states)) or "none"
            raise UnknownSerial(
                f"{self._where()}: serial not attached to the adb server (attached: {known}); "
                "plug the phone in or fix the serial in the inventory"
            )
        if state == "unauthorized":
            raise DeviceUnauthorized(
                f"{self._where()}: unauthorized; unlock the phone and accept the 'Allow USB debugging' prompt"
            )
        if state != "device":
            raise DeviceOffline(
                f"{self._where()}: state '{state}'; replug the cable or run `adb reconnect offline` on the server host"
            )
        self._dev = self._client.device(self.serial)
        return self._dev

    # -- Device protocol ---------------------------------------------------------------------------------------------

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        """Run ``argv`` on the phone (each argument quoted) and wait up to ``timeout`` seconds."""
        return self._shell(shlex.join(argv), timeout, tuple(argv))

    def _shell(self, command: str, timeout: float, argv: tuple[str, ...] | None = None) -> ShellReturn:
        dev = self._device()
        start = time.perf_counter()
        try:
            res = dev.shell2(command, timeout=timeout, v2=True)
        except AdbTimeout:
            raise DeviceTimeout(
                f"{self._where()}: '{command[:60]}' ran past {timeout:.0f}s; raise the point timeout"
            ) from None
        except (AdbError, OSError, EOFError) as exc:
            self._dev = None
            raise DeviceUnreachable(
                f"{self._where()}: shell failed ({exc}); check the cable and `adb devices`"
            ) from None
        stdout = res.stdout if res.stdout or res.stderr else res.output  # shell v1 fallback merges the streams
        return ShellReturn(argv or (command,), res.returncode, stdout, res.stderr, time.perf_counter() - start)

    def push(self, local: Path) -> str:
        """Copy ``local`` into the work dir unless an identical copy is already there; return its remote path."""
        local = Path(local)
        if not local.is_file():
            raise PushFailed(f"{self._where()}: {local} does not exist; export the artifact first")
        remote = f"{self.work_dir}/{local.name}"
        self._push_verified(local, remote, mode=0o644)
        if remote not in self._pushed:
            self._pushed.append(remote)
        return remote

    def pull(self, remote: str, local: Path) -> Path:
        local = Path(local)
        try:
            self._device().sync.pull_file(remote, local)
        except (AdbError, OSError) as exc:
            local.unlink(missing_ok=True)
            raise PullFailed(f"{self._where()}: cannot pull {remote}: {_adb_message(exc)}") from None
        return local

    def cleanup(self) -> None:
        """Remove the artifacts and outputs this session pushed; the runner binary stays for reuse."""
        if self._pushed:
            self.run(["rm", "-f", *self._pushed], timeout=60)
            self._pushed.clear()

    # -- the runner binary -------------------------------------------------------------------------------------------

    def push_binary(self) -> str:
        """Push the runner binary once (hash-verified reuse), after checking it exists and matches the phone's ABI."""
        if self._binary_remote is not None:
            return self._binary_remote
        if self.binary is None or not self.binary.is_file():
            raise BinaryMissing(
                f"{self._where()}: runner binary {self.binary or '(none configured)'} not found on this machine; "
                f"download a prebuilt arm64 {self.runner} and set 'binary' in the inventory"
            )
        abi = self.props().get("ro.product.cpu.abi", "")
        want = ABI_MACHINE.get(abi)
        got = elf_machine(self.binary)
        if got is None:
            raise WrongABI(f"{self._where()}: {self.binary} is not an ELF executable; use the prebuilt {self.runner}")
        if want is not None and got != want:
            raise WrongABI(
                f"{self._where()}: {self.binary.name} is built for {_MACHINE_NAME.get(got, f'e_machine {got}')} "
                f"but the phone's ABI is {abi}; use the {_MACHINE_NAME.get(want, abi)} build"
            )
        remote = f"{self.work_dir}/bin/{self.binary.name}"
        self._push_verified(self.binary, remote, mode=0o755)
        chmod = self.run(["chmod", "755", remote], timeout=30)
        if not chmod.ok:
            raise PushFailed(f"{self._where()}: chmod 755 {remote} failed: {_last_line(chmod)}")
        self._binary_remote = remote
        return remote

    def _push_verified(self, local: Path, remote: str, mode: int) -> None:
        algo, digest = self._remote_digest(remote)
        if digest is not None and digest == file_digest(local, algo):
            return
        size = local.stat().st_size
        self.run(["mkdir", "-p", str(PurePosixPath(remote).parent)], timeout=30)
        free = self._free_bytes(str(PurePosixPath(remote).parent))
        if free is not None and free < size:
            raise NoSpaceLeft(
                f"{self._where()}: {remote} needs {size / 1e6:.1f} MB but only {free / 1e6:.1f} MB are free; "
                "free space on the phone (e.g. `adb shell rm -r /data/local/tmp/...`)"
            )
        self._sync_send(local, remote, mode)
        algo, digest = self._remote_digest(remote)
        if digest != file_digest(local, algo):
            raise PushFailed(f"{self._where()}: {remote} differs from {local} after the push; push again")

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
        raise DeviceError(f"{self._where()}: neither sha256sum nor md5sum on the phone; cannot verify pushes")

    def _free_bytes(self, directory: str) -> int | None:
        res = self.run(["df", "-k", directory], timeout=30)
        rows = [ln.split() for ln in res.stdout.splitlines()[1:] if ln.strip()]
        try:
            return int(rows[-1][3]) * 1024 if res.ok and rows else None
        except (IndexError, ValueError):
            return None  # an unknown df layout must not block a push; the device's FAIL still will

    def _sync_send(self, local: Path, remote: str, mode: int) -> None:
        spec = f"{remote},{stat.S_IFREG | mode}".encode()
        status, message = b"", ""
        try:
            with self._device().open_transport(timeout=self._timeout) as c:
                c.send_command("sync:")
                c.check_okay()
                sock = c.conn
                try:
                    sock.sendall(b"SEND" + struct.pack("<I", len(spec)) + spec)
                    with local.open("rb") as f:
                        for chunk in iter(lambda: f.read(_SYNC_CHUNK), b""):
                            sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                    mtime = int(datetime.datetime.now().timestamp())
                    sock.sendall(b"DONE" + struct.pack("<I", mtime))
                except OSError:
                    pass  # the phone may have hung up after a FAIL; read it below
                status = c.read(4)
                if status == b"FAIL":
                    message = c.read(c.read_uint32()).decode("utf-8", "replace")
        except (AdbError, OSError, EOFError) as exc:
            raise PushFailed(f"{self._where()}: push of {local.name} to {remote} failed: {_adb_message(exc)}") from None
        if status == b"OKAY":
            return
        if "No space left" in message:
            raise NoSpaceLeft(
                f"{self._where()}: no space left on the phone for {remote}; free space there and push again"
            )
        raise PushFailed(f"{self._where()}: push to {remote} failed: {message or status or 'connection closed'}")

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

    def state(self) -> dict[str, Any]:
        """What changes while measuring: per-cluster frequency and governor, thermal zones, battery."""
        res = self._shell("grep -s -H . " + " ".join(_SYSFS_GLOBS), timeout=30)
        clusters: dict[str, dict[str, Any]] = {}
        thermal: dict[str, dict[str, Any]] = {}
        for ln in res.stdout.splitlines():
            path, sep, value = ln.partition(":")
            if not sep:
                continue
            parts = path.split("/")
            if "cpufreq" in parts and parts[-2].startswith("policy"):
                clusters.setdefault(parts[-2], {})[parts[-1]] = _int_or_str(value.strip())
            elif parts[-2].startswith("thermal_zone"):
                thermal.setdefault(parts[-2], {})[parts[-1]] = _int_or_str(value.strip())
        temps = {
            str(z.get("type", name)): _millideg(z["temp"])
            for name, z in sorted(thermal.items())
            if isinstance(z.get("temp"), int)
        }
        return {
            "cpufreq": {
                name: {
                    "cpus": _cpu_list(str(c.get("related_cpus", ""))),
                    "cur_khz": c.get("scaling_cur_freq"),
                    "max_khz": c.get("cpuinfo_max_freq"),
                    "governor": c.get("scaling_governor"),
                }
                for name, c in sorted(clusters.items())
            },
            "temperatures_c": temps,
            "battery": self._battery(),
            "time": time.time(),
        }

    def _battery(self) -> dict[str, Any]:
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

    def facts(self) -> dict[str, Any]:
        props = self.props()
        st = self.state()
        cpus = sorted({c for cl in st["cpufreq"].values() for c in cl["cpus"]})
        return {
            "transport": self.transport,
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
            "temperatures_c": st["temperatures_c"],
            "battery": st["battery"],
            "runner": self.runner,
            "runner_sha256": file_digest(self.binary) if self.binary and self.binary.is_file() else None,
            "props": {k: props[k] for k in _PROPS if k in props},
        }

    # -- measuring ---------------------------------------------------------------------------------------------------

    def benchmark_argv(
        self, binary: str, model: str, opts: BenchmarkOptions, profile_out: str | None = None
    ) -> list[str]:
        """The command line for one trial, ``taskset``-pinned when an affinity is set."""
        if self.runner in TFLITE_RUNNERS:
            argv = [
                binary,
                f"--graph={model}",
                f"--num_threads={opts.threads}",
                f"--warmup_runs={opts.warmup_runs}",
                f"--warmup_min_secs={opts.warmup_seconds:g}",
                f"--num_runs={opts.runs}",
                f"--min_secs={opts.min_seconds:g}",
                f"--use_xnnpack={str(opts.xnnpack).lower()}",
            ]
            if opts.max_seconds is not None:
                argv.append(f"--max_secs={opts.max_seconds:g}")
            if profile_out:
                argv += [
                    "--enable_op_profiling=true",
                    "--op_profiling_output_mode=csv",
                    f"--op_profiling_output_file={profile_out}",
                ]
        else:
            # -I: random inputs from the model's shapes; -x: intra-op threads. The tool warms up with one run.
            argv = [binary, "-I", "-m", "times", "-r", str(opts.runs), "-x", str(opts.threads), "-e", "cpu"]
            if profile_out:
                argv += ["-p", profile_out]
            argv += [model, f"{model}.runs.csv"]
        if self.affinity:
            argv = ["taskset", affinity_mask(self.affinity), *argv]
        return argv

    def measure(
        self, artifact: Path, opts: BenchmarkOptions, timeout: float = 600, profile_dir: Path | None = None
    ) -> dict[str, Any]:
        """Push, run one trial and return its ``flopgap.runner/1`` document (``error`` set if the tool failed).

        With ``profile_dir`` the per-op profile is written on the phone, pulled there and parsed into ``ops``.
        """
        model = self.push(Path(artifact))
        binary = self.push_binary()
        profile_remote = None
        if profile_dir is not None and self.runner in TFLITE_RUNNERS:
            profile_remote = f"{model}.ops.csv"
        argv = self.benchmark_argv(binary, model, opts, profile_remote)
        result_remote = argv[-1] if self.runner in ORT_RUNNERS else None
        stale = [p for p in (profile_remote, result_remote) if p]
        if stale:  # onnxruntime_perf_test appends to its result file
            self.run(["rm", "-f", *stale], timeout=30)
            self._pushed.extend(stale)
        before = self.state()
        res = self.run(argv, timeout=timeout)
        after = self.state()
        doc: dict[str, Any] = {
            "schema": RUNNER_SCHEMA,
            "device": self.name,
            "serial": self.serial,
            "runtime": "tflite" if self.runner in TFLITE_RUNNERS else "onnxruntime",
            "runtime_version": None,  # the binaries do not print it; the inventory's binary name/sha stands in
            "tool": {"name": self.runner, "sha256": file_digest(self.binary) if self.binary else None, "argv": argv},
            "threads": opts.threads,
            "affinity": self.affinity,
            "affinity_mask": affinity_mask(self.affinity) if self.affinity else None,
            "options": asdict(opts),
            "state_before": before,
            "state_after": after,
            "returncode": res.returncode,
        }
        try:
            if self.runner in TFLITE_RUNNERS:
                doc.update(_tflite_doc(res.stdout + "\n" + res.stderr))
            else:
                doc.update(self._ort_doc(res, result_remote))
        except (ParseError, PullFailed) as exc:
            doc.update(samples_kind=None, samples_ns=[], error={"kind": "RunnerFailed", "message": f"{exc}"})
            return doc
        if profile_remote and profile_dir is not None:
            local = Path(profile_dir) / f"{self.name}-{Path(artifact).stem}-ops.csv"
            self.pull(profile_remote, local)
            doc["ops"] = [asdict(r) for r in parse_tflite_op_csv(local.read_text())]
            doc["ops_file"] = str(local)
        if not res.ok:
            doc["error"] = {
                "kind": "RunnerFailed",
                "message": f"{self.runner} exited {res.returncode}: {_last_line(res)}",
            }
        return doc

    def _ort_doc(self, res: ShellReturn, result_remote: str | None) -> dict[str, Any]:
        out = parse_ort_perf_test(res.stdout + "\n" + res.stderr)
        samples: list[int] = []
        if result_remote:
            with tempfile.TemporaryDirectory() as tmp:
                local = self.pull(result_remote, Path(tmp) / "runs.csv")
                samples = [round(s * 1e9) for s in parse_ort_result_file(local.read_text())]
        return {
            "samples_kind": "raw",
            "samples_ns": samples,
            "summary_ns": {
                "count": out.requests,
                "mean": _ns(out.avg_ms, 1e6),
                "min": _ns(out.min_s, 1e9),
                "max": _ns(out.max_s, 1e9),
                "p50": _ns(out.p50_s, 1e9),
                "p90": _ns(out.p90_s, 1e9),
                "p95": _ns(out.p95_s, 1e9),
                "p99": _ns(out.p99_s, 1e9),
            },
            "init_ns": _ns(out.session_creation_s, 1e9),
            "first_inference_ns": _ns(out.first_inference_ms, 1e6),
            "warmup_runs": 1,
            "memory": {"peak_working_set_bytes": out.peak_working_set_bytes},
            "ops": None,
        }


def _tflite_doc(text: str) -> dict[str, Any]:
    out = parse_tflite_benchmark(text)
    if out.inference is None:
        raise ParseError("benchmark_model printed no timed-run statistics")
    return {
        # benchmark_model keeps no per-run samples: only this summary of the timed runs exists.
        "samples_kind": "summary",
        "samples_ns": [],
        "summary_ns": _stats_ns(out.inference),
        "warmup_ns": _stats_ns(out.warmup) if out.warmup else None,
        "init_ns": _ns(out.init_us, 1e3),
        "first_inference_ns": _ns(out.first_inference_us, 1e3),
        "memory": {"init_mb": out.mem_init_mb, "overall_mb": out.mem_overall_mb, "peak_mb": out.peak_mem_mb},
        "model_size_mb": out.model_size_mb,
        "ops": [asdict(r) for r in out.ops] or None,
    }


def _stats_ns(s: RunStats) -> dict[str, Any]:
    single = s.curr_us if s.all_same else None  # "count=N curr=X": every run took X
    return {
        "count": s.count,
        "first": _ns(s.first_us if s.first_us is not None else single, 1e3),
        "mean": _ns(s.avg_us if s.avg_us is not None else single, 1e3),
        "std": _ns(s.std_us if s.std_us is not None else (0.0 if s.all_same else None), 1e3),
        "min": _ns(s.min_us if s.min_us is not None else single, 1e3),
        "max": _ns(s.max_us if s.max_us is not None else single, 1e3),
        "p5": _ns(s.p5_us, 1e3),
        "p50": _ns(s.median_us if s.median_us is not None else single, 1e3),
        "p95": _ns(s.p95_us, 1e3),
    }


def _ns(value: float | None, scale: float) -> int | None:
    return None if value is None else round(value * scale)


def _int_or_str(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _millideg(value: int) -> float:
    # Most zones report millidegrees; a few report degrees.
    return value / 1000 if abs(value) > 200 else float(value)


def _cpu_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.replace(",", " ").split():
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            cpus += list(range(int(lo), int(hi or lo) + 1))
    return cpus


def _adb_message(exc: BaseException) -> str:
    return " ".join(str(a) for a in exc.args) or type(exc).__name__


def _last_line(res: ShellReturn) -> str:
    lines = (res.stderr or res.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {res.returncode}"
