"""Fault injection on the harness and the store, end to end with real components: `flopgap` processes killed with
SIGKILL and rerun, two of them on one database at once, a machine swapped behind `local`, a runtime upgraded
between runs, an artifact cache on a full or read-only filesystem, points that fail (exit codes).

Faults at the device boundary (orphan runners, swapped artifacts, SSH signals) are in the devices' own modules.
Where a device is faked it is at its protocol boundary: the interpreter that starts the real runner is a wrapper
script that changes what the runner reports (its facts, its runtime's version), named so in each test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import onnxruntime
import pytest

import harness.analysis as analysis
from devices.core.errors import ExitCode
from devices.local import local_device
from exporters.cache import CacheUnwritable
from exporters.export import export
from harness.measure.spec import parse_spec
from harness.measure.sweep import run_sweep
from harness.report.html import version_note, write_report
from harness.store import RunStatus, Store
from harness.zoo.registry import resolve
from tests.conftest import cached_exporter, read_only, small_tmpfs

REPO = Path(__file__).resolve().parents[1]
SMALL = "{ cin = 16, cout = 16, h = 8, w = 8 }"
BIG = "{ cin = 512, cout = 512, h = 8, w = 8 }"  # 1 MiB of weights: does not fit a 256 KiB cache


def spec_text(
    models: tuple[str, ...] = (SMALL,),
    *,
    trials: int = 2,
    runs: int = 5,
    runtimes: str = '["onnxruntime"]',
    min_seconds: float = 0,
) -> str:
    body = "".join(f'[[models]]\nname = "conv1x1"\nparams = {m}\n' for m in models)
    return (
        f'name = "faults"\nruntimes = {runtimes}\n{body}'
        f"[protocol]\ntrials = {trials}\nwarmup_runs = 1\nwarmup_seconds = 0\nruns = {runs}\n"
        f"min_seconds = {min_seconds}\ntimeout_s = 60\nparity = true\n"
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def flopgap(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "harness.cli", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def start_flopgap(*args: str | Path) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "harness.cli", *map(str, args)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def committed_trials(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM trials").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet


def wait_for_trials(db: Path, proc: subprocess.Popen[str], n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while committed_trials(db) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"fewer than {n} trials committed in {timeout}s"
        time.sleep(0.05)


def python_wrapper(tmp_path: Path, name: str, python_code: str) -> Path:
    """An executable that stands in for the device's python: runs the real runner after ``python_code``."""
    path = tmp_path / name
    path.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c '{python_code}\nimport runpy, sys\n"
        'sys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name="__main__")\' "$@"\n'
    )
    path.chmod(0o755)
    return path


def inventory(tmp_path: Path, python: Path, name: str = "bench") -> Path:
    path = tmp_path / "devices.toml"
    path.write_text(f'[devices.{name}]\ntransport = "local"\npython = "{python}"\n')
    return path


# -- kill -9, then rerun ---------------------------------------------------------------------------------------


def test_a_sweep_killed_with_sigkill_is_shown_interrupted_and_the_rerun_finishes_it(
    tmp_path: Path, cache_dir: Path
) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text((SMALL, BIG), trials=3, runs=300))
    db = tmp_path / "r.db"
    proc = start_flopgap("sweep", spec, "--db", db, "--cache-dir", cache_dir)
    wait_for_trials(db, proc, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    listed = flopgap("results", "list", "--db", db)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"\b1\b.*\binterrupted\b.*faults", listed.stdout), listed.stdout  # its process is gone

    rerun = flopgap("sweep", spec, "--db", db, "--cache-dir", cache_dir)
    assert rerun.returncode == ExitCode.OK, rerun.stderr
    with Store(db) as store:
        runs = store.runs()
        assert [(r.id, r.status) for r in runs] == [(1, RunStatus.INTERRUPTED), (2, RunStatus.COMPLETED)]
        assert runs[0].owner is not None and runs[0].owner.pid == proc.pid
        trials = store.trials_frame()
        assert len(trials) == 2 * 3 and not trials.duplicated(["point_id", "trial_index"]).any()
        assert set(trials["run_id"]) == {1, 2}  # every trial names the run that measured it
        for row in trials.itertuples():
            # started_at is when the trial started: before the runner read the device state ahead of timing
            before = json.loads(row.state_before_json)["time_unix"]
            assert datetime.fromisoformat(row.started_at).timestamp() <= before
    listed = flopgap("results", "list", "--db", db)
    lines = {int(m.group(1)): m.group(0) for m in re.finditer(r"^\s*(\d+)\s+\S+ \S+\s+\w+.*$", listed.stdout, re.M)}
    assert re.search(r"interrupted\s+(\d+)\s+0\s+(\d+)", lines[1]), lines[1]
    assert re.search(r"completed\s+2\s+0\s+0\s+onnxruntime \S+ \(runner \d+\)", lines[2]), lines[2]


