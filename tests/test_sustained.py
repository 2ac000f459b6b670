"""Sustained runs, throttling detection and thermal cooldown, on a fake sysfs.

The fake sysfs (tests/fake_sysfs.py) is mounted over ``/sys/class/thermal`` and ``/sys/devices/system/cpu`` in a
private mount namespace around the real ``flopgap`` command, so the runner's sampling thread and the transport's
state reads see temperatures and frequencies the test writes while the command runs. A throttling phone is slower:
to make the runner really slower, its device python (tests/clocked_python.py) gives every kernel a fixed number of
clock cycles at the fake frequency, so halving the clock doubles each run, by construction. The tests act when a
reader has read a fake file (tests/file_reads.py), not after sleeps that a loaded machine could outlast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devices.timeline import TimelineWindow
from harness.measure.cooldown import ThermalCooldown
from harness.measure.duration import DurationError, format_duration, parse_duration
from harness.measure.throttling import summarize
from harness.store import Store
from tests import fake_sysfs
from tests.environment import Need, needs
from tests.file_reads import FileReads

REPO = Path(__file__).resolve().parents[1]
needs_namespace = needs(Need.NAMESPACE, fake_sysfs.unavailable())


# --------------------------------------------------------------------------- pure pieces


def test_durations_as_people_write_them() -> None:
    assert [parse_duration(v) for v in ("30s", "10m", "1h", "1m30s", "90", 2.5, "500ms")] == [
        30.0, 600.0, 3600.0, 90.0, 90.0, 2.5, 0.5,
    ]  # fmt: skip
    assert [format_duration(s) for s in (30, 600, 90, 0.5, 3600)] == ["30s", "10m", "1m30s", "0.5s", "1h"]
    for bad in ("10 minutes", "m", "-5s", "0", ""):
        with pytest.raises(DurationError, match="duration"):
            parse_duration(bad)


def _windows(medians: list[float], khz: list[int], temps: list[float], window: float = 1.0) -> list[TimelineWindow]:
    return [
        TimelineWindow(i, i * window, (i + 1) * window, 100, m * 1e6, {"0": f, "1": f}, {"cpu": t}, (i + 1) * window)
        for i, (m, f, t) in enumerate(zip(medians, khz, temps, strict=True))
    ]


def test_throttling_needs_slower_latency_and_a_thermal_cause() -> None:
    slow_from_12 = [1.0] * 12 + [1.4] * 18
    hot = _windows(slow_from_12, [2_000_000] * 12 + [1_400_000] * 18, [40.0] * 30)
    verdict = summarize(hot)
    assert verdict.throttled and verdict.throttle_start_s == 12.0
    assert (verdict.span_s, verdict.first_ms, verdict.last_ms) == (10.0, 1.0, 1.4)
    assert verdict.ratio == pytest.approx(1.4) and "frequency -30%" in verdict.reason
    # the same slowdown with steady clocks and temperatures is drift, not throttling
    drift = summarize(_windows(slow_from_12, [2_000_000] * 30, [40.0] * 30))
    assert not drift.throttled and drift.throttle_start_s is None and "no fall in frequency" in drift.reason
    # hotter but not slower: not throttled either
    warm = summarize(_windows([1.0] * 30, [2_000_000] * 30, [40.0] * 12 + [60.0] * 18))
    assert not warm.throttled and warm.reason.startswith("steady")
    # a temperature rise alone is a cause; one slow window is a hiccup, not a drift
    spike = [1.0] * 30
    spike[5] = 3.0
    assert not summarize(_windows(spike, [2_000_000] * 30, [40.0] * 5 + [70.0] * 25)).throttled
    by_heat = summarize(_windows(slow_from_12, [2_000_000] * 30, [40.0] * 11 + [48.0] * 19))
    assert by_heat.throttle_start_s == 12.0 and "temperature +8.0 °C (cpu)" in by_heat.reason


def test_a_device_without_readings_says_throttling_cannot_be_told() -> None:
    windows = [TimelineWindow(i, i, i + 1, 10, 1e6 * (1 + i / 10)) for i in range(9)]
    verdict = summarize(windows)
    assert not verdict.throttled and verdict.reason.startswith("no CPU frequency or thermal zone was readable")
    assert verdict.ratio == pytest.approx(1.7 / 1.1) and verdict.reason.endswith("; latency drifted +54.5%")


def test_thermal_cooldown_waits_for_every_zone_and_gives_up_at_the_maximum() -> None:
    temps = iter([{"a": 40.0, "b": 30.0}, {"a": 45.0, "b": 30.0}, {"a": 43.0, "b": 33.0}, {"a": 41.5, "b": 31.0}])
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    cooldown = ThermalCooldown("phone", lambda: next(temps), 2.0, 60, poll_s=5, sleep=sleep, clock=lambda: now[0])
    cooldown.start()
    outcome = cooldown.wait()
    assert outcome is not None and not outcome.timed_out and outcome.waited_s == 10.0 and slept == [5, 5]
    hot = ThermalCooldown("phone", lambda: {"a": 50.0}, 2.0, 12, poll_s=5, sleep=sleep, clock=lambda: now[0])
    hot.baseline = {"a": 40.0}
    outcome = hot.wait()
    assert outcome is not None and outcome.timed_out and outcome.waited_s == 12.0 and outcome.excess_c == {"a": 10.0}
    assert outcome.reason == "ran before cooling down (a +10.0 °C over the sweep-start temperature after 12s)"


def test_a_device_without_thermal_zones_says_so_once() -> None:
    warnings: list[str] = []
    cooldown = ThermalCooldown("board", lambda: {}, 2.0, 60, warn=warnings.append)
    cooldown.start()
    assert [cooldown.wait(), cooldown.wait()] == [None, None]
    assert warnings == [
        "device 'board' has no readable thermal zones; cooldown = \"thermal\" cannot wait there, its trials run "
        "without a cooldown"
    ]


# --------------------------------------------------------------------------- the real command on a fake sysfs


def _runner_pids(marker: str) -> list[int]:
    """Processes running flopgap's runner whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in cmdline]
        if any(w.endswith("runner.py") for w in words) and any(marker in w for w in words):
            found.append(int(entry))
    return found


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact cache of this module's own: its models export once, and its path marks its runner processes."""
    return tmp_path_factory.mktemp("sustained_cache")


