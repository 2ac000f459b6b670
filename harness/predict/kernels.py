"""Kernels: the units a runtime actually executes after its own fusions, and the features a regressor sees.

A kernel is one node of the graph the runtime runs (ONNX Runtime's optimized graph, whose node names are the
profiler's) or one op of the ``.tflite`` graph (XNNPACK runs one operator per TFLite op). Fused work belongs to
the kernel that runs it: a conv with its bias, activation and residual add is one kernel; a layout reorder ORT
inserts is a kernel of its own, although the exported graph never had it.

Features (:data:`FEATURES`) are one flat vector for every type, so one table holds every kernel: channels,
spatial sizes in and out, kernel size, stride, groups, FLOPs (1 MAC = 2 FLOPs, as :mod:`harness.proxies`), bytes
read / written / weights, arithmetic intensity, inputs, the fused activation, whether a residual add is fused,
how well the channels fill SIMD blocks (the power of two dividing them) and the implementation the runtime chose
where its graph names it (ORT's NCHWc kernels and FusedConv).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, TypedDict

import numpy as np

from harness.proxies.categories import Category


class KernelType(StrEnum):
    """What a kernel does; one regressor per type."""

    DENSE_CONV = "dense_conv"
    POINTWISE_CONV = "pointwise_conv"
    GROUPED_CONV = "grouped_conv"
    DEPTHWISE_CONV = "depthwise_conv"
    FULLY_CONNECTED = "fully_connected"
    ELEMENTWISE = "elementwise"  # add, mul, sub, div of same-shaped tensors
    BROADCAST = "broadcast"  # add / mul of a [N, C, H, W] tensor and a [N, C, 1, 1] one (an SE block's scale)
    ACTIVATION = "activation"  # an activation the runtime did not fuse
    POOLING = "pooling"
    GLOBAL_POOL = "global_pool"
    CONCAT = "concat"
    SPLIT = "split"  # split, slice, strided slice
    TRANSPOSE = "transpose"  # channel shuffles and layout transposes
    GATHER = "gather"
    RESHAPE = "reshape"  # views the runtime still runs as a node (copy or alias)
    PAD = "pad"
    REORDER = "reorder"  # ORT's NCHW <-> NCHWc layout conversions
    OTHER = "other"


_FROM_CATEGORY: dict[Category, KernelType] = {
    Category.DENSE_CONV: KernelType.DENSE_CONV,
    Category.POINTWISE_CONV: KernelType.POINTWISE_CONV,
    Category.GROUPED_CONV: KernelType.GROUPED_CONV,
    Category.DEPTHWISE_CONV: KernelType.DEPTHWISE_CONV,
    Category.FULLY_CONNECTED: KernelType.FULLY_CONNECTED,
    Category.ELEMENTWISE: KernelType.ELEMENTWISE,
    Category.ACTIVATION: KernelType.ACTIVATION,
    Category.POOLING: KernelType.POOLING,
    Category.GLOBAL_POOL_SE: KernelType.GLOBAL_POOL,
    Category.CHANNEL_SHUFFLE: KernelType.TRANSPOSE,  # its reshapes and gathers are typed by op type (_MOVEMENT)
    Category.LAYOUT: KernelType.TRANSPOSE,
    Category.PAD: KernelType.PAD,
}

# Data-movement op types (ONNX and TFLite spellings) whose category is too coarse for a regressor.
_MOVEMENT: dict[str, KernelType] = {
    "Concat": KernelType.CONCAT,
    "CONCATENATION": KernelType.CONCAT,
    "Split": KernelType.SPLIT,
    "Slice": KernelType.SPLIT,
    "SPLIT": KernelType.SPLIT,
    "SPLIT_V": KernelType.SPLIT,
    "SLICE": KernelType.SPLIT,
    "STRIDED_SLICE": KernelType.SPLIT,
    "Gather": KernelType.GATHER,
    "GatherElements": KernelType.GATHER,
    "GatherND": KernelType.GATHER,
    "GATHER": KernelType.GATHER,
    "GATHER_ND": KernelType.GATHER,
    "Reshape": KernelType.RESHAPE,
    "Flatten": KernelType.RESHAPE,
    "Squeeze": KernelType.RESHAPE,
    "Unsqueeze": KernelType.RESHAPE,
    "Identity": KernelType.RESHAPE,
    "RESHAPE": KernelType.RESHAPE,
    "SQUEEZE": KernelType.RESHAPE,
    "EXPAND_DIMS": KernelType.RESHAPE,
    "ReorderInput": KernelType.REORDER,
    "ReorderOutput": KernelType.REORDER,
}

CONV_TYPES = frozenset(
    {KernelType.DENSE_CONV, KernelType.POINTWISE_CONV, KernelType.GROUPED_CONV, KernelType.DEPTHWISE_CONV}
)
# Kernels whose time is their arithmetic (and what they gather): convolutions and fully connected layers. Every other
# type is memory-bound, its time the bytes it moves.
COMPUTE_TYPES = CONV_TYPES | {KernelType.FULLY_CONNECTED}

# Fused or standalone activation -> a small code the trees can split on (0: none).
ACTIVATION_CODES: dict[str, int] = {
    "relu": 1,
    "relu6": 2,
    "clip": 2,
    "relu_n1_to_1": 2,
    "sigmoid": 3,
    "hardsigmoid": 4,
    "hardswish": 5,
    "swish": 6,
    "tanh": 7,
    "leaky_relu": 8,
}


# Activation op types as ONNX (and ORT's fusions) and TFLite spell them -> the activation they compute.
ACTIVATION_OPS: dict[str, str] = {
    "Relu": "relu",
    "Clip": "clip",
    "Sigmoid": "sigmoid",
    "HardSigmoid": "hardsigmoid",
    "HardSwish": "hardswish",
    "LeakyRelu": "leaky_relu",
    "Tanh": "tanh",
    "QuickGelu": "swish",  # ORT's fusion of x * sigmoid(x)
    "RELU": "relu",
    "RELU6": "relu6",
    "LOGISTIC": "sigmoid",
    "HARD_SWISH": "hardswish",
    "TANH": "tanh",
    "LEAKY_RELU": "leaky_relu",
}


def activation_of(op_type: str) -> str:
    """The activation a standalone activation op computes (its lower-cased op type when the table lacks it)."""
    return ACTIVATION_OPS.get(op_type, op_type.lower())


def kernel_type_of(op_type: str, category: str | Category) -> KernelType:
    """The kernel type of an op from its op type (movement ops) or its proxy category."""
    if op_type in _MOVEMENT:
        return _MOVEMENT[op_type]
    try:
        return _FROM_CATEGORY.get(Category(category), KernelType.OTHER)
    except ValueError:
        return KernelType.OTHER


def broadcast_or(kind: KernelType, data_shapes: Sequence[tuple[int, ...] | None]) -> KernelType:
    """``kind``, or :attr:`KernelType.BROADCAST` for an element-wise op whose data inputs differ in size (one is
    broadcast over the other's spatial positions: it reads far less than it writes)."""
    sizes = {math.prod(s) for s in data_shapes if s is not None}
    return KernelType.BROADCAST if kind is KernelType.ELEMENTWISE and len(sizes) > 1 else kind


@dataclass(frozen=True)
class Kernel:
    """One executed kernel: its name as the runtime reports it, its type, and its features.

    Sizes are NCHW (``cin``/``h_in``/``w_in`` of the main input, ``cout``/``h_out``/``w_out`` of the output); for
    tensors of another rank ``elements_in``/``elements_out`` carry the size and the spatial fields stay 1.
    ``source_ops`` lists the exported graph's nodes the kernel runs (empty for nodes the runtime added).
    """

    name: str
    type: KernelType
    op_type: str
    module_path: str = ""
    cin: int = 1
    cout: int = 1
    h_in: int = 1
    w_in: int = 1
    h_out: int = 1
    w_out: int = 1
    kernel_size: int = 1
    stride: int = 1
    groups: int = 1
    flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    weight_bytes: int = 0
    elements_in: int = 0
    elements_out: int = 0
    inputs: int = 1
    rank: int = 4
    activation: str = ""
    fused_add: bool = False
    source_ops: tuple[str, ...] = ()
    impl: str = ""  # the implementation the runtime picked, where its graph says (ORT: "nchwc", "fused")
    # µs between two uses of its weights: one run of the model it is part of (0: timed alone in a loop, so its
    # weights never leave the cache). Not a feature the trees see; the base's cold-weight terms read it.
    reuse_us: float = 0.0

    @property
    def bytes_moved(self) -> int:
        """Memory access cost: activations read and written plus weights."""
        return self.bytes_read + self.bytes_written + self.weight_bytes

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved (0 for pure data movement)."""
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0

    def features(self) -> list[float]:
        """The feature vector, in :data:`FEATURES` order."""
        return [float(_FEATURE_GETTERS[name](self)) for name in FEATURES]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = self.type.value
        data["source_ops"] = list(self.source_ops)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Kernel:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["type"] = KernelType(values["type"])
        values["source_ops"] = tuple(values.get("source_ops") or ())
        return cls(**values)


_FEATURE_GETTERS: dict[str, Any] = {
    "cin": lambda k: k.cin,
    "cout": lambda k: k.cout,
    "h_in": lambda k: k.h_in,
    "w_in": lambda k: k.w_in,
    "h_out": lambda k: k.h_out,
    "w_out": lambda k: k.w_out,
    "kernel_size": lambda k: k.kernel_size,
    "stride": lambda k: k.stride,
    "groups": lambda k: k.groups,
    "channels_per_group": lambda k: k.cin / max(k.groups, 1),
    # How full the last SIMD block of channels is (runtimes pad channels to 8 or 16 floats: ORT's NCHWc, XNNPACK)
    "cin_fill": lambda k: k.cin / (16 * math.ceil(k.cin / 16)),
    "cout_fill": lambda k: k.cout / (16 * math.ceil(k.cout / 16)),
    "log_flops": lambda k: math.log1p(k.flops),
    "log_bytes_read": lambda k: math.log1p(k.bytes_read),
    "log_bytes_written": lambda k: math.log1p(k.bytes_written),
    "log_weight_bytes": lambda k: math.log1p(k.weight_bytes),
    "intensity": lambda k: k.intensity,
    "log_elements_out": lambda k: math.log1p(k.elements_out),
    "inputs": lambda k: k.inputs,
    "rank": lambda k: k.rank,
    "activation": lambda k: ACTIVATION_CODES.get(k.activation, 9 if k.activation else 0),
    "fused_add": lambda k: int(k.fused_add),
    # Whether the channels fill SIMD blocks exactly: ORT converts a conv to NCHWc only when its channels are a
    # multiple of the block (8 or 16 floats), and takes a slower generic path otherwise.
    "cin_align": lambda k: _alignment(k.cin),
    "cout_align": lambda k: _alignment(k.cout),
    "impl": lambda k: IMPL_CODES.get(k.impl, 9 if k.impl else 0),
}
FEATURES: tuple[str, ...] = tuple(_FEATURE_GETTERS)
IMPL_CODES: dict[str, int] = {"nchwc": 1, "fused": 2}


def _alignment(channels: int) -> int:
    """log2 of the largest power of two dividing ``channels``, capped at 5 (32 floats: beyond any SIMD block)."""
    if channels <= 0:
        return 0
    return min(5, (channels & -channels).bit_length() - 1)


# The linear terms of a type model's base (:mod:`harness.predict.regressor`), each a cost a kernel pays in
# proportion: its arithmetic, its memory traffic, and for convolutions the input it gathers through its windows
# (an im2col buffer or XNNPACK's indirection: every output pixel reads k·k·cin/groups inputs per group, so
# k·k·cin per pixel over all groups) and the groups it runs one small GEMM each. Without the last two a narrow
# grouped conv (256 groups of 2 channels, 7x7) was priced at half its time: its cost is gathering, not FLOPs.
# The last is a memory-bound kernel's traffic beyond :data:`CACHE_KNEE_BYTES`: the bandwidth it gets falls once its
# tensors outgrow the caches, and a base linear in bytes prices a large element-wise op at the in-cache rate.
#
# The cold-weight terms are a kernel's weight bytes once the interval between two uses of its weights
# (:attr:`Kernel.reuse_us`: one run of its model) passes each of :data:`REUSE_STEPS_US`, a staircase whose non-negative
# steps the fit learns per type: a model run back to back keeps its weights in the last-level cache only while one
# run is short (its own activations and, on a shared host, other guests evict them), and a probe timed alone never
# loses them. On the development machine fully connected layers of 0.8-8 MB of weights were profiled at 0.03-0.04
# ns per FLOP in models of under 1.7 ms (all but one; and as probes) and 0.09-0.15 in models of 2.8 ms and more,
# whatever the model's weights or bytes moved (a 1.6 ms model moving 32 MB kept them, a 4.3 ms one of 14 MB did
# not); priced at the cold rate, a 0.7 ms random net's 1280x1000 head came out at 3.5x its profiled time and the net
# at +35%. Refitted on eight stored ONNX Runtime builds and scored against every measurement of their seed's random
# nets (32 pairs, same measurements): within ±10% 74% -> 80% (mean; 18 pairs better, 13 equal, one lost a net; RMSE
# 10.1% -> 8.2%); zoo leave-one-family-out on the six builds with training nets 82% -> 85%. A probe's rows keep
# reuse 0, so runtimes whose rows are all probes (LiteRT on the host) learn no step and price as before (setting a
# probe's reuse to its own time instead let long compute-bound probes teach LiteRT steep steps: 63% -> 8%).
REUSE_STEPS_US: tuple[float, ...] = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
BASE_TERMS: tuple[str, ...] = ("flops", "bytes_moved", "window_bytes", "conv_groups", "bytes_beyond_knee",
                               *(f"weights_cold_after_{int(t)}us" for t in REUSE_STEPS_US))  # fmt: skip
# Where the base's per-byte cost of a memory-bound kernel may rise (its slope beyond is fitted per type,
# non-negative: zero where a device does not slow). Between the L2 (0.5-2 MiB) and last-level caches (8-32 MiB) of
# phone and desktop CPUs. On the development machine (32 MiB L3, shared with other guests) a LiteRT ADD of 2 M
# elements (24 MiB moved) took 2.9x and a MUL of 2.9 M elements 5x what the in-cache rate gives, and the random
# nets' 1024-1280-wide heads at 49-50 px (their swish, transpose and pool on 2.6-3.1 M elements) were
# under-predicted by 18-36%. The probes stop at 2 M elements, but binary ops of 0.7-2 M move 8-24 MiB, so the
# slope is learnt inside the probed range. Refitted on the nine stored 15-minute builds (same measurements), only
# nets with a kernel past the knee moved by more than 2 points, all twelve towards zero (LiteRT seed 1's #2:
# -36% -> -17%, -29% -> -9%; #21: -19% -> -6%, -18% -> -4%); a knee at 4 MiB did worse, and the term on
# convolutions too cost ONNX Runtime 4 points in three of four builds. (Probes past 2 M elements instead were
# tried and not kept: see the README.)
CACHE_KNEE_BYTES = 8 * 2**20


def window_bytes(kernel: Kernel) -> float:
    """Bytes a convolution gathers through its windows (fp32): output pixels x kernel area x input channels."""
    if kernel.type not in CONV_TYPES or kernel.kernel_size <= 1:
        return 0.0
    return 4.0 * kernel.h_out * kernel.w_out * kernel.kernel_size**2 * kernel.cin


def base_terms(kernel: Kernel) -> list[float]:
    """The kernel's :data:`BASE_TERMS`."""
    groups = float(kernel.groups) if kernel.type in CONV_TYPES else 0.0
    return [float(kernel.flops), float(kernel.bytes_moved), window_bytes(kernel), groups, bytes_beyond_knee(kernel),
            *cold_terms_at([kernel], kernel.reuse_us)[0].tolist()]  # fmt: skip


COLD_TERMS = slice(len(BASE_TERMS) - len(REUSE_STEPS_US), len(BASE_TERMS))  # their columns in a terms matrix


def cold_terms_at(kernels: Sequence[Kernel], reuse_us: float) -> np.ndarray:
    """The :data:`COLD_TERMS` columns of ``kernels`` had their reuse interval been ``reuse_us``: each kernel's weight
    bytes for every one of :data:`REUSE_STEPS_US` the interval passes, else 0."""
    passed = np.array([reuse_us > step for step in REUSE_STEPS_US], dtype=float)
    return np.array([float(k.weight_bytes) for k in kernels])[:, None] * passed[None, :]


def bytes_beyond_knee(kernel: Kernel) -> float:
    """A memory-bound kernel's bytes moved beyond :data:`CACHE_KNEE_BYTES` (0 for :data:`COMPUTE_TYPES`)."""
    if kernel.type in COMPUTE_TYPES:
        return 0.0
    return max(0.0, float(kernel.bytes_moved) - CACHE_KNEE_BYTES)


def feature_matrix(kernels: Sequence[Kernel]) -> tuple[np.ndarray, np.ndarray]:
    """What a type model reads of ``kernels``: the feature rows and the base's terms (:data:`BASE_TERMS`)."""
    features = np.array([k.features() for k in kernels], dtype=float).reshape(len(kernels), len(FEATURES))
    terms = np.array([base_terms(k) for k in kernels], dtype=float).reshape(len(kernels), len(BASE_TERMS))
    return features, terms


class Sizes(TypedDict):
    """A kernel's NCHW size fields (``Kernel(**sizes(...))``)."""

    cin: int
    cout: int
    h_in: int
    w_in: int
    h_out: int
    w_out: int


def sizes(kind: KernelType, first: tuple[int, ...] | None, out: tuple[int, ...] | None, layout: str = "NCHW") -> Sizes:
    """The size fields of a ``kind`` kernel reading ``first`` (its main input) and writing ``out``, in ``layout``."""
    _, h_in, w_in = nchw(first, layout)
    cout, h_out, w_out = nchw(out, layout)
    cin = input_channels(kind, first, layout)
    return {"cin": cin, "cout": cout, "h_in": h_in, "w_in": w_in, "h_out": h_out, "w_out": w_out}


def input_channels(kind: KernelType, shape: tuple[int, ...] | None, layout: str = "NCHW") -> int:
    """The channels (input features) of a kernel's main input: a fully connected layer's are the last axis of a
    [N, C] input (or any channels-last one), not the product :func:`nchw` gives other ranks."""
    cin = nchw(shape, layout)[0]
    if kind is KernelType.FULLY_CONNECTED and shape and (len(shape) == 2 or layout == "NHWC"):
        return int(shape[-1])
    return cin


def nchw(shape: tuple[int, ...] | None, layout: str = "NCHW") -> tuple[int, int, int]:
    """(C, H, W) of a rank-4 shape in ``layout``; other ranks give (last-but-spatial product, 1, 1)."""
    if not shape:
        return 1, 1, 1
    if len(shape) == 4:
        if layout == "NHWC":
            return int(shape[3]), int(shape[1]), int(shape[2])
        return int(shape[1]), int(shape[2]), int(shape[3])
    if len(shape) == 2:
        return int(shape[1]), 1, 1
    return int(math.prod(shape[1:])) if len(shape) > 1 else int(shape[0]), 1, 1
