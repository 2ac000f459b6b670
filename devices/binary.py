"""Backends that run an official prebuilt benchmark binary: TFLite's ``benchmark_model`` (and its ``_plus_flex``
build), ``onnxruntime_perf_test`` and ExecuTorch's ``executor_runner``, on any transport whose device can execute
the binary.

The binary is checked once per session against the device's architecture (its ELF ``e_machine`` against
``uname -m``, or ``ro.product.cpu.abi`` on a phone; a ``#!`` script is left to the device's interpreter), pushed
hash-verified, run under ``taskset`` when an affinity is set, with the transport's device state read before and
after, and its output parsed by :mod:`devices.parsers` into a :class:`~devices.result.TrialResult`.
``benchmark_model`` prints only a summary of the timed runs, so its results carry a :class:`~devices.result.Summary`
and no samples; ``onnxruntime_perf_test`` writes one line per run to a result file, and ``executor_runner`` one
ETDump run block per execution, so their results carry samples.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath
from typing import Any

from devices.base import Machine, ShellReturn, Transport, TrialRequest
from devices.core.digest import file_digest
from devices.errors import BinaryMissing, PullFailed, TrialFailed, WrongABI
from devices.etdump_timing import etdump_document, missing_flag, parse_etdump, parse_executor_runner_log
from devices.facts import DeviceFacts
from devices.ort_trace import parse_ort_trace
from devices.parsers import (
    ParseError,
    RunStats,
    parse_ort_perf_test,
    parse_ort_result_file,
    parse_tflite_benchmark,
    parse_tflite_op_csv,
)
from devices.result import OpTiming, Summary, Tool, TrialResult
from devices.tflite_echo import tflite_echo_mismatches
from devices.vocabulary import Format, RunnerKind

# The runner's graph optimization names → onnxruntime_perf_test's -o levels.
ORT_PERF_TEST_LEVELS = {"disable": 0, "basic": 1, "extended": 2, "all": 99}
# ELF e_machine → the architecture name uname -m gives.
ELF_ARCH = {183: "aarch64", 40: "arm", 62: "x86_64", 3: "x86", 243: "riscv64"}


def elf_machine(path: Path) -> int | None:
    """The ELF ``e_machine`` of a file, or None if it is not an ELF file."""
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def normalize_arch(name: str) -> str:
    """``uname -m`` spellings of one architecture as one name (``arm64`` → ``aarch64``, ``armv7l`` → ``arm``)."""
    name = name.strip().lower()
    if name in ("arm64", "aarch64"):
        return "aarch64"
    if name.startswith("arm"):
        return "arm"
    if name in ("amd64", "x86_64", "x64"):
        return "x86_64"
    if name in ("i386", "i486", "i586", "i686", "x86"):
        return "x86"
    return name


def affinity_mask(cpus: list[int] | tuple[int, ...]) -> str:
    """CPU list → the hex mask ``taskset`` takes (``[4, 5, 6, 7]`` → ``"f0"``)."""
    if not cpus or any(c < 0 for c in cpus):
        raise ValueError(f"affinity must be a non-empty list of CPU ids, got {cpus!r}")
    return f"{sum(1 << c for c in set(cpus)):x}"


def check_executable(name: str, binary: Path, machine: Machine, runner: RunnerKind) -> None:
    """Raise :class:`BinaryMissing` or :class:`WrongABI` unless ``binary`` can run on ``machine``."""
    if not binary.is_file():
        raise BinaryMissing(
            f"device '{name}': runner binary {binary} not found on this machine; download a prebuilt {runner} "
            "for the device and set 'binary' in the inventory"
        )
    with binary.open("rb") as f:
        if f.read(2) == b"#!":
            return  # a wrapper script: the device's interpreter runs it, whatever the architecture
    got = elf_machine(binary)
    if got is None:
        raise WrongABI(
            f"device '{name}': {binary} is neither an ELF executable nor a script; use the prebuilt {runner}"
        )
    built = ELF_ARCH.get(got, f"e_machine {got}")
    if machine.arch is not None and built != machine.arch:
        raise WrongABI(
            f"device '{name}': {binary.name} is built for {built} but {machine.described}; use the {machine.arch} build"
        )


class BinaryBackend:
    """What the official binaries share: the pushed executable, ``taskset``, state around the run."""

    def __init__(self, kind: RunnerKind, binary: Path, affinity: list[int] | None = None) -> None:
        if not kind.is_binary:
            raise ValueError(f"{kind} is not a benchmark binary")
        self.kind = kind
        self.binary = Path(binary)
        self.affinity = list(affinity) if affinity else None
        self._remote: str | None = None
        self._sha256: str | None = None  # of the binary pushed this session

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.binary})"

    def prepare(self, transport: Transport) -> str:
        if self._remote is None:
            check_executable(transport.name, self.binary, transport.machine(), self.kind)
            self._remote = transport.push(self.binary, executable=True)
            self._sha256 = file_digest(self.binary)
        return self._remote

    def forget(self) -> None:
        self._remote = self._sha256 = None

    def facts(self, transport: Transport) -> DeviceFacts:
        return {"runner": str(self.kind), "runner_sha256": file_digest(self.binary) if self.binary.is_file() else None}

    def profiles_ops(self, fmt: Format) -> bool:
        return False

    def measure(self, transport: Transport, model: str, request: TrialRequest) -> TrialResult:
        if request.sustained_s is not None:
            raise TrialFailed(
                f"device '{transport.name}': {self.kind} keeps no per-window timings, so it cannot run a sustained "
                'measurement; use flopgap\'s runner there (runner = "agent" in the inventory)',
                kind="Unsupported",
            )
        if request.instances > 1:
            raise TrialFailed(
                f"device '{transport.name}': {self.kind} loads a model once per run, so it cannot time "
                f"{request.instances} instances of it; leave the protocol's instances at 1 there, or use flopgap's "
                'runner (runner = "agent" in the inventory)',
                kind="Unsupported",
            )
        binary = self.prepare(transport)
        argv, outputs = self.argv(transport, binary, model, request)
        if outputs:  # a tool that appends to its output file must not find an old one
            transport.run(["rm", "-f", *outputs], timeout=30)
        cpus = request.affinity or self.affinity
        if cpus:
            argv = ["taskset", affinity_mask(list(cpus)), *argv]
        before = transport.state()
        res = transport.run(argv, timeout=request.timeout_s)
        after = transport.state()
        if not res.ok:
            raise TrialFailed(f"device '{transport.name}': {self.kind} exited {res.returncode}: {self.failure(res)}")
        try:
            parsed = self.parse(transport, res, outputs, request)
        except (ParseError, PullFailed) as exc:
            raise TrialFailed(f"device '{transport.name}': {exc}") from None
        return replace(
            parsed,
            threads=request.threads,
            affinity=tuple(sorted(set(cpus))) if cpus else None,
            state_before=before,
            state_after=after,
            tool=Tool(str(self.kind), self._sha256, tuple(argv)),
            details={
                **parsed.details,
                **self.settings(request),
                "options": asdict(request),
                "returncode": res.returncode,
            },
        )

    def argv(self, transport: Transport, binary: str, model: str, request: TrialRequest) -> tuple[list[str], list[str]]:
        """The tool's command line, and the files on the device it writes."""
        raise NotImplementedError

    def parse(self, transport: Transport, res: ShellReturn, outputs: list[str], request: TrialRequest) -> TrialResult:
        """The tool's output; :meth:`measure` adds threads, affinity, state and the tool."""
        raise NotImplementedError

    def settings(self, request: TrialRequest) -> dict[str, Any]:
        """Runtime settings the command line set, kept with the trial."""
        return {}

    def failure(self, res: ShellReturn) -> str:
        """Why the tool failed, in one line: its last line unless the backend knows better."""
        return res.last_line()


