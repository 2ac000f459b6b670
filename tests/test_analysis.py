"""Analysis frames on a real SQLite store filled through the Store API, with hand-computable numbers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

import harness.analysis as analysis
from devices.vocabulary import Format
from harness.analysis import Context, Results
from harness.store import OpTime, Store
from tests import analysis_data as data
from tests.zoo_labels import zoo_names

CTX_A = Context("local", "onnxruntime", "fp32", 4)
CTX_B = Context("pi4", "litert", "fp32", 1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "results.db") as s:
        yield s


@pytest.fixture
def results(store: Store, tmp_path: Path) -> Results:
    accounts = data.populate(store, tmp_path)
    return analysis.load(store, accounts=accounts)


def _by_category(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("category")


def test_fit_of_latency_proportional_to_macs_is_slope_one_r2_one_rho_one(results: Results) -> None:
    fit = analysis.fits(results)
    row = fit[CTX_A.mask(fit)].iloc[0]
    assert row["n"] == 3  # the 17 guideline blocks of this context are not in the fit
    assert row["slope"] == pytest.approx(1.0, abs=1e-12)
    assert row["intercept"] == pytest.approx(math.log10(2.0 / 100e6), abs=1e-12)  # 2 ms per 100 M MACs
    assert row["r2"] == pytest.approx(1.0, abs=1e-12)
    assert row["spearman_rho"] == pytest.approx(1.0)
    assert row["slope_stderr"] == pytest.approx(0.0, abs=1e-6)  # every point on the line (sqrt of rounding)
    assert (row["runtime_version"], row["input_shapes"]) == ("1.20.1", "1x3x224x224")


def test_fit_with_orthogonal_perturbation_keeps_the_line_and_loses_r2(results: Results) -> None:
    row = analysis.fits(results).set_index("device").loc["pi4"]
    assert (row["n"], row["runtime"], row["threads"], row["runtime_version"]) == (4, "litert", 1, "2.16.1")
    assert row["slope"] == pytest.approx(1.0, abs=1e-12)
    assert row["intercept"] == pytest.approx(-6.0, abs=1e-12)
    assert row["r2"] == pytest.approx(data.R2_B, abs=1e-12)
    assert row["r2"] == pytest.approx(1 - 0.05 / 5.05, abs=1e-12)
    assert row["slope_stderr"] == pytest.approx(math.sqrt(0.005), rel=1e-9)
    assert row["spearman_rho"] == pytest.approx(1.0)


def test_fit_loglog_spearman_and_undefined_cases() -> None:
    fit = analysis.fit_loglog([1e6, 1e7, 1e8], [3.0, 2.0, 1.0])
    assert fit.spearman_rho == pytest.approx(-1.0)
    assert fit.slope == pytest.approx(-math.log10(3) / 2)  # x centred on 7: slope = (y3 - y1) / 2
    for undefined in (analysis.fit_loglog([1e6, 1e6], [1.0, 2.0]), analysis.fit_loglog([1e6], [1.0])):
        assert all(math.isnan(v) for v in dataclasses.astuple(undefined))
    flat = analysis.fit_loglog([1e6, 1e7, 1e8], [2.0, 2.0, 2.0])
    assert flat.slope == 0.0 and math.isnan(flat.r2) and math.isnan(flat.spearman_rho)


def test_slope_standard_error_by_hand() -> None:
    # log10 MACs 6..9 (Sxx = 5), residuals (+1, -3, +3, -1)·0.05 about slope 1 (SSR = 0.05), n - 2 = 2:
    # SE = sqrt(SSR / (n - 2) / Sxx) = sqrt(0.005).
    latency = [10 ** (exp - 6 + e) for exp, e in zip((6, 7, 8, 9), data.PERTURBATION, strict=True)]
    fit = analysis.fit_loglog([1e6, 1e7, 1e8, 1e9], latency)
    assert fit.slope == pytest.approx(1.0, abs=1e-12)
    assert fit.slope_stderr == pytest.approx(math.sqrt(0.005), rel=1e-9)
    two = analysis.fit_loglog([1e6, 1e8], [1.0, 3.0])  # a line through two points: no uncertainty left
    assert two.slope_stderr == 0.0 and two.r2 == pytest.approx(1.0)


def test_residual_ranking_is_measured_over_fit_worst_first(results: Results) -> None:
    res = analysis.residuals(results)
    assert res["residual"].is_monotonic_decreasing
    pi4 = res[CTX_B.mask(res)]
    assert tuple(pi4["model_label"]) == data.RESIDUAL_ORDER_B
    assert pi4["residual"].to_numpy() == pytest.approx(data.RESIDUALS_B, rel=1e-12)
    assert tuple(pi4["rank"]) == (1, 2, 3, 4)
    worst = pi4.iloc[0]
    assert worst["predicted_ms"] == pytest.approx(100.0)  # 10^(log10(1e8) - 6)
    assert worst["median_ms"] / worst["predicted_ms"] == pytest.approx(worst["residual"])
    local = res[CTX_A.mask(res)]
    assert local["residual"].to_numpy() == pytest.approx([1.0, 1.0, 1.0], rel=1e-12)


def test_latency_frame_leaves_guideline_blocks_out_unless_asked(results: Results) -> None:
    assert len(analysis.latency_vs_macs(results)) == 7
    with_blocks = analysis.latency_vs_macs(results, include_guidelines=True)
    assert len(with_blocks) == 7 + len(data.GUIDELINE_POINTS)
    row = with_blocks.set_index("model_label").loc[data.SHUFFLENET_LABEL]
    assert (row["family"], row["macs"], row["median_ms"], row["ci_low_ms"]) == ("shufflenet_v2", 2e8, 4.0, 3.96)


def test_op_breakdown_shares_of_flops_and_time(results: Results) -> None:
    frame = analysis.op_breakdown(results)
    assert set(frame["model_label"]) == {data.SHUFFLENET_LABEL}  # the TFLite model is profiled per block
    cat = _by_category(frame)
    expected_flops = {
        "dense_conv": 0.5,
        "pointwise_conv": 0.3,
        "depthwise_conv": 0.1,
        "activation": 0.1,
        "channel_shuffle": 0.0,
        "layout": 0.0,
    }
    # Transpose: mean of 8 and 12 µs over the two profiled trials, plus the shuffle's reshape (3 µs); the fused
    # ReLU has no time of its own; the runtime-added reorder node is layout, from its op type.
    expected_time = {
        "dense_conv": 0.40,
        "pointwise_conv": 0.20,
        "depthwise_conv": 0.25,
        "activation": 0.0,
        "channel_shuffle": 0.13,
        "layout": 0.02,
    }
    assert cat["flops_share"].to_dict() == pytest.approx(expected_flops)
    assert cat["time_share"].to_dict() == pytest.approx(expected_time)
    assert cat.loc["channel_shuffle", "time_us"] == pytest.approx(13.0)
    assert frame["flops_share"].sum() == pytest.approx(1.0) and frame["time_share"].sum() == pytest.approx(1.0)
    assert cat.loc["dense_conv", "flops"] == 4_000_000
    assert (cat.loc["activation", "n_ops"], cat.loc["activation", "n_profiled"]) == (1, 0)
    assert (cat.loc["layout", "n_ops"], cat.loc["layout", "n_profiled"]) == (1, 1)  # the reorder, accounted too
    assert list(frame["category"][:3]) == ["dense_conv", "pointwise_conv", "depthwise_conv"]  # CATEGORIES order


def test_op_breakdown_gives_the_profiler_overhead_and_both_denominators(results: Results) -> None:
    cat = _by_category(analysis.op_breakdown(results))
    # Summed node times 100 µs (trial means) against the point's 4 ms median.
    assert cat["profiled_us"].tolist() == pytest.approx([data.PROFILED_US] * len(cat))
    assert cat["median_us"].tolist() == pytest.approx([data.SHUFFLENET_MEDIAN_US] * len(cat))
    overhead = data.PROFILED_US / data.SHUFFLENET_MEDIAN_US
    assert cat["profiler_overhead"].tolist() == pytest.approx([overhead] * len(cat))
    assert cat.loc["depthwise_conv", "time_share_of_median"] == pytest.approx(25.0 / 4000.0)
    assert cat.loc["depthwise_conv", "time_share"] == pytest.approx(25.0 / 100.0)
    blocks = analysis.block_breakdown(results).set_index("block")
    # mobilenet_v2[alpha=0.35] on pi4: blocks 30 + 70 µs against its median 10^(6-6+0.05) ms.
    assert blocks.loc["features.1", "profiler_overhead"] == pytest.approx(100.0 / (10**0.05 * 1e3))


def test_runtime_reorders_are_layout_with_the_bytes_of_the_tensor_they_convert(results: Results) -> None:
    acc = results.accounts.set_index("node_name")
    reorder = acc.loc["ReorderOutput_3"]
    assert (reorder["category"], reorder["flops"]) == ("layout", 0.0)
    assert reorder["bytes"] == data.REORDER_BYTES  # ReorderOutput converts the output of the conv before it
    moves = analysis.data_movement(results).set_index("node_name")
    assert set(moves.index) == {"ReorderOutput_3", "/s2/shuffle/Transpose", "/s2/shuffle/Reshape"}
    assert moves.loc["ReorderOutput_3", "achieved_gbs"] == pytest.approx(data.REORDER_BYTES / 2e-6 / 1e9)
    assert moves.loc["/s2/shuffle/Transpose", "achieved_gbs"] == pytest.approx(400_000 / 10e-6 / 1e9)
    assert moves.loc["/s2/shuffle/Transpose", "bandwidth_efficiency"] == pytest.approx(40.0 / data.BANDWIDTH_GBS)


def test_runtime_op_accounts_take_bytes_from_the_served_neighbour() -> None:
    profiles = pd.DataFrame(
        {
            "point_id": [1, 1, 1, 1],
            "artifact_sha": ["a"] * 4,
            "node_name": ["ReorderInput_0", "conv/Conv", "ReorderOutput_1", "ReorderInput_9"],
            "op_type": ["ReorderInput", "Conv", "ReorderOutput", "ReorderInput"],
            "module_path": ["conv", "conv", "conv", None],
        }
    )
    accounts = analysis.normalize_account(
        pd.DataFrame(
            {
                "name": ["conv/Conv"],
                "op_type": ["Conv"],
                "category": ["pointwise_conv"],
                "flops": [10.0],
                "bytes_read": [300.0],
                "bytes_written": [500.0],
                "mac_bytes": [900.0],
            }
        ),
        "a",
    )
    rows = analysis.runtime_op_accounts(profiles, accounts).set_index("node_name")
    # ReorderInput: the conv's input (read), twice; ReorderOutput: its output (written), twice; a reorder with no
    # accounted op after it has unknown bytes.
    assert rows.loc[["ReorderInput_0", "ReorderOutput_1"], "bytes"].tolist() == [600.0, 1000.0]
    assert math.isnan(rows.loc["ReorderInput_9", "bytes"])
    assert set(rows["category"]) == {"layout"} and set(rows["flops"]) == {0.0}


def test_legacy_accounts_are_read_in_todays_categories() -> None:
    # Written before shuffles were grouped: only the transpose was "shuffle_transpose", and so was every
    # other transpose (here a layout one before the shuffle).
    legacy = pd.DataFrame(
        {
            "index": [0, 1, 2, 3, 4],
            "name": ["u/TRANSPOSE", "u.shuffle/RESHAPE", "u.shuffle/TRANSPOSE", "u.shuffle/RESHAPE_1", "u/GATHER"],
            "op_type": ["TRANSPOSE", "RESHAPE", "TRANSPOSE", "RESHAPE", "GATHER"],
            "category": ["shuffle_transpose", "reshape_concat_split_slice", "shuffle_transpose",
                         "reshape_concat_split_slice", "shuffle_transpose"],
            "out_shape": [[1, 48, 8, 8], [1, 2, 24, 8, 8], [1, 24, 2, 8, 8], [1, 48, 8, 8], [1, 48, 8, 8]],
            "flops": [0, 0, 0, 0, 0],
            "mac_bytes": [1, 1, 1, 1, 1],
        }
    )  # fmt: skip
    restated = analysis.normalize_account(legacy, "sha")
    assert restated["category"].tolist() == [
        "layout",
        "channel_shuffle",
        "channel_shuffle",
        "channel_shuffle",
        "channel_shuffle",
    ]


def test_guideline_blocks_stay_out_of_breakdowns_and_the_roofline_unless_asked(
    store: Store, tmp_path: Path, results: Results
) -> None:
    guideline = results.points[results.points["family"] == "guideline"].iloc[0]
    point = int(guideline["point_id"])
    store.add_op_profile(point, [OpTime("/s2/dw/Conv", "Conv", 5.0)])
    with_block = analysis.load(store, accounts={**_accounts_of(results), guideline["artifact_sha"]: _dw_account()})
    assert set(analysis.op_breakdown(with_block)["point_id"]) == set(analysis.op_breakdown(results)["point_id"])
    assert point in set(analysis.op_breakdown(with_block, include_guidelines=True)["point_id"])
    assert point not in set(analysis.roofline(with_block)["point_id"])
    assert point in set(analysis.roofline(with_block, include_guidelines=True)["point_id"])
    assert all(h.point_id != point for h in analysis.headlines(with_block))


def _accounts_of(results: Results) -> dict[str, pd.DataFrame]:
    acc = results.accounts[~results.accounts["op_type"].str.startswith("Reorder")]
    return {str(sha): group.rename(columns={"node_name": "name"}) for sha, group in acc.groupby("artifact_sha")}


def _dw_account() -> pd.DataFrame:
    return pd.DataFrame(
        {"name": ["/s2/dw/Conv"], "op_type": ["Conv"], "category": ["depthwise_conv"], "flops": [800_000],
         "mac_bytes": [1_600_000]}
    )  # fmt: skip


def test_missing_graph_account_is_said_not_guessed(store: Store, tmp_path: Path) -> None:
    data.populate(store, tmp_path)
    results = analysis.load(store)  # the artifact files were never written: no account can be made
    assert len(results.account_errors) == 2
    assert all("is gone" in why for why in results.account_errors.values())
    frame = analysis.op_breakdown(results)
    assert frame["flops_share"].isna().all()
    assert frame.set_index("category")["time_share"].sum() == pytest.approx(1.0)
    sentence = next(h.sentence for h in analysis.headlines(results) if h.model_label == data.SHUFFLENET_LABEL)
    # ORT rows carry no category: without the graph account, neither FLOPs nor categories are known.
    assert sentence.startswith(f"{data.SHUFFLENET_LABEL} on local/onnxruntime: op categories and FLOP shares unknown")
    assert set(frame["category"]) == {"other", "layout"}  # a reorder is layout by its op type alone
    assert analysis.roofline(results).empty


def test_block_breakdown_sums_account_flops_under_each_block(results: Results) -> None:
    frame = analysis.block_breakdown(results).set_index("block")
    assert frame["flops_share"].to_dict() == pytest.approx(
        {"features.0": 0.2, "features.1": 0.6, analysis.OUTSIDE_BLOCKS: 0.2}
    )
    assert frame["time_share"].to_dict() == pytest.approx(
        {"features.0": 0.3, "features.1": 0.7, analysis.OUTSIDE_BLOCKS: 0.0}
    )
    assert frame.loc["features.1", "flops"] == 6_000_000


def test_category_gaps_rank_what_flops_miss(results: Results) -> None:
    gaps = analysis.category_gaps(results)
    first = gaps.iloc[0]
    assert (first["category"], first["gap"], first["residual"]) == (
        "depthwise_conv",
        pytest.approx(0.15),
        pytest.approx(2.5),
    )
    shuffle = gaps.set_index("category").loc["channel_shuffle"]
    assert shuffle["gap"] == pytest.approx(0.13) and math.isinf(shuffle["residual"])
    assert gaps["gap"].is_monotonic_decreasing


def test_roofline_places_ops_by_intensity_and_flops_over_time(results: Results) -> None:
    roof = analysis.roofline(results).set_index("node_name")
    assert set(roof.index) == {"/stem/Conv", "/s2/pw/Conv", "/s2/dw/Conv"}  # zero-FLOP and unprofiled ops are out
    assert roof["achieved_gflops"].to_dict() == pytest.approx(
        {"/stem/Conv": 4e6 / 40e-6 / 1e9, "/s2/pw/Conv": 120.0, "/s2/dw/Conv": 32.0}
    )
    assert roof["intensity"].to_dict() == pytest.approx({"/stem/Conv": 5.0, "/s2/pw/Conv": 2.0, "/s2/dw/Conv": 0.5})
    # The later calibration (200 GFLOP/s, 100 GB/s) replaces the superseded one; ridge at 2 FLOPs/byte.
    assert set(roof["peak_gflops"]) == {data.PEAK_GFLOPS} and set(roof["bandwidth_gbs"]) == {data.BANDWIDTH_GBS}
    dw = roof.loc["/s2/dw/Conv"]
    assert (dw["attainable_gflops"], dw["efficiency"], dw["bound"]) == (50.0, pytest.approx(0.64), "memory")
    stem = roof.loc["/stem/Conv"]
    assert (stem["attainable_gflops"], stem["efficiency"], stem["bound"]) == (200.0, pytest.approx(0.5), "compute")
    assert roof.loc["/s2/dw/Conv", "category"] == "depthwise_conv"


def test_roofline_summary_per_context_and_category(results: Results) -> None:
    summary = analysis.roofline_summary(results)
    assert set(summary["device"]) == {"local"}
    cat = _by_category(summary)
    # Zero-FLOP categories sit next to the others: placed by bandwidth, every op memory-bound.
    assert cat["ops"].to_dict() == {
        "dense_conv": 1, "pointwise_conv": 1, "depthwise_conv": 1, "channel_shuffle": 2, "layout": 1
    }  # fmt: skip
    assert cat["memory_bound"].to_dict() == {
        "dense_conv": 0, "pointwise_conv": 0, "depthwise_conv": 1, "channel_shuffle": 2, "layout": 1
    }  # fmt: skip
    assert cat.loc["layout", "median_achieved_gbs"] == pytest.approx(400.0)  # 800 kB in 2 µs
    assert cat.loc["layout", "median_intensity"] == 0.0
    assert cat.loc["depthwise_conv", "median_intensity"] == pytest.approx(0.5)
    assert cat.loc["pointwise_conv", "median_achieved_gflops"] == pytest.approx(120.0)
    assert cat.loc["pointwise_conv", "median_efficiency"] == pytest.approx(120.0 / 200.0)  # at the ridge
    assert set(cat["peak_gflops"]) == {data.PEAK_GFLOPS}


def test_context_overview_counts_models_points_and_noisy(store: Store, tmp_path: Path) -> None:
    accounts = data.populate(store, tmp_path)
    noisy = int(store.points_frame()["point_id"].iloc[0])
    store.complete_point(noisy, {"n": 100, "median_ms": 2.0, "noisy": True, "noisy_reasons": ["cv 0.2 > 0.05"]})
    overview = analysis.context_overview(analysis.load(store, accounts=accounts)).set_index("device")
    local, pi4 = overview.loc["local"], overview.loc["pi4"]
    assert (local["models"], local["points"], local["noisy"]) == (3 + len(data.GUIDELINE_POINTS), 20, 1)
    assert (pi4["models"], pi4["points"], pi4["noisy"], pi4["runtime_version"]) == (4, 4, 0, "2.16.1")
    assert local["input_shapes"] == "1x32x56x56, 1x3x224x224"


def test_guidelines_next_to_the_papers_direction(results: Results) -> None:
    frame = analysis.guidelines(results)
    assert len(frame) == len(data.GUIDELINE_POINTS)
    verdicts = analysis.guideline_verdicts(results).set_index("experiment")
    assert verdicts["agrees"].to_dict() == {"G1": True, "G2": False, "G3": True, "G4": True}
    assert verdicts.loc["G1", "fastest"] == "ratio=1:1"
    assert verdicts.loc["G4", "fastest"] == "relu=False,shortcut=False"
    assert "grows with groups" in verdicts.loc["G2", "expected"]
    g3 = frame[frame["experiment"] == "G3"]
    assert list(g3["variant"].str.removeprefix("variant=")) == [
        "1-fragment",
        "2-fragment-series",
        "4-fragment-series",
        "2-fragment-parallel",
        "4-fragment-parallel",
    ]
    g4 = frame[frame["experiment"] == "G4"].set_index("variant")
    assert g4["relative"].to_dict() == pytest.approx(
        {
            "relu=True,shortcut=True": 1.0,
            "relu=False,shortcut=True": 0.9,
            "relu=True,shortcut=False": 0.85,
            "relu=False,shortcut=False": 0.75,
        }
    )
    assert set(frame["setup"]) == {"setting=arm,width=1", "channels=64", "channels=32"}


def test_guideline_verdict_rules() -> None:
    g1, g2, g3, g4 = analysis.GUIDELINES
    assert g1.agrees({"ratio=1:1": 1.2, "ratio=1:2": 1.1}) is False
    assert g1.agrees({"ratio=1:2": 1.1}) is None
    assert g2.agrees({"groups=8": 3.0, "groups=1": 1.0, "groups=2": 2.0}) is True
    assert g3.agrees({"variant=1-fragment": 1.0, "variant=4-fragment-parallel": 0.9}) is False
    assert g4.agrees({"relu=True,shortcut=True": 2.0, "relu=False,shortcut=True": 2.1}) is False


def test_missing_profiles_are_listed(results: Results) -> None:
    missing = analysis.missing_profiles(results)
    assert "mobilenet_v2[alpha=0.5]" in set(missing["model_label"])
    assert data.SHUFFLENET_LABEL not in set(missing["model_label"])
    assert len(missing) == len(results.points) - 2


def test_empty_database_gives_empty_frames(store: Store) -> None:
    results = analysis.load(store)
    assert results.contexts() == []
    for frame in (
        analysis.latency_vs_macs(results),
        analysis.fits(results),
        analysis.residuals(results),
        analysis.op_breakdown(results),
        analysis.block_breakdown(results),
        analysis.category_gaps(results),
        analysis.roofline(results),
        analysis.guidelines(results),
        analysis.guideline_verdicts(results),
        analysis.headline_frame(results),
        analysis.roofline_summary(results),
        analysis.data_movement(results),
        analysis.context_overview(results),
    ):
        assert frame.empty
    assert analysis.headlines(results) == []


def test_load_reads_a_database_path_read_only(store: Store, tmp_path: Path) -> None:
    accounts = data.populate(store, tmp_path)
    results = analysis.load(tmp_path / "results.db", accounts=accounts)
    assert results.source == str(tmp_path / "results.db")
    assert results.contexts() == [CTX_A, CTX_B]


def _tiny_shuffle_onnx(path: Path) -> None:
    """A 1×1 conv 4→4 on 8×8 (1024 MACs) then a channel shuffle: reshape, transpose, reshape."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    inits = [
        numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w"),
        numpy_helper.from_array(np.array([1, 2, 2, 8, 8], np.int64), "s1"),
        numpy_helper.from_array(np.array([1, 4, 8, 8], np.int64), "s2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="/pw/Conv"),
        helper.make_node("Reshape", ["c", "s1"], ["r"], name="/shuffle/Reshape"),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4], name="/shuffle/Transpose"),
        helper.make_node("Reshape", ["t", "s2"], ["y"], name="/shuffle/Reshape_1"),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_real_graph_account_of_an_onnx_file_joins_profiled_nodes(store: Store, tmp_path: Path) -> None:
    art = data.artifact(tmp_path, "shufflenet_v2", (("scale", 0.5),), Format.ONNX, (1, 4, 8, 8))
    _tiny_shuffle_onnx(art.path)
    run = store.start_run("t", "")
    store.upsert_device("local", "local", {})
    store.upsert_artifact(art, macs=1024, params_count=16, **zoo_names(art))
    point = store.ensure_point(run, art.sha256, "local", "onnxruntime", 1, runtime_version="1.20.1")
    store.complete_point(point, {"n": 10, "median_ms": 0.02})
    times = {"/pw/Conv": 10.0, "/shuffle/Reshape": 1.0, "/shuffle/Transpose": 6.0, "/shuffle/Reshape_1": 1.0}
    store.add_op_profile(point, [OpTime(n, n.rsplit("/", 1)[1].rstrip("_1"), us) for n, us in times.items()])
    results = analysis.load(store)  # the default account: harness.proxies.account on the artifact's file
    assert results.account_errors == {}
    cat = _by_category(analysis.op_breakdown(results))
    assert cat.loc["pointwise_conv", "flops"] == 2 * 1024  # 1 MAC = 2 FLOPs
    # The whole reshape → transpose → reshape is the shuffle, found in the graph by its tensors.
    assert cat.loc["channel_shuffle", ["flops_share", "time_share"]].tolist() == pytest.approx([0.0, 8 / 18])
    assert cat.loc["channel_shuffle", "n_ops"] == 3
    roof = analysis.roofline(results).iloc[0]
    assert roof["node_name"] == "/pw/Conv"
    assert roof["achieved_gflops"] == pytest.approx(2048 / 10e-6 / 1e9)
    assert roof["intensity"] == pytest.approx(2048 / (1024 + 1024 + 64))  # read + written + weights


