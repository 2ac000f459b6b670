"""A stand-in for ``onnxruntime_perf_test``, run by the fake phone (tests/adb_endpoint.py) in place of the binary.

It really runs the model it is given with this machine's ONNX Runtime as flopgap's command line asks (``-I -m times
-r N -x T -e cpu -o LEVEL -C session.intra_op.allow_spinning|B [-p PREFIX] MODEL RESULT_FILE``): one warm-up run,
then N timed runs, one line each in the result file, the tool's summary on stdout and, with ``-p``, ONNX Runtime's
own per-node profile written where the real tool writes it (``PREFIX_<date>_<time>.json``, warm-up included). Paths
are the phone's: ``PHONE_ROOT`` says where its ``/`` lies.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

_LEVEL = ort.GraphOptimizationLevel
_LEVELS = {"0": _LEVEL.ORT_DISABLE_ALL, "1": _LEVEL.ORT_ENABLE_BASIC, "2": _LEVEL.ORT_ENABLE_EXTENDED,
           "99": _LEVEL.ORT_ENABLE_ALL}  # fmt: skip
_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64}


def _on_phone(path: str) -> str:
    return str(Path(os.environ["PHONE_ROOT"]) / path.lstrip("/"))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("-I", action="store_true")
    p.add_argument("-m", default="duration")
    p.add_argument("-r", type=int, default=1000)
    p.add_argument("-x", type=int, default=0)
    p.add_argument("-e", default="cpu")
    p.add_argument("-o", default="99")
    p.add_argument("-C", default="")
    p.add_argument("-P", action="store_true")
    p.add_argument("-p", default=None)
    p.add_argument("model")
    p.add_argument("result_file")
    a = p.parse_args(argv)
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.x
    options.graph_optimization_level = _LEVELS[a.o]
    for pair in filter(None, a.C.split(" ")):
        key, _, value = pair.partition("|")
        options.add_session_config_entry(key, value)
    if a.p is not None:
        options.enable_profiling = True
        options.profile_file_prefix = _on_phone(a.p)
    t0 = time.perf_counter()
    session = ort.InferenceSession(_on_phone(a.model), options, providers=["CPUExecutionProvider"])
    created = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal(i.shape).astype(_DTYPES[i.type]) for i in session.get_inputs()}
    t0 = time.perf_counter()
    session.run(None, feeds)
    first_ms = (time.perf_counter() - t0) * 1e3
    runs = []
    for _ in range(a.r):
        t0 = time.perf_counter()
        session.run(None, feeds)
        runs.append(time.perf_counter() - t0)
    if a.p is not None:
        session.end_profiling()
    name = Path(a.model).stem
    Path(_on_phone(a.result_file)).write_text("".join(f"{name},{s:.7f},1048576,100,{i}\n" for i, s in enumerate(runs)))
    q = np.percentile(runs, [50, 90, 95, 99, 99.9])
    print(f"Session creation time cost: {created:.6g} s")
    print(f"First inference time cost: {first_ms:.0f} ms")
    print(f"Total inference time cost: {sum(runs):.6g} s")
    print(f"Total inference requests: {len(runs)}")
    print(f"Average inference time cost: {statistics.fmean(runs) * 1e3:.6g} ms")
    print(f"Total inference run time: {sum(runs):.6g} s")
    print(f"Number of inferences per second: {len(runs) / sum(runs):.6g} ")
    print("Total CPU usage: 100 %")
    print("Peak working set size: 1048576 bytes")
    print(f"Min Latency: {min(runs):.6g} s")
    print(f"Max Latency: {max(runs):.6g} s")
    for label, value in zip(("P50", "P90", "P95", "P99", "P999"), q, strict=True):
        print(f"{label} Latency: {value:.6g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
