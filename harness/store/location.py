"""Where the results database lives when no path is given."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = Path("results") / "flopgap.db"
DB_ENV = "FLOPGAP_DB"


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The database path: the argument, else ``$FLOPGAP_DB``, else ``results/flopgap.db`` under the CWD."""
    if path is not None and str(path) != "":
        return Path(path)
    env = os.environ.get(DB_ENV)
    return Path(env) if env else DEFAULT_DB
