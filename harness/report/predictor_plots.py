"""Figures of the latency predictor: predicted vs measured per method (±10% band, one colour per family), and the
per-kernel-type error. Drawn from :mod:`harness.predict.evaluate`'s frames; Agg canvas, no display needed."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.plots import NoData, _colors, _figure

METHOD_TITLES = {"predictor": "kernel predictor", "macs_linear": "linear in MACs", "roofline": "roofline sum"}


def predicted_vs_measured(evaluation: pd.DataFrame, title: str) -> Figure:
    """One panel per method (held-out predictions only): the diagonal, the ±10% band, models coloured by family."""
    if evaluation.empty:
        raise NoData("no evaluation: run 'flopgap predictor build' for this device and runtime")
    methods = [m for m in METHOD_TITLES if evaluation[f"{m}_ms"].notna().any()]
    fig = _figure(4.2 * len(methods), 4.2)
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    colors = _colors(sorted(evaluation["family"].unique()))
    low = float(evaluation["measured_ms"].min()) * 0.6
    high = float(evaluation["measured_ms"].max()) * 1.6
    line = np.geomspace(low, high, 50)
    for ax, method in zip(axes, methods, strict=True):
        ax.fill_between(line, line * 0.9, line * 1.1, color="#dddddd", label="±10%")
        ax.plot(line, line, color="#888888", linewidth=0.8)
        for family, part in evaluation.groupby("family"):
            ax.scatter(part["measured_ms"], part[f"{method}_ms"], s=22, color=colors[str(family)], label=str(family))
        errors = evaluation[f"{method}_error"].dropna().abs()
        ax.set_title(f"{METHOD_TITLES[method]}: {float((errors <= 0.10).mean()):.0%} within ±10%", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xlabel("measured p10 (ms)")
    axes[0].set_ylabel("predicted, family held out (ms)")
    axes[-1].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    return fig


def kernel_type_error(table: pd.DataFrame, title: str) -> Figure:
    """Median |relative error| per kernel type (held-out kernels), bars annotated with the type's time share."""
    if table.empty:
        raise NoData("no kernel rows: run 'flopgap predictor build' for this device and runtime")
    fig = _figure(7.0, 0.35 * len(table) + 1.2)
    ax = fig.subplots()
    order = table.iloc[::-1]
    ax.barh(order["type"], order["median_abs_error"] * 100, color="#4c72b0")
    for y, (err, share) in enumerate(zip(order["median_abs_error"], order["time_share"], strict=True)):
        ax.text(err * 100, y, f"  {share:.0%} of time", va="center", fontsize=7)
    ax.set_xlabel("median |error| of a held-out kernel (%)")
    ax.set_title(title, fontsize=10)
    return fig
