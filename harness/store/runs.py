"""Writes of runs: a run starts owned by this process and ends with the outcome of each of its points.

A run killed with ``kill -9`` cannot close itself; it stays ``running`` until a later run on the same host starts
and finds its process gone (:class:`~harness.store.owner.ProcessId`), then it is closed as ``interrupted``.
"""

from __future__ import annotations

import sqlite3

from harness import __version__
from harness.store.connection import StoreConnection
from harness.store.owner import ProcessId
from harness.store.status import FINAL_RUN_STATUSES, RunStatus
from harness.store.timestamps import now

# Each point's status as it stood when its run ended: a later run that finishes a point does not rewrite history.
_SNAPSHOT_OUTCOMES = (
    "UPDATE run_points SET outcome = (SELECT status FROM points WHERE points.id = run_points.point_id) WHERE run_id = ?"
)


class RunWrites(StoreConnection):
    """Starting and finishing runs (part of :class:`harness.store.Store`)."""

    def start_run(self, spec_name: str, spec_toml: str) -> int:
        """Record a sweep starting now, owned by this process; returns the run id.

        Runs of this host still marked running whose process is gone are closed as interrupted first.
        """
        me = ProcessId.current()
        with self._transaction("starting a run") as conn:
            _close_dead_runs(conn, me.host)
            cur = conn.execute(
                "INSERT INTO runs (started_at, status, spec_name, spec_toml, flopgap_version, host, pid, "
                "process_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now(), RunStatus.RUNNING, spec_name, spec_toml, __version__, me.host, me.pid, me.start),
            )
            return int(cur.lastrowid or 0)

    def close_dead_runs(self) -> list[int]:
        """Close as interrupted the runs of this host still marked running whose process is gone; their ids."""
        with self._transaction("closing interrupted runs") as conn:
            return _close_dead_runs(conn, ProcessId.current().host)

    def finish_run(self, run_id: int, status: RunStatus | str) -> None:
        """Close a run as completed, interrupted or failed, recording each of its points' outcome."""
        if status not in FINAL_RUN_STATUSES:
            raise ValueError(f"run status must be one of {', '.join(FINAL_RUN_STATUSES)}; got {status!r}")
        with self._transaction("finishing a run") as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (RunStatus(status), now(), run_id)
            )
            if cur.rowcount != 1:
                raise KeyError(f"no run {run_id}")
            conn.execute(_SNAPSHOT_OUTCOMES, (run_id,))


def _close_dead_runs(conn: sqlite3.Connection, host: str) -> list[int]:
    rows = conn.execute(
        "SELECT id, pid, process_start FROM runs WHERE status = ? AND host = ? AND pid IS NOT NULL",
        (RunStatus.RUNNING, host),
    ).fetchall()
    dead = [int(run_id) for run_id, pid, start in rows if ProcessId(host, int(pid), start).alive() is False]
    for run_id in dead:
        # finished_at stays NULL: when a killed process stopped is not known, only that it did.
        conn.execute("UPDATE runs SET status = ? WHERE id = ?", (RunStatus.INTERRUPTED, run_id))
        conn.execute(_SNAPSHOT_OUTCOMES, (run_id,))
    return dead
