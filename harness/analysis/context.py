"""Measurement contexts: what a latency depends on besides the model (device, runtime, precision, threads).

Fits, rankings and figures are made within one context; the runtime version and the input size travel as columns
so every table states them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

CONTEXT: tuple[str, ...] = ("device", "runtime", "precision", "threads")


@dataclass(frozen=True)
class Context:
    """One measurement context: the group a fit, a figure or a ranking is made in."""

    device: str
    runtime: str
    precision: str
    threads: int

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Context:
        return cls(str(row["device"]), str(row["runtime"]), str(row["precision"]), int(row["threads"]))

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """Rows of ``frame`` measured in this context."""
        return (
            (frame["device"] == self.device)
            & (frame["runtime"] == self.runtime)
            & (frame["precision"] == self.precision)
            & (frame["threads"] == self.threads)
        )

    def __str__(self) -> str:
        return f"{self.device}/{self.runtime} {self.threads} thread{'s' if self.threads != 1 else ''} {self.precision}"


def contexts_in(frame: pd.DataFrame) -> list[Context]:
    """Every context with a row in ``frame`` (which has the :data:`CONTEXT` columns), sorted."""
    if frame.empty:
        return []
    keys = frame[list(CONTEXT)].drop_duplicates().sort_values(list(CONTEXT))
    return [Context.of(row) for row in keys.to_dict("records")]


def joined(values: Iterable[Any]) -> str:
    """The distinct values (runtime versions, input shapes), sorted and comma-joined; ``unknown`` if none."""
    seen = sorted({str(v) for v in values if v is not None and v is not pd.NA and not _nan(v) and str(v)})
    return ", ".join(seen) if seen else "unknown"


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
