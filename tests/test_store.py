"""The results store on a real SQLite file: schema and pragmas, resume keys, crash safety, full disk, frames."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from devices.core.errors import FlopgapError
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    DuplicateTrialError,
    Migration,
    OpTime,
    PointCounts,
    PointStatus,
    RunStatus,
    Store,
    StoreError,
    point_key,
)
from harness.store.errors import translate
from harness.store.schema import upgrade
from tests.conftest import read_only, small_tmpfs
from tests.zoo_labels import zoo_names

REPO = Path(__file__).resolve().parents[1]
SHA = hashlib.sha256(b"mobilenet_v1 fp32 onnx").hexdigest()


def make_artifact(tmp_path: Path, sha: str = SHA, precision: Precision = Precision.FP32) -> Artifact:
    return Artifact(
        path=tmp_path / f"{sha[:12]}.onnx",
        format=Format.ONNX,
        precision=precision,
        sha256=sha,
        model="shufflenet_v2",
        params=(("width", 0.5),),
        input_shape=(1, 3, 224, 224),
        layout="NCHW",
        tool_versions={"torch": "2.13.0", "onnx": "1.17.0"},
        parity_error=3.1e-6,
        parity_bound=1e-4,
        size_bytes=5_523_104,
        notes={"transpose_ops": 0},
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "results" / "flopgap.db"


@pytest.fixture
def store(db: Path, tmp_path: Path) -> Iterator[Store]:
    with Store(db) as s:
        s.upsert_device("bench-host", "local", {"cpu": "x86_64", "cores": 2})
        art = make_artifact(tmp_path)
        s.upsert_artifact(art, macs=41_000_000, params_count=1_366_792, family="shufflenet_v2",
                          label=zoo_names(art)["label"])  # fmt: skip
        yield s


def new_point(store: Store, threads: int = 1, options: dict[str, object] | None = None) -> tuple[int, int]:
    run_id = store.start_run("tiny", 'models = ["shufflenet_v2"]\n')
    return run_id, store.ensure_point(run_id, SHA, "bench-host", "onnxruntime", threads, options, "1.20.1")


def trial_samples(trial_index: int, n: int) -> list[int]:
    """Deterministic, distinct latencies so a torn or mixed-up trial is detectable."""
    return [2_000_000 + trial_index * 1_000 + (seq * 7919) % 997 for seq in range(n)]


def integrity(db: Path) -> tuple[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    return check, fk


def trial_sample_counts(conn: sqlite3.Connection) -> list[tuple[int, int, int]]:
    """(trial_index, n recorded on the trial, samples actually stored), read in one snapshot."""
    return conn.execute(
        "SELECT t.trial_index, t.n, count(s.seq) FROM trials t LEFT JOIN samples s ON s.trial_id = t.id "
        "GROUP BY t.id ORDER BY t.trial_index"
    ).fetchall()


# -- opening, pragmas, schema ---------------------------------------------------------------------------------


def test_new_database_uses_wal_and_safe_pragmas(db: Path) -> None:
    with Store(db) as s:
        conn = s.connection
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # WAL is a property of the file: a fresh, unrelated connection sees it.
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"runs", "devices", "artifacts", "points", "trials", "samples", "op_profiles", "calibrations"} <= tables


def test_default_path_is_results_under_cwd_and_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOPGAP_DB", raising=False)
    with Store() as s:
        assert s.path == Path("results/flopgap.db")
    assert (tmp_path / "results" / "flopgap.db").is_file()
    monkeypatch.setenv("FLOPGAP_DB", str(tmp_path / "elsewhere" / "x.db"))
    with Store():
        pass
    assert (tmp_path / "elsewhere" / "x.db").is_file()


def test_newer_schema_is_refused_with_a_clear_error(db: Path) -> None:
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer .* upgrade flopgap") as info:
        Store(db)
    assert str(db) in str(info.value)
    assert isinstance(info.value, FlopgapError)


def test_foreign_sqlite_file_and_garbage_file_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a flopgap results database"):
        Store(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a flopgap results database or is damaged"):
        Store(garbage)


def test_unwritable_locations_raise_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"cannot create the directory .*file/sub/r\.db"):
        Store(blocker / "sub" / "r.db")
    with pytest.raises(StoreError, match=r"no results database at .*missing\.db; run 'flopgap sweep' first"):
        Store(tmp_path / "missing.db", readonly=True)


def test_readonly_store_reads_but_refuses_writes_clearly(store: Store, db: Path) -> None:
    run_id, point_id = new_point(store)
    store.add_trial(point_id, 0, {}, trial_samples(0, 10))
    with Store(db, readonly=True) as ro:
        assert ro.trials_done(point_id) == {0}
        with pytest.raises(StoreError, match=r"is read-only while starting a run; make it .* writable"):
            ro.start_run("x", "")
    assert [r.id for r in store.runs()] == [run_id]


def test_new_database_records_each_schema_step(db: Path) -> None:
    with Store(db) as s:
        steps = s.migrations()
        assert [m.version for m in steps] == [m.version for m in MIGRATIONS] and steps[-1].version == SCHEMA_VERSION
        assert all(m.applied_at is not None for m in steps)
        assert steps[0].description == MIGRATIONS[0].description


# The first wave's results/sample.db (schema version 1, before migrations were recorded), trimmed to one raw sample
# per trial and no op accounts so it stays small: a real database a user of the first release holds.
V1_DB = REPO / "tests" / "data" / "sample_v1.db"


def test_database_from_before_migrations_opens_and_is_upgraded_in_place(tmp_path: Path) -> None:
    old = tmp_path / "sample.db"
    shutil.copy(V1_DB, old)
    conn = sqlite3.connect(old)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'").fetchone() == (0,)
    conn.close()
    unchanged = hashlib.sha256(old.read_bytes()).hexdigest()
    with Store(old, readonly=True) as ro:  # read-only: an upgraded private copy is read, nothing is written
        before = ro.points_frame()
        # version 1 predates the record (no date); the copy took every later step
        assert [(m.version, m.applied_at is None) for m in ro.migrations()] == [
            (m.version, m.version == 1) for m in MIGRATIONS
        ]
        assert ro.timelines_frame().empty and ro.sustained_frame().empty
        assert ro.kernels_frame().empty and ro.predictors_frame().empty  # tables a later step adds read as empty
        with pytest.raises(StoreError, match="is read-only while starting a run"):
            ro.start_run("x", "")
    assert hashlib.sha256(old.read_bytes()).hexdigest() == unchanged
    assert len(before) == 66
    with Store(old) as rw:
        # version 1 recorded with no date (it predates the record), the later steps applied now
        assert [(m.version, m.applied_at is None) for m in rw.migrations()] == [
            (m.version, m.version == 1) for m in MIGRATIONS
        ]
        pd.testing.assert_frame_equal(rw.points_frame(), before)
        rw.start_run("after-upgrade", "")  # and writable
        device = rw.devices_frame().set_index("name").loc["local"]
        assert (device["inventory_name"], device["fingerprint"], device["last_error"]) == ("local", None, None)
    conn = sqlite3.connect(old)
    recorded = conn.execute("SELECT version, applied_at IS NULL FROM schema_migrations").fetchall()
    conn.close()
    assert recorded == [(m.version, int(m.version == 1)) for m in MIGRATIONS]
    assert integrity(old) == ("ok", [])


def test_a_new_migration_upgrades_an_existing_database_and_is_recorded(store: Store, db: Path) -> None:
    run_id, point_id = new_point(store)
    store.close()
    step = Migration(
        SCHEMA_VERSION + 1,
        "points.notes",
        ("ALTER TABLE points ADD COLUMN notes TEXT", "UPDATE points SET notes = 'migrated'"),
    )
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    assert upgrade(conn, (*MIGRATIONS, step)) == [step.version]
    conn.execute("COMMIT")
    assert upgrade(conn, (*MIGRATIONS, step)) == []  # applied once
    assert conn.execute("PRAGMA user_version").fetchone()[0] == step.version
    assert conn.execute("SELECT id, run_id, notes FROM points").fetchall() == [(point_id, run_id, "migrated")]
    versions = conn.execute("SELECT version, description, applied_at IS NOT NULL FROM schema_migrations").fetchall()
    conn.close()
    assert versions == [*((m.version, m.description, 1) for m in MIGRATIONS), (step.version, "points.notes", 1)]
    with pytest.raises(StoreError, match="newer than this flopgap"):  # this flopgap does not know the step
        Store(db)


def test_statuses_are_enums_and_the_schema_checks_them(store: Store) -> None:
    run_id, point_id = new_point(store)
    assert store.point_status(point_id) is PointStatus.PENDING
    assert store.runs()[0].status is RunStatus.RUNNING
    store.finish_run(run_id, RunStatus.COMPLETED)
    assert store.runs()[0].status is RunStatus.COMPLETED
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        store.connection.execute("UPDATE points SET status = 'skipped' WHERE id = ?", (point_id,))
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        store.connection.execute("UPDATE runs SET status = 'paused' WHERE id = ?", (run_id,))
    with pytest.raises(ValueError, match="run status must be one of completed, interrupted, failed; got 'paused'"):
        store.finish_run(run_id, "paused")


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (sqlite3.SQLITE_FULL, "is full"),
        (sqlite3.SQLITE_IOERR_WRITE, "disk I/O error"),  # an extended code: its low byte is SQLITE_IOERR
        (sqlite3.SQLITE_READONLY, "is read-only"),
        (sqlite3.SQLITE_BUSY, "stayed locked"),
        (sqlite3.SQLITE_NOTADB, "not a flopgap results database"),
    ],
)
def test_sqlite_result_codes_decide_the_message(code: int, said: str, tmp_path: Path) -> None:
    err = sqlite3.OperationalError("opaque")  # no hint in the text: only the code tells
    err.sqlite_errorcode = code
    translated = translate(err, tmp_path / "r.db", "storing a trial")
    assert translated is not None and said in str(translated)
    bug = sqlite3.IntegrityError("opaque")
    bug.sqlite_errorcode = sqlite3.SQLITE_CONSTRAINT_UNIQUE
    assert translate(bug, tmp_path / "r.db", "storing a trial") is None


# -- point keys and resume -------------------------------------------------------------------------------------


def test_point_key_is_sha256_of_canonical_json() -> None:
    expected = hashlib.sha256(
        b'{"artifact_sha":"aa","device":"pi4","options":{"a":1,"b":[2,3]},"runtime":"ort","threads":4}'
    ).hexdigest()
    assert point_key("aa", "pi4", "ort", 4, {"b": [2, 3], "a": 1}) == expected
    assert point_key("aa", "pi4", "ort", 4, {"a": 1, "b": [2, 3]}) == expected
    assert point_key("aa", "pi4", "ort", 2, {"a": 1, "b": [2, 3]}) != expected
    assert point_key("aa", "pi4", "ort", 4) == point_key("aa", "pi4", "ort", 4, {})
    with pytest.raises(ValueError, match="JSON values"):
        point_key("aa", "pi4", "ort", 4, {"x": object()})


def test_ensure_point_is_idempotent_and_links_every_run(store: Store) -> None:
    run1, p1 = new_point(store, options={"affinity": "0-3", "cooldown_s": 5})
    opts = {"cooldown_s": 5, "affinity": "0-3"}
    assert store.ensure_point(run1, SHA, "bench-host", "onnxruntime", 1, opts, "1.20.1") == p1
    other = store.ensure_point(
        run1, SHA, "bench-host", "onnxruntime", 2, {"affinity": "0-3", "cooldown_s": 5}, "1.20.1"
    )
    assert other != p1
    run2 = store.start_run("tiny", "")
    assert (
        store.ensure_point(run2, SHA, "bench-host", "onnxruntime", 1, {"affinity": "0-3", "cooldown_s": 5}, "1.20.1")
        == p1
    )
    assert store.connection.execute("SELECT count(*) FROM points").fetchone()[0] == 2
    point = store.point(p1)
    assert (point.run_id, point.threads, point.status, point.runtime_version) == (run1, 1, "pending", "1.20.1")
    assert point.options == {"affinity": "0-3", "cooldown_s": 5}
    assert point.point_key == point_key(
        SHA, "bench-host", "onnxruntime", 1, {"affinity": "0-3", "cooldown_s": 5}, runtime_version="1.20.1"
    )
    assert store.points_frame(run2)["point_id"].tolist() == [p1]
    assert sorted(store.points_frame(run1)["point_id"]) == [p1, other]


def test_ensure_point_names_missing_references(store: Store) -> None:
    run_id = store.start_run("tiny", "")
    with pytest.raises(ValueError, match=r"no device 'phone' \(upsert it\)"):
        store.ensure_point(run_id, SHA, "phone", "tflite", 4)
    with pytest.raises(ValueError, match=r"no run 99 \(call start_run\)"):
        store.ensure_point(99, SHA, "bench-host", "tflite", 4)
    assert store.connection.execute("SELECT count(*) FROM points").fetchone()[0] == 0


def test_duplicate_trial_is_rejected_and_never_duplicated(store: Store) -> None:
    _, point_id = new_point(store)
    first = trial_samples(0, 50)
    store.add_trial(point_id, 0, {"runner": "agent"}, first)
    with pytest.raises(DuplicateTrialError, match=f"point {point_id} already has trial 0"):
        store.add_trial(point_id, 0, {"runner": "agent"}, [1, 2, 3])
    assert store.trials_done(point_id) == {0}
    assert store.samples_frame([point_id])["latency_ns"].tolist() == first
    assert store.connection.execute("SELECT count(*) FROM samples").fetchone()[0] == 50


def test_failed_point_is_retried_and_done_point_is_skipped(store: Store) -> None:
    run1, point_id = new_point(store)
    store.add_trial(point_id, 0, {}, trial_samples(0, 20))
    store.fail_point(point_id, "device went offline")
    assert store.point_counts(run1) == PointCounts(done=0, failed=1, pending=0)
    assert [p.id for p in store.pending_points(run1)] == [point_id]

    run2 = store.start_run("tiny", "")
    assert store.ensure_point(run2, SHA, "bench-host", "onnxruntime", 1, None, "1.20.1") == point_id
    retry = store.point(point_id)
    assert (retry.status, retry.failure_reason) == ("failed", "device went offline")
    assert store.trials_done(point_id) == {0}  # the rerun measures only the missing trials
    store.add_trial(point_id, 1, {}, trial_samples(1, 20), run_id=run2)
    store.complete_point(point_id, {"n": 40, "median_ms": 2.0})
    assert store.point(point_id).failure_reason is None
    assert store.point_counts(run2) == PointCounts(done=1)
    assert store.pending_points(run2) == []

    run3 = store.start_run("tiny", "")
    assert store.ensure_point(run3, SHA, "bench-host", "onnxruntime", 1, None, "1.20.1") == point_id
    assert store.point(point_id).status == "done"
    assert store.pending_points(run3) == []
    run_ids = store.trials_frame([point_id])["run_id"]
    assert pd.isna(run_ids[0]) and run_ids[1] == run2


def test_runs_record_status_and_spec(store: Store) -> None:
    run_id = store.start_run("tiny", 'models = ["a"]\n')
    store.finish_run(run_id, "interrupted")
    (row,) = store.runs()
    assert (row.id, row.status, row.spec_name) == (run_id, "interrupted", "tiny")
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert store.runs_frame().loc[0, "spec_toml"] == 'models = ["a"]\n'
    with pytest.raises(ValueError, match="run status"):
        store.finish_run(run_id, "running")


def test_trial_validation(store: Store) -> None:
    _, point_id = new_point(store)
    with pytest.raises(ValueError, match="no samples"):
        store.add_trial(point_id, 0, {}, [])
    with pytest.raises(ValueError, match="negative"):
        store.add_trial(point_id, 0, {}, [5, -1])
    with pytest.raises(ValueError, match="unknown stats columns"):
        store.complete_point(point_id, {"n": 1, "median_ms": 1.0, "median": 1.0})
    assert store.trials_done(point_id) == set()


# -- crash safety, concurrency, full disk ----------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from harness.store import Store
    db, point_id, start, count, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    with Store(db) as store:
        for i in range(start, start + count):
            samples = [2_000_000 + i * 1_000 + (seq * 7919) % 997 for seq in range(n)]
            store.add_trial(point_id, i, {"trial": i, "samples_ns": samples}, samples)
            print(i, flush=True)
    """
)


