"""One benchmark per device, across processes: the device lock every trial holds.

- **This machine**: an ``flock`` on ``<lock dir>/local.lock`` (``$FLOPGAP_LOCK_DIR``, else ``flopgap-locks`` in the
  system temp dir), whatever the inventory calls the device: every local device shares the same CPUs. The kernel
  drops the lock when its holder dies, ``kill -9`` included.
- **Boards**: the same ``flock`` on ``<work_dir>/lock`` on the board (a ``mkdir`` lock where the board has no
  ``flock``), held by a shell on its own SSH channel for as long as flopgap holds the lock; when flopgap closes the
  channel or dies, the shell's stdin ends and it lets go.

The holder writes who it is (pid, host, command, since when) next to the lock; a second flopgap that finds the device
busy says who holds it and waits. Once it holds the lock it kills every runner still registered by
:data:`~devices.supervisor.SUPERVISE` (one that outlived its controller) and reports each.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from devices.errors import DeviceError
from devices.supervisor import REAP

LOCK_DIR_ENV = "FLOPGAP_LOCK_DIR"
POLL_S = 0.05

# Run on the board on a channel of its own; args: work dir, holder text. Prints "busy HOLDER" (once, if it must
# wait), "stale PID COMMAND" per runner it killed, then "locked"; holds the lock until its stdin ends.
REMOTE_LOCK = (
    'mkdir -p "$1/running" || exit 3\n'
    'lock=$1/lock\n'
    'exec 9>>"$lock" || exit 3\n'
    'if command -v flock >/dev/null 2>&1; then\n'
    '  if ! flock -n 9; then echo "busy $(cat "$lock.holder" 2>/dev/null)"; flock 9 || exit 3; fi\n'
    'else\n'
    '  said=\n'
    '  while ! mkdir "$lock.d" 2>/dev/null; do\n'
    '    h=$(cat "$lock.d/pid" 2>/dev/null)\n'
    '    if [ -n "$h" ] && ! kill -0 "$h" 2>/dev/null; then rm -rf "$lock.d"; continue; fi\n'
    '    [ -n "$said" ] || { echo "busy $(cat "$lock.holder" 2>/dev/null)"; said=1; }\n'
    '    sleep 1\n'
    '  done\n'
    '  echo $$ > "$lock.d/pid"\n'
    'fi\n'
    'printf "%s\\n" "$2" > "$lock.holder"\n'
    'sh -c "$3" sh "$1/running" | sed "s/^/stale /"\n'
    'echo locked\n'
    'cat >/dev/null\n'
    '[ "$(cat "$lock.d/pid" 2>/dev/null)" != "$$" ] || rm -rf "$lock.d"\n'
)  # fmt: skip


def lock_dir() -> Path:
    """Where this machine's device locks live (shared by every flopgap on it)."""
    env = os.environ.get(LOCK_DIR_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / "flopgap-locks"


def holder() -> str:
    """Who holds a lock, for the message a waiting flopgap prints."""
    command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:120]
    return f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')} ({command})"


def busy_message(device: str, who: str) -> str:
    return f"device '{device}' is busy: held by {who.strip() or 'another flopgap'}; waiting for it"


def stale_message(device: str, line: str) -> str:
    pid, _, command = line.strip().partition(" ")
    return (
        f"device '{device}': killed a stale runner left by an earlier flopgap (pid {pid}: {command.strip() or '?'}); "
        "its measurement was lost"
    )


@contextlib.contextmanager
def local_lock(
    device: str, on_wait: Callable[[str], None], folder: Path | None = None, key: str = "local"
) -> Iterator[list[str]]:
    """Hold a device lock kept on this machine (``key``: ``local`` for this machine's CPUs; a phone's adb serial);
    yields the notices of stale runners killed on taking this machine's lock."""
    folder = folder or lock_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            folder.chmod(0o1777)  # every user's flopgap shares this machine's CPUs, and so its lock
        fd = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        why = f"cannot open its lock in {folder}: {exc.strerror}"
        raise DeviceError(f"device '{device}': {why}; set ${LOCK_DIR_ENV} to a writable folder") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(busy_message(device, os.pread(fd, 4096, 0).decode(errors="replace")))
            while True:  # polled, so Ctrl-C interrupts the wait
                time.sleep(POLL_S)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
        text = holder().encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
        yield [stale_message(device, ln) for ln in reap(registry(folder))] if key == "local" else []
    finally:
        os.close(fd)  # closing the descriptor drops the flock


def registry(folder: Path | None = None) -> Path:
    """Where this machine's supervised runners register while they run."""
    return (folder or lock_dir()) / "local.running"


def reap(folder: Path) -> list[str]:
    """Kill the runners registered in ``folder`` (call with the lock held); one ``PID COMMAND`` line per kill."""
    done = subprocess.run(["sh", "-c", REAP, "sh", str(folder)], capture_output=True, text=True, timeout=30)
    return [ln for ln in done.stdout.splitlines() if ln.strip()]
