"""Writes to the results database: runs, devices, artifacts, sweep points and their trials, profiles, calibrations.

Each method is one transaction (see :mod:`harness.store.connection`); a sweep point is created by
:meth:`Writes.ensure_point` and resumed from what :mod:`harness.store.reads` says is stored.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from devices.bounded import bounded
from devices.result import TrialResult
from harness.store.connection import StoreConnection
from harness.store.errors import DuplicateTrialError
from harness.store.keys import canonical_json, point_key
from harness.store.rows import OpTime
from harness.store.schema import STATS_COLUMNS
from harness.store.status import PointStatus
from harness.store.timelines import insert_timeline
from harness.store.timestamps import now

if TYPE_CHECKING:
    from exporters.artifact import Artifact

# Keys of a runner document that hold raw samples; they go to the samples table, not runner_json.
_SAMPLE_KEYS = ("samples_ns", "samples", "latencies_ns")


class SupportsToRow(Protocol):
    def to_row(self) -> Mapping[str, Any]: ...


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _scalar(value: Any) -> Any:
    """numpy scalars -> Python (sqlite3 cannot bind numpy.int64); bools -> 0/1."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    return value


class Writes(StoreConnection):
    """The write half of :class:`harness.store.Store`."""

    # -- artifacts ----------------------------------------------------------------------------------------------------

    def upsert_artifact(
        self,
        artifact: Artifact,
        macs: int | None,
        params_count: int | None,
        *,
        family: str | None,
        label: str,
    ) -> None:
        """Insert or refresh an artifact row keyed by its sha256; its source (a zoo model, a probe) names it."""
        row = {
            "sha256": artifact.sha256,
            "model": artifact.model,
            "label": label,
            "params_json": _json(dict(artifact.params)),
            "family": family,
            "format": getattr(artifact.format, "value", artifact.format),
            "precision": getattr(artifact.precision, "value", artifact.precision),
            "layout": artifact.layout,
            "input_shape_json": _json(list(artifact.input_shape)),
            "tool_versions_json": _json(artifact.tool_versions),
            "parity_error": artifact.parity_error,
            "parity_bound": artifact.parity_bound,
            "notes_json": _json(artifact.notes),
            "size_bytes": artifact.size_bytes,
            "macs": macs,
            "params_count": params_count,
            "path": str(artifact.path),
        }
        columns = ", ".join(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "sha256")
        with self._transaction("recording an artifact") as conn:
            conn.execute(
                f"INSERT INTO artifacts ({columns}) VALUES ({', '.join('?' * len(row))}) "
                f"ON CONFLICT (sha256) DO UPDATE SET {updates}",
                tuple(_scalar(v) for v in row.values()),
            )

    # -- points and trials -------------------------------------------------------------------------------------

    def ensure_point(
        self,
        run_id: int,
        artifact_sha: str,
        device: str,
        runtime: str,
        threads: int,
        options: Mapping[str, Any] | None = None,
        runtime_version: str | None = None,
        *,
        runner_version: str | None = None,
    ) -> int:
        """The id of the point with these key fields, created (pending) if new. Idempotent; an existing point keeps
        its status, so the caller skips ``done`` points and resumes others from :meth:`trials_done`.

        The runtime and runner versions are part of the key (see :func:`~harness.store.keys.point_key`): a point
        measured with another version is another point. A version not known yet (None) is filled from the first
        trial's runner document, without changing the key."""
        options = dict(options or {})
        key = point_key(
            artifact_sha, device, runtime, threads, options, runtime_version=runtime_version,
            runner_version=runner_version,
        )  # fmt: skip
        options_json = canonical_json(options)
        with self._transaction("recording a sweep point") as conn:
            missing = self._missing_refs(run_id, device)
            if missing:
                raise ValueError(f"cannot create point: {missing}")
            if runtime_version is not None or runner_version is not None:
                # A point created while the versions were unknown (its device unreachable) that never stored a
                # trial committed to no version: it takes these, so a rerun picks it up instead of leaving it failed.
                unversioned = point_key(artifact_sha, device, runtime, threads, options)
                conn.execute(
                    "UPDATE points SET point_key = ?, runtime_version = ?, runner_version = ? WHERE point_key = ? "
                    "AND runtime_version IS NULL AND runner_version IS NULL "
                    "AND NOT EXISTS (SELECT 1 FROM trials WHERE trials.point_id = points.id) "
                    "AND NOT EXISTS (SELECT 1 FROM points WHERE point_key = ?)",
                    (key, runtime_version, runner_version, unversioned, key),
                )
            conn.execute(
                "INSERT INTO points (point_key, run_id, artifact_sha, device, runtime, runtime_version, "
                "runner_version, threads, options_json, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (point_key) DO NOTHING",
                (
                    key,
                    run_id,
                    artifact_sha,
                    device,
                    runtime,
                    runtime_version,
                    runner_version,
                    int(threads),
                    options_json,
                    PointStatus.PENDING,
                    now(),
                ),
            )
            point_id = int(conn.execute("SELECT id FROM points WHERE point_key = ?", (key,)).fetchone()[0])
            if runtime_version is not None:
                conn.execute(
                    "UPDATE points SET runtime_version = ? WHERE id = ? AND runtime_version IS NULL",
                    (runtime_version, point_id),
                )
            conn.execute("INSERT OR IGNORE INTO run_points (run_id, point_id) VALUES (?, ?)", (run_id, point_id))
            return point_id

    def _missing_refs(self, run_id: int, device: str) -> str:
        checks = (
            ("SELECT 1 FROM runs WHERE id = ?", run_id, f"no run {run_id} (call start_run)"),
            ("SELECT 1 FROM devices WHERE name = ?", device, f"no device '{device}' (upsert it)"),
        )
        return "; ".join(msg for sql, arg, msg in checks if self._conn.execute(sql, (arg,)).fetchone() is None)

    def add_trial(
        self,
        point_id: int,
        trial_index: int,
        trial: TrialResult | Mapping[str, Any],
        samples_ns: Sequence[int] | Iterable[int] | None = None,
        *,
        run_id: int | None = None,
        started_at: str | None = None,
        state_before: Mapping[str, Any] | None = None,
        state_after: Mapping[str, Any] | None = None,
    ) -> int:
        """Store one trial and all its samples in one transaction; returns the trial id.

        ``trial`` is a backend's :class:`~devices.result.TrialResult`, or a runner document with its samples in
        ``samples_ns`` (the argument, else the document's key). Samples go to their own table, ``state_before`` /
        ``state_after`` to their own columns unless given here, the rest to ``runner_json``; ``median_ms`` is
        the result's central value. Raises :class:`DuplicateTrialError` if the (point, index) is already stored,
        leaving the stored trial untouched.
        """
        if not isinstance(trial, TrialResult):
            given = samples_ns if samples_ns is not None else trial.get("samples_ns") or ()
            trial = TrialResult.from_json({k: v for k, v in trial.items() if k not in _SAMPLE_KEYS}, given)
        samples = list(trial.samples_ns)
        if samples and min(samples) < 0:
            raise ValueError(f"trial {trial_index} of point {point_id} has a negative latency")
        centre = trial.centre_ns
        if centre is None:
            raise ValueError(f"trial {trial_index} of point {point_id} has no samples and no summary")
        n, median_ms = trial.n, centre / 1e6
        doc = trial.record()
        before = state_before if state_before is not None else trial.state_before
        after = state_after if state_after is not None else trial.state_after
        with self._transaction("storing a trial") as conn:
            try:
                cur = conn.execute(
                    "INSERT INTO trials (point_id, run_id, trial_index, started_at, runner_json, state_before_json, "
                    "state_after_json, n, median_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        point_id,
                        run_id,
                        int(trial_index),
                        started_at or now(),
                        _json(doc),
                        None if before is None else _json(before),
                        None if after is None else _json(after),
                        n,
                        median_ms,
                    ),
                )
            except sqlite3.IntegrityError as err:
                if "UNIQUE" in str(err):
                    raise DuplicateTrialError(f"point {point_id} already has trial {trial_index}") from None
                raise
            trial_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO samples (trial_id, seq, latency_ns) VALUES (?, ?, ?)",
                ((trial_id, seq, ns) for seq, ns in enumerate(samples)),
            )
            if trial.timeline:  # a sustained trial: its windows commit with it
                insert_timeline(conn, trial_id, trial.timeline)
            version, runner = doc.get("runtime_version"), doc.get("runner_version")
            conn.execute(
                "UPDATE points SET updated_at = ?, runtime_version = coalesce(runtime_version, ?), "
                "runner_version = coalesce(runner_version, ?) WHERE id = ?",
                (
                    now(),
                    version if isinstance(version, str) else None,
                    runner if isinstance(runner, str) else None,
                    point_id,
                ),
            )
            return trial_id

    def complete_point(self, point_id: int, stats: Mapping[str, Any] | SupportsToRow) -> None:
        """Mark a point done with its summary statistics: a mapping keyed by :data:`STATS_COLUMNS` (``n`` and
        ``median_ms`` required, others NULL when missing) or an object whose ``to_row()`` gives one
        (``harness.measure.stats.PointStats``). ``init_ms``, ``first_inference_ms`` and ``peak_rss_kib``, when left out,
        come from the stored runner documents (median init and first inference over trials, max RSS)."""
        row: dict[str, Any] = dict(stats) if isinstance(stats, Mapping) else dict(stats.to_row())
        for column, figure in self._runner_figures(point_id).items():
            row.setdefault(column, figure)
        unknown = sorted(set(row) - set(STATS_COLUMNS))
        if unknown:
            raise ValueError(f"unknown stats columns {unknown}; allowed: {', '.join(STATS_COLUMNS)}")
        if row.get("n") is None or row.get("median_ms") is None:
            raise ValueError("stats must include 'n' and 'median_ms'")
        values: dict[str, Any] = {}
        for column in STATS_COLUMNS:
            value = row.get(column)
            if column == "noisy_reasons" and value is not None and not isinstance(value, str):
                value = _json(list(value))
            values[column] = _scalar(value)
        assignments = ", ".join(f"{c} = ?" for c in values)
        with self._transaction("completing a point") as conn:
            cur = conn.execute(
                f"UPDATE points SET status = ?, failure_reason = NULL, {assignments}, updated_at = ? WHERE id = ?",
                (PointStatus.DONE, *values.values(), now(), point_id),
            )
            if cur.rowcount != 1:
                raise KeyError(f"no point {point_id}")

    def _runner_figures(self, point_id: int) -> dict[str, float | int | None]:
        with self._errors("reading trials"):
            rows = self._conn.execute(
                "SELECT json_extract(runner_json, '$.init_ns'), json_extract(runner_json, '$.first_inference_ns'), "
                "json_extract(runner_json, '$.peak_rss_kib') FROM trials WHERE point_id = ?",
                (point_id,),
            ).fetchall()
        init = [r[0] / 1e6 for r in rows if isinstance(r[0], (int, float))]
        first = [r[1] / 1e6 for r in rows if isinstance(r[1], (int, float))]
        rss = [int(r[2]) for r in rows if isinstance(r[2], (int, float))]
        return {
            "init_ms": statistics.median(init) if init else None,
            "first_inference_ms": statistics.median(first) if first else None,
            "peak_rss_kib": max(rss) if rss else None,
        }

    def fail_point(self, point_id: int, reason: str) -> None:
        """Mark a point failed; a later sweep retries it (its stored trials stay and count as done)."""
        with self._transaction("failing a point") as conn:
            cur = conn.execute(
                "UPDATE points SET status = ?, failure_reason = ?, updated_at = ? WHERE id = ?",
                (PointStatus.FAILED, bounded(reason), now(), point_id),  # a flood of output never fills a row
            )
            if cur.rowcount != 1:
                raise KeyError(f"no point {point_id}")

    def add_op_profile(self, point_id: int, ops: Iterable[OpTime], *, trial_id: int | None = None) -> int:
        """Store a per-op profile of a point (optionally of one trial) in one transaction; returns rows written."""
        rows = [
            (point_id, trial_id, op.node_name, op.op_type, float(op.time_us), op.calls, op.category, op.module_path)
            for op in ops
        ]
        with self._transaction("storing an op profile") as conn:
            conn.executemany(
                "INSERT INTO op_profiles (point_id, trial_id, node_name, op_type, time_us, calls, category, "
                "module_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def add_calibration(
        self,
        device: str,
        runtime: str,
        threads: int,
        peak_gflops: float | None,
        bandwidth_gbs: float | None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a roofline calibration of a device/runtime/threads; returns its id."""
        with self._transaction("storing a calibration") as conn:
            cur = conn.execute(
                "INSERT INTO calibrations (device, runtime, threads, peak_gflops, bandwidth_gbs, details_json, "
                "measured_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (device, runtime, int(threads), peak_gflops, bandwidth_gbs, _json(dict(details or {})), now()),
            )
            return int(cur.lastrowid or 0)

    def put_op_account(self, artifact_sha: str, frame: pd.DataFrame, unsupported: int) -> None:
        """Store (or replace) an artifact's per-op graph account frame."""
        with self._transaction("storing a graph account") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO op_accounts (artifact_sha, frame_json, unsupported, computed_at) "
                "VALUES (?, ?, ?, ?)",
                (artifact_sha, frame.to_json(orient="records"), int(unsupported), now()),
            )
