"""A device actor keeps each artifact that reaches its host as one file named by its sha256. The actor serves
several drivers at once on threads of one process, so two of them can keep the same artifact at the same moment."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from harness.lab.device_actor import ArtifactBlob, DeviceActor


def test_two_drivers_keeping_the_same_artifact_at_once_both_get_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both calls write their copy before either renames it (a barrier in the rename makes that interleaving
    certain): with one part file per process, the second rename found its part already renamed away."""
    actor = DeviceActor.__new__(DeviceActor)  # only the cache is exercised: no device behind it
    actor._cache = tmp_path / "host-b"
    data = b"onnx bytes" * 1000
    blob = ArtifactBlob("m.onnx", hashlib.sha256(data).hexdigest(), data)
    both_written = threading.Barrier(2, timeout=10)
    rename = Path.replace

    def rename_when_both_wrote(self: Path, target: Path) -> Path:
        both_written.wait()
        return rename(self, target)

    monkeypatch.setattr(Path, "replace", rename_when_both_wrote)
    kept: list[Path] = []
    errors: list[BaseException] = []

    def keep() -> None:
        try:
            kept.append(actor._keep(blob))
        except BaseException as exc:  # the test reports whatever a thread raised
            errors.append(exc)

    threads = [threading.Thread(target=keep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert kept == [actor._cache / f"{blob.sha256}.onnx"] * 2
    assert kept[0].read_bytes() == data
    assert sorted(p.name for p in actor._cache.iterdir()) == [f"{blob.sha256}.onnx"]  # no part file left behind
