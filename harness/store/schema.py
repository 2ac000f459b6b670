"""The tables of a results database and the numbered migrations that build them.

A database records each schema step it has taken in ``schema_migrations`` (version, what it did, when), and
``PRAGMA user_version`` holds the last one, so opening a file costs one header read. A schema change is a new
:class:`Migration` appended to :data:`MIGRATIONS`: opening an older database read-write applies the missing steps
in place, in one transaction. Statements contain no ';' so they run one by one inside that transaction
(``executescript`` would commit half-way).

Databases written before migrations were recorded (version 1, no ``schema_migrations`` table) gain the table on
their first read-write open, with version 1 marked as applied at an unknown time (``applied_at`` NULL).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from harness.store.status import PointStatus, RunStatus, sql_values

# Summary statistics of a point, as stored: column -> SQLite type.
STATS_COLUMNS: dict[str, str] = {
    "n": "INTEGER",
    "median_ms": "REAL",
    "mean_ms": "REAL",
    "min_ms": "REAL",
    "max_ms": "REAL",
    "p10_ms": "REAL",
    "p90_ms": "REAL",
    "std_ms": "REAL",
    "cv": "REAL",
    "ci_low_ms": "REAL",
    "ci_high_ms": "REAL",
    "trial_spread": "REAL",
    "noisy": "INTEGER",  # 0/1
    "noisy_reasons": "TEXT",  # JSON list of strings
    "init_ms": "REAL",
    "first_inference_ms": "REAL",
    "peak_rss_kib": "INTEGER",
}

_STATS_DDL = ",\n    ".join(f"{name} {kind}" for name, kind in STATS_COLUMNS.items())

# Changing a status enum changes these CHECKs: that needs a migration that rebuilds the table.
_TABLES_V1: tuple[str, ...] = (
    f"""CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL CHECK (status IN {sql_values(RunStatus)}),
    spec_name TEXT NOT NULL,
    spec_toml TEXT NOT NULL,
    flopgap_version TEXT NOT NULL,
    host TEXT NOT NULL
)""",
    """CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    transport TEXT NOT NULL,
    facts_json TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
)""",
    """CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    label TEXT NOT NULL,
    params_json TEXT NOT NULL,
    family TEXT,
    format TEXT NOT NULL,
    precision TEXT NOT NULL,
    layout TEXT NOT NULL,
    input_shape_json TEXT NOT NULL,
    tool_versions_json TEXT NOT NULL,
    parity_error REAL,
    parity_bound REAL,
    notes_json TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    macs INTEGER,
    params_count INTEGER,
    path TEXT
)""",
    f"""CREATE TABLE points (
    id INTEGER PRIMARY KEY,
    point_key TEXT NOT NULL UNIQUE,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    artifact_sha TEXT NOT NULL,  -- no FK: a point whose export failed is recorded (failed) with no artifact row
    device TEXT NOT NULL REFERENCES devices(name),
    runtime TEXT NOT NULL,
    runtime_version TEXT,
    threads INTEGER NOT NULL,
    options_json TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '{PointStatus.PENDING}' CHECK (status IN {sql_values(PointStatus)}),
    failure_reason TEXT,
    {_STATS_DDL},
    updated_at TEXT NOT NULL
)""",
    # Which runs covered which points: a resumed sweep's run lists the points an earlier run created.
    """CREATE TABLE run_points (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    point_id INTEGER NOT NULL REFERENCES points(id) ON DELETE CASCADE,
    PRIMARY KEY (run_id, point_id)
) WITHOUT ROWID""",
    "CREATE INDEX run_points_point ON run_points(point_id)",
    """CREATE TABLE trials (
    id INTEGER PRIMARY KEY,
    point_id INTEGER NOT NULL REFERENCES points(id) ON DELETE CASCADE,
    run_id INTEGER REFERENCES runs(id),
    trial_index INTEGER NOT NULL CHECK (trial_index >= 0),
    started_at TEXT NOT NULL,
    runner_json TEXT NOT NULL,
    state_before_json TEXT,
    state_after_json TEXT,
    n INTEGER NOT NULL,
    median_ms REAL NOT NULL,
    UNIQUE (point_id, trial_index)
)""",
    # One row per sample rather than a BLOB per trial: plain SQL reads them with no decoding convention.
    """CREATE TABLE samples (
    trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    latency_ns INTEGER NOT NULL,
    PRIMARY KEY (trial_id, seq)
) WITHOUT ROWID""",
    """CREATE TABLE op_profiles (
    id INTEGER PRIMARY KEY,
    point_id INTEGER NOT NULL REFERENCES points(id) ON DELETE CASCADE,
    trial_id INTEGER REFERENCES trials(id) ON DELETE CASCADE,
    node_name TEXT NOT NULL,
    op_type TEXT NOT NULL,
    time_us REAL NOT NULL,
    calls INTEGER,
    category TEXT,
    module_path TEXT
)""",
    "CREATE INDEX op_profiles_point ON op_profiles(point_id)",
    """CREATE TABLE calibrations (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL REFERENCES devices(name),
    runtime TEXT NOT NULL,
    threads INTEGER NOT NULL,
    peak_gflops REAL,
    bandwidth_gbs REAL,
    details_json TEXT NOT NULL,
    measured_at TEXT NOT NULL
)""",
    # The graph accounting of each artifact (one JSON frame per artifact), so a results database carries its
    # FLOP and byte proxies wherever it is copied, without the artifact files.
    """CREATE TABLE op_accounts (
    artifact_sha TEXT PRIMARY KEY,
    frame_json TEXT NOT NULL,
    unsupported INTEGER NOT NULL,
    computed_at TEXT NOT NULL
)""",
)

# Sustained runs (harness/store/timelines.py): each sustained trial's windows and its summary.
TIMELINE_TABLES: tuple[str, ...] = (
    """CREATE TABLE timelines (
    trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    window_index INTEGER NOT NULL CHECK (window_index >= 0),
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    runs INTEGER NOT NULL,
    median_ms REAL,  -- NULL when no run finished inside the window
    cpu_khz_json TEXT NOT NULL,  -- {"cpu index": kHz}
    temps_c_json TEXT NOT NULL,  -- {"zone": degrees C}
    state_s REAL,  -- when frequencies and temperatures were read
    PRIMARY KEY (trial_id, window_index)
) WITHOUT ROWID""",
    """CREATE TABLE sustained_trials (
    trial_id INTEGER PRIMARY KEY REFERENCES trials(id) ON DELETE CASCADE,
    point_id INTEGER NOT NULL REFERENCES points(id) ON DELETE CASCADE,
    seconds REAL NOT NULL,
    window_s REAL NOT NULL,
    start_unix REAL,
    span_s REAL NOT NULL,  -- length of the first and last spans compared (a minute, or a third of a short run)
    first_ms REAL,
    last_ms REAL,
    ratio REAL,  -- last_ms / first_ms
    throttled INTEGER NOT NULL CHECK (throttled IN (0, 1)),
    throttle_start_s REAL,
    reason TEXT NOT NULL
)""",
    "CREATE INDEX sustained_trials_point ON sustained_trials(point_id)",
)

# Kernel-level latency predictor (harness.predict): which points are kernel probes, the kernels of each artifact
# as its runtime runs them, and fitted predictors stored as data (LightGBM's text model format inside JSON).
_TABLES_PREDICTOR: tuple[str, ...] = (
    """CREATE TABLE kernel_samples (
    point_id INTEGER PRIMARY KEY REFERENCES points(id) ON DELETE CASCADE,
    kernel_type TEXT NOT NULL,
    config_json TEXT NOT NULL,
    source TEXT NOT NULL,  -- 'space', or the family of the model whose kernel an adaptive sample refines
    round INTEGER NOT NULL
)""",
    """CREATE TABLE kernels (
    artifact_sha TEXT NOT NULL,
    runtime TEXT NOT NULL,
    seq INTEGER NOT NULL,
    node_name TEXT NOT NULL,
    kernel_type TEXT NOT NULL,
    kernel_json TEXT NOT NULL,
    PRIMARY KEY (artifact_sha, runtime, seq)
) WITHOUT ROWID""",
    """CREATE TABLE predictors (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    runtime TEXT NOT NULL,
    threads INTEGER NOT NULL,
    precision TEXT NOT NULL,
    library TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    model_json TEXT NOT NULL,  -- data only: loading it never executes code
    summary_json TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    "CREATE INDEX predictors_context ON predictors(device, runtime, threads, precision)",
)

