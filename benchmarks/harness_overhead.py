"""How much does flopgap's runner add to, or take from, a latency? Its medians against a peer tool and a bare loop.

On the SAME exported .tflite, .onnx and .pte files, per zoo model, three tools time the model with 1 thread and the
same warm-up and run counts (flopgap's runner gets ``--warmup-seconds 0 --min-seconds 0 --max-runs N`` so it
runs exactly W warm-up and N timed runs, as the others do):

- ``flopgap``: ``devices/runner.py`` in a subprocess; its median via :func:`harness.measure.stats.summarize`.
- ``peer``: Google's ``benchmark_litert_model.py`` from the ai-edge-litert wheel, in a subprocess (TFLite only;
  there is no ONNX counterpart in the installed wheels); its printed ``Inference (median)``.
- ``bare``: the minimal timing loop, ``interpreter.invoke()`` (TFLite, input set once),
  ``session.run(None, feed)`` (ONNX Runtime, feed built once) or ``method.execute(inputs)`` (ExecuTorch's own
  Python runtime on the XNNPACK-delegated ``.pte``, inputs built once) between two ``perf_counter_ns`` reads, in
  the same process as the runtime. Each bare measurement runs in a fresh child process of this script, like the
  other two tools, so that every tool starts from the same process state (cold allocator; no torch in the timed
  process except for ``.pte``, whose runtime takes torch tensors in both tools).

Printed per model and format:

- (a) ``fg/peer``: flopgap's median / the peer's median (TFLite only), both medians across rounds;
- (b) ``fg/bare``: flopgap's median / the bare loop's median, every format;
- (c) ``fg spread``: (max - min) / median of flopgap's per-round medians, i.e. over ``--rounds`` (default 5)
  separate invocations of the runner.

The tools are interleaved per model, round after round, and the order rotates each round (round 1: flopgap, peer,
bare; round 2: peer, bare, flopgap; ...), so drift and the position in a round hit all tools alike. Each cell is
the median over rounds of that tool's per-round median; ``[lo-hi]`` after a ratio is the range of the per-round
(paired) ratios. The machine (CPU, cores, OS, runtime versions, date) and the load average during the run are
printed with the table. A benchmark: it prints figures and asserts nothing.

Why a ratio can leave 0.97-1.03. Figures from two full runs on 2026-11-23, a 2-vCPU AMD EPYC KVM guest
(ai-edge-litert 2.3.0, onnxruntime 1.32.0, 1 thread) shared with other engineers' jobs: run A at load average
3.5-5, run B at 2.9-4.3. In run B every ratio but one lay within 0.97-1.03 (fg/bare 0.988-1.006 for all models
and both formats; fg/peer 0.989-1.014 for the three models of >= 1 ms); the exception and run A's outliers:

- Rounding of the peer. It prints every figure in ms with two decimals (``f"{x:.2f}"``, its ``--result_json``
  too), so its median is known to +-0.005 ms only; ``res`` gives that as a share of its median. On
  mobilenet_v1[alpha=0.25,resolution=128] (~0.194 ms) the peer printed 0.20 or 0.19 in each round, so
  ``fg/peer`` (0.980 in run A, 0.966 in run B) only says the true ratio lies in about 0.95-1.01. Only models of
  >= ~1 ms can test the 0.97-1.03 band through the peer.
- The peer runs another API. ``benchmark_litert_model.py`` uses LiteRT's ``CompiledModel`` (environment, CPU
  accelerator = XNNPACK, ``run_by_name`` with dicts of ``TensorBuffer``); flopgap and the bare loop use the
  classic ``Interpreter`` with its default XNNPACK delegate. Per call, ``run_by_name`` rebuilds two dicts of
  capsules and looks the signature and tensors up by name. In-process, interleaved, 9 blocks each:
  ``run_by_name`` 193.9 us vs ``invoke`` 191.3 us on the tiny model (+2.7 us, 1.4 %), 1430 vs 1420 us on
  mobilenet_v1[alpha=0.5] (0.7 %, within noise). So ``fg/peer`` of a tiny model is expected near 0.986 even
  with equal harnesses (rounding then moves the printed ratio further); ``fg/bare`` (same API as flopgap) is
  the test of flopgap's own overhead. The peer's timed region is ``run_by_name`` alone (no input write inside
  the loop), like flopgap's; its warm-up is a run count only (so is everyone's here); its input is
  uniform(-1, 1) rather than N(0, 1) (irrelevant to fp32 latency).
- ONNX: io_binding. flopgap's runner pre-binds input AND output OrtValues and calls ``run_with_iobinding``; the
  bare ``session.run(None, feed)`` also allocates and converts the output to numpy on every call. In-process,
  interleaved, 7 blocks: 189.4 us (``run``) vs 188.1 us (pre-bound io_binding) on the tiny model, 0.7 %.
  ``fg/bare`` for tiny ONNX was 0.981 in run A (paired rounds 0.971-0.988), 0.988 in run B, and 0.992 in a
  separate 6-round subprocess check: about 0.7 % is io_binding (flopgap measures less Python/ORT glue than the
  naive loop, not a faster model), the rest is load noise. On models of >= 1 ms it vanishes (0.98-1.00).
- Time-sharing. On a 2-vCPU guest with two other busy processes a measurement either has a vCPU to itself or
  shares one, and its latency is then bimodal: mobilenet_v2 3.1-3.6 ms or 7.3-7.9 ms, resnet50 36 ms or
  72-76 ms. A round's median lands in either mode, and the tools' rounds flip between modes independently: in
  run A ``fg spread`` was 52 % (mobilenet_v2) and 73 % (resnet50), and resnet50 gave ``fg/bare`` 0.741 and
  ``fg/peer`` 0.865 — the machine, not the tools (in run B, with fewer co-runners, the same rows read 0.988
  and 0.989). The ``noisy`` column names every tool whose per-round medians spread more than 5 %
  (harness.measure.stats' trial-spread threshold), and the report warns when the load average is >= 0.5 per CPU; read
  no ratio of such a row as a harness difference. A quiet machine is needed for the final figures.
- ResNet-50's TFLite graph has one op XNNPACK does not take (the runner reports 76 of 77 nodes delegated, the
  peer ``Fully accelerated: False``); both tools run it the same way, on the builtin CPU kernel.

Run::

    python benchmarks/harness_overhead.py                 # 4 models, 5 rounds, ~1 s of timed runs per cell
    python benchmarks/harness_overhead.py --quick         # smoke run: smallest model, 2 short rounds
    python benchmarks/harness_overhead.py --models mobilenet_v2:alpha=0.5 resnet50 --rounds 7 --json out.json
    python benchmarks/harness_overhead.py --formats pte   # ExecuTorch only (needs the .[executorch] extra)
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "devices" / "runner.py"

DEFAULT_MODELS = (
    "mobilenet_v1:alpha=0.25,resolution=128",  # tiny, ~0.2 ms on a 2020s x86 core
    "mobilenet_v1:alpha=0.5",  # small, ~1.5 ms
    "mobilenet_v2:alpha=1.0",  # medium, ~3 ms
    "resnet50",  # large, ~35 ms
)
QUICK_MODELS = ("mobilenet_v1:alpha=0.25,resolution=128",)
TOOLS = ("flopgap", "peer", "bare")
FORMATS = ("tflite", "onnx", "pte")
SUBPROCESS_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------- the peer tool


def peer_tool_path() -> Path | None:
    """``benchmark_litert_model.py`` inside the installed ai-edge-litert wheel, or None."""
    spec = importlib.util.find_spec("ai_edge_litert")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "tools" / "benchmark_litert_model.py"
    return path if path.is_file() else None


# --------------------------------------------------------------------------- one measurement per tool


@dataclass(frozen=True)
class Cell:
    """One tool's measurement of one model file in one round."""

    median_ms: float | None  # None when the tool failed
    mean_ms: float | None = None
    resolution_ms: float | None = None  # only for the peer's rounded figures
    median_is_mean: bool = False  # the peer printed no median: median_ms holds its average
    error: str | None = None
    note: str | None = None


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else "(no output)"


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False)


