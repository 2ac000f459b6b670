"""The states a run and a sweep point go through; the schema's CHECK constraints are written from these."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class PointStatus(StrEnum):
    PENDING = "pending"  # created, not all trials stored yet
    DONE = "done"  # every trial stored and the statistics written
    FAILED = "failed"  # a later sweep retries it; its stored trials count as done


FINAL_RUN_STATUSES: tuple[RunStatus, ...] = tuple(s for s in RunStatus if s is not RunStatus.RUNNING)


def sql_values(statuses: Iterable[StrEnum]) -> str:
    """``('a', 'b')``: the values as an SQL list, for ``CHECK (status IN …)``."""
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"
