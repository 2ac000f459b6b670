"""ONNX graphs: static shapes from ``onnx.shape_inference``, one handler per op type.

Module paths come from the node names the exporter writes (``<module path>/<OpType>``, read by
:func:`exporters.onnx_export.node_module_path`), so every row maps back to its torch module exactly; ops of a
model's own ``forward`` get ``''``. Convolution weights are ``[Cout, Cin/G, kh, kw]``; in an int8 QDQ graph they
reach the Conv through a DequantizeLinear of an int8 initializer, which counts as a constant (one byte per
weight read, the DequantizeLinear row itself costs nothing per inference).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, shape_inference

from exporters.onnx_export import node_module_path, ort_node_names
from harness.proxies import rules
from harness.proxies.categories import Category, conv_category
from harness.proxies.costs import (
    GraphAccount,
    Handler,
    Node,
    Tensor,
    Unsupported,
    Work,
    cost_nodes,
    propagate_constants,
)
from harness.proxies.patterns import channel_shuffle_categories


def account_onnx(path: Path) -> GraphAccount:
    """Account every node of the ONNX model at ``path``."""
    nodes = read_onnx(path)
    propagate_constants(nodes)
    return cost_nodes(nodes, HANDLERS, path, "onnx", channel_shuffle_categories(nodes))


def read_onnx(path: Path) -> list[Node]:
    """Nodes of the main graph with shape-inferred tensors."""
    model = onnx.load(str(path))
    model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    graph = model.graph
    tensors: dict[str, Tensor] = {}
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        tensors[vi.name] = _from_value_info(vi)
    for init in graph.initializer:
        tensors[init.name] = _from_initializer(init)
    nodes = []
    names = ort_node_names(model)  # unnamed nodes (other exporters) get the names onnxruntime's profiler gives
    for i, proto in enumerate(graph.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        inputs = [_lookup(tensors, name) if name else None for name in proto.input]
        outputs = [_lookup(tensors, name) for name in proto.output if name]
        if proto.op_type == "Constant" and "value" in attrs:
            tensors.update({o.name: _from_initializer(attrs["value"], o.name) for o in outputs})
            outputs = [tensors[o.name] for o in outputs]
        nodes.append(Node(i, names[i], proto.op_type, node_module_path(proto), inputs, outputs, attrs))
    return nodes


def _lookup(tensors: dict[str, Tensor], name: str) -> Tensor:
    if name not in tensors:
        tensors[name] = Tensor(name, None, "unknown", 32)  # shape inference gave nothing: rows say so
    return tensors[name]


def _dtype(elem_type: int) -> tuple[str, int]:
    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return "unknown", 32
    bits = 4 if elem_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4) else dt.itemsize * 8
    return dt.name, bits


def _from_value_info(vi: onnx.ValueInfoProto) -> Tensor:
    tt = vi.type.tensor_type
    name, bits = _dtype(tt.elem_type)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    static = tt.HasField("shape") and all(d is not None for d in dims)
    return Tensor(vi.name, tuple(int(d) for d in dims if d is not None) if static else None, name, bits)


def _from_initializer(init: onnx.TensorProto, name: str | None = None) -> Tensor:
    dtype, bits = _dtype(init.data_type)
    shape = tuple(int(d) for d in init.dims)
    return Tensor(name or init.name, shape, dtype, bits, const=True)


# --- handlers -------------------------------------------------------------------------------------------------


def _conv_work(node: Node, x: int, w: int, weights: tuple[int, ...], args: tuple[int, ...]) -> Work:
    xs, ws = node.shape(x), node.shape(w)  # x: [N, Cin, H, W]; w: [Cout, Cin/G, kh, kw]
    groups = int(node.attrs.get("group", 1))
    kernel = (ws[2], ws[3]) if len(ws) >= 4 else (ws[2] if len(ws) == 3 else 1, 1)
    macs = node.out_numel() * math.prod(ws[1:])
    category = conv_category(xs[1], ws[0], groups, kernel, math.prod(xs[2:]))
    return Work(category, macs=macs, flops=2 * macs, weights=weights, args=args)


def _conv(node: Node) -> Work:
    return _conv_work(node, 0, 1, weights=(1, 2), args=())


def _qlinear_conv(node: Node) -> Work:
    # x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B
    return _conv_work(node, 0, 3, weights=(3, 8), args=(1, 2, 4, 5, 6, 7))


def _conv_integer(node: Node) -> Work:
    return _conv_work(node, 0, 1, weights=(1,), args=(2, 3))


def _gemm(node: Node) -> Work:
    a = node.shape(0)
    k = a[0] if node.attrs.get("transA", 0) else a[1]
    macs = node.out_numel() * k
    return Work(Category.FULLY_CONNECTED, macs=macs, flops=2 * macs, weights=(1, 2))


def _matmul(args: tuple[int, ...] = ()) -> Handler:
    def handle(node: Node) -> Work:
        macs = node.out_numel() * node.shape(0)[-1]
        b = node.inputs[1]
        category = Category.FULLY_CONNECTED if b is not None and b.const else Category.OTHER
        return Work(category, macs=macs, flops=2 * macs, weights=(1,), args=args)

    return handle


def _clip(node: Node) -> Work:
    bounds = sum(1 for t in node.inputs[1:3] if t is not None) or 2  # Clip < opset 11: bounds as attributes
    return Work(Category.ACTIVATION, flops=bounds * node.out_numel(), args=(1, 2))


def _pool(node: Node) -> Work:
    kernel = tuple(int(k) for k in node.attrs.get("kernel_shape", ()))
    if len(kernel) != 2:
        raise Unsupported(f"pooling kernel {kernel} is not 2-D")
    return rules.pool_work(node, (kernel[0], kernel[1]))


def _batchnorm(node: Node) -> Work:
    # Left unfolded (the exporters fold it): a per-channel scale and shift.
    return Work(Category.ELEMENTWISE, flops=2 * node.out_numel(), weights=(1, 2, 3, 4))


MOVE = Category.RESHAPE_CONCAT_SPLIT_SLICE
HANDLERS: dict[str, Handler] = {
    # convolutions and matrix products
    "Conv": _conv,
    "QLinearConv": _qlinear_conv,
    "ConvInteger": _conv_integer,
    "Gemm": _gemm,
    "MatMul": _matmul(),
    "MatMulInteger": _matmul(args=(2, 3)),
    # activations
    "Relu": rules.activation("relu"),
    "Clip": _clip,
    "LeakyRelu": rules.activation("leaky_relu"),
    "PRelu": rules.activation("prelu", weights=(1,)),
    "Elu": rules.activation("elu"),
    "Sigmoid": rules.activation("sigmoid"),
    "Tanh": rules.activation("tanh"),
    "HardSigmoid": rules.activation("hardsigmoid"),
    "HardSwish": rules.activation("hardswish"),
    "Softmax": rules.activation("softmax"),
    # element-wise
    "Add": rules.binary(),
    "Sub": rules.binary(),
    "Mul": rules.binary(),
    "Div": rules.binary(),
    "Max": rules.binary(),
    "Min": rules.binary(),
    "Sqrt": rules.unary(1),
    "Neg": rules.unary(1),
    "Abs": rules.unary(1),
    "Exp": rules.unary(1),
    "Reciprocal": rules.unary(1),
    "BatchNormalization": _batchnorm,
    # pooling
    "GlobalAveragePool": rules.global_pool,
    "GlobalMaxPool": rules.global_pool,
    "AveragePool": _pool,
    "MaxPool": _pool,
    "ReduceMean": rules.reduce_mean(args=(1,)),
    "ReduceMax": rules.reduce_mean(args=(1,)),
    # layout and data movement
    "Transpose": rules.movement(Category.LAYOUT),
    "DepthToSpace": rules.movement(Category.LAYOUT),
    "SpaceToDepth": rules.movement(Category.LAYOUT),
    "Gather": rules.gather(),
    "GatherND": rules.gather(),
    "GatherElements": rules.gather(),
    "Reshape": rules.movement(MOVE, args=(1,), is_view=True),
    "Flatten": rules.movement(MOVE, is_view=True),
    "Squeeze": rules.movement(MOVE, args=(1,), is_view=True),
    "Unsqueeze": rules.movement(MOVE, args=(1,), is_view=True),
    "Identity": rules.movement(MOVE, is_view=True),
    "Concat": rules.movement(MOVE),
    "Split": rules.movement(MOVE, args=(1,)),
    "Slice": rules.movement(MOVE, args=(1, 2, 3, 4), touched_only=True),
    "Expand": rules.movement(MOVE, args=(1,)),
    "Shape": rules.movement(MOVE, args=(0,)),  # reads metadata only
    "Pad": rules.movement(Category.PAD, args=(1, 2, 3)),
    # precision
    "QuantizeLinear": rules.quantize(args=(1, 2)),
    "DequantizeLinear": rules.quantize(args=(1, 2)),
    "DynamicQuantizeLinear": rules.quantize(),
    "Cast": rules.movement(Category.QUANTIZE),
    "Constant": rules.movement(Category.OTHER),
}
