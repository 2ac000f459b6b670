"""Compare two runs: per matching point, B's median over A's with a bootstrap 95% CI of that ratio from the raw
samples, and whether the change is real.

A side is a run id of the default database, a database file (all its measured points), or ``DB:RUN``. Points match
when artifact (sha256), runtime, precision, threads, device and cluster (the CPUs the runner was pinned to, ``any``
when unpinned) agree. The CI resamples trials, then samples within each resampled trial (a two-level bootstrap):
trial-to-trial drift is usually larger than the spread inside a trial, and a CI that ignored it would call every
rerun significantly different. Points whose trials kept only a summary (``benchmark_model``) get the ratio of their
central values and no CI, and the table says so.

A change is **marked** when its CI excludes 1 and the ratio differs from 1 by more than ``threshold``; without a CI,
when the ratio alone does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

from devices.core.errors import FlopgapError
from devices.result import TrialResult
from harness.store import PointStatus, Store, resolve_db_path

MATCH = ("artifact_sha", "runtime", "precision", "threads", "device", "cluster")
RESAMPLES = 2000
MAX_PER_TRIAL = 1000  # samples drawn from each trial (without replacement) before resampling: bounds the work
SEED = 0
THRESHOLD = 0.05  # changes smaller than this are within the run-to-run noise of most devices
COMPARISON_COLUMNS = (
    "model_label", "format", "precision", "runtime", "threads", "device", "cluster", "a_ms", "b_ms", "ratio",
    "ci_low", "ci_high", "has_ci", "change", "a_point_id", "b_point_id",
)  # fmt: skip


class CompareError(FlopgapError):
    pass


class Change(StrEnum):
    SLOWER = "slower"
    FASTER = "faster"
    NONE = "no change"


@dataclass(frozen=True)
class Side:
    """One side of a comparison as the user named it: a database and, optionally, one run in it."""

    db: Path
    run_id: int | None
    text: str

    def __str__(self) -> str:
        return f"{self.db}:{self.run_id}" if self.run_id is not None else str(self.db)


def parse_side(text: str, default_db: Path | None = None) -> Side:
    """``12`` (run 12 of the default database), ``results/a.db`` (all of it) or ``results/a.db:12``."""
    if text.isdigit():
        return _existing(Side(resolve_db_path(default_db), int(text), text))
    path, sep, run = text.rpartition(":")
    if sep and run.isdigit() and path:
        return _existing(Side(Path(path), int(run), text))
    return _existing(Side(Path(text), None, text))


def _existing(side: Side) -> Side:
    if not side.db.is_file():
        raise CompareError(f"'{side.text}': no results database at {side.db}; give a run id, a database file or DB:RUN")
    return side


@dataclass
class Loaded:
    """A side's done points (one row each, with the match key) and each point's samples per trial (ns)."""

    points: pd.DataFrame
    samples: dict[int, list[np.ndarray]]


def load_side(side: Side) -> Loaded:
    with Store(side.db, readonly=True) as store:
        if side.run_id is not None and side.run_id not in {r.id for r in store.runs()}:
            raise CompareError(
                f"'{side.text}': {side.db} has no run {side.run_id}; 'flopgap results list --db {side.db}' lists them"
            )
        points = store.points_frame(side.run_id)
        points = points[(points["status"] == PointStatus.DONE) & points["median_ms"].notna()].copy()
        trials = store.trials_frame(points["point_id"].tolist())
        first_doc = trials.drop_duplicates("point_id").set_index("point_id")["runner_json"]
        points["cluster"] = [_cluster(first_doc.get(pid)) for pid in points["point_id"]]
        samples = {
            int(pid): [np.asarray(t, dtype=np.float64) for t in store.trial_samples(int(pid)) if t]
            for pid in points["point_id"]
        }
    points["precision"] = points["precision"].fillna("unknown")
    points["threads"] = points["threads"].astype("int64")
    return Loaded(points.reset_index(drop=True), samples)


def _cluster(doc: str | None) -> str:
    """The CPUs a point's runner was pinned to (``"4,5,6,7"``), or ``any``."""
    cpus = TrialResult.from_json(json.loads(doc)).pinned if doc else None
    return ",".join(str(c) for c in sorted(cpus)) if cpus else "any"


