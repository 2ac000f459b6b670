"""flopgap's on-device runner (the agent): time one model with one runtime and print one JSON document.

Self-contained on purpose: only the standard library, numpy and the runtime (onnxruntime,
ai_edge_litert / tflite_runtime, or executorch with its torch) are imported, so this single file can be copied to
a board and run as ``python3 runner.py``.
Never import flopgap modules here. Boards run old Pythons: keep this file Python 3.9 (no ``match``, no ``X | Y``
outside annotations; tests/test_runner_python39.py checks).

Protocol (see DESIGN.md, "Measurement protocol"): inputs are allocated once; warm-up runs until at least
``--warmup-runs`` runs AND ``--warmup-seconds`` have passed; timed runs until at least ``--runs`` runs AND
``--min-seconds`` have passed, capped at ``--max-runs``. The timed loop only invokes the runtime and reads
``time.perf_counter_ns`` around each call; raw per-iteration latencies are kept.

stdout carries exactly one JSON document (schema ``flopgap.runner/1``, declared below as :class:`RunnerDocument`),
also on failure, where ``error`` names the kind and the exit code is 2. Everything else (runtime logs, native
prints) goes to stderr. The controller parses the document once, into ``devices.result.TrialResult``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import glob
import hashlib
import importlib
import importlib.util
import json
import os
import platform
import resource
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypedDict

import numpy as np

SCHEMA = "flopgap.runner/1"
# Bump when a change to this file changes what it measures: the version is part of every sweep point's key, so
# points measured by an older runner are measured again instead of being skipped as done.
RUNNER_VERSION = "5"  # 2: quantized TFLite inputs hold integers of N(0, 1) values; 3: peak memory is the own VmHWM;
# 4: the model is read once, hashed and loaded from those bytes (model_sha256: what was timed); 5: --instances
SYS_CPU = "/sys/devices/system/cpu"  # module-level so tests can point them at a fake tree
PROC_CPUINFO = "/proc/cpuinfo"
SYS_THERMAL = "/sys/class/thermal"
EXIT_FAILED = 2
EXIT_INTERNAL = 1

_TFLITE_PROFILE_NOTE = (
    "the LiteRT/TFLite Python interpreter exposes no per-op profiler; per-op times come from LiteRT's C API "
    "profiler (ai-edge-litert {versions}, XNNPACK on), which {runtime} {version} {why}; time sub-models or use "
    "benchmark_model --enable_op_profiling"
)
# LiteRT's C API (libLiteRt.so in the ai-edge-litert wheel) has a profiler its Python API does not expose: a
# CompiledModel made with the runtime option ``enable_profiling`` records XNNPACK's operator events, run order, in
# the same terms as benchmark_model's op profile. Reached through ctypes, so its ABI is checked per release: the
# releases whose layout was read off (ProfiledEventData is 104 bytes: tag, type, start, elapsed, two memory
# records of three 8-byte fields, two metadata words, source) are the only ones used.
LITERT_PROFILER_RELEASES = ("2.3.",)
_LITERT_EVENT_BYTES = 104
_LITERT_METADATA_AT = 80  # event_metadata1: the operator's index in its delegate's (or the graph's) run order
_LITERT_OP_EVENTS = (2, 4, 8)  # operator, delegate operator, delegate-profiled operator invoke events
_LITERT_EVENT_TYPES = frozenset(1 << i for i in range(9))
_LITERT_CPU = 1  # kLiteRtHwAcceleratorCpu
_LITERT_ALIGN = 64  # host memory wrapped in a tensor buffer


# --------------------------------------------------------------------------- the JSON document (the contract)


class DelegateReport(TypedDict, total=False):
    """Which delegate ran the graph and how much of it (TFLite); ORT reports its provider only."""

    name: str | None
    nodes_total: int | None
    nodes_delegated: int | None
    delegate_kernels: int
    nodes_on_cpu: int


class InputInfo(TypedDict):
    name: str
    shape: list[int]
    dtype: str


class ProfileRow(TypedDict):
    """One node of ORT's per-node profile: mean and median kernel time over ``calls`` profiled runs."""

    name: str
    op_type: str
    provider: str | None
    time_us: float
    median_us: float
    calls: int


class EtdumpBlob(TypedDict):
    """ExecuTorch's ETDump of the profiled runs, for the host to read with the Inspector and the ETRecord."""

    base64: str  # the ETDump file's bytes
    warmup_runs: int  # the first runs it holds, to leave out of per-op times
    runs: int  # profiled runs after those


class ProtocolEcho(TypedDict):
    """The protocol arguments the runner was given, echoed back."""

    warmup_runs: int
    warmup_seconds: float
    runs: int
    min_seconds: float
    max_runs: int
    seed: int
    affinity: list[int] | None
    graph_optimization: str
    ort_allow_spinning: bool
    ort_execution_mode: str
    profile: bool
    profile_runs: int
    sustained_seconds: float | None
    window_seconds: float
    instances: int
    clock: str


class OrtSettings(TypedDict):
    """The ONNX Runtime session settings a trial ran with, read back from the session options."""

    allow_spinning: bool  # session.intra_op.allow_spinning: idle intra-op threads busy-wait for work
    graph_optimization: str  # all | extended | basic | disable
    execution_mode: str  # sequential | parallel
    intra_op_threads: int
    inter_op_threads: int


class ErrorInfo(TypedDict):
    kind: str  # BadArguments, ModelNotFound, ModelLoadFailed, RuntimeMissing, InferenceFailed, InternalError
    message: str


class Timing(TypedDict):
    """What :func:`run_protocol` measured."""

    first_inference_ns: int
    warmup_runs: int
    warmup_ns: int
    timed_ns: int
    samples_ns: list[int]


class TimelineWindow(TypedDict):
    """One window of a sustained run: its timed runs' median and the device's state read during it."""

    index: int
    start_s: float  # from the start of the sustained loop
    end_s: float
    runs: int
    median_ns: float | None  # None when no run finished inside the window
    cpu_khz: dict[str, int]  # cpu index -> scaling_cur_freq, read by the sampling thread
    temps_c: dict[str, float]  # thermal zone -> temperature
    state_s: float | None  # when that state was read (from the start), None if never


class SustainedEcho(TypedDict):
    """How a sustained run went: its length, its window, when it started and how samples were thinned."""

    seconds: float
    window_s: float
    start_unix: float
    runs_total: int
    kept_every: int  # raw samples kept: every k-th run (bounded by --max-runs), evenly over the whole run


class RunnerDocument(TypedDict):
    """The one JSON document the runner prints; every key is present, unknowns are null."""

    schema: str
    runner_version: str
    model_path: str | None
    model_sha256: str | None  # of the bytes the runtime loaded: what was timed, whatever the path holds now
    format: str | None
    runtime: str | None
    runtime_version: str | None
    threads: int | None
    xnnpack: bool | None
    delegate: DelegateReport | None
    ort_settings: OrtSettings | None  # ONNX models only
    inputs: list[InputInfo] | None
    init_ns: int | None
    first_inference_ns: int | None
    warmup_runs: int | None
    warmup_ns: int | None
    timed_ns: int | None
    samples_ns: list[int] | None
    instance_runs: list[int] | None  # --instances: how many of samples_ns each instance gave, in order
    peak_rss_kib: int | None
    peak_rss_source: str | None  # "VmHWM" (this process image's own peak) or "ru_maxrss" (may include the parent's)
    rss_before_load_kib: int | None
    affinity: list[int] | None
    python: str
    hostname: str
    state_before: dict[str, Any] | None  # device_state(): time_unix, cpus, thermal, loadavg
    state_after: dict[str, Any] | None
    profile: list[ProfileRow] | None
    profile_note: str | None
    etdump: EtdumpBlob | None  # ExecuTorch with --profile: per-op events, read on the host (needs the ETRecord)
    timeline: list[TimelineWindow] | None  # sustained runs only (--sustained)
    sustained: SustainedEcho | None
    protocol: ProtocolEcho | None
    optimized_model: str | None  # --save-optimized: where ONNX Runtime wrote the graph it optimized on this device
    error: ErrorInfo | None


class RunnerError(Exception):
    """A failure the caller can act on; ``kind`` is one of the schema's error kinds."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _one_line(text: object, limit: int = 400) -> str:
    """Collapse whitespace so an error message is always a single line."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- device state and facts (stdlib only)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _cpu_dirs() -> list[tuple[int, str]]:
    """(cpu index, sysfs dir) for every cpuN directory, in numeric order."""
    found = []
    for path in glob.glob(os.path.join(SYS_CPU, "cpu[0-9]*")):
        suffix = os.path.basename(path)[3:]
        if suffix.isdigit():
            found.append((int(suffix), path))
    return sorted(found)


