"""Per-op and per-block profiles on this machine: real exporters, real runner subprocesses, real SQLite store."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from devices.base import Device
from devices.local import LocalDevice
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from exporters.export import export
from exporters.onnx_export import node_module_path
from harness.measure.profile import (
    BLOCK_CATEGORY,
    EXPECTED_RATIO,
    GraphIndex,
    block_cut,
    map_ort_rows,
    profile_onnx,
    profile_tflite_blocks,
)
from harness.measure.spec import Protocol, parse_spec
from harness.measure.sweep import run_sweep
from harness.store import Store
from harness.zoo.registry import ModelSpec, resolve

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


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _export(cache: Path, spec: ModelSpec, fmt: Format) -> Artifact:
    return export(spec, fmt, Precision.FP32, cache_dir=cache)


def _exported_paths(art: Artifact) -> set[str]:
    return {node_module_path(n) for n in onnx.load(str(art.path)).graph.node}


def test_sweep_with_profile_stores_ort_nodes_and_tflite_blocks_once(tmp_path: Path, cache_dir: Path) -> None:
    spec = parse_spec(SPEC)
    devices: dict[str, Device] = {"local": LocalDevice()}

    def exporter(model: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        return export(model, fmt, precision, cache_dir=cache_dir)

    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, SPEC, store, devices, exporter)
        assert result.failed_points == 0
        points = store.points_frame().set_index("format")
        ops = store.op_profiles_frame()
        onnx_ops = ops[ops["point_id"] == points.loc["onnx", "point_id"]]
        blocks = ops[ops["point_id"] == points.loc["tflite", "point_id"]]

        # ONNX: every exported conv has a row of its own, named and placed as in the exported graph.
        art = _export(cache_dir, BLOCK, Format.ONNX)
        convs = {n.name for n in onnx.load(str(art.path)).graph.node if n.op_type == "Conv"}
        assert convs == {"expand.conv/Conv", "dw.conv/Conv", "project.conv/Conv"}
        assert convs <= set(onnx_ops["node_name"])
        assert set(onnx_ops["module_path"]) <= _exported_paths(art)
        assert (onnx_ops["time_us"] > 0).all()

        # TFLite: one row per block, and each block holds ONNX rows of the same module.
        assert list(blocks["module_path"]) == ["expand", "dw", "project"]
        assert list(blocks["node_name"]) == ["expand/ConvBNAct", "dw/ConvBNAct", "project/ConvBNAct"]
        assert set(blocks["category"]) == {BLOCK_CATEGORY}
        for path in blocks["module_path"]:
            assert any(p == path or p.startswith(path + ".") for p in onnx_ops["module_path"])

        # A rerun finds both points done and profiled: nothing is measured or profiled twice.
        again = run_sweep(spec, SPEC, store, devices, exporter)
        assert again.measured_trials == 0 and again.skipped_points == 2
        assert len(store.op_profiles_frame()) == len(ops)


def test_ort_profile_maps_to_exported_module_paths_and_sums_near_the_whole(cache_dir: Path) -> None:
    art = _export(cache_dir, BLOCK, Format.ONNX)
    profile = profile_onnx(LocalDevice(), art, 1, PROTO)
    assert profile.notes["graph_optimization"] == "all"  # the level sweeps time
    assert all(op.module_path is not None for op in profile.ops)
    assert {op.module_path for op in profile.ops} <= _exported_paths(art)
    low, high = EXPECTED_RATIO
    assert low <= profile.ratio <= high, profile.ratio


def test_tflite_blocks_line_up_with_onnx_module_paths(cache_dir: Path) -> None:
    art = _export(cache_dir, BLOCK, Format.TFLITE)
    profile = profile_tflite_blocks(LocalDevice(), BLOCK, art, 1, PROTO, {"xnnpack": True}, cache_dir=cache_dir)
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
        {"name": "ReorderInput", "op_type": "ReorderInput", "time_us": 1.0, "calls": 5},
        {"name": f"{expand_act}_nchwc", "op_type": "Conv", "time_us": 10.0, "calls": 5},
        {"name": "HardSigmoid_7", "op_type": "HardSigmoid", "time_us": 2.0, "calls": 5},  # stands for dw.*
        {"name": f"{project_out}_nchwc", "op_type": "Conv", "time_us": 8.0, "calls": 5},
        {"name": "ReorderOutput_token_3", "op_type": "ReorderOutput", "time_us": 1.5, "calls": 5},
        {"name": "/Add", "op_type": "Add", "time_us": 3.0, "calls": 5, "median_us": 2.5},
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