def spawn_writer(tmp_path: Path, db: Path, point_id: int, start: int, count: int, n: int) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script), str(db), str(point_id), str(start), str(count), str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_mid_sweep_leaves_only_whole_trials(store: Store, db: Path, tmp_path: Path) -> None:
    _, point_id = new_point(store)
    store.close()
    n = 20_000  # big trials so the kill most likely lands inside a transaction
    writer = spawn_writer(tmp_path, db, point_id, 0, 10_000, n)
    assert writer.stdout is not None
    reported = [int(writer.stdout.readline()) for _ in range(8)]
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    assert integrity(db) == ("ok", [])
    with Store(db) as reopened:
        counts = trial_sample_counts(reopened.connection)
        assert set(reported) <= {c[0] for c in counts}
        assert [c[0] for c in counts] == list(range(len(counts)))  # no gap, no torn trial
        assert all(recorded == stored == n for _, recorded, stored in counts)
        samples = reopened.samples_frame([point_id])
        for index, group in samples.groupby("trial_index"):
            assert group["latency_ns"].tolist() == trial_samples(int(index), n)
        # and the sweep resumes where it stopped
        done = reopened.trials_done(point_id)
        reopened.add_trial(point_id, max(done) + 1, {}, trial_samples(max(done) + 1, 10))


