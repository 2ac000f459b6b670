"""Timestamps as the store writes them: UTC, ISO 8601 with milliseconds, so text order is time order."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
