"""Probes in batches (issue 20, item 8): several models in one runner process, one document per model, in order.

The runner is real (this machine's Python and runtimes, and the local device around it); each model keeps its own
warm-up and timed runs, and a model that fails fails alone.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devices import runner as runner_module
from devices.agent import parse_documents
from devices.base import ShellReturn, TrialRequest
from devices.errors import DeviceError, TrialFailed
from devices.inventory import LocalConfig, open_device
from devices.result import TrialResult
from devices.runner import SCHEMA
from devices.vocabulary import Runtime
from harness.predict.kernel_config import KernelConfig
from harness.predict.kernels import KernelType
from harness.predict.probes import probe_artifact

QUICK = ["--runs", "3", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0"]


def _probe(cin: int, runtime: Runtime = Runtime.ONNXRUNTIME) -> Path:
    cfg = KernelConfig(type=KernelType.POINTWISE_CONV, cin=cin, cout=16, h=8, w=8)
    return probe_artifact(cfg, runtime).path


def _runner(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, runner_module.__file__, *(str(a) for a in args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def test_the_runner_measures_several_models_in_one_process_one_document_each_in_order(tmp_path: Path) -> None:
    models = [_probe(8), _probe(24), _probe(8, Runtime.LITERT)]
    out = _runner(*models, *QUICK)
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [d["model_path"] for d in docs] == [str(m) for m in models]
    assert [d["model_sha256"] for d in docs] == [hashlib.sha256(m.read_bytes()).hexdigest() for m in models]
    assert [d["runtime"] for d in docs] == ["onnxruntime", "onnxruntime", "ai_edge_litert"]
    for d in docs:  # each model had its own warm-up and timed runs
        assert d["error"] is None and d["warmup_runs"] >= 1 and len(d["samples_ns"]) >= 3
    assert docs[0]["inputs"][0]["shape"] == [1, 8, 8, 8] and docs[1]["inputs"][0]["shape"] == [1, 24, 8, 8]


def test_a_model_that_fails_in_a_batch_fails_alone(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    good = _probe(8)
    out = _runner(good, broken, good, *QUICK)
    assert out.returncode == 2
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [d["error"] is None for d in docs] == [True, False, True]
    assert docs[1]["error"]["kind"] == "ModelLoadFailed" and docs[1]["model_path"] == str(broken)


def test_save_optimized_takes_one_path_per_model(tmp_path: Path) -> None:
    out = _runner(_probe(8), _probe(24), "--save-optimized", tmp_path / "a.onnx", *QUICK)
    [doc] = [json.loads(line) for line in out.stdout.splitlines()]
    assert doc["error"] == {"kind": "BadArguments",
                            "message": "--save-optimized: give one PATH per model (2 models, 1 paths)"}  # fmt: skip
    both = _runner(_probe(8), _probe(24), "--save-optimized", tmp_path / "a.onnx", "--save-optimized",
                   tmp_path / "b.onnx", *QUICK)  # fmt: skip
    docs = [json.loads(line) for line in both.stdout.splitlines()]
    assert [d["optimized_model"] for d in docs] == [str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")]
    assert (tmp_path / "a.onnx").is_file() and (tmp_path / "b.onnx").is_file()


def _doc(path: str) -> str:
    return json.dumps({"schema": SCHEMA, "model_path": path, "samples_ns": [1000, 1100], "error": None})


def test_documents_of_a_runner_killed_mid_batch_keep_what_was_measured() -> None:
    """Parsed from the runner's real output shape: the first model's document, then the kill (no more output)."""
    res = ShellReturn(("python3",), -9, _doc("/w/a.onnx") + "\n", "Killed", 1.0)
    first, second, third = parse_documents(res, "pi", 3)
    assert not isinstance(first, TrialFailed) and first["model_path"] == "/w/a.onnx"
    assert isinstance(second, TrialFailed) and isinstance(third, TrialFailed)
    assert str(second) == "device 'pi': runner crashed: killed by signal 9 (Killed)"
    # A runtime's own print that did not end its line, before a document, does not hide it.
    noisy = ShellReturn(("python3",), 0, "W: warn" + _doc("/w/a.onnx") + "\n" + _doc("/w/b.onnx") + "\n", "", 1.0)
    assert [d["model_path"] for d in parse_documents(noisy, "pi", 2)] == ["/w/a.onnx", "/w/b.onnx"]  # type: ignore[index]


def test_the_local_device_measures_a_batch_under_one_lock_each_file_checked(tmp_path: Path) -> None:
    device = open_device(LocalConfig(name="local", transport="local", work_dir=tmp_path / "work"))
    good, other = _probe(8), _probe(24)
    request = TrialRequest(warmup_runs=1, warmup_seconds=0, runs=3, min_seconds=0, save_graph=True)
    try:
        results = device.measure_many([good, other, good], request, [None, "0" * 64, None])
    finally:
        device.cleanup()
    first, changed, third = results
    assert isinstance(first, TrialResult) and isinstance(third, TrialResult)
    assert first.details["model_sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert len(first.samples_ns) >= 3 and np.all(np.asarray(first.samples_ns) > 0)
    assert first.optimized_graph is not None and third.optimized_graph is not None  # each model's own graph
    # The second file's recorded hash is not its content: that model fails, the others are measured.
    assert isinstance(changed, DeviceError) and "changed after export" in str(changed)


@pytest.mark.parametrize("count", [1, 2])
def test_measure_many_of_one_or_more_models_gives_one_result_each(count: int, tmp_path: Path) -> None:
    device = open_device(LocalConfig(name="local", transport="local", work_dir=tmp_path / "work"))
    request = TrialRequest(warmup_runs=0, warmup_seconds=0, runs=1, min_seconds=0)
    try:
        results = device.measure_many([_probe(8)] * count, request)
    finally:
        device.cleanup()
    assert len(results) == count and all(isinstance(r, TrialResult) and r.n == 1 for r in results)


def test_the_runner_times_each_instance_of_a_probe_in_turn_with_the_runs_shared_out() -> None:
    probe = _probe(8, Runtime.LITERT)
    out = _runner(probe, "--instances", "3", "--runs", "7", "--min-seconds", "0", "--warmup-runs", "2",
                  "--warmup-seconds", "0")  # fmt: skip
    [doc] = [json.loads(line) for line in out.stdout.splitlines()]
    assert doc["error"] is None and doc["protocol"]["instances"] == 3
    # ceil(7 / 3) timed runs from each instance, pooled in instance order; each instance warmed up on its own
    assert doc["instance_runs"] == [3, 3, 3] and len(doc["samples_ns"]) == 9 and doc["warmup_runs"] == 6
    one = _runner(probe, "--runs", "7", "--min-seconds", "0", "--warmup-runs", "2", "--warmup-seconds", "0")
    [single] = [json.loads(line) for line in one.stdout.splitlines()]
    assert single["instance_runs"] == [7] and single["warmup_runs"] == 2 and single["protocol"]["instances"] == 1


def test_each_instance_is_an_interpreter_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, the real LiteRT backend: three interpreters of one probe, each run first + warm-up + its share."""
    calls: dict[int, int] = {}
    invoke = runner_module.TfliteBackend.invoke

    def counted(self: runner_module.TfliteBackend) -> None:
        key = id(self._interpreter)
        calls[key] = calls.get(key, 0) + 1
        invoke(self)

    monkeypatch.setattr(runner_module.TfliteBackend, "invoke", counted)
    args = runner_module.build_parser().parse_args([str(_probe(8, Runtime.LITERT)), "--instances", "3", "--runs",
                                                    "4", "--min-seconds", "0", "--warmup-runs", "1",
                                                    "--warmup-seconds", "0"])  # fmt: skip
    [one] = runner_module.per_model(args)
    doc = runner_module.empty_document(one)
    runner_module.measure(one, doc)
    assert sorted(calls.values()) == [1 + 1 + 2] * 3  # first inference, one warm-up, ceil(4 / 3) timed runs
    assert doc["instance_runs"] == [2, 2, 2] and len(doc["samples_ns"] or []) == 6