# -- two flopgaps on one database --------------------------------------------------------------------------------


def test_the_same_spec_twice_at_once_never_crashes_and_never_duplicates(tmp_path: Path, cache_dir: Path) -> None:
    """The second run crashed with `DuplicateTrialError: point 1 already has trial 0`."""
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text((SMALL, BIG), trials=4, runs=20, min_seconds=0.3))
    db = tmp_path / "r.db"
    with Store(db):
        pass  # both find the database created: neither races to create the schema
    for big in (False, True):  # a warm cache: both reach their first trial at about the same time
        size = 512 if big else 16
        export(resolve("conv1x1", cin=size, cout=size, h=8, w=8), "onnx", "fp32", cache_dir=cache_dir)
    first = start_flopgap("sweep", spec, "--db", db, "--cache-dir", cache_dir)
    second = start_flopgap("sweep", spec, "--db", db, "--cache-dir", cache_dir)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    for proc, (_, err) in zip((first, second), outs, strict=True):
        assert proc.returncode == ExitCode.OK, err
        assert "Traceback" not in err and "DuplicateTrialError" not in err
    with Store(db) as store:
        trials = store.trials_frame()
        assert len(trials) == 2 * 4 and not trials.duplicated(["point_id", "trial_index"]).any()
        assert list(store.points_frame()["status"]) == ["done", "done"]
        assert [r.status for r in store.runs()] == [RunStatus.COMPLETED, RunStatus.COMPLETED]
    measured = [int(re.search(r"(\d+) trials measured", out.replace("\n", " ")).group(1)) for out, _ in outs]  # type: ignore[union-attr]
    assert sum(measured) == 8  # each trial counted by the run that committed it


# -- another machine behind 'local' --------------------------------------------------------------------------------


def test_a_swapped_machine_behind_one_name_is_kept_apart_and_re_measured(tmp_path: Path, cache_dir: Path) -> None:
    """The device is faked at its facts: a wrapper interpreter makes the real runner report another CPU."""
    text = spec_text(trials=1)
    spec = parse_spec(text)
    swapped = tmp_path / "python-swapped"
    swapped.write_text(
        "#!/bin/sh\n"
        f'if [ "$2" = "--facts" ]; then {sys.executable} "$@" | {sys.executable} -c '
        "'import json, sys; d = json.load(sys.stdin); "
        'd.update(cpu_model="Intel(R) Xeon(R) Platinum 8375C", cpu_flags_digest="0123456789abcdef", '
        'machine_id_digest="fedcba9876543210"); print(json.dumps(d))\'; '
        f'else exec {sys.executable} "$@"; fi\n'
    )
    swapped.chmod(0o755)
    with Store(tmp_path / "r.db") as store:
        first = run_sweep(spec, text, store, {"local": local_device()}, cached_exporter(cache_dir))
        second = run_sweep(spec, text, store, {"local": local_device(python=str(swapped))}, cached_exporter(cache_dir))
        assert (first.measured_trials, second.measured_trials, second.skipped_points) == (1, 1, 0)
        devices = store.devices_frame().set_index("name")
        assert len(devices) == 2 and set(devices["inventory_name"]) == {"local"}
        other = next(n for n in devices.index if n != "local")
        assert other.startswith("local@") and json.loads(devices.loc[other, "facts_json"])["cpu_model"].startswith(
            "Intel"
        )
        points = store.points_frame().set_index("point_id")
        assert sorted(points["device"]) == sorted(["local", other])
        third = run_sweep(spec, text, store, {"local": local_device()}, cached_exporter(cache_dir))
        assert (third.measured_trials, third.skipped_points) == (0, 1)  # back on the first machine: all done
        report = write_report(store, tmp_path / "report")
    page = report.html_path.read_text()
    assert "Device &#x27;local&#x27; was 2 different machines" in page
    assert f"&#x27;{other}&#x27;: Intel(R) Xeon(R) Platinum 8375C" in page


