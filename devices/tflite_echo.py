"""Whether ``benchmark_model`` ran as it was told: its echo of its parameters against the flags it was given.

Old builds ignore flags they do not know, and a run stored as if it obeyed would be wrong without any sign of it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from devices.parsers import echoed_params

# The flags whose echo is checked, and the label benchmark_model echoes each under ("Num threads: [4]").
TFLITE_ECHOED = {
    "--num_runs": "Min num runs",
    "--num_threads": "Num threads",
    "--graph": "Graph",
    "--use_xnnpack": "Use xnnpack",
}
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:(.*)$", re.MULTILINE)


def _flag_value(value: str) -> str:
    """Bool flags are echoed as 1/0."""
    return {"true": "1", "false": "0"}.get(value.strip().lower(), value.strip())


def tflite_echo_mismatches(text: str, argv: Sequence[str]) -> list[str]:
    """Where ``benchmark_model``'s echo of its parameters disagrees with the flags it was given (``argv``).

    The tool echoes every flag given on its command line (``Num threads: [4]``); an old build that does not know a
    flag lists it under ``Unconsumed cmdline flags`` and runs without it, and one that silently ignores it echoes
    nothing for it. Each difference is one entry, e.g. ``--num_threads=2 but it echoed Num threads: [4]``.
    """
    params = echoed_params(text)
    unconsumed = {f.split("=", 1)[0] for m in _UNCONSUMED.finditer(text) for f in m.group(1).split()}
    problems = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        label = TFLITE_ECHOED.get(flag)
        if not sep or label is None:
            continue
        if flag in unconsumed:
            problems.append(f"{arg} was not understood (unconsumed flag)")
        elif label not in params:
            problems.append(f"{arg} but it echoed no '{label}'")
        elif _flag_value(params[label]) != _flag_value(value):
            problems.append(f"{arg} but it echoed {label}: [{params[label]}]")
    threads_used = params.get("#threads used for CPU inference")
    asked_threads = next((a.partition("=")[2] for a in argv if a.startswith("--num_threads=")), None)
    if threads_used is not None and asked_threads is not None and threads_used != asked_threads:
        problems.append(f"--num_threads={asked_threads} but it used {threads_used} threads for CPU inference")
    return problems
