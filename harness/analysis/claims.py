"""The FLOP-gap claims the README quotes, computed from a results database rather than typed.

:func:`flop_gap_claims` gathers every number of the README's "The FLOP gap on the sample database" section into a
:class:`Claims`; :mod:`harness.report.flop_gap` writes the section's text from it.

Time shares are of the summed profiled node times (ONNX Runtime's per-node profile); the profiler overhead says
how far that sum is from the whole-model median. "Layout" is the channel shuffle (its reshape → transpose →
reshape) plus the layout conversions (ORT's NCHWc reorders, converter-added transposes).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pandas as pd

from harness.analysis.breakdowns import op_breakdown
from harness.analysis.context import Context, joined
from harness.analysis.fits import FIT_EXCLUDED_FAMILIES, fits, latency_vs_macs
from harness.analysis.guidelines import guideline_verdicts, guidelines
from harness.analysis.results import Results
from harness.analysis.roofline import roofline
from harness.analysis.runtimes import LayoutCost, layout_costs, runtime_comparison
from harness.analysis.shares import point_shares
from harness.proxies.categories import Category
from harness.store.devices import stored_facts
from harness.store.identity import full_identity

ORT = "onnxruntime"
_SHUFFLE, _LAYOUT, _DEPTHWISE = Category.CHANNEL_SHUFFLE.value, Category.LAYOUT.value, Category.DEPTHWISE_CONV.value


@dataclass(frozen=True)
class Fit:
    runtime: str
    slope: float
    r2: float
    rho: float


@dataclass(frozen=True)
class Inversion:
    """Two models MACs rank the wrong way round: ``fewer`` has fewer MACs and takes longer than ``more``."""

    fewer: str
    fewer_macs: float
    fewer_ms: float
    more: str
    more_macs: float
    more_ms: float


@dataclass(frozen=True)
class LayoutShare:
    """One model's time on moving data (channel shuffle, layout conversions) against the time of ops with FLOPs."""

    model: str
    shuffle: float
    layout: float
    flop_ops: float


@dataclass(frozen=True)
class ConverterTransposes:
    """Transposes of one model's ONNX and TFLite graphs, and the bytes the TFLite shuffle and layout ops move."""

    model: str
    onnx: int
    tflite: int
    shuffle_mb: float
    layout_mb: float


@dataclass(frozen=True)
class DepthwiseGap:
    model: str
    flops_share: float
    time_share: float

    @property
    def ratio(self) -> float:
        return self.time_share / self.flops_share


@dataclass(frozen=True)
class GuidelineLine:
    experiment: str
    expected: str
    latencies: tuple[tuple[str, float], ...]  # variant → median ms, in the experiment's order
    verdicts: tuple[tuple[str, bool | None], ...]  # runtime → agrees


@dataclass(frozen=True)
class Claims:
    """Every number the README's FLOP-gap section quotes."""

    models: int
    families: int
    guideline_variants: int
    runtimes: tuple[tuple[str, str], ...]  # runtime → version(s)
    device: str
    fits: tuple[Fit, ...]
    inversion: Inversion | None
    layout: tuple[LayoutShare, ...]
    converter: ConverterTransposes | None
    depthwise: tuple[DepthwiseGap, ...]
    depthwise_intensity: tuple[float, float] | None  # p10, p90 of the depthwise convs' FLOPs per byte
    roof: tuple[float, float] | None  # peak GFLOP/s, bandwidth GB/s
    overhead: tuple[tuple[str, float], ...]  # model → summed node times / whole-model median
    guidelines: tuple[GuidelineLine, ...]
    side_by_side: tuple[SideBySide, ...] = ()  # models measured on every runtime of the database
    layout_costs: tuple[LayoutCost, ...] = ()


@dataclass(frozen=True)
class SideBySide:
    """One model's median on each runtime (the runtimes in name order)."""

    model: str
    medians: tuple[tuple[str, float], ...]


def _side_by_side(comparison: pd.DataFrame) -> tuple[SideBySide, ...]:
    """Models measured on every runtime the comparison holds, in the first context that has any."""
    everywhere = comparison["runtime"].nunique()
    out = []
    for _, group in comparison.groupby(["device", "precision", "threads", "model_label"], sort=True):
        if group["runtime"].nunique() == everywhere and everywhere >= 2:
            medians = tuple((str(r), float(ms)) for r, ms in zip(group["runtime"], group["median_ms"], strict=True))
            out.append(SideBySide(str(group["model_label"].iloc[0]), medians))
    return tuple(out)


def _ort_context(results: Results) -> Context | None:
    return next((c for c in results.contexts() if c.runtime == ORT), None)


def _device(results: Results, context: Context | None) -> str:
    """The machine behind the context's device, in full (which machine made these numbers)."""
    devices = results.devices
    if context is None or devices.empty or context.device not in set(devices["name"]):
        return "unknown device"
    row = devices.set_index("name").loc[context.device]
    facts = stored_facts(row["facts_json"])
    fp = row["fingerprint"] if "fingerprint" in row.index and isinstance(row["fingerprint"], str) else None
    return full_identity(facts, fp)


def _inversion(frame: pd.DataFrame) -> Inversion | None:
    """The pair whose latencies contradict their MAC order the most (largest latency ratio)."""
    rows = frame.sort_values("macs").to_dict("records")
    best: Inversion | None = None
    for a, b in itertools.combinations(rows, 2):
        inverted = a["macs"] < b["macs"] and a["median_ms"] > b["median_ms"]
        if inverted and (best is None or a["median_ms"] / b["median_ms"] > best.fewer_ms / best.more_ms):
            best = Inversion(a["model_label"], a["macs"], a["median_ms"], b["model_label"], b["macs"], b["median_ms"])
    return best