def _stats_of(samples_ns: Sequence[int]) -> tuple[float, float]:
    from harness.measure.stats import summarize

    stats = summarize(samples_ns, resamples=100)  # only median and mean are used; keep the bootstrap cheap
    return stats.median, stats.mean


def measure_flopgap(path: Path, threads: int, warmup: int, runs: int) -> Cell:
    from devices.agent import parse_document
    from devices.base import ShellReturn
    from devices.errors import TrialFailed
    from devices.result import TrialResult

    argv = [sys.executable, str(RUNNER), str(path), "--threads", str(threads)]
    argv += ["--warmup-runs", str(warmup), "--warmup-seconds", "0", "--runs", str(runs), "--min-seconds", "0"]
    argv += ["--max-runs", str(runs)]
    try:
        done = _run(argv)
        res = ShellReturn(tuple(argv), done.returncode, done.stdout, done.stderr, 0.0)
        result = TrialResult.from_json(parse_document(res, "local"))
    except (subprocess.TimeoutExpired, TrialFailed) as exc:
        return Cell(None, error=f"runner: {_one_line(str(exc))}")
    median, mean = _stats_of(result.samples_ns)
    d = result.delegate
    note = None
    if d is not None and d.nodes_total is not None and d.nodes_delegated != d.nodes_total:
        note = f"{d.name}: {d.nodes_delegated}/{d.nodes_total} nodes"
    return Cell(median, mean, note=note)


