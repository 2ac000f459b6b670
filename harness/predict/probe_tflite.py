"""A kernel config written as a minimal ``.tflite`` model: one op, NHWC, float32, built with LiteRT's schema.

Built from ``ai_edge_litert.schema_py_generated``'s object API and packed with ``flatbuffers`` (both ship with
ai-edge-litert): milliseconds per probe, where a litert-torch conversion takes a second or more. Ops are what
litert-torch writes for the zoo: CONV_2D (grouped convs too, with Cin/G filter channels) and DEPTHWISE_CONV_2D
with the ReLU/ReLU6 fused, SAME padding at stride 1 and an explicit PAD then VALID at stride 2 (so a strided
probe takes the padded input), FULLY_CONNECTED, ADD/MUL (SE's broadcast scale), standalone activations, pools,
MEAN, CONCATENATION, SLICE/SPLIT, TRANSPOSE (4-D layout and 5-D shuffle), RESHAPE and PAD.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.predict.kernel_config import KernelConfig
from harness.predict.kernels import KernelType

_FUSED = {"": 0, "relu": 1, "relu6": 3}


class TfliteBuilder:
    def __init__(self, rng: np.random.Generator) -> None:
        from ai_edge_litert import schema_py_generated as fb

        self.fb = fb
        self.rng = rng
        self.buffers: list[Any] = [fb.BufferT()]
        self.tensors: list[Any] = []
        self.codes: dict[int, int] = {}
        self.op_codes: list[Any] = []
        self.ops: list[Any] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    def tensor(self, shape: list[int] | tuple[int, ...], data: np.ndarray | None = None, dtype: str = "FLOAT32") -> int:
        fb = self.fb
        buf = fb.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        self.buffers.append(buf)
        t = fb.TensorT()
        t.name = f"t{len(self.tensors)}".encode()
        t.shape = [int(d) for d in shape]
        t.type = getattr(fb.TensorType, dtype)
        t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def input(self, shape: list[int]) -> int:
        index = self.tensor(shape)
        self.inputs.append(index)
        return index

    def weight(self, shape: tuple[int, ...], fan_in: int) -> int:
        data = (self.rng.standard_normal(shape) * np.sqrt(2.0 / max(fan_in, 1))).astype(np.float32)
        return self.tensor(shape, data)

    def ints(self, values: list[int] | list[list[int]]) -> int:
        array = np.asarray(values, dtype=np.int32)
        return self.tensor(array.shape, array, "INT32")

    def op(self, name: str, inputs: list[int], out_shape: list[int] | tuple[int, ...], options: Any = None,
           options_type: str | None = None, extra_outputs: list[list[int]] | None = None) -> int:  # fmt: skip
        fb = self.fb
        code = getattr(fb.BuiltinOperator, name)
        if code not in self.codes:
            oc = fb.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            self.codes[code] = len(self.op_codes)
            self.op_codes.append(oc)
        out = self.tensor(out_shape)
        outs = [out, *(self.tensor(s) for s in extra_outputs or [])]
        op = fb.OperatorT()
        op.opcodeIndex = self.codes[code]
        op.inputs = inputs
        op.outputs = outs
        if options is not None and options_type is not None:
            op.builtinOptionsType = getattr(fb.BuiltinOptions, options_type)
            op.builtinOptions = options
        self.ops.append(op)
        self.outputs = outs
        return out

    def pack(self) -> bytes:
        import flatbuffers

        fb = self.fb
        graph = fb.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.ops
        graph.inputs, graph.outputs, graph.name = self.inputs, self.outputs, b"main"
        model = fb.ModelT()
        model.version, model.description = 3, b"flopgap probe"
        model.buffers, model.operatorCodes, model.subgraphs = self.buffers, self.op_codes, [graph]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _conv_options(fb: Any, stride: int, same: bool, act: str, depthwise: bool) -> Any:
    o = fb.DepthwiseConv2DOptionsT() if depthwise else fb.Conv2DOptionsT()
    o.padding = fb.Padding.SAME if same else fb.Padding.VALID
    o.strideH = o.strideW = stride
    o.dilationHFactor = o.dilationWFactor = 1
    o.fusedActivationFunction = _FUSED.get(act, 0)
    if depthwise:
        o.depthMultiplier = 1
    return o


def conv(b: TfliteBuilder, cfg: KernelConfig) -> None:
    k = cfg.kernel
    same = cfg.stride == 1 or k == 1
    pad = 0 if same else 2 * (k // 2)
    x = b.input([1, cfg.h + pad, cfg.w + pad, cfg.cin])
    depthwise = cfg.type is KernelType.DEPTHWISE_CONV
    if depthwise:
        w = b.weight((1, k, k, cfg.cin), k * k)
    else:
        w = b.weight((cfg.cout, k, k, cfg.cin // cfg.groups), cfg.cin // cfg.groups * k * k)
    bias = b.tensor([cfg.cout], np.zeros(cfg.cout, np.float32))
    options = _conv_options(b.fb, cfg.stride, same and k > 1, cfg.act, depthwise)
    name, kind = ("DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions") if depthwise else ("CONV_2D", "Conv2DOptions")
    b.op(name, [x, w, bias], [1, cfg.h_out, cfg.w_out, cfg.cout], options, kind)


def fully_connected(b: TfliteBuilder, cfg: KernelConfig) -> None:
    fb = b.fb
    bias = b.tensor([cfg.cout], np.zeros(cfg.cout, np.float32))
    if cfg.variant == "conv":
        x = b.input([1, 1, 1, cfg.cin])
        w = b.weight((cfg.cout, 1, 1, cfg.cin), cfg.cin)
        b.op("CONV_2D", [x, w, bias], [1, 1, 1, cfg.cout], _conv_options(fb, 1, False, cfg.act, False),
             "Conv2DOptions")  # fmt: skip
    else:
        x = b.input([1, cfg.cin])
        w = b.weight((cfg.cout, cfg.cin), cfg.cin)
        b.op("FULLY_CONNECTED", [x, w, bias], [1, cfg.cout], fb.FullyConnectedOptionsT(), "FullyConnectedOptions")


def elementwise(b: TfliteBuilder, cfg: KernelConfig) -> None:
    fb = b.fb
    x = b.input([1, cfg.h, cfg.w, cfg.cin])
    # "mul_broadcast": configs drawn before broadcasts had a type of their own
    other = b.input([1, 1, 1, cfg.cin] if cfg.variant == "mul_broadcast" else [1, cfg.h, cfg.w, cfg.cin])
    if cfg.variant == "add":
        o = fb.AddOptionsT()
        o.fusedActivationFunction = _FUSED.get(cfg.act, 0)
        b.op("ADD", [x, other], [1, cfg.h, cfg.w, cfg.cin], o, "AddOptions")
    else:
        b.op("MUL", [x, other], [1, cfg.h, cfg.w, cfg.cin], fb.MulOptionsT(), "MulOptions")


def broadcast(b: TfliteBuilder, cfg: KernelConfig) -> None:
    """An SE block's scale (MUL) or a per-channel ADD: a [1, H, W, C] tensor with a [1, 1, 1, C] one."""
    x = b.input([1, cfg.h, cfg.w, cfg.cin])
    scale = b.input([1, 1, 1, cfg.cin])
    if cfg.variant == "add":
        b.op("ADD", [x, scale], [1, cfg.h, cfg.w, cfg.cin], b.fb.AddOptionsT(), "AddOptions")
    else:
        b.op("MUL", [x, scale], [1, cfg.h, cfg.w, cfg.cin], b.fb.MulOptionsT(), "MulOptions")


