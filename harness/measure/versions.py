"""Which runtime version and runner version will measure a point on a device, read from the device's facts.

Both are part of a point's key (:func:`harness.store.point_key`), so a rerun after an upgrade measures anew.
flopgap's runner reports the versions of the runtimes it can import and its own ``RUNNER_VERSION``; a device
that runs an official benchmark binary (adb) reports no runtime version, and the binary's name and sha256 stand
for the runner version.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.facts import DeviceFacts
from devices.vocabulary import Runtime

# The modules the runner imports for each runtime, in the order it tries them (devices/runner.py).
RUNTIME_MODULES: dict[Runtime, tuple[str, ...]] = {
    Runtime.ONNXRUNTIME: ("onnxruntime",),
    Runtime.LITERT: ("ai_edge_litert", "tflite_runtime"),
    Runtime.LITERT_BUILTIN: ("ai_edge_litert", "tflite_runtime"),
    Runtime.EXECUTORCH: ("executorch",),
}


@dataclass(frozen=True)
class PointVersions:
    runtime_version: str | None
    runner_version: str | None


def point_versions(runtime: Runtime, facts: DeviceFacts) -> PointVersions:
    """The versions a trial of ``runtime`` on the device with these facts will report (None where unknown)."""
    binary_sha = facts.get("runner_sha256")
    if binary_sha:
        return PointVersions(None, f"{facts.get('runner') or 'binary'}@{binary_sha[:12]}")
    installed = facts.get("runtimes") or {}
    version = next((installed[m] for m in RUNTIME_MODULES[runtime] if installed.get(m)), None)
    return PointVersions(version, facts.get("runner_version"))
