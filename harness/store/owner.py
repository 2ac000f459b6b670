"""Which process owns a run, so that a run left ``running`` by a ``kill -9`` can be told from one still going.

A run records its host, its pid and a start token: the host's boot time and the process's creation time, as psutil
reads them (Linux, macOS, Windows). A pid can be reused by a later process; the token cannot, so a run is alive only
while a process with its pid *and* token exists. Runs of another host cannot be judged from here.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

import psutil


def start_token(pid: int) -> str | None:
    """``<boot time>/<creation time>`` of a running process; None where there is no such process (or only its
    zombie) or the system does not tell."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # it has exited: only its parent has not reaped it
            return None
        return f"{psutil.boot_time():.0f}/{proc.create_time()!r}"
    except psutil.Error:
        return None


def _legacy(token: str) -> bool:
    """A token of flopgap before psutil: ``<Linux boot id>/<start ticks>``, which this version cannot recompute."""
    try:
        uuid.UUID(token.split("/", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ProcessId:
    """A process as a run records it: host name, pid and start token (None where unknown)."""

    host: str
    pid: int
    start: str | None = None

    @classmethod
    def current(cls) -> ProcessId:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, start_token(pid))

    def alive(self) -> bool | None:
        """True while the process runs, False once it is gone, None when this host cannot tell (another host)."""
        if self.host != socket.gethostname():
            return None
        if self.start is not None and not _legacy(self.start):
            return start_token(self.pid) == self.start  # no such pid, or the pid now belongs to a later process
        return start_token(self.pid) is not None