def test_reader_sees_only_committed_whole_trials_while_a_sweep_writes(store: Store, db: Path, tmp_path: Path) -> None:
    _, point_id = new_point(store)
    total, n = 40, 5_000
    writer = spawn_writer(tmp_path, db, point_id, 0, total, n)
    seen: list[int] = []
    reads_while_writing = 0
    with Store(db, readonly=True) as reader:
        while True:
            running = writer.poll() is None
            counts = trial_sample_counts(reader.connection)  # one snapshot
            assert all(recorded == stored == n for _, recorded, stored in counts), counts
            assert [c[0] for c in counts] == list(range(len(counts)))
            seen.append(len(counts))
            reads_while_writing += running
            if not running:
                break
    assert writer.returncode == 0
    assert reads_while_writing > 0
    assert seen == sorted(seen) and seen[-1] == total
    # the writer's own Store and this one coexist: a write here does not fail either
    store.add_trial(point_id, total, {}, trial_samples(total, 10))


def fill_until_error(store: Store, point_id: int, start: int, n: int = 5_000, limit: int = 2_000) -> StoreError:
    for index in range(start, start + limit):
        try:
            store.add_trial(point_id, index, {}, trial_samples(index, n))
        except StoreError as err:
            return err
    raise AssertionError(f"no StoreError after {limit} trials")


