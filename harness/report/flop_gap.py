"""The README's "FLOP gap on the sample database" section, written from :class:`harness.analysis.claims.Claims`.

After measuring a new sample database, ``python -m harness.report.flop_gap results/sample.db`` prints the text to
paste between the README's ``flop-gap`` markers; ``tests/test_readme.py`` checks the README holds exactly that text
for ``results/sample.db``. One builder per finding (:data:`FINDINGS`), each giving its markdown bullet or None
where the database lacks the finding.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence

from harness.analysis.claims import ORT, Claims, flop_gap_claims
from harness.analysis.results import load

WIDTH = 116


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


def _runtimes_bullet(claims: Claims) -> str | None:
    # Two runtimes side by side are already in the MACs bullet's fits; the finding is the three-way comparison.
    if not claims.side_by_side or len(claims.side_by_side[0].medians) < 3:
        return None
    names = [r for r, _ in claims.side_by_side[0].medians]
    medians = "; ".join(
        f"`{s.model}` " + " / ".join(f"{ms:.2f}" for _, ms in s.medians) + " ms" for s in claims.side_by_side
    )
    bullet = f"- **Three runtimes, same models** (median, {' / '.join(names)}): {medians}."
    if claims.layout_costs:
        top = claims.layout_costs[0]
        others = ", ".join(f"{r} {ms:.3f} ms" for r, ms in top.others)
        bullet += (
            f" Layout handling costs most in {top.runtime} on `{top.model}`: {top.layout_ms:.3f} ms "
            f"({_pct(top.layout_share)} of its profiled time) against {others}"
        )
        if top.converter_transposes is not None:
            bullet += f"; LiteRT's graph holds {top.converter_transposes} converter-added transposes (no per-op times)"
        bullet += "."
    return bullet


# One builder per finding, in the section's order; a builder whose finding the database lacks gives None.
FINDINGS: tuple[Callable[[Claims], str | None], ...] = (
    _macs_bullet,
    _layout_bullet,
    _depthwise_bullet,
    _overhead_bullet,
    _runtimes_bullet,
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