MIGRATIONS_TABLE = "schema_migrations"
_MIGRATIONS_DDL = f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT  -- NULL: applied before this database recorded its migrations
)"""


@dataclass(frozen=True)
class Migration:
    """One schema step: the statements that take a database from ``version - 1`` to ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


# Run ownership (pid + start token, to tell a killed run from a live one), each run's own point outcomes, the
# runner's version in a point's key, and device identity (which machine an inventory name stood for, the last
# error kept apart from the last good facts).
_RUN_OWNERS_OUTCOMES_IDENTITY: tuple[str, ...] = (
    "ALTER TABLE runs ADD COLUMN pid INTEGER",
    "ALTER TABLE runs ADD COLUMN process_start TEXT",  # boot id / start ticks: a reused pid is another process
    # The point's status when the run ended (NULL: the run is going, or ended before outcomes were recorded).
    f"ALTER TABLE run_points ADD COLUMN outcome TEXT CHECK (outcome IS NULL OR outcome IN {sql_values(PointStatus)})",
    "ALTER TABLE points ADD COLUMN runner_version TEXT",
    "ALTER TABLE devices ADD COLUMN inventory_name TEXT",
    "UPDATE devices SET inventory_name = name",
    "ALTER TABLE devices ADD COLUMN fingerprint TEXT",
    "ALTER TABLE devices ADD COLUMN last_error TEXT",
    "ALTER TABLE devices ADD COLUMN last_error_at TEXT",
    "CREATE INDEX devices_inventory_name ON devices(inventory_name)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, devices, artifacts, points, run_points, trials, samples, op_profiles, calibrations, op_accounts",
        _TABLES_V1,
    ),
    Migration(
        2,
        "harness faults: runs.pid/process_start, run_points.outcome, points.runner_version, devices identity "
        "(inventory_name, fingerprint) and last_error/last_error_at",
        _RUN_OWNERS_OUTCOMES_IDENTITY,
    ),
    Migration(
        3,
        "sustained runs: timelines (one row per window), sustained_trials (summary, throttling)",
        TIMELINE_TABLES,
    ),
    Migration(4, "kernel predictor: kernel_samples, kernels, predictors", _TABLES_PREDICTOR),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    description: str
    applied_at: str | None


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def has_migrations_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,))
    return row.fetchone() is not None


