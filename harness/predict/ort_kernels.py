"""ONNX Runtime kernels: the nodes of the graph ORT runs, read from the optimized model ORT itself writes.

ORT is asked to save its optimized graph (``SessionOptions.optimized_model_filepath``) at the optimization level
sweeps time (``all``): its node names are those the profiler reports, so measured per-node times join the kernels
by name. On x86 the NCHWc transformer replaces convolutions (and pools) by ``com.microsoft.nchwc`` nodes named
``<output tensor>_nchwc`` that carry a fused activation (``activation``) and a fused residual add (a fourth,
``Sum`` input), and inserts ``ReorderInput`` / ``ReorderOutput`` layout nodes; elsewhere ``FusedConv`` keeps the
conv's own name. Each node is tied back to the exported node it runs (:class:`harness.measure.profile.GraphIndex`,
the same mapping the op profiles use), whose logical shapes, attributes and cost rows give the features; a layout
node takes the shape of the exported tensor on its NCHW side.

The optimized graph depends on the CPU's instruction set and ORT's version (x86 gets NCHWc kernels and reorders;
ARM keeps NCHW and fuses a conv's activation and residual add into ``FusedConv``, its fourth input ``Z``). So a
device's kernels come from the graph ORT optimized on that device (the runner saves it: ``--save-optimized``) and
passed here as ``optimized``; without one, ORT on this machine optimizes it (valid only for a device like it).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import onnx
from onnx import helper

from harness.measure.profile import GraphIndex
from harness.predict.kernels import (
    ACTIVATION_OPS,
    Kernel,
    KernelType,
    activation_of,
    broadcast_or,
    kernel_type_of,
    sizes,
)
from harness.proxies.categories import ACTIVATION_FLOPS
from harness.proxies.costs import Node, OpCost, cost_nodes, propagate_constants
from harness.proxies.onnx_graph import HANDLERS, read_onnx

GRAPH_OPTIMIZATION = "all"  # what the runner times (see harness.measure.profile)
_FLOAT_BYTES = 4
# Convolutions whose fourth input, where present, is a residual added to their output: x86's NCHWc conv (``Sum``)
# and FusedConv (``Z``, as ORT's Conv+Add fusion writes it on ARM).
_SUM_INPUT_OPS = frozenset({"Conv", "FusedConv"})


def optimized_graph(path: Path) -> onnx.ModelProto:
    """The graph ONNX Runtime runs for the model at ``path`` (CPU provider, optimization level ``all``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # ORT warns that an NCHWc graph is hardware specific: we know, it is the point
    with tempfile.TemporaryDirectory(prefix="flopgap-ort-kernels-") as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath, load_external_data=False)


def ort_kernels(path: Path, optimized: onnx.ModelProto | None = None) -> list[Kernel]:
    """The kernels ONNX Runtime runs for the exported model at ``path``, in graph order: those of ``optimized``
    (the graph ORT optimized on the device) or, without it, of the graph ORT optimizes on this machine."""
    nodes = read_onnx(Path(path))
    propagate_constants(nodes)
    costs = cost_nodes(nodes, HANDLERS, Path(path), "onnx").ops
    exported = {n.name: (n, c) for n, c in zip(nodes, costs, strict=True)}
    # Logical (NCHW) shapes by tensor name: the exported graph's, then each optimized node's outputs as they are
    # met (in graph order), so a node ORT added after an NCHWc conv (a QuickGelu on its blocked output) has shapes.
    shapes: dict[str, tuple[int, ...]] = {
        t.name: tuple(t.shape) for n in nodes for t in [*n.inputs, *n.outputs] if t is not None and t.shape is not None
    }
    index = GraphIndex.of(Path(path))
    if optimized is None:
        optimized = optimized_graph(Path(path))
    constants = {init.name for init in optimized.graph.initializer}
    kernels = []
    for proto in optimized.graph.node:
        if proto.output and all(o in constants for o in proto.output):
            continue
        anchor, _ = index.anchor(proto.name, proto.op_type)
        if anchor is not None and anchor in exported:
            node, cost = exported[anchor]
            kernel = _anchored(proto, node, cost)
            out_shape = node.outputs[0].shape if node.outputs and node.outputs[0] is not None else None
        else:
            kernel, out_shape = _runtime_node(proto, shapes, constants)
        kernels.append(kernel)
        for name in proto.output[:1]:
            if name and name not in shapes and out_shape is not None:
                shapes[name] = tuple(out_shape)
    return kernels


def _attrs(proto: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in proto.attribute}


