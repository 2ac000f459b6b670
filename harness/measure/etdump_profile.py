"""ExecuTorch per-op profiles: the runner's ETDump read with ExecuTorch's Inspector and the program's ETRecord.

The runner (``--profile`` on a ``.pte``) runs an ETDump-enabled copy of the program and sends the ETDump back
whole; the ETRecord lies beside the program on the host (:func:`exporters.pte_export.etrecord_path`), so the
Inspector runs here. Its ``Execute`` block holds, per instruction of the program:

- a ``DELEGATE_CALL`` (an XNNPACK partition: the edge nodes it lowered, with their module paths), preceded by
  XNNPACK's own operator events in execution order. Those name the operator (``Convolution (NHWC, F32) DWConv #1``)
  but carry no graph node id, and have microsecond resolution;
- an ``OPERATOR_CALL`` (a portable kernel, e.g. the channel split XNNPACK does not take), with the one node it ran;
  the ``native_call_*`` event inside it is the same kernel again and is not counted twice.

Mapping (:func:`map_events`): within a delegate call, XNNPACK's compute operators (convolution, fully connected,
pooling, mean) are matched in order to the call's compute nodes, and kept only when the counts agree and every
pair is compatible (:data:`harness.proxies.executorch_ops.XNNPACK_RUNS`); then each takes its node's module path.
Otherwise, and for operators that have no node of their own (the layout ``Transpose`` XNNPACK adds around NHWC
subgraphs, reshapes, copies), a row is named by the op (``i<instruction>/<XNNPACK name>``, see
:func:`harness.proxies.executorch_ops.named_by_op`) and carries the module that holds the whole delegate call;
the notes list those calls (``unmapped_calls``) so a breakdown says it. A ``Transpose`` between two
``Static Reshape`` operators is a channel shuffle (with both reshapes), up to the number of ``permute`` nodes the
call lowered; any other is ``layout``. What a delegate call takes beyond the sum of its operators is one row
(``DELEGATE_CALL``, category ``other``). Times are medians over the profiled runs, warm-up runs left out.
"""

from __future__ import annotations

import base64
import statistics
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.base import Device
from devices.vocabulary import Format, PointOptions
from exporters.artifact import Artifact
from harness.measure.profile import OpProfile, ProfileError, median_us, time_model
from harness.measure.spec import Protocol
from harness.proxies.categories import Category
from harness.proxies.executorch_ops import (
    XNNPACK_RUNS,
    edge_category,
    edge_stem,
    xnnpack_category,
    xnnpack_kind,
    xnnpack_op_type,
)
from harness.store import OpTime

ET_KIND = "executorch-etdump"
DELEGATE_CALL = "DELEGATE_CALL"
OPERATOR_CALL = "OPERATOR_CALL"
_NATIVE_CALL = "native_call_"
_METHOD = "Method::execute"
_COMPUTE_NODES = frozenset().union(*XNNPACK_RUNS.values())
MIN_PROFILE_RUNS = 20


@dataclass(frozen=True)
class EtNode:
    """An edge-graph node an event ran: its name (``aten_convolution_default_6_``) and module path."""

    name: str
    module_path: str | None


@dataclass(frozen=True)
class EtEvent:
    """One event of the ETDump's ``Execute`` block, as the Inspector gives it."""

    name: str
    instruction: int | None
    delegated: bool  # an operator inside a delegate (XNNPACK), with no graph node id
    times_ms: tuple[float, ...]  # one per run
    nodes: tuple[EtNode, ...] = ()


def read_events(etdump: Path, etrecord: Path) -> list[EtEvent]:
    """The ``Execute`` events of ``etdump``, nodes resolved through ``etrecord``."""
    from executorch.devtools import Inspector

    with warnings.catch_warnings():  # the Inspector warns per node kwarg it does not model; none matter here
        warnings.simplefilter("ignore")
        inspector = Inspector(etdump_path=str(etdump), etrecord=str(etrecord))
    events: list[EtEvent] = []
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for event in block.events:
            raw = tuple(float(t) for t in event.perf_data.raw) if event.perf_data is not None else ()
            events.append(
                EtEvent(
                    name=str(event.name),
                    instruction=getattr(event, "_instruction_id", None),
                    delegated=bool(event.is_delegated_op),
                    times_ms=raw,
                    nodes=tuple(_nodes(event.module_hierarchy or {})),
                )
            )
    return events


def _nodes(hierarchy: Mapping[str, Mapping[str, Any]]) -> list[EtNode]:
    nodes = []
    for name, stack in hierarchy.items():
        paths = [str(entry[0]) for entry in stack.values() if entry]
        nodes.append(EtNode(name, max(paths, key=len) if paths else None))
    return nodes


