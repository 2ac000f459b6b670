"""Latency statistics over raw per-iteration samples: summaries, bootstrap CI of the median, noisy-point flags.

Pure functions over numpy arrays. Inputs are nanoseconds (as the runner records them); every output is in
milliseconds. Conventions:

- percentiles use numpy's default linear interpolation;
- ``std`` is the sample standard deviation (ddof=1; 0 for a single sample), ``cv = std / mean``;
- the CI is a percentile bootstrap of the median (``scipy.stats.bootstrap``: resample with replacement, take the
  2.5th and 97.5th percentiles of the resampled medians) with a fixed-seed ``numpy.random.Generator``, so the same
  samples always give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.stats

NS_PER_MS = 1e6
DEFAULT_BOOTSTRAP_RESAMPLES = 2000
DEFAULT_SEED = 0
DEFAULT_CONFIDENCE = 0.95
DEFAULT_CV_THRESHOLD = 0.10  # std/mean of the pooled samples above this: the point is noisy
DEFAULT_SPREAD_THRESHOLD = 0.05  # (max - min trial median) / median of trial medians above this: noisy

_BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000  # resamples x samples per vectorised chunk: bounds memory (~32 MB)

Samples = npt.ArrayLike


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one set of latency samples; every value but ``n`` and ``cv`` is in milliseconds."""

    n: int
    median: float
    mean: float
    min: float
    max: float
    p10: float
    p90: float
    std: float
    cv: float
    ci_low: float  # bootstrap CI of the median
    ci_high: float

    def to_row(self) -> dict[str, Any]:
        """Flat mapping with unit-suffixed keys (``median_ms`` ...), as the results store names its columns."""
        row: dict[str, Any] = {"n": self.n, "cv": self.cv}
        for name in ("median", "mean", "min", "max", "p10", "p90", "std", "ci_low", "ci_high"):
            row[f"{name}_ms"] = getattr(self, name)
        return row


@dataclass(frozen=True)
class PointStats:
    """Statistics of one sweep point measured in several trials."""

    overall: LatencyStats  # over all trials' samples pooled
    trials: list[LatencyStats]
    trial_medians: list[float]  # ms, in trial order
    trial_spread: float  # (max - min trial median) / median of trial medians; 0 for one trial
    noisy: bool
    noisy_reasons: list[str]  # one line per threshold exceeded, naming the value and the threshold

    def to_row(self) -> dict[str, Any]:
        """The pooled summary plus spread and noise flags, keyed like the results store's point columns."""
        row = self.overall.to_row()
        row.update(trial_spread=self.trial_spread, noisy=self.noisy, noisy_reasons=list(self.noisy_reasons))
        return row