def _converter(results: Results) -> ConverterTransposes | None:
    """The smallest model with a channel shuffle whose ONNX and TFLite graphs are both accounted."""
    acc = results.accounts
    points = results.points[~results.points["family"].isin(FIT_EXCLUDED_FAMILIES)]
    shas = points.drop_duplicates("artifact_sha").set_index("artifact_sha")
    acc = acc[acc["artifact_sha"].isin(shas.index)].assign(
        model_label=lambda f: f["artifact_sha"].map(shas["model_label"]),
        format=lambda f: f["artifact_sha"].map(shas["format"]),
        macs=lambda f: f["artifact_sha"].map(shas["macs"]),
    )
    shuffled = acc[(acc["category"] == _SHUFFLE) & (acc["format"] == "tflite")]
    for label in shuffled.sort_values("macs")["model_label"].drop_duplicates():
        mine = acc[acc["model_label"] == label]
        onnx, tfl = mine[mine["format"] == "onnx"], mine[mine["format"] == "tflite"]
        if onnx.empty:
            continue
        return ConverterTransposes(
            model=str(label),
            onnx=int(onnx["op_type"].str.lower().eq("transpose").sum()),
            tflite=int(tfl["op_type"].str.lower().eq("transpose").sum()),
            shuffle_mb=float(tfl.loc[tfl["category"] == _SHUFFLE, "bytes"].sum()) / 1e6,
            layout_mb=float(tfl.loc[tfl["category"] == _LAYOUT, "bytes"].sum()) / 1e6,
        )
    return None


def _guideline_lines(results: Results, context: Context | None) -> tuple[GuidelineLine, ...]:
    frame = guidelines(results)
    if frame.empty or context is None:
        return ()
    verdicts = guideline_verdicts(results, frame)
    lines = []
    for (experiment, setup), part in frame[context.mask(frame)].groupby(["experiment", "setup"], sort=True):
        verdict = verdicts[(verdicts["experiment"] == experiment) & (verdicts["setup"] == setup)]
        lines.append(
            GuidelineLine(
                experiment=str(experiment),
                expected=str(part["expected"].iloc[0]),
                latencies=tuple((str(v), float(ms)) for v, ms in zip(part["variant"], part["median_ms"], strict=True)),
                verdicts=tuple(
                    (str(r), None if pd.isna(a) else bool(a))
                    for r, a in zip(verdict["runtime"], verdict["agrees"], strict=True)
                ),
            )
        )
    return tuple(lines)


def flop_gap_claims(results: Results) -> Claims:
    """Every number of the README's FLOP-gap section, from ``results`` (guideline blocks only in their line)."""
    context = _ort_context(results)
    models = results.points[~results.points["family"].isin(FIT_EXCLUDED_FAMILIES)]
    blocks = results.points[results.points["family"].isin(FIT_EXCLUDED_FAMILIES)]
    fit_frame = fits(results)
    breakdown = op_breakdown(results)
    ort = breakdown[context.mask(breakdown)] if context is not None and not breakdown.empty else breakdown
    by_point = {point.point_id: point for point in point_shares(ort)}
    order = ort.drop_duplicates("point_id").sort_values("point_id")
    macs = results.points.set_index("point_id")["macs"]
    order = order.assign(macs=order["point_id"].map(macs)).sort_values(["macs", "point_id"])
    layout, depthwise, overhead = [], [], []
    for point_id, label in zip(order["point_id"], order["model_label"], strict=True):
        point = by_point[point_id]
        if point.n_ops(_SHUFFLE) > 0:
            shuffle, layout_share = point.time_share(_SHUFFLE), point.time_share(_LAYOUT)
            layout.append(LayoutShare(str(label), shuffle, layout_share, point.time_share_with_flops))
        dw_flops = point.flops_share(_DEPTHWISE) or 0.0
        if dw_flops > 0:
            depthwise.append(DepthwiseGap(str(label), dw_flops, point.time_share(_DEPTHWISE)))
        overhead.append((str(label), float(point.first["profiler_overhead"])))
    roof = roofline(results)
    dw = roof[(roof["category"] == _DEPTHWISE) & context.mask(roof)] if context is not None else roof.iloc[0:0]
    calibrated = roof[context.mask(roof)].dropna(subset=["peak_gflops"]) if context is not None else roof.iloc[0:0]
    latency = latency_vs_macs(results)
    comparison = runtime_comparison(results)
    return Claims(
        models=int(models["model_label"].nunique()),
        families=int(models["family"].nunique()),
        guideline_variants=int(blocks["model_label"].nunique()),
        runtimes=tuple((str(r), joined(g["runtime_version"])) for r, g in results.points.groupby("runtime")),
        device=_device(results, context),
        fits=tuple(
            Fit(str(row["runtime"]), float(row["slope"]), float(row["r2"]), float(row["spearman_rho"]))
            for row in fit_frame.to_dict("records")
        ),
        inversion=_inversion(latency[context.mask(latency)]) if context is not None else None,
        layout=tuple(layout),
        converter=_converter(results),
        depthwise=tuple(depthwise),
        depthwise_intensity=(
            (float(dw["intensity"].quantile(0.1)), float(dw["intensity"].quantile(0.9))) if not dw.empty else None
        ),
        roof=(
            (float(calibrated["peak_gflops"].iloc[0]), float(calibrated["bandwidth_gbs"].iloc[0]))
            if not calibrated.empty
            else None
        ),
        overhead=tuple(overhead),
        guidelines=_guideline_lines(results, context),
        side_by_side=_side_by_side(comparison),
        layout_costs=tuple(layout_costs(comparison)),
    )
