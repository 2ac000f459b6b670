"""The figure of a sustained run: median latency, CPU frequency and temperatures per window on one shared time
axis, with the throttling start marked; one figure per sustained trial."""

from __future__ import annotations

import json
import math

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LATENCY_COLOR, FREQ_COLOR, THROTTLE_COLOR = "#dd8452", "#4c72b0", "#c44e52"


def timeline_figure(windows: pd.DataFrame, summary: pd.Series | None, title: str) -> Figure:
    """``windows``: one sustained trial's rows of ``Store.timelines_frame``; ``summary``: its row of
    ``Store.sustained_frame`` (or None). Three panels share the time axis: latency, frequency, temperature."""
    fig = Figure(figsize=(8, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    lat, freq, temp = fig.subplots(3, 1, sharex=True)
    mid = (windows["start_s"] + windows["end_s"]) / 2
    lat.plot(mid, windows["median_ms"], "o-", ms=2.5, lw=1, color=LATENCY_COLOR, label="median per window")
    if summary is not None and not _nan(summary.get("first_ms")):
        span = float(summary["span_s"])
        end = float(windows["end_s"].max())
        lat.hlines(float(summary["first_ms"]), 0, span, colors="k", lw=2, label=f"first {span:g}s")
        lat.hlines(float(summary["last_ms"]), end - span, end, colors="grey", lw=2, label=f"last {span:g}s")
    lat.set_ylabel("latency (ms)")
    lat.legend(fontsize=7, loc="best")
    khz = windows["cpu_khz_json"].map(json.loads)
    cores = sorted({c for row in khz for c in row}, key=int)
    for core in cores:
        freq.plot(mid, [row.get(core, math.nan) / 1e3 for row in khz], lw=1, label=f"cpu{core}")
    if not cores:
        freq.text(
            0.5, 0.5, "no CPU frequency readable on the device", ha="center", va="center", transform=freq.transAxes
        )
    freq.set_ylabel("frequency (MHz)")
    if 0 < len(cores) <= 8:
        freq.legend(fontsize=6, ncol=4, loc="best")
    temps = windows["temps_c_json"].map(json.loads)
    zones = sorted({z for row in temps for z in row})
    for zone in zones:
        temp.plot(mid, [row.get(zone, math.nan) for row in temps], lw=1, label=zone)
    if not zones:
        temp.text(
            0.5, 0.5, "no thermal zone readable on the device", ha="center", va="center", transform=temp.transAxes
        )
    temp.set_ylabel("temperature (°C)")
    temp.set_xlabel("time since the start of the sustained run (s)")
    if 0 < len(zones) <= 8:
        temp.legend(fontsize=6, ncol=2, loc="best")
    start = None if summary is None else summary.get("throttle_start_s")
    for ax in (lat, freq, temp):
        ax.grid(True, alpha=0.3)
        if start is not None and not _nan(start):
            ax.axvline(float(start), color=THROTTLE_COLOR, ls="--", lw=1)
    verdict = ""
    if summary is not None:
        verdict = f"throttled from {start:g}s" if summary.get("throttled") else "not throttled"
        if not _nan(summary.get("ratio")):
            verdict += f" · last/first {float(summary['ratio']):.3f}"
    fig.suptitle(f"Sustained run: {title}\n{verdict}", fontsize=10)
    return fig


def point_caption(point: pd.Series) -> str:
    """``mobilenet_v1[alpha=0.25] · device local · litert 2.3.0 · 1 thread · fp32 · input 1x224x224x3``."""
    threads = int(point["threads"])
    return (
        f"{point['model_label']} · device {point['device']} · {point['runtime']} {point.get('runtime_version') or ''}"
        f" · {threads} thread{'s' if threads != 1 else ''} · {point['precision']} · input {point['input_shape']}"
    )


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def _nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
