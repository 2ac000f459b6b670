"""The results store: one SQLite file (WAL mode) holding runs, sweep points, trials, raw samples and op profiles.

Every write is its own short ``BEGIN IMMEDIATE … COMMIT`` transaction, committed before the call returns, so a
sweep killed at any instant leaves only whole trials behind and resumes where it stopped. A sweep point is keyed
by :func:`point_key` (artifact, device, runtime, threads, options); :meth:`Store.ensure_point` and
:meth:`Store.trials_done` are what a resumed sweep asks. Readers in other processes see committed rows while a
sweep writes (WAL). Analysis reads pandas frames (:meth:`Store.points_frame` and friends).

Raw samples are stored one row per sample in a ``WITHOUT ROWID`` table keyed by (trial_id, seq), not as a BLOB
per trial: plain SQL (``pd.read_sql``, the ``sqlite3`` shell, DuckDB) reads them with no decoding convention to
know, and per-trial percentiles can be computed in SQL. The cost is about 2× the bytes of a packed int64 BLOB,
which is small next to the artifacts (≈ 15 MB per million samples).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sqlite3
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from devices.errors import FlopgapError
from devices.result import TrialResult
from harness import __version__

if TYPE_CHECKING:
    from exporters.artifact import Artifact

SCHEMA_VERSION = 1
DEFAULT_DB = Path("results") / "flopgap.db"
DB_ENV = "FLOPGAP_DB"
BUSY_TIMEOUT_S = 30.0

RUN_STATUSES = ("running", "completed", "interrupted", "failed")
POINT_STATUSES = ("pending", "done", "failed")

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

# Keys of a runner document that hold raw samples; they go to the samples table, not runner_json.
_SAMPLE_KEYS = ("samples_ns", "samples", "latencies_ns")

_STATS_DDL = ",\n    ".join(f"{name} {kind}" for name, kind in STATS_COLUMNS.items())

# Statements contain no ';' so they can be run one by one inside a transaction (executescript would commit).
_SCHEMA: tuple[str, ...] = (
    f"""CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL CHECK (status IN {RUN_STATUSES!r}),
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
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN {POINT_STATUSES!r}),
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

# Primary result codes (sqlite3.h) that mean "the environment", not "a bug in flopgap".
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 11, 13, 14, 26


class SupportsToRow(Protocol):
    def to_row(self) -> Mapping[str, Any]: ...


