"""Sustained runs in the results database: each sustained trial's timeline (one row per window: median latency,
runs, each core's frequency, each zone's temperature) and its summary (minute-1 and last-minute medians, their
ratio, and whether and when it throttled).

The tables are made by schema step 3 (:mod:`harness.store.schema`); a read-only open of an older database reads
them empty from its upgraded private copy (:mod:`harness.store.connection`). The timeline is written with its
trial, in the trial's transaction (:func:`insert_timeline`, called by ``Writes.add_trial``); the summary is derived
from it when the point completes (:mod:`harness.measure.sustained`) and can be recomputed from the stored timeline.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from devices.timeline import SustainedRun, TimelineWindow
from harness.store.connection import StoreConnection, point_filter

SUMMARY_COLUMNS = (
    "span_s", "first_ms", "last_ms", "ratio", "throttled", "throttle_start_s", "reason",
)  # fmt: skip


def insert_timeline(conn: sqlite3.Connection, trial_id: int, windows: Iterable[TimelineWindow]) -> None:
    """Write a trial's windows inside the caller's (the trial's) transaction."""
    conn.executemany(
        "INSERT INTO timelines (trial_id, window_index, start_s, end_s, runs, median_ms, cpu_khz_json, "
        "temps_c_json, state_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                trial_id,
                w.index,
                w.start_s,
                w.end_s,
                w.runs,
                w.median_ms,
                json.dumps(dict(w.cpu_khz), sort_keys=True),
                json.dumps(dict(w.temps_c), sort_keys=True),
                w.state_s,
            )
            for w in windows
        ),
    )


_TIMELINE_COLUMNS = (
    "t.point_id", "w.trial_id", "t.trial_index", "w.window_index", "w.start_s", "w.end_s", "w.runs", "w.median_ms",
    "w.cpu_khz_json", "w.temps_c_json", "w.state_s",
)  # fmt: skip
_SUSTAINED_COLUMNS = (
    "s.point_id", "s.trial_id", "t.trial_index", "s.seconds", "s.window_s", "s.start_unix", "s.span_s", "s.first_ms",
    "s.last_ms", "s.ratio", "s.throttled", "s.throttle_start_s", "s.reason",
)  # fmt: skip


class Timelines(StoreConnection):
    """The sustained-run half of :class:`harness.store.Store`."""

    def timeline(self, trial_id: int) -> tuple[TimelineWindow, ...]:
        """A trial's windows in order (empty for a trial that was not sustained)."""
        with self._errors("reading a timeline"):
            rows = self._conn.execute(
                "SELECT window_index, start_s, end_s, runs, median_ms, cpu_khz_json, temps_c_json, state_s "
                "FROM timelines WHERE trial_id = ? ORDER BY window_index",
                (trial_id,),
            ).fetchall()
        return tuple(
            TimelineWindow(
                index=int(i),
                start_s=start,
                end_s=end,
                runs=int(runs),
                median_ns=None if median is None else median * 1e6,
                cpu_khz={str(k): int(v) for k, v in json.loads(khz).items()},
                temps_c={str(k): float(v) for k, v in json.loads(temps).items()},
                state_s=state,
            )
            for i, start, end, runs, median, khz, temps, state in rows
        )

    def sustained_trial_ids(self, point_id: int) -> list[int]:
        """Ids of a point's trials that have a timeline, in trial order."""
        with self._errors("reading timelines"):
            rows = self._conn.execute(
                "SELECT t.id FROM trials t WHERE t.point_id = ? AND EXISTS "
                "(SELECT 1 FROM timelines w WHERE w.trial_id = t.id) ORDER BY t.trial_index",
                (point_id,),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def sustained_run(self, trial_id: int) -> SustainedRun | None:
        """How a sustained trial went (its length, window, start), from its stored runner document."""
        with self._errors("reading a trial"):
            row = self._conn.execute(
                "SELECT json_extract(runner_json, '$.sustained') FROM trials WHERE id = ?", (trial_id,)
            ).fetchone()
        return SustainedRun.from_json(json.loads(row[0])) if row and row[0] else None

    def put_sustained_summary(
        self, trial_id: int, point_id: int, run: SustainedRun, summary: Mapping[str, Any]
    ) -> None:
        """Store (or replace) a sustained trial's summary: the keys of :data:`SUMMARY_COLUMNS`."""
        missing = [c for c in SUMMARY_COLUMNS if c not in summary]
        if missing:
            raise ValueError(f"sustained summary lacks {', '.join(missing)}")
        values = [summary[c] for c in SUMMARY_COLUMNS]
        values[SUMMARY_COLUMNS.index("throttled")] = int(bool(summary["throttled"]))
        with self._transaction("storing a sustained summary") as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO sustained_trials (trial_id, point_id, seconds, window_s, start_unix, "
                f"{', '.join(SUMMARY_COLUMNS)}) VALUES ({', '.join('?' * (5 + len(SUMMARY_COLUMNS)))})",
                (trial_id, point_id, run.seconds, run.window_s, run.start_unix, *values),
            )

    def timelines_frame(self, point_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """One row per window: point_id, trial_id, trial_index, window_index, start_s, end_s, runs, median_ms,
        mean_khz (over the cores read), max_temp_c, and the readings as JSON text."""
        where, params = point_filter(point_ids, "t.point_id")
        frame = self._frame(
            f"SELECT {', '.join(_TIMELINE_COLUMNS)} FROM timelines w "
            f"JOIN trials t ON t.id = w.trial_id {where} ORDER BY t.point_id, t.trial_index, w.window_index",
            params,
            "reading timelines",
        )
        frame["median_ms"] = frame["median_ms"].astype("float64")
        frame["mean_khz"] = frame["cpu_khz_json"].map(_mean_of).astype("float64")
        frame["max_temp_c"] = frame["temps_c_json"].map(_max_of).astype("float64")
        return frame

    def sustained_frame(self, point_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """One row per sustained trial with its summary."""
        where, params = point_filter(point_ids, "s.point_id")
        frame = self._frame(
            f"SELECT {', '.join(_SUSTAINED_COLUMNS)} FROM sustained_trials s "
            f"JOIN trials t ON t.id = s.trial_id {where} ORDER BY s.point_id, t.trial_index",
            params,
            "reading sustained summaries",
        )
        frame["throttled"] = frame["throttled"].astype(bool)
        for column in ("first_ms", "last_ms", "ratio", "throttle_start_s"):
            frame[column] = frame[column].astype("float64")
        return frame


def _names(columns: Sequence[str]) -> list[str]:
    return [c.split(".")[-1] for c in columns]


def _mean_of(text: str) -> float | None:
    values = list(json.loads(text).values())
    return sum(values) / len(values) if values else None


def _max_of(text: str) -> float | None:
    values = list(json.loads(text).values())
    return max(values) if values else None