def median_time_us(event: EtEvent, skip: int) -> float:
    """Median over the runs after the first ``skip`` (all runs when there are no more), in µs."""
    times = event.times_ms[skip:] or event.times_ms
    return float(statistics.median(times)) * 1e3 if times else 0.0


def map_events(events: Sequence[EtEvent], skip: int = 0) -> tuple[list[OpTime], dict[str, Any]]:
    """Per-op rows from the ``Execute`` events (see the module's note) and notes on how they were mapped."""
    rows: list[OpTime] = []  # rows named by the op alone are "i<instruction>/<XNNPACK name>" (see BY_OP_NAME)
    pending: list[EtEvent] = []  # XNNPACK operators waiting for the DELEGATE_CALL that holds them
    mapped_calls: list[int] = []
    unmapped: dict[str, str] = {}
    method_us: float | None = None
    to_node = by_name = 0  # XNNPACK operator rows mapped to a graph node / named by the op only
    for event in events:
        if event.delegated:
            pending.append(event)
        elif event.name == DELEGATE_CALL:
            ops, reason, mapped = _delegate_rows(event, pending, skip)
            rows.extend(ops)
            to_node += mapped
            by_name += len(pending) - mapped
            if reason is None:
                mapped_calls.append(event.instruction or 0)
            else:
                unmapped[f"i{event.instruction}"] = reason
            pending = []
        elif event.name == _METHOD:
            method_us = median_time_us(event, skip)
        elif event.name.startswith(_NATIVE_CALL):
            continue  # the kernel inside an OPERATOR_CALL, already timed by it
        else:
            rows.append(_operator_row(event, skip))
    if pending:  # XNNPACK events with no DELEGATE_CALL after them: keep them, by name
        rows.extend(_named_rows(pending, None, skip, _call_module([]), Category.POINTWISE_CONV))
        unmapped["(no delegate call)"] = f"{len(pending)} XNNPACK events followed by no DELEGATE_CALL"
        by_name += len(pending)
    notes = {
        "source": "ETDump read with executorch.devtools.Inspector and the ETRecord",
        "events": len(events),
        "xnnpack_ops": sum(1 for e in events if e.delegated),
        "delegate_calls": len(mapped_calls) + len([k for k in unmapped if k.startswith("i")]),
        "mapped_calls": len(mapped_calls),
        "unmapped_calls": unmapped,
        "xnnpack_ops_mapped_to_nodes": to_node,
        "xnnpack_ops_by_name": by_name,  # layout transposes, reshapes, copies, and compute ops of unmapped calls
        "method_execute_us": method_us,
        "warmup_runs_left_out": skip,
    }
    return rows, notes


def _delegate_rows(call: EtEvent, ops: Sequence[EtEvent], skip: int) -> tuple[list[OpTime], str | None, int]:
    """Rows of one delegate call's XNNPACK operators (and its own time beyond them), why its compute operators
    are not mapped to nodes (None: they are) and how many rows were mapped to a node."""
    module = _call_module(call.nodes)
    compute_events = [e for e in ops if xnnpack_kind(e.name) in XNNPACK_RUNS]
    compute_nodes = [n for n in call.nodes if edge_stem(n.name) in _COMPUTE_NODES]
    reason: str | None = None
    if len(compute_events) != len(compute_nodes):
        reason = f"{len(compute_events)} XNNPACK compute ops for {len(compute_nodes)} compute nodes"
    else:
        for event, node in zip(compute_events, compute_nodes, strict=True):
            if edge_stem(node.name) not in XNNPACK_RUNS[xnnpack_kind(event.name)]:
                reason = f"order disagrees: {xnnpack_op_type(event.name)} against {node.name}"
                break
    stems = {edge_stem(n.name) for n in call.nodes}
    fc_default = Category.FULLY_CONNECTED if "convolution" not in stems else Category.POINTWISE_CONV
    if reason is not None and "convolution" in stems and stems & {"linear", "addmm"}:
        reason += "; its Fully Connected ops count as pointwise convs (the call also lowered a linear layer)"
    rows = _named_rows(ops, call, skip, module, fc_default)
    mapped = 0
    if reason is None:
        mapped = len(compute_events)
        by_event = dict(zip((id(e) for e in compute_events), compute_nodes, strict=True))
        rows = [
            _with_node(row, by_event[id(event)]) if id(event) in by_event else row
            for row, event in zip(rows, ops, strict=True)
        ]
    rows = _mark_shuffles(rows, sum(1 for n in call.nodes if edge_stem(n.name).startswith("permute")))
    rest = median_time_us(call, skip) - sum(r.time_us for r in rows)
    if rest > 0:
        rows.append(
            OpTime(f"i{call.instruction}/{DELEGATE_CALL}", DELEGATE_CALL, rest, 1, Category.OTHER.value, module)
        )
    return rows, reason, mapped


