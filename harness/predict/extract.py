"""Kernels of an exported model for a runtime: ORT's optimized graph for ONNX, the op list for TFLite.

The list is cached in a JSON file beside the model (``<model>.<runtime>-<version>.kernels.json``, valid while
the model file keeps its size and modification time): reading a large ONNX graph and letting ORT optimize it
takes a second or more, a cached list milliseconds, so predicting a model a second time is fast.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

from devices.core.errors import FlopgapError
from devices.vocabulary import Format, Runtime
from harness.predict.kernels import Kernel

_RUNTIME_PACKAGE = {Format.ONNX: "onnxruntime", Format.TFLITE: "ai-edge-litert"}
# Bump when extraction changes what it finds (kernel types, fusions); stored and cached lists of another version
# are extracted again.
EXTRACTOR_VERSION = 5  # 3: ORT's implementation (NCHWc, FusedConv) per kernel; 4: broadcast kernels;
# 5: FusedConv's residual input (ARM)


def extract_kernels(path: Path, runtime: Runtime, cache: bool = True) -> list[Kernel]:
    """The kernels ``runtime`` runs for the model file at ``path`` (its format must be the runtime's)."""
    path = Path(path)
    fmt = runtime.artifact_format
    if path.suffix != fmt.extension:
        raise FlopgapError(f"{path.name}: {runtime} runs {fmt.value} models; export the model to {fmt.value}")
    sidecar = path.with_name(f"{path.name}.{runtime.value}-{_version(fmt)}.kernels.json")
    stamp = _stamp(path)
    if cache and sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text())
            if data.get("stamp") == stamp and data.get("extractor") == EXTRACTOR_VERSION:
                return [Kernel.from_json(k) for k in data["kernels"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or from another flopgap: extract again
    kernels = _extract(path, fmt)
    if cache:
        _write(sidecar, {"stamp": stamp, "extractor": EXTRACTOR_VERSION, "kernels": [k.to_json() for k in kernels]})
    return kernels


def _extract(path: Path, fmt: Format) -> list[Kernel]:
    if fmt is Format.ONNX:
        from harness.predict.ort_kernels import ort_kernels

        return ort_kernels(path)
    from harness.predict.tflite_kernels import tflite_kernels

    return tflite_kernels(path)


def _version(fmt: Format) -> str:
    try:
        return metadata.version(_RUNTIME_PACKAGE[fmt])
    except metadata.PackageNotFoundError:
        return "unknown"


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _write(path: Path, data: dict[str, object]) -> None:
    """Atomically, and not at all where the model's directory is read-only (the cache is an optimisation)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        return
