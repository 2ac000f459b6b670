"""The results store: one SQLite file (WAL mode) holding runs, sweep points, trials, raw samples and op profiles.

:class:`Store` is the one entry point; its methods come from one module per idea: opening, pragmas, schema
migrations and transactions (:mod:`~harness.store.connection`), writes (:mod:`~harness.store.writes`), typed
reads (:mod:`~harness.store.reads`) and pandas frames (:mod:`~harness.store.frames`).

A sweep point is keyed by :func:`~harness.store.keys.point_key` (artifact, device, runtime, threads, options);
:meth:`Store.ensure_point` and :meth:`Store.trials_done` are what a resumed sweep asks. Each trial and its samples
are committed in one transaction, so a sweep killed at any instant leaves only whole trials behind.

Raw samples are stored one row per sample in a ``WITHOUT ROWID`` table keyed by (trial_id, seq), not as a BLOB
per trial: plain SQL (``pd.read_sql``, the ``sqlite3`` shell, DuckDB) reads them with no decoding convention to
know, and per-trial percentiles can be computed in SQL. The cost is about 2× the bytes of a packed int64 BLOB,
which is small next to the artifacts (≈ 15 MB per million samples).
"""

from __future__ import annotations

from harness.store.devices import DeviceWrites
from harness.store.frames import Frames
from harness.store.predictor_tables import PredictorTables
from harness.store.reads import Reads
from harness.store.runs import RunWrites
from harness.store.timelines import Timelines
from harness.store.writes import Writes


class Store(RunWrites, DeviceWrites, Writes, Reads, Frames, Timelines, PredictorTables):
    """The results database. Use as a context manager; one instance per process/thread (not thread-safe).

    ``readonly=True`` opens an existing database without ever writing (for reporting while a sweep runs);
    ``create=False`` refuses to create a missing file. Opening read-write upgrades an older schema in place.
    """