class TfliteBenchmarkBackend(BinaryBackend):
    """TFLite's ``benchmark_model``: a summary of the timed runs, per-op times with ``--enable_op_profiling``."""

    def profiles_ops(self, fmt: Format) -> bool:
        return fmt is Format.TFLITE

    def argv(self, transport: Transport, binary: str, model: str, request: TrialRequest) -> tuple[list[str], list[str]]:
        argv = [
            binary,
            f"--graph={model}",
            f"--num_threads={request.threads}",
            f"--warmup_runs={request.warmup_runs}",
            f"--warmup_min_secs={request.warmup_seconds:g}",
            f"--num_runs={request.runs}",
            f"--min_secs={request.min_seconds:g}",
            f"--use_xnnpack={str(request.xnnpack).lower()}",
        ]
        if not request.profile:
            return argv, []
        csv = transport.scratch(f"{PurePosixPath(model).name}.ops.csv")
        argv += ["--enable_op_profiling=true", "--op_profiling_output_mode=csv", f"--op_profiling_output_file={csv}"]
        return argv, [csv]

    def parse(self, transport: Transport, res: ShellReturn, outputs: list[str], request: TrialRequest) -> TrialResult:
        text = res.stdout + "\n" + res.stderr
        out = parse_tflite_benchmark(text)
        if out.inference is None:
            raise ParseError("benchmark_model printed no timed-run statistics")
        ignored = tflite_echo_mismatches(text, res.argv)
        if ignored:  # a build that ignores a flag measured something else than was asked
            raise ParseError(
                f"{self.kind} did not run as asked: {'; '.join(ignored)}; use a build that knows these flags"
            )
        rows = out.ops  # the printed table, if profiling was on; the CSV file below when asked for
        if outputs:
            with tempfile.TemporaryDirectory(prefix="flopgap-ops-") as tmp:
                rows = parse_tflite_op_csv(transport.pull(outputs[0], Path(tmp) / "ops.csv").read_text())
        return TrialResult(
            runtime="tflite",
            summary=_summary(out.inference),
            warmup=_summary(out.warmup) if out.warmup else None,
            init_ns=_ns(out.init_us, 1e3),
            first_inference_ns=_ns(out.first_inference_us, 1e3),
            warmup_runs=out.warmup.count if out.warmup else None,
            # TFLite's MB are MiB (bytes / 1024 / 1024).
            peak_rss_kib=None if out.peak_mem_mb is None else round(out.peak_mem_mb * 1024),
            ops=tuple(OpTiming(r.name, r.op_type, r.avg_ms * 1e3, r.times_called) for r in rows) or None,
            details={
                "memory": {"init_mb": out.mem_init_mb, "overall_mb": out.mem_overall_mb, "peak_mb": out.peak_mem_mb},
                "model_size_mb": out.model_size_mb,
            },
        )


