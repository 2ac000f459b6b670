"""The residual ranking: which models the FLOP proxy underestimates most, within each context."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.context import CONTEXT
from harness.analysis.fits import fits, latency_vs_macs
from harness.analysis.results import Results


def residuals(results: Results, fit_frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Models ranked by how much the FLOP proxy underestimates their latency, worst first.

    ``predicted_ms`` is the context's log-log fit at the model's MACs and ``residual = median_ms / predicted_ms``
    (above 1: slower than its MACs predict). ``rank`` is 1 for the worst model within its context.
    """
    fit_frame = fits(results) if fit_frame is None else fit_frame
    frame = latency_vs_macs(results)
    if frame.empty or fit_frame.empty:
        return frame.assign(predicted_ms=pd.Series(dtype="float64"), residual=pd.Series(dtype="float64"))
    merged = frame.merge(fit_frame[[*CONTEXT, "slope", "intercept"]], on=list(CONTEXT), how="inner")
    merged = merged[merged["slope"].notna()].copy()
    merged["predicted_ms"] = 10.0 ** (merged["intercept"] + merged["slope"] * np.log10(merged["macs"]))
    merged["residual"] = merged["median_ms"] / merged["predicted_ms"]
    merged["rank"] = merged.groupby(list(CONTEXT))["residual"].rank(ascending=False, method="first").astype("int64")
    merged = merged.drop(columns=["slope", "intercept"])
    return merged.sort_values("residual", ascending=False, kind="stable").reset_index(drop=True)
