"""A lab device as a driver sees it: a :class:`~devices.base.Device` whose calls go to its device actor.

The sweep, ``run`` and ``profile`` take it as they take a local device: ``measure`` sends the artifact's bytes
through Ray's object store (once per artifact and driver) and the actor measures them on its own host; ``facts``
and the device's state (for a thermal cooldown) come from that host too. A host that dies or leaves turns into
:class:`~devices.errors.DeviceUnreachable` naming the host, so the sweep fails only that device's points.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from devices.arm_cores import ClusterName
from devices.base import Backend, Device, Machine, ShellReturn, Transport, TrialRequest
from devices.core.errors import FlopgapError
from devices.errors import DeviceError, DeviceUnreachable, TrialFailed
from devices.facts import DeviceFacts, DeviceState, parse_facts
from devices.result import TrialResult
from devices.vocabulary import Format, RunnerKind, TransportKind
from harness.lab.device_actor import ArtifactBlob
from harness.lab.registry import DeviceEntry


class ActorCall:
    """Calls to one device actor, each turned into flopgap's own errors: the actor's error as it raised it, a dead
    host as :class:`DeviceUnreachable` naming the host."""

    def __init__(self, ray: ModuleType, actor: Any, entry: DeviceEntry) -> None:
        self.ray = ray
        self.actor = actor
        self.entry = entry

    def __call__(self, method: str, *args: Any) -> Any:
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return self.ray.get(getattr(self.actor, method).remote(*args))
        except RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, FlopgapError):
                raise cause from None
            raise TrialFailed(f"device '{self.entry.name}' on host '{self.entry.host}': {_first_line(cause)}") from None
        except RayActorError as exc:
            raise DeviceUnreachable(
                f"device '{self.entry.name}': its host '{self.entry.host}' left the lab or died "
                f"({_first_line(exc)}); join it again, then rerun to resume"
            ) from None


class LabTransport:
    """The transport seen from the driver: facts and state come from the device's host; files move only through
    the lab (the actor's own transport pushes them there), so the file calls refuse in one line."""

    def __init__(self, call: ActorCall) -> None:
        self.name = call.entry.name
        self.kind = TransportKind(call.entry.transport)
        self._call = call

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        done: ShellReturn = self._call("transport_call", "run", argv, timeout)
        return done

    def push(self, local: Path, executable: bool = False) -> str:
        raise self._elsewhere("push")

    def pull(self, remote: str, local: Path) -> Path:
        raise self._elsewhere("pull")

    def fingerprint(self, remote: str) -> tuple[str, str] | None:
        found = self._call("transport_call", "fingerprint", remote)
        return None if found is None else (str(found[0]), str(found[1]))

    def scratch(self, name: str) -> str:
        raise self._elsewhere("scratch")

    def machine(self) -> Machine:
        machine: Machine = self._call("transport_call", "machine")
        return machine

    def facts(self) -> DeviceFacts:
        return parse_facts(self._call("transport_call", "facts"))  # typed again on this side of the object store

    def state(self) -> DeviceState:
        return cast(DeviceState, dict(self._call("transport_call", "state")))

    def cleanup(self) -> None:
        """Nothing: the actor owns the device's session, shared by every driver (``lab leave`` cleans it)."""

    def close(self) -> None:
        """Nothing: the actor keeps its connection for the next driver."""

    @contextlib.contextmanager
    def lock(self, on_wait: Callable[[str], None]) -> Iterator[list[str]]:
        raise self._elsewhere("lock")
        yield []  # pragma: no cover  (a generator for contextmanager)

    def _elsewhere(self, what: str) -> DeviceError:
        return DeviceError(
            f"device '{self.name}' is on lab host '{self._call.entry.host}': its device actor does the {what} there"
        )


class LabBackend:
    """The device's runner as the driver sees it: its kind, and what it profiles (asked of the actor)."""

    def __init__(self, call: ActorCall) -> None:
        self.kind = RunnerKind(call.entry.runner)
        self._call = call

    def prepare(self, transport: Transport) -> str:
        return str(self._call("prepare"))

    def measure(self, transport: Transport, model: str, request: TrialRequest) -> TrialResult:
        raise DeviceError(f"device '{self._call.entry.name}': a lab device measures a local file (LabDevice.measure)")

    def facts(self, transport: Transport) -> DeviceFacts:
        return DeviceFacts()  # LabDevice.facts asks the actor for the whole device's facts

    def profiles_ops(self, fmt: Format) -> bool:
        return bool(self._call("profiles_ops", fmt))

    def forget(self) -> None:
        """Nothing to forget on the driver."""


class LabDevice(Device):
    """One device of the lab, measured by its actor on its own host."""

    def __init__(self, call: ActorCall, blobs: BlobShelf, who: str) -> None:
        transport: Transport = LabTransport(call)
        backend: Backend = LabBackend(call)
        cluster = ClusterName(call.entry.cluster) if call.entry.cluster else None
        super().__init__(call.entry.name, transport, backend, cluster=cluster)
        self.host = call.entry.host
        self._call = call
        self._blobs = blobs
        self._who = who

    def facts(self) -> DeviceFacts:
        self._facts = parse_facts(self._call("facts"))
        return DeviceFacts(**self._facts)

    def measure(self, artifact: Path, request: TrialRequest, sha256: str | None = None) -> TrialResult:
        """One trial on the device's host; the actor checks the bytes against ``sha256`` right before it."""
        if request.affinity is None and self.cluster is not None:
            from dataclasses import replace

            request = replace(request, affinity=self.cluster_cpus())
        blob = self._blobs.ref(Path(artifact), sha256)
        result: TrialResult = self._call("measure", blob, request, self._who)
        return result

    def cleanup(self) -> None:
        """Nothing on the driver: what the actor pushed serves every driver until its host leaves."""

    def close(self) -> None:
        """Nothing on the driver (see :meth:`cleanup`)."""


class BlobShelf:
    """Each artifact in Ray's object store once per driver: by the export task's own result where a task exported
    it (its bytes never pass through the driver), else put from the local file."""

    def __init__(self, ray: ModuleType) -> None:
        self._ray = ray
        self._refs: dict[tuple[str, str | None], Any] = {}
        self._exported: dict[str, Any] = {}  # sha256 -> the export task's blob

    def exported(self, sha256: str, ref: Any) -> None:
        self._exported[sha256] = ref

    def ref(self, path: Path, sha256: str | None) -> Any:
        if sha256 is not None and sha256 in self._exported:
            return self._exported[sha256]
        key = (str(path.resolve()), sha256)
        if key not in self._refs:
            # The export's sha256 travels with the bytes; the device's host checks them against it before measuring.
            self._refs[key] = self._ray.put(ArtifactBlob(path.name, sha256 or "", path.read_bytes()))
        return self._refs[key]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
