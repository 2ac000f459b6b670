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

from harness.predict.kernels import KernelType
from harness.predict.space import KernelConfig

OPSET = 18
_FLOAT = TensorProto.FLOAT


class _Graph:
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


def _activation(g: _Graph, x: str, act: str) -> str:
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


def onnx_probe(cfg: KernelConfig, seed: int = 0) -> onnx.ModelProto:
    """The probe model of ``cfg`` (NCHW, batch 1, float32)."""
    g = _Graph(np.random.default_rng(seed))
    t = cfg.type
    if t in (KernelType.DENSE_CONV, KernelType.POINTWISE_CONV, KernelType.GROUPED_CONV, KernelType.DEPTHWISE_CONV):
        x = g.input([1, cfg.cin, cfg.h, cfg.w])
        k, groups = cfg.kernel, cfg.groups
        w = g.weight((cfg.cout, cfg.cin // groups, k, k), cfg.cin // groups * k * k)
        pad = k // 2
        y = g.node("Conv", [x, w, g.const(np.zeros(cfg.cout, np.float32))], group=groups, kernel_shape=[k, k],
                   pads=[pad] * 4, strides=[cfg.stride] * 2)  # fmt: skip
        if cfg.fused_add:
            y = g.node("Add", [y, g.input([1, cfg.cout, cfg.h_out, cfg.w_out])])
        y = _activation(g, y, cfg.act)
        if cfg.act == "hardswish":  # ORT fuses it into the conv only when it feeds another node, as in a network
            y = g.node("Relu", [y])
    elif t is KernelType.FULLY_CONNECTED:
        if cfg.variant == "conv":
            x = g.input([1, cfg.cin, 1, 1])
            w = g.weight((cfg.cout, cfg.cin, 1, 1), cfg.cin)
            y = _activation(g, g.node("Conv", [x, w, g.const(np.zeros(cfg.cout, np.float32))], kernel_shape=[1, 1]),
                            cfg.act)  # fmt: skip
        else:
            x = g.input([1, cfg.cin])
            w = g.weight((cfg.cout, cfg.cin), cfg.cin)
            y = g.node("Gemm", [x, w, g.const(np.zeros(cfg.cout, np.float32))], transB=1)
    elif t is KernelType.ELEMENTWISE:
        x = g.input([1, cfg.cin, cfg.h, cfg.w])
        if cfg.variant == "mul_broadcast":
            y = g.node("Mul", [x, g.input([1, cfg.cin, 1, 1])])
        else:
            y = g.node("Add" if cfg.variant == "add" else "Mul", [x, g.input([1, cfg.cin, cfg.h, cfg.w])])
        y = _activation(g, y, cfg.act)
    elif t is KernelType.ACTIVATION:
        y = _activation(g, g.input([1, cfg.cin, cfg.h, cfg.w]), cfg.act)
    elif t is KernelType.POOLING:
        x = g.input([1, cfg.cin, cfg.h, cfg.w])
        pad = 1 if cfg.kernel == 3 else 0
        op = "MaxPool" if cfg.variant == "max" else "AveragePool"
        y = g.node(op, [x], kernel_shape=[cfg.kernel] * 2, strides=[cfg.stride] * 2, pads=[pad] * 4)
    elif t is KernelType.GLOBAL_POOL:
        x = g.input([1, cfg.cin, cfg.h, cfg.w])
        if cfg.variant == "mean":
            y = g.node("ReduceMean", [x, g.const(np.array([2, 3], np.int64))], keepdims=1)
        else:
            y = g.node("GlobalAveragePool", [x])
    elif t is KernelType.CONCAT:
        x = g.input([1, cfg.cin, cfg.h, cfg.w])
        y = g.node("Concat", [x, g.input([1, cfg.cout - cfg.cin, cfg.h, cfg.w])], axis=1)
    elif t is KernelType.SPLIT:
        x = g.input([1, cfg.cin, cfg.h, cfg.w])
        if cfg.variant == "split":
            sizes = g.const(np.array([cfg.cout, cfg.cin - cfg.cout], np.int64))
            g.count += 1
            outs = [f"t{g.count}", f"t{g.count}b"]
            g.nodes.append(helper.make_node("Split", [x, sizes], outs, name=f"probe/Split_{g.count}", axis=1))
            y = outs[0]
            extra = outs[1]
        else:
            y = g.node("Slice", [x, *(g.const(np.array(v, np.int64)) for v in ([cfg.cout], [cfg.cin], [1]))])
            extra = ""
    elif t in (KernelType.TRANSPOSE, KernelType.RESHAPE, KernelType.GATHER):
        y = _shuffle_part(g, cfg)
    else:
        raise ValueError(f"no ONNX probe for kernel type {t.value}")
    outputs = [helper.make_tensor_value_info(y, _FLOAT, None)]
    if t is KernelType.SPLIT and extra:
        outputs.append(helper.make_tensor_value_info(extra, _FLOAT, None))
    graph = helper.make_graph(g.nodes, f"probe_{t.value}", g.inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="flopgap-probe")
    model.ir_version = 10
    return onnx.shape_inference.infer_shapes(model)


def _shuffle_part(g: _Graph, cfg: KernelConfig) -> str:
    """The one op of a channel shuffle a probe times: the reshape to groups, the transpose, or a gather."""
    c, gr = cfg.cin, cfg.groups
    if cfg.type is KernelType.GATHER:
        x = g.input([1, c, cfg.h, cfg.w])
        order = np.arange(c).reshape(gr, c // gr).T.reshape(-1).astype(np.int64)
        return g.node("Gather", [x, g.const(order)], axis=1)
    if cfg.type is KernelType.RESHAPE:
        x = g.input([1, c, cfg.h, cfg.w])
        return g.node("Reshape", [x, g.const(np.array([1, gr, c // gr, cfg.h, cfg.w], np.int64))])
    if cfg.variant == "shuffle":
        x = g.input([1, gr, c // gr, cfg.h, cfg.w])
        return g.node("Transpose", [x], perm=[0, 2, 1, 3, 4])
    if cfg.variant == "to_nhwc":
        return g.node("Transpose", [g.input([1, c, cfg.h, cfg.w])], perm=[0, 2, 3, 1])
    return g.node("Transpose", [g.input([1, cfg.h, cfg.w, c])], perm=[0, 3, 1, 2])