_ACTIVATION_OPS = {"relu": "RELU", "relu6": "RELU6", "sigmoid": "LOGISTIC", "hardswish": "HARD_SWISH"}


def standalone_activation(b: TfliteBuilder, cfg: KernelConfig) -> None:
    x = b.input([1, cfg.h, cfg.w, cfg.cin])
    # the space draws no hard-sigmoid for TFLite: it has no builtin
    b.op(_ACTIVATION_OPS[cfg.act], [x], [1, cfg.h, cfg.w, cfg.cin])


def pooling(b: TfliteBuilder, cfg: KernelConfig) -> None:
    fb = b.fb
    x = b.input([1, cfg.h + (cfg.kernel == 3), cfg.w + (cfg.kernel == 3), cfg.cin])
    o = fb.Pool2DOptionsT()
    o.padding = fb.Padding.VALID
    o.strideH = o.strideW = cfg.stride
    o.filterHeight = o.filterWidth = cfg.kernel
    h_out = (cfg.h + (cfg.kernel == 3) - cfg.kernel) // cfg.stride + 1
    name = "MAX_POOL_2D" if cfg.variant == "max" else "AVERAGE_POOL_2D"
    b.op(name, [x], [1, h_out, h_out, cfg.cin], o, "Pool2DOptions")


