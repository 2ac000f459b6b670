"""One trial of one sweep point: run flopgap's runner on a device and read back its JSON document."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from devices.base import ShellReturn
from devices.errors import DeviceError
from harness.measure.spec import Protocol

RUNNER_SCHEMA = "flopgap.runner/1"


class TrialFailed(DeviceError):
    """The runner could not measure the point; ``kind`` is the runner's error kind (or a transport's)."""

    def __init__(self, message: str, kind: str = "RunnerFailed") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class TrialResult:
    doc: dict[str, Any]  # the runner's document, samples included

    @property
    def samples_ns(self) -> list[int]:
        return [int(s) for s in self.doc.get("samples_ns") or []]

    @property
    def median_ms(self) -> float | None:
        samples = self.samples_ns
        if samples:
            return float(statistics.median(samples)) / 1e6
        summary = self.doc.get("summary_ns") or {}
        centre = summary.get("p50") or summary.get("mean")
        return float(centre) / 1e6 if centre else None


def runner_args(
    model_path: str, threads: int, protocol: Protocol, options: dict[str, Any], profile: bool = False
) -> list[str]:
    """The runner's command-line arguments for one trial (the device prepends how to start the runner)."""
    args = [
        model_path,
        "--threads", str(threads),
        "--warmup-runs", str(protocol.warmup_runs),
        "--warmup-seconds", str(protocol.warmup_seconds),
        "--runs", str(protocol.runs),
        "--min-seconds", str(protocol.min_seconds),
        "--max-runs", str(protocol.max_runs),
    ]  # fmt: skip
    if options.get("xnnpack") is False:
        args.append("--no-xnnpack")
    if protocol.affinity:
        args += ["--affinity", ",".join(str(c) for c in protocol.affinity)]
    if profile:
        args.append("--profile")
    return args


def parse_runner_output(res: ShellReturn, device: str) -> TrialResult:
    """Read the runner's one JSON document; its error, a crash or garbage become a :class:`TrialFailed`."""
    doc: dict[str, Any] | None = None
    text = res.stdout.strip()
    if text:
        try:
            doc = json.loads(text.splitlines()[-1] if not text.startswith("{") else text)
        except json.JSONDecodeError:
            doc = None
    if doc is None or doc.get("schema") != RUNNER_SCHEMA:
        tail = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        if res.returncode < 0:
            tail = f"killed by signal {-res.returncode} ({tail})"
        raise TrialFailed(f"device '{device}': runner crashed: {tail}", kind="RunnerCrashed")
    return check_runner_doc(doc, device)


def check_runner_doc(doc: dict[str, Any], device: str) -> TrialResult:
    """Accept a runner document with raw samples or (official binaries) a summary; its error becomes a failure."""
    err = doc.get("error")
    if err:
        message = err.get("message", err) if isinstance(err, dict) else err
        kind = str(err.get("kind", "RunnerFailed")) if isinstance(err, dict) else "RunnerFailed"
        raise TrialFailed(f"device '{device}': {message}", kind=kind)
    if not doc.get("samples_ns") and not (doc.get("summary_ns") or {}).get("mean"):
        raise TrialFailed(f"device '{device}': runner returned no samples", kind="NoSamples")
    return TrialResult(doc)
