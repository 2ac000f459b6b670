"""Pure parsers for the output of benchmark tools: TFLite ``benchmark_model``, ``onnxruntime_perf_test`` and LiteRT's
``benchmark_litert_model.py``.

Formats follow the tools' sources: TFLite ``Stat::OutputToStream`` (``count=.. first=.. curr=.. min=.. max=.. avg=..
std=..`` plus ``p5= median= p95=`` in newer builds; ``count=1 curr=..`` when all values are equal), the
``BenchmarkLoggingListener`` summary lines, ``StatsCalculator`` op tables (tab-separated text or ``format_as_csv``),
and ``onnxruntime/test/perftest/performance_runner.cc``. TFLite times are microseconds and may be printed in
scientific notation (``2.95034e+06``). A field the tool did not print is ``None``; text that is not the tool's
output raises :class:`ParseError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from devices.core.errors import FlopgapError

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|-?inf"


class ParseError(FlopgapError, ValueError):
    """The text is not the output the parser expects; the message is one line."""


def json_document(text: str, what: str, kind: type[dict[str, Any]] | type[list[Any]], expected: str) -> Any:
    """``text`` parsed as JSON holding a ``kind``; otherwise a ParseError in one line: ``what`` is not JSON, or is
    not ``expected``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, kind):
        raise ParseError(f"{what} is not {expected}")
    return doc


def _num(text: str | None) -> float | None:
    return None if text is None else float(text)


def _search(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return _num(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------------------------------
# TFLite benchmark_model


@dataclass(frozen=True)
class RunStats:
    """One ``count=...`` line of ``benchmark_model`` (microseconds): a summary, not the samples."""

    count: int
    first_us: float | None
    curr_us: float | None
    min_us: float | None
    max_us: float | None
    avg_us: float | None
    std_us: float | None
    p5_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None

    @property
    def all_same(self) -> bool:
        """The tool prints only ``curr`` when every run took the same time (e.g. a single run)."""
        return self.min_us is None and self.curr_us is not None


@dataclass(frozen=True)
class OpRow:
    """One operator of an op-profiling table (the ``Run Order`` table of the regular runs)."""

    name: str
    op_type: str
    avg_ms: float
    percent: float
    times_called: int
    first_ms: float | None = None
    cdf_percent: float | None = None
    mem_kb: float | None = None
    start_ms: float | None = None


@dataclass(frozen=True)
class TfliteBenchmark:
    """What ``benchmark_model`` (or ``benchmark_model_plus_flex``) reported."""

    warmup: RunStats | None
    inference: RunStats | None
    init_us: float | None
    first_inference_us: float | None
    warmup_avg_us: float | None
    inference_avg_us: float | None
    model_size_mb: float | None
    session_init_ms: float | None
    mem_init_mb: float | None
    mem_overall_mb: float | None
    peak_mem_mb: float | None
    params: dict[str, str] = field(default_factory=dict)  # "Num threads: [4]" -> {"Num threads": "4"}
    ops: list[OpRow] = field(default_factory=list)  # from the printed tables, when op profiling was on


_PREFIX = re.compile(r"^(?:.*?\b[IWEV] tflite\s*:\s*|(?:INFO|WARN|WARNING|ERROR|VERBOSE): )")
_STAT_LINE = re.compile(r"\bcount=(\d+)\b(.*)$")
_KV = re.compile(rf"(\w+)=({_NUM})")
_PARAM = re.compile(r"^([A-Za-z#][^:\[\]]*?): \[(.*)\]$")


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r"), count=1)


def _run_stats(line: str) -> RunStats | None:
    m = _STAT_LINE.search(line)
    if not m:
        return None
    kv = {k: float(v) for k, v in _KV.findall(m.group(0))}
    return RunStats(
        count=int(m.group(1)),
        first_us=kv.get("first"),
        curr_us=kv.get("curr"),
        min_us=kv.get("min"),
        max_us=kv.get("max"),
        avg_us=kv.get("avg"),
        std_us=kv.get("std"),
        p5_us=kv.get("p5"),
        median_us=kv.get("median"),
        p95_us=kv.get("p95"),
    )


def parse_tflite_benchmark(text: str) -> TfliteBenchmark:
    """Parse the log of one ``benchmark_model`` run (stdout and stderr together)."""
    lines = [_strip(raw) for raw in text.splitlines()]
    phases: list[RunStats] = []
    loose: list[RunStats] = []  # count= lines without a "Running benchmark" header (trimmed logcat)
    expecting = False
    params: dict[str, str] = {}
    for line in lines:
        if line.startswith("Running benchmark for at least"):
            expecting = True
            continue
        if line.startswith(("Timings (microseconds):", "Memory (bytes):")):
            continue  # op-profiler summaries, not run timings
        stats = _run_stats(line)
        if stats is not None:
            (phases if expecting else loose).append(stats)
            expecting = False
            continue
        pm = _PARAM.match(line.strip())
        if pm and not line.startswith("\t"):
            params.setdefault(pm.group(1).strip(), pm.group(2))
    if not phases:
        phases = loose[-2:]
    timings = re.search(
        rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
        rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})",
        text,
    )
    if not phases and not timings:
        errors = [ln for ln in lines if ln.startswith(("ERROR", "Error")) or "failed" in ln.lower()]
        tail = f" (last error: {errors[-1].strip()})" if errors else ""
        raise ParseError(f"not benchmark_model output: no 'count=' or 'Inference timings' line found{tail}")
    warmup, inference = (None, phases[0]) if len(phases) == 1 else (phases[-2], phases[-1])
    mem = re.search(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                    rf"init=({_NUM}) overall=({_NUM})", text)  # fmt: skip
    return TfliteBenchmark(
        warmup=warmup,
        inference=inference,
        init_us=_num(timings.group(1)) if timings else None,
        first_inference_us=_num(timings.group(2)) if timings else None,
        warmup_avg_us=_num(timings.group(3)) if timings else None,
        inference_avg_us=_num(timings.group(4)) if timings else None,
        model_size_mb=_search(rf"The input model file size \(MB\): ({_NUM})", text),
        session_init_ms=_search(rf"Initialized session in ({_NUM})ms", text),
        mem_init_mb=_num(mem.group(1)) if mem else None,
        mem_overall_mb=_num(mem.group(2)) if mem else None,
        peak_mem_mb=_search(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})", text),
        params=params,
        ops=parse_tflite_op_table(text) if "Run Order" in text else [],
    )


