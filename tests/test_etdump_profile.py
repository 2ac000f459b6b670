"""ExecuTorch per-op profiles: flopgap's runner collects a real ETDump of a real XNNPACK-delegated program, the host
reads it with ExecuTorch's Inspector and the program's ETRecord, and the rows land in a real results database."""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from devices.vocabulary import Format, Precision
from exporters.export import export
from exporters.pte_export import etrecord_path
from harness.cli.main import app
from harness.cli.profile import xnnpack_mapping_line
from harness.measure.etdump_profile import EtEvent, EtNode, map_events, read_events
from harness.proxies.categories import Category
from harness.proxies.executorch_ops import named_by_op
from harness.store import Store
from harness.zoo.registry import resolve
from tests.exporter_blocks import register
from tests.test_runner import run_runner

register()

# 32x32, not smaller: XNNPACK times its ops in whole microseconds, and on a fast x86 core (AMD family 26) every op
# of an 8x8 unit took under one and read 0 (its depthwise conv 13 µs at 32x32).
UNIT = {"cin": 48, "cout": 48, "h": 32, "w": 32, "stride": 1}
UNIT_ARGS = [item for k, v in UNIT.items() for item in ("-p", f"{k}={v}")]
FAST = ["--warmup-runs", "2", "--warmup-seconds", "0", "--runs", "5", "--min-seconds", "0"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("etdump")


@pytest.fixture(scope="module")
def unit_pte(cache: Path) -> Path:
    return export(resolve("shufflenet_v2_unit", **UNIT), Format.PTE, Precision.FP32, cache_dir=cache).path


def _etdump_events(pte: Path, tmp_path: Path, runs: int) -> tuple[dict[str, object], list[EtEvent]]:
    code, doc, _ = run_runner(str(pte), *FAST, "--profile", "--profile-runs", str(runs))
    assert code == 0, doc["error"]
    blob = doc["etdump"]
    dump = tmp_path / "run.etdp"
    dump.write_bytes(base64.b64decode(blob["base64"]))
    return blob, read_events(dump, etrecord_path(pte))


def test_runner_sends_back_an_etdump_whose_events_the_inspector_maps_to_modules(unit_pte: Path, tmp_path: Path) -> None:
    blob, events = _etdump_events(unit_pte, tmp_path, runs=7)
    assert (blob["warmup_runs"], blob["runs"]) == (2, 7)
    # every event carries one time per run: 2 warm-up + 7 profiled
    assert events and all(len(e.times_ms) == 9 for e in events)
    names = [e.name for e in events]
    # one XNNPACK partition before the split and one after it, and the split on a portable kernel
    assert names.count("DELEGATE_CALL") == 1 and names.count("OPERATOR_CALL") == 1
    assert names.count("Method::execute") == 1
    xnnpack = [e.name.split(" #")[0] for e in events if e.delegated]
    assert xnnpack.count("Convolution (NHWC, F32) DWConv") == 1  # the unit's 3x3 depthwise conv
    assert xnnpack.count("Fully Connected (NC, F32) GEMM") == 2  # its two 1x1 convs, as XNNPACK runs them
    assert xnnpack.count("Transpose (ND, X32)") >= 2  # NCHW<->NHWC layout, and the shuffle's transpose

    rows, notes = map_events(events, skip=2)
    frame = pd.DataFrame(rows)
    assert notes["events"] == len(events) and notes["xnnpack_ops"] == len(xnnpack)
    assert notes["mapped_calls"] == 1 and notes["unmapped_calls"] == {}
    assert notes["xnnpack_ops_mapped_to_nodes"] == 3  # the three convs, by their order in the delegate
    dw = frame[frame["category"] == Category.DEPTHWISE_CONV.value]
    assert list(dw["module_path"]) == ["branch2.dw.conv"] and float(dw["time_us"].iloc[0]) > 0
    pw = frame[frame["category"] == Category.POINTWISE_CONV.value]
    assert sorted(pw["module_path"]) == ["branch2.pw1.conv", "branch2.pw2.conv"]
    split = frame[frame["op_type"] == "aten.split_with_sizes_copy"]
    assert list(split["category"]) == [Category.RESHAPE_CONCAT_SPLIT_SLICE.value] and len(split) == 1
    # reshape -> transpose -> reshape inside XNNPACK is the unit's channel shuffle; other transposes are layout
    assert (frame["category"] == Category.CHANNEL_SHUFFLE.value).sum() == 3
    assert (frame["category"] == Category.LAYOUT.value).sum() >= 1
    assert all(named_by_op(n) for n in frame.loc[frame["category"] == Category.LAYOUT.value, "node_name"])
    # The rows (ops + each delegate call's own overhead + the portable kernel) account for the method's time:
    # what they leave out is the method's own dispatch between instructions, under 35% on this unit.
    total = float(frame["time_us"].sum())
    assert 0.65 * notes["method_execute_us"] <= total <= notes["method_execute_us"] * 1.02


def test_map_events_reports_by_op_name_when_the_delegate_order_does_not_match() -> None:
    """Events shaped like a real ETDump's, with the delegate's XNNPACK ops in an order its nodes contradict."""
    nodes = (EtNode("aten_max_pool2d_default_", "stem.pool"), EtNode("aten_convolution_default_", "stem.conv"))
    events = [
        EtEvent("Convolution (NHWC, F32) IGEMM #1", 0, True, (0.010, 0.020)),
        EtEvent("Max Pooling (NHWC, F32) #1", 0, True, (0.004, 0.004)),
        EtEvent("DELEGATE_CALL", 0, False, (0.030, 0.030), nodes),
        EtEvent("native_call_split_with_sizes_copy.out", 1, False, (0.002, 0.002)),
        EtEvent("OPERATOR_CALL", 1, False, (0.003, 0.005), (EtNode("aten_split_with_sizes_copy_default_", "s"),)),
        EtEvent("Method::execute", 0, False, (0.040, 0.040)),
    ]
    rows, notes = map_events(events, skip=1)
    by_name = {r.node_name: r for r in rows}
    reason = "order disagrees: Convolution (NHWC, F32) IGEMM against aten_max_pool2d_default_"
    assert notes["unmapped_calls"] == {"i0": reason}
    conv = by_name["i0/Convolution (NHWC, F32) IGEMM #1"]
    assert named_by_op(conv.node_name) and conv.module_path == "stem"  # the module holding the whole call
    assert conv.time_us == pytest.approx(20.0) and conv.category == Category.DENSE_CONV.value  # warm-up run left out
    assert by_name["i0/DELEGATE_CALL"].time_us == pytest.approx(30.0 - 20.0 - 4.0)
    split = by_name["aten_split_with_sizes_copy_default"]  # the OPERATOR_CALL, not its native_call twice
    assert split.time_us == pytest.approx(5.0) and split.module_path == "s"
    assert len(rows) == 4 and notes["method_execute_us"] == pytest.approx(40.0)


def test_xnnpack_ops_that_read_zero_are_counted_and_explained() -> None:
    """XNNPACK's profiler counts whole microseconds: an op under one reads 0, its time left in the delegate call."""
    ops = pd.DataFrame({
        "op_type": ["Convolution (NHWC, F32) DWConv", "Transpose (ND, X32)", "Transpose (ND, X32)", "DELEGATE_CALL"],
        "node_name": ["aten_convolution_default", "i0/Transpose (ND, X32) #1", "i0/Transpose (ND, X32) #2",
                      "i0/DELEGATE_CALL"],
        "time_us": [13.0, 0.0, 2.0, 5.0],
    })  # fmt: skip
    line = xnnpack_mapping_line(ops)
    assert line.startswith("XNNPACK ops: 1 mapped to graph nodes by their order in the delegate, 2 reported by op")
    assert "(10.0% of the summed time" in line
    assert line.endswith("; 1 read 0 µs: XNNPACK times its ops in whole microseconds, so theirs is in their delegate "
                         "call's row (profile a larger input for per-op times)")  # fmt: skip
    assert "read 0" not in xnnpack_mapping_line(ops.assign(time_us=[13.0, 1.0, 2.0, 5.0]))


def test_profile_command_stores_executorch_rows_and_says_how_they_were_mapped(cache: Path, tmp_path: Path) -> None:
    db = tmp_path / "et.db"
    args = ["profile", "shufflenet_v2_unit", *UNIT_ARGS, "--runtime", "executorch", "--db", str(db)]
    result = CliRunner().invoke(
        app, [*args, "--cache-dir", str(cache), "--trials", "1", "--runs", "10", "--min-seconds", "0"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "XNNPACK ops: 3 mapped to graph nodes by their order in the delegate" in result.output
    assert "reported by op name only" in result.output
    with Store(db) as store:
        points = store.points_frame()
        ops = store.op_profiles_frame(points["point_id"].tolist())
        accounts = store.op_accounts()
    assert list(points["runtime"]) == ["executorch"]
    assert "depthwise_conv" in set(ops["category"]) and (ops["time_us"] >= 0).all()
    assert "branch2.dw.conv" in set(ops["module_path"])
    # the program's FLOPs come from the same model's ONNX graph: its account is stored under the program's sha
    [sha] = points["artifact_sha"].unique()
    assert sha in accounts and accounts[sha]["flops"].sum() > 0
