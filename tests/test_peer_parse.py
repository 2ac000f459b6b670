"""The parser of ``benchmark_litert_model.py`` output (devices.parsers, used by benchmarks/harness_overhead.py), on
the tool's real output.

Fixtures: ``tests/data/benchmark_litert_model_<model>.txt``, stdout and stderr of one run of the tool from the
ai-edge-litert 2.3.0 wheel (``--num_threads=1``), captured together (``> file 2>&1``) on flopgap's fp32 exports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.parsers import LitertBenchmark, ParseError, parse_benchmark_litert_model

DATA = Path(__file__).with_name("data")


def _read(model: str) -> str:
    return (DATA / f"benchmark_litert_model_{model}.txt").read_text()


def test_mobilenet_v2_full_block_amid_runtime_logs() -> None:
    out = parse_benchmark_litert_model(_read("mobilenet_v2"))
    assert out == LitertBenchmark(
        init_ms=19.30,
        warmup_first_ms=4.15,
        warmup_avg_ms=7.02,
        warmup_runs=10,
        avg_ms=4.18,
        runs=100,
        min_ms=3.20,
        max_ms=11.47,
        median_ms=3.32,
        std_ms=1.74,
        p5_ms=3.23,
        p95_ms=7.38,
        throughput_mb_s=137.33,
        fully_accelerated=True,
        resolution_ms=pytest.approx(0.01),
    )


def test_resnet50_not_fully_accelerated() -> None:
    out = parse_benchmark_litert_model(_read("resnet50"))
    assert out.fully_accelerated is False
    assert (out.runs, out.warmup_runs) == (20, 3)
    assert (out.median_ms, out.avg_ms, out.min_ms, out.max_ms) == (37.00, 37.44, 36.66, 41.18)
    assert out.init_ms == 147.80 and out.throughput_mb_s == 15.34


def test_stderr_log_lines_are_not_taken_for_results() -> None:
    # The logger also writes "Fully accelerated: True" (with a timestamp prefix) to stderr before the block.
    text = _read("resnet50")
    assert "benchmark_litert_model: Fully accelerated: False" in text
    assert parse_benchmark_litert_model(text).fully_accelerated is False


def test_stdout_only_gives_the_same_result() -> None:
    text = _read("mobilenet_v2")
    stdout = "\n".join(line for line in text.splitlines() if not line.startswith(("INFO", "WARNING", "20", "└")))
    assert parse_benchmark_litert_model(stdout) == parse_benchmark_litert_model(text)


def test_without_median_falls_back_to_average_resolution() -> None:
    # A build that prints no median: the result says so (None) and the central figure is the average.
    text = "\n".join(line for line in _read("mobilenet_v2").splitlines() if "(median)" not in line)
    out = parse_benchmark_litert_model(text)
    assert out.median_ms is None and out.avg_ms == 4.18
    assert out.resolution_ms == pytest.approx(0.01)


def test_no_results_block_raises() -> None:
    text = "\n".join(_read("mobilenet_v2").splitlines()[:46])  # the run died before printing results
    with pytest.raises(ParseError, match="no 'BENCHMARK RESULTS'"):
        parse_benchmark_litert_model(text)


def test_two_blocks_raise() -> None:
    text = _read("mobilenet_v2") + _read("resnet50")
    with pytest.raises(ParseError, match="2 'BENCHMARK RESULTS' blocks"):
        parse_benchmark_litert_model(text)


def test_block_without_average_raises() -> None:
    text = "\n".join(line for line in _read("mobilenet_v2").splitlines() if "Inference (avg)" not in line)
    with pytest.raises(ParseError, match="Inference \\(avg\\)"):
        parse_benchmark_litert_model(text)
