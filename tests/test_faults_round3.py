"""Faults, third round (issue 23), end to end with real components: a model file swapped between the hash check and
the runner's read, a runner that floods its output, a board lost between two trials, input checked where it
enters, SIGTERM.

Where a device is faked it is at its protocol boundary, and the test's name says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.base import Device, TrialRequest
from devices.local import local_device
from devices.vocabulary import Format, Precision
from exporters.export import export
from harness.measure.spec import parse_spec
from harness.measure.sweep import run_sweep
from harness.store import Store
from harness.zoo.registry import resolve
from tests.conftest import cached_exporter

UNIT = "{ cin = 16, cout = 16, h = 8, w = 8 }"


def _spec(trials: int = 2, model: str = UNIT) -> str:
    return (
        f'name = "round3"\nruntimes = ["onnxruntime"]\n[[models]]\nname = "conv1x1"\nparams = {model}\n'
        f"[protocol]\ntrials = {trials}\nwarmup_runs = 1\nwarmup_seconds = 0\nruns = 5\nmin_seconds = 0\n"
        "timeout_s = 120\nparity = false\n"
    )


# --------------------------------------------------------------------------- 1. the swap race


def test_a_file_swapped_right_after_the_hash_check_is_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook swaps another model's bytes into the artifact right after the check, before the runner reads it (the
    window that was open): the runner reports the sha256 of what it loaded, and that trial is discarded."""
    cache = tmp_path / "cache"
    point_model = export(resolve("conv1x1", cin=16, cout=16, h=8, w=8), Format.ONNX, Precision.FP32, cache_dir=cache)
    other = export(resolve("conv1x1", cin=64, cout=64, h=56, w=56), Format.ONNX, Precision.FP32, cache_dir=cache)
    good = point_model.path.read_bytes()
    checked = Device._verified
    swaps: list[str] = []

    def check_then_swap(self: Device, local: Path, remote: str, expected: str | None) -> tuple[str, str]:
        found = checked(self, local, remote, expected)
        if not swaps:  # the first trial only
            local.write_bytes(other.path.read_bytes())
            swaps.append(str(local))
        else:
            local.write_bytes(good)  # the right bytes are back for the trials after it
        return found

    monkeypatch.setattr(Device, "_verified", check_then_swap)
    text = _spec(trials=3)
    spec = parse_spec(text, "round3")
    device = local_device()
    try:
        with Store(tmp_path / "r.db") as store:
            run_sweep(spec, text, store, {"local": device}, cached_exporter(cache))
            point = store.points_frame().iloc[0]
            assert swaps == [str(point_model.path)]
            # The trial timed on the swapped bytes is discarded, and the point fails naming both hashes.
            assert point["status"] == "failed" and store.trials_frame().empty
            assert f"the runner timed a model with sha256 {other.sha256}, not the {point_model.sha256}" in str(
                point["failure_reason"]
            )
            monkeypatch.setattr(Device, "_verified", checked)
            run_sweep(spec, text, store, {"local": device}, cached_exporter(cache))  # the rerun measures it again
            trials = store.trials_frame()
            assert list(store.points_frame()["status"]) == ["done"]
    finally:
        device.cleanup()
    assert len(trials) == 3
    for doc in trials["runner_json"]:  # every stored trial was timed on the point's own bytes
        assert json.loads(doc)["model_sha256"] == point_model.sha256


def test_the_runner_reports_the_sha256_of_the_bytes_it_loaded(tmp_path: Path) -> None:
    art = export(resolve("conv1x1", cin=16, cout=16, h=8, w=8), Format.ONNX, Precision.FP32, cache_dir=tmp_path)
    device = local_device()
    try:
        result = device.measure(art.path, TrialRequest(runs=3, min_seconds=0, warmup_runs=1, warmup_seconds=0))
    finally:
        device.cleanup()
    assert result.details["model_sha256"] == art.sha256


