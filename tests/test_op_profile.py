"""Per-op and per-block profiles on this machine: real exporters, real runner subprocesses, real SQLite store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from devices.base import Backend, Device, Transport, TrialRequest
from devices.local import local_device
from devices.result import OpTiming, TrialResult
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from exporters.export import export
from exporters.onnx_export import node_module_path
from harness.measure.block_profile import block_cut, profile_tflite_blocks
from harness.measure.profile import (
    BLOCK_CATEGORY,
    PROFILE_RETRIES,
    GraphIndex,
    map_ort_rows,
    profile_agrees,
    profile_onnx,
    profile_stray,
)
from harness.measure.spec import Protocol, parse_spec
from harness.measure.stats import target_ms
from harness.measure.sweep import run_sweep
from harness.store import Store
from harness.zoo.registry import ModelSpec, resolve
from tests.fake_device import local_without_litert_profiler

BLOCK = resolve("inverted_residual")  # 24 -> 144 -> 24 channels at 56x56, residual add in the parent's forward
PROTO = Protocol(trials=1, warmup_runs=3, warmup_seconds=0, runs=20, min_seconds=0)  # type: ignore[call-arg]
SPEC = """
name = "profile-test"
runtimes = ["onnxruntime", "litert"]
[[models]]
name = "inverted_residual"
[protocol]
trials = 1
warmup_runs = 3
warmup_seconds = 0
runs = 20
min_seconds = 0
profile = true
"""

# What these tests hold a profile's ratio (sum of rows / whole-model median) to. Measured on the quick sweep's
# models, 1 thread, 2-core x86 host: ORT per-node 1.11-1.50 (more, smaller nodes: higher; ORT's trace has
# 1 us resolution and the runner averages calls, so a busy host pushes it to ~2.2), TFLite blocks 0.99-1.02 at
# depth 1 and 1.01-1.04 at depth 2; a tiny test block on a busy machine strays further, hence the slack.
EXPECTED_RATIO = (1 / 3, 3.0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _export(cache: Path, spec: ModelSpec, fmt: Format) -> Artifact:
    return export(spec, fmt, Precision.FP32, cache_dir=cache)


def _exported_paths(art: Artifact) -> set[str]:
    return {node_module_path(n) for n in onnx.load(str(art.path)).graph.node}


def test_sweep_with_profile_stores_ort_nodes_and_litert_operators_once(tmp_path: Path, cache_dir: Path) -> None:
    spec = parse_spec(SPEC)
    device = local_device()
    assert "tflite" in device.facts()["op_profiles"]  # ai-edge-litert 2.3 here: its C API profiler is read
    devices: dict[str, Device] = {"local": device}

    def exporter(model: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        return export(model, fmt, precision, cache_dir=cache_dir)

    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, SPEC, store, devices, exporter)
        assert result.failed_points == 0
        points = store.points_frame().set_index("format")
        ops = store.op_profiles_frame()
        onnx_ops = ops[ops["point_id"] == points.loc["onnx", "point_id"]]
        lite_ops = ops[ops["point_id"] == points.loc["tflite", "point_id"]]

        # ONNX: every exported conv has a row of its own, named and placed as in the exported graph.
        art = _export(cache_dir, BLOCK, Format.ONNX)
        convs = {n.name for n in onnx.load(str(art.path)).graph.node if n.op_type == "Conv"}
        assert convs == {"expand.conv/Conv", "dw.conv/Conv", "project.conv/Conv"}
        assert convs <= set(onnx_ops["node_name"])
        assert set(onnx_ops["module_path"]) <= _exported_paths(art)
        assert (onnx_ops["time_us"] > 0).all()

        # TFLite: XNNPACK's operators timed inside the block, each named for the graph's op it runs (the 1x1 convs
        # ran as fully connected GEMMs, the 3x3 depthwise as DWConv), their modules those of the ONNX rows.
        convs_run = lite_ops[lite_ops["op_type"].isin(["CONV_2D", "DEPTHWISE_CONV_2D"])]
        assert list(convs_run["node_name"]) == [
            "expand.conv/CONV_2D", "dw.conv/DEPTHWISE_CONV_2D", "project.conv/CONV_2D"]  # fmt: skip
        assert (convs_run["time_us"] > 0).all() and lite_ops["category"].isna().all()
        assert set(convs_run["module_path"]) <= set(onnx_ops["module_path"])

        # A rerun finds both points done and profiled: nothing is measured or profiled twice.
        again = run_sweep(spec, SPEC, store, devices, exporter)
        assert again.measured_trials == 0 and again.skipped_points == 2
        assert len(store.op_profiles_frame()) == len(ops)


def test_a_litert_without_the_profiler_is_profiled_block_by_block(tmp_path: Path, cache_dir: Path) -> None:
    spec = parse_spec(SPEC.replace('runtimes = ["onnxruntime", "litert"]', 'runtimes = ["litert"]'))
    device = local_without_litert_profiler()
    assert device.profiles_ops(Format.ONNX) and not device.profiles_ops(Format.TFLITE)

    def exporter(model: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        return export(model, fmt, precision, cache_dir=cache_dir)

    with Store(tmp_path / "r.db") as store:
        assert run_sweep(spec, SPEC, store, {"local": device}, exporter).failed_points == 0
        blocks = store.op_profiles_frame()
    # One row per block, named for the module it times.
    assert list(blocks["module_path"]) == ["expand", "dw", "project"]
    assert list(blocks["node_name"]) == ["expand/ConvBNAct", "dw/ConvBNAct", "project/ConvBNAct"]
    assert set(blocks["category"]) == {BLOCK_CATEGORY}


class _SpellOnFirstProfile:
    """The real runner behind a stand-in backend boundary: the first profiled session's node times come back
    tripled, as if a spell had slowed that session alone (the trials ran quiet)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.sums: list[float] = []  # µs, of each profiled session as returned

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def measure(self, transport: Transport, model: str, request: TrialRequest) -> TrialResult:
        result = self.inner.measure(transport, model, request)
        if not result.ops:
            return result
        factor = 3.0 if not self.sums else 1.0
        ops = tuple(
            replace(op, time_us=op.time_us * factor, median_us=None if op.median_us is None else op.median_us * factor)
            for op in result.ops
        )
        self.sums.append(sum(op.median_us if op.median_us is not None else op.time_us for op in ops))
        return replace(result, ops=ops)


