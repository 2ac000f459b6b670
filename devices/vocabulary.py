"""The names every stage shares: artifact formats, precisions and the runtimes that run them.

Each is a :class:`~enum.StrEnum`, so the CLI lists the choices in ``--help``, pydantic validates specs and
inventories against them, the store writes their values, and no list of these names is written twice.
"""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    ONNX = "onnx"
    TFLITE = "tflite"

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

    @property
    def artifact_format(self) -> Format:
        return Format.ONNX if self is Runtime.ONNXRUNTIME else Format.TFLITE

    @property
    def options(self) -> dict[str, bool]:
        """Runner options that select this runtime's configuration (stored with each point)."""
        if self is Runtime.ONNXRUNTIME:
            return {}
        return {"xnnpack": self is Runtime.LITERT}


def choices(enum: type[StrEnum]) -> str:
    """``a, b, c``: the allowed values for a one-line error."""
    return ", ".join(m.value for m in enum)
