"""Three runtimes side by side (report section, notebook, README finding) on a real results database whose numbers
are hand-computable: one model measured with ONNX Runtime (per-node profile), LiteRT (per-block profile, converter
transposes in its graph account) and ExecuTorch (ETDump rows, categorised at profile time)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from devices.vocabulary import Format
from harness import analysis
from harness.analysis.claims import flop_gap_claims
from harness.report.flop_gap import flop_gap_markdown
from harness.report.html import render
from harness.store import OpTime, Store
from tests.analysis_data import _point, artifact

MODEL, PARAMS, MACS = "shufflenet_v2", (("scale", 0.5),), 40_000_000
LABEL = "shufflenet_v2[scale=0.5]"
# ONNX Runtime: 1 ms median; node rows of 100 us: conv 40, depthwise 20, shuffle 10, layout (a reorder) 10, relu 20
ORT_ROWS = [("Conv_0", "Conv", 40.0), ("Conv_1", "Conv", 20.0), ("Transpose_2", "Transpose", 10.0),
            ("ReorderOutput_3", "ReorderOutput", 10.0), ("Relu_4", "Relu", 20.0)]  # fmt: skip
ORT_ACCOUNT = pd.DataFrame(
    {
        "name": ["Conv_0", "Conv_1", "Transpose_2", "Relu_4"],
        "op_type": ["Conv", "Conv", "Transpose", "Relu"],
        "category": ["pointwise_conv", "depthwise_conv", "channel_shuffle", "activation"],
        "flops": [900.0, 100.0, 0.0, 0.0],
        "mac_bytes": 1000.0,
        "module_path": ["pw", "dw", "shuffle", "act"],
    }
)
# ExecuTorch: 2 ms median; rows of 200 us: conv 60, depthwise 40, shuffle 20, layout (XNNPACK transposes) 80
ET_ROWS = [
    OpTime("aten_convolution_default", "Fully Connected (NC, F32) GEMM", 60.0, 1, "pointwise_conv", "pw"),
    OpTime("aten_convolution_default_1", "Convolution (NHWC, F32) DWConv", 40.0, 1, "depthwise_conv", "dw"),
    OpTime("i0/Transpose (ND, X32) #2", "Transpose (ND, X32)", 20.0, 1, "channel_shuffle", ""),
    OpTime("i0/Transpose (ND, X32) #1", "Transpose (ND, X32)", 50.0, 1, "layout", ""),
    OpTime("i0/Transpose (ND, X32) #3", "Transpose (ND, X32)", 30.0, 1, "layout", ""),
]
TFL_ACCOUNT = pd.DataFrame(
    {
        "name": ["CONV_0", "TRANSPOSE_1", "TRANSPOSE_2", "TRANSPOSE_3"],
        "op_type": ["CONV_2D", "TRANSPOSE", "TRANSPOSE", "TRANSPOSE"],
        "category": ["pointwise_conv", "layout", "layout", "channel_shuffle"],
        "flops": [1000.0, 0.0, 0.0, 0.0],
        "mac_bytes": 1000.0,
        "module_path": ["pw", "", "", "shuffle"],
    }
)


@pytest.fixture()
def results(tmp_path: Path) -> analysis.Results:
    db = tmp_path / "three.db"
    with Store(db) as store:
        run = store.start_run("three-runtimes", "")
        store.upsert_device("local", "local", {"cpu": "x86_64"})
        ort = artifact(tmp_path, MODEL, PARAMS, Format.ONNX, (1, 3, 224, 224))
        tfl = artifact(tmp_path, MODEL, PARAMS, Format.TFLITE, (1, 224, 224, 3))
        pte = artifact(tmp_path, MODEL, PARAMS, Format.PTE, (1, 3, 224, 224))
        point = _point(store, run, ort, MACS, ("local", "onnxruntime", "1.20.1", 1), 1.0)
        store.add_op_profile(point, [OpTime(n, t, us, calls=20) for n, t, us in ORT_ROWS])
        point = _point(store, run, tfl, MACS, ("local", "litert", "2.16.1", 1), 1.5)
        store.add_op_profile(point, [OpTime("stage2", "block", 1400.0, category="block", module_path="stage2")])
        point = _point(store, run, pte, MACS, ("local", "executorch", "1.5.1", 1), 2.0)
        store.add_op_profile(point, ET_ROWS)
        store.finish_run(run, "completed")
    accounts = {ort.sha256: ORT_ACCOUNT, tfl.sha256: TFL_ACCOUNT, pte.sha256: ORT_ACCOUNT}
    return analysis.load(db, accounts=accounts)


def test_comparison_puts_each_runtimes_median_shares_and_layout_cost_side_by_side(results: analysis.Results) -> None:
    frame = analysis.runtime_comparison(results).set_index("runtime")
    assert list(frame.index) == ["executorch", "litert", "onnxruntime"]
    assert set(frame["model_label"]) == {LABEL}
    assert frame.loc["onnxruntime", "median_ms"] == 1.0 and frame.loc["executorch", "median_ms"] == 2.0
    ort, et = frame.loc["onnxruntime"], frame.loc["executorch"]
    assert (ort["conv_share"], ort["depthwise_share"], ort["shuffle_share"]) == pytest.approx((0.4, 0.2, 0.1))
    assert (ort["layout_share"], ort["elementwise_share"], ort["other_share"]) == pytest.approx((0.1, 0.2, 0.0))
    assert (et["conv_share"], et["depthwise_share"], et["layout_share"]) == pytest.approx((0.3, 0.2, 0.4))
    for runtime in ("onnxruntime", "executorch"):  # the five groups and the rest cover the profiled time
        assert sum(frame.loc[runtime, list(analysis.runtimes.SHARE_COLUMNS)]) == pytest.approx(1.0)
    # ExecuTorch: the three transposes were reported by XNNPACK's op name, with no graph node: 100 of 200 us
    assert et["by_op_name_share"] == pytest.approx(0.5) and ort["by_op_name_share"] == 0.0
    assert et["layout_ms"] == pytest.approx(0.8) and ort["layout_ms"] == pytest.approx(0.1)
    # LiteRT: per-block profile, no shares; its converter's layout transposes counted from the graph
    assert math.isnan(frame.loc["litert", "layout_share"]) and frame.loc["litert", "layout_ops"] == 2


def test_layout_cost_names_the_runtime_whose_layout_handling_costs_what_the_others_do_not(
    results: analysis.Results,
) -> None:
    [cost] = analysis.layout_costs(analysis.runtime_comparison(results))
    assert (cost.model, cost.runtime) == (LABEL, "executorch")
    assert cost.layout_ms == pytest.approx(0.8) and cost.others == (("onnxruntime", pytest.approx(0.1)),)
    assert cost.sentence == (
        f"{LABEL}: executorch's layout conversions take 0.800 ms (40.0% of its profiled time) against onnxruntime "
        "0.100 ms; LiteRT runs 2 converter-added transposes (no per-op times)."
    )


def test_readme_finding_and_report_section_cover_the_three_runtimes(results: analysis.Results, tmp_path: Path) -> None:
    claims = flop_gap_claims(results)
    [side] = claims.side_by_side
    assert side.medians == (("executorch", 2.0), ("litert", 1.5), ("onnxruntime", 1.0))
    text = " ".join(flop_gap_markdown(claims).split())  # unwrapped
    assert "**Three runtimes, same models** (median, executorch / litert / onnxruntime)" in text
    assert f"`{LABEL}` 2.00 / 1.50 / 1.00 ms" in text
    report = render(results, tmp_path / "report")
    page = report.html_path.read_text()
    assert "Runtimes side by side" in page and "runtimes-local-fp32-1.png" in {p.name for p in report.figures}
    assert "executorch&#x27;s layout conversions take 0.800 ms" in page


def test_executorch_rows_mapped_to_a_node_join_the_roofline_through_their_module(results: analysis.Results) -> None:
    roof = analysis.roofline(results)
    et = roof[roof["runtime"] == "executorch"]
    # only the 1x1 conv and the depthwise conv were mapped to graph nodes (module pw, dw); the transposes reported
    # by op name carry the partition's module ('') and join nothing
    flops = dict(zip(et["node_name"], et["flops"], strict=True))
    assert flops == {"aten_convolution_default": 900.0, "aten_convolution_default_1": 100.0}