class OrtPerfTestBackend(BinaryBackend):
    """``onnxruntime_perf_test``: one line per run in its result file, so raw samples; with ``-p`` its ONNX Runtime
    profile (the per-node trace a local session writes) is pulled back and read into per-node rows."""

    def profiles_ops(self, fmt: Format) -> bool:
        return fmt is Format.ONNX

    def argv(self, transport: Transport, binary: str, model: str, request: TrialRequest) -> tuple[list[str], list[str]]:
        # -I: random inputs from the model's shapes; -x: intra-op threads. The tool warms up with one run.
        runs = transport.scratch(f"{PurePosixPath(model).name}.runs.csv")
        argv = [binary, "-I", "-m", "times", "-r", str(request.runs), "-x", str(request.threads), "-e", "cpu"]
        argv += ["-o", str(ORT_PERF_TEST_LEVELS[request.ort_graph_optimization])]
        argv += ["-C", f"session.intra_op.allow_spinning|{int(request.ort_allow_spinning)}"]
        if request.ort_execution_mode == "parallel":
            argv.append("-P")
        if request.profile:  # ORT appends _<timestamp>.json to this prefix
            argv += ["-p", transport.scratch(f"{PurePosixPath(model).name}.profile")]
        return [*argv, model, runs], [runs]

    def settings(self, request: TrialRequest) -> dict[str, Any]:
        # The runner's OrtSettings shape; intra-op threads as -x set them, inter-op left at the tool's default.
        return {
            "ort_settings": {
                "allow_spinning": request.ort_allow_spinning,
                "graph_optimization": request.ort_graph_optimization,
                "execution_mode": request.ort_execution_mode,
                "intra_op_threads": request.threads,
                "inter_op_threads": None,
            }
        }

    def parse(self, transport: Transport, res: ShellReturn, outputs: list[str], request: TrialRequest) -> TrialResult:
        out = parse_ort_perf_test(res.stdout + "\n" + res.stderr)
        prefix = res.argv[res.argv.index("-p") + 1] if "-p" in res.argv else None
        ops = None
        with tempfile.TemporaryDirectory(prefix="flopgap-runs-") as tmp:
            local = transport.pull(outputs[0], Path(tmp) / "runs.csv")
            samples = tuple(round(s * 1e9) for s in parse_ort_result_file(local.read_text()))
            if prefix is not None:
                trace = transport.pull(self._profile_written(transport, prefix), Path(tmp) / "profile.json")
                ops = tuple(
                    OpTiming(r.name, r.op_type, r.mean_us, r.calls, r.median_us, r.provider)
                    for r in parse_ort_trace(trace.read_text(), skip_first=1)  # perf_test warms up with one run
                )
        summary = Summary(
            count=out.requests or len(samples),
            mean=_ns(out.avg_ms, 1e6),
            min=_ns(out.min_s, 1e9),
            max=_ns(out.max_s, 1e9),
            p50=_ns(out.p50_s, 1e9),
            p90=_ns(out.p90_s, 1e9),
            p95=_ns(out.p95_s, 1e9),
            p99=_ns(out.p99_s, 1e9),
        )
        peak = out.peak_working_set_bytes
        return TrialResult(
            runtime="onnxruntime",
            samples_ns=samples,
            summary=summary,
            init_ns=_ns(out.session_creation_s, 1e9),
            first_inference_ns=_ns(out.first_inference_ms, 1e6),
            warmup_runs=1,
            peak_rss_kib=None if peak is None else peak // 1024,
            ops=ops,
            details={"memory": {"peak_working_set_bytes": peak}},
        )

    def _profile_written(self, transport: Transport, prefix: str) -> str:
        """The file ORT wrote for profile ``prefix`` (``<prefix>_<date>_<time>.json``): the newest such."""
        folder, name = str(PurePosixPath(prefix).parent), PurePosixPath(prefix).name
        listing = transport.run(["ls", "-1", folder], timeout=30)
        found = sorted(n for n in listing.stdout.split() if n.startswith(name + "_") and n.endswith(".json"))
        if not listing.ok or not found:
            raise ParseError(f"{self.kind} wrote no profile {prefix}_*.json (a build without profiling?)")
        transport.scratch(found[-1])  # removed with the session
        return str(PurePosixPath(folder) / found[-1])


