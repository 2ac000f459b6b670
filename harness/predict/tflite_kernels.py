"""LiteRT kernels: the ops of the ``.tflite`` graph, one kernel each.

XNNPACK takes the whole fp32 graph into one delegate node but runs one operator per TFLite op (the converter has
already fused bias and activation into CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and ADD), so the flatbuffer's
op list is the kernel list, but for two things: ops whose inputs are all constant run once at load, and a zero PAD
whose every consumer is a convolution is folded into the convolution's padding by XNNPACK (measured: PAD + CONV_2D
takes what the CONV_2D alone takes, the PAD alone 10% of it), so neither is a kernel.
"""

from __future__ import annotations

from pathlib import Path

from harness.predict.kernels import (
    Kernel,
    KernelType,
    activation_of,
    broadcast_or,
    kernel_type_of,
    sizes,
)
from harness.proxies.costs import Node, OpCost, propagate_constants
from harness.proxies.tflite_graph import HANDLERS, read_tflite

_CONV_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D"}
_POOL_OPS = {"AVERAGE_POOL_2D", "MAX_POOL_2D"}


def tflite_kernels(path: Path) -> list[Kernel]:
    """The kernels LiteRT runs for the model at ``path``, in execution order."""
    from harness.proxies.costs import cost_nodes

    nodes = read_tflite(Path(path))
    propagate_constants(nodes)
    account = cost_nodes(nodes, HANDLERS, Path(path), "tflite")
    folded = _pads_folded_into_convs(nodes)
    return [
        _kernel(node, cost)
        for node, cost in zip(nodes, account.ops, strict=True)
        if not cost.constant and node.index not in folded
    ]


def _pads_folded_into_convs(nodes: list[Node]) -> set[int]:
    consumers: dict[int, list[Node]] = {}
    for node in nodes:
        for t in node.inputs:
            if t is not None:
                consumers.setdefault(id(t), []).append(node)
    return {
        node.index
        for node in nodes
        if node.op_type == "PAD"
        and node.outputs
        and consumers.get(id(node.outputs[0]))
        and all(c.op_type in _CONV_OPS for c in consumers[id(node.outputs[0])])
    }


def _kernel(node: Node, cost: OpCost) -> Kernel:
    data = [t for t in node.inputs if t is not None and not t.const]
    kind = broadcast_or(kernel_type_of(node.op_type, cost.category), [t.shape for t in data])
    first = data[0].shape if data else None
    out = node.outputs[0].shape if node.outputs else None
    size = sizes(kind, first, out, "NHWC")
    cin = size["cin"]
    kernel_size, stride, groups = 1, 1, 1
    attrs = node.attrs
    if node.op_type in _CONV_OPS:
        weights = node.inputs[1].shape if len(node.inputs) > 1 and node.inputs[1] is not None else None
        if weights is not None and len(weights) == 4:
            kernel_size = int(weights[1])
            groups = cin if node.op_type == "DEPTHWISE_CONV_2D" else max(1, cin // max(int(weights[3]), 1))
        stride = int(attrs.get("strideH", 1) or 1)
    elif node.op_type in _POOL_OPS:
        kernel_size = int(attrs.get("filterHeight", 1) or 1)
        stride = int(attrs.get("strideH", 1) or 1)
    return Kernel(
        name=cost.name,
        type=kind,
        op_type=node.op_type,
        module_path=node.module_path,
        **size,
        kernel_size=kernel_size,
        stride=stride,
        groups=groups,
        flops=int(cost.flops or 0),
        bytes_read=cost.bytes_read,
        bytes_written=cost.bytes_written,
        weight_bytes=cost.weight_bytes,
        elements_in=int(data[0].numel or 0) if data else 0,
        elements_out=int(node.outputs[0].numel or 0) if node.outputs else 0,
        inputs=len(data),
        rank=len(first) if first else 0,
        activation=cost.fused_activation or (activation_of(node.op_type) if kind is KernelType.ACTIVATION else ""),
        source_ops=(cost.name,),
    )