def upgrade(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the steps of ``migrations`` newer than the database, inside the caller's transaction, and record
    them; returns the versions applied. Steps the database took before it recorded migrations are recorded with
    no date. Checking that the file is a flopgap database at all is the caller's job."""
    current = user_version(conn)
    conn.execute(_MIGRATIONS_DDL)
    recorded = {int(r[0]) for r in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
    for step in migrations:
        if step.version <= current and step.version not in recorded:
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, description, applied_at) VALUES (?, ?, NULL)",
                (step.version, step.description),
            )
    applied = []
    for step in migrations:
        if step.version <= current:
            continue
        for statement in step.statements:
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, description, applied_at) VALUES (?, ?, ?)",
            (step.version, step.description, datetime.now(UTC).isoformat(timespec="milliseconds")),
        )
        applied.append(step.version)
    if applied:
        conn.execute(f"PRAGMA user_version = {applied[-1]:d}")
    return applied


def applied_migrations(conn: sqlite3.Connection) -> list[AppliedMigration]:
    """The steps recorded in the database, oldest first; for a database that predates the record (opened only
    read-only since), the steps its version implies, undated."""
    if has_migrations_table(conn):
        rows = conn.execute(f"SELECT version, description, applied_at FROM {MIGRATIONS_TABLE} ORDER BY version")
        return [AppliedMigration(int(v), d, at) for v, d, at in rows]
    current = user_version(conn)
    return [AppliedMigration(m.version, m.description, None) for m in MIGRATIONS if m.version <= current]