def _flopgap(fake: fake_sysfs.FakeSysfs, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = fake.wrap([sys.executable, "-m", "harness.cli", *args])
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _clocked_local(tmp_path: Path) -> Path:
    """An inventory whose local device's python is tests/clocked_python.py: kernels of a fixed cycle count."""
    python = tmp_path / "python-clocked"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {REPO / "tests" / "clocked_python.py"} "$@"\n')
    python.chmod(0o755)
    inventory = tmp_path / "devices.toml"
    inventory.write_text(f'[devices.phone]\ntransport = "local"\npython = "{python}"\n')
    return inventory


@needs_namespace
def test_sustained_sweep_flags_throttling_when_it_starts_fake_sysfs(tmp_path: Path, cache: Path) -> None:
    """The runner's kernels take a fixed number of cycles (tests/clocked_python.py), so halving the fake clock
    doubles them: the slowdown is known by construction, whatever else the machine runs."""
    fake = fake_sysfs.build(tmp_path / "sys", {"cpu-thermal": 45.0, "battery": 31.0})
    spec = tmp_path / "sustained.toml"
    spec.write_text(
        'name = "sustained"\nruntimes = ["onnxruntime"]\nthreads = [1]\ndevices = ["phone"]\n'
        '[[models]]\nname = "conv1x1"\nparams = { cin = 16, cout = 16, h = 16, w = 16 }\n'
        "[protocol]\ntrials = 1\nwarmup_runs = 2\nwarmup_seconds = 0.2\n"
        'sustained = "12s"\nsustained_window = "1s"\n'
    )
    db = tmp_path / "sustained.db"
    with FileReads(fake.cpu / "cpufreq" / "policy0") as reads:
        proc = _flopgap(fake, "sweep", str(spec), "--db", str(db), "--cache-dir", str(cache),
                        "--devices", str(_clocked_local(tmp_path)))  # fmt: skip
        # the clocked kernel reads the clock at every run: 10 reads and the runner is warming up or measuring
        reads.wait("scaling_cur_freq", count=10)
    time.sleep(6.0)  # the 0.2 s warm-up and about six windows at full speed
    changed_unix = time.time()
    fake.set_frequency(1_200_000)  # the clocks fall (every kernel now takes twice as long) and the SoC heats up
    fake.set_temperature(0, 62.0)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    with Store(db, readonly=True) as store:
        summary = store.sustained_frame()
        windows = store.timelines_frame()
        start_unix = store.sustained_run(int(summary["trial_id"].iloc[0])).start_unix  # type: ignore[union-attr]
    changed_s = changed_unix - start_unix
    assert 3 < changed_s < 10, f"the test changed the fake sysfs at {changed_s:.1f}s, outside the run"
    row = summary.iloc[0]
    assert bool(row["throttled"]), row["reason"]
    assert changed_s - 1.0 <= row["throttle_start_s"] <= changed_s + 1.0, (changed_s, row["reason"])
    assert row["ratio"] > 1.3 and row["span_s"] == 4.0  # the clock halved (x2 kernels); a third of a 12 s run
    assert "frequency -50% (2400 → 1200 MHz)" in row["reason"]
    # the timeline holds what the runner read on the "device": full clocks before the change, half after (before:
    # windows whose state was read before the change, so a starved sampler cannot blur the boundary)
    before = windows[windows["state_s"] < changed_s]
    after = windows[windows["start_s"] >= changed_s + 0.1]
    assert len(windows) == 12 and set(before["mean_khz"]) == {2_400_000} and set(after["mean_khz"]) == {1_200_000}
    assert set(before["max_temp_c"]) == {45.0} and set(after["max_temp_c"]) == {62.0}
    assert json.loads(windows["temps_c_json"].iloc[0]) == {"battery": 31.0, "cpu-thermal": 45.0}


@needs_namespace
def test_thermal_cooldown_waits_until_the_zones_cool_and_flags_a_trial_that_ran_hot_fake_sysfs(
    tmp_path: Path, cache: Path
) -> None:
    fake = fake_sysfs.build(tmp_path / "sys", {"soc": 40.0})
    spec = tmp_path / "cooldown.toml"
    spec.write_text(
        'name = "cooldown"\nruntimes = ["onnxruntime"]\nthreads = [1]\n'
        '[[models]]\nname = "conv1x1"\nparams = { cin = 16, cout = 16, h = 16, w = 16 }\n'
        "[protocol]\ntrials = 3\nwarmup_runs = 1\nwarmup_seconds = 0\nruns = 5\nmin_seconds = 1.0\n"
        'cooldown = "thermal"\ncooldown_margin_c = 2.0\ncooldown_max_s = "4s"\n'
    )
    db = tmp_path / "cooldown.db"
    with FileReads(fake.thermal / "thermal_zone0") as reads:
        proc = _flopgap(fake, "sweep", str(spec), "--db", str(db), "--cache-dir", str(cache))
        _wait_for("trial 1", lambda: bool(_runner_pids(str(cache))) or proc.poll() is not None)
        fake.set_temperature(0, 55.0)  # trial 1 heats the device
        _wait_for("trial 1 to end", lambda: not _runner_pids(str(cache)))
        reads.drain()  # the runner's own reads; the next one is the cooldown's, and it finds 55 °C
        reads.wait("temp")
        cooled_unix = time.time()
        fake.set_temperature(0, 41.0)  # trial 2 waits until the zone is back within 2 °C of its sweep-start 40 °C
    _wait_for("trial 2", lambda: bool(_runner_pids(str(cache))) or proc.poll() is not None)
    fake.set_temperature(0, 55.0)  # trial 3 finds it hot and never cools: it runs after 4 s, flagged
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    with Store(db, readonly=True) as store:
        trials = store.trials_frame()
        point = store.points_frame().iloc[0]
    cooldowns = [json.loads(doc)["cooldown"] for doc in trials["runner_json"]]
    began = [json.loads(doc)["time_unix"] for doc in trials["state_before_json"]]
    assert cooldowns[0]["waited_s"] < 1 and not cooldowns[0]["timed_out"] and cooldowns[0]["excess_c"] == {}
    # trial 2 found the zone hot, polled again a second later (poll_s) and began only after the test cooled it
    assert 1.0 <= cooldowns[1]["waited_s"] < 4 and not cooldowns[1]["timed_out"] and began[1] >= cooled_unix
    assert cooldowns[2]["timed_out"] and cooldowns[2]["excess_c"] == {"soc": 15.0} and cooldowns[2]["waited_s"] >= 4
    assert point["noisy"] and "trial 3 ran before cooling down (soc +15.0 °C" in point["noisy_reasons"]


@needs_namespace
def test_sustained_run_and_cooldown_over_adb_read_the_phones_sysfs_fake_phone_endpoint(
    tmp_path: Path, cache: Path
) -> None:
    """flopgap's runner on the fake phone samples the phone's (fake) sysfs; the cooldown reads it over adb."""
    from devices.adb import AdbTransport
    from devices.agent import AgentBackend
    from devices.base import Device
    from harness.measure.spec import parse_spec
    from harness.measure.sweep import run_sweep
    from tests.adb_endpoint import AdbEndpoint, FakePhone
    from tests.conftest import cached_exporter

    phone = FakePhone(tmp_path / "phone", mount_sysfs=True)
    spec_text = (
        'name = "phone"\nruntimes = ["onnxruntime"]\nthreads = [1]\ndevices = ["termux"]\n'
        '[[models]]\nname = "conv1x1"\nparams = { cin = 16, cout = 16, h = 16, w = 16 }\n'
        '[protocol]\ntrials = 2\nwarmup_runs = 1\nwarmup_seconds = 0\nsustained = "5s"\nsustained_window = "0.5s"\n'
        'cooldown = "thermal"\ncooldown_max_s = "30s"\n'
    )
    big = phone.path("/sys/devices/system/cpu/cpufreq/policy6/scaling_cur_freq")
    zone = phone.path("/sys/class/thermal/thermal_zone0/temp")
    db = tmp_path / "phone.db"
    marks: dict[str, float] = {}

    def trials_stored() -> int:
        with Store(db, readonly=True) as ro:
            return len(ro.trials_frame())

    def drive() -> None:
        sustained = (phone.python + " ", "--sustained")
        _wait_for("trial 1", lambda: any(c.startswith(sustained[0]) and sustained[1] in c for c in phone.commands))
        # The runner reads the BIG zone once in its state before (unless it already has), at the sustained loop's
        # start and every 0.5 s window after. By its fourth read from now, the loop's 0.5 s reading has been read
        # and stamped (the sampler stamps a reading before it starts the next), so window 0 holds a state from
        # before the change however late a loaded machine runs the sampler; the third read alone is not enough.
        with FileReads(zone.parent) as reads:
            reads.wait("temp", count=4)
            marks["hot"] = time.time()
            big.write_text("1200000\n")  # the big cluster slows down and the BIG zone heats up: 41 -> 56 °C
            zone.write_text("56000\n")
        with FileReads(zone.parent) as reads:
            _wait_for("trial 1 to be stored", lambda: trials_stored() == 1, timeout=60)
            reads.drain()  # the runner's reads; the next is the cooldown's, over adb, and it finds 56 °C
            reads.wait("temp")
            zone.write_text("41500\n")  # trial 2 waits until BIG is back within 2 °C of its sweep-start 41 °C

    with AdbEndpoint({"FAKE01": phone}) as endpoint, Store(db) as store:
        dev = Device("termux", AdbTransport("termux", "FAKE01", "127.0.0.1", endpoint.port), AgentBackend(phone.python))
        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        result = run_sweep(parse_spec(spec_text), spec_text, store, {"termux": dev}, cached_exporter(cache))
        driver.join(timeout=60)
        assert result.measured_trials == 2 and result.failed_points == 0
        ids = store.sustained_trial_ids(result.point_ids[0])
        first = store.timeline(ids[0])
        start_unix = store.sustained_run(ids[0]).start_unix  # type: ignore[union-attr]
        cooldowns = [json.loads(d).get("cooldown") for d in store.trials_frame()["runner_json"]]
    hot_s = marks["hot"] - start_unix
    assert 0.5 < hot_s < 4.4  # after the loop's 0.5 s reading, and with time for late windows before its 5 s end
    # A window carries the last reading before its end (or just after it): early windows are those whose state was
    # read before the change (state_s is taken after the read), so a starved sampler cannot blur the boundary.
    early = [w for w in first if w.state_s is not None and w.state_s < hot_s]
    late = [w for w in first if w.start_s >= hot_s + 0.1]
    assert early and late
    # the phone's clusters as its runner read them: cpus 6-7 at 2.85 GHz, then 1.2 GHz; BIG 41 → 56 °C
    assert {w.cpu_khz["6"] for w in early} == {2_850_000} and {w.cpu_khz["6"] for w in late} == {1_200_000}
    assert {w.cpu_khz["0"] for w in first} == {1_803_000} and set(first[0].cpu_khz) == {str(c) for c in range(8)}
    assert {w.temps_c["BIG"] for w in early} == {41.0} and {w.temps_c["BIG"] for w in late} == {56.0}
    # trial 2 waited for the BIG zone to come back within 2 °C of 41 °C, read over adb
    assert cooldowns[0]["waited_s"] < 1 and not cooldowns[0]["timed_out"]
    assert cooldowns[1]["waited_s"] >= 1.0 and not cooldowns[1]["timed_out"]  # one poll (1 s) found it hot


def test_spec_protocol_takes_sustained_and_thermal_cooldown_and_names_bad_values() -> None:
    from harness.measure.spec import Cooldown, SpecError, parse_spec, spec_to_toml
    from harness.measure.trial import trial_request

    base = '[[models]]\nname = "conv1x1"\n[protocol]\n'
    spec = parse_spec(base + 'sustained = "10m"\nsustained_window = "2s"\ncooldown = "thermal"\ncooldown_max_s = 90\n')
    proto = spec.protocol
    assert (proto.sustained, proto.sustained_window, proto.cooldown, proto.cooldown_max_s) == (
        600.0, 2.0, Cooldown.THERMAL, 90.0,
    )  # fmt: skip
    assert parse_spec(spec_to_toml(spec)) == spec
    request = trial_request(proto, 1, sustained=True)
    assert (request.sustained_s, request.window_s, request.timeout_s) == (600.0, 2.0, 1200.0)
    assert trial_request(proto, 1).sustained_s is None  # profiles and calibration time as usual
    with pytest.raises(SpecError, match=r"key 'protocol.sustained': duration '10 minutes' is not a duration"):
        parse_spec(base + 'sustained = "10 minutes"\n')
    with pytest.raises(SpecError, match=r"sustained_window \(60s\) exceeds sustained \(30s\)"):
        parse_spec(base + 'sustained = "30s"\nsustained_window = "1m"\n')
    with pytest.raises(SpecError, match=r"key 'protocol.cooldown': Input should be 'none' or 'thermal'"):
        parse_spec(base + 'cooldown = "cold"\n')


def test_a_sustained_trial_and_its_timeline_commit_together_and_export(tmp_path: Path) -> None:
    from devices.result import TrialResult
    from devices.timeline import SustainedRun
    from harness.measure.sustained import summarize_point
    from harness.store import DuplicateTrialError

    windows = tuple(
        TimelineWindow(i, i * 0.5, (i + 1) * 0.5, 40, 1e6 * (1.0 if i < 6 else 1.3), {"0": 2_000_000 if i < 6 else
                       1_500_000}, {"soc": 40.0}, (i + 1) * 0.5)
        for i in range(12)
    )  # fmt: skip
    result = TrialResult("onnxruntime", samples_ns=(1_000_000,) * 10, timeline=windows,
                         sustained=SustainedRun(6.0, 0.5, 1.7e9, 480))  # fmt: skip
    with Store(tmp_path / "s.db") as store:
        run = store.start_run("s", "")
        store.upsert_device("local", "local", {})
        point = store.ensure_point(run, "sha", "local", "onnxruntime", 1)
        trial = store.add_trial(point, 0, result)
        with pytest.raises(DuplicateTrialError):
            store.add_trial(point, 0, result)  # the whole transaction is refused: no second set of windows
        assert store.timeline(trial) == windows
        assert store.sustained_run(trial) == SustainedRun(6.0, 0.5, 1.7e9, 480)
        [summary] = summarize_point(store, point)
        assert summary.throttled and summary.throttle_start_s == 3.0 and summary.span_s == 2.0
        out = tmp_path / "timelines.csv"
        assert store.export(out, "csv", table="timelines", run_id=run) == 12
        assert store.export(tmp_path / "sustained.csv", "csv", table="sustained") == 1
    lines = out.read_text().splitlines()
    assert lines[0].startswith("point_id,trial_id,trial_index,window_index,start_s,end_s,runs,median_ms")
    assert lines[7].split(",")[4:8] == ["3.0", "3.5", "40", "1.3"]