def test_an_unreachable_device_keeps_its_facts_and_fails_its_points_with_exit_code_3(
    tmp_path: Path, cache_dir: Path
) -> None:
    """The device is faked at its interpreter: once real, then one that cannot start."""
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(trials=1).replace('name = "faults"', 'name = "faults"\ndevices = ["bench"]'))
    db = tmp_path / "r.db"
    good = inventory(tmp_path, Path(sys.executable))
    assert flopgap("sweep", spec, "--db", db, "--cache-dir", cache_dir, "--devices", good).returncode == 0
    with Store(db, readonly=True) as store:
        facts = store.devices_frame().set_index("name").loc["bench", "facts_json"]
    broken = tmp_path / "python-gone"
    broken.write_text("#!/bin/sh\necho 'bench: connection lost' >&2\nexit 255\n")
    broken.chmod(0o755)
    spec.write_text(spec.read_text().replace("trials = 1", "trials = 2"))  # one trial left to measure
    res = flopgap("sweep", spec, "--db", db, "--cache-dir", cache_dir, "--devices", inventory(tmp_path, broken))
    assert res.returncode == ExitCode.SOME_FAILED, res.stderr
    assert "Traceback" not in res.stderr
    with Store(db, readonly=True) as store:
        row = store.devices_frame().set_index("name").loc["bench"]
        assert row["facts_json"] == facts  # was overwritten with the error
        assert "runner --facts failed" in row["last_error"]
        assert store.runs()[-1].counts.failed == 1


# -- a runtime upgrade between runs --------------------------------------------------------------------------------


def test_an_upgraded_runtime_is_measured_again_not_skipped(tmp_path: Path, cache_dir: Path) -> None:
    """The device is faked at its interpreter: the real runner with onnxruntime reporting version 99.0.0."""
    text = spec_text(trials=1)
    spec = parse_spec(text)
    upgraded = python_wrapper(tmp_path, "python-ort-99", 'import onnxruntime\nonnxruntime.__version__ = "99.0.0"')
    with Store(tmp_path / "r.db") as store:
        before = run_sweep(spec, text, store, {"local": local_device()}, cached_exporter(cache_dir))
        after = run_sweep(spec, text, store, {"local": local_device(python=str(upgraded))}, cached_exporter(cache_dir))
        assert (before.measured_trials, after.measured_trials, after.skipped_points) == (1, 1, 0)
        points = store.points_frame()
        assert sorted(points["runtime_version"]) == sorted([onnxruntime.__version__, "99.0.0"])
        assert set(points["status"]) == {"done"} and points["runner_version"].notna().all()
        assert [str(v) for v in store.versions()][-1].startswith("onnxruntime 99.0.0 (runner ")
        fits = analysis.fits(analysis.load(store))
    note = version_note(fits)  # the report never fits one line through two versions without saying so
    assert note is not None and f"{onnxruntime.__version__}, 99.0.0" in note


# -- the artifact cache on a full or read-only filesystem ----------------------------------------------------------


def test_export_into_a_full_cache_says_so_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        with pytest.raises(CacheUnwritable) as info:
            export(resolve("conv1x1", cin=512, cout=512, h=8, w=8), "onnx", "fp32", cache_dir=disk / "cache")
        message = str(info.value)
        assert message.startswith(f"artifact cache {disk / 'cache'} is full (no space left on its disk)")
        assert "--cache-dir" in message and "\n" not in message
        assert not [p for p in (disk / "cache").rglob("*") if p.is_file()]  # no partial file, no log


def test_a_read_only_cache_serves_what_it_holds_and_refuses_new_exports_in_one_line(tmp_path: Path) -> None:
    src = tmp_path / "cache"
    small = resolve("conv1x1", cin=16, cout=16, h=8, w=8)
    held = export(small, "onnx", "fp32", cache_dir=src)
    with read_only(src, tmp_path / "ro") as ro:
        assert export(small, "onnx", "fp32", cache_dir=ro).sha256 == held.sha256  # a hit needs no write
        with pytest.raises(CacheUnwritable, match=rf"^artifact cache {re.escape(str(ro))} is read-only while "):
            export(resolve("conv1x1", cin=32, cout=32, h=8, w=8), "onnx", "fp32", cache_dir=ro)


