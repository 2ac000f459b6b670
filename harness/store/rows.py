"""Typed rows the store hands back and takes: a run with its point counts, a sweep point, an op's time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.store.status import PointStatus, RunStatus


@dataclass(frozen=True)
class PointCounts:
    done: int = 0
    failed: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.done + self.failed + self.pending


@dataclass(frozen=True)
class RunRow:
    id: int
    started_at: str
    finished_at: str | None
    status: RunStatus
    spec_name: str
    flopgap_version: str
    host: str
    counts: PointCounts


@dataclass(frozen=True)
class PointRow:
    id: int
    point_key: str
    run_id: int  # the run that created the point
    artifact_sha: str
    device: str
    runtime: str
    runtime_version: str | None
    threads: int
    options: dict[str, Any]
    status: PointStatus
    failure_reason: str | None


@dataclass(frozen=True)
class OpTime:
    """Time of one graph node in a per-op profile."""

    node_name: str
    op_type: str
    time_us: float
    calls: int | None = None
    category: str | None = None
    module_path: str | None = None


POINT_ROW_COLUMNS = (
    "id, point_key, run_id, artifact_sha, device, runtime, runtime_version, threads, options_json, status, "
    "failure_reason"
)


def point_row(row: Sequence[Any]) -> PointRow:
    """A :class:`PointRow` from the columns of :data:`POINT_ROW_COLUMNS`."""
    (point_id, key, run_id, sha, device, runtime, version, threads, options, status, reason) = row
    return PointRow(
        point_id, key, run_id, sha, device, runtime, version, threads, json.loads(options), PointStatus(status), reason
    )