def assert_whole_trials_survive(db: Path, point_id: int, expected: set[int]) -> None:
    assert integrity(db) == ("ok", [])
    with Store(db) as reopened:
        counts = trial_sample_counts(reopened.connection)
        assert {c[0] for c in counts} == expected
        assert all(recorded == stored for _, recorded, stored in counts)
        reopened.add_trial(point_id, 10_000, {}, [1, 2, 3])  # writable again once there is room


def test_full_database_raises_store_error_and_keeps_committed_trials(store: Store, db: Path) -> None:
    _, point_id = new_point(store)
    for index in range(3):
        store.add_trial(point_id, index, {}, trial_samples(index, 1_000))
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    # SQLITE_FULL, the same result code a full disk gives, once the file would grow past this many pages.
    store.connection.execute(f"PRAGMA max_page_count = {pages + 4}")
    err = fill_until_error(store, point_id, 3)
    message = str(err)
    assert str(db) in message and "is full" in message and "--db" in message
    assert err.path == db
    committed = store.trials_done(point_id)
    assert {0, 1, 2} <= committed
    store.close()
    assert_whole_trials_survive(db, point_id, committed)


def test_failing_disk_write_raises_store_error_and_keeps_trials(store: Store, db: Path, tmp_path: Path) -> None:
    """A real OS write failure (file size limit → EFBIG) in a child process."""
    _, point_id = new_point(store)
    for index in range(3):
        store.add_trial(point_id, index, {}, trial_samples(index, 1_000))
    store.close()
    script = tmp_path / "fsize.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, resource, signal, sys
            from harness.store import Store, StoreError
            db, point_id = sys.argv[1], int(sys.argv[2])
            with Store(db) as store:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of dying
                limit = max(os.path.getsize(db), os.path.getsize(db + "-wal")) + 64 * 1024
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
                try:
                    for i in range(3, 2_000):
                        store.add_trial(point_id, i, {}, [2_000_000 + k for k in range(5_000)])
                except StoreError as err:
                    print(err)
                    sys.exit(3)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script), str(db), str(point_id)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert str(db) in done.stdout and "free space or pass --db" in done.stdout
    assert done.stdout.count("\n") == 1  # one line
    with Store(db) as reopened:
        committed = reopened.trials_done(point_id)
    assert {0, 1, 2} <= committed
    assert_whole_trials_survive(db, point_id, committed)


