"""Pure parsers for what ExecuTorch's ``executor_runner`` leaves behind: the timing in its ETDump, and its log.

An ETDump (``--etdump_path``) is a flatbuffer; :func:`etdump_document` turns it into the JSON document flatc writes
(ExecuTorch's own ``deserialize_from_etdump_flatcc``), and :func:`parse_etdump` reads that document. Each
``Method::execute`` opens a run block named ``Execute`` holding one ``Method::execute`` profile event (the whole
execution) and the delegate's per-op events; the first block, ``Default``, times ``Program::load_method``. Times
are the platform's ticks: nanoseconds on ExecuTorch's default Linux and Android platform layer (``steady_clock``),
so ``tick_ns`` is 1 unless a build overrides ``et_pal_current_ticks``.

The log line (``Model executed successfully N time(s) in X ms.``, ``examples/portable/executor_runner``) is printed
only by builds with ``EXECUTORCH_ENABLE_LOGGING`` and, on Android, may go to logcat instead of stderr: it is a
cross-check, the ETDump is the measurement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from devices.parsers import ParseError, json_document

EXECUTE_BLOCK = "Execute"
EXECUTE_EVENT = "Method::execute"
LOAD_EVENT = "Program::load_method"
# gflags' complaint when the binary was built without the event tracer (no --etdump_path flag).
_NO_TRACER = re.compile(r"unknown command line flag '(etdump_path|num_executions|cpu_threads)'")
_LOG_TOTAL = re.compile(r"Model executed successfully (\d+) time\(s\) in ([-+0-9.eE]+) ms\.")


@dataclass(frozen=True)
class EtdumpTiming:
    """Per-execution wall times from one ETDump, in nanoseconds, in execution order."""

    executions_ns: tuple[int, ...]
    load_method_ns: int | None
    delegate_events: int  # per-op events the delegate logged over all executions (XNNPACK's, by op name)


def parse_etdump(doc: Mapping[str, Any], tick_ns: float = 1.0) -> EtdumpTiming:
    """Read the ``Method::execute`` time of every ``Execute`` block of an ETDump document (flatc's JSON form)."""
    runs = doc.get("run_data")
    if not isinstance(runs, list):
        raise ParseError("not an ETDump document: no 'run_data' list")
    executions: list[int] = []
    load: int | None = None
    delegate = 0
    for block in runs:
        events = [e.get("profile_event") for e in block.get("events") or ()]
        profiles = [p for p in events if isinstance(p, Mapping)]
        if block.get("name") != EXECUTE_BLOCK:
            load = next((_span(p, tick_ns) for p in profiles if p.get("name") == LOAD_EVENT), load)
            continue
        spans = [_span(p, tick_ns) for p in profiles if p.get("name") == EXECUTE_EVENT]
        if len(spans) != 1:
            raise ParseError(f"ETDump run block {len(executions) + 1} has {len(spans)} '{EXECUTE_EVENT}' events, not 1")
        executions.append(spans[0])
        delegate += sum(1 for p in profiles if _delegated(p))
    if not executions:
        raise ParseError(
            f"the ETDump holds no '{EXECUTE_BLOCK}' run blocks ({len(runs)} other blocks): the program never ran, "
            "or the runner was built without the event tracer"
        )
    return EtdumpTiming(tuple(executions), load, delegate)


def parse_etdump_json(text: str, tick_ns: float = 1.0) -> EtdumpTiming:
    """:func:`parse_etdump` on the JSON text of an ETDump (``flatc --json --size-prefixed``, or a captured copy)."""
    return parse_etdump(json_document(text, "the ETDump", dict, "an ETDump document (a JSON object)"), tick_ns)


def _delegated(event: Mapping[str, Any]) -> bool:
    """A delegate's own event: it carries the delegate's debug id (XNNPACK's is the op name) instead of a name."""
    number = event.get("delegate_debug_id_int")
    return bool(event.get("delegate_debug_id_str")) or (isinstance(number, int) and number >= 0)


def _span(event: Mapping[str, Any], tick_ns: float) -> int:
    start, end = event.get("start_time"), event.get("end_time")
    if not isinstance(start, int) or not isinstance(end, int) or end < start:
        raise ParseError(f"ETDump event '{event.get('name')}' has no valid start/end time ({start}, {end})")
    return round((end - start) * tick_ns)


def etdump_document(data: bytes) -> dict[str, Any]:
    """An ETDump file's bytes as its JSON document, read with the installed ExecuTorch's flatbuffer schema."""
    try:
        from executorch.devtools.etdump.serialize import deserialize_from_etdump_flatcc
    except ImportError:
        raise ParseError(
            "reading an ETDump needs executorch on this machine; install it with: "
            "pip install -c constraints.txt -e '.[executorch]'"
        ) from None
    try:
        etdump = deserialize_from_etdump_flatcc(data)
    except Exception as exc:  # flatc's failure comes back as a CalledProcessError or a JSON error
        raise ParseError(f"the ETDump ({len(data)} bytes) does not decode: {str(exc).splitlines()[0]}") from None
    # Byte fields (delegate metadata) as the lists of ints flatc's JSON holds, so a captured copy compares equal.
    doc: dict[str, Any] = json.loads(json.dumps(asdict(etdump), default=list))
    return doc


@dataclass(frozen=True)
class RunnerLog:
    """What ``executor_runner`` printed about the timed loop, where its build logs."""

    executions: int
    total_ms: float


def parse_executor_runner_log(text: str) -> RunnerLog | None:
    """The ``Model executed successfully N time(s) in X ms.`` line, or None where the build printed none."""
    found = _LOG_TOTAL.findall(text)
    if not found:
        return None
    count, total = found[-1]
    return RunnerLog(int(count), float(total))


def missing_flag(text: str) -> str | None:
    """The ``executor_runner`` flag a build rejected (built without the event tracer or the threadpool), if any."""
    m = _NO_TRACER.search(text)
    return m.group(1) if m else None
