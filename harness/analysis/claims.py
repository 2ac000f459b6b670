"""The FLOP-gap claims the README quotes, computed from a results database rather than typed.

:func:`flop_gap_claims` gathers every number of the README's "The FLOP gap on the sample database" section into a
:class:`Claims`; :func:`flop_gap_markdown` writes the section's bullets from it. After measuring a new sample
database, ``python -m harness.analysis.claims results/sample.db`` prints the text to paste between the README's
``flop-gap`` markers; ``tests/test_readme.py`` checks the README holds exactly that text for ``results/sample.db``.

Time shares are of the summed profiled node times (ONNX Runtime's per-node profile); the profiler overhead says
how far that sum is from the whole-model median. "Layout" is the channel shuffle (its reshape → transpose →
reshape) plus the layout conversions (ORT's NCHWc reorders, converter-added transposes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from harness.analysis.breakdowns import op_breakdown
from harness.analysis.context import Context, joined
from harness.analysis.fits import FIT_EXCLUDED_FAMILIES, fits, latency_vs_macs
from harness.analysis.guidelines import guideline_verdicts, guidelines
from harness.analysis.results import Results, load
from harness.analysis.roofline import roofline
from harness.proxies.categories import Category
from harness.store.identity import full_identity

ORT = "onnxruntime"
WIDTH = 116
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


def _ort_context(results: Results) -> Context | None:
    return next((c for c in results.contexts() if c.runtime == ORT), None)


def _device(results: Results, context: Context | None) -> str:
    """The machine behind the context's device, in full (which machine made these numbers)."""
    devices = results.devices
    if context is None or devices.empty or context.device not in set(devices["name"]):
        return "unknown device"
    row = devices.set_index("name").loc[context.device]
    facts = json.loads(row["facts_json"] or "{}")
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
    by_point = {pid: g.set_index("category") for pid, g in ort.groupby("point_id", sort=False)}
    order = ort.drop_duplicates("point_id").sort_values("point_id")
    macs = results.points.set_index("point_id")["macs"]
    order = order.assign(macs=order["point_id"].map(macs)).sort_values(["macs", "point_id"])

    def share(point: int, category: str, column: str) -> float:
        frame = by_point[point]
        return float(frame.at[category, column]) if category in frame.index else 0.0

    layout, depthwise, overhead = [], [], []
    for point, label in zip(order["point_id"], order["model_label"], strict=True):
        frame = by_point[point]
        if share(point, _SHUFFLE, "n_ops") > 0:
            with_flops = float(frame.loc[frame["flops"].fillna(0) > 0, "time_share"].sum())
            layout.append(
                LayoutShare(str(label), share(point, _SHUFFLE, "time_share"), share(point, _LAYOUT, "time_share"),
                            with_flops)
            )  # fmt: skip
        if share(point, _DEPTHWISE, "flops_share") > 0:
            depthwise.append(
                DepthwiseGap(
                    str(label), share(point, _DEPTHWISE, "flops_share"), share(point, _DEPTHWISE, "time_share")
                )
            )
        overhead.append((str(label), float(frame["profiler_overhead"].iloc[0])))
    roof = roofline(results)
    dw = roof[(roof["category"] == _DEPTHWISE) & context.mask(roof)] if context is not None else roof.iloc[0:0]
    calibrated = roof[context.mask(roof)].dropna(subset=["peak_gflops"]) if context is not None else roof.iloc[0:0]
    latency = latency_vs_macs(results)
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
    )


# --------------------------------------------------------------------------- the README text


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _m(macs: float) -> str:
    return f"{macs / 1e6:.0f} M"


def _variant(label: str) -> str:
    """``groups=2`` as is; ``variant=2-fragment-series`` → ``2-fragment-series``."""
    return label.removeprefix("variant=")


def _measured(claims: Claims) -> str:
    runtimes = ", ".join(f"{r} {v}" for r, v in claims.runtimes)
    return (
        f"Measured: {claims.models} models of {claims.families} families and {claims.guideline_variants} guideline "
        f"variants, {runtimes}, on {claims.device}."
    )


def _macs_bullet(claims: Claims) -> str:
    fit_text = "; ".join(
        f"slope {f.slope:.2f}, R² {f.r2:.3f}, Spearman ρ {f.rho:.2f} ({f.runtime})" for f in claims.fits
    )
    bullet = f"- **MACs rank models only roughly.** log–log fit of median latency on MACs: {fit_text}."
    if claims.inversion is not None:
        inv = claims.inversion
        bullet += (
            f" `{inv.fewer}` ({_m(inv.fewer_macs)} MACs) takes {inv.fewer_ms:.2f} ms while `{inv.more}` "
            f"({_m(inv.more_macs)} MACs) takes {inv.more_ms:.2f} ms ({ORT})."
        )
    return bullet


