"""TFLite flatbuffers: ops, tensors and builtin options read with LiteRT's own schema, one handler per builtin.

Why the flatbuffer and not the interpreter: ``Interpreter._get_ops_details()`` lists the same ops with their
tensor indexes, but hides builtin options (a CONV_2D's fused activation, a pool's window) and, once tensors are
allocated, shows XNNPACK's DELEGATE node in place of the ops it took. ``schema_py_generated`` (shipped with
ai-edge-litert) gives ops, static tensor shapes, types, constant buffers and options in file order.

Module paths: litert-torch names tensors after the torch modules that produced them, one segment per module,
``<class qualname>_<attribute>`` (``...ChannelLastIOWrapper/...ShuffleNetV2_wrapped/...Sequential_stage2/
...ShuffleV2Unit_0/...ChannelShuffle_shuffle;1``); :func:`torch_module_path` turns that into the dotted path
the ONNX node names carry (``stage2.0.shuffle``). Convs, FCs, shuffles and element-wise ops line up with their
ONNX rows; the differences are documented on :func:`op_module_path`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from harness.proxies import rules
from harness.proxies.categories import ACTIVATION_FLOPS, Category, conv_category
from harness.proxies.costs import GraphAccount, Handler, Node, Tensor, Work, cost_nodes, propagate_constants
from harness.proxies.patterns import channel_shuffle_categories

IO_WRAPPER = "ChannelLastIOWrapper"  # litert_torch.to_channel_last_io's root module
_BITS = {
    "FLOAT32": 32, "FLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "STRING": 8, "BOOL": 8, "INT16": 16,
    "COMPLEX64": 64, "INT8": 8, "FLOAT64": 64, "COMPLEX128": 128, "UINT64": 64, "UINT32": 32, "UINT16": 16,
    "INT4": 4, "BFLOAT16": 16, "INT2": 2, "UINT4": 4, "FLOAT8_E4M3FN": 8, "FLOAT8_E5M2": 8,
}  # fmt: skip
FUSED_ACTIVATIONS = {1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}  # ActivationFunctionType; SIGN_BIT unused
_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}
_WEIGHT_CLASSES = ("Conv2d", "Conv1d", "Linear", "ConvTranspose2d")


def account_tflite(path: Path) -> GraphAccount:
    """Account every op of the first subgraph of the .tflite model at ``path``."""
    nodes = read_tflite(path)
    propagate_constants(nodes)
    return cost_nodes(nodes, HANDLERS, path, "tflite", channel_shuffle_categories(nodes))


def read_tflite(path: Path) -> list[Node]:
    """Ops of the main subgraph with their tensors and builtin options."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if isinstance(v, int)}
    type_names = {v: k for k, v in vars(fb.TensorType).items() if isinstance(v, int)}
    tensors = [_tensor(t, model.buffers, type_names) for t in graph.tensors]
    nodes: list[Node] = []
    seen: Counter[str] = Counter()
    for i, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        op_type = op_names.get(builtin, f"BUILTIN_{builtin}")
        if builtin == fb.BuiltinOperator.CUSTOM:
            op_type = f"CUSTOM:{(code.customCode or b'').decode()}"
        inputs = [tensors[j] if j >= 0 else None for j in _indexes(op.inputs)]
        outputs = [tensors[j] for j in _indexes(op.outputs) if j >= 0]
        attrs = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        path_ = op_module_path(op_type, inputs, outputs)
        base = f"{path_}/{op_type}"
        seen[base] += 1
        name = base if seen[base] == 1 else f"{base}_{seen[base] - 1}"
        nodes.append(Node(i, name, op_type, path_, inputs, outputs, attrs))
    return nodes


