"""flopgap's own runner (``devices/runner.py``, the agent) as a backend, on any transport with a Python.

``runner.py`` is pushed once per session and started with the device's Python; its one JSON document (a
:class:`~devices.runner.RunnerDocument`) is parsed here, once, into a :class:`~devices.result.TrialResult`. A
Python that is missing (exit code 127) or lacks numpy is :class:`~devices.errors.RunnerMissing`, which fails
every point of the device; a runner that crashes or reports an error fails its trial.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, cast

from devices.base import ShellReturn, Transport, TrialRequest
from devices.errors import DeviceError, RunnerMissing, TrialFailed
from devices.facts import DeviceFacts, parse_facts
from devices.result import TrialResult
from devices.runner import SCHEMA, RunnerDocument
from devices.vocabulary import Format, RunnerKind

RUNNER_PATH = Path(__file__).with_name("runner.py")


def runner_args(model: str | Sequence[str], request: TrialRequest) -> list[str]:
    """The runner's arguments for one trial (after ``python runner.py``), or for one trial of each of several models
    in one process."""
    args = [
        *([model] if isinstance(model, str) else model),
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
    if request.instances > 1:
        args += ["--instances", str(request.instances)]
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
        _raise_crashed(res, device)
    return _checked(doc, device)


def parse_documents(res: ShellReturn, device: str, count: int) -> list[RunnerDocument | TrialFailed]:
    """The documents of a runner given ``count`` models, in order, each parsed or its failure; models after a crash
    fail with the crash's reason. A runner that could not start at all raises (RunnerMissing fails the device)."""
    docs: list[dict[str, Any]] = []
    for start in _document_starts(res.stdout):
        try:
            doc, _ = json.JSONDecoder().raw_decode(res.stdout, start)
        except json.JSONDecodeError:
            continue  # a document cut short (the runner was killed): the models from it on failed
        if isinstance(doc, dict) and doc.get("schema") == SCHEMA:
            docs.append(doc)
    if not docs:
        _raise_crashed(res, device)
    out: list[RunnerDocument | TrialFailed] = []
    for doc in docs[:count]:
        try:
            out.append(_checked(doc, device))
        except TrialFailed as exc:
            out.append(exc)
    if len(out) < count:
        try:
            _raise_crashed(res, device)
        except TrialFailed as crashed:
            out += [crashed] * (count - len(out))
    return out


def _document_starts(text: str) -> list[int]:
    """Where each document begins: at a line's start or after what a runtime printed without ending its line."""
    starts, at = [], text.find('{"schema"')
    while at >= 0:
        starts.append(at)
        at = text.find('{"schema"', at + 1)
    return starts


def _raise_crashed(res: ShellReturn, device: str) -> NoReturn:
    _raise_if_missing(res, device)
    tail = res.last_line()
    if res.returncode < 0:
        tail = f"killed by signal {-res.returncode} ({tail})"
    raise TrialFailed(f"device '{device}': runner crashed: {tail}", kind="RunnerCrashed")


def _checked(doc: dict[str, Any], device: str) -> RunnerDocument:
    """The document, or its own error raised."""
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

    def profiles_ops(self, fmt: Format) -> bool | None:
        # ORT's per-node profiler and ExecuTorch's ETDump; LiteRT's operators where the device's LiteRT has the C API
        # profiler the runner reads (its facts' ``op_profiles``, see runner.op_profile_formats)
        return None if fmt is Format.TFLITE else fmt in (Format.ONNX, Format.PTE)

    def argv(self, transport: Transport, model: str | Sequence[str], request: TrialRequest) -> list[str]:
        pin = ["--affinity", _cpus(self.affinity)] if self.affinity else []
        return [self.python, self.prepare(transport), *pin, *runner_args(model, request)]

    def measure(self, transport: Transport, model: str, request: TrialRequest) -> TrialResult:
        [result] = self.measure_many(transport, [model], request)
        if isinstance(result, TrialFailed):
            raise result
        return result

    def measure_many(
        self, transport: Transport, models: Sequence[str], request: TrialRequest
    ) -> list[TrialResult | TrialFailed]:
        """One trial of each model, in order, in one runner process (one start-up for all): each its result or its
        failure. The timeout is the request's per model."""
        argv = self.argv(transport, list(models), request)
        saved: list[str | None] = [None] * len(models)
        if request.save_graph and all(m.lower().endswith(".onnx") for m in models):
            saved = [transport.scratch(f"optimized-{i}-{posixpath.basename(m)}") for i, m in enumerate(models)]
            argv += [arg for path in saved for arg in ("--save-optimized", str(path))]
        res = transport.run(argv, timeout=request.timeout_s * len(models))
        out: list[TrialResult | TrialFailed] = []
        for doc, path in zip(parse_documents(res, transport.name, len(models)), saved, strict=True):
            if isinstance(doc, TrialFailed):
                out.append(doc)
                continue
            result = TrialResult.from_json(doc)
            if path is not None:
                result = replace(result, optimized_graph=_pulled(transport, path))
            out.append(result)
        return out

    def facts(self, transport: Transport) -> DeviceFacts:
        """The runner's ``--facts``: CPU, frequencies, OS, Python and the importable runtimes' versions."""
        res = transport.run([self.python, self.prepare(transport), "--facts"], timeout=self.facts_timeout)
        if not res.ok:
            _raise_if_missing(res, transport.name)
            raise DeviceError(f"device '{transport.name}': runner --facts failed: {res.last_line()}")
        try:
            raw = json.loads(res.stdout)
        except json.JSONDecodeError:
            raise DeviceError(f"device '{transport.name}': runner --facts printed no JSON: {res.last_line()}") from None
        if not isinstance(raw, dict):
            raise DeviceError(f"device '{transport.name}': runner --facts printed no JSON object: {res.last_line()}")
        return parse_facts(raw)


def _pulled(transport: Transport, remote: str) -> bytes:
    """The bytes of a file the runner wrote on the device (a transport that cannot raises PullFailed)."""
    with tempfile.TemporaryDirectory(prefix="flopgap-pull-") as tmp:
        return transport.pull(remote, Path(tmp) / posixpath.basename(remote)).read_bytes()


def _cpus(cpus: list[int] | tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)
