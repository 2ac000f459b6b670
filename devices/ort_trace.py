"""ONNX Runtime's profile (the chrome-trace JSON of ``SessionOptions.enable_profiling`` and of
``onnxruntime_perf_test -p``) read into per-node kernel times."""

from __future__ import annotations

from dataclasses import dataclass

from devices.parsers import ParseError, json_document


@dataclass(frozen=True)
class OrtNodeTime:
    """One node of an ONNX Runtime profile: mean and median kernel time (us) over ``calls`` runs."""

    name: str
    op_type: str
    provider: str | None
    mean_us: float
    median_us: float
    calls: int


def parse_ort_trace(text: str, skip_first: int = 1) -> list[OrtNodeTime]:
    """Per-node kernel times from an ONNX Runtime profile (the chrome-trace JSON that ``onnxruntime_perf_test -p``
    writes, the same format as ``SessionOptions.enable_profiling``), in execution order.

    The mean and median are over each node's calls after its first ``skip_first`` (perf_test's warm-up run).
    The reading is the runner's own (:func:`devices.runner.parse_ort_profile`), so a phone's profile and a local one
    are the same rows.
    """
    from devices.runner import parse_ort_profile

    events = json_document(text, "ONNX Runtime profile", list, "a list of trace events")
    rows = parse_ort_profile(events, skip_first=skip_first)
    if not rows:
        raise ParseError("ONNX Runtime profile has no node kernel times (was the session profiled?)")
    return [OrtNodeTime(r["name"], r["op_type"], r["provider"], r["time_us"], r["median_us"], r["calls"]) for r in rows]