def echoed_params(text: str) -> dict[str, str]:
    """The parameters ``benchmark_model`` echoes (``Num threads: [4]`` -> ``{"Num threads": "4"}``), first wins."""
    params: dict[str, str] = {}
    for raw in text.splitlines():
        line = _strip(raw)
        pm = _PARAM.match(line.strip())
        if pm and not line.startswith("\t"):
            params.setdefault(pm.group(1).strip(), pm.group(2))
    return params


_REGULAR = "Operator-wise Profiling Info for Regular Benchmark Runs"
_TITLE = re.compile(r"^=+ (.+?) =+$")
# Header names of both layouts (text "[avg ms]" and csv "avg_ms") mapped to one key.
_COLUMNS = {
    "node type": "op_type",
    "start": "start_ms",
    "first": "first_ms",
    "avg ms": "avg_ms",
    "avg_ms": "avg_ms",
    "%": "percent",
    "cdf%": "cdf_percent",
    "mem kb": "mem_kb",
    "times called": "times_called",
    "name": "name",
}


def _run_order_block(text: str) -> list[str]:
    """Lines of the first ``Run Order`` table of the regular runs (its header line first)."""
    lines = [_strip(raw) for raw in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if _REGULAR in ln), 0)
    for i in range(start, len(lines)):
        m = _TITLE.match(lines[i].strip())
        if m and m.group(1) == "Run Order":
            block = []
            for ln in lines[i + 1 :]:
                if not ln.strip() or _TITLE.match(ln.strip()):
                    break
                block.append(ln)
            return block
    raise ParseError("no 'Run Order' op-profiling table found; was --enable_op_profiling=true given?")


def _row(cells: list[str], header: list[str], line: str) -> OpRow:
    if len(cells) != len(header):
        raise ParseError(f"op-profiling row has {len(cells)} fields, header has {len(header)}: {line.strip()!r}")
    row = dict(zip(header, (c.strip() for c in cells), strict=True))
    try:
        return OpRow(
            name=row["name"],
            op_type=row["op_type"],
            avg_ms=float(row["avg_ms"]),
            percent=float(row["percent"].rstrip("%")),
            times_called=int(float(row["times_called"])),
            first_ms=_num(row.get("first_ms")),
            cdf_percent=_num(row["cdf_percent"].rstrip("%")) if "cdf_percent" in row else None,
            mem_kb=_num(row.get("mem_kb")),
            start_ms=_num(row.get("start_ms")),
        )
    except ValueError as exc:
        raise ParseError(f"bad op-profiling row ({exc}): {line.strip()!r}") from None


def _header(names: list[str]) -> list[str]:
    header = [_COLUMNS.get(n.strip().strip("[]").strip().lower(), "?") for n in names]
    missing = {"op_type", "avg_ms", "percent", "times_called", "name"} - set(header)
    if missing:
        raise ParseError(f"op-profiling header lacks {', '.join(sorted(missing))}: {', '.join(names)!r}")
    return header


