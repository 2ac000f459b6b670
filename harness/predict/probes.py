"""Probe models on disk: a kernel config written for a runtime's format, cached by content, as an :class:`Artifact`.

Files live under ``<artifact cache>/probes/<format>/`` named by the sha256 of the config and the probe writer's
version, so the same config always gives the same file and the same artifact sha256 (which keys its point in the
results database: a rerun of a build finds its measurements).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx

from devices.core.digest import file_digest
from devices.vocabulary import Format, Precision, Runtime
from exporters.artifact import Artifact
from exporters.cache import default_cache_dir
from harness.predict.kernel_config import KernelConfig
from harness.predict.kernel_specs import SPECS
from harness.predict.probe_onnx import OnnxGraph, onnx_model
from harness.predict.probe_tflite import TfliteBuilder

PROBE_VERSION = "1"  # bump when a writer changes what it writes
MODEL_NAME = "kernel_probe"
FAMILY = "kernel"


def probe_dir(cache_dir: Path | None = None) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "probes"


def probe_artifact(cfg: KernelConfig, runtime: Runtime, cache_dir: Path | None = None) -> Artifact:
    """The probe of ``cfg`` for ``runtime``'s format, written once (atomically) and reused."""
    fmt = runtime.artifact_format
    key = hashlib.sha256(f"{PROBE_VERSION}|{fmt.value}|{cfg.key}".encode()).hexdigest()
    path = probe_dir(cache_dir) / fmt.value / f"{cfg.type.value}_{key[:20]}{fmt.extension}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _write(cfg, fmt, seed=int(key[:8], 16))
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    tool = "onnx" if fmt is Format.ONNX else "ai-edge-litert"
    return Artifact(
        path=path,
        format=fmt,
        precision=Precision.FP32,
        sha256=file_digest(path),
        model=MODEL_NAME,
        params=tuple(sorted(cfg.to_json().items())),
        input_shape=(1, cfg.cin, cfg.h, cfg.w) if fmt is Format.ONNX else (1, cfg.h, cfg.w, cfg.cin),
        layout="NCHW" if fmt is Format.ONNX else "NHWC",
        tool_versions={"flopgap-probe": PROBE_VERSION, tool: metadata.version(tool)},
        parity_error=None,
        parity_bound=None,
        size_bytes=path.stat().st_size,
        notes={"kernel_type": cfg.type.value},
    )


def probe_label(cfg: KernelConfig) -> str:
    shape = f"{cfg.cin}>{cfg.cout}@{cfg.h}" if cfg.cin != cfg.cout else f"{cfg.cin}@{cfg.h}"
    extras = [f"k{cfg.kernel}" if cfg.kernel > 1 else "", f"s{cfg.stride}" if cfg.stride > 1 else "",
              f"g{cfg.groups}" if 1 < cfg.groups < cfg.cin else "", cfg.act, cfg.variant,
              "+add" if cfg.fused_add else ""]  # fmt: skip
    return f"{cfg.type.value}[{','.join(x for x in [shape, *extras] if x)}]"


def onnx_probe(cfg: KernelConfig, seed: int = 0) -> onnx.ModelProto:
    """The ONNX probe model of ``cfg``: its spec's writer on an empty graph."""
    write = SPECS[cfg.type].onnx
    if write is None:
        raise ValueError(f"no ONNX probe for kernel type {cfg.type.value}")
    g = OnnxGraph(np.random.default_rng(seed))
    return onnx_model(g, write(g, cfg), cfg.type.value)


def tflite_probe(cfg: KernelConfig, seed: int = 0) -> bytes:
    """The ``.tflite`` flatbuffer of ``cfg``'s probe model."""
    write = SPECS[cfg.type].tflite
    if write is None:
        raise ValueError(f"no TFLite probe for kernel type {cfg.type.value}")
    b = TfliteBuilder(np.random.default_rng(seed))
    write(b, cfg)
    return b.pack()


def _write(cfg: KernelConfig, fmt: Format, seed: int) -> bytes:
    return onnx_probe(cfg, seed).SerializeToString() if fmt is Format.ONNX else tflite_probe(cfg, seed)
