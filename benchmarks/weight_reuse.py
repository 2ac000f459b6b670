"""Does a kernel's time inside a model depend on how long one run of the model lasts? The question behind the
predictor's cold-weight terms (``harness.predict.kernels.REUSE_STEPS_US``).

A 1280x1000 fully connected head (5.1 MB of fp32 weights, what MobileNetV2 ends in) behind a spacer whose length
sets the run: ``steps`` matrix products of a [16, 128] tensor by one shared 128x128 weight (64 KiB), each followed by a
tanh, so the spacer takes time but touches next to no memory; then a mean and a 128->1280 layer into the head. Each
model is exported to ONNX, run back to back in ONNX Runtime at 1 thread (all graph optimizations) with its profiler
on, and the head's node time taken as the median over the profiled runs; the run's own time is timed apart
(p10 and median of ``--runs`` runs without the profiler). ``--spacer bytes`` makes the spacer move memory instead
(element-wise ops on a tensor of ``--bytes-mib`` MiB), to tell eviction by time (other tenants of a shared cache)
from eviction by the model's own traffic. A benchmark: it prints a table, asserts nothing.

    python benchmarks/weight_reuse.py [--steps 0,10,25,50,100,200,400] [--runs 200] [--spacer time|bytes]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

HEAD_IN, HEAD_OUT = 1280, 1000


def spacer_model(steps: int, spacer: str, bytes_mib: float) -> tuple[object, tuple[int, ...]]:
    """The torch module and its input shape: ``steps`` spacer ops, then the head."""
    import torch
    from torch import nn

    class TimeSpacer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(128, 128) / 128**0.5)
            self.up = nn.Linear(128, HEAD_IN)
            self.head = nn.Linear(HEAD_IN, HEAD_OUT)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(steps):
                x = torch.tanh(x @ self.w)
            return self.head(self.up(x.mean(0, keepdim=True)))

    class BytesSpacer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.Linear(128, HEAD_IN)
            self.head = nn.Linear(HEAD_IN, HEAD_OUT)

        def forward(self, x: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
            for _ in range(steps):
                big = big * 0.5 + 0.25
            return self.head(self.up(x.mean(0, keepdim=True) + big.mean()))

    torch.manual_seed(0)
    if spacer == "time":
        return TimeSpacer().eval(), (16, 128)
    elements = int(bytes_mib * 2**20 / 4)
    return BytesSpacer().eval(), (16, 128, elements)


def export(steps: int, spacer: str, bytes_mib: float, path: Path) -> None:
    import torch

    model, shape = spacer_model(steps, spacer, bytes_mib)
    inputs = (torch.randn(*shape[:2]),) if spacer == "time" else (torch.randn(*shape[:2]), torch.randn(shape[2]))
    torch.onnx.export(model, inputs, str(path), dynamo=True, external_data=False, verbose=False)


def measure(path: Path, runs: int) -> dict[str, float]:
    """The run's p10 and median (µs, no profiler) and the head's median node time (µs, profiled runs)."""
    import onnxruntime as ort

    def session(profile: bool) -> ort.InferenceSession:
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if profile:
            so.enable_profiling = True
            so.profile_file_prefix = str(path.with_suffix(""))
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    plain = session(False)
    feeds = {i.name: rng.standard_normal([int(d) for d in i.shape]).astype(np.float32) for i in plain.get_inputs()}
    for _ in range(20):
        plain.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        plain.run(None, feeds)
        times.append((time.perf_counter_ns() - t0) / 1e3)
    profiled = session(True)
    for _ in range(20 + runs):
        profiled.run(None, feeds)
    trace = Path(profiled.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    head: dict[str, list[float]] = {}
    for e in events:
        args = e.get("args") or {}
        shapes = json.dumps(args.get("output_type_shape", ""))
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and f"{HEAD_OUT}" in shapes:
            head.setdefault(e["name"], []).append(float(e["dur"]))
    if not head:
        raise SystemExit(f"{path.name}: no node of the profile writes [1, {HEAD_OUT}]; ONNX Runtime renamed the head")
    name, durations = max(head.items(), key=lambda item: np.median(item[1][20:]))
    return {"p10_us": float(np.percentile(times, 10)), "median_us": float(np.median(times)),
            "head_us": float(np.median(durations[20:])), "head_node": name}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="0,10,25,50,100,200,400", help="spacer lengths, comma-separated")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per model (and as many profiled)")
    parser.add_argument("--spacer", choices=["time", "bytes"], default="time")
    parser.add_argument("--bytes-mib", type=float, default=4.0, help="the bytes spacer's tensor (MiB)")
    args = parser.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",") if s]
    except ValueError:
        parser.error(f"--steps {args.steps}: give whole numbers separated by commas, e.g. 0,10,100")
    flops = 2 * HEAD_IN * HEAD_OUT
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
          f"load average {os.getloadavg()[0]:.1f}; spacer: {args.spacer}")  # fmt: skip
    print("| spacer steps | run p10 (ms) | run median (ms) | head node (µs) | head ns per FLOP |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="flopgap-reuse-") as tmp:
        for n in steps:
            path = Path(tmp) / f"spacer{n}.onnx"
            export(n, args.spacer, args.bytes_mib, path)
            m = measure(path, args.runs)
            print(f"| {n} | {m['p10_us'] / 1e3:.3f} | {m['median_us'] / 1e3:.3f} | {m['head_us']:.1f} | "
                  f"{m['head_us'] * 1e3 / flops:.3f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