def measure_peer(tool: Path, path: Path, threads: int, warmup: int, runs: int) -> Cell:
    from devices.parsers import ParseError, parse_benchmark_litert_model

    argv = [sys.executable, str(tool), f"--model={path}", f"--num_threads={threads}"]
    argv += [f"--warmup_runs={warmup}", f"--num_runs={runs}"]
    try:
        done = _run(argv)
    except subprocess.TimeoutExpired as exc:
        return Cell(None, error=f"peer: {_one_line(str(exc))}")
    if done.returncode != 0:
        return Cell(None, error=f"peer exit {done.returncode}: {_last_line(done.stderr)}")
    try:
        result = parse_benchmark_litert_model(done.stdout)
    except ParseError as exc:
        return Cell(None, error=f"peer output: {exc}")
    note = None if result.fully_accelerated is not False else "peer: not fully accelerated"
    if result.median_ms is None:
        return Cell(result.avg_ms, result.avg_ms, result.resolution_ms, median_is_mean=True, note=note)
    return Cell(result.median_ms, result.avg_ms, result.resolution_ms, note=note)


def measure_bare(path: Path, threads: int, warmup: int, runs: int) -> Cell:
    """The bare loop, in a fresh child process of this script (see ``bare_child``)."""
    with tempfile.TemporaryDirectory(prefix="flopgap-bare-") as tmp:
        out = Path(tmp) / "samples.json"
        argv = [sys.executable, str(Path(__file__).resolve()), "--bare-child", str(path), str(out)]
        argv += ["--threads", str(threads), "--warmup", str(warmup), "--runs", str(runs)]
        try:
            done = _run(argv)
        except subprocess.TimeoutExpired as exc:
            return Cell(None, error=f"bare: {_one_line(str(exc))}")
        if done.returncode != 0 or not out.is_file():
            return Cell(None, error=f"bare exit {done.returncode}: {_last_line(done.stderr)}")
        samples = json.loads(out.read_text())
    median, mean = _stats_of(samples)
    return Cell(median, mean)