def parse_tflite_op_table(text: str) -> list[OpRow]:
    """Rows of the ``Run Order`` table that ``--enable_op_profiling=true`` prints for the regular runs."""
    block = _run_order_block(text)
    if block and "," in block[0] and "\t" not in block[0]:
        return _csv_rows(block)
    header = _header(block[0].strip("\t ").split("\t"))
    # The name is the last column and may itself contain the separator, hence maxsplit.
    return [_row(ln.removeprefix("\t").split("\t", len(header) - 1), header, ln) for ln in block[1:]]


def _csv_rows(block: list[str]) -> list[OpRow]:
    header = _header(block[0].split(","))
    return [_row(_csv_cells(ln, header), header, ln) for ln in block[1:]]


def _csv_cells(line: str, header: list[str]) -> list[str]:
    """A csv row's cells. The tool does not quote: an XNNPACK operator's node type (``Convolution (NHWC, F32)
    IGEMM``) and a fused op's name may hold the separator, so where the node type is first and the name last the
    numbers between them place both."""
    parts = line.split(", ")
    numbers = len(header) - 2
    if len(parts) == len(header) or header[0] != "op_type" or header[-1] != "name":
        return line.split(", ", len(header) - 1)
    for i in range(1, len(parts) - numbers):
        if all(re.fullmatch(rf"(?:{_NUM})%?", c.strip()) for c in parts[i : i + numbers]):
            return [", ".join(parts[:i]), *parts[i : i + numbers], ", ".join(parts[i + numbers :])]
    return line.split(", ", len(header) - 1)


def parse_tflite_op_csv(text: str) -> list[OpRow]:
    """Rows of the file ``--op_profiling_output_mode=csv --op_profiling_output_file=...`` writes."""
    block = _run_order_block(text)
    if not block or "," not in block[0]:
        raise ParseError("op-profiling file is not in csv mode: its 'Run Order' header has no commas")
    return _csv_rows(block)


# ---------------------------------------------------------------------------------------------------------------------
# onnxruntime_perf_test


@dataclass(frozen=True)
class OrtPerfTest:
    """What ``onnxruntime_perf_test`` printed; latencies in the tool's own units (s or ms, as named)."""

    session_creation_s: float | None
    first_inference_ms: float | None
    total_inference_s: float | None
    requests: int | None
    avg_ms: float | None
    total_run_s: float | None
    inferences_per_s: float | None
    cpu_usage_percent: float | None
    peak_working_set_bytes: int | None
    min_s: float | None
    max_s: float | None
    p50_s: float | None
    p90_s: float | None
    p95_s: float | None
    p99_s: float | None
    p999_s: float | None


def _ort(label: str, text: str) -> float | None:
    return _search(rf"(?m)^\s*{label}:\s*({_NUM})", text)


def parse_ort_perf_test(text: str) -> OrtPerfTest:
    """Parse the console output of one ``onnxruntime_perf_test`` run."""
    avg = _ort("Average inference time cost", text)
    requests = _ort("Total inference requests", text)
    if avg is None and requests is None:
        errors = [ln.strip() for ln in text.splitlines() if "error" in ln.lower() or "fail" in ln.lower()]
        tail = f" (last error: {errors[-1]})" if errors else ""
        raise ParseError(f"not onnxruntime_perf_test output: no 'Average inference time cost' line found{tail}")
    peak = _ort("Peak working set size", text)
    cpu = _ort("Avg CPU usage", text)
    return OrtPerfTest(
        session_creation_s=_ort("Session creation time cost", text),
        first_inference_ms=_ort("First inference time cost", text),
        total_inference_s=_ort("Total inference time cost", text),
        requests=None if requests is None else int(requests),
        avg_ms=avg,
        total_run_s=_ort("Total inference run time", text),
        inferences_per_s=_ort("Number of inferences per second", text),
        cpu_usage_percent=cpu if cpu is not None else _ort("Total CPU usage", text),
        peak_working_set_bytes=None if peak is None else int(peak),
        min_s=_ort("Min Latency", text),
        max_s=_ort("Max Latency", text),
        p50_s=_ort("P50 Latency", text),
        p90_s=_ort("P90 Latency", text),
        p95_s=_ort("P95 Latency", text),
        p99_s=_ort("P99 Latency", text),
        p999_s=_ort("P999 Latency", text),
    )


def parse_ort_result_file(text: str) -> list[float]:
    """Per-run latencies (seconds) from the ``result_file`` argument of ``onnxruntime_perf_test``.

    Each run is a line ``model,time_s,peak_bytes,cpu%,run`` (newer builds add a second time column:
    ``model,submission_s,total_s,peak_bytes,cpu%,run``; the total is taken). Statistics lines that follow
    (``P50 Latency: ...``) are skipped.
    """
    samples: list[float] = []
    for ln in text.splitlines():
        cells = ln.strip().split(",")
        if len(cells) not in (5, 6):
            continue
        try:
            samples.append(float(cells[1] if len(cells) == 5 else cells[2]))
            int(cells[-1])
        except ValueError:
            raise ParseError(f"bad onnxruntime_perf_test result line: {ln.strip()!r}") from None
    if not samples:
        raise ParseError("onnxruntime_perf_test result file has no per-run lines")
    return samples