def cpu_frequencies() -> list[dict[str, Any]]:
    """Per-CPU cpufreq readings in kHz plus governor; fields that cannot be read are left out."""
    rows = []
    for index, path in _cpu_dirs():
        row: dict[str, Any] = {"cpu": index}
        freq = os.path.join(path, "cpufreq")
        for key, name in (
            ("cur_khz", "scaling_cur_freq"),
            ("max_khz", "cpuinfo_max_freq"),
            ("min_khz", "cpuinfo_min_freq"),
            ("scaling_max_khz", "scaling_max_freq"),
        ):
            value = _read_int(os.path.join(freq, name))
            if value is not None:
                row[key] = value
        governor = _read_text(os.path.join(freq, "scaling_governor"))
        if governor:
            row["governor"] = governor
        if len(row) > 1:
            rows.append(row)
    return rows


def thermal_zones() -> list[dict[str, Any]]:
    """Thermal zone readings in °C (sysfs reports millidegrees); unreadable zones are skipped."""
    zones = []
    for path in glob.glob(os.path.join(SYS_THERMAL, "thermal_zone*")):
        suffix = os.path.basename(path)[len("thermal_zone") :]
        if suffix.isdigit():
            zones.append((int(suffix), path))
    rows = []
    for _, path in sorted(zones):
        millidegrees = _read_int(os.path.join(path, "temp"))
        if millidegrees is None:
            continue
        row: dict[str, Any] = {"zone": os.path.basename(path), "temp_c": millidegrees / 1000.0}
        kind = _read_text(os.path.join(path, "type"))
        if kind:
            row["type"] = kind
        rows.append(row)
    return rows


def device_state() -> dict[str, Any]:
    """Frequencies, governors, temperatures and load right now; never raises for unreadable files."""
    state: dict[str, Any] = {"time_unix": time.time()}
    with contextlib.suppress(Exception):
        cpus = cpu_frequencies()
        if cpus:
            state["cpus"] = cpus
    with contextlib.suppress(Exception):
        zones = thermal_zones()
        if zones:
            state["thermal"] = zones
    with contextlib.suppress(OSError, AttributeError):
        state["loadavg"] = [round(x, 3) for x in os.getloadavg()]
    return state


_CORE_FIELDS = {
    "cpu implementer": "implementer",
    "cpu part": "part",
    "cpu variant": "variant",
    "cpu revision": "revision",
}


def _cpuinfo() -> dict[str, Any]:
    """CPU model fields from /proc/cpuinfo: x86 'model name', ARM 'Hardware', 'CPU implementer'/'CPU part'.

    ARM kernels also get ``cpu_cores``: one row per listed processor with its implementer, part, variant and
    revision as written there (devices/arm_cores.py turns them into core names and clusters on the host).
    """
    text = _read_text(PROC_CPUINFO)
    if not text:
        return {}
    models: list[str] = []
    parts: list[str] = []
    implementers: list[str] = []
    cores: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor" and value.isdigit():
            cores.append({"processor": int(value)})
        elif key in _CORE_FIELDS and cores:
            cores[-1][_CORE_FIELDS[key]] = value
        if key in ("model name", "processor") and value and not value.isdigit():
            models.append(value)  # ARM kernels put the model in 'Processor' on old 32-bit boards
        elif key == "hardware" and value:
            info["cpu_hardware"] = value
        elif key == "cpu part":
            parts.append(value)
        elif key == "cpu implementer":
            implementers.append(value)
        elif key == "model" and value and not value.isdigit():
            info["board_model"] = value  # Raspberry Pi kernels put the board here
    if models:
        info["cpu_model"] = models[0]
    if parts:
        info["cpu_parts"] = sorted(set(parts))
        info["cpu_part_per_core"] = parts
    if implementers:
        info["cpu_implementers"] = sorted(set(implementers))
    if any("part" in core for core in cores):
        info["cpu_cores"] = cores
    return info


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cpu_caches() -> dict[str, str] | None:
    """Cache sizes of CPU 0 by level and type from sysfs: ``{"L1d": "32K", "L1i": "32K", "L2": "512K", ...}``."""
    caches: dict[str, str] = {}
    for index in sorted(glob.glob(os.path.join(SYS_CPU, "cpu0", "cache", "index[0-9]*"))):
        level, kind, size = (_read_text(os.path.join(index, f)) for f in ("level", "type", "size"))
        if level and size:
            suffix = {"Data": "d", "Instruction": "i"}.get(kind or "", "")
            caches[f"L{level}{suffix}"] = size
    return caches or None


def cpu_identity() -> dict[str, Any]:
    """What tells this machine from another of the same CPU model: vendor, family/model/stepping (x86) or
    implementer/architecture/variant/revision (ARM), cache sizes, a digest of the CPU flags, and a digest of the
    machine id (/etc/machine-id is private: only its salted hash leaves the device)."""
    text = _read_text("/proc/cpuinfo") or ""
    first: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or key in first:
            continue  # the first processor's fields; the rest repeat them
        first[key] = value.strip()
    fields = (
        ("cpu_vendor", ("vendor_id", "cpu implementer")),
        ("cpu_family", ("cpu family", "cpu architecture")),
        ("cpu_model_number", ("model",)),
        ("cpu_stepping", ("stepping", "cpu variant")),
        ("cpu_revision", ("cpu revision",)),
    )
    ident: dict[str, Any] = {}
    for name, keys in fields:
        found = next((first[k] for k in keys if first.get(k)), None)
        if found is not None and (name != "cpu_model_number" or found.isdigit()):
            ident[name] = found
    flags = first.get("flags") or first.get("features")
    if flags:
        ident["cpu_flags_digest"] = _digest(" ".join(sorted(flags.split())))
    ident["cpu_caches"] = _cpu_caches()
    machine_id = _read_text("/etc/machine-id") or _read_text("/var/lib/dbus/machine-id")
    ident["machine_id_digest"] = _digest("flopgap:" + machine_id) if machine_id else None
    return ident


def _os_pretty_name() -> str | None:
    text = _read_text("/etc/os-release")
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def _mem_total_kib() -> int | None:
    text = _read_text("/proc/meminfo")
    if text:
        for line in text.splitlines():
            if line.startswith("MemTotal:"):
                with contextlib.suppress(ValueError, IndexError):
                    return int(line.split()[1])
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    return None


def _module_version(name: str) -> str | None:
    """Version of an importable module, or None when it cannot be imported."""
    try:
        module = importlib.import_module(name)
    except Exception:  # a broken wheel can raise anything on import; it is simply "not available"
        return None
    version = getattr(module, "__version__", None)
    if version is None:
        with contextlib.suppress(Exception):
            from importlib import metadata

            version = metadata.version(name.replace("_", "-"))
    return str(version) if version is not None else "unknown"


