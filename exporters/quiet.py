"""Keep converter chatter off the user's terminal, but keep it for the error message when conversion fails.

litert-torch prints progress through ``rich`` on stdout, its C++ core logs straight to file descriptor 2, and
the torch exporters warn through ``logging``. Redirecting file descriptors 1 and 2 catches all three without
handing any library a stream object that would outlive the block.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class CapturedLog:
    """What the converter printed; ``text`` is filled when the ``captured_output`` block exits."""

    text: str = ""

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.text.splitlines()[-n:])


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]


@contextlib.contextmanager
def captured_output() -> Iterator[CapturedLog]:
    """Send everything written to file descriptors 1 and 2 (and Python warnings) to a buffer."""
    log = CapturedLog()
    _flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield log
        finally:
            _flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            log.text = sink.read().decode("utf-8", errors="replace")