def test_really_full_disk_on_a_small_tmpfs(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "1m") as disk:
        db = disk / "flopgap.db"
        with Store(db) as s:
            s.upsert_device("bench-host", "local", {})
            art = make_artifact(tmp_path)
            s.upsert_artifact(art, None, None, family="shufflenet_v2", label=zoo_names(art)["label"])
            _, point_id = new_point(s)
            for index in range(3):
                s.add_trial(point_id, index, {}, trial_samples(index, 1_000))
            err = fill_until_error(s, point_id, 3, n=2_000)
            assert str(db) in str(err) and "is full" in str(err)  # ENOSPC is SQLITE_FULL
            committed = s.trials_done(point_id)
        assert {0, 1, 2} <= committed
        assert integrity(db) == ("ok", [])
        with Store(db, readonly=True) as ro:
            counts = trial_sample_counts(ro.connection)
        assert {c[0] for c in counts} == committed
        assert all(recorded == stored for _, recorded, stored in counts)


# -- frames and export -----------------------------------------------------------------------------------------


def populate(store: Store) -> tuple[int, int, int]:
    """One run: a done point with three trials of known samples, and a failed point."""
    run_id, done = new_point(store, threads=1)
    trials = {0: [3.0, 1.0, 2.0, 5.0, 4.0], 1: [2.5, 2.0, 3.5], 2: [2.2, 2.4]}
    for index, ms in trials.items():
        store.add_trial(
            done,
            index,
            {"runtime": "onnxruntime", "state_before": {"temp_c": 41.0}, "state_after": {"temp_c": 44.5}},
            [round(v * 1e6) for v in ms],
            run_id=run_id,
        )
    every = [v for ms in trials.values() for v in ms]
    store.complete_point(
        done,
        {
            "n": len(every),
            "median_ms": statistics.median(every),
            "mean_ms": statistics.fmean(every),
            "min_ms": min(every),
            "max_ms": max(every),
            "ci_low_ms": 2.0,
            "ci_high_ms": 3.0,
            "cv": statistics.stdev(every) / statistics.fmean(every),
            "noisy": True,
            "noisy_reasons": ["cv 0.37 > 0.05"],
            "peak_rss_kib": 51_200,
        },
    )
    failed = store.ensure_point(run_id, SHA, "bench-host", "onnxruntime", 2)
    store.fail_point(failed, "runner exited 139")
    store.add_op_profile(done, [OpTime("conv1", "Conv", 120.5, 1), OpTime("shuffle_3", "Transpose", 40.25, 1)])
    store.finish_run(run_id, "completed")
    return run_id, done, failed


