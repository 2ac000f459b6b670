"""A Device is a transport and a backend.

The **transport** (local subprocess, SSH, adb) moves files, runs an argv with a timeout (killing its process
group past it), pulls files back and reads device facts and state. The **backend** (flopgap's runner, TFLite's
``benchmark_model``, ``onnxruntime_perf_test``) knows how to start its tool, build its command line and parse its
output into a :class:`~devices.result.TrialResult`. Any backend runs on any transport whose device can execute it:
the runner needs a Python there, a binary must match the device's architecture. Commands are argv lists, never
shell strings built from unquoted input; every transport raises the same typed errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from devices.arm_cores import ClusterName
from devices.bounded import LINE_CHARS, bounded
from devices.core.digest import file_digest
from devices.errors import DeviceError, PushFailed, TrialFailed
from devices.facts import DeviceFacts, DeviceState, parse_facts
from devices.result import TrialResult
from devices.vocabulary import Format, RunnerKind, TransportKind


@dataclass(frozen=True)
class ShellReturn:
    """What one command on a device gave back."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_line(self) -> str:
        """The last line of stderr (else stdout), for one-line error messages."""
        lines = (self.stderr or self.stdout).strip().splitlines()
        return bounded(lines[-1].strip(), LINE_CHARS) if lines else f"exit code {self.returncode}"


@dataclass(frozen=True)
class Machine:
    """The CPU architecture a device executes, as ``uname -m`` names it (``aarch64``, ``x86_64``, ``arm``...)."""

    arch: str | None  # None when the device does not say
    described: str  # for messages: "the phone's ABI is arm64-v8a", "the board's uname -m is aarch64"


@dataclass(frozen=True)
class TrialRequest:
    """What one trial asks of a backend, whichever tool measures."""

    threads: int = 1
    warmup_runs: int = 10
    warmup_seconds: float = 0.5
    runs: int = 50
    min_seconds: float = 1.0
    max_runs: int = 100_000
    xnnpack: bool = True  # TFLite: XNNPACK delegate on (litert) or builtin kernels only (litert-builtin)
    affinity: tuple[int, ...] | None = None  # CPU ids for this trial; overrides the device's own affinity
    profile: bool = False  # also return per-op rows, where the backend can
    profile_runs: int | None = None  # profiled runs per op (flopgap's runner)
    timeout_s: float = 600
    # ONNX Runtime session settings (ORT's own defaults; see the README's protocol section for why).
    ort_allow_spinning: bool = True
    ort_graph_optimization: str = "all"  # all | extended | basic | disable
    ort_execution_mode: str = "sequential"  # sequential | parallel
    save_graph: bool = False  # ONNX models: also return the graph ONNX Runtime optimized on the device (agent only)
    sustained_s: float | None = None  # run continuously this long and return a timeline (flopgap's runner only)
    window_s: float = 1.0  # the timeline's window
    instances: int = 1  # load the model this many times and time each in turn, samples pooled (flopgap's runner only)


@runtime_checkable
class Transport(Protocol):
    """How to reach a device: files in and out, commands run there."""

    name: str  # the device's name, for messages
    kind: TransportKind

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        """Run ``argv`` in the session's work dir; raise :class:`~devices.errors.DeviceTimeout` (and kill its
        process group) past ``timeout`` seconds."""
        ...

    def push(self, local: Path, executable: bool = False) -> str:
        """Copy a file onto the device (an identical copy already there is reused); return its path there."""
        ...

    def pull(self, remote: str, local: Path) -> Path: ...

    def fingerprint(self, remote: str) -> tuple[str, str] | None:
        """``(algorithm, hex digest)`` of a file on the device (sha256 where the device can), None if absent."""
        ...

    def scratch(self, name: str) -> str:
        """A path in this session's work dir for a file a command will write; removed by :meth:`cleanup`."""
        ...

    def machine(self) -> Machine: ...

    def facts(self) -> DeviceFacts:
        """What the transport can tell without any runner: OS, architecture, cores, frequencies, temperatures."""
        ...

    def state(self) -> DeviceState:
        """What changes while measuring: per-cluster frequency and governor, temperatures (and battery, phones)."""
        ...

    def cleanup(self) -> None:
        """Remove what this session pushed or wrote (never raises)."""
        ...

    def close(self) -> None:
        """Drop the connection, keeping the session's files (a later call reconnects)."""
        ...

    def lock(self, on_wait: Callable[[str], None]) -> AbstractContextManager[list[str]]:
        """Hold the device's lock (across processes and hosts: one benchmark per device at a time); ``on_wait`` gets
        one line saying who holds it if it must wait. Yields one notice per stale runner killed on taking it."""
        ...


