"""The device actor: owns one device of its host (transport + backend) and runs one trial at a time.

Its calls run on a few threads so that ``status`` answers while a trial runs; the trials themselves queue on one
lock (in arrival order) and hold the device lock while they measure, as a local sweep does. Artifacts arrive as
bytes through Ray's object store and are kept under their sha256 on this host; the device checks that hash again
right before the trial.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.base import TrialRequest
from devices.core.errors import FlopgapError
from devices.errors import DeviceError
from devices.inventory import DeviceConfig, open_device
from devices.result import TrialResult
from devices.vocabulary import Format

READABLE = frozenset({"run", "fingerprint", "machine", "facts", "state"})  # transport calls a driver may make


@dataclass(frozen=True)
class ArtifactBlob:
    """An artifact as it travels to a device's host: its file name, the export's sha256, and its bytes."""

    name: str
    sha256: str
    data: bytes


@dataclass(frozen=True)
class DeviceStatus:
    """What ``lab status`` shows of one device."""

    name: str
    host: str
    measuring: str | None  # the artifact in the trial now running
    for_whom: str | None  # the driver that asked for it (user@host)
    queued: int  # trials waiting behind it
    trials_done: int
    problem: str | None  # the device's last failure that made it unusable (unplugged, unreachable)


class DeviceActor:
    """One device, owned by the actor that runs on the node of the host it hangs off."""

    def __init__(self, config: DeviceConfig, host: str, cache_dir: str) -> None:
        self._device = open_device(config)
        self._host = host
        self._cache = Path(cache_dir)
        self._trial = threading.Lock()  # one trial at a time, whoever asks
        self._books = threading.Lock()  # guards the fields status() reads
        self._queued = 0
        self._running: tuple[str, str] | None = None
        self._done = 0
        self._problem: str | None = None

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def facts(self) -> dict[str, Any]:
        with self._trial:  # facts read a device that may be mid-trial: wait for the trial
            try:
                facts = self._device.facts()
            except FlopgapError as exc:
                self._problem = str(exc)
                raise
            self._problem = None
            return dict(facts)

    def measure(self, blob: ArtifactBlob, request: TrialRequest, who: str) -> TrialResult:
        """One trial of ``blob`` on this device; raises the device's own error (a FlopgapError) if it fails."""
        path = self._keep(blob)
        with self._books:
            self._queued += 1
        try:
            with self._trial:
                with self._books:
                    self._queued -= 1
                    self._running = (blob.name, who)
                try:
                    result = self._device.measure(path, request, sha256=blob.sha256 or None)
                except FlopgapError as exc:
                    self._problem = str(exc)
                    raise
                self._problem = None
                self._done += 1
                return result
        finally:
            with self._books:
                self._running = None

    def prepare(self) -> str:
        with self._trial:
            return self._device.prepare()

    def profiles_ops(self, fmt: Format) -> bool:
        return self._device.profiles_ops(fmt)

    def transport_call(self, method: str, *args: Any) -> Any:
        """What a driver reads of the device's transport (``state`` for a thermal cooldown, ``facts``...)."""
        if method not in READABLE:
            raise DeviceError(f"device '{self._device.name}': a driver cannot call '{method}' through the lab")
        with self._trial:  # never between a trial's commands
            return getattr(self._device.transport, method)(*args)

    def status(self) -> DeviceStatus:
        with self._books:
            running = self._running
            return DeviceStatus(
                self._device.name,
                self._host,
                running[0] if running else None,
                running[1] if running else None,
                self._queued,
                self._done,
                self._problem,
            )

    def close(self) -> None:
        """Remove what this actor pushed to the device (before the actor is killed)."""
        with self._trial:
            self._device.cleanup()
            self._device.close()

    def _keep(self, blob: ArtifactBlob) -> Path:
        """The artifact as a file on this host, named by the sha256 of the bytes that arrived (a torn copy cannot
        pass for a good one: the device checks that name against the export's hash before measuring)."""
        digest = hashlib.sha256(blob.data).hexdigest()
        path = self._cache / f"{digest}{Path(blob.name).suffix}"
        if not path.exists():
            self._cache.mkdir(parents=True, exist_ok=True)
            # One part file per call: the actor serves several drivers at once on threads of one process, and two
            # of them may keep the same artifact together (a pid-named part was renamed away under the other).
            fd, name = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".part", dir=self._cache)
            with os.fdopen(fd, "wb") as out:
                out.write(blob.data)
            Path(name).replace(path)
        return path
