"""Per-op cost rows and graph totals, shared by the ONNX and TFLite readers.

A reader turns its graph into :class:`Node` objects (tensors with static shapes, dtypes and whether they are
constant) and a table of handlers, ``op_type -> handler(node) -> Work``. A handler says what an op computes
(category, MACs, FLOPs) and which inputs are weights or mere arguments; :func:`cost_nodes` turns that into
bytes by one rule for every op:

- ``bytes_read``: every non-constant input, in full (slices and gathers: only what they copy out);
- ``bytes_written``: every output;
- ``weight_bytes``: every constant input as stored (int8 weights behind a dequantize count 1 byte each);
  ``params`` counts the elements of the weight and bias inputs of convs, FCs and matrix products only;
- inputs that are op arguments (shapes, permutations, axes, pads, quantization scales and zero points) are
  not counted;
- ``mac_bytes`` = read + written + weights: ShuffleNetV2's memory access cost, per op, in bytes;
- views (reshape, flatten, squeeze, unsqueeze, identity) are counted as a runtime that materialises them would
  move (read + write) and flagged ``is_view``: :attr:`Totals.view_bytes` says how much of the total that is.

An op with every input constant (fp16 or int8 weights dequantized, folded shape arithmetic) is evaluated once
when the model loads, not per inference: its row is kept, flagged ``constant``, with zero cost. An op without a
handler (or whose shapes are unknown) is category ``other`` with ``macs``/``flops`` None, bytes by the rule
above, and listed in :attr:`GraphAccount.unsupported`; totals sum the known FLOPs and say how many were not.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from harness.proxies.categories import Category

_PATTERN_NOTES = {Category.CHANNEL_SHUFFLE: "part of a channel shuffle (reshape → transpose → reshape)"}


@dataclass
class Tensor:
    """A graph tensor: static shape (None when unknown), element size, and whether it is a constant."""

    name: str
    shape: tuple[int, ...] | None
    dtype: str
    bits: int
    const: bool = False
    stored_bytes: int | None = None  # constants: bytes as stored in the file (None: own size)

    @property
    def numel(self) -> int | None:
        return None if self.shape is None else math.prod(self.shape)

    @property
    def nbytes(self) -> int | None:
        n = self.numel
        return None if n is None else n * self.bits // 8

    @property
    def storage(self) -> int:
        """Bytes read for a constant: what the file stores."""
        return self.stored_bytes if self.stored_bytes is not None else (self.nbytes or 0)


@dataclass
class Node:
    """One op of an exported graph, format-neutral."""

    index: int
    name: str
    op_type: str
    module_path: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    attrs: dict[str, Any] = field(default_factory=dict)

    def shape(self, i: int) -> tuple[int, ...]:
        """Shape of input ``i``; raises :class:`Unsupported` when it is absent or unknown."""
        t = self.inputs[i] if i < len(self.inputs) else None
        if t is None or t.shape is None:
            raise Unsupported(f"shape of input {i} unknown")
        return t.shape

    def out_shape(self, i: int = 0) -> tuple[int, ...]:
        if i >= len(self.outputs) or self.outputs[i].shape is None:
            raise Unsupported(f"shape of output {i} unknown")
        shape = self.outputs[i].shape
        assert shape is not None
        return shape

    def out_numel(self, i: int = 0) -> int:
        return math.prod(self.out_shape(i))

    def in_numel(self, i: int = 0) -> int:
        return math.prod(self.shape(i))


class Unsupported(Exception):
    """A handler cannot count this op (unknown shape, unhandled variant); the message says why."""


@dataclass(frozen=True)
class Work:
    """What a handler says about one op."""

    category: Category
    macs: int = 0
    flops: int = 0
    weights: tuple[int, ...] = ()  # input positions holding weights and biases (counted as params)
    args: tuple[int, ...] = ()  # input positions that are op arguments (shape, perm, axes...): not counted
    touched_only: bool = False  # input 0 is read only where the output copies from (slice, gather)
    is_view: bool = False
    fused_activation: str | None = None


Handler = Callable[[Node], Work]


@dataclass(frozen=True)
class OpCost:
    """One op's accounting; ``macs``/``flops`` are None exactly when the op is unsupported."""

    index: int
    name: str
    op_type: str
    module_path: str
    category: str
    macs: int | None
    flops: int | None
    params: int
    bytes_read: int
    bytes_written: int
    weight_bytes: int
    out_shape: tuple[int, ...] | None
    dtype: str
    is_view: bool = False
    constant: bool = False
    fused_activation: str | None = None
    supported: bool = True
    note: str = ""

    @property
    def mac_bytes(self) -> int:
        """Memory access cost (ShuffleNetV2's MAC) in bytes: read + written + weights."""
        return self.bytes_read + self.bytes_written + self.weight_bytes

    @property
    def intensity(self) -> float | None:
        """Arithmetic intensity, FLOPs per byte moved (None when FLOPs are unknown or nothing moves)."""
        if self.flops is None or self.mac_bytes == 0:
            return None
        return self.flops / self.mac_bytes


