"""The results database: SQLite in WAL mode, one transaction per trial."""

from harness.store.database import (
    EXPORT_TABLES,
    SCHEMA_VERSION,
    DuplicateTrialError,
    ExportFormat,
    OpTime,
    PointCounts,
    Store,
    StoreError,
    point_key,
    resolve_db_path,
)

__all__ = [
    "EXPORT_TABLES",
    "SCHEMA_VERSION",
    "DuplicateTrialError",
    "ExportFormat",
    "OpTime",
    "PointCounts",
    "Store",
    "StoreError",
    "point_key",
    "resolve_db_path",
]