def global_pool(b: TfliteBuilder, cfg: KernelConfig) -> None:
    x = b.input([1, cfg.h, cfg.w, cfg.cin])
    o = b.fb.ReducerOptionsT()
    o.keepDims = True
    b.op("MEAN", [x, b.ints([1, 2])], [1, 1, 1, cfg.cin], o, "ReducerOptions")


def concat(b: TfliteBuilder, cfg: KernelConfig) -> None:
    x = b.input([1, cfg.h, cfg.w, cfg.cin])
    other = b.input([1, cfg.h, cfg.w, cfg.cout - cfg.cin])
    o = b.fb.ConcatenationOptionsT()
    o.axis = 3
    b.op("CONCATENATION", [x, other], [1, cfg.h, cfg.w, cfg.cout], o, "ConcatenationOptions")


def split(b: TfliteBuilder, cfg: KernelConfig) -> None:
    x = b.input([1, cfg.h, cfg.w, cfg.cin])
    begin, size = b.ints([0, 0, 0, cfg.cout]), b.ints([1, cfg.h, cfg.w, cfg.cin - cfg.cout])
    b.op("SLICE", [x, begin, size], [1, cfg.h, cfg.w, cfg.cin - cfg.cout], b.fb.SliceOptionsT(), "SliceOptions")


def transpose(b: TfliteBuilder, cfg: KernelConfig) -> None:
    c, g = cfg.cin, cfg.groups
    if cfg.variant == "shuffle":
        x = b.input([1, g, c // g, cfg.h, cfg.w])
        out = [1, c // g, g, cfg.h, cfg.w]
        perm = [0, 2, 1, 3, 4]
    elif cfg.variant == "to_nchw":
        x, out, perm = b.input([1, cfg.h, cfg.w, c]), [1, c, cfg.h, cfg.w], [0, 3, 1, 2]
    else:
        x, out, perm = b.input([1, c, cfg.h, cfg.w]), [1, cfg.h, cfg.w, c], [0, 2, 3, 1]
    b.op("TRANSPOSE", [x, b.ints(perm)], out, b.fb.TransposeOptionsT(), "TransposeOptions")


def reshape(b: TfliteBuilder, cfg: KernelConfig) -> None:
    c, g = cfg.cin, cfg.groups
    x = b.input([1, c, cfg.h, cfg.w])
    shape = [1, g, c // g, cfg.h, cfg.w]
    o = b.fb.ReshapeOptionsT()
    o.newShape = shape
    b.op("RESHAPE", [x, b.ints(shape)], shape, o, "ReshapeOptions")


def pad(b: TfliteBuilder, cfg: KernelConfig) -> None:
    fb = b.fb
    x = b.input([1, cfg.h, cfg.w, cfg.cin])
    p = cfg.kernel // 2 if cfg.kernel > 2 else 1
    paddings = b.ints([[0, 0], [0, p], [0, p], [0, 0]] if cfg.kernel == 2 else [[0, 0], [p, p], [p, p], [0, 0]])
    grow = p if cfg.kernel == 2 else 2 * p
    out = [1, cfg.h + grow, cfg.w + grow, cfg.cin]
    if cfg.variant == "min":  # before a max pool: pad with the lowest float
        value = b.tensor([], np.array(np.finfo(np.float32).min, np.float32))
        b.op("PADV2", [x, paddings, value], out, fb.PadV2OptionsT(), "PadV2Options")
    else:
        b.op("PAD", [x, paddings], out, fb.PadOptionsT(), "PadOptions")
