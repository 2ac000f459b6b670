"""Op categories of what ExecuTorch runs: XNNPACK's operators (as its ETDump events name them) and the edge ops
left to ExecuTorch's portable kernels.

XNNPACK runs NHWC: a delegate whose graph was written NCHW gets ``Transpose`` operators at its edges and around
reshapes, which are ``layout``. It rewrites 1×1 convolutions as ``Fully Connected`` GEMMs, so an FC event is a
pointwise conv or a linear layer depending on the node it ran (see :func:`xnnpack_category`). A convolution's
name says depthwise (``DWConv``) but not grouped from dense: ``IGEMM``/``GEMM`` convolutions are ``dense_conv``
unless the node they ran is known.
"""

from __future__ import annotations

import re

from harness.proxies.categories import Category

# XNNPACK operator kind (the event name up to the first " (") -> category.
XNNPACK_KINDS: dict[str, Category] = {
    "Convolution": Category.DENSE_CONV,
    "Deconvolution": Category.DENSE_CONV,
    "Fully Connected": Category.POINTWISE_CONV,
    "Max Pooling": Category.POOLING,
    "Average Pooling": Category.POOLING,
    "Global Average Pooling": Category.GLOBAL_POOL_SE,
    "Mean": Category.GLOBAL_POOL_SE,
    "Transpose": Category.LAYOUT,
    "Static Reshape": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "Copy": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "Concatenate": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "Split": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "Slice": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "Constant Pad": Category.PAD,
    "Add": Category.ELEMENTWISE,
    "Subtract": Category.ELEMENTWISE,
    "Multiply": Category.ELEMENTWISE,
    "Divide": Category.ELEMENTWISE,
    "Maximum": Category.ELEMENTWISE,
    "Minimum": Category.ELEMENTWISE,
    "Clamp": Category.ACTIVATION,
    "HardSwish": Category.ACTIVATION,
    "Sigmoid": Category.ACTIVATION,
    "Tanh": Category.ACTIVATION,
    "ELU": Category.ACTIVATION,
    "Leaky ReLU": Category.ACTIVATION,
    "Softmax": Category.ACTIVATION,
    "Convert": Category.QUANTIZE,
}

# Edge op (``aten.split_with_sizes_copy``) name stems -> category, for ops outside the delegate.
EDGE_OPS: dict[str, Category] = {
    "convolution": Category.DENSE_CONV,
    "linear": Category.FULLY_CONNECTED,
    "addmm": Category.FULLY_CONNECTED,
    "split": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "cat": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "view": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "slice": Category.RESHAPE_CONCAT_SPLIT_SLICE,
    "clone": Category.LAYOUT,
    "permute": Category.LAYOUT,
    "add": Category.ELEMENTWISE,
    "mul": Category.ELEMENTWISE,
    "sub": Category.ELEMENTWISE,
    "relu": Category.ACTIVATION,
    "hardtanh": Category.ACTIVATION,
    "hardswish": Category.ACTIVATION,
    "sigmoid": Category.ACTIVATION,
    "max_pool2d": Category.POOLING,
    "avg_pool2d": Category.POOLING,
    "mean": Category.GLOBAL_POOL_SE,
    "constant_pad": Category.PAD,
    "quantize": Category.QUANTIZE,
    "dequantize": Category.QUANTIZE,
}

# Which edge ops an XNNPACK operator kind can have run: the order-based mapping checks every pair against this.
XNNPACK_RUNS: dict[str, frozenset[str]] = {
    "Convolution": frozenset({"convolution"}),
    "Fully Connected": frozenset({"convolution", "linear", "addmm"}),
    "Max Pooling": frozenset({"max_pool2d"}),
    "Average Pooling": frozenset({"avg_pool2d"}),
    "Global Average Pooling": frozenset({"mean", "avg_pool2d"}),
    "Mean": frozenset({"mean"}),
}
_SUFFIX = re.compile(r"\s+#\d+$")
# Profile rows of XNNPACK operators that no graph node could be given to: "i<instruction>/<XNNPACK op name>".
_BY_OP_NAME = re.compile(r"^i(\d+|\?)/")


def named_by_op(node_name: str) -> bool:
    """Whether an ExecuTorch profile row is reported by XNNPACK's op name only (no graph node: see
    :mod:`harness.measure.etdump_profile`)."""
    return bool(_BY_OP_NAME.match(node_name))


def xnnpack_kind(event_name: str) -> str:
    """``Convolution`` for ``Convolution (NHWC, F32) DWConv #2``."""
    return event_name.split(" (", 1)[0].strip()


def xnnpack_op_type(event_name: str) -> str:
    """The event name without XNNPACK's per-subgraph counter: ``Convolution (NHWC, F32) DWConv``."""
    return _SUFFIX.sub("", event_name)


def edge_stem(op: str) -> str:
    """``split_with_sizes_copy`` for ``aten.split_with_sizes_copy.default`` or its node ``aten_split_..._4_``."""
    text = op.replace("aten_", "aten.", 1) if op.startswith("aten_") else op
    text = text.replace("dim_order_ops__", "", 1).replace("dim_order_ops.", "", 1).lstrip("_")
    text = re.sub(r"(_default|_out|_Tensor)?(_\d+)?_?$", "", text)
    for suffix in (".default", ".out", ".Tensor"):
        text = text.removesuffix(suffix)
    return text.rsplit(".", 1)[-1]


def edge_category(op: str) -> Category:
    stem = edge_stem(op)
    for key, category in EDGE_OPS.items():
        if stem == key or stem.startswith(key + "_"):
            return category
    return Category.OTHER


def xnnpack_category(event_name: str, node_op: str | None = None) -> Category:
    """Category of an XNNPACK operator; ``node_op`` (the edge op it ran, where known) decides what the name cannot."""
    kind = xnnpack_kind(event_name)
    if kind == "Convolution" and "DWConv" in event_name:
        return Category.DEPTHWISE_CONV
    if kind == "Fully Connected" and node_op is not None:
        return Category.FULLY_CONNECTED if edge_stem(node_op) in {"linear", "addmm"} else Category.POINTWISE_CONV
    return XNNPACK_KINDS.get(kind, Category.OTHER)