def _anchored(proto: onnx.NodeProto, node: Node, cost: OpCost) -> Kernel:
    """A kernel that runs an exported node, with whatever ORT fused into it."""
    attrs = _attrs(proto)
    data = [t.shape for t in node.inputs if t is not None and not t.const]
    kind = broadcast_or(kernel_type_of(node.op_type, cost.category), data)
    first = node.inputs[0].shape if node.inputs and node.inputs[0] is not None else None
    out = node.outputs[0].shape if node.outputs else None
    out_numel = math.prod(out) if out else 0
    activation = attrs.get("activation", b"")
    act = ACTIVATION_OPS.get(activation.decode() if isinstance(activation, bytes) else str(activation), "")
    if not act and kind is KernelType.ACTIVATION:
        act = activation_of(node.op_type)
    fused_add = proto.op_type in _SUM_INPUT_OPS and len(proto.input) > 3 and bool(proto.input[3])
    extra_flops = out_numel * (ACTIVATION_FLOPS.get(act, 1) if act and kind is not KernelType.ACTIVATION else 0)
    extra_flops += out_numel if fused_add else 0
    kernel_shape = [int(k) for k in node.attrs.get("kernel_shape", [])]  # type: ignore[union-attr]
    strides = [int(s) for s in node.attrs.get("strides", [])]  # type: ignore[union-attr]
    return Kernel(
        name=proto.name,
        type=kind,
        op_type=node.op_type,
        module_path=node.module_path,
        **sizes(kind, first, out),
        kernel_size=kernel_shape[0] if kernel_shape else 1,
        stride=strides[0] if strides else 1,
        groups=int(node.attrs.get("group", 1)),  # type: ignore[call-overload]
        flops=int(cost.flops or 0) + extra_flops,
        bytes_read=cost.bytes_read + (out_numel * _FLOAT_BYTES if fused_add else 0),
        bytes_written=cost.bytes_written,
        weight_bytes=cost.weight_bytes,
        elements_in=math.prod(first) if first else 0,
        elements_out=out_numel,
        inputs=sum(1 for t in node.inputs if t is not None and not t.const) + int(fused_add),
        rank=len(first) if first else 0,
        activation=act,
        fused_add=fused_add,
        source_ops=(node.name,),
        impl=_impl(proto),
    )


def _impl(proto: onnx.NodeProto) -> str:
    """Which of ORT's implementations runs the node: an NCHWc kernel, a FusedConv, or the node's own."""
    if proto.domain == "com.microsoft.nchwc":
        return "nchwc"
    return "fused" if proto.op_type.startswith("Fused") else ""


def _runtime_node(
    proto: onnx.NodeProto, shapes: dict[str, tuple[int, ...]], constants: set[str]
) -> tuple[Kernel, tuple[int, ...] | None]:
    """A node ORT added (a layout reorder, a fused activation) or renamed (a decomposition), and its logical output
    shape: shapes from the tensors it touches (exported ones, or outputs of the nodes before it, an NCHWc-side
    tensor having the shape of the logical tensor it blocks)."""
    ins = [shapes.get(name) for name in proto.input if name and name not in constants]
    outs = [shapes.get(name) for name in proto.output if name]
    known_in = next((t for t in ins if t is not None), None)
    known_out = next((t for t in outs if t is not None), None)
    first = known_in if known_in is not None else known_out
    out = known_out if known_out is not None else first
    numel_in = math.prod(first) if first else 0
    numel_out = math.prod(out) if out else 0
    kind = kernel_type_of(proto.op_type, "other")
    if kind is KernelType.OTHER and proto.op_type in ACTIVATION_OPS:
        kind = KernelType.ACTIVATION
    elif kind is KernelType.OTHER and proto.op_type in {"Add", "Mul", "Sub", "Div", "Sum"}:
        kind = broadcast_or(KernelType.ELEMENTWISE, ins)
    act = ACTIVATION_OPS.get(proto.op_type, "")
    kernel = Kernel(
        name=proto.name,
        type=kind,
        op_type=proto.op_type,
        **sizes(kind, first, out),
        flops=numel_out * (ACTIVATION_FLOPS.get(act, 1) if kind is KernelType.ACTIVATION else 1)
        if kind in (KernelType.ACTIVATION, KernelType.ELEMENTWISE, KernelType.BROADCAST)
        else 0,
        bytes_read=numel_in * _FLOAT_BYTES * max(len(ins), 1),
        bytes_written=numel_out * _FLOAT_BYTES,
        elements_in=numel_in,
        elements_out=numel_out,
        inputs=max(len(ins), 1),
        rank=len(first) if first else 0,
        activation=act,
        impl=_impl(proto),
    )
    return kernel, out
