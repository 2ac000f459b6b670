"""ShuffleNetV2's guideline experiments (G1-G4) at matched FLOPs: each variant's latency against the paper's
expected direction, and whether a device agrees."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.analysis.context import CONTEXT
from harness.analysis.results import Results


@dataclass(frozen=True)
class Guideline:
    """One ShuffleNetV2 guideline experiment: its registered block, the parameters that pick the variant, the
    paper's expected direction, and how a set of measured variants is checked against it."""

    experiment: str
    model: str
    variant_params: tuple[str, ...]
    expected: str
    order: Callable[[Mapping[str, Any]], float]
    agrees: Callable[[dict[str, float]], bool | None]  # variant label -> median ms


def _ratio(p: Mapping[str, Any]) -> float:
    left, right = str(p["ratio"]).split(":")
    return float(right) / float(left)


def _fragments(p: Mapping[str, Any]) -> float:
    """The paper's order: 1 fragment, then 2 and 4 in series, then 2 and 4 in parallel."""
    variant = str(p["variant"])
    return int(variant[0]) + (10.0 if variant.endswith("parallel") else 0.0)


def _increasing(latencies: list[float]) -> bool | None:
    if len(latencies) < 2:
        return None
    return all(a < b for a, b in itertools.pairwise(latencies))


def _g1_agrees(lat: dict[str, float]) -> bool | None:
    if "ratio=1:1" not in lat or len(lat) < 2:
        return None
    return min(lat, key=lambda k: lat[k]) == "ratio=1:1"


def _g2_agrees(lat: dict[str, float]) -> bool | None:
    ordered = sorted(lat, key=lambda k: int(k.split("=")[1]))
    return _increasing([lat[k] for k in ordered])


def _g3_agrees(lat: dict[str, float]) -> bool | None:
    verdicts = []
    for kind in ("series", "parallel"):
        chain = [
            k for k in ("variant=1-fragment", f"variant=2-fragment-{kind}", f"variant=4-fragment-{kind}") if k in lat
        ]
        verdict = _increasing([lat[k] for k in chain])
        if verdict is not None:
            verdicts.append(verdict)
    return all(verdicts) if verdicts else None


def _g4_ops(label: str) -> frozenset[str]:
    values = dict(part.split("=") for part in label.split(","))
    return frozenset(name for name in ("relu", "shortcut") if values.get(name) == "True")


def _g4_agrees(lat: dict[str, float]) -> bool | None:
    # Any variant whose element-wise ops are a strict subset of another's should be faster than it.
    pairs = [(a, b) for a in lat for b in lat if _g4_ops(a) < _g4_ops(b)]
    if not pairs:
        return None
    return all(lat[a] < lat[b] for a, b in pairs)


GUIDELINES: tuple[Guideline, ...] = (
    Guideline("G1", "guideline_g1", ("ratio",), "equal widths (1:1) fastest", _ratio, _g1_agrees),
    Guideline(
        "G2", "guideline_g2", ("groups",), "latency grows with groups g", lambda p: float(p["groups"]), _g2_agrees
    ),
    Guideline(
        "G3",
        "guideline_g3",
        ("variant",),
        "more fragments slower (1 < 2 < 4, in series and in parallel)",
        _fragments,
        _g3_agrees,
    ),
    Guideline(
        "G4",
        "guideline_g4",
        ("relu", "shortcut"),
        "removing ReLU and shortcut faster",
        lambda p: (not p["relu"]) + 2 * (not p["shortcut"]),  # both on (the reference), no ReLU, no shortcut, none
        _g4_agrees,
    ),
)

GUIDELINE_COLUMNS = (
    "experiment",
    *CONTEXT,
    "runtime_version",
    "setup",
    "variant",
    "input_shape",
    "macs",
    "median_ms",
    "ci_low_ms",
    "ci_high_ms",
    "relative",
    "expected",
    "agrees",
)


def _params(text: Any) -> dict[str, Any]:
    return json.loads(text) if isinstance(text, str) else {}


def guidelines(results: Results) -> pd.DataFrame:
    """Measured latency of each guideline variant next to the paper's expected direction.

    Rows are grouped by experiment, context and ``setup`` (the parameters that are not the variant: setting,
    width, channels). ``relative`` is the latency over the setup's first (reference) variant; ``agrees`` says
    whether this device shows the paper's direction for that setup (``None`` with fewer than two variants).
    """
    pts = results.points
    rows: list[dict[str, Any]] = []
    for g in GUIDELINES:
        sel = pts[pts["model"] == g.model]
        for record in sel.to_dict("records"):
            params = _params(record["params"])
            if not all(p in params for p in g.variant_params):
                continue
            rows.append(
                {
                    "experiment": g.experiment,
                    **{c: record[c] for c in CONTEXT},
                    "runtime_version": record["runtime_version"],
                    "setup": ",".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in g.variant_params),
                    "variant": ",".join(f"{k}={params[k]}" for k in g.variant_params),
                    "_order": g.order(params),
                    "input_shape": record["input_shape"],
                    "macs": record["macs"],
                    "median_ms": record["median_ms"],
                    "ci_low_ms": record["ci_low_ms"],
                    "ci_high_ms": record["ci_high_ms"],
                    "expected": g.expected,
                }
            )
    if not rows:
        return pd.DataFrame(columns=list(GUIDELINE_COLUMNS))
    frame = pd.DataFrame(rows).sort_values(["experiment", *CONTEXT, "setup", "_order"], kind="stable")
    by_experiment = {g.experiment: g for g in GUIDELINES}
    keys = ["experiment", *CONTEXT, "setup"]
    frame["relative"] = frame["median_ms"] / frame.groupby(keys)["median_ms"].transform("first")
    verdicts = {
        key: by_experiment[key[0]].agrees(dict(zip(group["variant"], group["median_ms"], strict=True)))
        for key, group in frame.groupby(keys, sort=False)
    }
    frame["agrees"] = [verdicts[tuple(k)] for k in frame[keys].itertuples(index=False)]
    frame["agrees"] = frame["agrees"].astype("object")
    return frame.reset_index(drop=True)[list(GUIDELINE_COLUMNS)]


def guideline_verdicts(results: Results, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per experiment, context and setup: the expected direction and whether this device agrees."""
    frame = guidelines(results) if frame is None else frame
    keys = ["experiment", *CONTEXT, "setup"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "runtime_version", "variants", "fastest", "expected", "agrees"])
    return frame.groupby(keys, as_index=False, sort=False).agg(
        runtime_version=("runtime_version", "first"),
        variants=("variant", "count"),
        fastest=("variant", lambda v: v.loc[frame.loc[v.index, "median_ms"].idxmin()]),
        expected=("expected", "first"),
        agrees=("agrees", "first"),
    )
