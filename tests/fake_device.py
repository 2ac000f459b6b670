"""A fake device at the protocol boundary: a :class:`~devices.base.Transport` and a :class:`~devices.base.Backend`
that measure nothing, so sweep scheduling (interleaving, one trial at a time per device, parallel devices, a device
lost mid-sweep, a worker bug, Ctrl-C) is tested in milliseconds without exports or runner processes.

Every trial is recorded in a shared :class:`TrialLog` with its start and end times, so a test can check order and
overlaps; a :class:`Fault` makes the n-th trial of one device raise.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from devices.base import Device, Machine, ShellReturn, Transport, TrialRequest
from devices.result import TrialResult
from devices.vocabulary import Format, Precision, RunnerKind, TransportKind
from exporters.artifact import Artifact
from harness.zoo.registry import ModelSpec


@dataclass(frozen=True)
class TrialRecord:
    device: str
    model: str  # the model file's name
    start: float  # time.monotonic()
    end: float
    request: TrialRequest


@dataclass
class TrialLog:
    """Every fake trial, in the order they started; thread-safe."""

    records: list[TrialRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: TrialRecord) -> None:
        with self._lock:
            self.records.append(record)

    def of(self, device: str) -> list[TrialRecord]:
        return [r for r in self.records if r.device == device]

    def overlaps(self, device: str) -> list[tuple[TrialRecord, TrialRecord]]:
        """Pairs of trials on ``device`` that ran at the same time (should be none)."""
        rs = sorted(self.of(device), key=lambda r: r.start)
        return [(a, b) for a, b in itertools.pairwise(rs) if b.start < a.end]


@dataclass(frozen=True)
class Fault:
    """Raise ``error()`` at the start of this device's ``at``-th trial (0-based) and every one after it."""

    at: int
    error: Callable[[], BaseException]


class FakeTransport:
    """A transport that moves nothing: pushes return the local path, commands are refused."""

    kind = TransportKind.LOCAL

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        raise AssertionError(f"the fake device '{self.name}' runs no commands ({argv[0]})")

    def push(self, local: Path, executable: bool = False) -> str:
        return str(local)

    def pull(self, remote: str, local: Path) -> Path:
        raise AssertionError("the fake device has no files to pull")

    def fingerprint(self, remote: str) -> tuple[str, str] | None:
        return ("sha256", hashlib.sha256(Path(remote).read_bytes()).hexdigest())

    def scratch(self, name: str) -> str:
        return f"/fake/{name}"

    def machine(self) -> Machine:
        return Machine("x86_64", "the fake device is x86_64")

    def facts(self) -> dict[str, Any]:
        return {"transport": "fake", "cpu": "fake"}

    def state(self) -> dict[str, Any]:
        return {}

    @contextlib.contextmanager
    def lock(self, on_wait: Callable[[str], None]) -> Iterator[list[str]]:
        yield []  # one process per test: the sweep's own scheduling is what is tested

    def cleanup(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeBackend:
    """Returns a trial of constant samples after ``duration_s``; logs it; raises the device's fault when due."""

    kind = RunnerKind.AGENT

    def __init__(
        self, log: TrialLog, duration_s: float = 0.004, fault: Fault | None = None, hook: Fault | None = None
    ) -> None:
        self.log = log
        self.duration_s = duration_s
        self.fault = fault
        self.hook = hook  # called (its error() only, not raised) after the trial with its index
        self.trials = 0

    def prepare(self, transport: Transport) -> str:
        return "fake-runner"

    def measure(self, transport: Transport, model: str, request: TrialRequest) -> TrialResult:
        index, self.trials = self.trials, self.trials + 1
        if self.fault is not None and index >= self.fault.at:
            raise self.fault.error()
        start = time.monotonic()
        time.sleep(self.duration_s)
        self.log.add(TrialRecord(transport.name, Path(model).name, start, time.monotonic(), request))
        if self.hook is not None and index + 1 == self.hook.at:
            self.hook.error()
        return TrialResult(runtime="onnxruntime", runtime_version="0.fake", threads=request.threads,
                           samples_ns=(1_000_000, 1_010_000, 990_000))  # fmt: skip

    def facts(self, transport: Transport) -> dict[str, Any]:
        return {"runner": "fake"}

    def profiles_ops(self, fmt: Format) -> bool:
        return False

    def forget(self) -> None:
        pass


def fake_device(
    name: str, log: TrialLog, duration_s: float = 0.004, fault: Fault | None = None, hook: Fault | None = None
) -> Device:
    return Device(name, FakeTransport(name), FakeBackend(log, duration_s, fault, hook))


def tiny_onnx(path: Path, tag: str) -> Path:
    """A one-node ONNX graph (Relu) whose graph name is ``tag``, so each model file has its own sha256."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu/Relu")], tag, [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def stub_exporter(folder: Path) -> Callable[[ModelSpec, Format, Precision], Artifact]:
    """An exporter that writes a tiny ONNX file per model instead of exporting it (no torch export)."""

    def export(model: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        path = tiny_onnx(folder / f"{model.label}-{precision}{fmt.extension}", model.label)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        return Artifact(path, fmt, precision, sha, model.name, model.params, (1, 4), "NCHW", {"stub": "1"}, None, None,
                        path.stat().st_size)  # fmt: skip

    return export


class LiteRtWithoutProfiler:
    """The real runner behind a stand-in backend boundary whose facts say its LiteRT has no per-op profiler (as an
    ai-edge-litert other than 2.3, or tflite_runtime on an older board, would); everything else is the real one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def facts(self, transport: Transport) -> Any:
        facts = self.inner.facts(transport)
        return {**facts, "op_profiles": [f for f in facts.get("op_profiles", []) if f != "tflite"]}


def local_without_litert_profiler() -> Device:
    """This machine's device (the real runner), told its LiteRT cannot profile ops."""
    from devices.local import local_device

    real = local_device()
    return Device(real.name, real.transport, LiteRtWithoutProfiler(real.backend))
