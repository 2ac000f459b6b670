"""A stand-in device Python whose ONNX Runtime kernels take a fixed number of clock cycles, as a compute-bound
kernel does under frequency scaling: after each real run it sleeps ``CYCLES`` periods of cpu0's current clock
(``scaling_cur_freq``, read at every run). A test that lowers the (fake sysfs) frequency thereby makes the runner
slower by a known ratio on any machine, loaded or idle: halving the clock doubles the kernel's time.

Used as the device's ``python``: ``python tests/clocked_python.py RUNNER.py ARGS...`` runs the runner unchanged.
"""

from __future__ import annotations

import runpy
import sys
import time
from typing import Any

import onnxruntime

FREQ = "/sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq"
CYCLES = 12_000_000  # 5 ms at 2.4 GHz: far above the real kernel's time and a loaded machine's sleep overshoot


def _clocked(run: Any) -> Any:
    def run_with_iobinding(self: Any, binding: Any, run_options: Any = None) -> None:
        run(self, binding, run_options)
        with open(FREQ) as f:
            khz = int(f.read())
        time.sleep(CYCLES / (khz * 1000))

    return run_with_iobinding


onnxruntime.InferenceSession.run_with_iobinding = _clocked(onnxruntime.InferenceSession.run_with_iobinding)

if __name__ == "__main__":
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
