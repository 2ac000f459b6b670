"""Ops a runtime inserts into the graph it runs, which the exported graph does not hold.

ONNX Runtime's NCHWc layout pass (x86, graph optimisation level ``all``) runs convolutions and pools on a blocked
channel layout and inserts ``ReorderInput`` (NCHW → NCHWc) before a run of such ops and ``ReorderOutput``
(NCHWc → NCHW) after it wherever a consumer needs plain NCHW: a concat, a split, a reshape, a channel shuffle.
They compute nothing and copy the tensor they convert, so they are ``layout``: zero FLOPs, and bytes moved = that
tensor read once and written once, counted at its NCHW size. The blocked copy pads channels up to the block
(8 or 16 floats), which is not counted: the bytes are a lower bound.

Which tensor: a ``ReorderInput`` converts the input of the op it serves, the next one in execution order; a
``ReorderOutput`` the output of the op before it. Profiles map these rows to the module of that op
(:func:`harness.measure.profile.map_ort_rows`); :func:`harness.analysis.accounts.runtime_op_accounts` gives them
their bytes from that op's row of the graph account.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from harness.proxies.categories import Category


class Converts(StrEnum):
    """Which tensor of the served op a runtime-inserted op copies."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True)
class RuntimeOp:
    """A kind of runtime-inserted op: its category, the neighbour it serves (-1 before, +1 after) and what it
    copies of it."""

    category: Category
    serves: int
    converts: Converts

    def bytes_moved(self, tensor_bytes: float) -> tuple[float, float]:
        """Bytes read and written to convert a tensor of ``tensor_bytes``: all of it, once each way."""
        return tensor_bytes, tensor_bytes


RUNTIME_OPS: dict[str, RuntimeOp] = {
    "ReorderInput": RuntimeOp(Category.LAYOUT, +1, Converts.INPUT),
    "ReorderOutput": RuntimeOp(Category.LAYOUT, -1, Converts.OUTPUT),
}


def runtime_category(op_type: str) -> Category | None:
    """The category of a runtime-inserted op type (None: not one)."""
    op = RUNTIME_OPS.get(op_type)
    return op.category if op is not None else None
