"""The roofline: every profiled op placed by arithmetic intensity and achieved throughput under its device's roof.

Ops with no FLOPs (a channel shuffle, layout conversions, reshapes and concats) have no place on a FLOP roofline,
but they still move bytes: :func:`data_movement` gives each its achieved bandwidth against the device's calibrated
one, and :func:`roofline_summary` lists their categories next to the others'. Guideline blocks are left out
unless ``include_guidelines`` (they are single-block stacks, not models).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.context import CONTEXT
from harness.analysis.fits import FIT_EXCLUDED_FAMILIES
from harness.analysis.results import Results
from harness.proxies.categories import Category

# Which op of which point a row is, in every per-op frame here.
_OP_ROW = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model_label",
    "input_shape",
    "node_name",
    "op_type",
    "category",
)
ROOFLINE_COLUMNS = (
    *_OP_ROW,
    "flops",
    "bytes",
    "intensity",
    "time_us",
    "achieved_gflops",
    "peak_gflops",
    "bandwidth_gbs",
    "attainable_gflops",
    "efficiency",
    "bound",
)


def _profiled_ops(results: Results, include_guidelines: bool) -> pd.DataFrame:
    """Profiled ops joined to their graph-account FLOPs and bytes (guideline blocks out unless asked)."""
    prof = results.op_profiles
    if not include_guidelines:
        prof = prof[~prof["family"].isin(FIT_EXCLUDED_FAMILIES)]
    acc = results.accounts[["artifact_sha", "node_name", "flops", "bytes", "intensity"]].drop_duplicates(
        ["artifact_sha", "node_name"]
    )
    joined = prof.merge(acc, on=["artifact_sha", "node_name"], how="inner")
    # An ExecuTorch program's account is its model's ONNX graph (other node names): a row mapped to a graph node
    # carries the node's module path, so join it on (module path, category) where that names one account op.
    keys = ["artifact_sha", "module_path", "category"]
    by_module = results.accounts.dropna(subset=["module_path"])
    by_module = by_module[by_module["module_path"] != ""].drop_duplicates(keys, keep=False)
    named = set(zip(joined["point_id"], joined["node_name"], strict=True))
    unnamed = pd.Series(
        [(p, n) not in named for p, n in zip(prof["point_id"], prof["node_name"], strict=True)], index=prof.index
    )
    rest = prof[(prof["runtime"] == "executorch") & unnamed]
    extra = rest.merge(by_module[[*keys, "flops", "bytes", "intensity"]], on=keys, how="inner")
    return pd.concat([joined, extra], ignore_index=True) if not extra.empty else joined


def _with_calibration(frame: pd.DataFrame, results: Results) -> pd.DataFrame:
    cal = results.calibrations
    if cal.empty:
        frame["peak_gflops"] = np.nan
        frame["bandwidth_gbs"] = np.nan
    else:
        cal = cal[["device", "runtime", "threads", "peak_gflops", "bandwidth_gbs"]].astype({"threads": "int64"})
        frame = frame.merge(cal, on=["device", "runtime", "threads"], how="left")
    frame["peak_gflops"] = frame["peak_gflops"].astype("float64")
    frame["bandwidth_gbs"] = frame["bandwidth_gbs"].astype("float64")
    return frame


def roofline(results: Results, *, include_guidelines: bool = False) -> pd.DataFrame:
    """Every profiled op with FLOPs and bytes from the graph account: arithmetic intensity (FLOPs/byte), achieved
    GFLOP/s (``flops / time``) and, where the device/runtime/threads is calibrated, the attainable
    ``min(peak, intensity·bandwidth)``, the efficiency achieved/attainable and whether the op is memory- or
    compute-bound. Ops with no FLOPs (shuffle, reshape) have no place on a roofline and are left out."""
    if results.op_profiles.empty or results.accounts.empty:
        return pd.DataFrame(columns=list(ROOFLINE_COLUMNS))
    frame = _profiled_ops(results, include_guidelines)
    frame = frame[(frame["flops"] > 0) & (frame["time_us"] > 0)].copy()
    frame["achieved_gflops"] = frame["flops"] / frame["time_us"] / 1e3
    frame = _with_calibration(frame, results)
    memory_roof = frame["intensity"] * frame["bandwidth_gbs"]
    frame["attainable_gflops"] = np.fmin(frame["peak_gflops"], memory_roof)
    frame.loc[frame["peak_gflops"].isna() | memory_roof.isna(), "attainable_gflops"] = np.nan
    frame["efficiency"] = frame["achieved_gflops"] / frame["attainable_gflops"]
    bound = pd.Series(np.where(memory_roof < frame["peak_gflops"], "memory", "compute"), index=frame.index)
    frame["bound"] = bound.where(frame["attainable_gflops"].notna(), None)
    return frame.sort_values(["point_id", "node_name"]).reset_index(drop=True)[list(ROOFLINE_COLUMNS)]


MOVEMENT_COLUMNS = (
    *_OP_ROW,
    "bytes",
    "time_us",
    "achieved_gbs",
    "bandwidth_gbs",
    "bandwidth_efficiency",
)


def data_movement(results: Results, *, include_guidelines: bool = False) -> pd.DataFrame:
    """Every profiled op with zero FLOPs that moves bytes (channel shuffle, layout conversions, reshapes, concats,
    pads): bytes moved (from the graph account; a runtime's reorders from the tensor they convert), achieved
    GB/s = bytes / time and, where calibrated, that over the device's bandwidth."""
    if results.op_profiles.empty or results.accounts.empty:
        return pd.DataFrame(columns=list(MOVEMENT_COLUMNS))
    frame = _profiled_ops(results, include_guidelines)
    frame = frame[(frame["flops"] == 0) & (frame["bytes"] > 0) & (frame["time_us"] > 0)].copy()
    frame["achieved_gbs"] = frame["bytes"] / frame["time_us"] / 1e3
    frame = _with_calibration(frame, results)
    frame["bandwidth_efficiency"] = frame["achieved_gbs"] / frame["bandwidth_gbs"]
    return frame.sort_values(["point_id", "node_name"]).reset_index(drop=True)[list(MOVEMENT_COLUMNS)]


ROOFLINE_SUMMARY_COLUMNS = (
    *CONTEXT,
    "category",
    "ops",
    "median_intensity",
    "median_achieved_gflops",
    "median_achieved_gbs",
    "peak_gflops",
    "bandwidth_gbs",
    "median_efficiency",
    "memory_bound",
)


def roofline_summary(
    results: Results,
    frame: pd.DataFrame | None = None,
    movement: pd.DataFrame | None = None,
    *,
    include_guidelines: bool = False,
) -> pd.DataFrame:
    """Per context and op category: how many ops, their median intensity, achieved GFLOP/s and GB/s, the
    context's roof, the median efficiency and how many ops sit under the memory roof. Categories with FLOPs come
    from :func:`roofline` (efficiency against the attainable GFLOP/s); zero-FLOP categories from
    :func:`data_movement` (intensity 0, efficiency against the bandwidth, every op memory-bound)."""
    frame = roofline(results, include_guidelines=include_guidelines) if frame is None else frame
    movement = data_movement(results, include_guidelines=include_guidelines) if movement is None else movement
    parts = []
    if not frame.empty:
        with_gbs = frame.assign(achieved_gbs=frame["bytes"] / frame["time_us"] / 1e3)
        parts.append(
            with_gbs.groupby([*CONTEXT, "category"], as_index=False, dropna=False).agg(
                ops=("node_name", "count"),
                median_intensity=("intensity", "median"),
                median_achieved_gflops=("achieved_gflops", "median"),
                median_achieved_gbs=("achieved_gbs", "median"),
                peak_gflops=("peak_gflops", "first"),
                bandwidth_gbs=("bandwidth_gbs", "first"),
                median_efficiency=("efficiency", "median"),
                memory_bound=("bound", lambda b: int((b == "memory").sum())),
            )
        )
    if not movement.empty:
        moves = movement.groupby([*CONTEXT, "category"], as_index=False, dropna=False).agg(
            ops=("node_name", "count"),
            median_achieved_gbs=("achieved_gbs", "median"),
            bandwidth_gbs=("bandwidth_gbs", "first"),
            median_efficiency=("bandwidth_efficiency", "median"),
        )
        cal = results.calibrations
        peaks = (
            cal[["device", "runtime", "threads", "peak_gflops"]].astype({"threads": "int64"})
            if not cal.empty
            else pd.DataFrame(columns=["device", "runtime", "threads", "peak_gflops"])
        )
        moves = moves.merge(peaks, on=["device", "runtime", "threads"], how="left")
        moves = moves.assign(median_intensity=0.0, median_achieved_gflops=0.0, memory_bound=moves["ops"])
        parts.append(moves)
    if not parts:
        return pd.DataFrame(columns=list(ROOFLINE_SUMMARY_COLUMNS))
    summary = pd.concat(parts, ignore_index=True)
    order = {c.value: i for i, c in enumerate(Category)}
    summary["_order"] = summary["category"].map(lambda c: order.get(c, len(order)))
    summary = summary.sort_values([*CONTEXT, "_order"], kind="stable").reset_index(drop=True)
    summary["peak_gflops"] = summary["peak_gflops"].astype("float64")
    return summary[list(ROOFLINE_SUMMARY_COLUMNS)]
