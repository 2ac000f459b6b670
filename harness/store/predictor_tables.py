"""The predictor's tables: kernel probes (which points they are), kernels per artifact, fitted predictors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.store.connection import StoreConnection
from harness.store.timestamps import now
from harness.store.writes import _json


@dataclass(frozen=True)
class KernelRow:
    """One kernel of an artifact as stored: its position, the runtime's node name, its type and its fields."""

    seq: int
    node_name: str
    kernel_type: str
    kernel: dict[str, Any]


@dataclass(frozen=True)
class PredictorRow:
    id: int
    device: str
    runtime: str
    threads: int
    precision: str
    library: str
    versions: dict[str, str]
    model: dict[str, Any]
    summary: dict[str, Any]
    created_at: str


class PredictorTables(StoreConnection):
    """Reads and writes of ``kernel_samples``, ``kernels`` and ``predictors`` (part of :class:`Store`).

    A database older than these tables, opened read-only, is read through an upgraded copy that has them (empty)."""

    def mark_kernel_sample(self, point_id: int, kernel_type: str, config: Mapping[str, Any], source: str,
                           round_: int) -> None:  # fmt: skip
        """Record that a point times a kernel probe (idempotent: a resumed build marks it again)."""
        with self._transaction("recording a kernel probe") as conn:
            conn.execute(
                "INSERT OR IGNORE INTO kernel_samples (point_id, kernel_type, config_json, source, round) "
                "VALUES (?, ?, ?, ?, ?)",
                (point_id, kernel_type, _json(dict(config)), source, int(round_)),
            )

    def has_kernels(self, artifact_sha: str, runtime: str) -> bool:
        with self._errors("reading kernels"):
            row = self._conn.execute(
                "SELECT 1 FROM kernels WHERE artifact_sha = ? AND runtime = ? LIMIT 1", (artifact_sha, runtime)
            ).fetchone()
        return row is not None

    def put_kernels(self, artifact_sha: str, runtime: str, kernels: Iterable[Mapping[str, Any]]) -> int:
        """Store (replace) an artifact's kernel list for a runtime; each mapping has ``name`` and ``type``."""
        rows = [
            (artifact_sha, runtime, seq, str(k["name"]), str(k["type"]), _json(dict(k)))
            for seq, k in enumerate(kernels)
        ]
        with self._transaction("storing kernels") as conn:
            conn.execute("DELETE FROM kernels WHERE artifact_sha = ? AND runtime = ?", (artifact_sha, runtime))
            conn.executemany(
                "INSERT INTO kernels (artifact_sha, runtime, seq, node_name, kernel_type, kernel_json) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def kernels_of(self, artifact_sha: str, runtime: str) -> list[KernelRow]:
        with self._errors("reading kernels"):
            rows = self._conn.execute(
                "SELECT seq, node_name, kernel_type, kernel_json FROM kernels WHERE artifact_sha = ? AND runtime = ? "
                "ORDER BY seq",
                (artifact_sha, runtime),
            ).fetchall()
        return [KernelRow(int(s), n, t, json.loads(j)) for s, n, t, j in rows]

    def kernels_frame(self, runtime: str | None = None) -> pd.DataFrame:
        """Every stored kernel: artifact_sha, runtime, seq, node_name, kernel_type, kernel_json."""
        where, params = ("WHERE runtime = ?", [runtime]) if runtime is not None else ("", [])
        with self._errors("reading kernels"):
            return pd.read_sql_query(
                f"SELECT artifact_sha, runtime, seq, node_name, kernel_type, kernel_json FROM kernels {where} "
                "ORDER BY artifact_sha, seq",
                self._conn,
                params=params,
            )

    def kernel_samples_frame(self) -> pd.DataFrame:
        """One row per kernel probe point: point_id, kernel_type, config_json, source, round."""
        with self._errors("reading kernel probes"):
            return pd.read_sql_query(
                "SELECT point_id, kernel_type, config_json, source, round FROM kernel_samples ORDER BY point_id",
                self._conn,
            )

    def add_predictor(
        self,
        device: str,
        runtime: str,
        threads: int,
        precision: str,
        library: str,
        versions: Mapping[str, str],
        model: Mapping[str, Any],
        summary: Mapping[str, Any],
    ) -> int:
        """Store a fitted predictor (JSON data); returns its id. The newest one per context is the one used."""
        with self._transaction("storing a predictor") as conn:
            cur = conn.execute(
                "INSERT INTO predictors (device, runtime, threads, precision, library, versions_json, model_json, "
                "summary_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (device, runtime, int(threads), precision, library, _json(dict(versions)), json.dumps(dict(model)),
                 _json(dict(summary)), now()),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

    def latest_predictor(self, device: str, runtime: str, threads: int, precision: str) -> PredictorRow | None:
        return self._predictor(
            "WHERE device = ? AND runtime = ? AND threads = ? AND precision = ? ORDER BY id DESC LIMIT 1",
            (device, runtime, int(threads), precision),
        )

    def predictor(self, predictor_id: int) -> PredictorRow | None:
        """The stored predictor with this id, or None."""
        return self._predictor("WHERE id = ?", (int(predictor_id),))

    def _predictor(self, where: str, params: tuple[Any, ...]) -> PredictorRow | None:
        with self._errors("reading predictors"):
            row = self._conn.execute(
                "SELECT id, device, runtime, threads, precision, library, versions_json, model_json, summary_json, "
                f"created_at FROM predictors {where}",
                params,
            ).fetchone()
        if row is None:
            return None
        pid, dev, rt, th, prec, lib, versions, model, summary, created = row
        return PredictorRow(
            int(pid), dev, rt, int(th), prec, lib, json.loads(versions), json.loads(model), json.loads(summary), created
        )

    def predictors_frame(self) -> pd.DataFrame:
        """Every stored predictor without its model text: id, context, library, versions, summary, created_at."""
        with self._errors("reading predictors"):
            return pd.read_sql_query(
                "SELECT id, device, runtime, threads, precision, library, versions_json, summary_json, created_at "
                "FROM predictors ORDER BY id",
                self._conn,
            )