def _bare_invoker(path: Path, threads: int) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The runtime call and its arguments; inputs are made once here (N(0, 1), seed 0)."""
    import numpy as np

    rng = np.random.default_rng(0)
    if path.suffix == ".pte":
        return _bare_executorch(path, threads, rng)
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            array = rng.standard_normal(tuple(detail["shape"])).astype(detail["dtype"])
            interpreter.set_tensor(detail["index"], array)
        return interpreter.invoke, ()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    feed = {}
    for meta in session.get_inputs():
        if meta.type != "tensor(float)":
            raise SystemExit(f"bare loop: input {meta.name} is {meta.type}; only float inputs are supported")
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in meta.shape)
        feed[meta.name] = rng.standard_normal(shape).astype(np.float32)
    return session.run, (None, feed)


_ALIVE: list[Any] = []


def _bare_executorch(path: Path, threads: int, rng: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """ExecuTorch's Python runtime as its docs use it; the threadpool sized as flopgap's runner sizes it."""
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime, Verification

    portable_lib._unsafe_reset_threadpool(threads)
    program = Runtime.get().load_program(path, verification=Verification.Minimal)
    method = program.load_method("forward")
    if method is None:
        raise SystemExit(f"bare loop: {path.name} has no forward method")
    meta = method.metadata
    inputs = []
    for i in range(meta.num_inputs()):
        shape = tuple(meta.input_tensor_meta(i).sizes())
        inputs.append(torch.from_numpy(rng.standard_normal(shape).astype("float32")))
    _ALIVE.append(program)  # the method lives only as long as its program
    return method.execute, (inputs,)


def bare_child(path: Path, out: Path, threads: int, warmup: int, runs: int) -> None:
    """The minimal loop: W untimed calls, then N calls each between two perf_counter_ns reads."""
    call, args = _bare_invoker(path, threads)
    for _ in range(warmup):
        call(*args)
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    for _ in range(runs):
        t0 = clock()
        call(*args)
        append(clock() - t0)
    out.write_text(json.dumps(samples))


# --------------------------------------------------------------------------- plan, rounds, results


@dataclass(frozen=True)
class ModelFiles:
    label: str
    paths: dict[str, Path]  # format -> exported file

    @property
    def probe(self) -> Path:
        """The file a short bare probe sizes the run counts on (TFLite's where exported)."""
        return self.paths.get("tflite") or next(iter(self.paths.values()))


@dataclass
class Row:
    """All rounds of one model file: per tool, one Cell per round."""

    label: str
    fmt: str
    warmup: int
    runs: int
    cells: dict[str, list[Cell]] = field(default_factory=dict)

    def medians(self, tool: str) -> list[float]:
        return [c.median_ms for c in self.cells.get(tool, []) if c.median_ms is not None]

    def center(self, tool: str) -> float | None:
        values = self.medians(tool)
        return statistics.median(values) if values else None

    def spread(self, tool: str) -> float | None:
        """(max - min) / median of the tool's per-round medians; None with fewer than two rounds."""
        values = self.medians(tool)
        if len(values) < 2:
            return None
        center = statistics.median(values)
        return (max(values) - min(values)) / center if center > 0 else None

    def noisy(self) -> list[tuple[str, float]]:
        """Tools whose per-round medians spread more than harness.measure.stats' trial-spread threshold."""
        from harness.measure.stats import DEFAULT_SPREAD_THRESHOLD

        spreads = [(tool, self.spread(tool)) for tool in self.cells]
        return [(tool, value) for tool, value in spreads if value is not None and value > DEFAULT_SPREAD_THRESHOLD]

    def paired_ratios(self, tool: str) -> list[float]:
        out = []
        for mine, theirs in zip(self.cells.get("flopgap", []), self.cells.get(tool, []), strict=False):
            if mine.median_ms is not None and theirs.median_ms:
                out.append(mine.median_ms / theirs.median_ms)
        return out

    def errors(self) -> list[str]:
        seen: list[str] = []
        for tool_cells in self.cells.values():
            for cell in tool_cells:
                for text in (cell.error, cell.note):
                    if text and text not in seen:
                        seen.append(text)
        return seen


def parse_model_arg(text: str) -> tuple[str, dict[str, str]]:
    """``name`` or ``name:key=value,key=value`` (values as strings; the zoo coerces them)."""
    name, _, rest = text.partition(":")
    params: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"bad model parameter {part!r} in {text!r} (expected key=value)")
        params[key.strip()] = value.strip()
    return name.strip(), params


def _model_arg(text: str) -> str:
    parse_model_arg(text)  # syntax check only; the zoo validates names and values at export
    return text


def export_models(model_args: Sequence[str], formats: Sequence[str]) -> list[ModelFiles]:
    from exporters.export import export
    from harness.zoo.registry import resolve

    files = []
    for text in model_args:
        name, params = parse_model_arg(text)
        spec = resolve(name, **params)
        files.append(ModelFiles(spec.label, {fmt: Path(export(spec, fmt, "fp32").path) for fmt in formats}))
    return files


def plan_counts(path: Path, threads: int, target_s: float, warmup_s: float, quick: bool) -> tuple[int, int]:
    """(warm-up runs, timed runs) so one cell takes ~``target_s``, from a short bare probe of the TFLite file."""
    probe = measure_bare(path, threads, warmup=2, runs=5)
    latency_s = (probe.median_ms or 10.0) / 1e3
    runs = int(min(5000, max(10 if quick else 30, math.ceil(target_s / latency_s))))
    warmup = int(min(1000, max(2 if quick else 5, math.ceil(warmup_s / latency_s))))
    return warmup, runs


