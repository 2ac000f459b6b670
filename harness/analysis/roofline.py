"""The roofline: every profiled op placed by arithmetic intensity and achieved throughput under its device's roof."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.context import CONTEXT
from harness.analysis.results import Results

ROOFLINE_COLUMNS = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model_label",
    "input_shape",
    "node_name",
    "op_type",
    "category",
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


def roofline(results: Results) -> pd.DataFrame:
    """Every profiled op with FLOPs and bytes from the graph account: arithmetic intensity (FLOPs/byte), achieved
    GFLOP/s (``flops / time``) and, where the device/runtime/threads is calibrated, the attainable
    ``min(peak, intensity·bandwidth)``, the efficiency achieved/attainable and whether the op is memory- or
    compute-bound. Ops with no FLOPs (shuffle, reshape) have no place on a roofline and are left out."""
    prof = results.op_profiles
    if prof.empty or results.accounts.empty:
        return pd.DataFrame(columns=list(ROOFLINE_COLUMNS))
    acc = results.accounts[["artifact_sha", "node_name", "flops", "bytes", "intensity"]].drop_duplicates(
        ["artifact_sha", "node_name"]
    )
    frame = prof.merge(acc, on=["artifact_sha", "node_name"], how="inner")
    frame = frame[(frame["flops"] > 0) & (frame["time_us"] > 0)].copy()
    frame["achieved_gflops"] = frame["flops"] / frame["time_us"] / 1e3
    cal = results.calibrations
    if cal.empty:
        frame["peak_gflops"] = np.nan
        frame["bandwidth_gbs"] = np.nan
    else:
        cal = cal[["device", "runtime", "threads", "peak_gflops", "bandwidth_gbs"]].astype({"threads": "int64"})
        frame = frame.merge(cal, on=["device", "runtime", "threads"], how="left")
    frame["peak_gflops"] = frame["peak_gflops"].astype("float64")
    frame["bandwidth_gbs"] = frame["bandwidth_gbs"].astype("float64")
    memory_roof = frame["intensity"] * frame["bandwidth_gbs"]
    frame["attainable_gflops"] = np.fmin(frame["peak_gflops"], memory_roof)
    frame.loc[frame["peak_gflops"].isna() | memory_roof.isna(), "attainable_gflops"] = np.nan
    frame["efficiency"] = frame["achieved_gflops"] / frame["attainable_gflops"]
    bound = pd.Series(np.where(memory_roof < frame["peak_gflops"], "memory", "compute"), index=frame.index)
    frame["bound"] = bound.where(frame["attainable_gflops"].notna(), None)
    return frame.sort_values(["point_id", "node_name"]).reset_index(drop=True)[list(ROOFLINE_COLUMNS)]


ROOFLINE_SUMMARY_COLUMNS = (
    *CONTEXT,
    "category",
    "ops",
    "median_intensity",
    "median_achieved_gflops",
    "peak_gflops",
    "bandwidth_gbs",
    "median_efficiency",
    "memory_bound",
)


def roofline_summary(results: Results, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per context and op category, from :func:`roofline`: how many ops, their median intensity, achieved
    GFLOP/s and efficiency, the context's roof, and how many ops sit under the memory roof."""
    frame = roofline(results) if frame is None else frame
    if frame.empty:
        return pd.DataFrame(columns=list(ROOFLINE_SUMMARY_COLUMNS))
    summary = frame.groupby([*CONTEXT, "category"], as_index=False, dropna=False).agg(
        ops=("node_name", "count"),
        median_intensity=("intensity", "median"),
        median_achieved_gflops=("achieved_gflops", "median"),
        peak_gflops=("peak_gflops", "first"),
        bandwidth_gbs=("bandwidth_gbs", "first"),
        median_efficiency=("efficiency", "median"),
        memory_bound=("bound", lambda b: int((b == "memory").sum())),
    )
    return summary[list(ROOFLINE_SUMMARY_COLUMNS)]
