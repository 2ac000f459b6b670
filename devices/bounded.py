"""Bounded output: what flopgap reads from a command and keeps in messages never grows with what the command prints.

A runner that floods its output (a debug build, a runtime that logs every op) must neither exhaust memory nor
end up whole in a failure reason, a database row and a terminal. Output is streamed; the head and the tail are
kept (the runner's JSON document is its last line) and the middle is counted and dropped, and said so.
"""

from __future__ import annotations

import threading
from typing import IO

STDOUT_HEAD = 64 * 1024
STDOUT_TAIL = 32 * 1024 * 1024  # the runner's document (raw samples, a sustained timeline) ends stdout
STDERR_HEAD = 64 * 1024
STDERR_TAIL = 256 * 1024
REASON_CHARS = 2000  # a failure reason as stored and printed
LINE_CHARS = 500  # one line quoted in an error message


class HeadTail:
    """The first ``head`` and the last ``tail`` bytes of a stream, and how many bytes between them were dropped."""

    def __init__(self, head: int, tail: int) -> None:
        self._head_limit, self._tail_limit = head, tail
        self._head = bytearray()
        self._tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail += data
        excess = len(self._tail) - self._tail_limit
        if excess > 0:
            del self._tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        head = self._head.decode("utf-8", errors="replace")
        tail = self._tail.decode("utf-8", errors="replace")
        if not self.dropped:
            return head + tail
        return f"{head}\n[flopgap: {self.dropped} bytes of output dropped here]\n{tail}"


def drain(stream: IO[bytes], into: HeadTail) -> threading.Thread:
    """Read ``stream`` to its end in a daemon thread, into ``into``; returns the started thread."""

    def _read() -> None:
        with stream:
            while chunk := stream.read(1 << 16):
                into.add(chunk)

    thread = threading.Thread(target=_read, daemon=True)
    thread.start()
    return thread


def stdout_buffer() -> HeadTail:
    return HeadTail(STDOUT_HEAD, STDOUT_TAIL)


def stderr_buffer() -> HeadTail:
    return HeadTail(STDERR_HEAD, STDERR_TAIL)


def bounded(text: str, limit: int = REASON_CHARS) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and end with the count of what was dropped."""
    if len(text) <= limit:
        return text
    keep = max(limit // 2 - 40, 1)
    return f"{text[:keep]} [... {len(text) - 2 * keep} characters dropped ...] {text[-keep:]}"
