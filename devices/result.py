"""One trial's result, typed: what every backend produces and every consumer (sweep, profiles, calibration, the
store) reads.

flopgap's runner prints a :class:`~devices.runner.RunnerDocument`; official binaries print text that
:mod:`devices.parsers` reads. Either way the backend turns it, once, into a :class:`TrialResult`: raw samples or
(``benchmark_model``) a :class:`Summary`, init and first-inference times, memory, device state before and after,
runtime and version, threads, affinity, delegate coverage, per-op rows when asked. Its JSON form
(:meth:`TrialResult.record`) is what the store keeps with each trial; :meth:`TrialResult.from_json` reads it back.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from devices.timeline import SustainedRun, TimelineWindow


@dataclass(frozen=True)
class Summary:
    """Statistics of the timed runs as a tool printed them (ns), for tools that keep no per-run samples."""

    count: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    p50: float | None = None
    first: float | None = None
    p5: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None

    def to_json(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Summary:
        known = {f.name for f in fields(cls)} - {"count"}
        return cls(count=int(data.get("count") or 0), **{k: _float(data.get(k)) for k in known})


@dataclass(frozen=True)
class Delegate:
    """Which delegate (TFLite) or execution provider (ORT) ran the graph, and how much of it."""

    name: str | None
    nodes_total: int | None = None
    nodes_delegated: int | None = None
    delegate_kernels: int | None = None
    nodes_on_cpu: int | None = None


@dataclass(frozen=True)
class OpTiming:
    """One node (ORT) or operator (``benchmark_model``) of a per-op profile, as the runtime named it."""

    name: str
    op_type: str
    time_us: float  # mean per call
    calls: int | None = None
    median_us: float | None = None  # where the backend has per-call times (the runner's ORT profile)
    provider: str | None = None


@dataclass(frozen=True)
class Tool:
    """The official binary that measured, as run."""

    name: str
    sha256: str | None
    argv: tuple[str, ...]


def central_ns(samples: Sequence[int], summary: Summary | None) -> float | None:
    """A trial's central latency (ns): the median of its samples, else the tool's p50, else its mean.

    The one place this is decided; the sweep's progress line, the store's ``trials.median_ms``, profiles and
    calibration all go through :attr:`TrialResult.centre_ns`.
    """
    if samples:
        return float(statistics.median(samples))
    if summary is not None:
        for value in (summary.p50, summary.mean):
            if value:
                return float(value)
    return None


# Keys of the JSON form that map to typed fields; anything else is kept in ``details``.
_TYPED = {
    "runtime", "runtime_version", "threads", "samples_ns", "summary_ns", "warmup_summary_ns", "init_ns",
    "first_inference_ns", "warmup_runs", "warmup_ns", "timed_ns", "peak_rss_kib", "affinity", "affinity_mask",
    "delegate", "profile", "profile_note", "state_before", "state_after", "tool", "samples_kind", "timeline",
    "sustained", "optimized_model", "etdump",
}  # fmt: skip


@dataclass(frozen=True)
class TrialResult:
    """One measured trial: raw samples or a summary, and everything needed to trust and reproduce it."""

    runtime: str | None
    runtime_version: str | None = None
    threads: int | None = None
    samples_ns: tuple[int, ...] = ()
    summary: Summary | None = None  # when the tool printed statistics instead of (or besides) raw runs
    warmup: Summary | None = None  # the warm-up runs' statistics, where a tool printed them
    init_ns: int | None = None  # model load / session creation
    first_inference_ns: int | None = None
    warmup_runs: int | None = None
    warmup_ns: int | None = None  # total warm-up time
    timed_ns: int | None = None  # total time of the timed loop
    peak_rss_kib: int | None = None
    affinity: tuple[int, ...] | None = None
    delegate: Delegate | None = None
    ops: tuple[OpTiming, ...] | None = None  # per-op rows, when a profile was asked for and the backend gives one
    ops_note: str | None = None  # why there are no per-op rows, where the runtime cannot give them
    graph_optimization: str | None = None  # ONNX Runtime's level, as the runner ran it
    state_before: Mapping[str, Any] | None = None  # the transport's or runner's device state (layout per source)
    state_after: Mapping[str, Any] | None = None
    tool: Tool | None = None  # the official binary, for binary backends
    timeline: tuple[TimelineWindow, ...] | None = None  # sustained runs: per-window latency, frequencies, temperatures
    sustained: SustainedRun | None = None
    requested_affinity: tuple[int, ...] | None = None  # the CPUs flopgap's runner was asked to pin to (its protocol)
    # ExecuTorch's ETDump of a profiled trial (base64, warm-up runs it holds, profiled runs); read on the host and
    # not kept with the trial (the per-op rows made from it are)
    etdump: Mapping[str, Any] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # the rest of what the backend reported, kept as is
    # The ONNX graph as ONNX Runtime optimized it on the device (TrialRequest.save_graph), serialized; not recorded.
    optimized_graph: bytes | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """Timed runs: the samples kept, or the count a summary states."""
        return len(self.samples_ns) or (self.summary.count if self.summary else 0)

    @property
    def centre_ns(self) -> float | None:
        return central_ns(self.samples_ns, self.summary)

    @property
    def median_ms(self) -> float | None:
        centre = self.centre_ns
        return None if centre is None else centre / 1e6

    @property
    def pinned(self) -> tuple[int, ...] | None:
        """The CPUs the trial was pinned to, or None where it was not: what the runner was asked for (its own
        ``affinity`` is every CPU it could use), a binary's ``taskset`` CPUs."""
        return self.affinity if self.tool is not None else self.requested_affinity

    @property
    def affinity_mask(self) -> str | None:
        """The affinity as the hex mask ``taskset`` takes (``[6, 7]`` → ``"c0"``)."""
        return None if not self.affinity else f"{sum(1 << c for c in set(self.affinity)):x}"

    def record(self) -> dict[str, Any]:
        """The JSON kept with the trial: every field that is set, except samples (their own table) and state."""
        out: dict[str, Any] = {
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "threads": self.threads,
            "samples_kind": ("raw" if self.samples_ns else "summary") if self.summary else None,
            "summary_ns": self.summary.to_json() if self.summary else None,
            "warmup_summary_ns": self.warmup.to_json() if self.warmup else None,
            "init_ns": self.init_ns,
            "first_inference_ns": self.first_inference_ns,
            "warmup_runs": self.warmup_runs,
            "warmup_ns": self.warmup_ns,
            "timed_ns": self.timed_ns,
            "peak_rss_kib": self.peak_rss_kib,
            "affinity": list(self.affinity) if self.affinity is not None else None,
            "affinity_mask": self.affinity_mask,
            "delegate": _set_fields(asdict(self.delegate)) if self.delegate else None,
            "profile": [_set_fields(asdict(op)) for op in self.ops] if self.ops is not None else None,
            "profile_note": self.ops_note,
            "tool": {"name": self.tool.name, "sha256": self.tool.sha256, "argv": list(self.tool.argv)}
            if self.tool
            else None,
            "sustained": self.sustained.to_json() if self.sustained else None,  # the timeline has its own table
        }
        return {**_set_fields(out), **self.details}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], samples_ns: Iterable[int] | None = None) -> TrialResult:
        """Read a runner document or a stored :meth:`record`; ``samples_ns`` (if given) replaces the document's."""
        samples = tuple(int(s) for s in (samples_ns if samples_ns is not None else doc.get("samples_ns") or ()))
        delegate = doc.get("delegate")
        rows = doc.get("profile")
        tool = doc.get("tool")
        protocol = doc.get("protocol")
        affinity = doc.get("affinity")
        timeline = doc.get("timeline")
        sustained = doc.get("sustained")
        return cls(
            runtime=_str(doc.get("runtime")),
            runtime_version=_str(doc.get("runtime_version")),
            threads=_int(doc.get("threads")),
            samples_ns=samples,
            summary=Summary.from_json(doc["summary_ns"]) if isinstance(doc.get("summary_ns"), Mapping) else None,
            warmup=Summary.from_json(doc["warmup_summary_ns"])
            if isinstance(doc.get("warmup_summary_ns"), Mapping)
            else None,
            init_ns=_int(doc.get("init_ns")),
            first_inference_ns=_int(doc.get("first_inference_ns")),
            warmup_runs=_int(doc.get("warmup_runs")),
            warmup_ns=_int(doc.get("warmup_ns")),
            timed_ns=_int(doc.get("timed_ns")),
            peak_rss_kib=_int(doc.get("peak_rss_kib")),
            affinity=_cpus(affinity),
            delegate=_delegate(delegate) if isinstance(delegate, Mapping) else None,
            ops=tuple(_op(r) for r in rows) if isinstance(rows, list) else None,
            ops_note=_str(doc.get("profile_note")),
            graph_optimization=_str(protocol.get("graph_optimization")) if isinstance(protocol, Mapping) else None,
            state_before=doc.get("state_before"),
            state_after=doc.get("state_after"),
            tool=Tool(str(tool.get("name")), _str(tool.get("sha256")), tuple(str(a) for a in tool.get("argv") or ()))
            if isinstance(tool, Mapping)
            else None,
            timeline=tuple(TimelineWindow.from_json(w) for w in timeline) if isinstance(timeline, list) else None,
            sustained=SustainedRun.from_json(sustained) if isinstance(sustained, Mapping) else None,
            requested_affinity=_cpus(protocol.get("affinity")) if isinstance(protocol, Mapping) else None,
            etdump=doc["etdump"] if isinstance(doc.get("etdump"), Mapping) else None,
            details={k: v for k, v in doc.items() if k not in _TYPED},
        )


def _delegate(data: Mapping[str, Any]) -> Delegate:
    return Delegate(
        name=_str(data.get("name")),
        nodes_total=_int(data.get("nodes_total")),
        nodes_delegated=_int(data.get("nodes_delegated")),
        delegate_kernels=_int(data.get("delegate_kernels")),
        nodes_on_cpu=_int(data.get("nodes_on_cpu")),
    )


def _op(row: Mapping[str, Any]) -> OpTiming:
    return OpTiming(
        name=str(row["name"]),
        op_type=str(row["op_type"]),
        time_us=float(row["time_us"]),
        calls=_int(row.get("calls")),
        median_us=_float(row.get("median_us")),
        provider=_str(row.get("provider")),
    )


def _set_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _cpus(value: Any) -> tuple[int, ...] | None:
    return tuple(int(c) for c in value) if isinstance(value, list) else None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