def _named_rows(
    ops: Sequence[EtEvent], call: EtEvent | None, skip: int, module: str | None, fc_default: Category
) -> list[OpTime]:
    prefix = f"i{call.instruction}" if call is not None else "i?"
    rows = []
    for event in ops:
        category = xnnpack_category(event.name)
        if xnnpack_kind(event.name) == "Fully Connected":
            category = fc_default
        rows.append(
            OpTime(
                f"{prefix}/{event.name}",
                xnnpack_op_type(event.name),
                median_time_us(event, skip),
                1,
                category.value,
                module,
            )
        )
    return rows


def _with_node(row: OpTime, node: EtNode) -> OpTime:
    """The row of an XNNPACK operator mapped to ``node``: named after the node, as ORT's rows are."""
    category = xnnpack_category(row.node_name.split("/", 1)[1], node.name)
    return OpTime(node.name.rstrip("_"), row.op_type, row.time_us, row.calls, category.value, node.module_path)


def _mark_shuffles(rows: list[OpTime], permutes: int) -> list[OpTime]:
    """Static Reshape → Transpose → Static Reshape is a channel shuffle, at most ``permutes`` of them per call."""
    out = list(rows)
    found = 0
    for i in range(1, len(out) - 1):
        if found >= permutes:
            break
        before, here, after = out[i - 1], out[i], out[i + 1]
        if xnnpack_kind(here.op_type) == "Transpose" and all(
            xnnpack_kind(r.op_type) == "Static Reshape" for r in (before, after)
        ):
            for j in (i - 1, i, i + 1):
                r = out[j]
                shuffle = Category.CHANNEL_SHUFFLE.value
                out[j] = OpTime(r.node_name, r.op_type, r.time_us, r.calls, shuffle, r.module_path)
            found += 1
    return out


def _operator_row(event: EtEvent, skip: int) -> OpTime:
    node = event.nodes[0] if event.nodes else None
    name = node.name.rstrip("_") if node is not None else f"i{event.instruction}/{event.name}"
    op = f"aten.{edge_stem(node.name)}" if node is not None else event.name
    category = edge_category(node.name).value if node is not None else Category.OTHER.value
    return OpTime(name, op, median_time_us(event, skip), 1, category, node.module_path if node else None)


def _call_module(nodes: Sequence[EtNode]) -> str | None:
    """The deepest module holding every node of a delegate call (``''``: the model), None when none is known."""
    paths = [n.module_path.split(".") if n.module_path else [] for n in nodes if n.module_path is not None]
    if not paths:
        return None
    common: list[str] = []
    for level in zip(*paths, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def profile_pte(
    dev: Device,
    artifact: Artifact,
    etrecord: Path,
    threads: int,
    protocol: Protocol,
    options: PointOptions | None = None,
) -> OpProfile:
    """Run the ``.pte`` once with ``--profile`` on ``dev`` and read its ETDump against ``etrecord``."""
    if artifact.format is not Format.PTE:
        raise ProfileError(f"{artifact.path.name}: ETDump profiles need an ExecuTorch program, not {artifact.format}")
    if not etrecord.is_file():
        raise ProfileError(f"{artifact.path.name}: no ETRecord at {etrecord}; export the model again to recreate it")
    runs = max(MIN_PROFILE_RUNS, protocol.runs)
    result = time_model(dev, artifact.path, threads, protocol, options, profile=True, profile_runs=runs)
    blob = result.etdump
    if not blob or not blob.get("base64"):
        raise ProfileError(f"{artifact.path.name} on '{dev.name}': the runner sent no ETDump back")
    with tempfile.TemporaryDirectory(prefix="flopgap-etdump-") as tmp:
        path = Path(tmp) / "run.etdp"
        path.write_bytes(base64.b64decode(str(blob["base64"])))
        events = read_events(path, etrecord)
    if not events:
        raise ProfileError(f"{artifact.path.name}: the ETDump holds no Execute events (ExecuTorch built without them)")
    ops, notes = map_events(events, skip=int(blob.get("warmup_runs") or 0))
    notes.update({"profile_runs": runs, "runtime_version": result.runtime_version})
    return OpProfile(ET_KIND, tuple(ops), median_us(result), notes)
