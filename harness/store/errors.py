"""Errors of the results store, and the translation of SQLite's environment failures into one-line ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from devices.core.errors import FlopgapError
from harness.store.location import DB_ENV

BUSY_TIMEOUT_S = 30.0


class StoreError(FlopgapError):
    """The results database cannot be opened or written (full disk, read-only, locked, damaged, newer schema)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class DuplicateTrialError(ValueError):
    """A trial with this (point, index) is already stored; the stored one is kept unchanged."""


def translate(err: sqlite3.Error, path: Path, action: str) -> StoreError | None:
    """A StoreError for failures the user must fix; None for errors that are bugs (constraint, misuse).

    The primary result code decides; the message text is the fallback for errors raised without one.
    """
    code = getattr(err, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None  # extended codes keep the primary in the low byte
    text = str(err)
    where = f"results database {path}"
    if primary == sqlite3.SQLITE_FULL or "database or disk is full" in text:
        msg = (
            f"{where} is full (no space left on its disk, or a size limit) while {action}; free space or pass "
            f"--db / set {DB_ENV} to a disk with room and rerun: stored points are kept and the sweep resumes"
        )
    elif primary == sqlite3.SQLITE_READONLY or "readonly database" in text:
        msg = f"{where} is read-only while {action}; make it and its directory writable, or pass --db elsewhere"
    elif primary == sqlite3.SQLITE_CANTOPEN or "unable to open" in text:
        msg = f"cannot open {where} ({text}); check that its directory exists and is writable, or pass --db"
    elif primary == sqlite3.SQLITE_IOERR or "disk I/O error" in text:
        msg = (
            f"disk I/O error on {where} while {action} ({text}); the disk may be full or failing: free space or "
            f"pass --db elsewhere and rerun (committed rows are kept)"
        )
    elif primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in text:
        msg = (
            f"{where} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s while {action}; "
            f"wait for the other sweep to finish or pass --db"
        )
    elif primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "not a database" in text or "malformed" in text:
        msg = f"{path} is not a flopgap results database or is damaged ({text}); pass --db to another file"
    else:
        return None
    return StoreError(msg, path)
