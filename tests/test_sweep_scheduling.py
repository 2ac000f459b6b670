"""Sweep scheduling on fake devices (faked at the Transport/Backend boundary, tests/fake_device.py) with a stub
exporter and a real SQLite store: interleaving, one trial at a time per device, devices in parallel, a device lost
mid-sweep, a bug in a worker, Ctrl-C. No exports and no runner processes, so each test takes milliseconds; the
real end-to-end sweeps stay in test_sweep.py and test_devices_sweep.py.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest

from devices.errors import DeviceUnreachable
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.measure.spec import SweepSpec, parse_spec
from harness.measure.sweep import run_sweep
from harness.store import Store
from harness.zoo.registry import ModelSpec
from tests.fake_device import Fault, TrialLog, TrialRecord, fake_device, stub_exporter

SPEC = """
name = "scheduling"
runtimes = ["onnxruntime"]
devices = {devices}
[[models]]
name = "conv1x1"
params = {{ cin = [4, 8, 16], cout = 4, h = 4, w = 4 }}
[protocol]
trials = {trials}
"""


def _spec(devices: list[str], trials: int = 2) -> tuple[str, SweepSpec]:
    text = SPEC.format(devices=repr(devices).replace("'", '"'), trials=trials)
    return text, parse_spec(text)


def _models(records: list[TrialRecord]) -> list[str]:
    return [r.model.split("-")[0] for r in records]


def test_trials_interleave_across_points(tmp_path: Path) -> None:
    log = TrialLog()
    text, spec = _spec(["a"], trials=3)
    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, text, store, {"a": fake_device("a", log)}, stub_exporter(tmp_path))
        assert result.measured_trials == 9 and result.failed_points == 0
        assert list(store.points_frame()["status"]) == ["done"] * 3
    first = _models(log.records[:3])
    assert len(set(first)) == 3  # trial 0 of every point before any trial 1
    assert _models(log.records) == first * 3


def test_one_trial_at_a_time_per_device_and_devices_in_parallel(tmp_path: Path) -> None:
    log = TrialLog()
    text, spec = _spec(["a", "b"], trials=2)
    devices = {n: fake_device(n, log, duration_s=0.02) for n in ("a", "b")}
    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, text, store, devices, stub_exporter(tmp_path))
        assert result.measured_trials == 12
    assert len(log.of("a")) == len(log.of("b")) == 6
    assert log.overlaps("a") == [] and log.overlaps("b") == []
    across = [(x, y) for x in log.of("a") for y in log.of("b") if x.start < y.end and y.start < x.end]
    assert across, "devices were measured one after the other, not in parallel"


def test_a_device_lost_mid_sweep_fails_its_remaining_points_and_the_others_finish(tmp_path: Path) -> None:
    log = TrialLog()
    text, spec = _spec(["a", "b"], trials=2)
    lost = Fault(at=4, error=lambda: DeviceUnreachable("device 'b': cable pulled; plug it back in"))
    devices = {"a": fake_device("a", log), "b": fake_device("b", log, fault=lost)}
    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, text, store, devices, stub_exporter(tmp_path))
        points = store.points_frame()
        assert result.failed_points == 2
        on_a = points[points["device"] == "a"]
        on_b = points[points["device"] == "b"].sort_values("point_id")
        assert list(on_a["status"]) == ["done"] * 3
        # trial order on b: p1t0 p2t0 p3t0 p1t1 | lost at p2t1: p1 is complete, p2 and p3 fail with the reason
        assert list(on_b["status"]) == ["done", "failed", "failed"]
        assert set(on_b["failure_reason"].dropna()) == {"device 'b': cable pulled; plug it back in"}
        assert store.runs()[-1].status == "completed"


def test_a_bug_in_a_worker_stops_the_sweep_with_its_traceback_and_keeps_committed_trials(tmp_path: Path) -> None:
    log = TrialLog()
    text, spec = _spec(["a", "b"], trials=2)
    bug = Fault(at=1, error=lambda: ZeroDivisionError("bug in the backend"))
    devices = {"a": fake_device("a", log, duration_s=0.01), "b": fake_device("b", log, fault=bug)}
    with Store(tmp_path / "r.db") as store:
        with pytest.raises(ZeroDivisionError) as caught:
            run_sweep(spec, text, store, devices, stub_exporter(tmp_path))
        frames = "".join(traceback.format_tb(caught.value.__traceback__))
        assert "in measure" in frames and "fake_device.py" in frames  # the worker's own frames, not just ours
        trials = store.trials_frame()
        assert len(trials) == len(log.records)  # every trial that finished was committed, none half-written
        assert (trials["n"] == 3).all()
        assert len(log.of("b")) == 1 and 1 <= len(log.of("a")) < 6  # a stopped after its trial in flight
        assert store.runs()[-1].status == "failed"
        assert "done" not in set(store.points_frame().query("device == 'b'")["status"])


@pytest.mark.parametrize("devices", [["a"], ["a", "b"]], ids=["one-device", "two-devices"])
def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tmp_path: Path, devices: list[str]) -> None:
    log = TrialLog()
    text, spec = _spec(devices, trials=2)
    ctrl_c = Fault(at=2, error=KeyboardInterrupt)
    fakes = {n: fake_device(n, log, fault=ctrl_c if n == "a" else None) for n in devices}
    with Store(tmp_path / "r.db") as store:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(spec, text, store, fakes, stub_exporter(tmp_path))
        assert store.runs()[-1].status == "interrupted"
        kept = len(store.trials_frame())
        assert kept == len(log.records) and len(log.of("a")) == 2
        again = {n: fake_device(n, log) for n in devices}
        result = run_sweep(spec, text, store, again, stub_exporter(tmp_path))
        assert result.measured_trials == 6 * len(devices) - kept
        trials = store.trials_frame()
        assert not trials.duplicated(["point_id", "trial_index"]).any()
        assert set(store.points_frame()["status"]) == {"done"}


def test_ort_settings_reach_the_backend_and_key_their_points(tmp_path: Path) -> None:
    log = TrialLog()
    text, spec = _spec(["a"], trials=1)
    with Store(tmp_path / "r.db") as store:
        run_sweep(spec, text, store, {"a": fake_device("a", log)}, stub_exporter(tmp_path))
        assert {r.request.ort_allow_spinning for r in log.records} == {True}
        # the defaults keep the keys points always had
        assert [json.loads(o) for o in store.points_frame()["options"]] == [{}] * 3
        changed = text.replace("[protocol]", '[protocol]\nort_allow_spinning = false\nort_execution_mode = "parallel"')
        result = run_sweep(parse_spec(changed), changed, store, {"a": fake_device("a", log)}, stub_exporter(tmp_path))
        assert result.skipped_points == 0 and result.measured_trials == 3  # measured anew, not skipped
        last = log.records[-3:]
        assert {(r.request.ort_allow_spinning, r.request.ort_execution_mode) for r in last} == {(False, "parallel")}
        options = [json.loads(o) for o in store.points_frame()["options"]]
        assert options.count({"ort_allow_spinning": False, "ort_execution_mode": "parallel"}) == 3


def test_an_artifact_swapped_after_export_fails_its_point_naming_both_hashes(tmp_path: Path) -> None:
    log = TrialLog()
    text, spec = _spec(["a"], trials=2)
    exported: list[Path] = []
    export = stub_exporter(tmp_path)

    def exporter(model: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        art = export(model, fmt, precision)
        exported.append(art.path)
        return art

    def swap() -> BaseException:  # after the first round of trials, another model lands in the first one's file
        exported[0].write_bytes(exported[1].read_bytes())
        return RuntimeError("unreachable")

    device = fake_device("a", log, hook=Fault(at=3, error=swap))
    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, text, store, {"a": device}, exporter)
        points = store.points_frame().sort_values("point_id")
        assert result.failed_points == 1 and list(points["status"]) == ["failed", "done", "done"]
        reason = points["failure_reason"].iloc[0]
        old, new = points["artifact_sha"].iloc[0], points["artifact_sha"].iloc[1]
        assert f"{exported[0]} changed after export: its sha256 is {new}, the export's was {old}" in reason
        assert len(store.trials_frame()) == 5  # the swapped file was never measured under the first model's name
