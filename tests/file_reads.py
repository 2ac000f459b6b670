"""Reads of files, as the kernel reports them (inotify ``IN_ACCESS``): a test acts right after a reader has seen a
value, instead of after a sleep that a loaded machine may outlast. Watches folders, so files replaced by a rename
(as ``tests/fake_sysfs.py`` writes them) stay watched; a bind mount shows the same inodes, so reads made inside a
private mount namespace count too."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from inotify_simple import INotify, flags


class FileReads:
    """Counts reads of files by name in ``folders``, from the moment it is made."""

    def __init__(self, *folders: Path) -> None:
        self._inotify = INotify()
        for folder in folders:
            self._inotify.add_watch(folder, flags.ACCESS)

    def drain(self) -> None:
        """Forget the reads made so far."""
        self._inotify.read(timeout=0)

    def wait(self, name: str, count: int = 1, timeout_s: float = 240) -> None:
        """Block until ``name`` has been read ``count`` more times (reads already queued count)."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while seen < count:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise AssertionError(f"{name} was read {seen} times in {timeout_s:.0f}s, not {count}")
            seen += sum(event.name == name for event in self._inotify.read(timeout=left_ms))

    def close(self) -> None:
        self._inotify.close()

    def __enter__(self) -> FileReads:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()
