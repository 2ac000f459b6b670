"""When not to trust a prediction: kernels no probe of their type covers, shapes outside the probed ranges, a
calibration that would go to zero, and an interval from the training models' spread.

A kernel whose type had too few measured rows is priced by its group's model (compute or memory) or by the
fallback over every row; one whose channels, resolution, kernel size, stride or groups lie outside what its type
was trained on is extrapolated. Both are said, naming the kernels, instead of being priced silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.predict.kernels import Kernel, KernelType

# The shape fields whose training range a kernel is checked against, per kernel type.
RANGE_FIELDS: tuple[str, ...] = ("cin", "cout", "h_in", "w_in", "kernel_size", "stride", "groups")
INTERVAL_QUANTILES = (0.05, 0.95)  # the middle 90% of the training models' errors
MIN_INTERVAL_MODELS = 5  # fewer training models: no interval (a spread of three says nothing)


@dataclass(frozen=True)
class Caveat:
    """One reason not to trust part of a prediction: the kernel it concerns (its runtime name) and why."""

    kernel: str
    kernel_type: str
    reason: str


def training_ranges(kernels: Sequence[Kernel]) -> dict[str, dict[str, list[int]]]:
    """Per kernel type, ``[min, max]`` of each :data:`RANGE_FIELDS` field over the training kernels."""
    by_type: dict[str, list[Kernel]] = {}
    for k in kernels:
        by_type.setdefault(k.type.value, []).append(k)
    return {
        kind: {f: [min(int(getattr(k, f)) for k in group), max(int(getattr(k, f)) for k in group)]
               for f in RANGE_FIELDS}
        for kind, group in by_type.items()
    }  # fmt: skip


def model_errors(predicted_us: Sequence[float], measured_us: Sequence[float]) -> list[float]:
    """Relative errors ``predicted / measured - 1`` of the training models (after calibration)."""
    return [float(p) / float(m) - 1 for p, m in zip(predicted_us, measured_us, strict=True) if m > 0]


def interval_ms(total_ms: float, summary: Mapping[str, Any]) -> tuple[float, float] | None:
    """Where the measured latency is expected, from the training models' errors (in-sample, so a lower bound on
    the true spread): ``total / (1 + e)`` for the 5th and 95th percentile error ``e``. None without enough models."""
    errors = summary.get("calibration_errors") or []
    if len(errors) < MIN_INTERVAL_MODELS:
        return None
    lo_err, hi_err = (float(q) for q in np.quantile(np.asarray(errors, dtype=float), INTERVAL_QUANTILES))
    return total_ms / (1 + hi_err), total_ms / (1 + lo_err)


def caveats(
    kernels: Sequence[Kernel],
    source: Mapping[int, str],
    ranges: Mapping[str, Mapping[str, Sequence[int]]] | None,
) -> list[Caveat]:
    """Every kernel priced by a model other than its type's (``source[i]`` is ``type``, ``variant``, ``group
    NAME`` or ``fallback``) and every shape field outside its type's training range (``ranges`` as
    :func:`training_ranges` gives; None for a predictor stored before ranges were, which is checked for coverage
    only)."""
    found = []
    for i, k in enumerate(kernels):
        how = source[i]
        if k.type is KernelType.OTHER:
            found.append(Caveat(k.name, k.type.value, f"op {k.op_type} has no kernel type of its own and no probe: "
                                f"priced from its bytes moved by the {how} model"))  # fmt: skip
            continue
        if how.startswith("group") or how == "fallback":
            by = f"its group's ({how.split()[-1]}) model" if how.startswith("group") else "the fallback model"
            found.append(Caveat(k.name, k.type.value, f"no probe of type {k.type.value} ({k.op_type}): priced by {by}"))
            continue
        if ranges is None:
            continue
        bounds = ranges.get(k.type.value)
        if not bounds:
            continue
        outside = [
            f"{f} {getattr(k, f)} outside {lo}–{hi}"
            for f, (lo, hi) in ((f, bounds[f]) for f in RANGE_FIELDS if f in bounds)
            if not lo <= int(getattr(k, f)) <= hi
        ]
        if outside:
            found.append(Caveat(k.name, k.type.value, "shape outside the probed range: " + ", ".join(outside)))
    return found
