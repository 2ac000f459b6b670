"""LiteRT kernels timed inside whole models: ``benchmark_model --enable_op_profiling`` rows joined to kernels.

The tool lists its rows in run order: TFLite ops (``CONV_2D``, named ``[tensor]:<node>``) where the builtin kernels
run, and, where XNNPACK runs the graph, the delegate's own operators (``Convolution (NHWC, F32) IGEMM``, named
``Delegate/<operator>:<index>``) beside the delegate node that holds them all (TFLite 2.9.1 and later). Both follow
the graph's op order, so :func:`join_profile` walks rows and kernels (:func:`~harness.predict.tflite_kernels.
tflite_kernels`) together, pairing each row with the next kernel its operator can run: kernels the delegate runs
as no operator (a reshape it elides) get no row, and a concatenation or split XNNPACK runs as one copy per tensor
sums its copies. A row no kernel nearby can run is left out, never forced onto another type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.predict.kernels import Kernel, KernelType

# XNNPACK operator names (before " (layout, type)") -> the TFLite ops each runs.
_ACTIVATIONS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "HARD_SWISH", "LOGISTIC", "TANH",
                          "LEAKY_RELU", "ELU", "PRELU"})  # fmt: skip
_BINARY = frozenset({"ADD", "MUL", "SUB", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM"})
_MOVES = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "SPLIT", "SPLIT_V", "SLICE", "STRIDED_SLICE"})
XNNPACK_OPS: dict[str, frozenset[str]] = {
    "Convolution": frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"}),
    "Deconvolution": frozenset({"TRANSPOSE_CONV"}),
    # XNNPACK runs a 1x1 convolution of stride 1 as a fully connected GEMM over the pixels (NC layout).
    "Fully Connected": frozenset({"FULLY_CONNECTED", "CONV_2D"}),
    "Batch Matrix Multiply": frozenset({"BATCH_MATMUL"}),
    "Global Average Pooling": frozenset({"MEAN", "AVERAGE_POOL_2D"}),
    "Mean": frozenset({"MEAN"}),
    "Average Pooling": frozenset({"AVERAGE_POOL_2D"}),
    "Max Pooling": frozenset({"MAX_POOL_2D"}),
    "Add": frozenset({"ADD"}),
    "Multiply": frozenset({"MUL"}),
    "Subtract": frozenset({"SUB"}),
    "Divide": frozenset({"DIV"}),
    "Binary Elementwise": _BINARY,
    "Clamp": frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"}),
    "HardSwish": frozenset({"HARD_SWISH"}),
    "Sigmoid": frozenset({"LOGISTIC"}),
    "Tanh": frozenset({"TANH"}),
    "Leaky ReLU": frozenset({"LEAKY_RELU"}),
    "ELU": frozenset({"ELU"}),
    "PReLU": frozenset({"PRELU"}),
    "Unary Elementwise": _ACTIVATIONS,
    "Softmax": frozenset({"SOFTMAX"}),
    "Copy": _MOVES,
    "Concatenate": frozenset({"CONCATENATION"}),
    "Slice": frozenset({"SLICE", "STRIDED_SLICE", "SPLIT", "SPLIT_V"}),
    "Even Split": frozenset({"SPLIT", "SPLIT_V"}),
    "Transpose": frozenset({"TRANSPOSE"}),
    "Constant Pad": frozenset({"PAD", "PADV2"}),
    "Resize Bilinear": frozenset({"RESIZE_BILINEAR"}),
}
# Node types of a delegate's own row: the sum of its operators, never one kernel's time.
DELEGATE_NODES = frozenset({"TfLiteXNNPackDelegate", "DELEGATE"})
# XNNPACK operators that run a concatenation or a split one tensor at a time.
_COPIES = frozenset({"Copy", "Slice"})
LOOKAHEAD = 4  # kernels a row may skip past (ones the delegate elided) to find its own


@dataclass(frozen=True)
class ProfiledOp:
    """One row of the tool's op profile: its node type and its average time per invoke."""

    op_type: str
    time_us: float


def runs(op_type: str) -> frozenset[str]:
    """The TFLite ops a profile row of node type ``op_type`` can be (itself, for a builtin kernel's row)."""
    return XNNPACK_OPS.get(_operator(op_type), frozenset({op_type}))


def join_profile(rows: Sequence[ProfiledOp], kernels: Sequence[Kernel]) -> list[tuple[Kernel, float]]:
    """Each kernel the profile times, with its time in µs, in kernel order (see the module doc)."""
    times: dict[int, float] = {}
    for row, found in zip(rows, pair_rows(rows, kernels), strict=True):
        if found is not None:
            times[found] = times.get(found, 0.0) + row.time_us
    return [(kernels[i], t) for i, t in sorted(times.items()) if t > 0]


def pair_rows(rows: Sequence[ProfiledOp], kernels: Sequence[Kernel]) -> list[int | None]:
    """For each row, the index of the kernel it times (the copies of a concatenation or split: the same kernel);
    None for a delegate's own row and for a row no kernel nearby can run."""
    out: list[int | None] = []
    at = 0  # the first kernel not yet timed
    last, copies_left = -1, 0
    for row in rows:
        if row.op_type in DELEGATE_NODES:
            out.append(None)  # with its operators listed it is their sum; without, no one kernel's time
            continue
        ops = runs(row.op_type)
        if copies_left > 0 and _operator(row.op_type) in _COPIES and kernels[last].op_type in ops:
            out.append(last)  # the next copy of the concatenation (or split) just timed
            copies_left -= 1
            continue
        found = next((i for i in range(at, min(at + LOOKAHEAD, len(kernels))) if kernels[i].op_type in ops), None)
        out.append(found)
        if found is None:
            continue
        last, at = found, found + 1
        copies_left = _copies(kernels[found]) - 1 if _operator(row.op_type) in _COPIES else 0
    return out


def _operator(op_type: str) -> str:
    return op_type.split(" (", 1)[0].strip()


def _copies(kernel: Kernel) -> int:
    """How many copy operators XNNPACK runs for a concatenation (one per input) or a split (one per output)."""
    if kernel.type is KernelType.CONCAT:
        return max(1, kernel.inputs)
    if kernel.op_type in ("SPLIT", "SPLIT_V"):  # a SLICE or STRIDED_SLICE has one output
        return max(1, round(kernel.cin / max(kernel.cout, 1)))
    return 1
