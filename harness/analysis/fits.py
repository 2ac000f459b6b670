"""Latency against MACs: the log-log fit per context, and how well MACs rank the models."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from harness.analysis.context import CONTEXT, joined
from harness.analysis.results import Results

# Models the latency-vs-MACs fit leaves out: guideline blocks are single-block stacks at matched FLOPs, not
# networks, and would pull the fit of the model zoo towards their own regime.
FIT_EXCLUDED_FAMILIES: tuple[str, ...] = ("guideline",)

_LATENCY_COLUMNS = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model",
    "model_label",
    "family",
    "input_shape",
    "macs",
    "params_count",
    "median_ms",
    "ci_low_ms",
    "ci_high_ms",
    "noisy",
)


def latency_vs_macs(results: Results, *, include_guidelines: bool = False) -> pd.DataFrame:
    """One row per measured point that has MACs: context, model, family, MACs, median and its 95% CI."""
    frame = results.points
    frame = frame[frame["macs"].notna() & (frame["macs"] > 0) & (frame["median_ms"] > 0)]
    if not include_guidelines:
        frame = frame[~frame["family"].isin(FIT_EXCLUDED_FAMILIES)]
    out = frame[list(_LATENCY_COLUMNS)].copy()
    out["macs"] = out["macs"].astype("float64")
    return out.sort_values([*CONTEXT, "macs"]).reset_index(drop=True)


@dataclass(frozen=True)
class LogLogFit:
    """``log10(latency) = slope·log10(MACs) + intercept``; R² on the log scale; ρ ranks MACs against latency."""

    slope: float
    slope_stderr: float  # standard error of the slope (0 with two points: a line through both)
    intercept: float
    r2: float
    spearman_rho: float


_UNDEFINED = LogLogFit(math.nan, math.nan, math.nan, math.nan, math.nan)


def fit_loglog(macs: Iterable[float], latency_ms: Iterable[float]) -> LogLogFit:
    """Least-squares fit of log latency on log MACs (:func:`scipy.stats.linregress`) and Spearman's ρ.

    Every figure is NaN with fewer than two distinct MACs; R² and ρ are NaN when every latency is the same.
    """
    x = np.log10(np.asarray(list(macs), dtype="float64"))
    y = np.log10(np.asarray(list(latency_ms), dtype="float64"))
    if len(x) < 2 or np.ptp(x) == 0:
        return _UNDEFINED
    line = stats.linregress(x, y)
    flat = np.ptp(y) == 0
    return LogLogFit(
        slope=float(line.slope),
        slope_stderr=float(line.stderr),
        intercept=float(line.intercept),
        r2=math.nan if flat else float(line.rvalue) ** 2,
        spearman_rho=math.nan if flat else float(stats.spearmanr(x, y).statistic),
    )


FIT_COLUMNS = (
    *CONTEXT,
    "runtime_version",
    "input_shapes",
    "n",
    "slope",
    "slope_stderr",
    "intercept",
    "r2",
    "spearman_rho",
)


def fits(results: Results) -> pd.DataFrame:
    """Per context: the log-log fit of median latency on MACs over ``n`` models (:class:`LogLogFit`'s columns).

    Latency ≈ 10^intercept · MACs^slope ms; a slope of 1 means latency proportional to MACs.
    """
    frame = latency_vs_macs(results)
    rows = []
    for key, group in frame.groupby(list(CONTEXT), sort=True):
        fit = fit_loglog(group["macs"], group["median_ms"])
        rows.append(
            {
                **dict(zip(CONTEXT, key, strict=True)),
                "runtime_version": joined(group["runtime_version"]),
                "input_shapes": joined(group["input_shape"]),
                "n": len(group),
                "slope": fit.slope,
                "slope_stderr": fit.slope_stderr,
                "intercept": fit.intercept,
                "r2": fit.r2,
                "spearman_rho": fit.spearman_rho,
            }
        )
    out = pd.DataFrame(rows, columns=list(FIT_COLUMNS))
    return out.astype({"threads": "int64", "n": "int64"}) if not out.empty else out
