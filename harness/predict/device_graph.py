"""ONNX Runtime kernels as the device runs them: the graph ORT optimized on the device, kept and extracted here.

ORT optimizes a graph for the CPU it runs on (x86: NCHWc convolutions between ``ReorderInput``/``ReorderOutput``;
ARM: NCHW ``FusedConv`` with the activation and residual add folded in), so the kernels a device's predictor
learns from and prices are those of the device's own graph, never the host's. A trial asked to
(``TrialRequest.save_graph``) brings the graph back; it is kept in the artifact cache
(``<cache>/device-graphs/<device>/<artifact sha256>.onnx``) so a later extractor can read it again without the
device, and its kernels are stored under :func:`kernel_key` (the device's, not the runtime's alone).

A LiteRT model's op list is the same on every CPU: its kernels stay keyed by the runtime.

A predictor records the architecture of the device it was built on (``summary["arch"]``). Predicting a model the
device never optimized needs ORT on a machine of that architecture: :func:`prediction_kernels` refuses, in one
line, to price a host's graph for a device of another architecture.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx

from devices.base import Device, TrialRequest
from devices.core.errors import FlopgapError
from devices.result import TrialResult
from devices.vocabulary import Runtime
from exporters.cache import default_cache_dir
from harness.predict.extract import EXTRACTOR_VERSION, extract_kernels
from harness.predict.kernels import Kernel
from harness.store import Store

# ``uname -m`` spellings of one architecture (Windows and macOS name them otherwise).
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64", "i686": "x86"}
# One run, no warm-up: the trial is there for the session ORT optimizes, not for its time.
GRAPH_BATCH = 8
GRAPH_REQUEST = TrialRequest(warmup_runs=0, warmup_seconds=0.0, runs=1, min_seconds=0.0, max_runs=1, save_graph=True)


def normal_arch(machine: str | None) -> str | None:
    """``platform.machine()`` / ``uname -m`` in one spelling per architecture (``AMD64`` -> ``x86_64``)."""
    if not machine:
        return None
    low = machine.strip().lower()
    return _ARCH_ALIASES.get(low, low)


def host_arch() -> str | None:
    return normal_arch(platform.machine())


def kernel_key(runtime: Runtime, device: str) -> str:
    """What a model's stored kernels are keyed by besides its sha256: ORT's are the device's graph's."""
    return f"{runtime.value}@{device}" if runtime is Runtime.ONNXRUNTIME else runtime.value


def graph_path(device: str, sha256: str, cache_dir: Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "device-graphs" / device / f"{sha256}.onnx"


def keep_graph(device: str, sha256: str, graph: bytes, cache_dir: Path | None = None) -> Path:
    """Write the device's optimized graph into the cache (atomically); its path."""
    path = graph_path(device, sha256, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(graph)
    os.replace(tmp, path)
    return path


def graph_kernels(model: Path, graph: Path) -> list[Kernel]:
    """The kernels of the exported ``model`` as the optimized ``graph`` (weights left where they were) runs it."""
    from harness.predict.ort_kernels import ort_kernels

    return ort_kernels(model, onnx.load(str(graph), load_external_data=False))


def graph_refusal(device: Device) -> str:
    """Why ``device`` cannot give ONNX Runtime kernels: its tool cannot return the graph ORT optimized there (the
    host's graph is never a stand-in for it)."""
    return (
        f"device '{device.name}' runs {device.runner}, which cannot return ONNX Runtime's optimized graph; build ONNX "
        'Runtime predictors with flopgap\'s runner there (runner = "agent")'
    )


def store_device_kernels(
    store: Store,
    device: Device,
    stored_name: str,
    runtime: Runtime,
    model: Path,
    sha256: str,
    graph: bytes | None = None,
    threads: int = 1,
) -> list[Kernel]:
    """The kernels of ``model`` on ``device`` (stored as ``stored_name``), stored once per extractor version.

    ORT: from ``graph`` (what a trial brought back), else the graph kept from an earlier trial, else a one-run
    trial that asks the device for it. LiteRT: the model's op list.
    """
    key = kernel_key(runtime, stored_name)
    if graph is None and has_current_kernels(store, runtime, stored_name, sha256):
        return [Kernel.from_json(r.kernel) for r in store.kernels_of(sha256, key)]
    if runtime is not Runtime.ONNXRUNTIME:
        kernels = extract_kernels(model, runtime)
    else:
        path = graph_path(stored_name, sha256)
        if graph is not None:
            path = keep_graph(stored_name, sha256, graph)
        elif not path.is_file():
            result = None if device.runner.is_binary else device.measure(model, replace(GRAPH_REQUEST, threads=threads),
                                                                          sha256)  # fmt: skip
            if result is None or result.optimized_graph is None:
                raise FlopgapError(graph_refusal(device))
            path = keep_graph(stored_name, sha256, result.optimized_graph)
        kernels = graph_kernels(model, path)
    store.put_kernels(sha256, key, [{**k.to_json(), "extractor": EXTRACTOR_VERSION} for k in kernels])
    return kernels


def fetch_graphs(device: Device, stored_name: str, models: Sequence[tuple[Path, str]], threads: int = 1) -> int:
    """Bring back and keep the device's optimized graphs of ``models`` (path, sha256) that are not kept yet: one-run
    trials, :data:`GRAPH_BATCH` to a runner process. A model the device fails is left out (its kernels stay
    missing, as a model whose file is gone). Returns how many were kept."""
    todo = [(path, sha) for path, sha in models if not graph_path(stored_name, sha).is_file()]
    if not todo or device.runner.is_binary:
        return 0
    kept = 0
    for start in range(0, len(todo), GRAPH_BATCH):
        chunk = todo[start : start + GRAPH_BATCH]
        results = device.measure_many([p for p, _ in chunk], replace(GRAPH_REQUEST, threads=threads),
                                      [sha for _, sha in chunk])  # fmt: skip
        for (_, sha), result in zip(chunk, results, strict=True):
            if isinstance(result, TrialResult) and result.optimized_graph is not None:
                keep_graph(stored_name, sha, result.optimized_graph)
                kept += 1
    return kept


def has_current_kernels(store: Store, runtime: Runtime, device: str, sha256: str) -> bool:
    """Whether the model's kernels on ``device`` are stored, by this extractor version."""
    rows = store.kernels_of(sha256, kernel_key(runtime, device))
    return bool(rows) and all(r.kernel.get("extractor") == EXTRACTOR_VERSION for r in rows)


def refresh_device_kernels(store: Store, stored_name: str, runtime: Runtime, sha256: str, model: Path) -> None:
    """Extract again, from the kept graph, kernels a previous extractor stored (nothing to do without the graph)."""
    key = kernel_key(runtime, stored_name)
    if has_current_kernels(store, runtime, stored_name, sha256):
        return
    if runtime is not Runtime.ONNXRUNTIME:
        kernels = extract_kernels(model, runtime)
    else:
        path = graph_path(stored_name, sha256)
        if not path.is_file():
            return
        kernels = graph_kernels(model, path)
    store.put_kernels(sha256, key, [{**k.to_json(), "extractor": EXTRACTOR_VERSION} for k in kernels])


def prediction_kernels(
    store: Store, summary: Mapping[str, Any], device: str, runtime: Runtime, model: Path, sha256: str, cache: bool
) -> list[Kernel]:
    """The kernels a predictor of ``device`` prices for ``model``: the device's own where it optimized this model,
    else (LiteRT, or ORT on a machine of the predictor's architecture) those extracted here."""
    if has_current_kernels(store, runtime, device, sha256):
        return [Kernel.from_json(r.kernel) for r in store.kernels_of(sha256, kernel_key(runtime, device))]
    check_arch(summary, device, runtime)
    return extract_kernels(model, runtime, cache=cache)


def check_arch(summary: Mapping[str, Any], device: str, runtime: Runtime) -> None:
    """Raise one line where ORT on this machine would optimize the graph for another architecture than the
    predictor's device's (a predictor that recorded none predates this check and is trusted as before)."""
    theirs, ours = normal_arch(summary.get("arch")), host_arch()
    if runtime is not Runtime.ONNXRUNTIME or theirs is None or ours is None or theirs == ours:
        return
    raise FlopgapError(
        f"the {runtime} predictor of '{device}' was built on {theirs}, and ONNX Runtime on this {ours} machine "
        f"optimizes graphs for {ours} (other kernels); export it ('flopgap predictor export') and predict on a "
        f"{theirs} machine"
    )