def run_rounds(
    model: ModelFiles, rounds: int, threads: int, warmup: int, runs: int, peer: Path | None, loads: list[float]
) -> list[Row]:
    rows = {fmt: Row(model.label, fmt, warmup, runs) for fmt in model.paths}
    peer_failed: str | None = None if peer is not None else "benchmark_litert_model.py not found in ai_edge_litert"
    for r in range(rounds):
        order = TOOLS[r % len(TOOLS) :] + TOOLS[: r % len(TOOLS)]
        for tool in order:
            for fmt, path in model.paths.items():
                if tool == "peer" and fmt != "tflite":
                    continue
                loads.append(os.getloadavg()[0])
                if tool == "flopgap":
                    cell = measure_flopgap(path, threads, warmup, runs)
                elif tool == "bare":
                    cell = measure_bare(path, threads, warmup, runs)
                elif peer_failed is not None:
                    cell = Cell(None, error=peer_failed)
                else:
                    assert peer is not None
                    cell = measure_peer(peer, path, threads, warmup, runs)
                    if cell.median_ms is None:
                        peer_failed = cell.error  # it will not run this model in later rounds either
                rows[fmt].cells.setdefault(tool, []).append(cell)
        print(f"  {model.label}: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return list(rows.values())


# --------------------------------------------------------------------------- printing


def machine_facts() -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from devices.runner import device_facts

    facts = device_facts()
    litert = facts["runtimes"].get("ai_edge_litert")
    return {
        "cpu": facts.get("cpu_model") or facts.get("cpu_hardware") or "unknown",
        "cores": f"{facts.get('cpu_count')} logical, {facts.get('cpus_usable')} usable",
        "os": f"{facts.get('os_pretty_name') or '?'} (kernel {facts.get('kernel')}, {facts.get('machine')})",
        "python": facts.get("python"),
        "onnxruntime": facts["runtimes"].get("onnxruntime"),
        "ai_edge_litert": litert,
        "executorch": facts["runtimes"].get("executorch"),
        "numpy": facts["runtimes"].get("numpy"),
        "governors": sorted({c["governor"] for c in facts["state"].get("cpus", []) if "governor" in c}) or None,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _ratio(row: Row, tool: str) -> str:
    mine, theirs = row.center("flopgap"), row.center(tool)
    if mine is None or not theirs:
        return "-"
    paired = row.paired_ratios(tool)
    span = f" [{min(paired):.3f}-{max(paired):.3f}]" if len(paired) > 1 else ""
    return f"{mine / theirs:.3f}{span}"


def _spread(row: Row) -> str:
    value = row.spread("flopgap")
    return "-" if value is None else f"{value * 100:.1f}% (n={len(row.medians('flopgap'))})"


def _noisy(row: Row) -> str:
    return ", ".join(f"{tool} {value * 100:.0f}%" for tool, value in row.noisy())


def _peer_cell(row: Row) -> str:
    cells = [c for c in row.cells.get("peer", []) if c.median_ms is not None]
    center = row.center("peer")
    if center is None:
        return "-"
    mark = "(avg)" if any(c.median_is_mean for c in cells) else ""
    decimals = max(0, round(-math.log10(cells[0].resolution_ms))) if cells[0].resolution_ms else 4
    return f"{center:.{decimals}f}{mark}"  # as precise as the tool printed it


def _resolution(row: Row) -> str:
    resolutions = [c.resolution_ms for c in row.cells.get("peer", []) if c.resolution_ms is not None]
    center = row.center("peer")
    if not resolutions or not center:
        return "-"
    return f"±{resolutions[0] / 2 / center * 100:.1f}%"


def format_table(rows: Sequence[Row]) -> str:
    header = (
        "model",
        "fmt",
        "W/N",
        "flopgap ms",
        "peer ms",
        "res",
        "bare ms",
        "fg/peer",
        "fg/bare",
        "fg spread",
        "noisy",
    )
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.label,
                row.fmt,
                f"{row.warmup}/{row.runs}",
                _ms(row.center("flopgap")),
                _peer_cell(row) if row.fmt == "tflite" else "n/a",
                _resolution(row) if row.fmt == "tflite" else "",
                _ms(row.center("bare")),
                _ratio(row, "peer") if row.fmt == "tflite" else "n/a",
                _ratio(row, "bare"),
                _spread(row),
                _noisy(row),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def print_report(rows: Sequence[Row], facts: dict[str, Any], args: argparse.Namespace, loads: list[float]) -> None:
    print()
    print(f"flopgap harness overhead  {facts['date']}  ({facts['elapsed_s']:.0f} s)")
    print(f"machine: {facts['cpu']}; {facts['cores']}; {facts['os']}")
    print(
        f"runtimes: ai-edge-litert {facts['ai_edge_litert']}, onnxruntime {facts['onnxruntime']}, "
        f"executorch {facts['executorch']}, numpy {facts['numpy']}, python {facts['python']}; "
        f"governor {facts['governors'] or 'n/a'}"
    )
    if loads and statistics.median(loads) >= 0.5 * (os.cpu_count() or 1):
        print("WARNING: the machine was busy (load average >= 0.5 per CPU): other processes shared the CPUs")
    if loads:
        print(
            f"load average (1 min) at each measurement: min {min(loads):.2f}, median {statistics.median(loads):.2f}, "
            f"max {max(loads):.2f} on {os.cpu_count()} logical CPUs"
        )
    print(f"threads {args.threads}; fp32; {args.rounds} rounds, tool order rotated per round; medians across rounds")
    print()
    print(format_table(rows))
    print()
    print("W/N: warm-up / timed runs, the same for every tool; 'ms' columns: median over rounds of per-round medians")
    print("res: the peer prints ms with 2 decimals; half a unit of that as a share of its median")
    print("fg/peer, fg/bare: flopgap median / other median; [lo-hi]: range of the per-round paired ratios")
    print("fg spread: (max - min) / median of flopgap's medians over its separate invocations (one per round)")
    print("noisy: tools whose per-round medians spread > 5% (the stats threshold): the machine changed under")
    print("       the run (load, co-runners, clocks); that row's ratios describe the machine more than the tools")
    print("peer: benchmark_litert_model.py (CompiledModel API); bare: Interpreter.invoke / InferenceSession.run /")
    print("      ExecuTorch Method.execute loop")
    notes = [(row.label, row.fmt, text) for row in rows for text in row.errors()]
    for label, fmt, text in notes:
        print(f"note: {label} {fmt}: {text}")


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--models",
        nargs="+",
        type=_model_arg,
        default=None,
        metavar="NAME[:k=v,...]",
        help="zoo models, e.g. resnet50 mobilenet_v2:alpha=0.5 (default: four models from tiny to large)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: smallest model, 2 rounds, ~0.15 s per cell")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per model (default 5; quick 2)")
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per cell (default 1.0; quick 0.15)")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads for every tool (default 1)")
    parser.add_argument(
        "--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="formats to compare (default: all three)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every per-round cell to this JSON file")
    parser.add_argument("--bare-child", nargs=2, metavar=("MODEL", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=50, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bare_child:
        bare_child(Path(args.bare_child[0]), Path(args.bare_child[1]), args.threads, args.warmup, args.runs)
        return 0
    args.rounds = args.rounds or (2 if args.quick else 5)
    seconds = args.seconds or (0.15 if args.quick else 1.0)
    warmup_s = 0.05 if args.quick else 0.3
    models = args.models or list(QUICK_MODELS if args.quick else DEFAULT_MODELS)
    sys.path.insert(0, str(REPO))
    start = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"exporting {len(models)} model(s) (artifact cache)...", file=sys.stderr, flush=True)
    files = export_models(models, args.formats)
    peer = peer_tool_path()
    rows: list[Row] = []
    loads: list[float] = []
    for model in files:
        warmup, runs = plan_counts(model.probe, args.threads, seconds, warmup_s, args.quick)
        print(f"{model.label}: W={warmup} N={runs}", file=sys.stderr, flush=True)
        rows.extend(run_rounds(model, args.rounds, args.threads, warmup, runs, peer, loads))
    facts = {**machine_facts(), "date": date, "elapsed_s": time.perf_counter() - start}
    print_report(rows, facts, args, loads)
    if args.json is not None:
        doc = {
            "facts": facts,
            "threads": args.threads,
            "rounds": args.rounds,
            "rows": [
                {
                    "model": row.label,
                    "format": row.fmt,
                    "warmup": row.warmup,
                    "runs": row.runs,
                    "cells": {tool: [asdict(c) for c in cells] for tool, cells in row.cells.items()},
                }
                for row in rows
            ],
            "loadavg_1min": loads,
        }
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