def _as_ms(samples_ns: Samples) -> npt.NDArray[np.float64]:
    array = np.asarray(samples_ns, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("no latency samples to summarise")
    if not np.all(np.isfinite(array)):
        raise ValueError("latency samples contain NaN or infinity")
    return array / NS_PER_MS


def bootstrap_median_ci(
    values: npt.NDArray[np.float64],
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median of ``values`` (same unit as ``values``)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    if n == 0:
        raise ValueError("no values to bootstrap")
    if n == 1:
        return float(values[0]), float(values[0])
    result = scipy.stats.bootstrap(
        (values,),
        np.median,
        n_resamples=resamples,
        batch=max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n),
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(
    samples_ns: Samples,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> LatencyStats:
    """Median, mean, extremes, p10/p90, std, CV and bootstrap CI of the median of ``samples_ns`` (ns in, ms out)."""
    ms = _as_ms(samples_ns)
    mean = float(np.mean(ms))
    std = float(np.std(ms, ddof=1)) if ms.size > 1 else 0.0
    p10, median, p90 = (float(v) for v in np.percentile(ms, [10.0, 50.0, 90.0]))
    ci_low, ci_high = bootstrap_median_ci(ms, resamples=resamples, confidence=confidence, seed=seed)
    return LatencyStats(
        n=int(ms.size),
        median=median,
        mean=mean,
        min=float(ms.min()),
        max=float(ms.max()),
        p10=p10,
        p90=p90,
        std=std,
        cv=std / mean if mean > 0 else float("inf"),
        ci_low=ci_low,
        ci_high=ci_high,
    )


def combine_trials(
    trials: Sequence[Samples],
    cv_threshold: float = DEFAULT_CV_THRESHOLD,
    spread_threshold: float = DEFAULT_SPREAD_THRESHOLD,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PointStats:
    """Pool the trials of one sweep point and flag it noisy.

    The point is noisy when the pooled CV exceeds ``cv_threshold`` (default 0.10: the samples scatter by more
    than 10 % of their mean) or the trial spread exceeds ``spread_threshold`` (default 0.05: the trials' medians
    disagree by more than 5 %, i.e. the device drifted between trials). Both comparisons are strict.
    """
    if len(trials) == 0:
        raise ValueError("no trials to combine")
    per_trial = [summarize(t, resamples=resamples, seed=seed) for t in trials]
    pooled = np.concatenate([np.asarray(t, dtype=np.float64).ravel() for t in trials])
    overall = summarize(pooled, resamples=resamples, seed=seed)
    medians = [s.median for s in per_trial]
    center = float(np.median(medians))
    spread = (max(medians) - min(medians)) / center if center > 0 else 0.0
    reasons = []
    if overall.cv > cv_threshold:
        reasons.append(f"cv {overall.cv:.3f} > {cv_threshold:.3f}")
    if spread > spread_threshold:
        reasons.append(f"trial spread {spread:.3f} > {spread_threshold:.3f}")
    return PointStats(
        overall=overall,
        trials=per_trial,
        trial_medians=medians,
        trial_spread=float(spread),
        noisy=bool(reasons),
        noisy_reasons=reasons,
    )


def combine_summaries(
    summaries: Sequence[dict[str, Any]],
    cv_threshold: float = DEFAULT_CV_THRESHOLD,
    spread_threshold: float = DEFAULT_SPREAD_THRESHOLD,
) -> dict[str, Any]:
    """Point statistics from trials that only report a summary (TFLite ``benchmark_model`` prints no raw runs).

    Each summary holds ``count, mean, std, min, max`` and optionally ``p50`` in ns. The point's median is the
    median of the trials' p50 (their mean where the tool printed no median, or printed 0: ``benchmark_model``
    prints whole microseconds, so a kernel under half of one reads ``median=0`` while its mean keeps the decimals;
    the last ``noisy_reasons`` line says which); CV is the count-weighted pooled std over the pooled mean; p10/p90
    and the bootstrap CI stay None, because a summary cannot give them honestly.
    """
    if not summaries:
        raise ValueError("no trial summaries to combine")
    counts = np.array([float(s["count"]) for s in summaries])
    means = np.array([float(s["mean"]) for s in summaries]) / NS_PER_MS
    stds = np.array([float(s.get("std") or 0.0) for s in summaries]) / NS_PER_MS
    has_p50 = all(s.get("p50") is not None and float(s["p50"]) > 0 for s in summaries)
    centres = np.array([float(s["p50"] if has_p50 else s["mean"]) for s in summaries]) / NS_PER_MS
    total = counts.sum()
    mean = float((counts * means).sum() / total)
    # pooled variance: within-trial plus between-trial parts
    var = float((counts * (stds**2 + (means - mean) ** 2)).sum() / total)
    std = var**0.5
    median = float(np.median(centres))
    spread = float((centres.max() - centres.min()) / median) if len(centres) > 1 and median > 0 else 0.0
    cv = std / mean if mean > 0 else 0.0
    reasons = []
    if cv > cv_threshold:
        reasons.append(f"cv {cv:.3f} > {cv_threshold:.3f}")
    if spread > spread_threshold:
        reasons.append(f"trial spread {spread:.3f} > {spread_threshold:.3f}")
    return {
        "n": int(total),
        "median_ms": median,
        "mean_ms": mean,
        "min_ms": float(min(float(s["min"]) for s in summaries) / NS_PER_MS),
        "max_ms": float(max(float(s["max"]) for s in summaries) / NS_PER_MS),
        "p10_ms": None,
        "p90_ms": None,
        "std_ms": std,
        "cv": cv,
        "ci_low_ms": None,
        "ci_high_ms": None,
        "trial_spread": spread,
        "noisy": bool(reasons),
        "noisy_reasons": [*reasons, f"summary-only trials; median from {'p50' if has_p50 else 'mean'}"],
    }


def target_ms(median_ms: float, p10_ms: float | None) -> float:
    """What a predictor learns from and is judged on for one point: the 10th percentile of its pooled samples, or
    the median where the runner gave only a summary (stock binaries print no percentiles).

    Contention only ever slows a run, so on a shared machine a point's median carries whatever else ran during its
    trials, and a predictor fitted on medians learns the spell its build ran in. On the development machine (a
    2-vCPU guest) the same 30 random nets measured by two runs hours apart shifted by up to 18% in median (the
    runs' median ratio, 0.97-1.18), and even with that shift taken out only 63-97% agreed within ±10%; in p10 they
    shifted by at most 7% (0.99-1.07) and 80-100% agreed. In a quiet run a model's p10 is 2-5% below its median.
    """
    if p10_ms is not None and math.isfinite(p10_ms) and p10_ms > 0:
        return float(p10_ms)
    return float(median_ms)
