"""The headline numbers: channel shuffle's, layout conversions' and depthwise convs' share of FLOPs against their
share of time, with the profiler overhead that says how far the summed node times are from the model's median."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.analysis.breakdowns import block_profiled, op_breakdown
from harness.analysis.context import CONTEXT, Context
from harness.analysis.fits import FIT_EXCLUDED_FAMILIES
from harness.analysis.results import Results
from harness.analysis.shares import point_shares
from harness.proxies.categories import Category

SHUFFLE = Category.CHANNEL_SHUFFLE
LAYOUT = Category.LAYOUT
DEPTHWISE = Category.DEPTHWISE_CONV


@dataclass(frozen=True)
class Headline:
    """The FLOP gap of channel shuffle, layout conversions and depthwise convs for one profiled model in one context.

    Time shares are of the summed profiled node times (:data:`harness.analysis.breakdowns.TIME_SHARE_BASIS`);
    ``profiler_overhead`` is that sum over the whole-model median.
    """

    point_id: int
    context: Context
    runtime_version: str
    model_label: str
    input_shape: str
    shuffle_flops_share: float | None  # None: no graph account
    shuffle_time_share: float
    depthwise_flops_share: float | None
    depthwise_time_share: float
    has_shuffle: bool
    has_depthwise: bool
    per_block: bool = False  # a TFLite per-block profile: op categories' time cannot be told apart
    layout_time_share: float = 0.0  # layout ops have no FLOPs: transposes outside a shuffle, runtime reorders
    has_layout: bool = False
    profiler_overhead: float | None = None  # summed node times / whole-model median (None: no median)

    @property
    def layout_and_shuffle_time_share(self) -> float:
        """What moving data around costs: the shuffle's and the layout conversions' share of time."""
        return self.shuffle_time_share + self.layout_time_share

    @property
    def sentence(self) -> str:
        """``shufflenet_v2[scale=0.5] on local/onnxruntime: shuffle/transpose 0.0% of FLOPs, 7.3% of time; …``."""
        parts = []
        if self.per_block:
            parts.append(
                "per-block profile only (the device's LiteRT gave no per-op profile), so shuffle, layout and "
                "depthwise time cannot be told apart from the rest of each block; see the block breakdown"
            )
        else:
            if self.shuffle_flops_share is None:
                parts.append("op categories and FLOP shares unknown (no graph account of the artifact)")
            if self.has_shuffle:
                parts.append(
                    f"channel shuffle {_pct(self.shuffle_flops_share)} of FLOPs, "
                    f"{_pct(self.shuffle_time_share)} of time"
                )
            if self.has_layout:
                parts.append(
                    f"layout conversions {_pct(None if self.shuffle_flops_share is None else 0.0)} of FLOPs, "
                    f"{_pct(self.layout_time_share)} of time"
                )
        if self.has_depthwise:
            parts.append(
                f"depthwise conv {_pct(self.depthwise_flops_share)} of FLOPs, {_pct(self.depthwise_time_share)} of time"
            )
        if not parts:
            parts.append("no channel shuffle, layout or depthwise ops")
        where = f"{self.model_label} on {self.context.device}/{self.context.runtime}"
        detail = (
            f"({self.context.runtime} {self.runtime_version}, {self.context.threads} "
            f"thread{'s' if self.context.threads != 1 else ''}, {self.context.precision}, input {self.input_shape})"
        )
        if not self.per_block and self.profiler_overhead is not None and not math.isnan(self.profiler_overhead):
            parts.append(f"time shares of the summed node times, {self.profiler_overhead:.2f}x the model's median")
        return f"{where}: {'; '.join(parts)} {detail}"


def _pct(share: float | None) -> str:
    return "unknown (no graph account)" if share is None or math.isnan(share) else f"{100 * share:.1f}%"


def headlines(results: Results, breakdown: pd.DataFrame | None = None) -> list[Headline]:
    """Shuffle, layout and depthwise share of FLOPs vs share of time, one per profiled point (model × context);
    guideline blocks are left out (see :func:`op_breakdown`)."""
    frame = op_breakdown(results) if breakdown is None else breakdown
    out = []
    for point in point_shares(frame):
        first = point.first
        out.append(
            Headline(
                point_id=point.point_id,
                context=Context.of(first),
                runtime_version=str(first["runtime_version"] or "unknown"),
                model_label=str(first["model_label"]),
                input_shape=str(first["input_shape"]),
                shuffle_flops_share=point.flops_share(SHUFFLE),
                shuffle_time_share=point.time_share(SHUFFLE),
                depthwise_flops_share=point.flops_share(DEPTHWISE),
                depthwise_time_share=point.time_share(DEPTHWISE),
                has_shuffle=point.present(SHUFFLE),
                has_depthwise=point.present(DEPTHWISE),
                layout_time_share=point.time_share(LAYOUT),
                has_layout=point.present(LAYOUT),
                profiler_overhead=point.profiler_overhead,
            )
        )
    blocks = results.op_profiles[results.op_profiles["point_id"].isin(block_profiled(results))]
    blocks = blocks[~blocks["family"].isin(FIT_EXCLUDED_FAMILIES)]
    for point_id, group in blocks.groupby("point_id", sort=True):
        first = group.iloc[0]
        out.append(
            Headline(
                point_id=int(point_id),
                context=Context.of(first),
                runtime_version=str(first["runtime_version"] or "unknown"),
                model_label=str(first["model_label"]),
                input_shape=str(first["input_shape"]),
                shuffle_flops_share=None,
                shuffle_time_share=math.nan,
                depthwise_flops_share=None,
                depthwise_time_share=math.nan,
                has_shuffle=False,
                has_depthwise=False,
                per_block=True,
            )
        )
    return out


def headline_frame(results: Results, breakdown: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`headlines` as a table (shares as fractions), one row per profiled point."""
    rows = [
        {
            "point_id": h.point_id,
            **{c: getattr(h.context, c) for c in CONTEXT},
            "runtime_version": h.runtime_version,
            "model_label": h.model_label,
            "input_shape": h.input_shape,
            "shuffle_flops_share": h.shuffle_flops_share,
            "shuffle_time_share": h.shuffle_time_share,
            "depthwise_flops_share": h.depthwise_flops_share,
            "depthwise_time_share": h.depthwise_time_share,
            "layout_time_share": h.layout_time_share,
            "profiler_overhead": h.profiler_overhead,
            "sentence": h.sentence,
        }
        for h in headlines(results, breakdown)
    ]
    return pd.DataFrame(rows)
