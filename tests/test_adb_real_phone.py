"""AdbDevice against a real phone; runs only with ``-m adb`` and FLOPGAP_ADB_SERIAL set.

Optional: FLOPGAP_ADB_HOST / FLOPGAP_ADB_PORT (adb server, default 127.0.0.1:5037) and
FLOPGAP_ADB_BINARY (a prebuilt arm64 benchmark_model) plus FLOPGAP_ADB_MODEL (a .tflite) for a timed run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devices.adb import AdbDevice, BenchmarkOptions

SERIAL = os.environ.get("FLOPGAP_ADB_SERIAL")
pytestmark = [pytest.mark.adb, pytest.mark.skipif(not SERIAL, reason="set FLOPGAP_ADB_SERIAL to test a real phone")]


def _device() -> AdbDevice:
    binary = os.environ.get("FLOPGAP_ADB_BINARY")
    return AdbDevice(
        "real-phone",
        str(SERIAL),
        os.environ.get("FLOPGAP_ADB_HOST", "127.0.0.1"),
        int(os.environ.get("FLOPGAP_ADB_PORT", "5037")),
        binary=Path(binary) if binary else None,
    )


def test_real_phone_facts() -> None:
    facts = _device().facts()
    assert facts["model"] and facts["abi"] and facts["cores"]
    assert all(c["cur_khz"] for c in facts["clusters"].values())


@pytest.mark.skipif(
    not (os.environ.get("FLOPGAP_ADB_BINARY") and os.environ.get("FLOPGAP_ADB_MODEL")),
    reason="set FLOPGAP_ADB_BINARY and FLOPGAP_ADB_MODEL for a timed run",
)
def test_real_phone_benchmark_model(tmp_path: Path) -> None:
    dev = _device()
    try:
        doc = dev.measure(Path(os.environ["FLOPGAP_ADB_MODEL"]), BenchmarkOptions(runs=20), profile_dir=tmp_path)
    finally:
        dev.cleanup()
    assert "error" not in doc, doc.get("error")
    assert doc["summary_ns"]["count"] >= 20 and doc["summary_ns"]["mean"] > 0 and doc["ops"]