def _layout_bullet(claims: Claims) -> str | None:
    if not claims.layout:
        return None
    per_model = "; ".join(
        f"`{s.model}` {_pct(s.shuffle + s.layout)} (shuffle {_pct(s.shuffle)}, layout {_pct(s.layout)}) vs "
        f"{_pct(s.flop_ops)} on ops with FLOPs"
        for s in claims.layout
    )
    bullet = (
        "- **Channel shuffle and layout conversions: 0% of FLOPs, "
        f"{_pct(min(s.shuffle + s.layout for s in claims.layout))}–"
        f"{_pct(max(s.shuffle + s.layout for s in claims.layout))} of time** ({ORT} per-node profile; the "
        f"shuffle's reshape, transpose and reshape, plus ONNX Runtime's NCHWc reorders): {per_model}."
    )
    if claims.converter is not None:
        c = claims.converter
        bullet += (
            f" In TFLite the converter wraps an NCHW-written shuffle in layout transposes (`{c.model}`: "
            f"{c.onnx} transposes in ONNX, {c.tflite} in TFLite; the shuffles move {c.shuffle_mb:.1f} MB and "
            f"the added transposes {c.layout_mb:.1f} MB more)."
        )
    return bullet


def _depthwise_bullet(claims: Claims) -> str | None:
    if not claims.depthwise:
        return None
    low = min(claims.depthwise, key=lambda d: d.ratio)
    high = max(claims.depthwise, key=lambda d: d.ratio)
    examples = "; ".join(
        f"`{d.model}` {_pct(d.flops_share)} of FLOPs → {_pct(d.time_share)} of time" for d in (low, high)
    )
    bullet = (
        f"- **Depthwise convs: {low.ratio:.1f}×–{high.ratio:.1f}× their FLOP share in time** across the "
        f"{len(claims.depthwise)} profiled models that have them ({ORT}); lowest and highest: {examples}."
    )
    if claims.depthwise_intensity is not None and claims.roof is not None:
        lo, hi = claims.depthwise_intensity
        peak, bandwidth = claims.roof
        bullet += (
            f" On the roofline they sit at {lo:.1f}–{hi:.1f} FLOP/byte (10th–90th percentile), left of this "
            f"machine's ridge ({peak / bandwidth:.1f} FLOP/byte: {peak:.0f} GFLOP/s, {bandwidth:.0f} GB/s)."
        )
    return bullet


def _overhead_bullet(claims: Claims) -> str | None:
    if not claims.overhead:
        return None
    low = min(claims.overhead, key=lambda o: o[1])
    high = max(claims.overhead, key=lambda o: o[1])
    return (
        "- **Shares are of the summed profiled node times**, which ONNX Runtime's profiler puts at "
        f"{low[1]:.2f}× (`{low[0]}`) to {high[1]:.2f}× (`{high[0]}`) the whole-model median: more, "
        "smaller nodes carry more of the profiler's per-node overhead."
    )


def _guidelines_bullet(claims: Claims) -> str | None:
    if not claims.guidelines:
        return None
    parts = []
    for g in claims.guidelines:
        times = ", ".join(f"{_variant(v)} {ms:.2f}" for v, ms in g.latencies)
        said = ", ".join(f"{'n/a' if a is None else 'agrees' if a else 'disagrees'} in {r}" for r, a in g.verdicts)
        parts.append(f"{g.experiment}, {g.expected}: {times} ms in {ORT} ({said})")
    return "- **ShuffleNetV2 guidelines on this CPU** (matched FLOPs): " + "; ".join(parts) + "."


# One builder per finding, in the section's order; a builder whose finding the database lacks gives None.
FINDINGS: tuple[Callable[[Claims], str | None], ...] = (
    _macs_bullet,
    _layout_bullet,
    _depthwise_bullet,
    _overhead_bullet,
    _guidelines_bullet,
)


def _wrapped(line: str) -> str:
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(line, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def flop_gap_markdown(claims: Claims) -> str:
    """The README's FLOP-gap text: a line saying what was measured, then one markdown bullet per finding
    (:data:`FINDINGS`), wrapped at :data:`WIDTH` columns."""
    bullets = [bullet for build in FINDINGS if (bullet := build(claims)) is not None]
    return "\n".join([_wrapped(_measured(claims)), "", *(_wrapped(b) for b in bullets)]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the README's FLOP-gap claims computed from a database.")
    parser.add_argument("db", nargs="?", default="results/sample.db", help="results database (results/sample.db)")
    args = parser.parse_args(argv)
    sys.stdout.write(flop_gap_markdown(flop_gap_claims(load(args.db))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