@dataclass(frozen=True)
class Totals:
    """Whole-graph sums; ``macs``/``flops`` cover the supported ops only (a lower bound when any are not).

    ``params`` sums the ops' weight inputs (a weight shared by two ops would count twice; none of the zoo's are).
    """

    ops: int
    macs: int
    flops: int
    params: int
    bytes_read: int
    bytes_written: int
    weight_bytes: int
    view_bytes: int  # part of read + written that belongs to view ops (reshape and friends)
    unsupported_ops: int
    unsupported_types: dict[str, int]

    @property
    def mac_bytes(self) -> int:
        return self.bytes_read + self.bytes_written + self.weight_bytes

    @property
    def intensity(self) -> float | None:
        return self.flops / self.mac_bytes if self.mac_bytes else None

    @property
    def complete(self) -> bool:
        return self.unsupported_ops == 0


COLUMNS = [*(f.name for f in fields(OpCost)), "mac_bytes", "intensity"]
SUM_COLUMNS = ("macs", "flops", "params", "bytes_read", "bytes_written", "weight_bytes", "mac_bytes")


@dataclass
class GraphAccount:
    """Per-op accounting of one exported graph."""

    path: Path
    format: str
    ops: list[OpCost]
    totals: Totals
    unsupported: list[OpCost]

    def frame(self) -> pd.DataFrame:
        """One row per op, graph order; ``macs``/``flops`` are nullable integers (NA = unsupported)."""
        rows = [{**asdict(op), "mac_bytes": op.mac_bytes, "intensity": op.intensity} for op in self.ops]
        df = pd.DataFrame(rows, columns=list(COLUMNS))
        for col in ("macs", "flops"):
            df[col] = df[col].astype("Int64")
        df["intensity"] = df["intensity"].astype("float64")
        return df

    def totals_by_category(self) -> pd.DataFrame:
        """Sums per category (ops, MACs, FLOPs, bytes, unsupported count) with FLOP and byte shares."""
        df = self.frame()
        grouped = df.groupby("category", sort=False)
        out = grouped[list(SUM_COLUMNS)].sum(min_count=0)
        out.insert(0, "ops", grouped.size())
        out["unsupported"] = grouped["supported"].apply(lambda s: int((~s).sum()))
        total_flops = self.totals.flops or 1
        total_bytes = self.totals.mac_bytes or 1
        out["flops_share"] = out["flops"].astype("float64") / total_flops
        out["bytes_share"] = out["mac_bytes"] / total_bytes
        out["intensity"] = out["flops"].astype("float64") / out["mac_bytes"].where(out["mac_bytes"] > 0)
        order = [c.value for c in Category if c.value in out.index]
        return out.loc[order]


def propagate_constants(nodes: Sequence[Node]) -> None:
    """Mark the outputs of ops whose every input is constant as constants (graph order is topological).

    Such an output keeps the storage of the op's first input, so an int8 weight dequantized to float still
    reads one byte per element in the op that consumes it.
    """
    for node in nodes:
        present = [t for t in node.inputs if t is not None]
        if not present and node.op_type != "Constant":
            continue
        if all(t.const for t in present):
            stored = present[0].storage if present else None
            for out in node.outputs:
                out.const = True
                out.stored_bytes = stored


