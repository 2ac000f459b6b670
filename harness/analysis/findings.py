"""The report's headline: one table (per profiled model, the share of FLOPs and of measured time of channel
shuffle, layout conversions, depthwise conv, grouped conv and element-wise ops) and three sentences of findings
computed from the data: how well MACs rank models, what shuffles cost, what depthwise convs cost. A finding whose
data is missing says which command produces it.
"""

from __future__ import annotations

import statistics

import pandas as pd

from harness.analysis.breakdowns import op_breakdown
from harness.analysis.context import CONTEXT, Context
from harness.analysis.fits import fits, latency_vs_macs
from harness.analysis.hints import HOW_TO
from harness.analysis.results import Results
from harness.analysis.shares import point_shares
from harness.proxies.categories import Category

# The categories FLOP counts misjudge most, as (column prefix, category).
HEADLINE_CATEGORIES: tuple[tuple[str, Category], ...] = (
    ("shuffle", Category.CHANNEL_SHUFFLE),
    ("layout", Category.LAYOUT),
    ("depthwise", Category.DEPTHWISE_CONV),
    ("grouped", Category.GROUPED_CONV),
    ("elementwise", Category.ELEMENTWISE),
)
HEADLINE_COLUMNS = (
    "point_id", "model_label", *CONTEXT, "runtime_version",
    *(f"{name}_{kind}_share" for name, _ in HEADLINE_CATEGORIES for kind in ("flops", "time")),
    "profiler_overhead",
)  # fmt: skip
PROFILER_CAVEAT = (
    "Time shares come from the runtime's per-op profiler, which adds a little time to every op it times: many small "
    "ops (shuffles, element-wise) weigh a bit more than they would unprofiled. 'profiler overhead' is the sum of the "
    "profiled op times over the model's unprofiled median; latencies elsewhere in this report are unprofiled."
)
NO_SHUFFLE = (
    "no profiled model has channel shuffles: profile a ShuffleNet "
    "('flopgap profile shufflenet_v2 -p scale=0.5 --runtime onnxruntime')"
)
NO_DEPTHWISE = (
    "no profiled model has depthwise convs with a graph account: profile a MobileNet "
    "('flopgap profile mobilenet_v2 -p alpha=0.35 --runtime onnxruntime')"
)


def headline_table(results: Results, breakdown: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per profiled point (per-op profiles only: TFLite per-block profiles cannot tell categories apart)."""
    frame = op_breakdown(results) if breakdown is None else breakdown
    if frame.empty:
        return pd.DataFrame(columns=list(HEADLINE_COLUMNS))
    rows = []
    for point in point_shares(frame):
        first = point.first
        row = {
            "point_id": point.point_id,
            "model_label": first["model_label"],
            "runtime_version": first["runtime_version"],
        }
        row.update({c: first[c] for c in CONTEXT})
        for name, category in HEADLINE_CATEGORIES:
            row[f"{name}_flops_share"] = point.flops_share(category)
            row[f"{name}_time_share"] = point.time_share(category)
        row["profiler_overhead"] = point.profiler_overhead  # summed node times / whole-model median
        rows.append(row)
    return pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS))


def findings(results: Results, table: pd.DataFrame | None = None) -> list[str]:
    """Three sentences: MACs as a ranking, the cost of shuffles, the cost of depthwise convs."""
    table = headline_table(results) if table is None else table
    return [_ranking(results), _shuffle(table), _depthwise(table)]


def _ranking(results: Results) -> str:
    fit_frame = fits(results)
    fit_frame = fit_frame[fit_frame["slope"].notna()] if not fit_frame.empty else fit_frame
    if fit_frame.empty:
        return f"MACs as a latency ranking: {HOW_TO['fit']}"
    best = fit_frame.sort_values("n", ascending=False).iloc[0]
    context = Context.of(best)
    frame = latency_vs_macs(results)
    sel = frame[context.mask(frame)].sort_values("macs")
    fit = (
        f"on {context}, latency ∝ MACs^{best['slope']:.2f} with R² {best['r2']:.3f} "
        f"and Spearman ρ {best['spearman_rho']:.2f} over {int(best['n'])} models"
    )
    worst: tuple[float, pd.Series, pd.Series] | None = None
    rows = [r for _, r in sel.iterrows()]
    for i, small in enumerate(rows):
        for big in rows[i + 1 :]:
            if big["macs"] > small["macs"] and small["median_ms"] > big["median_ms"]:
                ratio = float(small["median_ms"]) / float(big["median_ms"])
                if worst is None or ratio > worst[0]:
                    worst = (ratio, small, big)
    if worst is None:
        return f"MACs rank these models in order: {fit}; no model with fewer MACs is slower than one with more."
    _, small, big = worst
    return (
        f"MACs rank models only roughly: {fit}; {small['model_label']} ({small['macs'] / 1e6:.0f} M MACs) takes "
        f"{small['median_ms']:.3g} ms while {big['model_label']} ({big['macs'] / 1e6:.0f} M MACs) takes "
        f"{big['median_ms']:.3g} ms."
    )


def _shuffle(table: pd.DataFrame) -> str:
    rows = table[table["shuffle_time_share"] > 0] if not table.empty else table
    if rows.empty:
        return NO_SHUFFLE
    flops = rows["shuffle_flops_share"].dropna()
    top = rows.sort_values("shuffle_time_share").iloc[-1]
    flop_text = f"{100 * flops.max():.1f}% of FLOPs" if not flops.empty else "FLOPs unknown (no graph account)"
    return (
        f"Channel shuffles: {flop_text} but {_span(rows['shuffle_time_share'])} of measured time "
        f"in {len(rows)} profiled model(s); most in {top['model_label']} on {Context.of(top)} "
        f"({100 * top['shuffle_time_share']:.1f}%)."
    )


def _depthwise(table: pd.DataFrame) -> str:
    if table.empty:
        return NO_DEPTHWISE
    rows = table[(table["depthwise_flops_share"].fillna(0) > 0) & (table["depthwise_time_share"] > 0)]
    if rows.empty:
        return NO_DEPTHWISE
    ratios = rows["depthwise_time_share"] / rows["depthwise_flops_share"]
    top = rows.loc[ratios.idxmax()]
    return (
        f"Depthwise convs take {_span(ratios, '×', 1)} their share of FLOPs in time (median "
        f"{statistics.median(ratios):.1f}× over {len(rows)} model(s)); {top['model_label']} on {Context.of(top)}: "
        f"{100 * top['depthwise_flops_share']:.1f}% of FLOPs, {100 * top['depthwise_time_share']:.1f}% of time."
    )


def _span(values: pd.Series, unit: str = "%", scale: float = 100) -> str:
    """``2.6–5.6%`` (or one value when they all round alike)."""
    low, high = f"{scale * float(values.min()):.1f}", f"{scale * float(values.max()):.1f}"
    return f"{low}{unit}" if low == high else f"{low}–{high}{unit}"
