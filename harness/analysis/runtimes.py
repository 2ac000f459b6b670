"""The same models on the three runtimes side by side: median, time shares per op group, and layout cost.

Per device, threads and precision, and per model measured on at least two runtimes: each runtime's median and,
where its profile is per op (ONNX Runtime's nodes, ExecuTorch's ETDump), the share of the summed profiled time in
five groups of :class:`~harness.proxies.categories.Category` (:data:`GROUPS`) and the rest. ``layout_ms`` is the
layout share times the median: what that runtime's own layout handling costs (XNNPACK's NHWC transposes in
ExecuTorch, ORT's NCHWc reorders). LiteRT's shares come from its operators where the device's LiteRT profiles
them (ai-edge-litert 2.3's C API, read by flopgap's runner; ``benchmark_model``), and are empty where its profiles
are per block; ``layout_ops`` counts the transposes the TFLite converter put in the graph (from the graph
account). ``by_op_name_share`` is the share of an ExecuTorch point's profiled time in rows XNNPACK reported
without a graph node, categorised by the op's name alone (:mod:`harness.measure.etdump_profile`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.analysis.breakdowns import op_breakdown
from harness.analysis.context import CONTEXT
from harness.analysis.fits import FIT_EXCLUDED_FAMILIES
from harness.analysis.results import Results
from harness.proxies.categories import Category
from harness.proxies.executorch_ops import named_by_op

C = Category
GROUPS: dict[str, tuple[Category, ...]] = {
    "conv": (C.DENSE_CONV, C.POINTWISE_CONV, C.GROUPED_CONV, C.FULLY_CONNECTED),
    "depthwise": (C.DEPTHWISE_CONV,),
    "shuffle": (C.CHANNEL_SHUFFLE,),
    "layout": (C.LAYOUT,),
    "elementwise": (C.ELEMENTWISE, C.ACTIVATION),
}
SHARE_COLUMNS = tuple(f"{g}_share" for g in (*GROUPS, "other"))
KEYS = tuple(c for c in CONTEXT if c not in ("runtime", "runtime_version"))
RUNTIME_COLUMNS = COLUMNS = (
    *KEYS, "model_label", "runtime", "runtime_version", "median_ms", *SHARE_COLUMNS, "layout_ms", "layout_ops",
    "by_op_name_share",
)  # fmt: skip


def runtime_comparison(results: Results) -> pd.DataFrame:
    """One row per (context without runtime, model, runtime) for models measured on two runtimes or more."""
    points = results.points[~results.points["family"].isin(FIT_EXCLUDED_FAMILIES)]
    if points.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    keys = [*KEYS, "model_label"]
    runtimes = points.groupby(keys)["runtime"].transform("nunique")
    points = points[runtimes >= 2]
    if points.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    breakdown = op_breakdown(results)
    group_of = {c.value: g for g, cats in GROUPS.items() for c in cats}
    rows = []
    for point in points.to_dict("records"):
        row = {k: point[k] for k in (*keys, "runtime", "runtime_version", "median_ms")}
        mine = breakdown[breakdown["point_id"] == point["point_id"]] if not breakdown.empty else breakdown
        total = float(mine["time_us"].sum()) if not mine.empty else 0.0
        for column in SHARE_COLUMNS:
            row[column] = float("nan")
        if total > 0:
            shares = mine.groupby(mine["category"].map(lambda c: group_of.get(c, "other")))["time_us"].sum() / total
            for group in (*GROUPS, "other"):
                row[f"{group}_share"] = float(shares.get(group, 0.0))
        row["layout_ms"] = row["layout_share"] * float(point["median_ms"])
        acc = results.accounts[results.accounts["artifact_sha"] == point["artifact_sha"]]
        row["layout_ops"] = int((acc["category"] == C.LAYOUT.value).sum()) if point["format"] == "tflite" else None
        row["by_op_name_share"] = _by_op_name_share(results, int(point["point_id"])) if total > 0 else float("nan")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.sort_values([*keys, "runtime"], kind="stable").reset_index(drop=True)


def _by_op_name_share(results: Results, point_id: int) -> float:
    """Share of an ExecuTorch point's profiled time in rows XNNPACK reported with no graph node (0 elsewhere)."""
    prof = results.op_profiles[results.op_profiles["point_id"] == point_id]
    total = float(prof["time_us"].sum())
    if not total:
        return float("nan")
    named = prof["node_name"].astype(str).map(named_by_op) & (prof["runtime"] == "executorch")
    return float(prof.loc[named, "time_us"].sum()) / total


@dataclass(frozen=True)
class LayoutCost:
    """Where one runtime's layout handling costs what another's does not, on one model."""

    model: str
    runtime: str
    layout_ms: float
    layout_share: float
    others: tuple[tuple[str, float], ...]  # runtime → its layout ms (per-op profiles only)
    converter_transposes: int | None  # LiteRT: layout transposes the converter added (no per-op time)

    @property
    def sentence(self) -> str:
        others = ", ".join(f"{r} {ms:.3f} ms" for r, ms in self.others)
        text = (
            f"{self.model}: {self.runtime}'s layout conversions take {self.layout_ms:.3f} ms "
            f"({100 * self.layout_share:.1f}% of its profiled time) against {others}"
        )
        if self.converter_transposes is not None:
            text += f"; LiteRT runs {self.converter_transposes} converter-added transposes (no per-op times)"
        return text + "."


def layout_costs(comparison: pd.DataFrame) -> list[LayoutCost]:
    """Per model and context: the runtime whose layout time is the largest, against the others' (two or more
    runtimes with per-op profiles needed), largest gap first."""
    out: list[tuple[float, LayoutCost]] = []
    for _, group in comparison.groupby([*KEYS, "model_label"], sort=True):
        timed = group.dropna(subset=["layout_ms"])
        if len(timed) < 2:
            continue
        worst = timed.loc[timed["layout_ms"].idxmax()]
        rest = timed.drop(index=worst.name)
        tfl = group.dropna(subset=["layout_ops"])
        out.append(
            (
                float(worst["layout_ms"] - rest["layout_ms"].max()),
                LayoutCost(
                    model=str(worst["model_label"]),
                    runtime=str(worst["runtime"]),
                    layout_ms=float(worst["layout_ms"]),
                    layout_share=float(worst["layout_share"]),
                    others=tuple((str(r), float(ms)) for r, ms in zip(rest["runtime"], rest["layout_ms"], strict=True)),
                    converter_transposes=int(tfl["layout_ops"].iloc[0]) if not tfl.empty else None,
                ),
            )
        )
    return [cost for _, cost in sorted(out, key=lambda t: -t[0])]
