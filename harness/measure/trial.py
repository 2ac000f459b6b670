"""One trial of one sweep point, as a device's backend is asked for it.

The device (``devices.base.Device``) runs the request with whatever measures there (flopgap's runner or an official
benchmark binary) and returns one typed ``devices.result.TrialResult``; this module only turns a sweep
:class:`~harness.measure.spec.Protocol` and a point's runtime options into that request.
"""

from __future__ import annotations

from devices.base import TrialRequest
from devices.vocabulary import PointOptions
from harness.measure.spec import Protocol


def trial_request(
    protocol: Protocol,
    threads: int,
    options: PointOptions | None = None,
    *,
    profile: bool = False,
    profile_runs: int | None = None,
    sustained: bool = False,
) -> TrialRequest:
    """The request for one trial at ``threads`` with a point's ``options`` (``{"xnnpack": False}``...); a point
    placed on a cluster (``{"cluster": "big", "cpus": [4, 5, 6, 7]}``) is pinned to its CPUs.

    ``sustained`` asks for the protocol's sustained run (a sweep's timed trials); profiles and calibration time
    normally whatever the protocol says.
    """
    cpus = (options or {}).get("cpus") or protocol.affinity
    duration = protocol.sustained if sustained else None
    return TrialRequest(
        threads=threads,
        warmup_runs=protocol.warmup_runs,
        warmup_seconds=protocol.warmup_seconds,
        runs=protocol.runs,
        min_seconds=protocol.min_seconds,
        max_runs=protocol.max_runs,
        xnnpack=(options or {}).get("xnnpack", True) is not False,
        affinity=tuple(cpus) if cpus else None,
        profile=profile,
        profile_runs=profile_runs,
        # A sustained trial runs for its duration by design; the timeout guards what comes on top of it.
        timeout_s=protocol.timeout_s + (duration or 0.0),
        sustained_s=duration,
        window_s=protocol.sustained_window,
        instances=protocol.instances,
        ort_allow_spinning=protocol.ort_allow_spinning,
        ort_graph_optimization=protocol.ort_graph_optimization,
        ort_execution_mode=protocol.ort_execution_mode,
    )
