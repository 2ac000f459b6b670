"""The results database: SQLite in WAL mode, one transaction per trial."""

from harness.store.database import Store
from harness.store.errors import DuplicateTrialError, StoreError
from harness.store.export import ExportFormat, export_frame
from harness.store.frames import EXPORT_TABLES
from harness.store.identity import fingerprint
from harness.store.keys import point_key
from harness.store.location import DB_ENV, DEFAULT_DB, resolve_db_path
from harness.store.owner import ProcessId
from harness.store.rows import DeviceRecord, OpTime, PointCounts, PointRow, RunRow, VersionRow
from harness.store.schema import MIGRATIONS, SCHEMA_VERSION, STATS_COLUMNS, AppliedMigration, Migration
from harness.store.status import PointStatus, RunStatus

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "EXPORT_TABLES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATS_COLUMNS",
    "AppliedMigration",
    "DeviceRecord",
    "DuplicateTrialError",
    "ExportFormat",
    "Migration",
    "OpTime",
    "PointCounts",
    "PointRow",
    "PointStatus",
    "ProcessId",
    "RunRow",
    "RunStatus",
    "Store",
    "StoreError",
    "VersionRow",
    "export_frame",
    "fingerprint",
    "point_key",
    "resolve_db_path",
]
