"""The names every stage shares: artifact formats, precisions and the runtimes that run them.

Each is a :class:`~enum.StrEnum`, so the CLI lists the choices in ``--help``, pydantic validates specs and
inventories against them, the store writes their values, and no list of these names is written twice.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Literal, TypedDict


class Format(StrEnum):
    ONNX = "onnx"
    TFLITE = "tflite"
    PTE = "pte"  # an ExecuTorch program, XNNPACK-delegated

    @property
    def extension(self) -> str:
        return f".{self.value}"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"  # float16 weights, float32 compute where the runtime chooses
    INT8 = "int8"  # full integer, calibrated on random inputs
    INT8_DYNAMIC = "int8-dynamic"  # dynamic range: int8 weights, float activations


class Runtime(StrEnum):
    """A runtime names the artifact format it runs and how the runner configures it."""

    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"  # LiteRT with the XNNPACK delegate (its default on CPU)
    LITERT_BUILTIN = "litert-builtin"  # LiteRT's builtin kernels, XNNPACK off
    EXECUTORCH = "executorch"  # ExecuTorch's runtime on an XNNPACK-delegated .pte

    @property
    def artifact_format(self) -> Format:
        if self is Runtime.EXECUTORCH:
            return Format.PTE
        return Format.ONNX if self is Runtime.ONNXRUNTIME else Format.TFLITE

    @property
    def options(self) -> PointOptions:
        """Runner options that select this runtime's configuration (stored with each point)."""
        if self in (Runtime.ONNXRUNTIME, Runtime.EXECUTORCH):
            return {}
        return {"xnnpack": self is Runtime.LITERT}


class PointOptions(TypedDict, total=False):
    """What keys a sweep point besides its artifact, runtime and threads; stored as the JSON of ``points.options``.
    A key is present only where it applies, so points measured before a key existed keep their keys."""

    xnnpack: bool  # LiteRT: the XNNPACK delegate on (litert) or off (litert-builtin)
    cluster: str  # the ARM cluster (arm_cores.ClusterName) the point is pinned to
    cpus: list[int]  # that cluster's CPU ids on the device
    ort_allow_spinning: bool  # ONNX Runtime settings that differ from their defaults
    ort_graph_optimization: Literal["all", "extended", "basic", "disable"]
    ort_execution_mode: Literal["sequential", "parallel"]


def parse_point_options(text: str | None) -> PointOptions:
    """The options of a stored point (``points.options`` JSON; NULL or not an object: none)."""
    raw = json.loads(text) if text else None
    if not isinstance(raw, dict):
        return {}
    options: PointOptions = {}
    if isinstance(raw.get("xnnpack"), bool):
        options["xnnpack"] = raw["xnnpack"]
    if isinstance(raw.get("cluster"), str):
        options["cluster"] = raw["cluster"]
    if isinstance(raw.get("cpus"), list):
        options["cpus"] = [int(c) for c in raw["cpus"]]
    if isinstance(raw.get("ort_allow_spinning"), bool):
        options["ort_allow_spinning"] = raw["ort_allow_spinning"]
    if raw.get("ort_graph_optimization") in ("all", "extended", "basic", "disable"):
        options["ort_graph_optimization"] = raw["ort_graph_optimization"]
    if raw.get("ort_execution_mode") in ("sequential", "parallel"):
        options["ort_execution_mode"] = raw["ort_execution_mode"]
    return options


def choices(enum: type[StrEnum]) -> str:
    """``a, b, c``: the allowed values for a one-line error."""
    return ", ".join(m.value for m in enum)


class TransportKind(StrEnum):
    """How flopgap reaches a device."""

    LOCAL = "local"  # this machine, subprocesses
    SSH = "ssh"  # a board over SSH (paramiko)
    ADB = "adb"  # an Android phone through an adb server


class RunnerKind(StrEnum):
    """What measures on the device: flopgap's own runner (the agent) or an official benchmark binary."""

    AGENT = "agent"  # devices/runner.py; needs a Python with numpy and the runtime on the device
    BENCHMARK_MODEL = "benchmark_model"  # TFLite's benchmark binary
    BENCHMARK_MODEL_PLUS_FLEX = "benchmark_model_plus_flex"  # the same, with TF (flex) ops linked in
    ONNXRUNTIME_PERF_TEST = "onnxruntime_perf_test"
    EXECUTOR_RUNNER = "executor_runner"  # ExecuTorch's, built with XNNPACK and the event tracer (ETDump)

    @property
    def is_binary(self) -> bool:
        """A prebuilt executable pushed to the device (and checked against its architecture)."""
        return self is not RunnerKind.AGENT

    @property
    def formats(self) -> frozenset[Format]:
        """The artifact formats it can time."""
        if self is RunnerKind.AGENT:
            return frozenset(Format)
        if self is RunnerKind.ONNXRUNTIME_PERF_TEST:
            return frozenset({Format.ONNX})
        if self is RunnerKind.EXECUTOR_RUNNER:
            return frozenset({Format.PTE})
        return frozenset({Format.TFLITE})
