"""The store's record of runs and devices on a real SQLite file: versions in point keys, each run's own outcomes,
runs whose process is gone, device errors kept apart from facts, and one device row per machine."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.store import PointCounts, ProcessId, RunStatus, Store, VersionRow, fingerprint, point_key
from harness.store.owner import start_token

REPO = Path(__file__).resolve().parents[1]
SHA = hashlib.sha256(b"shufflenet_v2 fp32 onnx").hexdigest()

# Runner facts of two different machines, as devices/runner.py reports them (trimmed to identity and a few more).
EPYC = {
    "cpu_vendor": "AuthenticAMD",
    "cpu_model": "AMD EPYC",
    "cpu_family": "25",
    "cpu_model_number": "17",
    "cpu_stepping": "1",
    "cpu_count": 2,
    "cpu_caches": {"L1d": "32K", "L1i": "32K", "L2": "512K", "L3": "32768K"},
    "cpu_flags_digest": "1f0c2a9b3e4d5f60",
    "machine": "x86_64",
    "machine_id_digest": "aa11bb22cc33dd44",
    "kernel": "6.18.44",
    "runtimes": {"onnxruntime": "1.32.0"},
}
XEON = {
    **EPYC,
    "cpu_vendor": "GenuineIntel",
    "cpu_model": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
    "cpu_family": "6",
    "cpu_model_number": "106",
    "cpu_stepping": "6",
    "cpu_flags_digest": "9e8d7c6b5a4f3e2d",
    "machine_id_digest": "ee55ff66aa77bb88",
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "r.db") as s:
        s.upsert_device("bench-host", "local", {"cpu_model": "AMD EPYC", "cpu_count": 2})
        yield s


def samples(trial: int, n: int = 20) -> list[int]:
    return [2_000_000 + trial * 1_000 + seq for seq in range(n)]


# -- versions in the point key ---------------------------------------------------------------------------------


def test_point_key_includes_runtime_and_runner_versions() -> None:
    plain = point_key(SHA, "pi4", "onnxruntime", 4)
    v1 = point_key(SHA, "pi4", "onnxruntime", 4, runtime_version="1.20.1", runner_version="1")
    assert v1 != plain
    assert v1 != point_key(SHA, "pi4", "onnxruntime", 4, runtime_version="1.21.0", runner_version="1")
    assert v1 != point_key(SHA, "pi4", "onnxruntime", 4, runtime_version="1.20.1", runner_version="2")
    expected = hashlib.sha256(
        b'{"artifact_sha":"' + SHA.encode() + b'","device":"pi4","options":{},"runner_version":"1",'
        b'"runtime":"onnxruntime","runtime_version":"1.20.1","threads":4}'
    ).hexdigest()
    assert v1 == expected


def test_an_upgraded_runtime_gets_a_new_point_and_the_old_one_stays(store: Store) -> None:
    run1 = store.start_run("s", "")
    old = store.ensure_point(run1, SHA, "bench-host", "onnxruntime", 1, None, "1.20.1", runner_version="1")
    store.add_trial(old, 0, {"runtime_version": "1.20.1"}, samples(0))
    store.complete_point(old, {"n": 20, "median_ms": 2.01})
    store.finish_run(run1, RunStatus.COMPLETED)
    # the same spec after `pip install -U onnxruntime`: not skipped as done, measured anew
    run2 = store.start_run("s", "")
    new = store.ensure_point(run2, SHA, "bench-host", "onnxruntime", 1, None, "1.21.0", runner_version="1")
    assert new != old
    assert store.point_status(new) == "pending" and store.trials_done(new) == set()
    assert store.point_status(old) == "done"
    # a newer runner re-measures too
    run3 = store.start_run("s", "")
    assert store.ensure_point(run3, SHA, "bench-host", "onnxruntime", 1, None, "1.21.0", runner_version="2") != new
    assert store.versions() == [
        VersionRow("onnxruntime", "1.20.1", "1"),
        VersionRow("onnxruntime", "1.21.0", "1"),
        VersionRow("onnxruntime", "1.21.0", "2"),
    ]
    assert [r.versions for r in store.runs()] == [
        (VersionRow("onnxruntime", "1.20.1", "1"),),
        (VersionRow("onnxruntime", "1.21.0", "1"),),
        (VersionRow("onnxruntime", "1.21.0", "2"),),
    ]
    assert str(store.runs()[0].versions[0]) == "onnxruntime 1.20.1 (runner 1)"


def test_runner_version_is_filled_from_the_first_trial_when_not_known(store: Store) -> None:
    run = store.start_run("s", "")
    point = store.ensure_point(run, SHA, "bench-host", "onnxruntime", 1)
    store.add_trial(point, 0, {"runtime_version": "1.20.1", "runner_version": "1"}, samples(0), run_id=run)
    row = store.point(point)
    assert (row.runtime_version, row.runner_version) == ("1.20.1", "1")


# -- each run's own outcomes ----------------------------------------------------------------------------------


def test_a_later_retry_does_not_rewrite_an_earlier_runs_counts(store: Store) -> None:
    """'results list' showed a run with failed points as all done once a rerun had finished them."""
    run1 = store.start_run("s", "")
    a = store.ensure_point(run1, SHA, "bench-host", "onnxruntime", 1)
    b = store.ensure_point(run1, SHA, "bench-host", "onnxruntime", 2)
    store.add_trial(a, 0, {}, samples(0))
    store.complete_point(a, {"n": 20, "median_ms": 2.0})
    store.fail_point(b, "runner crashed: killed by signal 11")
    store.finish_run(run1, RunStatus.COMPLETED)
    run2 = store.start_run("s", "")
    assert store.ensure_point(run2, SHA, "bench-host", "onnxruntime", 2) == b
    store.add_trial(b, 0, {}, samples(0))
    store.complete_point(b, {"n": 20, "median_ms": 2.1})
    assert store.point_counts(run2) == PointCounts(done=1)  # while going: live
    store.finish_run(run2, RunStatus.COMPLETED)
    assert store.point_counts(run1) == PointCounts(done=1, failed=1)
    assert [r.counts for r in store.runs()] == [PointCounts(done=1, failed=1), PointCounts(done=1)]


# -- runs whose process is gone --------------------------------------------------------------------------------


def test_the_run_records_its_process() -> None:
    me = ProcessId.current()
    assert me.pid == os.getpid() and me.alive() is True
    assert me.start == start_token(os.getpid()) and me.start is not None
    boot, created = me.start.split("/")
    assert abs(float(created) - time.time()) < 24 * 3600 and int(boot) <= float(created)
    assert ProcessId(me.host, me.pid, "another-boot/1").alive() is False  # a reused pid is another process
    # A token written before psutil (Linux boot id / start ticks) is judged by its pid alone.
    assert ProcessId(me.host, me.pid, "0b9a4a1e-2f6c-4c1e-9d1f-3c7e8f00aa01/1234").alive() is True
    assert ProcessId("some-other-host", me.pid, me.start).alive() is None  # cannot tell from here


def _start_run_in_a_process_then_kill_it(db: Path) -> int:
    """A real process opens the database, starts a run and is killed with SIGKILL while it sleeps."""
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from harness.store import Store
        store = Store({str(db)!r})
        print(store.start_run("killed", ""), flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    return run_id


def test_a_run_killed_with_sigkill_is_marked_interrupted_by_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with Store(db) as store:
        store.upsert_device("bench-host", "local", {})
        live = store.start_run("live", "")  # this process: alive
    killed = _start_run_in_a_process_then_kill_it(db)
    with Store(db, readonly=True) as ro:
        runs = {r.id: r for r in ro.runs()}
        assert runs[killed].status is RunStatus.RUNNING  # as stored ...
        assert runs[killed].shown_status == "interrupted"  # ... but shown as what it is
        assert runs[live].shown_status == "running"
    with Store(db) as store:
        point = store.ensure_point(live, SHA, "bench-host", "onnxruntime", 1)
        store.start_run("next", "")
        runs = {r.id: r for r in store.runs()}
        assert runs[killed].status is RunStatus.INTERRUPTED and runs[killed].finished_at is None
        assert runs[live].status is RunStatus.RUNNING  # its process (this one) is alive
        assert store.close_dead_runs() == []
        assert store.point(point).status == "pending"


# -- devices --------------------------------------------------------------------------------------------------


def test_an_unreachable_device_keeps_its_last_good_facts(store: Store) -> None:
    store.upsert_device("rpi5", "ssh", EPYC)
    good = store.devices_frame().set_index("name").loc["rpi5"]
    store.upsert_device("rpi5", "ssh", {"error": "device 'rpi5': cannot connect to 192.168.1.50:22 (timed out)"})
    row = store.devices_frame().set_index("name").loc["rpi5"]
    assert json.loads(row["facts_json"]) == EPYC  # was overwritten with the error
    assert row["last_seen"] == good["last_seen"]
    assert row["last_error"] == "device 'rpi5': cannot connect to 192.168.1.50:22 (timed out)"
    assert row["last_error_at"] >= good["last_seen"]
    store.upsert_device("rpi5", "ssh", EPYC)  # reachable again: the error is cleared
    assert store.devices_frame().set_index("name").loc["rpi5"]["last_error"] is None


def test_a_device_first_seen_unreachable_gets_a_row_with_no_facts(store: Store) -> None:
    record = store.record_device_error("ghost", "ssh", "device 'ghost': connection refused")
    assert (record.name, record.fingerprint) == ("ghost", None)
    row = store.devices_frame().set_index("name").loc["ghost"]
    assert (row["facts_json"], row["last_error"]) == ("{}", "device 'ghost': connection refused")
    reached = store.record_device("ghost", "ssh", EPYC)  # reachable later: the same row, now with facts
    assert (reached.name, reached.fingerprint, reached.replaced) == ("ghost", fingerprint(EPYC), None)


def test_another_machine_under_the_same_name_is_kept_apart(store: Store) -> None:
    first = store.record_device("local", "local", EPYC)
    assert (first.name, first.fingerprint, first.replaced) == ("local", fingerprint(EPYC), None)
    moved = store.record_device("local", "local", XEON)
    assert moved.name == f"local@{fingerprint(XEON)[:8]}" and moved.replaced == "local"  # type: ignore[index]
    assert store.record_device("local", "local", {**EPYC, "kernel": "6.19.0"}).name == "local"  # not identity
    assert store.record_device("local", "local", XEON).name == moved.name and moved.replaced
    run = store.start_run("s", "")
    a = store.ensure_point(run, SHA, first.name, "onnxruntime", 1, None, "1.32.0")
    b = store.ensure_point(run, SHA, moved.name, "onnxruntime", 1, None, "1.32.0")
    assert a != b
    devices = store.devices_frame().set_index("name")
    assert devices.loc[moved.name, "inventory_name"] == "local"
    assert json.loads(devices.loc["local", "facts_json"])["kernel"] == "6.19.0"
    # an unreachable 'local' files its error under the machine seen last
    assert store.record_device_error("local", "local", "runner --facts failed").name == moved.name


def test_a_runner_reporting_one_more_fact_keeps_the_machine(store: Store) -> None:
    before = {k: v for k, v in EPYC.items() if k != "cpu_caches"}
    assert store.record_device("rpi5", "ssh", before).name == "rpi5"
    assert store.record_device("rpi5", "ssh", EPYC).name == "rpi5"
    assert store.devices_frame().set_index("name").loc["rpi5", "fingerprint"] == fingerprint(EPYC)
    assert store.record_device("rpi5", "ssh", {**XEON}).name != "rpi5"  # another flags digest, another machine


def test_results_stored_before_fingerprints_stay_apart_from_a_fingerprinted_machine(store: Store) -> None:
    # 'bench-host' holds old-style facts (CPU model name and core count): they cannot tell two EPYCs apart
    record = store.record_device("bench-host", "local", EPYC)
    assert (record.name, record.replaced) == (f"bench-host@{fingerprint(EPYC)[:8]}", "bench-host")  # type: ignore[index]
    assert store.record_device("bench-host", "local", EPYC).name == record.name


def test_a_point_created_while_versions_were_unknown_takes_them_if_it_never_measured(store: Store) -> None:
    """A device unreachable on the first run: its points were keyed without versions and failed."""
    run1 = store.start_run("s", "")
    failed = store.ensure_point(run1, SHA, "bench-host", "onnxruntime", 1)
    store.fail_point(failed, "device 'bench-host': connection refused")
    measured = store.ensure_point(run1, SHA, "bench-host", "onnxruntime", 2)
    store.add_trial(measured, 0, {}, samples(0))  # measured with a version nobody recorded: keeps its key
    run2 = store.start_run("s", "")
    assert store.ensure_point(run2, SHA, "bench-host", "onnxruntime", 1, None, "1.20.1", runner_version="1") == failed
    row = store.point(failed)
    assert (row.runtime_version, row.runner_version, row.status) == ("1.20.1", "1", "failed")
    assert row.point_key == point_key(SHA, "bench-host", "onnxruntime", 1, runtime_version="1.20.1", runner_version="1")
    assert store.ensure_point(run2, SHA, "bench-host", "onnxruntime", 2, None, "1.20.1", runner_version="1") != measured
