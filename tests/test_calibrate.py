"""Roofline calibration through the real runtimes and the real store, on small kernels so it stays fast.

Timing figures are never compared with thresholds here; the tests check the work counted per kernel and that
the stored GFLOP/s and GB/s are exactly that work over the stored raw medians.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.local import local_device
from devices.vocabulary import Format, Precision, Runtime
from exporters.artifact import Artifact
from exporters.export import export
from harness.measure.calibrate import BANDWIDTH, COMPUTE, calibrate, conv1x1_kernel, relu_kernel, store_calibration
from harness.measure.spec import Protocol
from harness.store import Store
from harness.zoo.counting import count_macs
from harness.zoo.registry import ModelSpec

PROTO = Protocol(trials=2, warmup_runs=2, warmup_seconds=0, runs=10, min_seconds=0)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_kernels_count_the_work_they_do() -> None:
    conv = conv1x1_kernel(16, 32, 8, 8)
    assert conv.flops == 2 * count_macs(conv.spec.build(), conv.spec.example_input()) == 2 * 16 * 32 * 64
    assert conv.bytes == 4 * (64 * 16 + 64 * 32 + 16 * 32)
    relu = relu_kernel(8, 16, 16)
    assert relu.bytes == 16384  # 2048 floats read and 2048 written
    assert (conv.kind, relu.kind) == (COMPUTE, BANDWIDTH)


@pytest.mark.parametrize("runtime", [Runtime.ONNXRUNTIME, Runtime.LITERT])
def test_calibration_stores_figures_that_are_work_over_stored_medians(
    tmp_path: Path, cache_dir: Path, runtime: Runtime
) -> None:
    def exporter(spec: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        return export(spec, fmt, precision, cache_dir=cache_dir)

    kernels = [conv1x1_kernel(16, 32, 8, 8), conv1x1_kernel(32, 32, 8, 8), relu_kernel(8, 16, 16)]
    dev = local_device()
    cal = calibrate(dev, runtime, 1, exporter, kernels, PROTO)
    with Store(tmp_path / "r.db") as store:
        store_calibration(store, dev, cal, facts={"cpu_model": "test"})
        row = store.calibrations_frame().iloc[0]
    assert (row["device"], row["runtime"], row["threads"]) == ("local", runtime, 1)
    assert row["peak_gflops"] > 0 and row["bandwidth_gbs"] > 0

    details = json.loads(row["details_json"])
    stored = {k["name"]: k for k in details["kernels"]}
    assert set(stored) == {k.name for k in kernels}
    for k in kernels:
        entry = stored[k.name]
        assert len(entry["medians_ns"]) == PROTO.trials
        assert entry["median_ns"] == min(entry["medians_ns"]) > 0
        assert (entry["flops"], entry["bytes"]) == (k.flops, k.bytes)
    compute = [e for e in stored.values() if e["kind"] == COMPUTE]
    bandwidth = [e for e in stored.values() if e["kind"] == BANDWIDTH]
    assert row["peak_gflops"] == pytest.approx(max(e["flops"] / e["median_ns"] for e in compute), rel=1e-12)
    assert row["bandwidth_gbs"] == pytest.approx(max(e["bytes"] / e["median_ns"] for e in bandwidth), rel=1e-12)
    best = max(compute, key=lambda e: e["flops"] / e["median_ns"])
    assert details["peak_from"] == best["name"]
    assert details["runtime_version"]
