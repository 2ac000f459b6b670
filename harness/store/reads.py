"""Typed reads of the results database: what a resumed sweep and the ``results`` command ask."""

from __future__ import annotations

import io

import pandas as pd

from harness.store.connection import StoreConnection
from harness.store.owner import ProcessId
from harness.store.rows import POINT_ROW_COLUMNS, PointCounts, PointRow, RunRow, VersionRow, point_row
from harness.store.status import PointStatus, RunStatus

# A point's status in a run: its outcome recorded when the run ended, else (run going, or older) its status now.
_OUTCOME = "coalesce(rp.outcome, p.status)"


def _version_order(v: VersionRow) -> tuple[str, str, str]:
    return (v.runtime, v.runtime_version or "", v.runner_version or "")


class Reads(StoreConnection):
    """The row-reading half of :class:`harness.store.Store` (pandas frames are in :mod:`harness.store.frames`)."""

    def point(self, point_id: int) -> PointRow:
        """One point by id (KeyError if unknown)."""
        with self._errors("reading a point"):
            row = self._conn.execute(f"SELECT {POINT_ROW_COLUMNS} FROM points WHERE id = ?", (point_id,)).fetchone()
        if row is None:
            raise KeyError(f"no point {point_id}")
        return point_row(row)

    def point_status(self, point_id: int) -> PointStatus:
        """``pending``, ``done`` or ``failed`` (KeyError if unknown)."""
        return self.point(point_id).status

    def trials_done(self, point_id: int) -> set[int]:
        """Indices of the trials already stored for a point."""
        with self._errors("reading trials"):
            rows = self._conn.execute("SELECT trial_index FROM trials WHERE point_id = ?", (point_id,)).fetchall()
        return {int(r[0]) for r in rows}

    def trial_samples(self, point_id: int) -> list[list[int]]:
        """Each stored trial's samples (ns), in trial-index order."""
        with self._errors("reading samples"):
            rows = self._conn.execute(
                "SELECT s.trial_id, s.latency_ns FROM samples s JOIN trials t ON t.id = s.trial_id "
                "WHERE t.point_id = ? ORDER BY t.trial_index, s.seq",
                (point_id,),
            ).fetchall()
        trials: dict[int, list[int]] = {}
        for trial_id, latency_ns in rows:
            trials.setdefault(trial_id, []).append(latency_ns)
        return list(trials.values())

    def pending_points(self, run_id: int) -> list[PointRow]:
        """Points of a run that are not done (pending or failed), in creation order."""
        with self._errors("reading points"):
            rows = self._conn.execute(
                f"SELECT {POINT_ROW_COLUMNS} FROM points WHERE status != ? "
                "AND id IN (SELECT point_id FROM run_points WHERE run_id = ?) ORDER BY id",
                (PointStatus.DONE, run_id),
            ).fetchall()
        return [point_row(r) for r in rows]

    def point_counts(self, run_id: int) -> PointCounts:
        """How many of a run's points are done, failed and pending: as they stood when the run ended (a later run
        that retries a failed point does not rewrite this one), or now while it is going."""
        with self._errors("counting points"):
            rows = self._conn.execute(
                f"SELECT {_OUTCOME}, count(*) FROM points p JOIN run_points rp ON rp.point_id = p.id "
                f"WHERE rp.run_id = ? GROUP BY {_OUTCOME}",
                (run_id,),
            ).fetchall()
        return PointCounts(**{PointStatus(status).value: int(n) for status, n in rows})

    def runs(self) -> list[RunRow]:
        """All runs, oldest first, with their point counts, owning process and the versions they measured."""
        with self._errors("reading runs"):
            rows = self._conn.execute(
                "SELECT id, started_at, finished_at, status, spec_name, flopgap_version, host, pid, process_start "
                "FROM runs ORDER BY id"
            ).fetchall()
            counts = self._conn.execute(
                f"SELECT rp.run_id, {_OUTCOME}, count(*) FROM run_points rp JOIN points p ON p.id = rp.point_id "
                f"GROUP BY rp.run_id, {_OUTCOME}"
            ).fetchall()
            versions = self._conn.execute(
                "SELECT DISTINCT rp.run_id, p.runtime, p.runtime_version, p.runner_version FROM run_points rp "
                "JOIN points p ON p.id = rp.point_id"
            ).fetchall()
        per_run: dict[int, dict[str, int]] = {}
        for run_id, status, n in counts:
            per_run.setdefault(int(run_id), {})[PointStatus(status).value] = int(n)
        run_versions: dict[int, list[VersionRow]] = {}
        for run_id, runtime, version, runner in versions:
            run_versions.setdefault(int(run_id), []).append(VersionRow(runtime, version, runner))
        return [
            RunRow(
                run,
                started,
                finished,
                RunStatus(status),
                spec,
                version,
                host,
                PointCounts(**per_run.get(run, {})),
                None if pid is None else ProcessId(host, int(pid), start),
                tuple(sorted(run_versions.get(run, []), key=_version_order)),
            )
            for run, started, finished, status, spec, version, host, pid, start in rows
        ]

    def versions(self) -> list[VersionRow]:
        """Every (runtime, runtime version, runner version) the database holds points of."""
        with self._errors("reading versions"):
            rows = self._conn.execute("SELECT DISTINCT runtime, runtime_version, runner_version FROM points").fetchall()
        return sorted((VersionRow(*r) for r in rows), key=_version_order)

    def latest_run_id(self) -> int | None:
        with self._errors("reading runs"):
            row = self._conn.execute("SELECT max(id) FROM runs").fetchone()
        return None if row[0] is None else int(row[0])

    def has_op_account(self, artifact_sha: str) -> bool:
        with self._errors("reading graph accounts"):
            row = self._conn.execute("SELECT 1 FROM op_accounts WHERE artifact_sha = ?", (artifact_sha,)).fetchone()
        return row is not None

    def op_accounts(self) -> dict[str, pd.DataFrame]:
        """Artifact sha → its stored per-op account frame."""
        with self._errors("reading graph accounts"):
            rows = self._conn.execute("SELECT artifact_sha, frame_json FROM op_accounts").fetchall()
        return {sha: pd.read_json(io.StringIO(text), orient="records") for sha, text in rows}
