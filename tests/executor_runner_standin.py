#!/usr/bin/env python3
"""A stand-in for ExecuTorch's ``executor_runner`` (``examples/portable/executor_runner``), for tests on the fake phone.

It takes the real binary's flags the way gflags does (``--name=value``; an unknown flag is an error), really runs
the program ``--num_executions`` times with this machine's ExecuTorch (the Python runtime, XNNPACK linked in, inputs
all ones as the binary sets them), writes the real ETDump that runtime's event tracer recorded to ``--etdump_path``
and logs the binary's summary line in ExecuTorch's log format. Only the process around the runtime is a stand-in.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

# The binary's flags and defaults (executor_runner.cpp, built with ET_EVENT_TRACER_ENABLED and the threadpool).
FLAGS = {"model_path": "model.pte", "num_executions": "1", "etdump_path": "model.etdump", "cpu_threads": "-1"}
# ExecuTorch ScalarType codes of the input dtypes the zoo's programs take.
DTYPES = {6: "float32", 5: "float16", 3: "int32", 4: "int64", 1: "int8", 0: "uint8"}


def log(level: str, line: int, message: str) -> None:
    """One line as ExecuTorch's default platform layer prints it (``et_pal_emit_log_message``)."""
    us = time.monotonic_ns() // 1000
    stamp = f"{us // 3_600_000_000:02d}:{us // 60_000_000 % 60:02d}:{us // 1_000_000 % 60:02d}.{us % 1_000_000:06d}"
    print(f"{level} {stamp} executorch:executor_runner.cpp:{line}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    flags = dict(FLAGS)
    for arg in argv:
        name, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep or name not in flags:
            print(f"ERROR: unknown command line flag '{name}'", file=sys.stderr)
            return 1
        flags[name] = value

    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime, Verification

    threads = int(flags["cpu_threads"])
    if threads > 0:
        log("I", 540, f"Resetting threadpool with num threads = {threads}")
        portable_lib._unsafe_reset_threadpool(threads)
    path = Path(flags["model_path"])
    program = Runtime.get().load_program(path, verification=Verification.Minimal, enable_etdump=True)
    log("I", 690, f"Model file {path} is loaded.")
    method = program.load_method("forward")
    assert method is not None
    meta = method.metadata
    shapes = [meta.input_tensor_meta(i) for i in range(meta.num_inputs())]
    inputs = [torch.ones(tuple(t.sizes()), dtype=getattr(torch, DTYPES[t.dtype()])) for t in shapes]
    log("I", 760, "Method loaded.")
    spent = 0
    for _ in range(int(flags["num_executions"])):
        t0 = time.perf_counter_ns()
        method.execute(inputs)
        spent += time.perf_counter_ns() - t0
    log("I", 830, f"Model executed successfully {flags['num_executions']} time(s) in {spent / 1e6:f} ms.")
    etdump = flags["etdump_path"]
    program.write_etdump_result_to_file(etdump, etdump + ".debug")
    Path(etdump + ".debug").unlink(missing_ok=True)
    log("I", 250, f"ETDump written to file '{etdump}'.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
