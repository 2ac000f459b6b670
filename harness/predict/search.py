"""Search by latency: every configuration of a grid ranked by predicted latency, with MACs beside.

The use nn-Meter serves in architecture search: a zoo model's parameters or a factory's keyword arguments, each
given as ``key=v1,v2,...``, expand into their product; each configuration is exported (cached), its kernels
extracted (cached) and predicted, so a grid already seen once is ranked without touching torch's exporter again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devices.core.errors import FlopgapError


@dataclass(frozen=True)
class Candidate:
    """One configuration of the grid, predicted."""

    label: str
    config: dict[str, str]
    predicted_ms: float
    macs: int | None
    kernels: int
    within_budget: bool | None  # None: no budget given


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["alpha=0.5,0.75", "resolution=160,224"]`` -> ``{"alpha": ["0.5", "0.75"], "resolution": [...]}``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not choices:
            raise FlopgapError(f"--grid '{item}' is not key=v1,v2,...; write e.g. --grid alpha=0.5,0.75,1.0")
        if key in grid:
            raise FlopgapError(f"--grid names '{key}' twice; give all its values in one --grid {key}=v1,v2")
        grid[key] = list(dict.fromkeys(choices))
    return grid


def configurations(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """The product of the grid's values, in the order given."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def rank(
    configs: Sequence[dict[str, str]],
    predict_one: Callable[[dict[str, str]], tuple[str, float, int | None, int]],
    budget_ms: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Candidate]:
    """Predict every configuration (``predict_one`` returns label, predicted ms, MACs, kernel count) and sort them
    fastest first; with ``budget_ms``, each says whether it fits."""
    found = []
    for i, config in enumerate(configs):
        if progress is not None:
            progress(i, len(configs))
        label, ms, macs, kernels = predict_one(config)
        fits = None if budget_ms is None else ms <= budget_ms
        found.append(Candidate(label, config, ms, macs, kernels, fits))
    return sorted(found, key=lambda c: c.predicted_ms)
