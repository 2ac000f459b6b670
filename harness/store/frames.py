"""pandas frames of the results database, one reader per table, for analysis and export."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from devices.arm_cores import format_cpus
from devices.core.errors import FlopgapError
from devices.vocabulary import parse_point_options
from harness.store.connection import StoreConnection, point_filter
from harness.store.export import ExportFormat, export_frame
from harness.store.schema import STATS_COLUMNS
from harness.store.status import PointStatus
from harness.store.timelines import Timelines


def _cluster(options: Any) -> str | None:
    """``big (cpus 4-7)`` for a point placed on a cluster (its options say which, and its CPU ids), else None."""
    doc = parse_point_options(options if isinstance(options, str) else None)
    name, cpus = doc.get("cluster"), doc.get("cpus")
    if not name:
        return None
    return f"{name} (cpus {format_cpus(cpus)})" if cpus else name


class Frames(StoreConnection):
    """The pandas half of :class:`harness.store.Store`."""

    def points_frame(self, run_id: int | None = None) -> pd.DataFrame:
        """One row per point, joined with its artifact and device; ``run_id`` limits to the points of a run."""
        stats = ", ".join(f"p.{c}" for c in STATS_COLUMNS)
        where, params = "", []
        if run_id is not None:
            where, params = "WHERE p.id IN (SELECT point_id FROM run_points WHERE run_id = ?)", [run_id]
        frame = self._frame(
            f"""SELECT p.id AS point_id, p.run_id, a.model, coalesce(a.label, p.artifact_sha) AS model_label, a.family,
                a.params_json AS params, a.format, a.precision, a.layout, a.input_shape_json AS input_shape, p.device,
                d.transport, p.runtime, p.runtime_version, p.runner_version, p.threads, p.options_json AS options,
                p.status, p.failure_reason, {stats},
                (SELECT count(*) FROM trials t WHERE t.point_id = p.id) AS n_trials,
                a.macs, a.params_count, a.size_bytes, a.parity_error, p.artifact_sha, p.point_key, p.updated_at
            FROM points p LEFT JOIN artifacts a ON a.sha256 = p.artifact_sha LEFT JOIN devices d ON d.name = p.device
            {where} ORDER BY p.id""",
            params,
        )
        # Columns that are NULL on every row come back as object; give them their real dtype.
        for column, kind in STATS_COLUMNS.items():
            if kind == "REAL":
                frame[column] = frame[column].astype("float64")
        for column in ("n", "peak_rss_kib", "macs", "params_count"):
            frame[column] = frame[column].astype("Int64")
        frame["parity_error"] = frame["parity_error"].astype("float64")
        frame["noisy"] = frame["noisy"].astype("boolean")
        frame["input_shape"] = frame["input_shape"].map(
            lambda s: "x".join(str(d) for d in json.loads(s)) if isinstance(s, str) else None
        )
        frame["noisy_reasons"] = frame["noisy_reasons"].map(
            lambda s: "; ".join(json.loads(s)) if isinstance(s, str) else None
        )
        frame["cluster"] = frame["options"].map(_cluster)
        return frame

    def samples_frame(self, point_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """Raw samples: point_id, trial_id, trial_index, seq, latency_ns, latency_ms."""
        where, params = point_filter(point_ids, "t.point_id")
        frame = self._frame(
            "SELECT t.point_id, s.trial_id, t.trial_index, s.seq, s.latency_ns FROM samples s "
            f"JOIN trials t ON t.id = s.trial_id {where} ORDER BY t.point_id, t.trial_index, s.seq",
            params,
        )
        frame["latency_ms"] = frame["latency_ns"] / 1e6
        return frame

    def trials_frame(self, point_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """One row per trial with its runner document and device state as JSON text."""
        where, params = point_filter(point_ids, "point_id")
        return self._frame(
            "SELECT id AS trial_id, point_id, run_id, trial_index, started_at, n, median_ms, runner_json, "
            f"state_before_json, state_after_json FROM trials {where} ORDER BY point_id, trial_index",
            params,
        )

    def runs_frame(self) -> pd.DataFrame:
        """One row per run with its point counts (one column per point status)."""
        # Each point as it stood when the run ended (see Reads.point_counts), or now while the run is going.
        counts = ", ".join(
            f"count(CASE WHEN coalesce(rp.outcome, p.status) = '{s}' THEN 1 END) AS {s}" for s in PointStatus
        )
        return self._frame(
            f"""SELECT r.id AS run_id, r.started_at, r.finished_at, r.status, r.spec_name, r.flopgap_version, r.host,
                r.pid, {counts}, r.spec_toml
            FROM runs r LEFT JOIN run_points rp ON rp.run_id = r.id LEFT JOIN points p ON p.id = rp.point_id
            GROUP BY r.id ORDER BY r.id"""
        )

    def op_profiles_frame(self, point_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """One row per profiled node."""
        where, params = point_filter(point_ids, "point_id")
        return self._frame(
            "SELECT point_id, trial_id, node_name, op_type, time_us, calls, category, module_path "
            f"FROM op_profiles {where} ORDER BY point_id, id",
            params,
        )

    def devices_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM devices ORDER BY id")

    def artifacts_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM artifacts ORDER BY model, sha256")

    def calibrations_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM calibrations ORDER BY id")

    def frame(self, table: str, run_id: int | None = None) -> pd.DataFrame:
        """The frame of an exportable table by name (see :data:`EXPORT_TABLES`); ``run_id`` applies to points."""
        if table not in EXPORT_TABLES:
            raise FlopgapError(f"unknown table '{table}'; tables: {', '.join(EXPORT_TABLES)}")
        if table == "points":
            return self.points_frame(run_id)
        if run_id is not None and table in ("samples", "trials", "op_profiles", "timelines", "sustained"):
            ids = self.points_frame(run_id)["point_id"].tolist()
            return EXPORT_TABLES[table](self, ids)
        return EXPORT_TABLES[table](self)

    def export(
        self, path: str | os.PathLike[str], format: ExportFormat | str, table: str = "points", run_id: int | None = None
    ) -> int:
        """Write a table as CSV or Parquet; returns the number of rows written."""
        return export_frame(self.frame(table, run_id), path, format)


EXPORT_TABLES: dict[str, Callable[..., pd.DataFrame]] = {
    "points": Frames.points_frame,
    "samples": Frames.samples_frame,
    "trials": Frames.trials_frame,
    "runs": Frames.runs_frame,
    "op_profiles": Frames.op_profiles_frame,
    "devices": Frames.devices_frame,
    "artifacts": Frames.artifacts_frame,
    "calibrations": Frames.calibrations_frame,
    "timelines": Timelines.timelines_frame,
    "sustained": Timelines.sustained_frame,
}
