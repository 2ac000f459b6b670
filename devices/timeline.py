"""A sustained run's timeline, typed: per window the median latency and run count, each core's frequency and each
thermal zone's temperature, as flopgap's runner reads them on the device while the model runs (``--sustained``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TimelineWindow:
    """One window of a sustained run; times are seconds from the start of the sustained loop."""

    index: int
    start_s: float
    end_s: float
    runs: int
    median_ns: float | None  # None when no run finished inside the window
    cpu_khz: Mapping[str, int] = field(default_factory=dict)  # cpu index -> current frequency
    temps_c: Mapping[str, float] = field(default_factory=dict)  # thermal zone -> temperature
    state_s: float | None = None  # when the state was read

    @property
    def median_ms(self) -> float | None:
        return None if self.median_ns is None else self.median_ns / 1e6

    def mean_khz(self, cpus: Sequence[int] | None = None) -> float | None:
        """Mean current frequency over ``cpus`` (all cores when None); None if none was read."""
        values = [v for k, v in self.cpu_khz.items() if cpus is None or int(k) in cpus]
        return sum(values) / len(values) if values else None

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> TimelineWindow:
        median = row.get("median_ns")
        state = row.get("state_s")
        return cls(
            index=int(row["index"]),
            start_s=float(row["start_s"]),
            end_s=float(row["end_s"]),
            runs=int(row["runs"]),
            median_ns=None if median is None else float(median),
            cpu_khz={str(k): int(v) for k, v in (row.get("cpu_khz") or {}).items()},
            temps_c={str(k): float(v) for k, v in (row.get("temps_c") or {}).items()},
            state_s=None if state is None else float(state),
        )


@dataclass(frozen=True)
class SustainedRun:
    """How a sustained run went: its length and window, its start (Unix time) and how its samples were thinned."""

    seconds: float
    window_s: float
    start_unix: float
    runs_total: int
    kept_every: int = 1  # raw samples kept: every k-th run

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SustainedRun:
        return cls(
            seconds=float(data["seconds"]),
            window_s=float(data["window_s"]),
            start_unix=float(data["start_unix"]),
            runs_total=int(data["runs_total"]),
            kept_every=int(data.get("kept_every") or 1),
        )

    def to_json(self) -> dict[str, float | int]:
        return {
            "seconds": self.seconds,
            "window_s": self.window_s,
            "start_unix": self.start_unix,
            "runs_total": self.runs_total,
            "kept_every": self.kept_every,
        }