def _median_resamples(trials: Sequence[np.ndarray], rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Medians of ``resamples`` two-level bootstrap resamples: trials with replacement, then samples in each."""
    m = min(MAX_PER_TRIAL, min(len(t) for t in trials))
    data = np.stack([rng.choice(t, size=m, replace=False) if len(t) > m else t for t in trials])
    k = len(trials)
    out = np.empty(resamples)
    chunk = max(1, 4_000_000 // (k * m))
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        which = rng.integers(0, k, size=(n, k, 1))
        where = rng.integers(0, m, size=(n, k, m))
        out[start : start + n] = np.median(data[which, where].reshape(n, k * m), axis=1)
    return out


def ratio_ci(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """Percentile bootstrap 95% CI of median(B) / median(A) from per-trial samples."""
    rng = np.random.default_rng(seed)
    ratios = _median_resamples(b, rng, resamples) / _median_resamples(a, rng, resamples)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def change_of(ratio: float, ci: tuple[float, float] | None, threshold: float) -> Change:
    """Slower or faster when the change exceeds ``threshold`` and (with a CI) the CI excludes 1."""
    if abs(ratio - 1) <= threshold:
        return Change.NONE
    if ci is not None and ci[0] <= 1 <= ci[1]:
        return Change.NONE
    return Change.SLOWER if ratio > 1 else Change.FASTER


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    threshold: float
    rows: pd.DataFrame  # COMPARISON_COLUMNS, one row per matched point
    only_a: int
    only_b: int

    def regressions(self, above: float) -> pd.DataFrame:
        """Marked slowdowns whose ratio exceeds ``1 + above``."""
        rows = self.rows
        return rows[(rows["change"] == Change.SLOWER) & (rows["ratio"] > 1 + above)]


def compare(a: Side, b: Side, threshold: float = THRESHOLD) -> Comparison:
    """Match the points of ``a`` and ``b`` and compare each pair."""
    left, right = load_side(a), load_side(b)
    merged = left.points.merge(right.points, on=list(MATCH), suffixes=("_a", "_b"))
    rows = []
    for row in merged.to_dict("records"):
        ta, tb = left.samples.get(int(row["point_id_a"])), right.samples.get(int(row["point_id_b"]))
        ratio = float(row["median_ms_b"]) / float(row["median_ms_a"])
        ci = ratio_ci(ta, tb) if ta and tb else None
        rows.append(
            {
                "model_label": row["model_label_a"],
                "format": row["format_a"],
                "precision": row["precision"],
                "runtime": row["runtime"],
                "threads": int(row["threads"]),
                "device": row["device"],
                "cluster": row["cluster"],
                "a_ms": float(row["median_ms_a"]),
                "b_ms": float(row["median_ms_b"]),
                "ratio": ratio,
                "ci_low": ci[0] if ci else math.nan,
                "ci_high": ci[1] if ci else math.nan,
                "has_ci": ci is not None,
                "change": change_of(ratio, ci, threshold).value,
                "a_point_id": int(row["point_id_a"]),
                "b_point_id": int(row["point_id_b"]),
            }
        )
    frame = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    frame = frame.sort_values(["device", "runtime", "precision", "threads", "model_label"]).reset_index(drop=True)
    matched = len(frame)
    return Comparison(a, b, threshold, frame, len(left.points) - matched, len(right.points) - matched)


def parse_fraction(text: str) -> float:
    """``5%`` or ``0.05`` → 0.05."""
    value = text.strip()
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise CompareError(f"'{text}' is not a percentage; write e.g. 5% or 0.05") from None
    if not 0 <= number < 10:
        raise CompareError(f"'{text}' is out of range; write e.g. 5% or 0.05")
    return number
