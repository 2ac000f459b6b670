"""Where a model's FLOPs are against where its time goes: per op category, per TFLite block, and the
categories the FLOP proxy underestimates most.

A category's FLOPs come from the graph account (:mod:`harness.analysis.accounts`), its time from the runtime's op
profile; categories are :class:`harness.proxies.categories.Category`, in that order.

Denominators: ``time_share`` is a share of the **sum of the profiled node (or block) times** of the point
(``profiled_us``), so a point's shares sum to 1. That sum is not the model's latency: ORT's per-node times carry
the profiler's own per-node overhead and block times their boundary costs, so every breakdown also gives the
point's whole-model median (``median_us``, the sweep's timing) and ``profiler_overhead`` = profiled_us /
median_us. ``time_share_of_median`` = time_us / median_us reads a category against the measured latency instead.
Guideline blocks (family ``guideline``) are single-block stacks, not models: they are left out unless
``include_guidelines``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.context import CONTEXT
from harness.analysis.fits import FIT_EXCLUDED_FAMILIES
from harness.analysis.results import POINT_INFO, Results
from harness.proxies.categories import Category

# The category ``harness.measure.profile`` gives TFLite profile rows: one per block sub-model (module path), not
# per op, so such a point has no per-category time.
BLOCK = "block"

# FLOPs against measured time, as every breakdown (by category, by block) and its table show them.
SHARE_COLUMNS = (
    "flops",
    "flops_share",
    "time_us",
    "time_share",
    "time_share_of_median",
    "profiled_us",
    "median_us",
    "profiler_overhead",
)
BREAKDOWN_COLUMNS = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model_label",
    "family",
    "input_shape",
    "category",
    *SHARE_COLUMNS,
    "n_ops",
    "n_profiled",
)
TIME_SHARE_BASIS = "share of the summed profiled node times"
OVERHEAD_NOTE = "profiler overhead = summed node times / whole-model median"


def _models_only(results: Results, include_guidelines: bool) -> pd.DataFrame:
    """The profile rows of ``results``, without guideline blocks unless asked for."""
    prof = results.op_profiles
    if include_guidelines or prof.empty:
        return prof
    return prof[~prof["family"].isin(FIT_EXCLUDED_FAMILIES)]


def _with_overhead(frame: pd.DataFrame, results: Results) -> pd.DataFrame:
    """Add ``profiled_us`` (per point), the point's ``median_us``, ``profiler_overhead`` and
    ``time_share_of_median``."""
    medians = results.points.set_index("point_id")["median_ms"].astype("float64") * 1e3
    frame["profiled_us"] = frame.groupby("point_id")["time_us"].transform("sum")
    frame["median_us"] = frame["point_id"].map(medians).astype("float64")
    frame["profiler_overhead"] = frame["profiled_us"] / frame["median_us"]
    frame["time_share_of_median"] = frame["time_us"] / frame["median_us"]
    return frame


def op_breakdown(results: Results, *, include_guidelines: bool = False) -> pd.DataFrame:
    """Per profiled point and op category: FLOPs and their share of the model's FLOPs, next to measured time, its
    share of the summed profiled node times and of the whole-model median, and the point's profiler overhead
    (see the module's note on denominators). Shares within a point sum to 1; FLOP columns are NaN when the
    artifact has no graph account (see ``Results.account_errors``). Points without an op profile are not here:
    see :func:`missing_profiles`."""
    prof = _models_only(results, include_guidelines)
    prof = prof[~prof["point_id"].isin(block_profiled(results))]
    if prof.empty:
        return pd.DataFrame(columns=list(BREAKDOWN_COLUMNS))
    info = prof.drop_duplicates("point_id")[["point_id", "artifact_sha", *POINT_INFO[2:], *CONTEXT]]
    time = prof.groupby(["point_id", "category"], as_index=False).agg(
        time_us=("time_us", "sum"), n_profiled=("node_name", "count")
    )
    time["time_share"] = time["time_us"] / time.groupby("point_id")["time_us"].transform("sum")
    acc = results.accounts.groupby(["artifact_sha", "category"], as_index=False).agg(
        flops=("flops", "sum"), n_ops=("node_name", "count")
    )
    acc["flops_share"] = acc["flops"] / acc.groupby("artifact_sha")["flops"].transform("sum")
    acc = info[["point_id", "artifact_sha"]].merge(acc, on="artifact_sha", how="inner").drop(columns="artifact_sha")
    both = time.merge(acc, on=["point_id", "category"], how="outer")
    both = both.merge(info, on="point_id", how="left")
    accounted = both["artifact_sha"].isin(results.accounts["artifact_sha"].unique())
    # With an account, a category it does not have holds 0 FLOPs; without one, the FLOPs are unknown.
    for column in ("flops", "flops_share", "n_ops"):
        both.loc[accounted, column] = both.loc[accounted, column].fillna(0.0)
    for column in ("time_us", "time_share", "n_profiled"):
        both[column] = both[column].fillna(0.0)
    both[["n_ops", "n_profiled"]] = both[["n_ops", "n_profiled"]].astype("Int64")
    order = {c.value: i for i, c in enumerate(Category)}
    both["_order"] = both["category"].map(lambda c: order.get(c, len(order)))
    both = both.sort_values(["point_id", "_order", "category"]).reset_index(drop=True)
    return _with_overhead(both, results)[list(BREAKDOWN_COLUMNS)]


def block_profiled(results: Results) -> set[int]:
    """Points whose profile is per block (TFLite sub-models), not per op: no per-category time."""
    prof = results.op_profiles
    if prof.empty:
        return set()
    blocks = prof.groupby("point_id")["category"].agg(lambda c: bool((c == BLOCK).all()))
    return {int(p) for p, is_block in blocks.items() if is_block}


BLOCK_COLUMNS = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model_label",
    "input_shape",
    "block",
    "op_type",
    *SHARE_COLUMNS,
)
OUTSIDE_BLOCKS = "(outside the timed blocks)"
_OVERHEAD_COLUMNS = ("time_share_of_median", "profiled_us", "median_us", "profiler_overhead")


def block_breakdown(results: Results, *, include_guidelines: bool = False) -> pd.DataFrame:
    """Per block-profiled point (TFLite) and block: share of the model's FLOPs vs share of the summed block times
    (with the whole-model median and the profiler overhead, as :func:`op_breakdown`).

    A block's FLOPs are those of the graph-account ops whose module path is the block's or under it; the ops
    under no timed block get one row named :data:`OUTSIDE_BLOCKS` (no time). FLOP columns are NaN when the
    artifact has no account or the account has no module paths.
    """
    prof = _models_only(results, include_guidelines)
    prof = prof[prof["point_id"].isin(block_profiled(results))]
    if prof.empty:
        return pd.DataFrame(columns=list(BLOCK_COLUMNS))
    rows: list[dict[str, Any]] = []
    for _point_id, group in prof.groupby("point_id", sort=True):
        acc = results.accounts[results.accounts["artifact_sha"] == group["artifact_sha"].iloc[0]]
        paths = acc["module_path"].fillna("").astype(str)
        usable = not acc.empty and bool((paths != "").any())
        total_flops = float(acc["flops"].sum()) if usable else math.nan
        total_time = float(group["time_us"].sum())
        covered = pd.Series(False, index=acc.index)
        base = {c: group[c].iloc[0] for c in ("point_id", *CONTEXT, "runtime_version", "model_label", "input_shape")}
        for record in group.to_dict("records"):
            block = str(record["module_path"] or record["node_name"])
            inside = (paths == block) | paths.str.startswith(block + ".")
            covered |= inside
            flops = float(acc.loc[inside, "flops"].sum()) if usable else math.nan
            rows.append(
                {
                    **base,
                    "block": block,
                    "op_type": record["op_type"],
                    "flops": flops,
                    "flops_share": flops / total_flops if total_flops else math.nan,
                    "time_us": record["time_us"],
                    "time_share": record["time_us"] / total_time if total_time else math.nan,
                }
            )
        if usable:
            rest = float(acc.loc[~covered, "flops"].sum())
            rows.append(
                {
                    **base,
                    "block": OUTSIDE_BLOCKS,
                    "op_type": "",
                    "flops": rest,
                    "flops_share": rest / total_flops if total_flops else math.nan,
                    "time_us": 0.0,
                    "time_share": 0.0,
                }
            )
    frame = pd.DataFrame(rows, columns=[c for c in BLOCK_COLUMNS if c not in _OVERHEAD_COLUMNS])
    return _with_overhead(frame, results)[list(BLOCK_COLUMNS)]


def missing_profiles(results: Results) -> pd.DataFrame:
    """Measured points that have no op profile: context and model, to say what to profile."""
    frame = results.points[~results.points["point_id"].isin(results.op_profiles["point_id"].unique())]
    columns = ["point_id", *CONTEXT, "runtime_version", "model", "params", "model_label", "input_shape"]
    return frame[columns].reset_index(drop=True)


def category_gaps(results: Results, breakdown: pd.DataFrame | None = None) -> pd.DataFrame:
    """Op categories the FLOP proxy underestimates most, per context, worst first.

    Per category: mean over profiled models of the FLOP share and the time share, ``gap`` = time share − FLOP
    share (what FLOPs miss, as a fraction of the model's time) and ``residual`` = time share / FLOP share
    (measured time over the time its FLOPs predict; infinite for zero-FLOP ops such as a channel shuffle).
    """
    frame = op_breakdown(results) if breakdown is None else breakdown
    frame = frame[frame["flops_share"].notna()]
    columns = [*CONTEXT, "category", "models", "flops_share", "time_share", "gap", "residual"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    out = frame.groupby([*CONTEXT, "category"], as_index=False).agg(
        models=("point_id", "nunique"), flops_share=("flops_share", "mean"), time_share=("time_share", "mean")
    )
    out["gap"] = out["time_share"] - out["flops_share"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = out["time_share"] / out["flops_share"]
    out["residual"] = ratio.where(out["time_share"] > 0, np.nan)
    return out.sort_values("gap", ascending=False, kind="stable").reset_index(drop=True)[columns]
