"""FLOP share against time share, per op category of one profiled point: the one computation the report's headline
table, the headline sentences and the README's FLOP-gap claims read.

Shares come from :func:`harness.analysis.breakdowns.op_breakdown` (time as a share of the summed profiled node
times); a point whose artifact has no graph account has no FLOP shares (``None``), not zero ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class PointShares:
    """One profiled point's breakdown rows, indexed by category."""

    point_id: int
    rows: pd.DataFrame  # op_breakdown rows of the point, indexed by category

    @property
    def first(self) -> pd.Series:
        """The point's own columns (model, context, versions): the same on every row."""
        return self.rows.iloc[0]

    @property
    def accounted(self) -> bool:
        """Whether the artifact has a graph account (FLOP shares are known)."""
        return not self.rows["flops_share"].isna().all()

    def flops_share(self, category: str) -> float | None:
        """``category``'s share of FLOPs: 0 where it has no ops, None where the point (or category) has no account."""
        if not self.accounted:
            return None
        if category not in self.rows.index:
            return 0.0
        value = self.rows.at[category, "flops_share"]
        return None if pd.isna(value) else float(value)

    def time_share(self, category: str) -> float:
        return float(self.rows.at[category, "time_share"]) if category in self.rows.index else 0.0

    def n_ops(self, category: str) -> float:
        return float(self.rows.at[category, "n_ops"]) if category in self.rows.index else 0.0

    def present(self, category: str) -> bool:
        """Whether the point runs ops of ``category`` (in its graph account or its profile)."""
        if category not in self.rows.index:
            return False
        row = self.rows.loc[category]
        return bool((row["n_ops"] if pd.notna(row["n_ops"]) else 0) > 0 or row["n_profiled"] > 0)

    @property
    def time_share_with_flops(self) -> float:
        """The time share of the categories that do arithmetic (FLOPs > 0)."""
        return float(self.rows.loc[self.rows["flops"].fillna(0) > 0, "time_share"].sum())

    @property
    def profiler_overhead(self) -> float | None:
        """Summed node times over the whole-model median (None: no median)."""
        value = self.first["profiler_overhead"] if "profiler_overhead" in self.rows else math.nan
        return None if pd.isna(value) else float(value)


def point_shares(breakdown: pd.DataFrame) -> Iterator[PointShares]:
    """Each profiled point of ``breakdown`` (an :func:`~harness.analysis.breakdowns.op_breakdown` frame), in the
    frame's order."""
    for point_id, group in breakdown.groupby("point_id", sort=False):
        yield PointShares(int(point_id), group.set_index("category"))
