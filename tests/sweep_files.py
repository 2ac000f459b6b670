"""The sweep specs and device inventories the tests write, built in one place: a small sweep of conv1x1 (and a
depthwise conv) and a board behind the loopback sshd (tests/conftest.py), each test naming only what it changes."""

from __future__ import annotations

import os
import pwd
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from tests.conftest import Sshd

# What the sweep tests measure unless they say otherwise: few, short trials with no time floor.
PROTOCOL: dict[str, Any] = {"trials": 2, "warmup_runs": 2, "warmup_seconds": 0, "runs": 20, "min_seconds": 0}


def sweep_spec(
    name: str,
    runtimes: Sequence[str],
    devices: Sequence[str] | None = None,
    *,
    channels: int = 16,
    depthwise_channels: int | None = None,
    size: int = 8,
    depthwise: bool = True,
    threads: Sequence[int] | None = None,
    clusters: Sequence[str] | None = None,
    **protocol: Any,
) -> str:
    """A sweep of conv1x1 (``channels`` in and out, ``size`` square) and, with ``depthwise``, a depthwise conv
    (``depthwise_channels``, by default ``channels``), as TOML; ``protocol`` overrides :data:`PROTOCOL` (a key given
    as None is left to the spec's default)."""
    doc: dict[str, Any] = {"name": name, "runtimes": list(runtimes)}
    if devices is not None:
        doc["devices"] = list(devices)
    if threads is not None:
        doc["threads"] = list(threads)
    if clusters is not None:
        doc["clusters"] = list(clusters)
    models = [{"name": "conv1x1", "params": {"cin": channels, "cout": channels, "h": size, "w": size}}]
    if depthwise:
        dw = depthwise_channels or channels
        models.append({"name": "depthwise_conv", "params": {"channels": dw, "h": size, "w": size}})
    doc["models"] = models
    doc["protocol"] = {k: v for k, v in (PROTOCOL | protocol).items() if v is not None}
    return tomli_w.dumps(doc)


def ssh_board(sshd: Sshd, work_dir: Path, **keys: Any) -> dict[str, Any]:
    """A device table for a board behind the loopback ``sshd`` (this machine, as this user, running this Python);
    ``keys`` add to it or override it, and a key given as None is left out."""
    table: dict[str, Any] = {
        "transport": "ssh",
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "key": str(sshd.client_key),
        "known_hosts": str(sshd.known_hosts),
        "python": sys.executable,
        "work_dir": str(work_dir),
    }
    return {k: v for k, v in (table | keys).items() if v is not None}


def inventory_text(devices: Mapping[str, Mapping[str, Any]]) -> str:
    """A devices.toml holding ``devices`` (name -> table)."""
    return tomli_w.dumps({"devices": {name: dict(table) for name, table in devices.items()}})


def write_inventory(path: Path, devices: Mapping[str, Mapping[str, Any]]) -> Path:
    """Writes :func:`inventory_text` to ``path`` and returns it."""
    path.write_text(inventory_text(devices))
    return path


def committed_trials(db: Path) -> int:
    """How many trials ``db`` holds as committed now (0 before the database or its tables exist), read while a sweep
    in another process may still be writing it."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM trials").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