@runtime_checkable
class Backend(Protocol):
    """What measures on the device: builds its command, runs it through a transport, parses its output."""

    kind: RunnerKind

    def prepare(self, transport: Transport) -> str:
        """Push what the tool needs and check it can start there (once per session); returns what will run."""
        ...

    def measure(self, transport: Transport, model: str, request: TrialRequest) -> TrialResult:
        """One trial of the model at ``model`` (a path on the device); raises :class:`TrialFailed` if it fails."""
        ...

    def facts(self, transport: Transport) -> DeviceFacts:
        """Facts only this backend can tell (runtime versions, the binary's sha256)."""
        ...

    def profiles_ops(self, fmt: Format) -> bool | None:
        """Whether a trial with ``profile=True`` returns per-op rows for models of this format; None where the
        device's facts tell (their ``op_profiles``: the runtime installed there decides)."""
        ...

    def forget(self) -> None:
        """Forget what :meth:`prepare` did (the transport's session was cleaned up)."""
        ...


SYSTEM_FACTS = frozenset({"os", "os_pretty_name", "kernel", "system"})
_log = logging.getLogger("flopgap.devices")


def tell(message: str) -> None:
    """Say something the user should see while measuring (a busy device, a stale runner killed): one line, stderr."""
    _log.warning(message)


def _format_of(path: Path) -> Format | None:
    suffix = Path(path).suffix.lstrip(".").lower()
    return Format(suffix) if suffix in {f.value for f in Format} else None


