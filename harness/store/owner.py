"""Which process owns a run, so that a run left ``running`` by a ``kill -9`` can be told from one still going.

A run records its host, its pid and (on Linux) a start token: the boot id and the process's start time in clock
ticks (``/proc/<pid>/stat`` field 22). A pid can be reused by a later process; the token cannot, so a run is
alive only while a process with its pid *and* token exists. Runs of another host cannot be judged from here.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def start_token(pid: int) -> str | None:
    """``<boot id>/<start ticks>`` of a running process; None where /proc does not tell (not Linux), or where
    there is no such process (or only its zombie)."""
    stat = _read(_PROC / str(pid) / "stat")
    boot = _read(_PROC / "sys" / "kernel" / "random" / "boot_id")
    if stat is None or boot is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):  # a zombie has exited: only its parent has not reaped it
        return None
    return f"{boot}/{fields[19]}"


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
        if self.start is not None:
            token = start_token(self.pid)
            if token is not None or _PROC.joinpath("self").exists():
                return token == self.start  # no such pid, or the pid now belongs to a later process
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by another user
        return True
