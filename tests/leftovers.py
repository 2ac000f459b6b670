"""The test session leaves no process behind: whatever it started, directly or not, must be gone when it ends.

At session start this process becomes a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``): a process whose parent
dies is then reparented to it rather than to init, so everything the session started stays its descendant, even
commands the loopback sshd ran for a test after that sshd is killed, chromium's helpers and double-forked daemons
such as the adb server. At the end, every live descendant that was not there at the start is a leftover: found by
lineage, never by guessing from a command's name, so another user's processes are never blamed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    start_ticks: int  # clock ticks since boot: a pid reused later is another process
    argv: tuple[str, ...]

    def line(self) -> str:
        return f"{self.pid}: {' '.join(self.argv)}"


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux only); whether it worked."""
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def die_with_parent() -> None:
    """In a child between fork and exec (``Popen(preexec_fn=...)``): the kernel sends it SIGTERM when the thread that
    started it ends, however that ends. A test session killed by a signal runs no teardown, so a server it started
    (the loopback sshd) would otherwise outlive it; the setting survives exec of a binary that is not set-user-ID."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def reap_adopted() -> None:
    """Collect the exit status of every child that has ended (adopted orphans above all), so no zombie stays."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def processes() -> dict[int, Proc]:
    """Every live (not zombie) process this user can see, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        found[int(entry.name)] = Proc(int(entry.name), int(fields[1]), int(fields[19]), argv)
    return found


def snapshot() -> set[tuple[int, int]]:
    """What runs now, as (pid, start) pairs."""
    return {(p.pid, p.start_ticks) for p in processes().values()}


def leftovers(before: set[tuple[int, int]], root: int) -> list[Proc]:
    """Live descendants of ``root`` that were not running at ``before``."""
    procs = processes()
    mine = {root}
    grew = True
    while grew:
        grew = False
        for p in procs.values():
            if p.ppid in mine and p.pid not in mine:
                mine.add(p.pid)
                grew = True
    return [procs[pid] for pid in sorted(mine - {root}) if (pid, procs[pid].start_ticks) not in before]