class ExecutorRunnerBackend(BinaryBackend):
    """ExecuTorch's ``executor_runner`` built with XNNPACK and the event tracer: it runs the program a fixed number
    of times (inputs all ones) and writes an ETDump, which is pulled back and read for one sample per execution.

    The first execution is the first inference, the next ``warmup_runs`` the warm-up, the rest the samples. The tool
    counts executions and has no time limits, so ``warmup_seconds`` and ``min_seconds`` do not apply (kept in the
    trial's details as ``not_applied``)."""

    def argv(self, transport: Transport, binary: str, model: str, request: TrialRequest) -> tuple[list[str], list[str]]:
        etdump = transport.scratch(f"{PurePosixPath(model).name}.etdump")
        argv = [
            binary,
            f"--model_path={model}",
            f"--num_executions={1 + request.warmup_runs + request.runs}",
            f"--etdump_path={etdump}",
            f"--cpu_threads={request.threads}",
        ]
        return argv, [etdump]

    def settings(self, request: TrialRequest) -> dict[str, Any]:
        return {"not_applied": {"warmup_seconds": request.warmup_seconds, "min_seconds": request.min_seconds}}

    def failure(self, res: ShellReturn) -> str:
        flag = missing_flag(res.stdout + "\n" + res.stderr)
        if flag is None:
            return res.last_line()
        return (
            f"this executor_runner has no --{flag}; build it with -DEXECUTORCH_BUILD_XNNPACK=ON "
            "-DEXECUTORCH_BUILD_DEVTOOLS=ON -DEXECUTORCH_ENABLE_EVENT_TRACER=ON (see the README's Devices section)"
        )

    def parse(self, transport: Transport, res: ShellReturn, outputs: list[str], request: TrialRequest) -> TrialResult:
        with tempfile.TemporaryDirectory(prefix="flopgap-etdump-") as tmp:
            data = transport.pull(outputs[0], Path(tmp) / "run.etdump").read_bytes()
        timing = parse_etdump(etdump_document(data))
        warmup, asked = request.warmup_runs, 1 + request.warmup_runs + request.runs
        if len(timing.executions_ns) != asked:
            raise ParseError(f"the ETDump holds {len(timing.executions_ns)} executions, {asked} were asked for")
        log = parse_executor_runner_log(res.stdout + "\n" + res.stderr)
        return TrialResult(
            runtime="executorch",
            samples_ns=timing.executions_ns[1 + warmup :],
            init_ns=timing.load_method_ns,
            first_inference_ns=timing.executions_ns[0],
            warmup_runs=warmup,
            warmup_ns=sum(timing.executions_ns[1 : 1 + warmup]),
            timed_ns=sum(timing.executions_ns[1 + warmup :]),
            details={
                "etdump_bytes": len(data),
                "delegate_events": timing.delegate_events,
                "log": None if log is None else {"executions": log.executions, "total_ms": log.total_ms},
            },
        )


def binary_backend(kind: RunnerKind, binary: Path, affinity: list[int] | None = None) -> BinaryBackend:
    """The backend for one official binary."""
    if kind is RunnerKind.ONNXRUNTIME_PERF_TEST:
        return OrtPerfTestBackend(kind, binary, affinity)
    if kind is RunnerKind.EXECUTOR_RUNNER:
        return ExecutorRunnerBackend(kind, binary, affinity)
    return TfliteBenchmarkBackend(kind, binary, affinity)


def _summary(s: RunStats) -> Summary:
    single = s.curr_us if s.all_same else None  # "count=N curr=X": every run took X
    return Summary(
        count=s.count,
        first=_ns(s.first_us if s.first_us is not None else single, 1e3),
        mean=_ns(s.avg_us if s.avg_us is not None else single, 1e3),
        std=_ns(s.std_us if s.std_us is not None else (0.0 if s.all_same else None), 1e3),
        min=_ns(s.min_us if s.min_us is not None else single, 1e3),
        max=_ns(s.max_us if s.max_us is not None else single, 1e3),
        p5=_ns(s.p5_us, 1e3),
        p50=_ns(s.median_us if s.median_us is not None else single, 1e3),
        p95=_ns(s.p95_us, 1e3),
    )


def _ns(value: float | None, scale: float) -> int | None:
    return None if value is None else round(value * scale)
