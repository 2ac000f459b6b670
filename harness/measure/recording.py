"""What a sweep records before it measures: which machine each device is, and the store points it will fill.

Each device's facts go to the store, which keeps another machine behind the same inventory name apart (its points
use the stored name, e.g. ``local@1a2b3c4d``) and an unreachable device's last good facts; each point is keyed
with the runtime and runner versions the device reports, so an upgrade re-measures.
"""

from __future__ import annotations

from typing import Protocol

from devices.base import Device
from devices.errors import DeviceError
from devices.facts import DeviceFacts
from devices.vocabulary import Format, PointOptions
from exporters.artifact import Artifact
from harness.measure.spec import Protocol as SweepProtocol
from harness.measure.spec import SweepPoint
from harness.measure.versions import PointVersions
from harness.store import Store
from harness.store.identity import describe


class _Warns(Protocol):
    def point_failed(self, point: SweepPoint, reason: str) -> None: ...


def record_devices(
    store: Store, names: list[str], devices: dict[str, Device], rep: _Warns
) -> tuple[dict[str, str], dict[str, DeviceFacts]]:
    """Each device's facts into the store (an unreachable one keeps its last good facts); returns the stored
    device name of each (another machine behind a name is stored apart) and the facts read now."""
    stored: dict[str, str] = {}
    facts: dict[str, DeviceFacts] = {}
    for name in names:
        dev = devices[name]
        try:
            facts[name] = dev.facts()
        except DeviceError as exc:
            facts[name] = {}
            stored[name] = store.record_device_error(name, dev.transport.kind, str(exc)).name
            continue
        record = store.record_device(name, dev.transport.kind, facts[name])
        stored[name] = record.name
        warn = getattr(rep, "warning", None)
        if record.replaced is not None and warn is not None:
            warn(
                f"device '{name}' ({describe(facts[name])}) is not known to be the machine whose results are "
                f"stored as '{record.replaced}'; its results are stored apart, as '{record.name}'"
            )
    return stored, facts


def ort_key(protocol: SweepProtocol) -> PointOptions:
    """The ORT settings that differ from their defaults: part of an ONNX Runtime point's key, so a changed setting
    is measured anew while points measured at the defaults keep the keys they always had."""
    defaults = type(protocol).model_fields
    options: PointOptions = {}
    if protocol.ort_allow_spinning != defaults["ort_allow_spinning"].default:
        options["ort_allow_spinning"] = protocol.ort_allow_spinning
    if protocol.ort_graph_optimization != defaults["ort_graph_optimization"].default:
        options["ort_graph_optimization"] = protocol.ort_graph_optimization
    if protocol.ort_execution_mode != defaults["ort_execution_mode"].default:
        options["ort_execution_mode"] = protocol.ort_execution_mode
    return options


def ensure_point(
    store: Store,
    run_id: int,
    p: SweepPoint,
    art: Artifact | None,
    device: str,
    versions: PointVersions,
    protocol: SweepProtocol,
) -> int:
    """The store's point of ``p`` on the stored device, keyed with the versions that will measure it and, for ONNX
    models, the ORT settings that differ from their defaults; a point whose export failed is keyed by a placeholder
    instead of the artifact's sha256."""
    sha = art.sha256 if art else f"unexported:{p.model.label}:{p.format}:{p.precision}"
    runtime, threads = p.runtime, p.threads
    options = p.options | ort_key(protocol) if p.format is Format.ONNX else p.options
    return store.ensure_point(
        run_id, sha, device, runtime, threads, options, versions.runtime_version,
        runner_version=versions.runner_version,
    )  # fmt: skip