def cost_nodes(
    nodes: Sequence[Node],
    handlers: Mapping[str, Handler],
    path: Path,
    fmt: str,
    categories: Mapping[int, Category] | None = None,
) -> GraphAccount:
    """Run each node through its handler and the byte rule; collect rows, totals and the unsupported ops.

    ``categories`` (node index → category) overrides what a handler says for ops a multi-node pattern claims
    (:func:`harness.proxies.patterns.channel_shuffle_categories`); such rows say so in their ``note``.
    """
    rows = [_cost(node, handlers.get(node.op_type)) for node in nodes]
    for i, row in enumerate(rows):
        category = (categories or {}).get(row.index)
        if category is not None and row.supported and not row.constant:
            rows[i] = replace(row, category=category.value, note=row.note or _PATTERN_NOTES.get(category, ""))
    unsupported = [r for r in rows if not r.supported]
    totals = Totals(
        ops=len(rows),
        macs=sum(r.macs or 0 for r in rows),
        flops=sum(r.flops or 0 for r in rows),
        params=sum(r.params for r in rows),
        bytes_read=sum(r.bytes_read for r in rows),
        bytes_written=sum(r.bytes_written for r in rows),
        weight_bytes=sum(r.weight_bytes for r in rows),
        view_bytes=sum(r.bytes_read + r.bytes_written for r in rows if r.is_view),
        unsupported_ops=len(unsupported),
        unsupported_types=dict(Counter(r.op_type for r in unsupported).most_common()),
    )
    return GraphAccount(path=path, format=fmt, ops=rows, totals=totals, unsupported=unsupported)


def _cost(node: Node, handler: Handler | None) -> OpCost:
    out = node.outputs[0] if node.outputs else None
    base: dict[str, Any] = {
        "index": node.index,
        "name": node.name,
        "op_type": node.op_type,
        "module_path": node.module_path,
        "out_shape": out.shape if out is not None else None,
        "dtype": out.dtype if out is not None else "",
    }
    present = [t for t in node.inputs if t is not None]
    if node.outputs and all(o.const for o in node.outputs) and (present or node.op_type == "Constant"):
        category = Category.OTHER
        if handler is not None:
            with contextlib.suppress(Unsupported):
                category = handler(node).category
        return OpCost(
            **base, category=category.value, macs=0, flops=0, params=0, bytes_read=0, bytes_written=0,
            weight_bytes=0, constant=True, note="constant inputs only: evaluated once at load",
        )  # fmt: skip
    if handler is None:
        return _unsupported(node, base, f"no handler for {node.op_type}")
    try:
        work = handler(node)
    except Unsupported as exc:
        return _unsupported(node, base, str(exc))
    read, weight_bytes, params = _inputs(node, work)
    written = sum(o.nbytes or 0 for o in node.outputs)
    if work.touched_only:
        first = node.inputs[0] if node.inputs else None
        if first is not None and not first.const:
            read += min(first.nbytes or 0, written)
    return OpCost(
        **base,
        category=work.category.value,
        macs=work.macs,
        flops=work.flops,
        params=params,
        bytes_read=read,
        bytes_written=written,
        weight_bytes=weight_bytes,
        is_view=work.is_view,
        fused_activation=work.fused_activation,
    )


def _inputs(node: Node, work: Work) -> tuple[int, int, int]:
    read = weight_bytes = params = 0
    for i, t in enumerate(node.inputs):
        if t is None or i in work.args:
            continue
        if t.const:
            weight_bytes += t.storage
            if i in work.weights:
                params += t.numel or 0
        elif not (work.touched_only and i == 0):
            read += t.nbytes or 0
    return read, weight_bytes, params


def _unsupported(node: Node, base: dict[str, Any], reason: str) -> OpCost:
    read, weight_bytes, _ = _inputs(node, Work(Category.OTHER))
    return OpCost(
        **base,
        category=Category.OTHER.value,
        macs=None,
        flops=None,
        params=0,
        bytes_read=read,
        bytes_written=sum(o.nbytes or 0 for o in node.outputs),
        weight_bytes=weight_bytes,
        supported=False,
        note=reason,
    )
