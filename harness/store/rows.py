"""Typed rows the store hands back and takes: a run with its point counts, a sweep point, an op's time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.store.owner import ProcessId
from harness.store.status import PointStatus, RunStatus


@dataclass(frozen=True)
class PointCounts:
    done: int = 0
    failed: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.done + self.failed + self.pending


@dataclass(frozen=True, order=True)
class VersionRow:
    """A runtime version and the runner version that measured points of it (None where not recorded)."""

    runtime: str
    runtime_version: str | None
    runner_version: str | None

    def __str__(self) -> str:
        runner = f" (runner {self.runner_version})" if self.runner_version else ""
        return f"{self.runtime} {self.runtime_version or 'unknown'}{runner}"


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
    owner: ProcessId | None = None  # None: recorded before runs kept their pid
    versions: tuple[VersionRow, ...] = ()

    @property
    def shown_status(self) -> str:
        """The status, with a run still marked running whose process is gone shown as interrupted (only a
        read-write open records that, at the next run's start)."""
        if self.status is RunStatus.RUNNING and self.owner is not None and self.owner.alive() is False:
            return str(RunStatus.INTERRUPTED)
        return str(self.status)


@dataclass(frozen=True)
class DeviceRecord:
    """Where a device's facts went: the stored name its points use, and whether a new machine appeared behind
    its inventory name (``replaced`` names the identity stored before)."""

    name: str
    inventory_name: str
    fingerprint: str | None
    replaced: str | None = None


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
    runner_version: str | None = None


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
    "failure_reason, runner_version"
)


def point_row(row: Sequence[Any]) -> PointRow:
    """A :class:`PointRow` from the columns of :data:`POINT_ROW_COLUMNS`."""
    (point_id, key, run_id, sha, device, runtime, version, threads, options, status, reason, runner) = row
    return PointRow(
        point_id,
        key,
        run_id,
        sha,
        device,
        runtime,
        version,
        threads,
        json.loads(options),
        PointStatus(status),
        reason,
        runner,
    )