def _indexes(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _tensor(t: Any, buffers: list[Any], type_names: dict[int, str]) -> Tensor:
    kind = type_names.get(t.type, "UNKNOWN")
    shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
    buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
    data = None if buf is None else buf.data
    const = buf is not None and ((data is not None and len(data) > 0) or bool(getattr(buf, "size", 0)))
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
    return Tensor(name, shape, kind.lower(), _BITS.get(kind, 32), const=const)


# --- module paths ---------------------------------------------------------------------------------------------


def torch_module_paths(tensor_name: str) -> list[tuple[str, str]]:
    """``(dotted module path, class name)`` for each module location in a litert-torch tensor name.

    A fused tensor carries several locations separated by ``;`` (``...ReLU_act;;...Conv2d_conv;``); numeric
    suffixes and names without module segments (``arith.constant``, ``serving_default_output_0``) give nothing.
    The root segment is dropped, and with it the IO wrapper's ``_wrapped`` child. Attribute names are what follows
    the first ``_`` after the class name, so a class whose own name holds ``_`` would be mis-split.
    """
    found: list[tuple[str, str]] = []
    for part in tensor_name.split(";"):
        segments = [s for s in part.split("/") if s]
        if not segments or not (len(segments) > 1 or segments[0].endswith(IO_WRAPPER)):
            continue
        root_cls = segments[0].rsplit(".", 1)[-1]
        attrs: list[str] = []
        cls = root_cls
        for k, seg in enumerate(segments[1:]):
            cls, _, attr = seg.rsplit(".", 1)[-1].partition("_")
            if k == 0 and root_cls == IO_WRAPPER and attr == "wrapped":
                continue
            attrs.append(attr)
        found.append((".".join(attrs), cls))
    return found


def op_module_path(op_type: str, inputs: list[Tensor | None], outputs: list[Tensor]) -> str:
    """The torch module an op came from, read from its output tensor's name (else its weights', inputs').

    Convs and FCs prefer a ``Conv2d``/``Linear`` location (their output name also names a fused activation) and
    so match the ONNX Conv's path; a fused activation has no row of its own (ONNX has a Relu at ``...act``).
    Layout transposes the converter adds around a shuffle or at the I/O take the enclosing module's path (the
    unit, or ``''``), pads split off a conv take the conv's path. ``''``: the model's own forward, or unknown.
    """
    present = [t for t in inputs if t is not None]
    candidates = [tensor_path for o in outputs for tensor_path in torch_module_paths(o.name)]
    if op_type in _WEIGHTED:
        weights = [t for t in present if t.const]
        preferred = candidates + [p for t in weights for p in torch_module_paths(t.name)]
        for path, cls in preferred:
            if cls in _WEIGHT_CLASSES:
                return path
    if candidates:
        return candidates[0][0]
    for group in ([t for t in present if t.const], [t for t in present if not t.const]):
        for t in group:
            paths = torch_module_paths(t.name)
            if paths:
                return paths[0][0]
    return ""


# --- handlers -------------------------------------------------------------------------------------------------


def _fused(node: Node, work: Work) -> Work:
    """Add a fused activation's FLOPs (per output element) to the op that carries it."""
    kind = FUSED_ACTIVATIONS.get(int(node.attrs.get("fusedActivationFunction", 0) or 0))
    if kind is None:
        return work
    extra = ACTIVATION_FLOPS[kind] * node.out_numel()
    return Work(
        work.category, macs=work.macs, flops=work.flops + extra, weights=work.weights, args=work.args,
        touched_only=work.touched_only, is_view=work.is_view, fused_activation=kind,
    )  # fmt: skip


def _conv(node: Node) -> Work:
    xs, ws = node.shape(0), node.shape(1)  # x: [N, H, W, Cin]; w: [Cout, kh, kw, Cin/G]
    groups = xs[3] // ws[3]
    macs = node.out_numel() * ws[1] * ws[2] * ws[3]
    category = conv_category(xs[3], ws[0], groups, (ws[1], ws[2]), xs[1] * xs[2])
    return _fused(node, Work(category, macs=macs, flops=2 * macs, weights=(1, 2)))


def _depthwise(node: Node) -> Work:
    xs, ws = node.shape(0), node.shape(1)  # w: [1, kh, kw, Cin·multiplier]
    macs = node.out_numel() * ws[1] * ws[2]
    category = conv_category(xs[3], ws[3], xs[3], (ws[1], ws[2]), xs[1] * xs[2])
    return _fused(node, Work(category, macs=macs, flops=2 * macs, weights=(1, 2)))


def _fully_connected(node: Node) -> Work:
    macs = node.out_numel() * node.shape(1)[-1]  # w: [Cout, K]
    return _fused(node, Work(Category.FULLY_CONNECTED, macs=macs, flops=2 * macs, weights=(1, 2)))


def _batch_matmul(node: Node) -> Work:
    a = node.shape(0)
    k = a[-2] if node.attrs.get("adjX") else a[-1]
    macs = node.out_numel() * k
    b = node.inputs[1]
    category = Category.FULLY_CONNECTED if b is not None and b.const else Category.OTHER
    return Work(category, macs=macs, flops=2 * macs, weights=(1,))


def _binary(node: Node) -> Work:
    return _fused(node, rules.binary()(node))


def _pool(node: Node) -> Work:
    kernel = (int(node.attrs.get("filterHeight", 1)), int(node.attrs.get("filterWidth", 1)))
    return _fused(node, rules.pool_work(node, kernel))


def _concat(node: Node) -> Work:
    return _fused(node, Work(Category.RESHAPE_CONCAT_SPLIT_SLICE))


MOVE = Category.RESHAPE_CONCAT_SPLIT_SLICE
HANDLERS: dict[str, Handler] = {
    # convolutions and matrix products
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "BATCH_MATMUL": _batch_matmul,
    # activations
    "RELU": rules.activation("relu"),
    "RELU6": rules.activation("relu6"),
    "RELU_N1_TO_1": rules.activation("relu_n1_to_1"),
    "LEAKY_RELU": rules.activation("leaky_relu"),
    "PRELU": rules.activation("prelu", weights=(1,)),
    "ELU": rules.activation("elu"),
    "LOGISTIC": rules.activation("sigmoid"),
    "TANH": rules.activation("tanh"),
    "HARD_SWISH": rules.activation("hardswish"),
    "SOFTMAX": rules.activation("softmax"),
    # element-wise
    "ADD": _binary,
    "SUB": _binary,
    "MUL": _binary,
    "DIV": _binary,
    "MAXIMUM": rules.binary(),
    "MINIMUM": rules.binary(),
    "SQRT": rules.unary(1),
    "RSQRT": rules.unary(1),
    "NEG": rules.unary(1),
    "ABS": rules.unary(1),
    "EXP": rules.unary(1),
    # pooling
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "MEAN": rules.reduce_mean(args=(1,)),
    "SUM": rules.reduce_mean(args=(1,)),
    "REDUCE_MAX": rules.reduce_mean(args=(1,)),
    # layout and data movement
    "TRANSPOSE": rules.movement(Category.LAYOUT, args=(1,)),
    "DEPTH_TO_SPACE": rules.movement(Category.LAYOUT),
    "SPACE_TO_DEPTH": rules.movement(Category.LAYOUT),
    "GATHER": rules.gather(),
    "GATHER_ND": rules.gather(),  # litert-torch lowers index_select on channels to this
    "RESHAPE": rules.movement(MOVE, args=(1,), is_view=True),
    "SQUEEZE": rules.movement(MOVE, is_view=True),
    "EXPAND_DIMS": rules.movement(MOVE, args=(1,), is_view=True),
    "CONCATENATION": _concat,
    "PACK": rules.movement(MOVE),
    "UNPACK": rules.movement(MOVE),
    "SPLIT": rules.movement(MOVE, args=(0,)),  # SPLIT's axis is input 0
    "SPLIT_V": rules.movement(MOVE, args=(1, 2)),
    "SLICE": rules.movement(MOVE, args=(1, 2), touched_only=True),
    "STRIDED_SLICE": rules.movement(MOVE, args=(1, 2, 3), touched_only=True),
    "BROADCAST_TO": rules.movement(MOVE, args=(1,)),
    "PAD": rules.movement(Category.PAD, args=(1,)),
    "PADV2": rules.movement(Category.PAD, args=(1, 2)),
    "MIRROR_PAD": rules.movement(Category.PAD, args=(1,)),
    # precision
    "QUANTIZE": rules.quantize(),
    "DEQUANTIZE": rules.quantize(),
    "CAST": rules.movement(Category.QUANTIZE),
}