def test_frames_return_stored_numbers(store: Store) -> None:
    run_id, done, failed = populate(store)
    points = store.points_frame(run_id).set_index("point_id")
    samples = store.samples_frame([done])
    trials = store.trials_frame([done])

    assert len(samples) == 10
    assert samples["latency_ms"].median() == pytest.approx(points.loc[done, "median_ms"]) == 2.45
    assert trials["median_ms"].tolist() == [3.0, 2.5, 2.3]
    assert trials["median_ms"].tolist() == samples.groupby("trial_index")["latency_ms"].median().tolist()
    assert json.loads(trials.loc[0, "state_after_json"]) == {"temp_c": 44.5}
    assert json.loads(trials.loc[0, "runner_json"]) == {"runtime": "onnxruntime"}

    row = points.loc[done]
    assert (row["model_label"], row["family"], row["format"], row["precision"], row["device"]) == (
        "shufflenet_v2[width=0.5]",
        "shufflenet_v2",
        "onnx",
        "fp32",
        "bench-host",
    )
    assert (row["input_shape"], row["transport"], row["runtime_version"]) == ("1x3x224x224", "local", "1.20.1")
    assert (row["n"], row["n_trials"], row["macs"], row["params_count"]) == (10, 3, 41_000_000, 1_366_792)
    assert points["noisy"].dtype == "boolean" and points["noisy"].tolist() == [True, pd.NA]
    assert row["noisy_reasons"] == "cv 0.37 > 0.05"
    assert row["peak_rss_kib"] == 51_200 and pd.isna(row["p10_ms"])
    assert points.loc[failed, "status"] == "failed" and points.loc[failed, "failure_reason"] == "runner exited 139"
    assert pd.isna(points.loc[failed, "median_ms"]) and points.loc[failed, "n_trials"] == 0

    ops = store.op_profiles_frame([done])
    assert ops[["op_type", "time_us"]].values.tolist() == [["Conv", 120.5], ["Transpose", 40.25]]
    assert ops["category"].isna().all()
    runs = store.runs_frame()
    assert runs[["run_id", "status", "done", "failed", "pending"]].values.tolist() == [[run_id, "completed", 1, 1, 0]]
    assert store.samples_frame([failed]).empty