class Device:
    """One device of the inventory: its transport and its backend, and what the sweep asks of it."""

    def __init__(self, name: str, transport: Transport, backend: Backend, cluster: ClusterName | None = None) -> None:
        self.name = name
        self.transport = transport
        self.backend = backend
        self.cluster = cluster  # the inventory's affinity as a cluster name: resolved from the facts when measuring
        self._pushed: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> remote path, this session
        self._facts: DeviceFacts | None = None  # the last facts read, for placing ``cluster``
        self.notify: Callable[[str], None] = tell  # a busy device, a stale runner killed

    def __repr__(self) -> str:
        return f"Device({self.name!r}, {self.transport.kind}, {self.backend.kind})"

    @property
    def runner(self) -> RunnerKind:
        return self.backend.kind

    def can_run(self, fmt: Format | None) -> bool:
        return fmt is not None and fmt in self.backend.kind.formats

    def profiles_ops(self, fmt: Format) -> bool:
        """Whether this device's tool reports per-op times for ``fmt`` models itself (where the backend leaves it to
        the device's runtimes, their facts tell: read once)."""
        if not self.can_run(fmt):
            return False
        said = self.backend.profiles_ops(fmt)
        if said is None:
            facts = self._facts if self._facts is not None else self.facts()
            said = fmt.value in facts.get("op_profiles", [])
        return said

    def facts(self) -> DeviceFacts:
        """The transport's facts, overridden by the backend's where the backend tells (runtime versions, CPUs...).

        The backend describes the process that measures: its architecture, its view of the CPUs, its Python and
        runtimes (on an emulated board the login shell is the host's, the runner is not). The system's own name for
        itself (OS, kernel) stays the transport's: a phone's getprop knows it is Android where a Python under Termux
        says Linux.
        """
        own = self.transport.facts()
        backend = self.backend.facts(self.transport)
        merged = {**own, **{k: v for k, v in backend.items() if k not in SYSTEM_FACTS or k not in own}}
        self._facts = parse_facts(merged)  # the one place a device's facts come in: typed from here on
        return parse_facts(self._facts)  # a copy: a caller's edits never reach the placement

    def cluster_cpus(self) -> tuple[int, ...] | None:
        """The CPU ids of the inventory's cluster on this device (facts read once if not yet); None without one.
        Raises :class:`~devices.placement.ClusterMissing` when the device has no such cluster."""
        if self.cluster is None:
            return None
        from devices.placement import place

        facts = self._facts if self._facts is not None else self.facts()
        return place(self.name, facts, self.cluster).cpus

    def prepare(self) -> str:
        """Push the runner or benchmark binary (hash-verified) and check it can start; returns what will run."""
        return self.backend.prepare(self.transport)

    def push_binary(self) -> str:
        """Push the benchmark binary (hash-verified, checked against the device's architecture); its path there."""
        if not self.runner.is_binary:
            raise DeviceError(f"device '{self.name}' runs flopgap's runner, not a benchmark binary")
        return self.prepare()

    def push(self, local: Path) -> str:
        """Copy a model onto the device once per session; return its path there."""
        local = Path(local)
        try:
            st = local.stat()
        except OSError:
            st = None
        key = (str(local.resolve()), st.st_size, st.st_mtime_ns) if st else None
        if key is not None and key in self._pushed:
            return self._pushed[key]
        remote = self.transport.push(local)
        if key is not None:
            self._pushed[key] = remote
        return remote

    def measure(self, artifact: Path, request: TrialRequest, sha256: str | None = None) -> TrialResult:
        """One trial of a local model file: pushed (once), verified, run by the backend under the device lock, parsed.

        Right before the trial the local file's sha256 is checked against ``sha256`` (what the export recorded) and
        the device's copy against the local file; a copy that differs is pushed again, a local file that differs
        fails the trial naming both hashes.
        """
        suffix = Path(artifact).suffix.lstrip(".").lower()
        fmt = Format(suffix) if suffix in {f.value for f in Format} else None
        if fmt is None or not self.can_run(fmt):
            kinds = ", ".join(sorted(f".{f.value}" for f in self.runner.formats))
            raise TrialFailed(
                f"device '{self.name}' runs {self.runner}, which times {kinds} models, not {Path(artifact).name}; "
                "measure it on a device with another runner",
                kind="Unsupported",
            )
        if request.affinity is None and self.cluster is not None:
            request = replace(request, affinity=self.cluster_cpus())
        self.prepare()
        remote = self.push(artifact)
        with self.transport.lock(self.notify) as reaped:  # one benchmark per device, across processes
            for notice in reaped:
                self.notify(notice)
            remote, actual = self._verified(Path(artifact), remote, sha256)
            result = self.backend.measure(self.transport, remote, request)
        timed = result.details.get("model_sha256")  # flopgap's runner hashes the bytes it loaded
        if timed is not None and timed != actual:
            # The file changed between the check above and the runner's read: what was timed is another model.
            raise TrialFailed(
                f"device '{self.name}': the runner timed a model with sha256 {timed}, not the {actual} checked "
                f"before the trial ({artifact} changed while it ran); the trial is discarded: export it again (or "
                "clear the artifact cache) before measuring",
                kind="ArtifactChanged",
            )
        return result

    def measure_many(
        self, artifacts: Sequence[Path], request: TrialRequest, sha256s: Sequence[str | None] | None = None
    ) -> list[TrialResult | DeviceError]:
        """One trial of each local model file, in order: each its result or its failure (a failed model never stops
        the others). Where the backend can (flopgap's runner), all in one process under one lock, so the runner's
        start-up (most of a small model's trial) is paid once; otherwise one :meth:`measure` after another. Each
        file is checked as :meth:`measure` checks it."""
        hashes = list(sha256s) if sha256s is not None else [None] * len(artifacts)
        batch = getattr(self.backend, "measure_many", None)
        if batch is None or len(artifacts) < 2:
            out: list[TrialResult | DeviceError] = []
            for path, sha in zip(artifacts, hashes, strict=True):
                try:
                    out.append(self.measure(path, request, sha))
                except DeviceError as exc:
                    out.append(exc)
            return out
        results: list[TrialResult | DeviceError | None] = [None] * len(artifacts)
        for i, path in enumerate(artifacts):
            if not self.can_run(_format_of(path)):
                results[i] = TrialFailed(f"device '{self.name}' runs {self.runner}, not {Path(path).name}",
                                         kind="Unsupported")  # fmt: skip
        if request.affinity is None and self.cluster is not None:
            request = replace(request, affinity=self.cluster_cpus())
        self.prepare()
        todo = [i for i, r in enumerate(results) if r is None]
        remotes = {i: self.push(artifacts[i]) for i in todo}
        actual: dict[int, str] = {}
        with self.transport.lock(self.notify) as reaped:
            for notice in reaped:
                self.notify(notice)
            for i in todo:
                try:
                    remotes[i], actual[i] = self._verified(Path(artifacts[i]), remotes[i], hashes[i])
                except DeviceError as exc:
                    results[i] = exc
            ready = [i for i in todo if results[i] is None]
            if ready:
                for i, got in zip(ready, batch(self.transport, [remotes[i] for i in ready], request), strict=True):
                    timed = got.details.get("model_sha256") if isinstance(got, TrialResult) else None
                    if timed is not None and timed != actual[i]:
                        got = TrialFailed(f"device '{self.name}': the runner timed a model with sha256 {timed}, not "
                                          f"the {actual[i]} checked before the trial ({artifacts[i]} changed while it "
                                          "ran); the trial is discarded", kind="ArtifactChanged")  # fmt: skip
                    results[i] = got
        return [r if r is not None else TrialFailed("not measured") for r in results]

    def _verified(self, local: Path, remote: str, expected: str | None) -> tuple[str, str]:
        """The model's path on the device and the local file's sha256, its content checked at the point of use
        (see :meth:`measure`)."""
        actual = file_digest(local, "sha256")
        if expected is not None and actual != expected:
            raise TrialFailed(
                f"device '{self.name}': {local} changed after export: its sha256 is {actual}, the export's was "
                f"{expected}; export it again (or clear the artifact cache) before measuring",
                kind="ArtifactChanged",
            )
        if self.transport.kind is TransportKind.LOCAL:
            return remote, actual  # the device reads the file just hashed (and the runner says what it read)
        found = self.transport.fingerprint(remote)
        if found is not None and found[1] == (actual if found[0] == "sha256" else file_digest(local, found[0])):
            return remote, actual
        self.notify(
            f"device '{self.name}': {remote} there has {found[0] + ' ' + found[1] if found else 'gone missing'}, not "
            f"sha256 {actual}; pushing it again"
        )
        self._pushed.clear()
        remote = self.transport.push(local)
        again = self.transport.fingerprint(remote)
        if again is None or again[1] != (actual if again[0] == "sha256" else file_digest(local, again[0])):
            raise PushFailed(
                f"device '{self.name}': {remote} still differs from {local} after pushing it again "
                f"({again[0] + ' ' + again[1] if again else 'missing'} vs sha256 {actual}); check the device's storage"
            )
        return remote, actual

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        return self.transport.run(argv, timeout)

    def pull(self, remote: str, local: Path) -> Path:
        return self.transport.pull(remote, local)

    def cleanup(self) -> None:
        """Remove what this session pushed (the runner binary of an adb phone stays for reuse)."""
        self._pushed.clear()
        self.backend.forget()
        self.transport.cleanup()

    def close(self) -> None:
        self.transport.close()
