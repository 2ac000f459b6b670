"""Parsers of official benchmark tools, on output captured from the real tools (tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.ort_trace import parse_ort_trace
from devices.parsers import (
    ParseError,
    parse_ort_perf_test,
    parse_ort_result_file,
    parse_tflite_benchmark,
    parse_tflite_op_csv,
    parse_tflite_op_table,
)
from devices.tflite_echo import tflite_echo_mismatches

DATA = Path(__file__).with_name("data")


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_tflite_summary_with_scientific_notation() -> None:
    out = parse_tflite_benchmark(_read("tflite_benchmark_mobilenet_v1_op_profiling.txt"))
    inf = out.inference
    assert inf is not None and out.warmup is not None
    assert (inf.count, inf.first_us, inf.curr_us, inf.min_us, inf.max_us) == (50, 2990275, 2913402, 2727568, 3189954)
    assert inf.avg_us == 2950340.0 and inf.std_us == 109798
    assert inf.median_us is None  # this build prints no percentiles
    # A single warm-up run prints "count=1 curr=3512391" only.
    assert out.warmup.count == 1 and out.warmup.curr_us == 3512391 and out.warmup.all_same
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (
        17187,
        3512391,
        3512390.0,
        2950340.0,
    )
    assert out.model_size_mb == 16.9008 and out.session_init_ms == 17.187
    assert (out.mem_init_mb, out.mem_overall_mb, out.peak_mem_mb) == (4.21094, 46.0859, None)
    assert out.params["Num threads"] == "4"


def test_tflite_percentile_lines_with_log_prefixes() -> None:
    out = parse_tflite_benchmark(_read("tflite_benchmark_android_aarch64_percentiles.txt"))
    inf, warm = out.inference, out.warmup
    assert inf is not None and warm is not None
    assert (inf.count, inf.min_us, inf.max_us, inf.avg_us, inf.std_us) == (1000, 49088, 686105, 63743.2, 60716)
    assert (inf.p5_us, inf.median_us, inf.p95_us) == (49620, 51891, 68628)
    assert (warm.count, warm.median_us) == (9, 51962)
    assert out.init_us == 119515 and out.mem_overall_mb == 55.4961
    assert out.params["Min num runs"] == "1000"


def test_tflite_plus_flex_log_without_memory_lines() -> None:
    out = parse_tflite_benchmark(_read("tflite_benchmark_model_plus_flex_kws.txt"))
    assert out.inference is not None and out.inference.avg_us == 1039.66 and out.inference.std_us == 22
    assert out.warmup is not None and out.warmup.count == 478
    assert out.mem_init_mb is None and out.mem_overall_mb is None and out.ops == []


def test_tflite_old_peak_memory_wording() -> None:
    out = parse_tflite_benchmark(_read("tflite_benchmark_peak_memory_espcn.txt"))
    assert (out.mem_init_mb, out.mem_overall_mb) == (0.0, 12.8672)
    assert out.inference is not None and out.inference.avg_us == 33209.4


def test_tflite_op_table_takes_the_regular_runs_run_order() -> None:
    rows = parse_tflite_op_table(_read("tflite_benchmark_mobilenet_v1_op_profiling.txt"))
    assert len(rows) == 31  # "Number of nodes executed: 31"; the initialization table is skipped
    first = rows[0]
    assert (first.op_type, first.name, first.avg_ms, first.percent, first.times_called) == (
        "CONV_2D",
        "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0",
        60.957,
        2.066,
        1,
    )
    assert first.start_ms == 0.066 and first.first_ms == 87.754
    assert rows[-1].op_type == "SOFTMAX" and rows[-1].cdf_percent == 100.0
    assert (
        round(sum(r.avg_ms for r in rows if r.op_type == "CONV_2D"), 3) == 2651.86
    )  # the summary by type says 2651.853 (it sums per-run integer us)


def test_tflite_op_csv_file() -> None:
    rows = parse_tflite_op_csv(_read("tflite_op_profile_mobilenet_v1.csv"))
    assert len(rows) == 8
    dw = rows[1]
    assert (dw.name, dw.op_type, dw.avg_ms, dw.percent, dw.times_called) == (
        "[MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6]:1",
        "DEPTHWISE_CONV_2D",
        49.87,
        1.691,
        1,
    )
    assert dw.start_ms is None  # the current layout has no start column


def test_tflite_op_csv_with_xnnpack_operators_whose_node_types_hold_the_separator() -> None:
    # XNNPACK's per-operator rows (TFLite >= 2.9.1) name the operator with its layout and type, commas included;
    # the tool does not quote its csv, so the numbers between the first and the last column place both.
    text = (
        "Operator-wise Profiling Info for Regular Benchmark Runs:\n"
        "============================== Run Order ==============================\n"
        "node type, first, avg_ms, %, cdf%, mem KB, times called, name\n"
        "TfLiteXNNPackDelegate, 1.2, 1.1, 50%, 50%, 0, 1, [out]:3\n"
        "Convolution (NHWC, F32) IGEMM, 0.61, 0.604, 27.5%, 77.5%, 0, 1, Delegate/Convolution (NHWC, F32) IGEMM:0\n"
        "Add (ND, F32), 0.02, 1.5e-02, 0.7%, 78.2%, 0, 1, Delegate/Add (ND, F32):1\n"
        "CONCATENATION, 0.1, 0.1, 4.5%, 82.7%, 0, 1, [a, b]:2\n"
    )
    rows = parse_tflite_op_csv(text)
    assert [(r.op_type, r.avg_ms, r.percent, r.name) for r in rows] == [
        ("TfLiteXNNPackDelegate", 1.1, 50.0, "[out]:3"),
        ("Convolution (NHWC, F32) IGEMM", 0.604, 27.5, "Delegate/Convolution (NHWC, F32) IGEMM:0"),
        ("Add (ND, F32)", 0.015, 0.7, "Delegate/Add (ND, F32):1"),
        ("CONCATENATION", 0.1, 4.5, "[a, b]:2"),
    ]


def test_ort_perf_test_with_percentiles() -> None:
    out = parse_ort_perf_test(_read("ort_perf_test_linux_riscv.txt"))
    assert (out.requests, out.avg_ms, out.session_creation_s, out.first_inference_ms) == (100, 62.2935, 2.74716, 85)
    assert (out.p50_s, out.p90_s, out.p95_s, out.p99_s, out.p999_s) == (
        0.0603562,
        0.0741593,
        0.0837052,
        0.0912857,
        0.0912857,
    )
    assert (out.min_s, out.max_s) == (0.0529422, 0.0912857)
    assert out.peak_working_set_bytes == 114634752 and out.total_run_s == 6.23146 and out.inferences_per_s == 16.0476
    assert out.cpu_usage_percent == 382


def test_ort_perf_test_windows_duplicated_lines() -> None:
    out = parse_ort_perf_test(_read("ort_perf_test_windows.txt"))
    assert (out.requests, out.avg_ms, out.p50_s, out.p999_s) == (10000, 0.940745, 0.0009458, 0.00136)
    assert out.peak_working_set_bytes == 50905088 and out.cpu_usage_percent == 74


def test_ort_perf_test_old_build_missing_fields_are_none() -> None:
    out = parse_ort_perf_test(_read("ort_perf_test_acl_2020.txt"))
    assert (out.requests, out.avg_ms, out.peak_working_set_bytes) == (10, 144.871, 158171136)
    assert out.first_inference_ms is None and out.p50_s is None and out.inferences_per_s is None


def test_ort_result_file_gives_per_run_seconds() -> None:
    runs = parse_ort_result_file(_read("ort_perf_test_result_file.csv") + "\nMin Latency: 0.0596 s\n")
    assert len(runs) == 10 and runs[0] == 0.0612 and max(runs) == 0.0744
    newer = parse_ort_result_file("m,0.0100,0.0123,1000,50,0\nm,0.0101,0.0125,1000,50,1\n")
    assert newer == [0.0123, 0.0125]  # total time, not submission time


@pytest.mark.parametrize(
    "parse",
    [parse_tflite_benchmark, parse_ort_perf_test, parse_tflite_op_csv, parse_tflite_op_table, parse_ort_result_file],
)
def test_garbage_gives_one_line_parse_error(parse) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParseError) as info:
        parse("Segmentation fault\nsomething else entirely\n")
    assert "\n" not in str(info.value)


def test_tflite_failure_names_the_tools_error() -> None:
    log = "INFO: STARTING!\nERROR: Node number 57 (BATCH_MATMUL) failed to prepare.\nERROR: Benchmarking failed.\n"
    with pytest.raises(ParseError, match="last error: Benchmarking failed"):
        parse_tflite_benchmark(log)


# --------------------------------------------------------------------------- benchmark_model's echoed parameters


def test_echoed_parameters_that_match_the_flags_pass() -> None:
    text = (DATA / "tflite_benchmark_mobilenet_v1_op_profiling.txt").read_text()
    argv = ["taskset", "f0", "/bin/benchmark_model", "--graph=./mobilenet_v1_1.0_224.tflite", "--num_threads=4"]
    assert tflite_echo_mismatches(text, argv) == []


def test_a_flag_the_binary_ignored_is_named_with_both_values() -> None:
    text = (DATA / "tflite_benchmark_mobilenet_v1_op_profiling.txt").read_text()
    argv = ["/bin/benchmark_model", "--graph=./mobilenet_v1_1.0_224.tflite", "--num_threads=2", "--num_runs=50"]
    assert tflite_echo_mismatches(text, argv) == [
        "--num_threads=2 but it echoed Num threads: [4]",
        "--num_runs=50 but it echoed no 'Min num runs'",
        "--num_threads=2 but it used 4 threads for CPU inference",
    ]


def test_a_modified_echo_and_an_unconsumed_flag_are_caught() -> None:
    text = (DATA / "tflite_benchmark_android_aarch64_percentiles.txt").read_text()
    argv = ["bm", "--graph=./models/tiny_muaalem_float32.tflite", "--num_runs=1000", "--use_xnnpack=false"]
    old_build = text + "\nUnconsumed cmdline flags: --use_xnnpack=false\n"
    assert tflite_echo_mismatches(old_build, argv) == ["--use_xnnpack=false was not understood (unconsumed flag)"]
    edited = text.replace("Min num runs: [1000]", "Min num runs: [50]") + "INFO: Use xnnpack: [0]\n"
    assert tflite_echo_mismatches(edited, argv) == ["--num_runs=1000 but it echoed Min num runs: [50]"]


# --------------------------------------------------------------------------- ONNX Runtime profile (perf_test -p)


def test_ort_trace_from_onnxruntimes_own_profiler() -> None:
    """tests/data/ort_profile_trace_shuffle_block.json: onnxruntime 1.32.0's profiler on this machine (see README)."""
    rows = parse_ort_trace((DATA / "ort_profile_trace_shuffle_block.json").read_text(), skip_first=1)
    assert [(r.name, r.op_type) for r in rows] == [
        ("relu_nchwc", "Conv"),  # conv + relu fused under NCHWc, named after the activation's output
        ("conv2d_1_nchwc", "Conv"),
        ("ReorderOutput", "ReorderOutput"),
        ("node_view", "Reshape"),
        ("node_transpose", "Transpose"),
        ("node__unsafe_view", "Reshape"),
    ]
    by_name = {r.name: r for r in rows}
    assert all(r.calls == 3 and r.provider == "CPUExecutionProvider" for r in rows)  # 4 runs, the warm-up dropped
    assert by_name["relu_nchwc"].mean_us == pytest.approx((10 + 6 + 6) / 3) and by_name["relu_nchwc"].median_us == 6
    assert by_name["node__unsafe_view"].mean_us == pytest.approx((8 + 3 + 3) / 3)
    assert parse_ort_trace((DATA / "ort_profile_trace_shuffle_block.json").read_text(), 0)[0].mean_us == 25.0


def test_ort_trace_that_is_not_a_profile_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match=r"^ONNX Runtime profile is not JSON \(Expecting value at line 1\)$"):
        parse_ort_trace("P50 Latency: 1 s")
    with pytest.raises(ParseError, match=r"^ONNX Runtime profile is not a list of trace events$"):
        parse_ort_trace('{"traceEvents": []}')
    with pytest.raises(ParseError, match="no node kernel times"):
        parse_ort_trace('[{"cat": "Session", "name": "model_loading_uri", "dur": 10}]')