def test_artifact_family_and_label_come_from_the_zoo_when_known(store: Store, tmp_path: Path) -> None:
    from harness.zoo import resolve

    spec = resolve("mobilenet_v1")
    sha = hashlib.sha256(b"mobilenet_v1").hexdigest()
    artifact = make_artifact(tmp_path, sha=sha, precision=Precision.INT8)
    artifact = Artifact(**{**artifact.__dict__, "model": spec.name, "params": spec.params})
    store.upsert_artifact(artifact, macs=569_000_000, params_count=4_231_976, **zoo_names(artifact))
    row = store.artifacts_frame().set_index("sha256").loc[sha]
    assert (row["label"], row["family"], row["precision"]) == (spec.label, spec.family, "int8")
    store.upsert_artifact(
        artifact, macs=570_000_000, params_count=4_231_976, **zoo_names(artifact)
    )  # refresh, not a second row
    assert store.artifacts_frame().set_index("sha256").loc[sha, "macs"] == 570_000_000
    assert len(store.artifacts_frame()) == 2


def test_devices_upsert_refreshes_facts_and_keeps_first_seen(store: Store) -> None:
    before = store.devices_frame().set_index("name").loc["bench-host"]
    store.upsert_device("bench-host", "local", {"cpu": "x86_64", "cores": 4})
    after = store.devices_frame().set_index("name").loc["bench-host"]
    assert json.loads(after["facts_json"]) == {"cpu": "x86_64", "cores": 4}
    assert after["first_seen"] == before["first_seen"] and after["id"] == before["id"]
    assert len(store.devices_frame()) == 1


def test_export_csv_and_parquet_round_trip(store: Store, tmp_path: Path) -> None:
    run_id, done, _ = populate(store)
    points = store.points_frame()
    assert store.export(tmp_path / "out" / "points.csv", "csv") == 2
    back = pd.read_csv(tmp_path / "out" / "points.csv")
    assert back["median_ms"].tolist()[0] == 2.45 and pd.isna(back["median_ms"].tolist()[1])
    assert back["model_label"].tolist() == points["model_label"].tolist()
    assert back["threads"].tolist() == [1, 2]
    assert back["macs"].tolist() == [41_000_000, 41_000_000]

    assert store.export(tmp_path / "points.parquet", "parquet") == 2
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "points.parquet"), points, check_dtype=False)
    assert store.export(tmp_path / "samples.parquet", "parquet", table="samples", run_id=run_id) == 10
    samples = pd.read_parquet(tmp_path / "samples.parquet")
    assert samples["latency_ns"].tolist() == store.samples_frame([done])["latency_ns"].tolist()
    with pytest.raises(FlopgapError, match="unknown table 'nope'; tables: points, samples"):
        store.export(tmp_path / "x.csv", "csv", table="nope")


def test_database_on_a_read_only_filesystem(store: Store, db: Path, tmp_path: Path) -> None:
    _, point_id = new_point(store)
    store.add_trial(point_id, 0, {}, trial_samples(0, 100))
    store.close()
    with read_only(db.parent, tmp_path / "ro") as ro_dir:
        with pytest.raises(StoreError, match=r"cannot open results database .*/ro/flopgap\.db .*writable"):
            Store(ro_dir / db.name)
        with Store(ro_dir / db.name, readonly=True) as reader:  # reports still work from read-only media
            assert reader.samples_frame([point_id])["latency_ns"].tolist() == trial_samples(0, 100)
    assert integrity(db) == ("ok", [])