class StoreError(FlopgapError):
    """The results database cannot be opened or written (full disk, read-only, locked, damaged, newer schema)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class DuplicateTrialError(ValueError):
    """A trial with this (point, index) is already stored; the stored one is kept unchanged."""


class ExportFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True)
class PointCounts:
    done: int = 0
    failed: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.done + self.failed + self.pending


@dataclass(frozen=True)
class RunRow:
    id: int
    started_at: str
    finished_at: str | None
    status: str
    spec_name: str
    flopgap_version: str
    host: str
    counts: PointCounts


@dataclass(frozen=True)
class PointRow:
    id: int
    point_key: str
    run_id: int  # the run that created the point
    artifact_sha: str
    device: str
    runtime: str
    runtime_version: str | None
    threads: int
    options: dict[str, Any]
    status: str
    failure_reason: str | None


@dataclass(frozen=True)
class OpTime:
    """Time of one graph node in a per-op profile."""

    node_name: str
    op_type: str
    time_us: float
    calls: int | None = None
    category: str | None = None
    module_path: str | None = None


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The database path: the argument, else ``$FLOPGAP_DB``, else ``results/flopgap.db`` under the CWD."""
    if path is not None and str(path) != "":
        return Path(path)
    env = os.environ.get(DB_ENV)
    return Path(env) if env else DEFAULT_DB


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def point_key(
    artifact_sha: str, device: str, runtime: str, threads: int, options: Mapping[str, Any] | None = None
) -> str:
    """sha256 hex of the canonical JSON of what identifies a sweep point (dict keys sorted at every level)."""
    doc = {
        "artifact_sha": artifact_sha,
        "device": device,
        "runtime": runtime,
        "threads": int(threads),
        "options": dict(options or {}),
    }
    try:
        text = _canonical_json(doc)
    except (TypeError, ValueError) as err:
        raise ValueError(f"point options must be JSON values (str, number, bool, None, list, dict): {err}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _scalar(value: Any) -> Any:
    """numpy scalars -> Python (sqlite3 cannot bind numpy.int64); bools -> 0/1."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    return value


def _describe(artifact: Artifact) -> tuple[str | None, str]:
    """(family, label) from the zoo registry; for a model it does not know, no family and every param shown."""
    from harness.zoo.registry import ModelSpec  # the zoo imports torch; only this path needs it

    try:
        spec = ModelSpec(artifact.model, artifact.params)
        return spec.family, spec.label
    except FlopgapError:
        shown = ",".join(f"{k}={v}" for k, v in artifact.params)
        return None, f"{artifact.model}[{shown}]" if shown else artifact.model


def _translate(err: sqlite3.Error, path: Path, action: str) -> StoreError | None:
    """A StoreError for failures the user must fix; None for errors that are bugs (constraint, misuse)."""
    code = getattr(err, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(err)
    where = f"results database {path}"
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        msg = (
            f"{where} is full (no space left on its disk, or a size limit) while {action}; free space or pass "
            f"--db / set {DB_ENV} to a disk with room and rerun: stored points are kept and the sweep resumes"
        )
    elif primary == _SQLITE_READONLY or "readonly database" in text:
        msg = f"{where} is read-only while {action}; make it and its directory writable, or pass --db elsewhere"
    elif primary == _SQLITE_CANTOPEN or "unable to open" in text:
        msg = f"cannot open {where} ({text}); check that its directory exists and is writable, or pass --db"
    elif primary == _SQLITE_IOERR or "disk I/O error" in text:
        msg = (
            f"disk I/O error on {where} while {action} ({text}); the disk may be full or failing: free space or "
            f"pass --db elsewhere and rerun (committed rows are kept)"
        )
    elif primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in text:
        msg = (
            f"{where} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s while {action}; "
            f"wait for the other sweep to finish or pass --db"
        )
    elif primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "not a database" in text or "malformed" in text:
        msg = f"{path} is not a flopgap results database or is damaged ({text}); pass --db to another file"
    else:
        return None
    return StoreError(msg, path)


class Store:
    """The results database. Use as a context manager; one instance per process/thread (not thread-safe).

    ``readonly=True`` opens an existing database without ever writing (for reporting while a sweep runs);
    ``create=False`` refuses to create a missing file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, readonly: bool = False, create: bool = True):
        self.path = resolve_db_path(path)
        self.readonly = readonly
        if (readonly or not create) and not self.path.exists():
            raise StoreError(f"no results database at {self.path}; run 'flopgap sweep' first or pass --db", self.path)
        if not readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(
                    f"cannot create the directory of results database {self.path} ({err.strerror}); "
                    f"pass --db or set {DB_ENV} to a writable place",
                    self.path,
                ) from None
        try:
            self._open()
        except StoreError:
            # A WAL database on read-only media (no -shm beside it, none can be made) opens only as immutable;
            # safe there, since nothing can write to it either.
            if not (readonly and not os.access(self.path.parent, os.W_OK)):
                raise
            self._open(immutable=True)

    def _open(self, immutable: bool = False) -> None:
        with self._errors("opening"):
            if self.readonly:
                target = self.path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
                self._conn = sqlite3.connect(target, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            else:
                self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            with self._errors("opening"):
                self._configure()
                self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for ad-hoc SQL such as ``pd.read_sql(query, store.connection)``."""
        return self._conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            translated = _translate(err, self.path, action)
            if translated is None:
                raise
            raise translated from err

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on exit. IMMEDIATE takes the write lock up front so a concurrent
        writer waits (busy timeout) instead of failing on a read-to-write upgrade."""
        with self._errors(action):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (e.g. on SQLITE_FULL); rolling back again would raise.
                if self._conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise

    def _configure(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA foreign_keys = ON")
        if self.readonly:
            return
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"results database {self.path} cannot use WAL mode (journal_mode={mode}); put it on a local disk "
                f"(not a network share) with --db or {DB_ENV}",
                self.path,
            )
        # NORMAL in WAL: a commit survives the process being killed; only an OS crash can lose the last commits.
        conn.execute("PRAGMA synchronous = NORMAL")

    def _user_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"results database {self.path} has schema version {version}, newer than this flopgap "
                f"({__version__}) understands ({SCHEMA_VERSION}); upgrade flopgap or pass --db to another file",
                self.path,
            )

    def _migrate(self) -> None:
        version = self._user_version()
        self._check_version(version)
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise StoreError(
                f"results database {self.path} has schema version {version}, not {SCHEMA_VERSION}; "
                f"open it once read-write (any 'flopgap sweep') to upgrade it",
                self.path,
            )
        with self._transaction("creating the schema") as conn:
            version = self._user_version()  # another process may have created it meanwhile
            self._check_version(version)
            if version == 0:
                foreign = conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
                if foreign:
                    raise StoreError(
                        f"{self.path} is an SQLite database but not a flopgap results database (it has tables "
                        f"{', '.join(r[0] for r in foreign[:5])}); pass --db to another file",
                        self.path,
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
            # Later schema versions add their upgrade steps here, one `if version < N:` block each.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- runs, devices, artifacts ------------------------------------------------------------------------------

    def start_run(self, spec_name: str, spec_toml: str) -> int:
        """Record a sweep starting now; returns the run id."""
        with self._transaction("starting a run") as conn:
            cur = conn.execute(
                "INSERT INTO runs (started_at, status, spec_name, spec_toml, flopgap_version, host) "
                "VALUES (?, 'running', ?, ?, ?, ?)",
                (_now(), spec_name, spec_toml, __version__, socket.gethostname()),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str) -> None:
        """Close a run as completed, interrupted or failed."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"run status must be one of completed, interrupted, failed; got {status!r}")
        with self._transaction("finishing a run") as conn:
            cur = conn.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, _now(), run_id))
            if cur.rowcount != 1:
                raise KeyError(f"no run {run_id}")

    def upsert_device(self, name: str, transport: str, facts: Mapping[str, Any]) -> int:
        """Insert or refresh a device (facts and last_seen are replaced, first_seen kept); returns its id."""
        now = _now()
        with self._transaction("recording a device") as conn:
            conn.execute(
                "INSERT INTO devices (name, transport, facts_json, first_seen, last_seen) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET transport = excluded.transport, "
                "facts_json = excluded.facts_json, last_seen = excluded.last_seen",
                (name, transport, _json(dict(facts)), now, now),
            )
            return int(conn.execute("SELECT id FROM devices WHERE name = ?", (name,)).fetchone()[0])

    def upsert_artifact(
        self,
        artifact: Artifact,
        macs: int | None,
        params_count: int | None,
        *,
        family: str | None = None,
        label: str | None = None,
    ) -> None:
        """Insert or refresh an artifact row keyed by its sha256. Family and label default to the zoo's."""
        if family is None or label is None:
            known_family, known_label = _describe(artifact)
            family = family if family is not None else known_family
            label = label if label is not None else known_label
        row = {
            "sha256": artifact.sha256,
            "model": artifact.model,
            "label": label,
            "params_json": _json(dict(artifact.params)),
            "family": family,
            "format": getattr(artifact.format, "value", artifact.format),
            "precision": getattr(artifact.precision, "value", artifact.precision),
            "layout": artifact.layout,
            "input_shape_json": _json(list(artifact.input_shape)),
            "tool_versions_json": _json(artifact.tool_versions),
            "parity_error": artifact.parity_error,
            "parity_bound": artifact.parity_bound,
            "notes_json": _json(artifact.notes),
            "size_bytes": artifact.size_bytes,
            "macs": macs,
            "params_count": params_count,
            "path": str(artifact.path),
        }
        columns = ", ".join(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "sha256")
        with self._transaction("recording an artifact") as conn:
            conn.execute(
                f"INSERT INTO artifacts ({columns}) VALUES ({', '.join('?' * len(row))}) "
                f"ON CONFLICT (sha256) DO UPDATE SET {updates}",
                tuple(_scalar(v) for v in row.values()),
            )

    # -- points and trials -------------------------------------------------------------------------------------

    def ensure_point(
        self,
        run_id: int,
        artifact_sha: str,
        device: str,
        runtime: str,
        threads: int,
        options: Mapping[str, Any] | None = None,
        runtime_version: str | None = None,
    ) -> int:
        """The id of the point with these key fields, created (pending) if new. Idempotent; an existing point keeps
        its status, so the caller skips ``done`` points and resumes others from :meth:`trials_done`."""
        options = dict(options or {})
        key = point_key(artifact_sha, device, runtime, threads, options)
        options_json = _canonical_json(options)
        with self._transaction("recording a sweep point") as conn:
            missing = self._missing_refs(run_id, device)
            if missing:
                raise ValueError(f"cannot create point: {missing}")
            conn.execute(
                "INSERT INTO points (point_key, run_id, artifact_sha, device, runtime, runtime_version, threads, "
                "options_json, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?) "
                "ON CONFLICT (point_key) DO NOTHING",
                (key, run_id, artifact_sha, device, runtime, runtime_version, int(threads), options_json, _now()),
            )
            point_id = int(conn.execute("SELECT id FROM points WHERE point_key = ?", (key,)).fetchone()[0])
            if runtime_version is not None:
                conn.execute(
                    "UPDATE points SET runtime_version = ? WHERE id = ? AND runtime_version IS NULL",
                    (runtime_version, point_id),
                )
            conn.execute("INSERT OR IGNORE INTO run_points (run_id, point_id) VALUES (?, ?)", (run_id, point_id))
            return point_id

    def _missing_refs(self, run_id: int, device: str) -> str:
        checks = (
            ("SELECT 1 FROM runs WHERE id = ?", run_id, f"no run {run_id} (call start_run)"),
            ("SELECT 1 FROM devices WHERE name = ?", device, f"no device '{device}' (upsert it)"),
        )
        return "; ".join(msg for sql, arg, msg in checks if self._conn.execute(sql, (arg,)).fetchone() is None)

    def point(self, point_id: int) -> PointRow:
        """One point by id (KeyError if unknown)."""
        with self._errors("reading a point"):
            row = self._conn.execute(f"SELECT {_POINT_ROW_COLUMNS} FROM points WHERE id = ?", (point_id,)).fetchone()
        if row is None:
            raise KeyError(f"no point {point_id}")
        return _point_row(row)

    def point_status(self, point_id: int) -> str:
        """``pending``, ``done`` or ``failed`` (KeyError if unknown)."""
        return self.point(point_id).status

    def trials_done(self, point_id: int) -> set[int]:
        """Indices of the trials already stored for a point."""
        with self._errors("reading trials"):
            rows = self._conn.execute("SELECT trial_index FROM trials WHERE point_id = ?", (point_id,)).fetchall()
        return {int(r[0]) for r in rows}

    def add_trial(
        self,
        point_id: int,
        trial_index: int,
        trial: TrialResult | Mapping[str, Any],
        samples_ns: Sequence[int] | Iterable[int] | None = None,
        *,
        run_id: int | None = None,
        started_at: str | None = None,
        state_before: Mapping[str, Any] | None = None,
        state_after: Mapping[str, Any] | None = None,
    ) -> int:
        """Store one trial and all its samples in one transaction; returns the trial id.

        ``trial`` is a backend's :class:`~devices.result.TrialResult`, or a runner document with its samples in
        ``samples_ns`` (the argument, else the document's key). Samples go to their own table, ``state_before`` /
        ``state_after`` to their own columns unless given here, the rest to ``runner_json``; ``median_ms`` is
        the result's central value. Raises :class:`DuplicateTrialError` if the (point, index) is already stored,
        leaving the stored trial untouched.
        """
        if not isinstance(trial, TrialResult):
            given = samples_ns if samples_ns is not None else trial.get("samples_ns") or ()
            trial = TrialResult.from_json({k: v for k, v in trial.items() if k not in _SAMPLE_KEYS}, given)
        samples = list(trial.samples_ns)
        if samples and min(samples) < 0:
            raise ValueError(f"trial {trial_index} of point {point_id} has a negative latency")
        centre = trial.centre_ns
        if centre is None:
            raise ValueError(f"trial {trial_index} of point {point_id} has no samples and no summary")
        n, median_ms = trial.n, centre / 1e6
        doc = trial.record()
        before = state_before if state_before is not None else trial.state_before
        after = state_after if state_after is not None else trial.state_after
        with self._transaction("storing a trial") as conn:
            try:
                cur = conn.execute(
                    "INSERT INTO trials (point_id, run_id, trial_index, started_at, runner_json, state_before_json, "
                    "state_after_json, n, median_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        point_id,
                        run_id,
                        int(trial_index),
                        started_at or _now(),
                        _json(doc),
                        None if before is None else _json(before),
                        None if after is None else _json(after),
                        n,
                        median_ms,
                    ),
                )
            except sqlite3.IntegrityError as err:
                if "UNIQUE" in str(err):
                    raise DuplicateTrialError(f"point {point_id} already has trial {trial_index}") from None
                raise
            trial_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO samples (trial_id, seq, latency_ns) VALUES (?, ?, ?)",
                ((trial_id, seq, ns) for seq, ns in enumerate(samples)),
            )
            version = doc.get("runtime_version")
            conn.execute(
                "UPDATE points SET updated_at = ?, runtime_version = coalesce(runtime_version, ?) WHERE id = ?",
                (_now(), version if isinstance(version, str) else None, point_id),
            )
            return trial_id

    def trial_samples(self, point_id: int) -> list[list[int]]:
        """Each stored trial's samples (ns), in trial-index order."""
        with self._errors("reading samples"):
            rows = self._conn.execute(
                "SELECT s.trial_id, s.latency_ns FROM samples s JOIN trials t ON t.id = s.trial_id "
                "WHERE t.point_id = ? ORDER BY t.trial_index, s.seq",
                (point_id,),
            ).fetchall()
        trials: dict[int, list[int]] = {}
        for trial_id, latency_ns in rows:
            trials.setdefault(trial_id, []).append(latency_ns)
        return list(trials.values())

    def complete_point(self, point_id: int, stats: Mapping[str, Any] | SupportsToRow) -> None:
        """Mark a point done with its summary statistics: a mapping keyed by :data:`STATS_COLUMNS` (``n`` and
        ``median_ms`` required, others NULL when missing) or an object whose ``to_row()`` gives one
        (``harness.measure.stats.PointStats``). ``init_ms``, ``first_inference_ms`` and ``peak_rss_kib``, when left out,
        come from the stored runner documents (median init and first inference over trials, max RSS)."""
        row: dict[str, Any] = dict(stats) if isinstance(stats, Mapping) else dict(stats.to_row())
        for column, figure in self._runner_figures(point_id).items():
            row.setdefault(column, figure)
        unknown = sorted(set(row) - set(STATS_COLUMNS))
        if unknown:
            raise ValueError(f"unknown stats columns {unknown}; allowed: {', '.join(STATS_COLUMNS)}")
        if row.get("n") is None or row.get("median_ms") is None:
            raise ValueError("stats must include 'n' and 'median_ms'")
        values: dict[str, Any] = {}
        for column in STATS_COLUMNS:
            value = row.get(column)
            if column == "noisy_reasons" and value is not None and not isinstance(value, str):
                value = _json(list(value))
            values[column] = _scalar(value)
        assignments = ", ".join(f"{c} = ?" for c in values)
        with self._transaction("completing a point") as conn:
            cur = conn.execute(
                f"UPDATE points SET status = 'done', failure_reason = NULL, {assignments}, updated_at = ? WHERE id = ?",
                (*values.values(), _now(), point_id),
            )
            if cur.rowcount != 1:
                raise KeyError(f"no point {point_id}")

    def _runner_figures(self, point_id: int) -> dict[str, float | int | None]:
        with self._errors("reading trials"):
            rows = self._conn.execute(
                "SELECT json_extract(runner_json, '$.init_ns'), json_extract(runner_json, '$.first_inference_ns'), "
                "json_extract(runner_json, '$.peak_rss_kib') FROM trials WHERE point_id = ?",
                (point_id,),
            ).fetchall()
        init = [r[0] / 1e6 for r in rows if isinstance(r[0], (int, float))]
        first = [r[1] / 1e6 for r in rows if isinstance(r[1], (int, float))]
        rss = [int(r[2]) for r in rows if isinstance(r[2], (int, float))]
        return {
            "init_ms": statistics.median(init) if init else None,
            "first_inference_ms": statistics.median(first) if first else None,
            "peak_rss_kib": max(rss) if rss else None,
        }

    def fail_point(self, point_id: int, reason: str) -> None:
        """Mark a point failed; a later sweep retries it (its stored trials stay and count as done)."""
        with self._transaction("failing a point") as conn:
            cur = conn.execute(
                "UPDATE points SET status = 'failed', failure_reason = ?, updated_at = ? WHERE id = ?",
                (reason, _now(), point_id),
            )
            if cur.rowcount != 1:
                raise KeyError(f"no point {point_id}")

    def pending_points(self, run_id: int) -> list[PointRow]:
        """Points of a run that are not done (pending or failed), in creation order."""
        with self._errors("reading points"):
            rows = self._conn.execute(
                f"SELECT {_POINT_ROW_COLUMNS} FROM points WHERE status != 'done' "
                "AND id IN (SELECT point_id FROM run_points WHERE run_id = ?) ORDER BY id",
                (run_id,),
            ).fetchall()
        return [_point_row(r) for r in rows]

    def point_counts(self, run_id: int) -> PointCounts:
        """How many of a run's points are done, failed and pending."""
        with self._errors("counting points"):
            rows = self._conn.execute(
                "SELECT p.status, count(*) FROM points p JOIN run_points rp ON rp.point_id = p.id "
                "WHERE rp.run_id = ? GROUP BY p.status",
                (run_id,),
            ).fetchall()
        return PointCounts(**{status: int(n) for status, n in rows})

    def runs(self) -> list[RunRow]:
        """All runs, oldest first, with their point counts."""
        with self._errors("reading runs"):
            rows = self._conn.execute(
                "SELECT id, started_at, finished_at, status, spec_name, flopgap_version, host FROM runs ORDER BY id"
            ).fetchall()
            counts = self._conn.execute(
                "SELECT rp.run_id, p.status, count(*) FROM run_points rp JOIN points p ON p.id = rp.point_id "
                "GROUP BY rp.run_id, p.status"
            ).fetchall()
        per_run: dict[int, dict[str, int]] = {}
        for run_id, status, n in counts:
            per_run.setdefault(int(run_id), {})[status] = int(n)
        return [
            RunRow(run_id, started, finished, status, spec, version, host, PointCounts(**per_run.get(run_id, {})))
            for run_id, started, finished, status, spec, version, host in rows
        ]

    def latest_run_id(self) -> int | None:
        with self._errors("reading runs"):
            row = self._conn.execute("SELECT max(id) FROM runs").fetchone()
        return None if row[0] is None else int(row[0])

    def add_op_profile(self, point_id: int, ops: Iterable[OpTime], *, trial_id: int | None = None) -> int:
        """Store a per-op profile of a point (optionally of one trial) in one transaction; returns rows written."""
        rows = [
            (point_id, trial_id, op.node_name, op.op_type, float(op.time_us), op.calls, op.category, op.module_path)
            for op in ops
        ]
        with self._transaction("storing an op profile") as conn:
            conn.executemany(
                "INSERT INTO op_profiles (point_id, trial_id, node_name, op_type, time_us, calls, category, "
                "module_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def add_calibration(
        self,
        device: str,
        runtime: str,
        threads: int,
        peak_gflops: float | None,
        bandwidth_gbs: float | None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a roofline calibration of a device/runtime/threads; returns its id."""
        with self._transaction("storing a calibration") as conn:
            cur = conn.execute(
                "INSERT INTO calibrations (device, runtime, threads, peak_gflops, bandwidth_gbs, details_json, "
                "measured_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (device, runtime, int(threads), peak_gflops, bandwidth_gbs, _json(dict(details or {})), _now()),
            )
            return int(cur.lastrowid or 0)

    # -- frames ------------------------------------------------------------------------------------------------

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self._errors("reading results"):
            return pd.read_sql_query(sql, self._conn, params=list(params))

    def points_frame(self, run_id: int | None = None) -> pd.DataFrame:
        """One row per point, joined with its artifact and device; ``run_id`` limits to the points of a run."""
        stats = ", ".join(f"p.{c}" for c in STATS_COLUMNS)
        where, params = "", []
        if run_id is not None:
            where, params = "WHERE p.id IN (SELECT point_id FROM run_points WHERE run_id = ?)", [run_id]
        frame = self._frame(
            f"""SELECT p.id AS point_id, p.run_id, a.model, coalesce(a.label, p.artifact_sha) AS model_label, a.family,
                a.params_json AS params, a.format, a.precision, a.layout, a.input_shape_json AS input_shape, p.device,
                d.transport, p.runtime, p.runtime_version, p.threads, p.options_json AS options, p.status,
                p.failure_reason, {stats},
                (SELECT count(*) FROM trials t WHERE t.point_id = p.id) AS n_trials,
                a.macs, a.params_count, a.size_bytes, a.parity_error, p.artifact_sha, p.point_key, p.updated_at
            FROM points p LEFT JOIN artifacts a ON a.sha256 = p.artifact_sha LEFT JOIN devices d ON d.name = p.device
            {where} ORDER BY p.id""",
            params,
        )
        # Columns that are NULL on every row come back as object; give them their real dtype.
        for column, kind in STATS_COLUMNS.items():
            if kind == "REAL":
                frame[column] = frame[column].astype("float64")
        for column in ("n", "peak_rss_kib", "macs", "params_count"):
            frame[column] = frame[column].astype("Int64")
        frame["parity_error"] = frame["parity_error"].astype("float64")
        frame["noisy"] = frame["noisy"].astype("boolean")
        frame["input_shape"] = frame["input_shape"].map(
            lambda s: "x".join(str(d) for d in json.loads(s)) if isinstance(s, str) else None
        )
        frame["noisy_reasons"] = frame["noisy_reasons"].map(
            lambda s: "; ".join(json.loads(s)) if isinstance(s, str) else None
        )
        return frame

    @staticmethod
    def _point_filter(point_ids: Iterable[int] | None, column: str) -> tuple[str, list[Any]]:
        if point_ids is None:
            return "", []
        # json_each keeps any number of ids in one bound parameter (no SQLITE_MAX_VARIABLE_NUMBER limit).
        return f"WHERE {column} IN (SELECT value FROM json_each(?))", [json.dumps([int(i) for i in point_ids])]

    def samples_frame(self, point_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """Raw samples: point_id, trial_id, trial_index, seq, latency_ns, latency_ms."""
        where, params = self._point_filter(point_ids, "t.point_id")
        frame = self._frame(
            "SELECT t.point_id, s.trial_id, t.trial_index, s.seq, s.latency_ns FROM samples s "
            f"JOIN trials t ON t.id = s.trial_id {where} ORDER BY t.point_id, t.trial_index, s.seq",
            params,
        )
        frame["latency_ms"] = frame["latency_ns"] / 1e6
        return frame

    def trials_frame(self, point_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """One row per trial with its runner document and device state as JSON text."""
        where, params = self._point_filter(point_ids, "point_id")
        return self._frame(
            "SELECT id AS trial_id, point_id, run_id, trial_index, started_at, n, median_ms, runner_json, "
            f"state_before_json, state_after_json FROM trials {where} ORDER BY point_id, trial_index",
            params,
        )

    def runs_frame(self) -> pd.DataFrame:
        """One row per run with its point counts."""
        return self._frame(
            """SELECT r.id AS run_id, r.started_at, r.finished_at, r.status, r.spec_name, r.flopgap_version, r.host,
                count(CASE WHEN p.status = 'done' THEN 1 END) AS done,
                count(CASE WHEN p.status = 'failed' THEN 1 END) AS failed,
                count(CASE WHEN p.status = 'pending' THEN 1 END) AS pending, r.spec_toml
            FROM runs r LEFT JOIN run_points rp ON rp.run_id = r.id LEFT JOIN points p ON p.id = rp.point_id
            GROUP BY r.id ORDER BY r.id"""
        )

    def op_profiles_frame(self, point_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """One row per profiled node."""
        where, params = self._point_filter(point_ids, "point_id")
        return self._frame(
            "SELECT point_id, trial_id, node_name, op_type, time_us, calls, category, module_path "
            f"FROM op_profiles {where} ORDER BY point_id, id",
            params,
        )

    def devices_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM devices ORDER BY id")

    def artifacts_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM artifacts ORDER BY model, sha256")

    def calibrations_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM calibrations ORDER BY id")

    def put_op_account(self, artifact_sha: str, frame: pd.DataFrame, unsupported: int) -> None:
        """Store (or replace) an artifact's per-op graph account frame."""
        with self._transaction("storing a graph account") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO op_accounts (artifact_sha, frame_json, unsupported, computed_at) "
                "VALUES (?, ?, ?, ?)",
                (artifact_sha, frame.to_json(orient="records"), int(unsupported), _now()),
            )

    def has_op_account(self, artifact_sha: str) -> bool:
        with self._errors("reading graph accounts"):
            row = self._conn.execute("SELECT 1 FROM op_accounts WHERE artifact_sha = ?", (artifact_sha,)).fetchone()
        return row is not None

    def op_accounts(self) -> dict[str, pd.DataFrame]:
        """Artifact sha → its stored per-op account frame."""
        with self._errors("reading graph accounts"):
            rows = self._conn.execute("SELECT artifact_sha, frame_json FROM op_accounts").fetchall()
        return {sha: pd.read_json(io.StringIO(text), orient="records") for sha, text in rows}

    def frame(self, table: str, run_id: int | None = None) -> pd.DataFrame:
        """The frame of an exportable table by name (see :data:`EXPORT_TABLES`); ``run_id`` applies to points."""
        if table not in EXPORT_TABLES:
            raise FlopgapError(f"unknown table '{table}'; tables: {', '.join(EXPORT_TABLES)}")
        if table == "points":
            return self.points_frame(run_id)
        if run_id is not None and table in ("samples", "trials", "op_profiles"):
            ids = self.points_frame(run_id)["point_id"].tolist()
            return EXPORT_TABLES[table](self, ids)
        return EXPORT_TABLES[table](self)

    def export(
        self, path: str | os.PathLike[str], format: ExportFormat | str, table: str = "points", run_id: int | None = None
    ) -> int:
        """Write a table as CSV or Parquet; returns the number of rows written."""
        return export_frame(self.frame(table, run_id), path, format)


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


EXPORT_TABLES: dict[str, Callable[..., pd.DataFrame]] = {
    "points": Store.points_frame,
    "samples": Store.samples_frame,
    "trials": Store.trials_frame,
    "runs": Store.runs_frame,
    "op_profiles": Store.op_profiles_frame,
    "devices": Store.devices_frame,
    "artifacts": Store.artifacts_frame,
    "calibrations": Store.calibrations_frame,
}

_POINT_ROW_COLUMNS = (
    "id, point_key, run_id, artifact_sha, device, runtime, runtime_version, threads, options_json, status, "
    "failure_reason"
)


def _point_row(row: Sequence[Any]) -> PointRow:
    values = list(row)
    values[8] = json.loads(values[8])
    return PointRow(*values)
