"""A driver in a lab: the sweep's devices as lab devices, and its exports as Ray tasks wherever CPUs are free.

Everything else is the local sweep's own loop (:func:`harness.measure.sweep.run_sweep`): the same points, the same
interleaving, resume and store. The driver alone writes its SQLite store; hosts only measure and export.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from devices.base import Device
from devices.core.digest import file_digest
from devices.core.errors import FlopgapError
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from exporters.cache import default_cache_dir
from harness.lab.device_actor import ArtifactBlob
from harness.lab.lab_device import ActorCall, BlobShelf, LabDevice
from harness.lab.membership import device_actor, driver_name, entries
from harness.lab.ray_session import connect, lab_address
from harness.sources import ModelRef
from harness.zoo import ModelSpec


@dataclass(frozen=True)
class LabDevices:
    """The sweep's devices in the lab, with each one's thread counts (its host's inventory) and the shelf of
    artifacts already in the object store."""

    devices: dict[str, Device]
    threads: dict[str, list[int]]
    shelf: BlobShelf


def open_lab(address: str | None) -> ModuleType:
    """Connect this driver to the lab at ``address`` (else $FLOPGAP_LAB): one line, exit 2, if it cannot."""
    return connect(lab_address(address))


def lab_devices(ray: ModuleType, names: list[str]) -> LabDevices:
    """The lab's devices ``names``; one line naming the lab's devices if one is not there."""
    known = {e.name: e for e in entries(ray)}
    shelf = BlobShelf(ray)
    who = driver_name()
    devices: dict[str, Device] = {}
    for name in names:
        actor = device_actor(ray, name)
        devices[name] = LabDevice(ActorCall(ray, actor, known[name]), shelf, who)
    return LabDevices(devices, {n: list(known[n].threads) for n in names}, shelf)


def _export_task(model: ModelSpec, fmt: Format, precision: Precision, parity: bool) -> tuple[Artifact, ArtifactBlob]:
    """One export on whichever node has a CPU free (its own artifact cache), returned with its bytes."""
    from harness.sources import source_artifact

    art = source_artifact(model, fmt, precision, check_parity=parity)
    return art, ArtifactBlob(art.path.name, art.sha256, art.path.read_bytes())


class LabExporter:
    """Zoo models export as Ray tasks, all at once (:meth:`start`), one CPU each; the sweep then takes them in its
    own order. Files and torch factories live on the driver's disk and export here, as a local sweep does."""

    def __init__(self, ray: ModuleType, shelf: BlobShelf, cache_dir: Path | None, parity: bool) -> None:
        from harness.sources import source_artifact

        self._ray = ray
        self._shelf = shelf
        self._cache = cache_dir or default_cache_dir()
        self._parity = parity
        self._local = source_artifact
        self._running: dict[tuple[ModelSpec, Format, Precision], tuple[Any, Any]] = {}
        self._task = ray.remote(num_cpus=1, num_returns=2, max_retries=0)(_export_task)

    def start(self, wanted: list[tuple[ModelRef, Format, Precision]]) -> None:
        for model, fmt, precision in wanted:
            if isinstance(model, ModelSpec) and (model, fmt, precision) not in self._running:
                self._running[(model, fmt, precision)] = self._task.remote(model, fmt, precision, self._parity)

    def __call__(self, model: ModelRef, fmt: Format, precision: Precision) -> Artifact:
        if not isinstance(model, ModelSpec):
            return self._local(model, fmt, precision, cache_dir=self._cache, check_parity=self._parity)
        self.start([(model, fmt, precision)])
        art_ref, blob_ref = self._running[(model, fmt, precision)]
        art: Artifact = _get(self._ray, art_ref)
        self._shelf.exported(art.sha256, blob_ref)
        return self._here(art, blob_ref)

    def _here(self, art: Artifact, blob_ref: Any) -> Artifact:
        """The artifact as a file on the driver too (the store's graph account reads it): the task's own file where
        this host shares its disk, else its bytes kept under their sha256 in the driver's cache."""
        if art.path.is_file() and file_digest(art.path, "sha256") == art.sha256:
            return art
        blob: ArtifactBlob = self._ray.get(blob_ref)
        path = self._cache / "lab" / f"{art.sha256}{art.path.suffix}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(path.name + ".part")
            part.write_bytes(blob.data)
            part.replace(path)
        return dataclasses.replace(art, path=path)


def _get(ray: ModuleType, ref: Any) -> Any:
    """``ray.get`` with the task's own flopgap error (an export that fails fails its points, as locally)."""
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        if isinstance(exc.cause, FlopgapError):
            raise exc.cause from None
        raise