def test_complete_point_with_the_statistics_the_sweep_computes(store: Store) -> None:
    from harness.measure.stats import combine_trials

    run_id = store.start_run("tiny", "")
    point_id = store.ensure_point(run_id, SHA, "bench-host", "onnxruntime", 1)  # runtime version not known yet
    for index in range(3):
        doc = {"runtime_version": "1.20.1", "init_ns": 40_000_000 + index, "first_inference_ns": 9_000_000}
        store.add_trial(point_id, index, {**doc, "peak_rss_kib": 50_000 + index}, trial_samples(index, 200))
    assert store.point_status(point_id) == "pending"
    trials = store.trial_samples(point_id)
    assert trials == [trial_samples(i, 200) for i in range(3)]
    stats = combine_trials(trials)
    store.complete_point(point_id, stats)  # a PointStats, via its to_row()
    row = store.points_frame().set_index("point_id").loc[point_id]
    pooled = store.samples_frame([point_id])["latency_ms"]
    assert store.point_status(point_id) == "done"
    assert row["median_ms"] == pytest.approx(pooled.median()) == pytest.approx(stats.overall.median)
    assert row["p90_ms"] == pytest.approx(pooled.quantile(0.9))
    assert row["n"] == 600 and row["trial_spread"] == pytest.approx(stats.trial_spread)
    assert bool(row["noisy"]) is stats.noisy
    # figures PointStats does not carry come from the runner documents
    assert (row["init_ms"], row["first_inference_ms"], row["peak_rss_kib"]) == (40.000001, 9.0, 50_002)
    assert row["runtime_version"] == "1.20.1"


def test_point_without_an_artifact_row_is_kept_and_shown(store: Store) -> None:
    """A sweep records a failed export as a failed point keyed by a placeholder instead of a sha."""
    run_id = store.start_run("tiny", "")
    placeholder = "unexported:shufflenet_v2[width=2.0]:tflite:int8"
    point_id = store.ensure_point(run_id, placeholder, "bench-host", "tflite", 4)
    store.fail_point(point_id, "export failed: unsupported op ChannelShuffle")
    row = store.points_frame(run_id).set_index("point_id").loc[point_id]
    assert row["model_label"] == placeholder and pd.isna(row["format"]) and row["status"] == "failed"


def test_database_one_step_behind_reads_through_a_private_copy_and_upgrades_read_write(db: Path) -> None:
    # A database written before sustained runs (version 2): no timelines tables, nor any later step's.
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    assert upgrade(conn, MIGRATIONS[:2]) == [1, 2]
    conn.execute("COMMIT")
    conn.close()
    unchanged = hashlib.sha256(db.read_bytes()).hexdigest()
    every_step = [m.version for m in MIGRATIONS]
    with Store(db, readonly=True) as ro:  # the copy took step 3 (and later ones): its tables read as empty
        assert ro.timelines_frame().empty and ro.sustained_frame().empty
        assert ro.kernel_samples_frame().empty and ro.predictors_frame().empty
        assert [m.version for m in ro.migrations()] == every_step
    assert hashlib.sha256(db.read_bytes()).hexdigest() == unchanged
    with Store(db) as rw:
        assert [m.version for m in rw.migrations()] == every_step
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()
    assert {"timelines", "sustained_trials", "kernel_samples", "kernels", "predictors"} <= tables


def test_the_full_identity_names_everything_that_tells_machines_apart() -> None:
    """What the README's sample section prints: the sample's own facts, word for word, and no field invented when a
    device reported fewer (a phone: model and serial)."""
    from harness.store.identity import fingerprint, full_identity

    facts = {"cpu_vendor": "AuthenticAMD", "cpu_model": "AMD EPYC", "cpu_family": "25", "cpu_model_number": "17",
             "cpu_stepping": "1", "cpu_caches": {"L1d": "32K", "L2": "1024K", "L3": "32768K"},
             "cpu_flags_digest": "6a93d771884cba54", "cpu_count": 2, "cpus_usable": 2, "mem_total_kib": 24684096,
             "system": "Linux", "kernel": "6.18.44-fc-v595", "os_pretty_name": "Debian GNU/Linux 12 (bookworm)",
             "machine": "x86_64", "machine_id_digest": "6455e8d9b363ee5e"}  # fmt: skip
    fp = fingerprint(facts)
    assert full_identity(facts, fp) == (
        "AMD EPYC (AuthenticAMD family 25 model 17 stepping 1; L1d 32K, L2 1024K, L3 32768K; flags digest "
        "6a93d771884cba54), 2 CPUs, 23.5 GiB, Linux 6.18.44-fc-v595, Debian GNU/Linux 12 (bookworm); "
        f"machine-id digest 6455e8d9b363ee5e, fingerprint {fp}"
    )
    assert full_identity({"model": "Pixel 7", "serial": "28011FDH", "abi": "arm64-v8a"}) == "Pixel 7; serial 28011FDH"