def test_an_ort_profile_far_from_the_points_timed_latency_is_taken_again_and_the_closest_kept(
    tmp_path: Path, cache_dir: Path
) -> None:
    spec = parse_spec(SPEC.replace('runtimes = ["onnxruntime", "litert"]', 'runtimes = ["onnxruntime"]'))
    real = local_device()
    backend = _SpellOnFirstProfile(real.backend)
    devices: dict[str, Device] = {"local": Device("local", real.transport, backend)}

    def exporter(model: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        return export(model, fmt, precision, cache_dir=cache_dir)

    with Store(tmp_path / "r.db") as store:
        assert run_sweep(spec, SPEC, store, devices, exporter).failed_points == 0
        point = store.points_frame().iloc[0]
        stored = float(store.op_profiles_frame()["time_us"].sum())
    timed = target_ms(float(point["median_ms"]), float(point["p10_ms"])) * 1e3
    strays = [profile_stray(s, timed) for s in backend.sums]
    # the tripled first session strays (its nodes sum to 3x what they are); it is taken again, at most twice more,
    # stopping at the first that agrees, and the closest of those taken is stored
    assert not profile_agrees(backend.sums[0], timed) and 2 <= len(backend.sums) <= 1 + PROFILE_RETRIES
    assert all(not profile_agrees(s, timed) for s in backend.sums[:-1])
    assert stored == pytest.approx(backend.sums[int(np.argmin(strays))], rel=1e-6)
    assert stored < backend.sums[0] / 2


def test_ort_profile_maps_to_exported_module_paths_and_sums_near_the_whole(cache_dir: Path) -> None:
    art = _export(cache_dir, BLOCK, Format.ONNX)
    profile = profile_onnx(local_device(), art, 1, PROTO)
    assert profile.notes["graph_optimization"] == "all"  # the level sweeps time
    assert all(op.module_path is not None for op in profile.ops)
    assert {op.module_path for op in profile.ops} <= _exported_paths(art)
    low, high = EXPECTED_RATIO
    assert low <= profile.ratio <= high, profile.ratio


def test_tflite_blocks_line_up_with_onnx_module_paths(cache_dir: Path) -> None:
    art = _export(cache_dir, BLOCK, Format.TFLITE)
    profile = profile_tflite_blocks(local_device(), BLOCK, art, 1, PROTO, {"xnnpack": True}, cache_dir=cache_dir)
    assert [op.module_path for op in profile.ops] == ["expand", "dw", "project"]
    assert profile.notes["skipped_modules"] == {"se": "identity"}
    onnx_paths = _exported_paths(_export(cache_dir, BLOCK, Format.ONNX))
    assert all(any(p == op.module_path or p.startswith(f"{op.module_path}.") for p in onnx_paths) for op in profile.ops)
    low, high = EXPECTED_RATIO
    assert low <= profile.ratio <= high, profile.ratio


def test_fused_and_runtime_only_rows_map_back_to_the_export(cache_dir: Path) -> None:
    # Rows as ORT's NCHWc pass names them at level 'all': a fused Conv+Clip is named after the Clip's output tensor.
    path = _export(cache_dir, BLOCK, Format.ONNX).path
    index = GraphIndex.of(path)
    output = {n.name: n.output[0] for n in onnx.load(str(path)).graph.node}
    expand_act, project_out = output["expand.act/Clip"], output["project.conv/Conv"]
    rows = [
        OpTiming("ReorderInput", "ReorderInput", 1.0, 5),
        OpTiming(f"{expand_act}_nchwc", "Conv", 10.0, 5),
        OpTiming("HardSigmoid_7", "HardSigmoid", 2.0, 5),  # stands for dw.*
        OpTiming(f"{project_out}_nchwc", "Conv", 8.0, 5),
        OpTiming("ReorderOutput_token_3", "ReorderOutput", 1.5, 5),
        OpTiming("/Add", "Add", 3.0, 5, median_us=2.5),
    ]
    ops = map_ort_rows(rows, index)
    assert [op.node_name for op in ops] == [
        "ReorderInput",
        "expand.conv/Conv",  # charged to the conv, not the fused Clip
        "HardSigmoid_7",
        "project.conv/Conv",
        "ReorderOutput_token_3",
        "/Add",
    ]
    assert [op.module_path for op in ops] == ["expand.conv", "expand.conv", "dw", "project.conv", "project.conv", ""]
    assert ops[-1].time_us == 2.5  # a per-node median, when the runner gives one, wins over the mean
    # The reorders ORT inserts are layout conversions; exported nodes take their category from the graph account.
    assert [op.category for op in ops] == ["layout", None, None, None, "layout", None]


def test_block_cut_expands_sequentials_only() -> None:
    spec = resolve("shufflenet_v2", scale=0.5)
    model, x = spec.build(), spec.example_input()
    top, skipped = block_cut(model, x, depth=1)
    assert [b.path for b in top] == ["stem", "stage2", "stage3", "stage4", "conv5", "classifier"]
    assert top[1].input_shape == (1, 24, 56, 56) and skipped == {}
    deeper, _ = block_cut(model, x, depth=2)
    paths = [b.path for b in deeper]
    assert paths[:4] == ["stem.conv", "stem.pool", "stage2.0", "stage2.1"]
    assert len(paths) == 2 + 4 + 8 + 4 + 1 + 1  # stem's two, 16 units, conv5 (not a Sequential), classifier
