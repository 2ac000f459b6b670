"""Throttling detection on a sustained run's timeline, and the run's minute-1 vs last-minute summary.

A run is **throttled** when its latency drifts up *together with* falling CPU frequency or rising temperature:
from some window on, the (3-window running median) latency stays above the first span's median by more than
``latency_rise`` for at least ``persist`` of the remaining windows, and at that window's end or the one before
(state is read at window ends) the mean frequency has fallen by more than ``freq_drop`` or some thermal zone has
risen by ``temp_rise_c`` or more over its first-span value. The start is that window's start. Latency that drifts
with no thermal cause is reported, not flagged (load from elsewhere slows a run too).

"Minute 1" and "the last minute" are the first and last 60 s of the run, or its first and last thirds when it is
shorter than three minutes, so the two never overlap.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from devices.timeline import TimelineWindow

SPAN_S = 60.0
_NO_READINGS = "no CPU frequency or thermal zone was readable on the device, so throttling cannot be told"


@dataclass(frozen=True)
class ThrottleThresholds:
    latency_rise: float = 0.10  # +10% over the first span's median
    freq_drop: float = 0.05  # mean frequency 5% below the first span's
    temp_rise_c: float = 5.0  # any zone 5 °C above its first-span value
    persist: float = 0.8  # share of the windows from the start to the end that must stay slow


@dataclass(frozen=True)
class SustainedSummary:
    """A sustained run's first- and last-span medians, their ratio, and the throttling verdict."""

    span_s: float
    first_ms: float | None
    last_ms: float | None
    ratio: float | None  # last_ms / first_ms
    throttled: bool
    throttle_start_s: float | None
    reason: str  # one line: why throttled, or what was (not) seen

    def to_row(self) -> dict[str, Any]:
        return {
            "span_s": self.span_s,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "ratio": self.ratio,
            "throttled": self.throttled,
            "throttle_start_s": self.throttle_start_s,
            "reason": self.reason,
        }


def span_for(seconds: float) -> float:
    """The length of "minute 1" and "the last minute" in a run of ``seconds``."""
    return min(SPAN_S, seconds / 3)


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def summarize(
    windows: Sequence[TimelineWindow],
    cpus: Sequence[int] | None = None,
    thresholds: ThrottleThresholds | None = None,
) -> SustainedSummary:
    """The summary of one sustained run; ``cpus`` are the cores it ran on (frequencies averaged over them)."""
    thresholds = thresholds or ThrottleThresholds()
    timed = [w for w in windows if w.median_ms is not None]
    if not timed:
        return SustainedSummary(0.0, None, None, None, False, None, "no window completed a run")
    total = max(w.end_s for w in windows)
    span = span_for(total)
    first = [w for w in timed if w.end_s <= span + 1e-9] or timed[:1]
    last = [w for w in timed if w.start_s >= total - span - 1e-9] or timed[-1:]
    first_ms = _median([w.median_ms for w in first if w.median_ms is not None])
    last_ms = _median([w.median_ms for w in last if w.median_ms is not None])
    ratio = last_ms / first_ms if first_ms and last_ms is not None else None
    start, reason = _throttle_start(timed, first, cpus, thresholds)
    if reason == _NO_READINGS and ratio is not None and ratio > 1 + thresholds.latency_rise:
        reason += f"; latency drifted {ratio - 1:+.1%}"
    if start is None and ratio is not None and not reason:
        change = f"{ratio - 1:+.1%}"
        if ratio > 1 + thresholds.latency_rise:
            reason = f"latency drifted {change} with no fall in frequency or rise in temperature (load elsewhere?)"
        else:
            reason = f"steady: the last {span:g}s ran {change} against the first {span:g}s"
    return SustainedSummary(span, first_ms, last_ms, ratio, start is not None, start, reason)


def _throttle_start(
    timed: Sequence[TimelineWindow],
    first: Sequence[TimelineWindow],
    cpus: Sequence[int] | None,
    th: ThrottleThresholds,
) -> tuple[float | None, str]:
    base_ms = _median([w.median_ms for w in first if w.median_ms is not None]) or 0.0
    freqs = [f for f in (w.mean_khz(cpus) for w in first) if f is not None]
    base_khz = _median(freqs)
    zones = sorted({z for w in first for z in w.temps_c})
    base_temp = {z: _median([w.temps_c[z] for w in first if z in w.temps_c]) for z in zones}
    if base_khz is None and not zones:
        return None, _NO_READINGS
    medians = [w.median_ms or 0.0 for w in timed]
    # A 3-window running median: one slow window (a hiccup) is not a drift, a step is seen at its first window.
    smooth = [float(statistics.median(medians[max(0, i - 1) : i + 2])) for i in range(len(medians))]
    slow = [m > base_ms * (1 + th.latency_rise) for m in smooth]

    def cause(i: int) -> str | None:
        for j in (i, i - 1):  # state is read at window ends: a change just before window i shows at the end of i-1
            if not 0 <= j < len(timed):
                continue
            w = timed[j]
            khz = w.mean_khz(cpus)
            if base_khz and khz is not None and khz < base_khz * (1 - th.freq_drop):
                return f"frequency {khz / base_khz - 1:+.0%} ({base_khz / 1e3:.0f} → {khz / 1e3:.0f} MHz)"
            hot = [(w.temps_c[z] - t, z) for z, t in base_temp.items() if z in w.temps_c and t is not None]
            rise, zone = max(hot, default=(0.0, ""))
            if rise >= th.temp_rise_c:
                return f"temperature +{rise:.1f} °C ({zone})"
        return None

    for i in range(len(timed)):
        if not slow[i]:
            continue
        rest = slow[i:]
        if sum(rest) < th.persist * len(rest):
            continue
        why = cause(i)
        if why is not None:
            w = timed[i]
            return w.start_s, f"throttled from {w.start_s:g}s: latency {smooth[i] / base_ms - 1:+.0%} with {why}"
    return None, ""
