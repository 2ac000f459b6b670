"""flopgap's own runner (``devices/runner.py``, the agent) as a backend, on any transport with a Python.

``runner.py`` is pushed once per session and started with the device's Python; its one JSON document (a
:class:`~devices.runner.RunnerDocument`) is parsed here, once, into a :class:`~devices.result.TrialResult`. A
Python that is missing (exit code 127) or lacks numpy is :class:`~devices.errors.RunnerMissing`, which fails
every point of the device; a runner that crashes or reports an error fails its trial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from devices.base import ShellReturn, Transport, TrialRequest
from devices.errors import DeviceError, RunnerMissing, TrialFailed
from devices.result import TrialResult
from devices.runner import SCHEMA, RunnerDocument
from devices.vocabulary import Format, RunnerKind

RUNNER_PATH = Path(__file__).with_name("runner.py")


def runner_args(model: str, request: TrialRequest) -> list[str]:
    """The runner's arguments for one trial (after ``python runner.py``)."""
    args = [
        model,
        "--threads", str(request.threads),
        "--warmup-runs", str(request.warmup_runs),
        "--warmup-seconds", str(request.warmup_seconds),
        "--runs", str(request.runs),
        "--min-seconds", str(request.min_seconds),
        "--max-runs", str(request.max_runs),
    ]  # fmt: skip
    args += [
        "--graph-optimization", request.ort_graph_optimization,
        "--ort-allow-spinning", str(int(request.ort_allow_spinning)),
        "--ort-execution-mode", request.ort_execution_mode,
    ]  # fmt: skip
    if not request.xnnpack:
        args.append("--no-xnnpack")
    if request.affinity:
        args += ["--affinity", _cpus(request.affinity)]
    if request.profile:
        args.append("--profile")
        if request.profile_runs is not None:
            args += ["--profile-runs", str(request.profile_runs)]
    if request.sustained_s is not None:
        args += ["--sustained", str(request.sustained_s), "--window", str(request.window_s)]
    return args


def parse_document(res: ShellReturn, device: str) -> RunnerDocument:
    """The runner's one JSON document; a crash, garbage or the document's own error raise."""
    doc: dict[str, Any] | None = None
    text = res.stdout.strip()
    if text:
        # The document is the runner's last output; what a runtime printed before it may not end its line.
        start = text.rfind('{"schema"')
        try:
            doc = json.loads(text[start:] if start >= 0 else text.splitlines()[-1])
        except json.JSONDecodeError:
            doc = None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        _raise_if_missing(res, device)
        tail = res.last_line()
        if res.returncode < 0:
            tail = f"killed by signal {-res.returncode} ({tail})"
        raise TrialFailed(f"device '{device}': runner crashed: {tail}", kind="RunnerCrashed")
    err = doc.get("error")
    if err:
        message = err.get("message", err) if isinstance(err, dict) else err
        kind = str(err.get("kind", "RunnerFailed")) if isinstance(err, dict) else "RunnerFailed"
        raise TrialFailed(f"device '{device}': {message}", kind=kind)
    if not doc.get("samples_ns"):
        raise TrialFailed(f"device '{device}': runner returned no samples", kind="NoSamples")
    return cast(RunnerDocument, doc)


def _raise_if_missing(res: ShellReturn, device: str) -> None:
    """A Python that is not there (127) or has no numpy cannot run the runner on this device at all."""
    if res.returncode == 127:
        raise RunnerMissing(
            f"device '{device}': '{res.argv[0]}' not found there ({res.last_line()}); install python3 with numpy "
            'there or set its path in the inventory (e.g. python = "/usr/bin/python3")'
        )
    if "No module named 'numpy'" in res.stderr:
        raise RunnerMissing(
            f"device '{device}': {res.argv[0]} has no numpy; install numpy there (and onnxruntime or ai-edge-litert)"
        )


class AgentBackend:
    """Runs ``runner.py`` with the device's Python (pinned with ``--affinity`` when the device has one)."""

    kind = RunnerKind.AGENT

    def __init__(self, python: str, affinity: list[int] | None = None, facts_timeout: float = 60) -> None:
        self.python = python
        self.affinity = list(affinity) if affinity else None
        self.facts_timeout = facts_timeout
        self._runner: str | None = None

    def __repr__(self) -> str:
        return f"AgentBackend({self.python!r})"

    def prepare(self, transport: Transport) -> str:
        if self._runner is None:
            self._runner = transport.push(RUNNER_PATH)
        return self._runner

    def forget(self) -> None:
        self._runner = None

    def profiles_ops(self, fmt: Format) -> bool:
        # ORT's per-node profiler and ExecuTorch's ETDump; the TFLite Python API has neither
        return fmt in (Format.ONNX, Format.PTE)

    def argv(self, transport: Transport, model: str, request: TrialRequest) -> list[str]:
        pin = ["--affinity", _cpus(self.affinity)] if self.affinity else []
        return [self.python, self.prepare(transport), *pin, *runner_args(model, request)]

    def measure(self, transport: Transport, model: str, request: TrialRequest) -> TrialResult:
        res = transport.run(self.argv(transport, model, request), timeout=request.timeout_s)
        return TrialResult.from_json(parse_document(res, transport.name))

    def facts(self, transport: Transport) -> dict[str, Any]:
        """The runner's ``--facts``: CPU, frequencies, OS, Python and the importable runtimes' versions."""
        res = transport.run([self.python, self.prepare(transport), "--facts"], timeout=self.facts_timeout)
        if not res.ok:
            _raise_if_missing(res, transport.name)
            raise DeviceError(f"device '{transport.name}': runner --facts failed: {res.last_line()}")
        try:
            facts: dict[str, Any] = json.loads(res.stdout)
        except json.JSONDecodeError:
            raise DeviceError(f"device '{transport.name}': runner --facts printed no JSON: {res.last_line()}") from None
        return facts


def _cpus(cpus: list[int] | tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)
