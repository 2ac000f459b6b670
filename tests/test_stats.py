"""Latency statistics: hand-computed summaries, bootstrap CI behaviour, noisy-point flags."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.measure import stats
from harness.measure.stats import combine_trials, summarize

MS = 1_000_000  # ns per ms


def test_summary_of_one_to_ten_ms() -> None:
    s = summarize(np.arange(1, 11) * MS)
    assert s.n == 10
    assert s.median == pytest.approx(5.5)
    assert s.mean == pytest.approx(5.5)
    assert (s.min, s.max) == (1.0, 10.0)
    # Linear interpolation: p10 sits at index 0.9 → 1 + 0.9; p90 at index 8.1 → 9 + 0.1.
    assert s.p10 == pytest.approx(1.9)
    assert s.p90 == pytest.approx(9.1)
    # Sample std: sum of squared deviations is 82.5, over n - 1 = 9.
    assert s.std == pytest.approx(math.sqrt(82.5 / 9))
    assert s.cv == pytest.approx(math.sqrt(82.5 / 9) / 5.5)
    assert s.ci_low <= s.median <= s.ci_high


def test_accepts_lists_of_ints() -> None:
    assert summarize([3 * MS, 1 * MS, 2 * MS]).median == 2.0


def test_cv_of_constructed_array() -> None:
    # 8 ms and 12 ms alternating: mean 10, every deviation ±2, so std = sqrt(4 · 100 / 99).
    samples = np.tile([8 * MS, 12 * MS], 50)
    s = summarize(samples)
    assert s.mean == pytest.approx(10.0)
    assert s.cv == pytest.approx(math.sqrt(400 / 99) / 10)


def test_single_sample() -> None:
    s = summarize([2_500_000])
    assert (s.n, s.median, s.std, s.cv, s.ci_low, s.ci_high) == (1, 2.5, 0.0, 0.0, 2.5, 2.5)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")]])
def test_rejects_empty_and_non_finite(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(bad)


def test_bootstrap_is_reproducible_and_seeded() -> None:
    samples = np.random.default_rng(3).normal(10 * MS, 1 * MS, 200)
    assert summarize(samples) == summarize(samples)
    assert summarize(samples, seed=1) != summarize(samples, seed=2)


def test_bootstrap_chunking_does_not_change_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(4).normal(10.0, 1.0, 301)
    whole = stats.bootstrap_median_ci(values, resamples=500)
    monkeypatch.setattr(stats, "_BOOTSTRAP_CHUNK_ELEMENTS", 301 * 7)  # 7 resamples per chunk
    assert stats.bootstrap_median_ci(values, resamples=500) == whole


def test_ci_contains_true_median_and_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(11)
    true_median = 10.0  # N(10, 1) in ms
    small = summarize(rng.normal(true_median, 1.0, 100) * MS)
    large = summarize(rng.normal(true_median, 1.0, 5000) * MS)
    for s in (small, large):
        assert s.ci_low < true_median < s.ci_high
    # The median's standard error shrinks as 1/sqrt(n): 50× the samples, about 7× narrower.
    ratio = (small.ci_high - small.ci_low) / (large.ci_high - large.ci_low)
    assert 4.0 < ratio < 11.0


def test_ci_coverage_is_near_nominal() -> None:
    rng = np.random.default_rng(12)
    true_median = math.log(2)  # exponential(1)
    hits = 0
    for i in range(100):
        lo, hi = stats.bootstrap_median_ci(rng.exponential(1.0, 80), resamples=400, seed=i)
        hits += lo <= true_median <= hi
    assert 85 <= hits <= 100


def test_clean_trials_are_not_noisy() -> None:
    trials = [np.tile([9.9 * MS, 10.1 * MS], 20) + k * 0.1 * MS for k in range(3)]  # medians 10.0, 10.1, 10.2
    point = combine_trials(trials)
    assert point.trial_medians == pytest.approx([10.0, 10.1, 10.2])
    assert point.trial_spread == pytest.approx(0.2 / 10.1)
    assert point.overall.n == 120
    assert len(point.trials) == 3
    assert not point.noisy and point.noisy_reasons == []


def test_drifting_trials_are_noisy_by_spread() -> None:
    trials = [np.full(30, m * MS) for m in (10.0, 10.2, 10.6)]
    point = combine_trials(trials)
    assert point.trial_spread == pytest.approx(0.6 / 10.2)
    assert point.overall.cv < 0.10
    assert point.noisy
    assert point.noisy_reasons == ["trial spread 0.059 > 0.050"]


def test_scattered_samples_are_noisy_by_cv() -> None:
    trials = [np.tile([8 * MS, 12 * MS], 25) for _ in range(3)]  # identical medians, cv ≈ 0.2
    point = combine_trials(trials)
    assert point.trial_spread == 0.0
    assert point.noisy_reasons == ["cv 0.201 > 0.100"]


def test_thresholds_are_arguments() -> None:
    trials = [np.tile([9.9 * MS, 10.1 * MS], 20) + k * 0.1 * MS for k in range(3)]
    assert combine_trials(trials, spread_threshold=0.01).noisy
    assert not combine_trials([np.tile([8 * MS, 12 * MS], 25)], cv_threshold=0.25).noisy


def test_single_trial_has_zero_spread() -> None:
    point = combine_trials([np.arange(1, 11) * MS])
    assert point.trial_spread == 0.0
    assert point.overall == point.trials[0]


def test_no_trials_is_an_error() -> None:
    with pytest.raises(ValueError):
        combine_trials([])


def test_to_row_uses_unit_suffixed_keys() -> None:
    point = combine_trials([np.full(30, m * MS) for m in (10.0, 10.2, 10.6)])
    row = point.to_row()
    assert set(row) == {
        "n", "median_ms", "mean_ms", "min_ms", "max_ms", "p10_ms", "p90_ms", "std_ms", "cv",
        "ci_low_ms", "ci_high_ms", "trial_spread", "noisy", "noisy_reasons",
    }  # fmt: skip
    assert (row["n"], row["median_ms"], row["min_ms"], row["max_ms"]) == (90, 10.2, 10.0, 10.6)
    assert row["noisy"] is True and row["noisy_reasons"] == ["trial spread 0.059 > 0.050"]


def test_summary_trials_whose_printed_median_is_zero_take_their_mean() -> None:
    """benchmark_model prints whole microseconds: a probe of 0.4 µs reads median=0 while its mean keeps 0.412. A
    point's median of 0 ms (what the p50s gave before) is no time; the means are what the tool measured."""
    from harness.measure.stats import combine_summaries

    tiny = [{"count": 20, "mean": 412.0, "std": 40.0, "min": 0.0, "max": 1000.0, "p50": 0.0},
            {"count": 20, "mean": 388.0, "std": 35.0, "min": 0.0, "max": 1000.0, "p50": 0.0}]  # fmt: skip
    point = combine_summaries(tiny)
    assert point["median_ms"] == pytest.approx(0.0004)  # the median of the two means, 412 and 388 ns
    assert point["noisy_reasons"][-1] == "summary-only trials; median from mean"
    printed = [dict(s, p50=1000.0) for s in tiny]  # a printed median of 1 µs is a reading: it stays the centre
    assert combine_summaries(printed)["median_ms"] == pytest.approx(0.001)