def test_a_full_cache_fails_its_point_not_the_sweep(tmp_path: Path) -> None:
    """A 64-line traceback ended the sweep; now the point fails with one line and the others are measured."""
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text((SMALL, BIG), trials=1))
    db = tmp_path / "r.db"
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        res = flopgap("sweep", spec, "--db", db, "--cache-dir", disk / "cache")
    assert res.returncode == ExitCode.SOME_FAILED, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    with Store(db, readonly=True) as store:
        points = store.points_frame().set_index("model_label")
        assert points.loc["conv1x1[cin=16,cout=16,h=8,w=8]", "status"] == "done"  # committed and kept
        reason = points.loc["unexported:conv1x1[cin=512,cout=512,h=8,w=8]:onnx:fp32", "failure_reason"]
        assert reason.startswith(f"artifact cache {disk / 'cache'} is full") and "\n" not in reason
        assert len(store.trials_frame()) == 1
    assert "1 failed" in res.stdout.replace("\n", " ")


def test_a_read_only_cache_fails_only_the_points_it_cannot_export(tmp_path: Path) -> None:
    src = tmp_path / "cache"
    export(resolve("conv1x1", cin=16, cout=16, h=8, w=8), "onnx", "fp32", cache_dir=src)
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text((SMALL, BIG), trials=1))
    db = tmp_path / "r.db"
    with read_only(src, tmp_path / "ro") as ro:
        res = flopgap("sweep", spec, "--db", db, "--cache-dir", ro)
    assert res.returncode == ExitCode.SOME_FAILED, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    with Store(db, readonly=True) as store:
        frame = store.points_frame()
        assert sorted(frame["status"]) == ["done", "failed"]
        reason = frame.set_index("status").loc["failed", "failure_reason"]
        assert "is read-only while" in reason and str(ro) in reason


# -- exit codes and summaries -----------------------------------------------------------------------------------


def test_run_whose_only_point_fails_exits_3_and_results_list_counts_it(tmp_path: Path, cache_dir: Path) -> None:
    """`flopgap run` exited 0 when its point failed. The device is faked at its interpreter: it segfaults."""
    crash = tmp_path / "python-crash"
    crash.write_text(
        f'#!/bin/sh\nfor a in "$@"; do [ "$a" = --facts ] && exec {sys.executable} "$@"; done\nkill -SEGV $$\n'
    )
    crash.chmod(0o755)
    db = tmp_path / "r.db"
    args = ("run", "conv1x1", "-p", "cin=16", "-p", "cout=16", "-p", "h=8", "-p", "w=8", "--runtime", "onnxruntime")
    common = ("--trials", "1", "--runs", "5", "--min-seconds", "0", "--db", db, "--cache-dir", cache_dir)
    res = flopgap(*args, *common, "--device", "bench", "--devices", inventory(tmp_path, crash))
    assert res.returncode == ExitCode.SOME_FAILED, res.stderr
    assert "killed by signal 11" in res.stdout.replace("\n", " ")
    listed = flopgap("results", "list", "--db", db)
    assert re.search(r"completed\s+0\s+1\s+0\s", listed.stdout), listed.stdout
    bad = flopgap("run", "conv1x1", "-p", "cin=3.7", "--db", db, "--cache-dir", cache_dir)
    assert bad.returncode == ExitCode.BAD_INPUT
    assert (
        bad.stderr.strip()
        == "error: conv1x1: parameter 'cin' must be an integer, got '3.7'; allowed: a positive integer"
    )


def test_the_summary_shows_exactly_this_sweeps_points_with_a_runtime_column(tmp_path: Path, cache_dir: Path) -> None:
    """A sweep whose points were all done printed every point in the database; litert and litert-builtin rows
    looked identical."""
    db = tmp_path / "r.db"
    other = tmp_path / "other.toml"
    other.write_text(spec_text(("{ cin = 8, cout = 8, h = 8, w = 8 }",), trials=1))
    assert flopgap("sweep", other, "--db", db, "--cache-dir", cache_dir).returncode == 0
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(trials=1, runtimes='["litert", "litert-builtin"]'))
    first = flopgap("sweep", spec, "--db", db, "--cache-dir", cache_dir)
    again = flopgap("sweep", spec, "--db", db, "--cache-dir", cache_dir)  # every point done: skipped
    for res in (first, again):
        assert res.returncode == 0, res.stderr
        rows = [line for line in res.stdout.splitlines() if line.startswith("│ conv1x1")]
        assert len(rows) == 2, res.stdout  # not the other sweep's cin=8 point
        assert re.search(r"\blitert\b", rows[0]) and re.search(r"\blitert-builtin\b", rows[1]), rows
        assert "runtime" in res.stdout and "cin=8" not in res.stdout
    assert "0 trials measured, 2 points already done (skipped)" in again.stdout.replace("\n", " ")
