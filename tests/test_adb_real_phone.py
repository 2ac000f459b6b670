"""The adb transport against a real phone; runs only with ``-m adb`` and FLOPGAP_ADB_SERIAL set.

Optional: FLOPGAP_ADB_HOST / FLOPGAP_ADB_PORT (adb server, default 127.0.0.1:5037) and
FLOPGAP_ADB_BINARY (a prebuilt arm64 benchmark_model) plus FLOPGAP_ADB_MODEL (a .tflite) for a timed run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devices.adb import AdbTransport
from devices.base import Device, TrialRequest
from devices.binary import binary_backend
from devices.vocabulary import RunnerKind
from tests.environment import Need, needs

SERIAL = os.environ.get("FLOPGAP_ADB_SERIAL")
pytestmark = [pytest.mark.adb, needs(Need.PHONE, None if SERIAL else "set FLOPGAP_ADB_SERIAL to test a real phone")]


def _transport() -> AdbTransport:
    host, port = os.environ.get("FLOPGAP_ADB_HOST", "127.0.0.1"), int(os.environ.get("FLOPGAP_ADB_PORT", "5037"))
    return AdbTransport("real-phone", str(SERIAL), host, port)


def test_real_phone_facts() -> None:
    facts = _transport().facts()
    assert facts["model"] and facts["abi"] and facts["cores"]
    assert all(c["cur_khz"] for c in facts["clusters"].values())


@needs(
    Need.PHONE,
    None
    if os.environ.get("FLOPGAP_ADB_BINARY") and os.environ.get("FLOPGAP_ADB_MODEL")
    else "set FLOPGAP_ADB_BINARY and FLOPGAP_ADB_MODEL for a timed run",
)
def test_real_phone_benchmark_model() -> None:
    backend = binary_backend(RunnerKind.BENCHMARK_MODEL, Path(os.environ["FLOPGAP_ADB_BINARY"]))
    dev = Device("real-phone", _transport(), backend)
    try:
        result = dev.measure(Path(os.environ["FLOPGAP_ADB_MODEL"]), TrialRequest(runs=20, profile=True))
    finally:
        dev.cleanup()
    assert result.summary is not None and result.summary.count >= 20 and (result.centre_ns or 0) > 0
    assert result.ops