def test_flop_gap_claims_are_computed_from_the_frames(results: Results) -> None:
    from harness.analysis.claims import flop_gap_claims
    from harness.report.flop_gap import flop_gap_markdown

    claims = flop_gap_claims(results)
    assert (claims.models, claims.families, claims.guideline_variants) == (7, 4, len(data.GUIDELINE_POINTS))
    [layout] = claims.layout
    assert (layout.model, layout.shuffle, layout.layout) == (data.SHUFFLENET_LABEL, pytest.approx(0.13), 0.02)
    assert layout.flop_ops == pytest.approx(0.85)  # dense 40% + pointwise 20% + depthwise 25% of the node time
    [dw] = claims.depthwise
    assert dw.ratio == pytest.approx(2.5)  # 25% of time for 10% of FLOPs
    assert claims.overhead == ((data.SHUFFLENET_LABEL, pytest.approx(0.025)),)
    assert claims.inversion is None  # context A's latency is exactly proportional to MACs
    assert claims.roof == (data.PEAK_GFLOPS, data.BANDWIDTH_GBS)
    assert claims.depthwise_intensity == (pytest.approx(0.5), pytest.approx(0.5))
    assert [g.experiment for g in claims.guidelines] == ["G1", "G2", "G3", "G4"]
    text = flop_gap_markdown(claims)
    assert all(len(line) <= 116 for line in text.splitlines())
    text = " ".join(text.split())  # unwrapped
    assert "**Depthwise convs: 2.5×–2.5× their FLOP share in time**" in text
    assert f"`{data.SHUFFLENET_LABEL}` 15.0% (shuffle 13.0%, layout 2.0%) vs 85.0% on ops with FLOPs" in text
    assert "on x86_64." in text  # the device's facts hold only its CPU: nothing else is made up


def test_a_finding_the_database_lacks_leaves_out_its_bullet_and_only_it(results: Results) -> None:
    from dataclasses import replace

    from harness.analysis.claims import flop_gap_claims
    from harness.report.flop_gap import FINDINGS, flop_gap_markdown

    claims = flop_gap_claims(results)
    bullets = [line for line in flop_gap_markdown(claims).splitlines() if line.startswith("- ")]
    assert len(FINDINGS) == 6  # MACs, layout, depthwise, overhead, runtimes side by side, guidelines
    assert len(bullets) == 5  # no model of this database is measured on three runtimes: no runtimes bullet
    bare = replace(claims, layout=(), depthwise=(), overhead=(), guidelines=())
    lines = flop_gap_markdown(bare).splitlines()
    assert [line for line in lines if line.startswith("- ")] == [bullets[0]]  # the MACs fit stays
    assert lines[0].startswith(f"Measured: {claims.models} models of {claims.families} families") and lines[1] == ""