def test_a_build_times_litert_probes_in_instances_and_onnxruntime_probes_in_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real build on the local device; only the requests its probe batches send are recorded on the way."""
    from devices.base import Device
    from devices.local import local_device
    from exporters.export import export
    from harness.measure.spec import Protocol
    from harness.predict.build import PROBE_INSTANCES, BuildPlan, BuildReporter, build_predictor
    from harness.predict.dataset import PredictContext
    from harness.store import Store

    monkeypatch.setenv("FLOPGAP_CACHE_DIR", str(tmp_path / "cache"))
    sent: list[tuple[int, int]] = []
    measure_many = Device.measure_many

    def recorded(self: Device, artifacts: list[Path], request: TrialRequest, sha256s: list[str | None]) -> list[
            TrialResult | DeviceError]:  # fmt: skip
        results = measure_many(self, artifacts, request, sha256s)
        sent.extend((request.instances, len(r.samples_ns)) for r in results if isinstance(r, TrialResult))
        return results

    monkeypatch.setattr(Device, "measure_many", recorded)
    fast = Protocol(trials=1, warmup_runs=1, warmup_seconds=0.0, runs=6, min_seconds=0.0, parity=False)
    for runtime, instances in ((Runtime.LITERT, PROBE_INSTANCES), (Runtime.ONNXRUNTIME, 1)):
        sent.clear()
        plan = BuildPlan(PredictContext("local", runtime), budget_s=3600, models=(), train_nets=0, probe_protocol=fast,
                         max_probes=2)  # fmt: skip
        with Store(tmp_path / f"{runtime.value}.db") as store:
            build_predictor(plan, store, local_device(), export, BuildReporter())
        # each instance's share of the 6 runs, pooled: 3 x 2 (LiteRT) or the 6 of one session (ONNX Runtime)
        assert sent == [(instances, 6), (instances, 6)], runtime
