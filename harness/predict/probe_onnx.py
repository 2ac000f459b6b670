"""A kernel config written as a minimal ONNX model: the kernel and nothing else (ORT's own layout nodes aside).

Written with ``onnx.helper`` rather than traced from torch: a probe takes milliseconds instead of a second of
export, which is what lets a build measure hundreds of kernels in its budget. Ops are spelled as the torch
exporter spells them for the zoo (Conv with bias then the activation node, Gemm with ``transB``, Split with a
sizes input, shuffle as Reshape → Transpose → Reshape), so ORT fuses them as it fuses real models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.predict.kernel_config import KernelConfig

OPSET = 18
_FLOAT = TensorProto.FLOAT


class OnnxGraph:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.count = 0

    def input(self, shape: list[int]) -> str:
        name = "x" if not self.inputs else f"x{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, _FLOAT, shape))
        return name

    def const(self, array: np.ndarray) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, shape: tuple[int, ...], fan_in: int) -> str:
        return self.const((self.rng.standard_normal(shape) * np.sqrt(2.0 / max(fan_in, 1))).astype(np.float32))

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"probe/{op}_{self.count}", **attrs))
        return out


def activation(g: OnnxGraph, x: str, act: str) -> str:
    if act == "relu":
        return g.node("Relu", [x])
    if act == "relu6":
        return g.node("Clip", [x, g.const(np.array(0, np.float32)), g.const(np.array(6, np.float32))])
    if act == "sigmoid":
        return g.node("Sigmoid", [x])
    if act == "hardsigmoid":
        return g.node("HardSigmoid", [x], alpha=1 / 6, beta=0.5)
    if act == "hardswish":
        return g.node("HardSwish", [x])
    if act == "swish":  # as torch exports SiLU; ORT fuses the pair into one QuickGelu
        return g.node("Mul", [x, g.node("Sigmoid", [x])])
    return x


def onnx_model(g: OnnxGraph, outputs: list[str], name: str) -> onnx.ModelProto:
    """The probe model of graph ``g`` with ``outputs`` (NCHW, batch 1, float32), shapes inferred."""
    values = [helper.make_tensor_value_info(y, _FLOAT, None) for y in outputs]
    graph = helper.make_graph(g.nodes, f"probe_{name}", g.inputs, values, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="flopgap-probe")
    model.ir_version = 10
    return onnx.shape_inference.infer_shapes(model)


def conv(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    x = g.input([1, cfg.cin, cfg.h, cfg.w])
    k, groups = cfg.kernel, cfg.groups
    w = g.weight((cfg.cout, cfg.cin // groups, k, k), cfg.cin // groups * k * k)
    pad = k // 2
    y = g.node("Conv", [x, w, g.const(np.zeros(cfg.cout, np.float32))], group=groups, kernel_shape=[k, k],
               pads=[pad] * 4, strides=[cfg.stride] * 2)  # fmt: skip
    if cfg.fused_add:
        y = g.node("Add", [y, g.input([1, cfg.cout, cfg.h_out, cfg.w_out])])
    y = activation(g, y, cfg.act)
    if cfg.act == "hardswish":  # ORT fuses it into the conv only when it feeds another node, as in a network
        y = g.node("Relu", [y])
    return [y]


def fully_connected(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    if cfg.variant == "conv":
        x = g.input([1, cfg.cin, 1, 1])
        w = g.weight((cfg.cout, cfg.cin, 1, 1), cfg.cin)
        return [activation(g, g.node("Conv", [x, w, g.const(np.zeros(cfg.cout, np.float32))], kernel_shape=[1, 1]),
                           cfg.act)]  # fmt: skip
    x = g.input([1, cfg.cin])
    w = g.weight((cfg.cout, cfg.cin), cfg.cin)
    return [g.node("Gemm", [x, w, g.const(np.zeros(cfg.cout, np.float32))], transB=1)]


def elementwise(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    x = g.input([1, cfg.cin, cfg.h, cfg.w])
    if cfg.variant == "mul_broadcast":  # configs drawn before broadcasts had a type of their own
        y = g.node("Mul", [x, g.input([1, cfg.cin, 1, 1])])
    else:
        y = g.node("Add" if cfg.variant == "add" else "Mul", [x, g.input([1, cfg.cin, cfg.h, cfg.w])])
    return [activation(g, y, cfg.act)]


def broadcast(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    """An SE block's scale (Mul) or a per-channel Add: a [1, C, H, W] tensor with a [1, C, 1, 1] one."""
    x = g.input([1, cfg.cin, cfg.h, cfg.w])
    return [g.node("Add" if cfg.variant == "add" else "Mul", [x, g.input([1, cfg.cin, 1, 1])])]


def standalone_activation(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    return [activation(g, g.input([1, cfg.cin, cfg.h, cfg.w]), cfg.act)]


def pooling(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    x = g.input([1, cfg.cin, cfg.h, cfg.w])
    pad = 1 if cfg.kernel == 3 else 0
    op = "MaxPool" if cfg.variant == "max" else "AveragePool"
    return [g.node(op, [x], kernel_shape=[cfg.kernel] * 2, strides=[cfg.stride] * 2, pads=[pad] * 4)]


def global_pool(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    x = g.input([1, cfg.cin, cfg.h, cfg.w])
    if cfg.variant == "mean":
        return [g.node("ReduceMean", [x, g.const(np.array([2, 3], np.int64))], keepdims=1)]
    return [g.node("GlobalAveragePool", [x])]


def concat(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    x = g.input([1, cfg.cin, cfg.h, cfg.w])
    return [g.node("Concat", [x, g.input([1, cfg.cout - cfg.cin, cfg.h, cfg.w])], axis=1)]


def split(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    x = g.input([1, cfg.cin, cfg.h, cfg.w])
    if cfg.variant == "split":
        sizes = g.const(np.array([cfg.cout, cfg.cin - cfg.cout], np.int64))
        g.count += 1
        outs = [f"t{g.count}", f"t{g.count}b"]
        g.nodes.append(helper.make_node("Split", [x, sizes], outs, name=f"probe/Split_{g.count}", axis=1))
        return outs
    return [g.node("Slice", [x, *(g.const(np.array(v, np.int64)) for v in ([cfg.cout], [cfg.cin], [1]))])]


def gather(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    """A channel shuffle as one Gather of the channels in shuffled order."""
    c, gr = cfg.cin, cfg.groups
    order = np.arange(c).reshape(gr, c // gr).T.reshape(-1).astype(np.int64)
    return [g.node("Gather", [g.input([1, c, cfg.h, cfg.w]), g.const(order)], axis=1)]


def reshape(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    """A channel shuffle's first reshape, to groups."""
    c, gr = cfg.cin, cfg.groups
    return [
        g.node("Reshape", [g.input([1, c, cfg.h, cfg.w]), g.const(np.array([1, gr, c // gr, cfg.h, cfg.w], np.int64))])
    ]


def transpose(g: OnnxGraph, cfg: KernelConfig) -> list[str]:
    """A channel shuffle's transpose of its groups, or a 4-D layout transpose."""
    c, gr = cfg.cin, cfg.groups
    if cfg.variant == "shuffle":
        return [g.node("Transpose", [g.input([1, gr, c // gr, cfg.h, cfg.w])], perm=[0, 2, 1, 3, 4])]
    if cfg.variant == "to_nhwc":
        return [g.node("Transpose", [g.input([1, c, cfg.h, cfg.w])], perm=[0, 2, 3, 1])]
    return [g.node("Transpose", [g.input([1, cfg.h, cfg.w, c])], perm=[0, 3, 1, 2])]
