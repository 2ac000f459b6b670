"""What to run to fill each kind of data, said wherever a table or figure has nothing to show."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.analysis.context import Context

HOW_TO: dict[str, str] = {
    "points": "no measured points: run 'flopgap sweep SPEC.toml'",
    "fit": "fewer than two models with MACs in any context: sweep more models ('flopgap sweep SPEC.toml')",
    "op_profiles": "no op profiles: run 'flopgap profile MODEL --device DEVICE --runtime RUNTIME --threads N'",
    "accounts": "no graph accounts (per-op FLOPs) for the profiled artifacts: keep their files under the "
    "artifact cache, or re-export them with 'flopgap export MODEL'",
    "calibrations": "no roofline calibration: run 'flopgap calibrate --device DEVICE --runtime RUNTIME --threads N'",
    "runtimes": "no model measured on two runtimes or more: sweep with runtimes = "
    '["onnxruntime", "litert", "executorch"] and profile = true',
    "guidelines": "no guideline experiments: sweep the guideline_g1..guideline_g4 blocks "
    "(e.g. 'flopgap sweep' with models = ['guideline_g*'])",
}


def profile_command(context: Context, model: str, params: Mapping[str, Any] | str | None = None) -> str:
    """The ``flopgap profile`` command line that fills the op profile of one model in one context."""
    values = json.loads(params) if isinstance(params, str) else dict(params or {})
    flags = "".join(f" -p {k}={v}" for k, v in sorted(values.items()))
    return (
        f"flopgap profile {model}{flags} --device {context.device} --runtime {context.runtime} "
        f"--threads {context.threads} --precision {context.precision}"
    )


def calibrate_command(context: Context) -> str:
    """The ``flopgap calibrate`` command line for the roofline of one context."""
    return f"flopgap calibrate --device {context.device} --runtime {context.runtime} --threads {context.threads}"
