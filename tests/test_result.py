"""The typed trial result: one central value for every consumer, and its stored JSON form read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.agent import parse_document, runner_args
from devices.base import ShellReturn, TrialRequest
from devices.errors import RunnerMissing, TrialFailed
from devices.result import Delegate, OpTiming, Summary, Tool, TrialResult, central_ns
from harness.store import Store


def test_central_value_is_median_of_samples_else_p50_else_mean() -> None:
    assert central_ns([5, 1, 3, 100], Summary(count=4, mean=9.0, p50=7.0)) == 4.0  # samples win
    assert central_ns([], Summary(count=50, mean=2_950_340_000.0, p50=2_900_000_000.0)) == 2_900_000_000.0
    assert central_ns([], Summary(count=50, mean=2_950_340_000.0)) == 2_950_340_000.0
    assert central_ns([], Summary(count=0)) is None and central_ns([], None) is None
    result = TrialResult("tflite", summary=Summary(count=50, mean=63_743_200.0, p50=51_891_000.0))
    assert (result.n, result.centre_ns, result.median_ms) == (50, 51_891_000.0, 51.891)


def test_record_round_trips_through_json() -> None:
    result = TrialResult(
        runtime="tflite",
        threads=4,
        summary=Summary(count=50, mean=2.95e9, std=1.1e8, min=2.7e9, max=3.2e9),
        init_ns=17_187_000,
        affinity=(6, 7),
        delegate=Delegate("xnnpack", 30, 28),
        ops=(OpTiming("[conv]:0", "CONV_2D", 49_870.0, 1),),
        state_before={"time": 1.0},
        tool=Tool("benchmark_model", "ab" * 32, ("taskset", "c0", "/bin/benchmark_model")),
        details={"model_size_mb": 16.9},
    )
    record = json.loads(json.dumps(result.record()))
    assert record["affinity_mask"] == "c0" and record["samples_kind"] == "summary"
    assert "state_before" not in record and "samples_ns" not in record
    back = TrialResult.from_json(record)
    assert back == TrialResult(**{**result.__dict__, "state_before": None})


def test_store_keeps_the_result_and_its_central_value(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as store:
        run = store.start_run("t", "")
        store.upsert_device("pi", "ssh", {})
        point = store.ensure_point(run, "f" * 64, "pi", "litert", 1)
        summary_only = TrialResult("tflite", summary=Summary(count=10, mean=3e6, p50=2e6), state_after={"t": 2})
        store.add_trial(point, 0, summary_only)
        store.add_trial(point, 1, TrialResult("tflite", samples_ns=(4_000_000, 1_000_000, 2_000_000)))
        trials = store.trials_frame().set_index("trial_index")
    assert trials["median_ms"].tolist() == [2.0, 2.0] and trials["n"].tolist() == [10, 3]
    assert json.loads(trials.loc[0, "state_after_json"]) == {"t": 2}
    assert TrialResult.from_json(json.loads(trials.loc[0, "runner_json"])).summary == summary_only.summary


def _res(stdout: str, returncode: int = 0, stderr: str = "") -> ShellReturn:
    return ShellReturn(("python3", "runner.py"), returncode, stdout, stderr, 0.1)


def test_runner_document_parsed_once_and_failures_named() -> None:
    doc = {"schema": "flopgap.runner/1", "samples_ns": [3, 1, 2], "runtime": "onnxruntime", "error": None}
    assert TrialResult.from_json(parse_document(_res("log line\n" + json.dumps(doc)), "pi")).centre_ns == 2.0
    failed = {**doc, "samples_ns": None, "error": {"kind": "ModelLoadFailed", "message": "bad file"}}
    with pytest.raises(TrialFailed, match="device 'pi': bad file") as info:
        parse_document(_res(json.dumps(failed), 2), "pi")
    assert info.value.kind == "ModelLoadFailed"
    with pytest.raises(TrialFailed, match=r"runner crashed: killed by signal 11") as info:
        parse_document(_res("", -11, "Segmentation fault"), "pi")
    assert info.value.kind == "RunnerCrashed"
    with pytest.raises(RunnerMissing, match="has no numpy"):
        parse_document(_res("", 1, "ModuleNotFoundError: No module named 'numpy'"), "pi")


def test_runner_args_carry_the_request() -> None:
    request = TrialRequest(threads=2, runs=7, xnnpack=False, affinity=(0, 3), profile=True, profile_runs=9)
    args = runner_args("/m.tflite", request)
    assert args[:3] == ["/m.tflite", "--threads", "2"] and args[args.index("--runs") + 1] == "7"
    assert args[-6:] == ["--no-xnnpack", "--affinity", "0,3", "--profile", "--profile-runs", "9"]
    assert "--instances" not in args  # one instance: the runner's default, not spelled out
    assert runner_args("/m.tflite", TrialRequest(instances=3))[-2:] == ["--instances", "3"]


def test_a_stock_binary_refuses_to_time_several_instances_in_one_line() -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from devices.binary import TfliteBenchmarkBackend
    from devices.vocabulary import RunnerKind

    backend = TfliteBenchmarkBackend(RunnerKind.BENCHMARK_MODEL, Path("/opt/bin/benchmark_model"))
    phone = cast(Any, SimpleNamespace(name="pixel7"))  # refused before the transport is touched
    with pytest.raises(TrialFailed, match="benchmark_model loads a model once per run, so it cannot time 3 instances"
                       ) as failed:  # fmt: skip
        backend.measure(phone, "/m.tflite", TrialRequest(instances=3))
    assert failed.value.kind == "Unsupported" and "\n" not in str(failed.value)
