"""Writing a results frame to a file other tools read: CSV or Parquet."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import pandas as pd

from devices.core.errors import FlopgapError


class ExportFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


def export_frame(frame: pd.DataFrame, path: str | os.PathLike[str], format: ExportFormat | str) -> int:
    """Write a frame as CSV (no index) or Parquet (needs pyarrow); returns the row count."""
    fmt = ExportFormat(format)
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt is ExportFormat.CSV:
            frame.to_csv(out, index=False)
        else:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise FlopgapError("parquet export needs pyarrow: pip install pyarrow (or use --format csv)") from None
            frame.to_parquet(out, index=False)
    except OSError as err:
        raise FlopgapError(f"cannot write {out} ({err.strerror or err}); choose another --out") from None
    return len(frame)
