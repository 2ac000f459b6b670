"""Digests of local files: what pushes, caches and exports compare."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algo`` is any :mod:`hashlib` name; phones without ``sha256sum`` need md5)."""
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, algo).hexdigest()
