"""The figure of a comparison: each matched point's B/A ratio of medians with its bootstrap 95% CI, on a log axis
around 1, slower points red, faster green; points without a CI (summary-only trials) drawn hollow."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SLOWER_COLOR, FASTER_COLOR, SAME_COLOR = "#c44e52", "#55a868", "#4c72b0"
_COLORS = {"slower": SLOWER_COLOR, "faster": FASTER_COLOR}


def ratio_figure(rows: pd.DataFrame, title: str, threshold: float) -> Figure:
    """``rows``: :attr:`harness.analysis.compare.Comparison.rows`."""
    height = 1.2 + 0.28 * max(1, len(rows))
    fig = Figure(figsize=(8, min(height, 40)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    for i, row in enumerate(rows.to_dict("records")):
        color = _COLORS.get(str(row["change"]), SAME_COLOR)
        if row["has_ci"]:
            err = [[row["ratio"] - row["ci_low"]], [row["ci_high"] - row["ratio"]]]
            ax.errorbar(row["ratio"], i, xerr=err, fmt="o", color=color, capsize=3, ms=4)
        else:
            ax.plot(row["ratio"], i, "o", mfc="none", color=color, ms=5)
    labels = [
        f"{r['model_label']} {r['runtime']} {r['precision']} t{r['threads']} @{r['device']}" for _, r in rows.iterrows()
    ]
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=1)
    ax.axvspan(1 - threshold, 1 + threshold, color="grey", alpha=0.15, label=f"±{threshold:.0%} threshold")
    ax.set_xscale("log")
    ax.set_xlabel("B / A (ratio of medians, 95% bootstrap CI; hollow: no CI, summary-only trials)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig
