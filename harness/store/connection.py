"""The open results database: the SQLite connection, its pragmas, schema upgrades and write transactions.

Every write is its own short ``BEGIN IMMEDIATE … COMMIT`` transaction, committed before the call returns, so a
process killed at any instant leaves only whole writes behind. Readers in other processes see committed rows
while a sweep writes (WAL mode).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Self

import pandas as pd

from harness import __version__
from harness.store.errors import BUSY_TIMEOUT_S, StoreError, translate
from harness.store.location import DB_ENV, resolve_db_path
from harness.store.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AppliedMigration,
    applied_migrations,
    has_migrations_table,
    upgrade,
    user_version,
)


def point_filter(point_ids: Iterable[int] | None, column: str) -> tuple[str, list[Any]]:
    """``WHERE column IN (...)`` and its parameters for the given point ids; no clause for None (all points)."""
    if point_ids is None:
        return "", []
    # json_each keeps any number of ids in one bound parameter (no SQLITE_MAX_VARIABLE_NUMBER limit).
    return f"WHERE {column} IN (SELECT value FROM json_each(?))", [json.dumps([int(i) for i in point_ids])]


class StoreConnection:
    """One connection to a results database, opened (and upgraded) on construction; one per process/thread.

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for ad-hoc SQL such as ``pd.read_sql(query, store.connection)``."""
        return self._conn

    def migrations(self) -> list[AppliedMigration]:
        """The schema steps this database has taken, oldest first."""
        with self._errors("reading the schema"):
            return applied_migrations(self._conn)

    # -- errors and transactions -------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            translated = translate(err, self.path, action)
            if translated is None:
                raise
            raise translated from err

    def _frame(self, sql: str, params: Sequence[Any] = (), action: str = "reading results") -> pd.DataFrame:
        with self._errors(action):
            return pd.read_sql_query(sql, self._conn, params=list(params))

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

    # -- opening -----------------------------------------------------------------------------------------------

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

    def _upgrade_a_private_copy(self) -> None:
        """Read an older database without writing it: copy it into memory, upgrade the copy, and refuse writes to
        it (``query_only``), so reports and notebooks read any version while the file stays as it is."""
        memory = sqlite3.connect(":memory:", isolation_level=None)
        try:
            self._conn.backup(memory)
        except BaseException:
            memory.close()
            raise
        self._conn.close()
        self._conn = memory
        self._conn.execute("PRAGMA foreign_keys = ON")
        with self._transaction("upgrading a copy of the schema") as conn:
            upgrade(conn, MIGRATIONS)
        self._conn.execute("PRAGMA query_only = ON")

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"results database {self.path} has schema version {version}, newer than this flopgap "
                f"({__version__}) understands ({SCHEMA_VERSION}); upgrade flopgap or pass --db to another file",
                self.path,
            )

    def _migrate(self) -> None:
        version = user_version(self._conn)
        self._check_version(version)
        if self.readonly:
            if version != SCHEMA_VERSION:
                self._upgrade_a_private_copy()
            return
        if version == SCHEMA_VERSION and has_migrations_table(self._conn):
            return
        with self._transaction("upgrading the schema") as conn:
            version = user_version(conn)  # another process may have upgraded it meanwhile
            self._check_version(version)
            if version == 0:
                foreign = conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
                if foreign:
                    raise StoreError(
                        f"{self.path} is an SQLite database but not a flopgap results database (it has tables "
                        f"{', '.join(r[0] for r in foreign[:5])}); pass --db to another file",
                        self.path,
                    )
            upgrade(conn, MIGRATIONS)