# ---------------------------------------------------------------------------------------------------------------------
# benchmark_litert_model.py (ai_edge_litert/tools): the Python peer the harness-overhead benchmark compares with


@dataclass(frozen=True)
class LitertBenchmark:
    """The results block LiteRT's ``benchmark_litert_model.py`` prints to stdout (all times in ms, as printed)."""

    init_ms: float | None
    warmup_first_ms: float | None
    warmup_avg_ms: float | None
    warmup_runs: int | None
    avg_ms: float
    runs: int
    min_ms: float | None
    max_ms: float | None
    median_ms: float | None  # None where the tool printed no median (then only avg_ms can be compared)
    std_ms: float | None
    p5_ms: float | None
    p95_ms: float | None
    throughput_mb_s: float | None
    fully_accelerated: bool | None
    resolution_ms: float  # one unit of the last printed decimal of the central figure (0.01 for "%.2f")


_LITERT_NUMBER = f"({_NUM})"
_LITERT_HEADER = re.compile(r"^\s*BENCHMARK RESULTS\s*$", re.MULTILINE)
_LITERT_MS_LINE = r"^\s*{label}:\s+" + _LITERT_NUMBER + r"\s*ms(?:\s*\((\d+)\s+runs\))?\s*$"
_LITERT_MS_FIELDS = {
    "init": "Model initialization",
    "warmup_first": r"Warmup \(first\)",
    "warmup_avg": r"Warmup \(avg\)",
    "avg": r"Inference \(avg\)",
    "min": r"Inference \(min\)",
    "max": r"Inference \(max\)",
    "median": r"Inference \(median\)",
    "std": r"Inference \(std\)",
    "p5": r"Inference \(p5\)",
    "p95": r"Inference \(p95\)",
}
_LITERT_THROUGHPUT = re.compile(r"^\s*Throughput:\s+" + _LITERT_NUMBER + r"\s*MB/s\s*$", re.MULTILINE)
_LITERT_FULLY = re.compile(r"^\s*Fully accelerated:\s+(True|False)\s*$", re.MULTILINE)


def _decimals(number: str) -> int:
    mantissa = number.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def parse_benchmark_litert_model(text: str) -> LitertBenchmark:
    """Parse the results block of ``benchmark_litert_model.py`` from its stdout (stderr mixed in is fine).

    Raises :class:`ParseError` when there is no results block, more than one, or no ``Inference (avg)``
    line with its run count.
    """
    headers = _LITERT_HEADER.findall(text)
    if not headers:
        raise ParseError("no 'BENCHMARK RESULTS' block in the output")
    if len(headers) > 1:
        raise ParseError(f"{len(headers)} 'BENCHMARK RESULTS' blocks in the output; expected one")
    header = _LITERT_HEADER.search(text)
    assert header is not None  # findall found exactly one
    block = text[header.end() :]
    values: dict[str, tuple[str, str | None]] = {}
    for key, label in _LITERT_MS_FIELDS.items():
        matches = re.findall(_LITERT_MS_LINE.format(label=label), block, flags=re.MULTILINE)
        if len(matches) > 1:
            raise ParseError(f"'{label}' appears {len(matches)} times in the results block")
        if matches:
            number, count = matches[0]
            values[key] = (number, count or None)
    avg_number, avg_count = values.get("avg", ("", None))
    if avg_count is None:
        raise ParseError("the results block has no 'Inference (avg): X ms (N runs)' line")

    def ms(key: str) -> float | None:
        return float(values[key][0]) if key in values else None

    def runs(key: str) -> int | None:
        count = values.get(key, ("", None))[1]
        return int(count) if count is not None else None

    throughput = _LITERT_THROUGHPUT.search(block)
    fully = _LITERT_FULLY.search(block)
    central = values["median"][0] if "median" in values else avg_number
    return LitertBenchmark(
        init_ms=ms("init"),
        warmup_first_ms=ms("warmup_first"),
        warmup_avg_ms=ms("warmup_avg"),
        warmup_runs=runs("warmup_avg"),
        avg_ms=float(avg_number),
        runs=int(avg_count),
        min_ms=ms("min"),
        max_ms=ms("max"),
        median_ms=ms("median"),
        std_ms=ms("std"),
        p5_ms=ms("p5"),
        p95_ms=ms("p95"),
        throughput_mb_s=float(throughput.group(1)) if throughput else None,
        fully_accelerated=(fully.group(1) == "True") if fully else None,
        resolution_ms=10.0 ** -_decimals(central),
    )
