"""Figures of the FLOP gap, one function per figure, each drawn from the frames of :mod:`harness.analysis`.

Every function returns a :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot, no display needed) whose
title states the device, runtime and version, threads, precision and input size. A figure whose data is absent
raises :class:`NoData` with one line saying what to run to get it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import harness.analysis as analysis
from devices.core.errors import FlopgapError
from harness.analysis import HOW_TO, Context, Results
from harness.proxies.categories import Category

FLOPS_COLOR = "#4c72b0"
TIME_COLOR = "#dd8452"
AGREE_COLOR, DISAGREE_COLOR, UNKNOWN_COLOR = "#55a868", "#c44e52", "#8c8c8c"


class NoData(FlopgapError):
    """A figure has nothing to draw; the message says what to run to get its data."""


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _summary(values: Iterable[object], limit: int = 3) -> str:
    seen = sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))})
    if not seen:
        return "unknown"
    shown = ", ".join(seen[:limit])
    return shown if len(seen) <= limit else f"{shown} (+{len(seen) - limit} more)"


def caption(context: Context, frame: pd.DataFrame) -> str:
    """``device pi4 · onnxruntime 1.20.1 · 4 threads · fp32 · input 1x3x224x224`` for the rows of ``frame``."""
    versions = _summary(frame["runtime_version"]) if "runtime_version" in frame else "unknown"
    inputs = _summary(frame["input_shape"]) if "input_shape" in frame else "unknown"
    threads = f"{context.threads} thread{'s' if context.threads != 1 else ''}"
    return f"device {context.device} · {context.runtime} {versions} · {threads} · {context.precision} · input {inputs}"


def _title(fig: Figure, what: str, context: Context, frame: pd.DataFrame) -> None:
    fig.suptitle(f"{what}\n{caption(context, frame)}", fontsize=10)


def _select(frame: pd.DataFrame, context: Context, missing: str) -> pd.DataFrame:
    sel = frame[context.mask(frame)] if not frame.empty else frame
    if sel.empty:
        raise NoData(f"{HOW_TO[missing]} (nothing for {context})")
    return sel


def _colors(keys: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if len(keys) > 10 else "tab10"]
    return {k: cmap(i % cmap.N) for i, k in enumerate(keys)}


def latency_vs_macs(
    results: Results, context: Context, *, frame: pd.DataFrame | None = None, fit_frame: pd.DataFrame | None = None
) -> Figure:
    """Median latency against MACs, log-log, one colour per family, 95% CI bars and the fitted line (R², ρ)."""
    frame = analysis.latency_vs_macs(results) if frame is None else frame
    sel = _select(frame, context, "points")
    fit_frame = analysis.fits(results) if fit_frame is None else fit_frame
    fig = _figure(8, 5.5)
    ax = fig.add_subplot()
    families = sorted(sel["family"].fillna("unknown").unique())
    colors = _colors(families)
    for family in families:
        part = sel[sel["family"].fillna("unknown") == family]
        low = (part["median_ms"] - part["ci_low_ms"]).clip(lower=0).fillna(0)
        high = (part["ci_high_ms"] - part["median_ms"]).clip(lower=0).fillna(0)
        ax.errorbar(
            part["macs"], part["median_ms"], yerr=[low, high], fmt="o", color=colors[family], label=family, capsize=2
        )
        for label, x, y in zip(part["model_label"], part["macs"], part["median_ms"], strict=True):
            ax.annotate(str(label), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    fit = fit_frame[context.mask(fit_frame)] if not fit_frame.empty else fit_frame
    if not fit.empty and not math.isnan(float(fit["slope"].iloc[0])):
        row = fit.iloc[0]
        xs = np.geomspace(sel["macs"].min(), sel["macs"].max(), 50)
        ax.plot(
            xs,
            10 ** (row["intercept"] + row["slope"] * np.log10(xs)),
            "k--",
            lw=1,
            label=(
                f"fit: slope {row['slope']:.2f} ± {row['slope_stderr']:.2f}, R² {row['r2']:.3f}, "
                f"ρ {row['spearman_rho']:.2f} (n={row['n']})"
            ),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MACs (multiply-accumulates)")
    ax.set_ylabel("median latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    _title(fig, "Latency vs MACs", context, sel)
    return fig


def op_share(
    results: Results,
    context: Context,
    *,
    breakdown: pd.DataFrame | None = None,
    max_models: int = 12,
    include_guidelines: bool = False,
) -> Figure:
    """Per model, paired bars per op category: share of FLOPs next to share of measured time (of the summed
    profiled node times; each panel gives the profiler overhead, that sum over the whole-model median)."""
    frame = analysis.op_breakdown(results, include_guidelines=include_guidelines) if breakdown is None else breakdown
    sel = _select(frame, context, "op_profiles")
    point_ids = list(dict.fromkeys(sel["point_id"]))[:max_models]
    cols = min(3, len(point_ids))
    rows = math.ceil(len(point_ids) / cols)
    fig = _figure(5.2 * cols, 3.6 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, point_id in zip(axes.flat, point_ids, strict=False):
        part = sel[sel["point_id"] == point_id]
        overhead = part["profiler_overhead"].iloc[0] if "profiler_overhead" in part else math.nan
        part = part[(part["time_share"] > 0) | (part["flops_share"].fillna(0) > 0)]
        y = np.arange(len(part))
        flops = part["flops_share"].to_numpy(dtype="float64") * 100
        ax.barh(y - 0.2, np.nan_to_num(flops), height=0.4, color=FLOPS_COLOR, label="share of FLOPs")
        ax.barh(y + 0.2, part["time_share"] * 100, height=0.4, color=TIME_COLOR, label="share of time")
        ax.set_yticks(y, part["category"], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("%", fontsize=8)
        note = "" if not np.isnan(flops).all() else " (no graph account: FLOPs unknown)"
        if pd.notna(overhead):
            note += f"\nprofiler overhead {overhead:.2f}x (summed node times / model median)"
        ax.set_title(f"{part['model_label'].iloc[0]}{note}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(point_ids) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    what = f"Share of FLOPs vs share of measured time per op category (time: {analysis.TIME_SHARE_BASIS})"
    _title(fig, what, context, sel)
    return fig


def no_per_op_points(results: Results, context: Context) -> NoData | None:
    """Why a context has no roofline points when its profiles are all per block (TFLite), else None."""
    prof = results.op_profiles
    if prof.empty:
        return None
    sel = prof[context.mask(prof)]
    if not sel.empty and set(sel["point_id"]) <= analysis.block_profiled(results):
        return NoData(
            f"{context}: TFLite per-block profiles give no per-op points (each block is timed as a sub-model, "
            "the device's LiteRT gave no per-op profile); profile with ai-edge-litert 2.3 on the device (its C API "
            "profiler), an ONNX artifact, or benchmark_model's op profiling on a phone"
        )
    return None


def roofline(
    results: Results,
    context: Context,
    *,
    frame: pd.DataFrame | None = None,
    movement: pd.DataFrame | None = None,
    include_guidelines: bool = False,
) -> Figure:
    """Ops placed by arithmetic intensity and achieved GFLOP/s, with the device's calibrated peak and bandwidth;
    beside it, the zero-FLOP ops (channel shuffle, layout conversions, reshapes) by achieved GB/s against the
    calibrated bandwidth."""
    frame = analysis.roofline(results, include_guidelines=include_guidelines) if frame is None else frame
    if movement is None:
        movement = analysis.data_movement(results, include_guidelines=include_guidelines)
    blocks_only = no_per_op_points(results, context)
    if blocks_only is not None:
        raise blocks_only
    if frame.empty and not results.op_profiles.empty:
        raise NoData(f"{HOW_TO['accounts']} (nothing for {context})")
    sel = _select(frame, context, "op_profiles")
    sel = sel[sel["intensity"].notna() & (sel["intensity"] > 0)]
    if sel.empty:
        raise NoData(f"no op of {context} has both FLOPs and bytes in its graph account; check harness.proxies")
    moves = movement[context.mask(movement)] if not movement.empty else movement
    fig = _figure(11 if not moves.empty else 8, 5.5)
    if moves.empty:
        ax = fig.add_subplot()
    else:
        ax, side = fig.subplots(1, 2, width_ratios=[3, 1.4])
    categories = [c.value for c in Category if c in set(sel["category"]) | set(moves.get("category", []))]
    categories += sorted((set(sel["category"]) | set(moves.get("category", []))) - set(categories))
    colors = _colors(categories)
    for category in categories:
        part = sel[sel["category"] == category]
        if not part.empty:
            ax.scatter(part["intensity"], part["achieved_gflops"], s=14, color=colors[category], label=category)
    peak, bandwidth = sel["peak_gflops"].iloc[0], sel["bandwidth_gbs"].iloc[0]
    lo, hi = sel["intensity"].min() / 2, sel["intensity"].max() * 2
    if pd.notna(peak) and pd.notna(bandwidth):
        lo, hi = min(lo, peak / bandwidth / 4), max(hi, peak / bandwidth * 4)
        xs = np.geomspace(lo, hi, 100)
        ax.plot(
            xs, np.minimum(peak, xs * bandwidth), "k-", lw=1.2, label=f"roof: {peak:.1f} GFLOP/s, {bandwidth:.1f} GB/s"
        )
        ax.axvline(peak / bandwidth, color="k", ls=":", lw=0.8)
        note = ""
    else:
        note = f" — no calibration: run '{analysis.calibrate_command(context)}'"
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs / byte)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if not moves.empty:
        _movement_axes(side, moves, colors, bandwidth)
    models = sel["point_id"].nunique()
    extra = f" + {len(moves)} zero-FLOP ops (right)" if not moves.empty else ""
    _title(fig, f"Roofline: {len(sel)} ops of {models} models{extra}{note}", context, sel)
    return fig


def _movement_axes(ax: Axes, moves: pd.DataFrame, colors: Mapping[str, object], bandwidth: float) -> None:
    """Zero-FLOP ops as a strip per category: achieved GB/s, with the calibrated bandwidth as a line."""
    kinds = [c for c in colors if c in set(moves["category"])]
    rng = np.random.default_rng(0)  # a fixed jitter, so the figure is the same on every run
    for x, category in enumerate(kinds):
        part = moves[moves["category"] == category]
        jitter = rng.uniform(-0.25, 0.25, len(part))
        ax.scatter(x + jitter, part["achieved_gbs"], s=10, color=colors[category])
    if pd.notna(bandwidth):
        ax.axhline(bandwidth, color="k", lw=1.2, label=f"bandwidth {bandwidth:.1f} GB/s (beyond cache)")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("achieved GB/s (bytes moved / time)")
    ax.set_title("zero-FLOP ops: no place on the FLOP roofline", fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)


def guidelines(results: Results, context: Context, *, frame: pd.DataFrame | None = None) -> Figure:
    """Bars of median latency per variant, one panel per experiment and setup, with the paper's direction and
    whether this device agrees."""
    frame = analysis.guidelines(results) if frame is None else frame
    sel = _select(frame, context, "guidelines")
    panels = list(sel.groupby(["experiment", "setup"], sort=True))
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(6 * cols, 3.4 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, ((experiment, setup), part) in zip(axes.flat, panels, strict=False):
        verdict = part["agrees"].iloc[0]
        color = UNKNOWN_COLOR if verdict is None else AGREE_COLOR if verdict else DISAGREE_COLOR
        x = np.arange(len(part))
        low = (part["median_ms"] - part["ci_low_ms"]).clip(lower=0).fillna(0)
        high = (part["ci_high_ms"] - part["median_ms"]).clip(lower=0).fillna(0)
        ax.bar(x, part["median_ms"], color=color, yerr=[low, high], capsize=3)
        ax.set_xticks(x, [_variant_label(v) for v in part["variant"]], fontsize=7)
        ax.set_ylabel("median latency (ms)", fontsize=8)
        said = "n/a (one variant)" if verdict is None else "agrees" if verdict else "disagrees"
        ax.set_title(f"{experiment} [{setup}]\npaper: {part['expected'].iloc[0]} — this device {said}", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    _title(fig, "ShuffleNetV2 guideline experiments (matched FLOPs)", context, sel)
    return fig


def _variant_label(variant: str) -> str:
    """``ratio=1:2`` → ``1:2``; ``variant=2-fragment-series`` → ``2-fragment\nseries``; several params one a line."""
    parts = variant.split(",")
    if len(parts) == 1:
        value = parts[0].split("=", 1)[-1]
        return value.replace("-fragment-", "-fragment\n")
    return "\n".join(parts)


def _residual_axes(ax: Axes, part: pd.DataFrame, label_context: bool) -> None:
    labels = [
        f"{m} ({Context.of(r)})" if label_context else str(m)
        for m, r in zip(part["model_label"], part.to_dict("records"), strict=True)
    ]
    y = np.arange(len(part))
    colors = [DISAGREE_COLOR if r > 1 else AGREE_COLOR for r in part["residual"]]
    # Bars grow from 1 (the fit) to the residual, so on the log axis over- and under-estimates look alike.
    ax.barh(y, part["residual"] - 1.0, left=1.0, color=colors)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("measured / predicted by the MACs fit (>1: FLOPs underestimate the latency)")
    ax.grid(True, axis="x", which="both", alpha=0.3)


def residuals(results: Results, context: Context, *, frame: pd.DataFrame | None = None, top: int = 25) -> Figure:
    """Bar chart of the residual ranking in one context: measured latency over the MACs fit, worst first."""
    frame = analysis.residuals(results) if frame is None else frame
    sel = _select(frame, context, "fit").head(top)
    fig = _figure(8, 1.2 + 0.28 * len(sel))
    _residual_axes(fig.add_subplot(), sel, label_context=False)
    _title(fig, "Where the FLOP proxy underestimates latency (residual ranking)", context, sel)
    return fig