def _installed_version(name: str) -> str | None:
    """Version of an installed package found without importing it (executorch's import loads all of torch)."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
        from importlib import metadata

        return metadata.version(name)
    except Exception:
        return None


def _affinity() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def device_facts() -> dict[str, Any]:
    """Static facts about this device plus its current state, for ``--facts``."""
    facts: dict[str, Any] = {"schema": SCHEMA + "#facts"}
    facts.update(_cpuinfo())
    facts.update(cpu_identity())
    facts["runner_version"] = RUNNER_VERSION
    facts["cpu_count"] = os.cpu_count()
    affinity = _affinity()
    facts["cpus_usable"] = len(affinity) if affinity is not None else None
    max_khz = {}
    for row in cpu_frequencies():
        if "max_khz" in row:
            max_khz[str(row["cpu"])] = row["max_khz"]
    facts["cpu_max_khz"] = max_khz or None
    facts["os"] = platform.platform()
    facts["os_pretty_name"] = _os_pretty_name()
    facts["kernel"] = platform.release()
    facts["machine"] = platform.machine()
    facts["mem_total_kib"] = _mem_total_kib()
    facts["python"] = platform.python_version()
    facts["hostname"] = socket.gethostname()
    facts["runtimes"] = {
        name: _module_version(name) for name in ("onnxruntime", "ai_edge_litert", "tflite_runtime", "numpy")
    }
    facts["runtimes"]["executorch"] = _installed_version("executorch")
    facts["op_profiles"] = op_profile_formats(facts["runtimes"])
    facts["state"] = device_state()
    return facts


def op_profile_formats(runtimes: dict[str, str | None]) -> list[str]:
    """The model formats whose per-op profile a trial here returns: ONNX (ORT's profiler), PTE (ETDump), TFLite
    where this LiteRT's C API profiler is one flopgap can read (:func:`litert_profiler_missing`)."""
    out = [fmt for fmt, name in (("onnx", "onnxruntime"), ("pte", "executorch")) if runtimes.get(name)]
    version = runtimes.get("ai_edge_litert")
    if version is not None and litert_profiler_missing(_litert_dir(), version) is None:
        out.append("tflite")
    return out


def _litert_dir() -> str:
    spec = importlib.util.find_spec("ai_edge_litert")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return locations[0] if locations else ""


def litert_profiler_missing(package_dir: str, version: str) -> str | None:
    """Why ai-edge-litert ``version`` (its package at ``package_dir``) gives no per-op profile; None where it does."""
    if not version.startswith(LITERT_PROFILER_RELEASES):
        return "is not (its C API's layout is read off per release)"
    if not os.path.exists(os.path.join(package_dir, "libLiteRt.so")):
        return "ships without (no libLiteRt.so beside its Python package)"
    return None


PROC_SELF_STATUS = "/proc/self/status"


def peak_rss() -> tuple[int, str]:
    """Peak resident set size of this process in KiB, and where it was read.

    ``VmHWM`` (Linux, Android) is the high-water mark of this process image alone. ``ru_maxrss`` is the fallback
    where there is no /proc: Linux carries it over fork and exec, so under a big parent (a sweep holding torch) it
    reports the parent's peak, not the runner's (KiB on Linux, bytes on macOS).
    """
    status = _read_text(PROC_SELF_STATUS) or ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            with contextlib.suppress(IndexError, ValueError):
                return int(line.split()[1]), "VmHWM"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (int(peak // 1024) if sys.platform == "darwin" else int(peak)), "ru_maxrss"


def peak_rss_kib() -> int:
    return peak_rss()[0]


# --------------------------------------------------------------------------- inputs


def random_input(
    shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator, quantization: Any = None
) -> np.ndarray:
    """A random tensor of the model's dtype: floats ~ N(0, 1), integers over their full range, bools 50/50.

    A quantized input (``quantization`` = TFLite's ``(scale, zero_point)`` with a non-zero scale) gets the integers
    of N(0, 1) values, as a float input would see, so activations keep their calibrated range.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype)
    scale, zero = quantization if quantization is not None and len(quantization) == 2 else (0.0, 0)
    if dtype.kind in "iu" and scale:
        info = np.iinfo(dtype)
        values = np.round(rng.standard_normal(shape) / float(scale) + int(zero))
        return np.clip(values, info.min, info.max).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        # Full range for 8/16-bit (quantized activations); small values for wider ints (likely indices).
        low, high = (int(info.min), int(info.max)) if dtype.itemsize <= 2 else (0, 9)
        return rng.integers(low, high, size=shape, dtype=dtype, endpoint=True)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    raise RunnerError("ModelLoadFailed", f"input dtype {dtype} is not supported by the runner")


def _static_shape(shape: Any) -> tuple[int, ...]:
    """Concrete shape: dynamic dimensions (None, -1, symbolic names) become 1."""
    # A tuple, not `int | np.integer`: isinstance takes unions only from Python 3.10.
    return tuple(int(d) if isinstance(d, (int, np.integer)) and d > 0 else 1 for d in shape)


# --------------------------------------------------------------------------- backends


class Backend:
    """A runtime holding one model.

    Construct (imports the runtime), ``load`` (timed as init), ``bind_inputs`` (once), then ``invoke`` is the
    only thing called inside the timed loop.
    """

    runtime: str = ""
    runtime_version: str = ""
    inputs: list[InputInfo]
    xnnpack: bool | None = None
    delegate: DelegateReport | None = None

    profile_note: str | None = None  # why ``profile`` gives nothing, where it cannot
    etdump: EtdumpBlob | None = None  # what ``profile`` left for the host to read (ExecuTorch)

    def load(self, path: str, content: bytes) -> None:
        """Create the session/interpreter from ``content`` (the bytes of ``path``, read and hashed once by the
        caller, so what is timed is what was hashed) and allocate its tensors; raises RunnerError(ModelLoadFailed)."""
        raise NotImplementedError

    def bind_inputs(self, rng: np.random.Generator) -> None:
        """Allocate random inputs once and hand them to the runtime."""
        raise NotImplementedError

    def invoke(self) -> None:
        raise NotImplementedError

    def profile(self, warmup_runs: int, runs: int) -> list[ProfileRow] | None:
        """Per-op rows, or None where the runtime offers no per-op timing."""
        return None


_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}

_ORT_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_ORT_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
SPINNING_KEY = "session.intra_op.allow_spinning"
EXTERNAL_DATA_KEY = "session.model_external_initializers_file_folder_path"
# The saved optimized graph keeps large weights in a side file: what the host pulls back is the graph alone.
SAVED_DATA_KEY = "session.optimized_model_external_initializers_file_name"
SAVED_DATA_MIN_KEY = "session.optimized_model_external_initializers_min_size_in_bytes"


class OrtBackend(Backend):
    """onnxruntime, CPU execution provider, inputs and outputs pre-bound with io_binding."""

    def __init__(
        self,
        threads: int,
        graph_opt: str,
        allow_spinning: bool = True,
        execution_mode: str = "sequential",
        save_optimized: str | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            message = f"onnxruntime is not importable ({_one_line(exc)}); install onnxruntime for {sys.executable}"
            raise RunnerError("RuntimeMissing", message) from exc
        self._ort = ort
        self._threads = threads
        self._graph_opt = graph_opt
        self._allow_spinning = allow_spinning
        self._execution_mode = execution_mode
        self._save_optimized = save_optimized
        self.settings: OrtSettings | None = None
        self.runtime = "onnxruntime"
        self.runtime_version = ort.__version__

    def load(self, path: str, content: bytes) -> None:
        self._path = path
        self._content = content  # a profiling session is created from the same bytes, never the path again
        try:
            self._session = self._new_session(profile_prefix=None)
        except Exception as exc:
            raise RunnerError("ModelLoadFailed", f"onnxruntime cannot load {path}: {_one_line(exc)}") from exc
        providers = self._session.get_providers()
        # ORT does not say how many nodes each provider took; with the CPU provider alone, all of them.
        self.delegate = {"name": providers[0] if providers else None, "nodes_total": None, "nodes_delegated": None}

    def bind_inputs(self, rng: np.random.Generator) -> None:
        try:
            self._binding = self._bind(self._session, rng)
        except RunnerError:
            raise
        except Exception as exc:
            raise RunnerError("ModelLoadFailed", f"cannot bind inputs of {self._path}: {_one_line(exc)}") from exc

    def _new_session(self, profile_prefix: str | None) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.execution_mode = getattr(ort.ExecutionMode, _ORT_MODES[self._execution_mode])
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _ORT_OPT_LEVELS[self._graph_opt])
        options.add_session_config_entry(SPINNING_KEY, "1" if self._allow_spinning else "0")
        # Loaded from bytes, ORT looks for external data (model.onnx.data) here rather than next to a path.
        options.add_session_config_entry(EXTERNAL_DATA_KEY, os.path.dirname(os.path.abspath(self._path)))
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        elif self._save_optimized is not None:
            # The timed session's own graph, as ORT optimized it for this CPU (kernels differ between ISAs).
            os.makedirs(os.path.dirname(os.path.abspath(self._save_optimized)), exist_ok=True)
            options.optimized_model_filepath = self._save_optimized
            options.add_session_config_entry(SAVED_DATA_KEY, os.path.basename(self._save_optimized) + ".data")
            options.add_session_config_entry(SAVED_DATA_MIN_KEY, "1024")
        session = ort.InferenceSession(self._content, sess_options=options, providers=["CPUExecutionProvider"])
        if profile_prefix is None:
            self.settings = _ort_settings(ort, options)
        return session

    def _bind(self, session: Any, rng: np.random.Generator) -> Any:
        ort = self._ort
        binding = session.io_binding()
        self.inputs = []
        self._input_arrays: dict[str, np.ndarray] = {}
        for meta in session.get_inputs():
            dtype = _ORT_TYPES.get(meta.type)
            if dtype is None:
                raise RunnerError("ModelLoadFailed", f"input {meta.name} has unsupported type {meta.type}")
            shape = _static_shape(meta.shape)
            array = random_input(shape, np.dtype(dtype), rng)
            self._input_arrays[meta.name] = array
            binding.bind_ortvalue_input(meta.name, ort.OrtValue.ortvalue_from_numpy(array))
            self.inputs.append({"name": meta.name, "shape": list(shape), "dtype": np.dtype(dtype).name})
        self._outputs: list[Any] = []  # keep the OrtValues alive as long as the binding
        for meta in session.get_outputs():
            dtype = _ORT_TYPES.get(meta.type)
            static = all(isinstance(d, int) and d > 0 for d in (meta.shape or []))
            if dtype is not None and static and meta.shape:
                value = ort.OrtValue.ortvalue_from_shape_and_type(list(meta.shape), dtype)
                self._outputs.append(value)
                binding.bind_ortvalue_output(meta.name, value)
            else:  # dynamic output: ORT allocates it on every run
                binding.bind_output(meta.name, "cpu")
        return binding

    def invoke(self) -> None:
        self._session.run_with_iobinding(self._binding)

    def profile(self, warmup_runs: int, runs: int) -> list[ProfileRow] | None:
        """Per-node kernel times from ORT's chrome-trace profile of a separate session (so timing is untouched)."""
        with tempfile.TemporaryDirectory(prefix="flopgap-ort-profile-") as tmp:
            session = self._new_session(profile_prefix=os.path.join(tmp, "ort"))
            binding = session.io_binding()
            for name, array in self._input_arrays.items():
                binding.bind_ortvalue_input(name, self._ort.OrtValue.ortvalue_from_numpy(array))
            for meta in session.get_outputs():
                binding.bind_output(meta.name, "cpu")
            for _ in range(warmup_runs + runs):
                session.run_with_iobinding(binding)
            trace_path = session.end_profiling()
            with open(trace_path, encoding="utf-8") as f:
                events = json.load(f)
        return parse_ort_profile(events, skip_first=warmup_runs)


def _ort_settings(ort: Any, options: Any) -> OrtSettings:
    """What the session options hold, read back (not what was asked): the record of how the trial ran."""
    levels = {getattr(ort.GraphOptimizationLevel, v): k for k, v in _ORT_OPT_LEVELS.items()}
    modes = {getattr(ort.ExecutionMode, v): k for k, v in _ORT_MODES.items()}
    return {
        "allow_spinning": options.get_session_config_entry(SPINNING_KEY) != "0",
        "graph_optimization": levels.get(options.graph_optimization_level, str(options.graph_optimization_level)),
        "execution_mode": modes.get(options.execution_mode, str(options.execution_mode)),
        "intra_op_threads": options.intra_op_num_threads,
        "inter_op_threads": options.inter_op_num_threads,
    }


def parse_ort_profile(events: list[dict[str, Any]], skip_first: int = 0) -> list[ProfileRow]:
    """Per-node rows {name, op_type, provider, time_us, calls} from ORT's chrome-trace events, in execution order.

    ``time_us`` is the mean kernel time over the calls kept after dropping each node's first ``skip_first`` calls;
    ``median_us`` is their median, robust to the odd preempted call on a shared machine.
    """
    durations: dict[str, list[float]] = {}
    op_types: dict[str, str] = {}
    providers: dict[str, str] = {}
    for event in events:
        if event.get("cat") != "Node":
            continue
        full_name = str(event.get("name", ""))
        if not full_name.endswith("_kernel_time"):
            continue  # fence_before / fence_after markers
        name = full_name[: -len("_kernel_time")]
        args = event.get("args") or {}
        durations.setdefault(name, []).append(float(event.get("dur", 0.0)))
        op_types.setdefault(name, str(args.get("op_name", "")))
        if "provider" in args:
            providers.setdefault(name, str(args["provider"]))
    rows: list[ProfileRow] = []
    for name, times in durations.items():
        kept = times[skip_first:] or times
        rows.append(
            {
                "name": name,
                "op_type": op_types[name],
                "provider": providers.get(name),
                "time_us": sum(kept) / len(kept),
                "median_us": float(np.median(kept)),
                "calls": len(kept),
            }
        )
    return rows


def _import_tflite() -> tuple[Any, str, str]:
    """The TFLite interpreter module, preferring ai_edge_litert over tflite_runtime."""
    errors = []
    for package in ("ai_edge_litert", "tflite_runtime"):
        try:
            module = importlib.import_module(f"{package}.interpreter")
        except ImportError as exc:
            errors.append(f"{package}: {_one_line(exc, 120)}")
            continue
        return module, package, _module_version(package) or "unknown"
    raise RunnerError(
        "RuntimeMissing",
        f"no TFLite runtime is importable ({'; '.join(errors)}); install ai-edge-litert (or tflite-runtime) for "
        f"{sys.executable}",
    )


class TfliteBackend(Backend):
    """LiteRT / TFLite interpreter; XNNPACK is the default delegate, switched off via the op resolver."""

    def __init__(self, threads: int, xnnpack: bool) -> None:
        self._module, self.runtime, self.runtime_version = _import_tflite()
        self._threads = threads
        self.xnnpack = xnnpack
        self._resolver = getattr(self._module, "OpResolverType", None)
        if self._resolver is None and not xnnpack:
            message = f"--no-xnnpack needs OpResolverType, which {self.runtime} {self.runtime_version} lacks"
            raise RunnerError("BadArguments", message)

    def load(self, path: str, content: bytes) -> None:
        self._path = path
        self._content = content  # the interpreter reads the model from this buffer for as long as it lives
        kwargs: dict[str, Any] = {"model_content": content, "num_threads": self._threads}
        if self._resolver is not None:
            kwargs["experimental_op_resolver_type"] = (
                self._resolver.BUILTIN if self.xnnpack else self._resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        try:
            self._interpreter = self._module.Interpreter(**kwargs)
            self._interpreter.allocate_tensors()  # default delegates (XNNPACK) are applied here
        except Exception as exc:
            raise RunnerError("ModelLoadFailed", f"{self.runtime} cannot load {path}: {_one_line(exc)}") from exc
        self.delegate = self._delegate_report(bool(self.xnnpack))

    def bind_inputs(self, rng: np.random.Generator) -> None:
        self.inputs = []
        for detail in self._interpreter.get_input_details():
            shape = _static_shape(detail["shape"])
            array = random_input(shape, np.dtype(detail["dtype"]), rng, detail.get("quantization"))
            # Set once: invoke() neither consumes nor overwrites input tensors, so the loop only calls invoke().
            self._interpreter.set_tensor(detail["index"], array)
            self.inputs.append({"name": detail["name"], "shape": list(shape), "dtype": np.dtype(detail["dtype"]).name})

    def _delegate_report(self, xnnpack: bool) -> DelegateReport:
        """How many of the graph's ops the delegate took: each DELEGATE kernel covers the ops between its I/O."""
        report: DelegateReport = {"name": "xnnpack" if xnnpack else None, "nodes_total": None, "nodes_delegated": None}
        try:
            ops = self._interpreter._get_ops_details()
        except Exception:  # private API; absent in some builds
            return report
        original = [op for op in ops if op["op_name"] != "DELEGATE"]
        kernels = [op for op in ops if op["op_name"] == "DELEGATE"]
        producer = {int(t): op["index"] for op in original for t in op["outputs"]}
        by_index = {op["index"]: op for op in original}
        covered: set[int] = set()
        for kernel in kernels:
            boundary = {int(t) for t in kernel["inputs"]}
            stack = [int(t) for t in kernel["outputs"]]
            while stack:
                tensor = stack.pop()
                if tensor in boundary or tensor not in producer or producer[tensor] in covered:
                    continue
                covered.add(producer[tensor])
                stack.extend(int(t) for t in by_index[producer[tensor]]["inputs"])
        report["nodes_total"] = len(original)
        report["nodes_delegated"] = len(covered)
        report["delegate_kernels"] = len(kernels)
        report["nodes_on_cpu"] = len(original) - len(covered)
        if not kernels and xnnpack:
            report["name"] = None  # XNNPACK asked for but took nothing (e.g. unsupported ops or int types)
        return report

    def invoke(self) -> None:
        self._interpreter.invoke()

    def profile(self, warmup_runs: int, runs: int) -> list[ProfileRow] | None:
        """XNNPACK's per-operator times from LiteRT's C API profiler, in a second instance of the model (a
        CompiledModel with profiling on, on the CPU, with this trial's threads and its inputs), so timing is
        untouched; None, with ``profile_note`` saying why, where this runtime has no such profiler."""
        why = self._profiler_missing()
        if why is not None:
            self.profile_note = _TFLITE_PROFILE_NOTE.format(
                versions=" or ".join(v + "x" for v in LITERT_PROFILER_RELEASES), runtime=self.runtime,
                version=self.runtime_version, why=why,
            )  # fmt: skip
            return None
        arrays = [self._interpreter.get_tensor(d["index"]) for d in self._interpreter.get_input_details()]
        return litert_op_profile(self._module_dir(), self._path, self._threads, arrays, warmup_runs, runs)

    def _module_dir(self) -> str:
        return os.path.dirname(os.path.abspath(str(self._module.__file__)))  # ai_edge_litert/ (of .interpreter)

    def _profiler_missing(self) -> str | None:
        if self.runtime != "ai_edge_litert":
            return "is not"
        if not self.xnnpack:
            return "runs only with XNNPACK, which this trial turned off"
        return litert_profiler_missing(self._module_dir(), self.runtime_version)


def _litert_check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"LiteRT's C API: {what} returned status {status}")


def litert_op_profile(
    package_dir: str, path: str, threads: int, inputs: Sequence[np.ndarray], warmup_runs: int, runs: int
) -> list[ProfileRow]:
    """Per-operator rows {name: the operator's index, op_type: XNNPACK's operator name, time_us: mean, median_us,
    calls} of ``runs`` runs of the model at ``path`` after ``warmup_runs``, from LiteRT's C API profiler (see
    :data:`LITERT_PROFILER_RELEASES`), in run order. ``inputs`` fill the model's inputs in signature order."""
    import ctypes

    lib = ctypes.CDLL(os.path.join(package_dir, "libLiteRt.so"))
    ptr = ctypes.c_void_p
    keep: list[Any] = []  # what the C side points into stays alive until the end

    def handle(fn: Any, *args: Any) -> Any:
        out = ptr()
        _litert_check(fn(*args, ctypes.byref(out)), fn.__name__)
        return out

    env = handle(lib.LiteRtCreateEnvironment, 0, None)
    model = handle(lib.LiteRtCreateModelFromFile, env, ctypes.c_char_p(path.encode()))
    options = handle(lib.LiteRtCreateOptions)
    _litert_check(
        lib.LiteRtSetOptionsHardwareAccelerators(options, _LITERT_CPU), "LiteRtSetOptionsHardwareAccelerators"
    )
    keep.append(ctypes.CFUNCTYPE(None, ptr)(lambda _: None))  # the options' payloads are ours: nothing to free
    for identifier, toml in (
        ("runtime_options_string", "enable_profiling = true"),
        ("xnnpack", f"num_threads = {threads}"),
    ):
        payload = ctypes.create_string_buffer(toml.encode() + b"\n")
        keep.append(payload)
        opaque = handle(lib.LiteRtCreateOpaqueOptions, ctypes.c_char_p(identifier.encode()), ctypes.cast(payload, ptr),
                        keep[0])  # fmt: skip
        _litert_check(lib.LiteRtAddOpaqueOptions(options, opaque), "LiteRtAddOpaqueOptions")
    compiled = handle(lib.LiteRtCreateCompiledModel, env, model, options)
    signature = handle(lib.LiteRtGetModelSignature, model, ctypes.c_size_t(0))

    def buffers(kind: str, fill: Sequence[np.ndarray]) -> Any:
        count = ctypes.c_size_t()
        _litert_check(getattr(lib, f"LiteRtGetNumSignature{kind}s")(signature, ctypes.byref(count)), kind)
        out = (ptr * count.value)()
        for i in range(count.value):
            tensor = handle(getattr(lib, f"LiteRtGetSignature{kind}TensorByIndex"), signature, ctypes.c_size_t(i))
            tensor_type = ctypes.create_string_buffer(512)  # LiteRtRankedTensorType, passed through untouched
            keep.append(tensor_type)
            _litert_check(lib.LiteRtGetRankedTensorType(tensor, tensor_type), "LiteRtGetRankedTensorType")
            needs = handle(getattr(lib, f"LiteRtGetCompiledModel{kind}BufferRequirements"), compiled,
                           ctypes.c_size_t(0), ctypes.c_size_t(i))  # fmt: skip
            size = ctypes.c_size_t()
            _litert_check(lib.LiteRtGetTensorBufferRequirementsBufferSize(needs, ctypes.byref(size)), "size")
            if i < len(fill) and fill[i].nbytes == size.value:
                raw = np.zeros(size.value + _LITERT_ALIGN, dtype=np.uint8)
                start = -raw.ctypes.data % _LITERT_ALIGN
                raw[start : start + size.value] = np.frombuffer(np.ascontiguousarray(fill[i]).tobytes(), np.uint8)
                keep.append(raw)
                out[i] = handle(lib.LiteRtCreateTensorBufferFromHostMemory, tensor_type,
                                ctypes.c_void_p(raw.ctypes.data + start), size, None)  # fmt: skip
            else:
                out[i] = handle(lib.LiteRtCreateManagedTensorBufferFromRequirements, env, tensor_type, needs)
        return count.value, out

    n_in, ins = buffers("Input", inputs)
    n_out, outs = buffers("Output", [])
    profiler = handle(lib.LiteRtCompiledModelGetProfiler, compiled)
    if not profiler.value:
        raise RuntimeError(
            "LiteRT's C API: the compiled model has no profiler (the enable_profiling option was ignored)"
        )

    def run() -> None:
        _litert_check(lib.LiteRtRunCompiledModel(compiled, ctypes.c_size_t(0), ctypes.c_size_t(n_in), ins,
                                                 ctypes.c_size_t(n_out), outs), "LiteRtRunCompiledModel")  # fmt: skip

    for _ in range(warmup_runs):
        run()
    _litert_check(lib.LiteRtResetProfiler(profiler), "LiteRtResetProfiler")
    _litert_check(lib.LiteRtStartProfiler(profiler), "LiteRtStartProfiler")
    for _ in range(runs):
        run()
    _litert_check(lib.LiteRtStopProfiler(profiler), "LiteRtStopProfiler")
    count = ctypes.c_int()
    _litert_check(lib.LiteRtGetNumProfilerEvents(profiler, ctypes.byref(count)), "LiteRtGetNumProfilerEvents")
    events = ctypes.create_string_buffer(_LITERT_EVENT_BYTES * max(count.value, 1))
    _litert_check(lib.LiteRtGetProfilerEvents(profiler, count, events), "LiteRtGetProfilerEvents")
    rows = parse_litert_events(events.raw[: _LITERT_EVENT_BYTES * count.value], ctypes.string_at)
    lib.LiteRtDestroyCompiledModel(compiled)
    for buffer in [*ins, *outs]:
        lib.LiteRtDestroyTensorBuffer(ptr(buffer))
    lib.LiteRtDestroyOptions(options)
    lib.LiteRtDestroyModel(model)
    lib.LiteRtDestroyEnvironment(env)
    return rows


def parse_litert_events(data: bytes, read_tag: Callable[[int], bytes]) -> list[ProfileRow]:
    """Rows {name, op_type, time_us, median_us, calls} from LiteRT's ProfiledEventData records (``data``; each tag
    a C string that ``read_tag`` reads at its address), operator events only, by operator index (run order).
    A record whose type is no event type LiteRT has means the layout is not this release's: an error, never
    rows read from the wrong offsets."""
    import struct

    times: dict[tuple[int, str], list[float]] = {}
    for at in range(0, len(data), _LITERT_EVENT_BYTES):
        tag, kind, _start, elapsed_us = struct.unpack_from("<QI4xQQ", data, at)
        (index,) = struct.unpack_from("<Q", data, at + _LITERT_METADATA_AT)
        if kind not in _LITERT_EVENT_TYPES:
            raise RuntimeError(f"LiteRT's C API: profiler event type {kind} is unknown (another ABI?)")
        if kind not in _LITERT_OP_EVENTS:
            continue
        name = read_tag(tag).decode("utf-8", "replace") if tag else "?"
        times.setdefault((index, name), []).append(float(elapsed_us))
    rows: list[ProfileRow] = []
    for (index, name), values in sorted(times.items()):
        values.sort()
        mid = len(values) // 2
        median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
        rows.append({"name": str(index), "op_type": name, "provider": "xnnpack", "time_us": sum(values) / len(values),
                     "median_us": median, "calls": len(values)})  # fmt: skip
    return rows


class ExecutorchBackend(Backend):
    """ExecuTorch's Python runtime on an XNNPACK-delegated ``.pte``; threads size XNNPACK's threadpool."""

    def __init__(self, threads: int) -> None:
        try:
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime, Verification
        except Exception as exc:
            message = f"executorch is not importable ({_one_line(exc)}); install executorch for {sys.executable}"
            raise RunnerError("RuntimeMissing", message) from exc
        self._runtime, self._verification = Runtime.get(), Verification.Minimal
        # The threadpool is process-wide; the runner is one process per trial, so resetting it here is safe.
        portable_lib._unsafe_reset_threadpool(threads)
        self.runtime, self.runtime_version = "executorch", _module_version("executorch") or "unknown"
        self.xnnpack = True

    def load(self, path: str, content: bytes) -> None:
        # ExecuTorch's loader aborts the whole process (C++ terminate) on a file that is no program: check first.
        if not content[4:8].startswith(b"ET"):
            raise RunnerError("ModelLoadFailed", f"executorch cannot load {path}: no ExecuTorch program header")
        self._content = content  # the program points into these bytes: keep them alive with it
        try:
            program = self._runtime.load_program(content, verification=self._verification)
            self._method = program.load_method("forward")
        except Exception as exc:
            raise RunnerError("ModelLoadFailed", f"executorch cannot load {path}: {_one_line(exc)}") from exc

    def bind_inputs(self, rng: np.random.Generator) -> None:
        import torch  # ExecuTorch's Python runtime takes torch tensors; it depends on torch itself

        meta = self._method.metadata
        self.inputs, self._args = [], []
        for i in range(meta.num_inputs()):
            info = meta.input_tensor_meta(i)
            shape = _static_shape(info.sizes())
            array = random_input(shape, np.dtype(_ET_DTYPES.get(int(info.dtype()), np.float32)), rng)
            self._args.append(torch.from_numpy(array))
            self.inputs.append({"name": f"input_{i}", "shape": list(shape), "dtype": array.dtype.name})

    def invoke(self) -> None:
        self._method.execute(self._args)

    def profile(self, warmup_runs: int, runs: int) -> list[ProfileRow] | None:
        """Run a second, ETDump-enabled instance of the program; the ETDump goes back whole (``self.etdump``).

        Its events name XNNPACK's ops but only the ETRecord maps them to the graph, and that lives on the host:
        the host reads the ETDump with ExecuTorch's Inspector, so no per-op rows are made here.
        """
        from executorch.extension.pybindings import portable_lib

        module = portable_lib._load_for_executorch_from_buffer(
            self._content, enable_etdump=True, program_verification=portable_lib.Verification.Minimal
        )
        for _ in range(warmup_runs + runs):
            module.forward(self._args)
        with tempfile.TemporaryDirectory(prefix="flopgap-etdump-") as tmp:
            path = os.path.join(tmp, "run.etdp")
            module.write_etdump_result_to_file(path)
            with open(path, "rb") as f:
                data = f.read()
        self.etdump = {"base64": base64.b64encode(data).decode("ascii"), "warmup_runs": warmup_runs, "runs": runs}
        return None


# ExecuTorch ScalarType codes (c10's numbering) of the input dtypes a CNN takes.
_ET_DTYPES = {0: np.uint8, 1: np.int8, 3: np.int32, 4: np.int64, 5: np.float16, 6: np.float32, 11: np.bool_}


# --------------------------------------------------------------------------- protocol


def run_protocol(
    invoke: Callable[[], None],
    warmup_runs: int,
    warmup_seconds: float,
    runs: int,
    min_seconds: float,
    max_runs: int,
) -> Timing:
    """First inference, warm-up (count AND time), then timed runs (count AND time, capped by max_runs)."""
    clock = time.perf_counter_ns
    t0 = clock()
    invoke()
    first_ns = clock() - t0

    warmup_limit = int(warmup_seconds * 1e9)
    n_warmup = 0
    start = clock()
    now = start
    while n_warmup < warmup_runs or now - start < warmup_limit:
        invoke()
        n_warmup += 1
        now = clock()
    warmup_ns = now - start

    min_ns = int(min_seconds * 1e9)
    samples: list[int] = []
    append = samples.append
    start = clock()
    end = start
    while len(samples) < max_runs and (len(samples) < runs or end - start < min_ns):
        t0 = clock()
        invoke()
        end = clock()
        append(end - t0)
    return {
        "first_inference_ns": first_ns,
        "warmup_runs": n_warmup,
        "warmup_ns": warmup_ns,
        "timed_ns": end - start,
        "samples_ns": samples,
    }


def run_instances(
    invokes: Sequence[Callable[[], None]],
    warmup_runs: int,
    warmup_seconds: float,
    runs: int,
    min_seconds: float,
    max_runs: int,
) -> tuple[Timing, list[int]]:
    """:func:`run_protocol` on each instance of one model in turn, the timed runs and seconds (and the warm-up's
    seconds) shared out between them, each warmed up by ``warmup_runs`` of its own; the samples pooled in instance
    order, and how many each instance gave. One instance: exactly :func:`run_protocol`.

    Where a model's buffers land changes a large kernel's time from process to process (on a VM guest, up to 1.8x
    for one depthwise conv): a single-op probe timed in one instance carries one draw of that, a whole model
    averages it over its kernels. The pooled samples' low percentiles follow the better placements.
    """
    k = len(invokes)
    each_runs = -(-runs // k)
    parts = [
        run_protocol(invoke, warmup_runs, warmup_seconds / k, each_runs, min_seconds / k, max(each_runs, max_runs // k))
        for invoke in invokes
    ]
    timing: Timing = {
        "first_inference_ns": parts[0]["first_inference_ns"],
        "warmup_runs": sum(p["warmup_runs"] for p in parts),
        "warmup_ns": sum(p["warmup_ns"] for p in parts),
        "timed_ns": sum(p["timed_ns"] for p in parts),
        "samples_ns": [s for p in parts for s in p["samples_ns"]],
    }
    return timing, [len(p["samples_ns"]) for p in parts]


def current_state() -> tuple[dict[str, int], dict[str, float]]:
    """Each core's current frequency (kHz) and each thermal zone's temperature (°C): the two readings a sustained
    run follows, read with as few file reads as possible (the timed loop runs meanwhile)."""
    freqs: dict[str, int] = {}
    for index, path in _cpu_dirs():
        value = _read_int(os.path.join(path, "cpufreq", "scaling_cur_freq"))
        if value is not None:
            freqs[str(index)] = value
    temps: dict[str, float] = {}
    for row in thermal_zones():
        name = str(row.get("type") or row["zone"])
        if name in temps:  # several zones of one type (e.g. acpitz): keep them apart
            name = "{}/{}".format(name, row["zone"])
        temps[name] = row["temp_c"]
    return freqs, temps


class StateSampler(threading.Thread):
    """Reads :func:`current_state` every ``period`` seconds until stopped; readings are (ns since start, freqs,
    temps). A thread, so the readings are taken while the model runs (runtimes release the GIL while invoking)."""

    def __init__(self, period: float, start_ns: int, read: Callable[[], Any] = current_state) -> None:
        super().__init__(name="flopgap-state-sampler", daemon=True)
        self.period = period
        self.start_ns = start_ns
        self.read = read
        self.readings: list[tuple[int, dict[str, int], dict[str, float]]] = []
        self._stop_event = threading.Event()

    def sample(self) -> None:
        try:
            freqs, temps = self.read()
        except Exception:  # an unreadable sysfs must never stop the measurement
            freqs, temps = {}, {}
        self.readings.append((time.perf_counter_ns() - self.start_ns, freqs, temps))

    def run(self) -> None:
        while not self._stop_event.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _window(index: int, window_ns: int, latencies: list[int]) -> TimelineWindow:
    ordered = sorted(latencies)
    n = len(ordered)
    median = None if not n else float(ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2)
    return {
        "index": index,
        "start_s": index * window_ns / 1e9,
        "end_s": (index + 1) * window_ns / 1e9,
        "runs": n,
        "median_ns": median,
        "cpu_khz": {},
        "temps_c": {},
        "state_s": None,
    }


def _attach_state(windows: list[TimelineWindow], readings: list[tuple[int, dict[str, int], dict[str, float]]]) -> None:
    """Give each window the last state read before its end (the reading at its end, usually)."""
    slack_ns = 50_000_000  # the sampler wakes a little late; a reading just after the end still belongs to it
    i = -1
    for window in windows:
        end_ns = int(window["end_s"] * 1e9) + slack_ns
        while i + 1 < len(readings) and readings[i + 1][0] <= end_ns:
            i += 1
        if i >= 0:
            at, freqs, temps = readings[i]
            window["cpu_khz"], window["temps_c"], window["state_s"] = freqs, temps, at / 1e9


def run_sustained(
    invoke: Callable[[], None],
    seconds: float,
    window_s: float,
    max_kept: int,
    read_state: Callable[[], Any] = current_state,
) -> tuple[list[int], list[TimelineWindow], SustainedEcho]:
    """Invoke continuously for ``seconds``; per ``window_s`` window the median latency and run count, and the
    device's frequencies and temperatures read by a :class:`StateSampler` thread.

    Raw latencies are kept for every k-th run, k doubling whenever ``max_kept`` would be exceeded, so the kept
    samples stay spread evenly over the whole run however long it is.
    """
    clock = time.perf_counter_ns
    window_ns = max(1, int(window_s * 1e9))
    start_unix = time.time()
    start = clock()
    end_at = start + int(seconds * 1e9)
    sampler = StateSampler(window_s, start, read_state)
    sampler.sample()  # the state at t = 0
    sampler.start()
    windows: list[TimelineWindow] = []
    current: list[int] = []
    kept: list[int] = []
    every = 1
    total = 0
    window_end = start + window_ns
    try:
        while True:
            t0 = clock()
            invoke()
            t1 = clock()
            while t1 >= window_end and window_end <= end_at:
                windows.append(_window(len(windows), window_ns, current))
                current = []
                window_end += window_ns
            if t1 > end_at:
                break
            latency = t1 - t0
            current.append(latency)
            if total % every == 0:
                kept.append(latency)
                if len(kept) > max_kept:
                    kept = kept[::2]
                    every *= 2
            total += 1
    finally:
        sampler.stop()
    sampler.sample()  # the state at the end, for the last window
    if current:
        windows.append(_window(len(windows), window_ns, current))
    _attach_state(windows, sampler.readings)
    echo: SustainedEcho = {
        "seconds": seconds,
        "window_s": window_s,
        "start_unix": start_unix,
        "runs_total": total,
        "kept_every": every,
    }
    return kept, windows, echo


# --------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit(2); we want the JSON document
        raise RunnerError("BadArguments", _one_line(message))


def _cpu_list(text: str) -> list[int]:
    """Parse '0,2-3' into [0, 2, 3]."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                low, high = part.split("-", 1)
                cpus.update(range(int(low), int(high) + 1))
            else:
                cpus.add(int(part))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid CPU list {text!r} (expected e.g. '0,2-3')") from exc
    if not cpus or min(cpus) < 0:
        raise argparse.ArgumentTypeError(f"invalid CPU list {text!r} (expected e.g. '0,2-3')")
    return sorted(cpus)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="runner.py",
        description="Time one .onnx, .tflite or .pte model and print one JSON document (schema flopgap.runner/1).",
    )
    parser.add_argument(
        "model",
        nargs="*",
        help="path to a .onnx, .tflite or .pte file; several are measured in turn in this one process (no start-up "
        "each), one document per line, in order",
    )
    parser.add_argument("--facts", action="store_true", help="print device facts as JSON instead of measuring")
    parser.add_argument("--threads", type=int, default=1, help="runtime intra-op / interpreter threads (default 1)")
    xnn = parser.add_mutually_exclusive_group()
    xnn.add_argument("--xnnpack", dest="xnnpack", action="store_true", default=True, help="TFLite: XNNPACK on")
    xnn.add_argument("--no-xnnpack", dest="xnnpack", action="store_false", help="TFLite: builtin kernels only")
    parser.add_argument(
        "--graph-optimization",
        choices=("all", "extended", "basic", "disable"),
        default="all",
        help="ONNX Runtime graph optimization level (default all)",
    )
    parser.add_argument(
        "--ort-allow-spinning",
        type=int,
        choices=(0, 1),
        default=1,
        help="ONNX Runtime session.intra_op.allow_spinning: idle intra-op threads busy-wait (default 1, ORT's own)",
    )
    parser.add_argument(
        "--ort-execution-mode",
        choices=tuple(_ORT_MODES),
        default="sequential",
        help="ONNX Runtime execution mode (default sequential)",
    )
    parser.add_argument(
        "--save-optimized",
        action="append",
        default=None,
        metavar="PATH",
        help="ONNX Runtime: also write the graph it optimized for this CPU to PATH (weights over 1 KiB beside it); "
        "one per model, in order",
    )
    parser.add_argument("--warmup-runs", type=int, default=5, help="at least this many warm-up runs (default 5)")
    parser.add_argument("--warmup-seconds", type=float, default=0.5, help="and at least this long (default 0.5)")
    parser.add_argument("--runs", type=int, default=50, help="at least this many timed runs (default 50)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="and at least this long (default 1.0)")
    parser.add_argument("--max-runs", type=int, default=10000, help="never more timed runs than this (default 10000)")
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="load the model this many times (each its own buffers, elsewhere in memory) and time each in turn, "
        "the runs and seconds shared out between them; samples_ns pools them, instance_runs says how many each, "
        "peak memory counts them all (default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--affinity", type=_cpu_list, default=None, help="pin to these CPUs first, e.g. '4-7'")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also collect a per-op profile (ONNX Runtime; LiteRT 2.3 with XNNPACK; ExecuTorch: its ETDump)",
    )
    parser.add_argument("--profile-runs", type=int, default=20, help="profiled runs averaged per op (default 20)")
    parser.add_argument(
        "--sustained",
        type=float,
        default=None,
        metavar="SECONDS",
        help="after warm-up, run continuously this long and emit a timeline (replaces --runs/--min-seconds)",
    )
    parser.add_argument(
        "--window", type=float, default=1.0, metavar="SECONDS", help="timeline window of --sustained (default 1.0)"
    )
    return parser


def _validate(args: argparse.Namespace) -> None:
    checks = [
        (args.threads >= 1, "--threads must be >= 1"),
        (args.warmup_runs >= 0, "--warmup-runs must be >= 0"),
        (args.warmup_seconds >= 0, "--warmup-seconds must be >= 0"),
        (args.runs >= 1, "--runs must be >= 1"),
        (args.min_seconds >= 0, "--min-seconds must be >= 0"),
        (args.max_runs >= args.runs, "--max-runs must be >= --runs"),
        (args.profile_runs >= 1, "--profile-runs must be >= 1"),
        (args.sustained is None or args.sustained > 0, "--sustained must be > 0 seconds"),
        (args.window > 0, "--window must be > 0 seconds"),
        (args.instances >= 1, "--instances must be >= 1"),
        (args.sustained is None or args.instances == 1, "--sustained times one instance: leave --instances at 1"),
        (args.sustained is None or args.window <= args.sustained, "--window must not exceed --sustained"),
    ]
    for ok, message in checks:
        if not ok:
            raise RunnerError("BadArguments", message)
    if not args.facts:
        if not args.model:
            raise RunnerError("BadArguments", "a model path is required (or --facts)")
        saves = args.save_optimized or []
        if saves and len(saves) != len(args.model):
            raise RunnerError(
                "BadArguments",
                f"--save-optimized: give one PATH per model ({len(args.model)} models, {len(saves)} paths)",
            )
        for model in args.model:
            if os.path.splitext(model)[1].lower() not in (".onnx", ".tflite", ".pte"):
                raise RunnerError("BadArguments", f"{model}: the model must end in .onnx, .tflite or .pte")
            if saves and os.path.splitext(model)[1].lower() != ".onnx":
                raise RunnerError(
                    "BadArguments", "--save-optimized is for ONNX models (ONNX Runtime's optimized graph)"
                )


def per_model(args: argparse.Namespace) -> list[argparse.Namespace]:
    """One namespace per model given (``model`` a path, ``save_optimized`` its path or None), in order; one with no
    model where none was given."""
    models = list(args.model) if isinstance(args.model, list) else [args.model]
    saves = list(args.save_optimized or [])
    out = []
    for i, model in enumerate(models or [None]):  # no zip(strict=): the runner runs on Python 3.9
        save = saves[i] if i < len(saves) else None
        out.append(argparse.Namespace(**{**vars(args), "model": model, "save_optimized": save}))
    return out


def empty_document(args: argparse.Namespace | None) -> RunnerDocument:
    """Every schema field, unknowns as null, so a failed run has the same shape as a good one."""
    protocol: ProtocolEcho | None = None
    if args is not None:
        protocol = {
            "warmup_runs": args.warmup_runs,
            "warmup_seconds": args.warmup_seconds,
            "runs": args.runs,
            "min_seconds": args.min_seconds,
            "max_runs": args.max_runs,
            "seed": args.seed,
            "affinity": args.affinity,
            "graph_optimization": args.graph_optimization,
            "ort_allow_spinning": bool(args.ort_allow_spinning),
            "ort_execution_mode": args.ort_execution_mode,
            "profile": args.profile,
            "profile_runs": args.profile_runs,
            "sustained_seconds": args.sustained,
            "window_seconds": args.window,
            "instances": args.instances,
            "clock": "time.perf_counter_ns",
        }
    model = getattr(args, "model", None)
    ext = os.path.splitext(model)[1].lower().lstrip(".") if model else None
    return {
        "schema": SCHEMA,
        "runner_version": RUNNER_VERSION,
        "model_path": model,
        "model_sha256": None,
        "format": ext if ext in ("onnx", "tflite", "pte") else None,
        "runtime": None,
        "runtime_version": None,
        "threads": getattr(args, "threads", None),
        "xnnpack": None,
        "delegate": None,
        "ort_settings": None,
        "inputs": None,
        "init_ns": None,
        "first_inference_ns": None,
        "warmup_runs": None,
        "warmup_ns": None,
        "timed_ns": None,
        "samples_ns": None,
        "instance_runs": None,
        "peak_rss_kib": None,
        "peak_rss_source": None,
        "rss_before_load_kib": None,
        "affinity": _affinity(),
        "python": platform.python_version(),
        "hostname": socket.gethostname(),
        "state_before": None,
        "state_after": None,
        "profile": None,
        "profile_note": None,
        "etdump": None,
        "timeline": None,
        "sustained": None,
        "protocol": protocol,
        "optimized_model": None,
        "error": None,
    }


def _backend(args: argparse.Namespace, fmt: str | None, save_optimized: str | None) -> Backend:
    """A fresh backend for the model's format (ONNX Runtime saving its optimized graph to ``save_optimized``)."""
    if fmt == "onnx":
        spinning = bool(args.ort_allow_spinning)
        return OrtBackend(args.threads, args.graph_optimization, spinning, args.ort_execution_mode, save_optimized)
    if fmt == "pte":
        return ExecutorchBackend(args.threads)
    return TfliteBackend(args.threads, args.xnnpack)


def measure(args: argparse.Namespace, doc: RunnerDocument) -> None:
    """Fill ``doc`` in place: load, run the protocol, read state around it; raises RunnerError on failure."""
    if args.affinity is not None:
        try:
            os.sched_setaffinity(0, args.affinity)
        except (AttributeError, OSError, ValueError) as exc:
            raise RunnerError("BadArguments", f"cannot pin to CPUs {args.affinity}: {_one_line(exc)}") from exc
        doc["affinity"] = _affinity()
    if not os.path.isfile(args.model):
        raise RunnerError("ModelNotFound", f"{args.model}: no such model file")

    backend = _backend(args, doc["format"], args.save_optimized)
    doc["runtime"], doc["runtime_version"], doc["xnnpack"] = backend.runtime, backend.runtime_version, backend.xnnpack

    doc["rss_before_load_kib"] = peak_rss_kib()
    try:
        with open(args.model, "rb") as f:
            content = f.read()
    except OSError as exc:
        raise RunnerError("ModelNotFound", f"{args.model}: cannot read it: {_one_line(exc)}") from exc
    doc["model_sha256"] = hashlib.sha256(content).hexdigest()
    t0 = time.perf_counter_ns()
    backend.load(args.model, content)
    doc["init_ns"] = time.perf_counter_ns() - t0
    doc["delegate"] = backend.delegate
    if isinstance(backend, OrtBackend):
        doc["ort_settings"] = backend.settings
        doc["optimized_model"] = args.save_optimized
    backend.bind_inputs(np.random.default_rng(args.seed))
    doc["inputs"] = backend.inputs
    instances = [backend]
    for _ in range(args.instances - 1):  # the same bytes and inputs again, in buffers of their own
        other = _backend(args, doc["format"], None)
        other.load(args.model, content)
        other.bind_inputs(np.random.default_rng(args.seed))
        instances.append(other)

    doc["state_before"] = device_state()
    try:
        if args.sustained is not None:
            result = _measure_sustained(backend.invoke, args, doc)
        else:
            result, doc["instance_runs"] = run_instances(
                [b.invoke for b in instances],
                args.warmup_runs,
                args.warmup_seconds,
                args.runs,
                args.min_seconds,
                args.max_runs,
            )
    except Exception as exc:
        raise RunnerError("InferenceFailed", f"{backend.runtime} failed to run {args.model}: {_one_line(exc)}") from exc
    doc["state_after"] = device_state()
    doc["first_inference_ns"] = result["first_inference_ns"]
    doc["warmup_runs"] = result["warmup_runs"]
    doc["warmup_ns"] = result["warmup_ns"]
    doc["timed_ns"] = result["timed_ns"]
    doc["samples_ns"] = result["samples_ns"]
    doc["peak_rss_kib"], doc["peak_rss_source"] = peak_rss()

    if args.profile:
        try:
            doc["profile"] = backend.profile(max(1, min(args.warmup_runs, 10)), args.profile_runs)
            doc["etdump"] = backend.etdump
        except Exception as exc:
            raise RunnerError("InferenceFailed", f"profiling {args.model} failed: {_one_line(exc)}") from exc
        doc["profile_note"] = backend.profile_note  # after: a backend says why it gave no rows once it knows


def _measure_sustained(invoke: Callable[[], None], args: argparse.Namespace, doc: RunnerDocument) -> Timing:
    """First inference and warm-up as usual, then the sustained loop; fills the timeline into ``doc``."""
    warm = run_protocol(invoke, args.warmup_runs, args.warmup_seconds, 0, 0.0, 0)  # max_runs 0: no timed runs
    t0 = time.perf_counter_ns()
    kept, windows, echo = run_sustained(invoke, args.sustained, args.window, args.max_runs)
    doc["timeline"] = windows
    doc["sustained"] = echo
    return {
        "first_inference_ns": warm["first_inference_ns"],
        "warmup_runs": warm["warmup_runs"],
        "warmup_ns": warm["warmup_ns"],
        "timed_ns": time.perf_counter_ns() - t0,
        "samples_ns": kept,
    }


@contextlib.contextmanager
def _stdout_reserved() -> Iterator[Callable[[str], None]]:
    """Send everything written to stdout (Python or native) to stderr; yield a writer for the real stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no usable fds (e.g. embedded); fall back to Python-level redirection only
        saved = -1
    real_stdout = sys.stdout
    sys.stdout = sys.stderr

    def write(text: str) -> None:
        data = text.encode("utf-8")
        if saved >= 0:
            while data:
                data = data[os.write(saved, data) :]
        else:
            real_stdout.write(text)
            real_stdout.flush()

    try:
        yield write
    finally:
        sys.stdout = real_stdout
        if saved >= 0:
            os.dup2(saved, 1)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, measure (or print facts), print one JSON document; returns the exit code."""
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)  # outside the redirection so --help still goes to stdout
        _validate(args)
    except RunnerError as exc:
        doc = empty_document(per_model(args)[0] if args is not None else None)
        doc["error"] = {"kind": exc.kind, "message": _one_line(str(exc))}
        print(json.dumps(doc), flush=True)
        return EXIT_FAILED
    with _stdout_reserved() as emit:
        if args.facts:
            emit(json.dumps(device_facts()) + "\n")
            return 0
        code = 0
        for one in per_model(args):  # each model's document as it completes; a failure fails that model only
            doc = empty_document(one)
            try:
                measure(one, doc)
            except RunnerError as exc:
                doc["error"] = {"kind": exc.kind, "message": _one_line(str(exc))}
                code = code or EXIT_FAILED
            except Exception as exc:  # a bug: keep the traceback on stderr, still answer with a document
                traceback.print_exc()
                doc["error"] = {"kind": "InternalError", "message": _one_line(f"{type(exc).__name__}: {exc}")}
                code = EXIT_INTERNAL
            emit(json.dumps(doc) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
