"""torch → ONNX: dynamo exporter, fixed opset, static batch-1 shapes, BatchNorm folded, module paths in names.

Every node is renamed ``<module path>/<OpType>`` (``features.3.conv.dw/Conv``; ops of the top-level forward get
an empty path: ``/Reshape``), so onnxruntime's profiler output maps straight back to the torch module. The
exporter's own ``pkg.torch.onnx.name_scopes`` metadata stays on each node; :func:`node_module_path` reads
either. Its ``pkg.torch.onnx.stack_trace`` metadata is dropped: it holds the absolute paths of the source files
(``/home/alice/flopgap/harness/zoo/...``), so the same model exported from two checkouts would be two artifacts, and
a lab's or a rerun's measurements of it would not join. Reduced precisions are produced from the fp32 graph with
onnxruntime's own tools.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from devices.vocabulary import Precision

OPSET = 18
NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


def export_onnx(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: Path) -> onnx.ModelProto:
    """Export ``model`` (BatchNorm already folded) at :data:`OPSET` with static shapes and write it to ``path``."""
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,) if isinstance(example, torch.Tensor) else tuple(example),
            dynamo=True,
            opset_version=OPSET,
            optimize=True,  # constant folding and onnxscript's rewrites (a leftover BatchNorm is fused here too)
            external_data=False,
            verbose=False,
        )
    if program is None:  # the dynamo exporter always returns a program; None would be a torch bug
        raise RuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    if proto.opset_import and _default_opset(proto) != OPSET:
        proto = onnx.version_converter.convert_version(proto, OPSET)
    rename_nodes(proto)
    drop_stack_traces(proto)
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))
    return proto


def drop_stack_traces(proto: onnx.ModelProto) -> None:
    """Remove the exporter's per-node stack traces (source file paths of this machine) from ``proto``, in place."""
    for nodes in (proto.graph.node, *(f.node for f in proto.functions)):
        for node in nodes:
            kept = [p for p in node.metadata_props if p.key != STACK_TRACE_KEY]
            if len(kept) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(kept)


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), -1)


def node_module_path(node: onnx.NodeProto | str) -> str:
    """The torch module path a node came from (``'features.3.conv.dw'``); ``''`` for the model's own forward or
    a node whose name says nothing (another tool's graph).

    Reads the exporter's name-scope metadata when the node carries it, else the node name: flopgap's own
    ``<path>/<Op>``, or the legacy TorchScript exporter's scopes (``/layer1/layer1.0/conv1/Conv``).
    """
    if isinstance(node, onnx.NodeProto):
        for prop in node.metadata_props:
            if prop.key == NAME_SCOPES_KEY:
                scopes = ast.literal_eval(prop.value)
                # ['', 'features', 'features.3', 'features.3.conv', 'conv2d_7']: the last entry names the aten call.
                return str(scopes[-2]) if len(scopes) >= 2 else ""
        name = node.name
    else:
        name = node
    path, sep, _ = name.rpartition("/")
    if path.startswith("/"):
        return legacy_module_path(path)
    # flopgap's own names hold one '/'; another tool's scopes (tf2onnx's 'model/conv2d/Conv2D') name no module.
    return path if sep and "/" not in path else ""


def legacy_module_path(scopes: str) -> str:
    """``/layer1/layer1.0/downsample/downsample.0`` -> ``layer1.0.downsample.0``.

    The legacy exporter names each scope by the module's attribute, prefixed with its container's for children of
    a Sequential or ModuleList (``layer1.0`` inside ``layer1``); only the new part of each segment is kept.
    """
    parts: list[str] = []
    previous = ""
    for segment in (s for s in scopes.split("/") if s):
        parts.append(segment.removeprefix(previous + ".") if previous else segment)
        previous = segment
    return ".".join(parts)


def ort_node_names(model: onnx.ModelProto) -> list[str]:
    """Each node's name as onnxruntime reports it: its own, or for an unnamed node (other exporters leave names
    empty) ``<OpType>_<index>``, the index counting the nodes ORT keeps (Constant nodes become initializers)."""
    names, index = [], 0
    for node in model.graph.node:
        names.append(node.name or f"{node.op_type}_{index}")
        if node.op_type != "Constant":
            index += 1
    return names


def rename_nodes(proto: onnx.ModelProto) -> None:
    """Name each node ``<module path>/<OpType>``, numbered when a module holds several of one op type."""
    seen: Counter[str] = Counter()
    for node in proto.graph.node:
        base = f"{node_module_path(node)}/{node.op_type}"
        seen[base] += 1
        node.name = base if seen[base] == 1 else f"{base}_{seen[base] - 1}"


def op_counts(proto: onnx.ModelProto | Path) -> dict[str, int]:
    """Histogram of op types in the main graph, most frequent first."""
    if isinstance(proto, Path):
        proto = onnx.load(str(proto), load_external_data=False)
    return dict(Counter(n.op_type for n in proto.graph.node).most_common())


def convert_precision(
    src: Path, dst: Path, precision: Precision, calibration: Sequence[np.ndarray | tuple[np.ndarray, ...]]
) -> None:
    """Write ``src`` (fp32) at ``precision`` to ``dst`` with onnxruntime's converters; I/O stays float32.

    fp16: weights and compute in float16 (``keep_io_types``). int8-dynamic: int8 weights, activations quantized at
    run time (``quantize_dynamic``). int8: static QDQ, int8 weights per channel and int8 activations calibrated
    on ``calibration`` (``quantize_static``; one array, or one tuple in graph input order, per sample).
    """
    if precision is Precision.FP16:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save_model(model, str(dst))
        return
    from onnxruntime import quantization as q

    if precision is Precision.INT8_DYNAMIC:
        q.quantize_dynamic(str(src), str(dst), weight_type=q.QuantType.QInt8, per_channel=True)
    elif precision is Precision.INT8:
        q.quantize_static(
            str(src),
            str(dst),
            _reader(src, calibration),
            quant_format=q.QuantFormat.QDQ,
            activation_type=q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8,
            per_channel=True,
            calibrate_method=q.CalibrationMethod.MinMax,
        )
    else:
        raise ValueError(f"no ONNX conversion to {precision.value}")


def _reader(model: Path, data: Sequence[np.ndarray | tuple[np.ndarray, ...]]) -> object:
    """onnxruntime's CalibrationDataReader over a fixed list of NCHW inputs (tuples for several graph inputs)."""
    from onnxruntime.quantization import CalibrationDataReader

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in initializers]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(data)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            if x is None:
                return None
            return dict(zip(names, (x,) if isinstance(x, np.ndarray) else x, strict=True))

    return Reader()
