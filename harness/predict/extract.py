"""Kernels of an exported model for a runtime: ORT's optimized graph for ONNX, the op list for TFLite."""

from __future__ import annotations

from pathlib import Path

from devices.errors import FlopgapError
from devices.vocabulary import Format, Runtime
from harness.predict.kernels import Kernel


def extract_kernels(path: Path, runtime: Runtime) -> list[Kernel]:
    """The kernels ``runtime`` runs for the model file at ``path`` (its format must be the runtime's)."""
    fmt = runtime.artifact_format
    if Path(path).suffix != fmt.extension:
        raise FlopgapError(f"{Path(path).name}: {runtime} runs {fmt.value} models; export the model to {fmt.value}")
    if fmt is Format.ONNX:
        from harness.predict.ort_kernels import ort_kernels

        return ort_kernels(Path(path))
    from harness.predict.tflite_kernels import tflite_kernels

    return tflite_kernels(Path(path))
