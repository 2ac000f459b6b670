"""One spec per kernel type: how the space draws it, how a probe writes it in each format, how its MACs count.

The handler-table style of :mod:`harness.proxies`: the space, the probe writers and the config's MAC count look a
kernel type up here instead of switching on it, so adding a kernel type is one :class:`KernelSpec` (its draw, its
writer per format, its bounds) plus its test. A format whose graphs never hold the type has no writer, and the
space does not draw the type for that format's runtime.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from devices.vocabulary import Runtime
from harness.predict import probe_onnx as onnx_w
from harness.predict import probe_tflite as tflite_w
from harness.predict.kernel_config import MAX_ELEMENTS, KernelConfig
from harness.predict.kernels import KernelType

# Activations a conv carries: LiteRT's converter fuses ReLU and ReLU6; ORT's NCHWc convs also take hard-swish (the
# MobileNetV3 convs) and an SE gate's sigmoid / hard-sigmoid on its 1x1 convs.
CONV_ACTIVATIONS: dict[Runtime, tuple[str, ...]] = {
    Runtime.ONNXRUNTIME: ("", "relu", "relu6", "hardswish"),
    Runtime.LITERT: ("", "relu", "relu6"),
}
GATE_ACTIVATIONS: dict[Runtime, tuple[str, ...]] = {
    Runtime.ONNXRUNTIME: ("", "relu", "sigmoid", "hardsigmoid"),
    Runtime.LITERT: ("", "relu"),
}
# Standalone activations: ORT runs swish (x * sigmoid(x), EfficientNet's) as one QuickGelu kernel; the converter
# writes it as LOGISTIC then MUL (an activation and an element-wise probe), and hard-sigmoid has no builtin.
ACTIVATIONS: dict[Runtime, tuple[str, ...]] = {
    Runtime.ONNXRUNTIME: ("relu", "relu6", "sigmoid", "hardsigmoid", "hardswish", "swish", "swish"),
    Runtime.LITERT: ("relu", "relu6", "sigmoid", "hardswish"),
}
# Odd counts too (3, 5, 7): a group of channels that fills no SIMD block is its own regime.
GROUPS = (2, 3, 4, 5, 7, 8, 16, 32)
# Channels per group of a narrow grouped conv (RegNet-, SE-ResNeXt-style blocks): each group's GEMM is too thin to
# fill a SIMD block, unlike a wide group's. Drawn more often than a width that follows from the input's channels,
# and half the time with as many groups as the input's channels give (hundreds: a 512-channel conv of 2-wide
# groups), not only one of GROUPS: a build that probed at most 32 groups priced 256 groups of 2 channels at half
# their time.
SMALL_GROUP_WIDTHS = (2, 4, 8, 16)
SMALL_WIDTH_SHARE = 0.6
# Kernel sizes of a grouped conv: ShuffleNet's grouped 1x1s and spatial ones up to 7x7 (a build that probed only
# 1x1 and 3x3 priced 5x5 and 7x7 grouped convs at 45-67% of their time).
GROUPED_KERNELS = (1, 3, 3, 5, 7)


@dataclass(frozen=True)
class Draw:
    """What every draw starts from (drawn in this order for every type, so a seed gives the same configs)."""

    rng: np.random.Generator
    runtime: Runtime
    h: int
    cin: int
    stride: int
    act: str
    fused_add: bool


@dataclass(frozen=True)
class Near:
    """A neighbour's scaled channels and resolution (see :func:`harness.predict.space.neighbours`)."""

    cin: int
    cout: int
    h: int


@dataclass(frozen=True)
class KernelSpec:
    """A kernel type's entry: ``weight`` is how often it is drawn (relative; real models' time goes to convs first);
    ``grouped``: its groups are a stratum of the space and its channels step by them."""

    type: KernelType
    weight: float
    draw: Callable[[Draw], KernelConfig]
    near: Callable[[KernelConfig, Near], KernelConfig]
    onnx: Callable[[onnx_w.OnnxGraph, KernelConfig], list[str]] | None = None
    tflite: Callable[[tflite_w.TfliteBuilder, KernelConfig], None] | None = None
    macs: Callable[[KernelConfig], int] = lambda cfg: 0
    valid: Callable[[KernelConfig], bool] = lambda cfg: True
    grouped: bool = False
    act_stratum: bool = False  # its activation is a stratum (a standalone activation's function)
    groups_stratum: Callable[[KernelConfig], object] | None = None  # its groups' stratum (default: the count)

    def writes(self, runtime: Runtime) -> bool:
        """Whether ``runtime``'s graphs hold this type (its format has a probe writer)."""
        return (self.onnx if runtime is Runtime.ONNXRUNTIME else self.tflite) is not None


def channels(rng: np.random.Generator, h: int, w: int, low: int = 8, high: int = 2048) -> int:
    """Log-uniform channels, mostly multiples of 8 (as real widths are), capped by the tensor-size bound."""
    cap = max(low, min(high, MAX_ELEMENTS // (h * w)))
    c = float(np.exp(rng.uniform(math.log(low), math.log(cap))))
    return max(1, round(c / 8) * 8 if rng.random() < 0.7 and c >= 8 else round(c))


def _conv_macs(cfg: KernelConfig) -> int:
    return cfg.h_out * cfg.w_out * cfg.cout * cfg.cin // cfg.groups * cfg.kernel**2


def _near_resized(cfg: KernelConfig, n: Near) -> KernelConfig:
    return replace(cfg, cin=n.cin, cout=n.cout, h=n.h, w=n.h)


def _near_same_channels(cfg: KernelConfig, n: Near) -> KernelConfig:
    return replace(cfg, cin=n.cin, cout=n.cin, h=n.h, w=n.h)


def _draw_pointwise(d: Draw) -> KernelConfig:
    rng, h, cin = d.rng, d.h, d.cin
    ratio = float(rng.choice([1 / 6, 1 / 4, 1 / 3, 1 / 2, 1, 1, 2, 3, 4, 6]))
    cout = max(8, int(round(cin * ratio / 8) * 8)) if rng.random() < 0.6 else channels(rng, h, h)
    stride = 1 if rng.random() < 0.9 else 2
    return KernelConfig(KernelType.POINTWISE_CONV, cin, cout, h, h, 1, stride, 1, d.act,
                        fused_add=d.fused_add and cin == cout)  # fmt: skip


def _draw_depthwise(d: Draw) -> KernelConfig:
    k = int(d.rng.choice([3, 3, 3, 5, 7]))
    return KernelConfig(KernelType.DEPTHWISE_CONV, d.cin, d.cin, d.h, d.h, k, d.stride, d.cin, d.act)


def _draw_dense(d: Draw) -> KernelConfig:
    rng, h = d.rng, d.h
    k = int(rng.choice([3, 3, 5, 7]))
    first = rng.random() < 0.2  # a stem: RGB in
    c_in = 3 if first else channels(rng, h, h, high=512)
    cout = channels(rng, h, h, high=512)
    return KernelConfig(KernelType.DENSE_CONV, c_in, cout, h, h, k, d.stride if not first else 2, 1, d.act,
                        fused_add=d.fused_add)  # fmt: skip


def _draw_grouped(d: Draw) -> KernelConfig:
    rng, h = d.rng, d.h
    g = int(rng.choice(GROUPS))
    k = int(rng.choice(GROUPED_KERNELS))
    if rng.random() < SMALL_WIDTH_SHARE:  # a narrow group: a few channels each, in and out
        per_in = per_out = int(rng.choice(SMALL_GROUP_WIDTHS))
        if rng.random() < 0.5:  # as many groups as the input's channels give
            g = max(2, d.cin // per_in)
    else:
        per_in = max(1, d.cin // g)
        per_out = max(1, channels(rng, h, h) // g)
    return KernelConfig(KernelType.GROUPED_CONV, per_in * g, per_out * g, h, h, k, d.stride if k > 1 else 1, g, d.act)


def group_stratum(cfg: KernelConfig) -> str:
    """A grouped conv's stratum of the space: a narrow group's width (the efficiency regime), else its group count."""
    width = cfg.cin // cfg.groups
    narrow = width in SMALL_GROUP_WIDTHS and cfg.cout // cfg.groups == width
    return f"width {width}" if narrow else f"{cfg.groups} groups"


def _valid_grouped(cfg: KernelConfig) -> bool:
    # groups == cin is a depthwise conv (with a channel multiplier)
    return not (cfg.cin % cfg.groups or cfg.cout % cfg.groups or not 2 <= cfg.groups < cfg.cin)


def _draw_fully_connected(d: Draw) -> KernelConfig:
    rng = d.rng
    cout = channels(rng, 1, 1, high=2048)
    variant = "conv" if rng.random() < 0.6 else "gemm"  # SE's 1x1 convs on a 1x1 map, or a classifier
    c_in = channels(rng, 1, 1, high=2048)
    gate = str(rng.choice(GATE_ACTIVATIONS.get(d.runtime, GATE_ACTIVATIONS[Runtime.LITERT])))
    return KernelConfig(KernelType.FULLY_CONNECTED, c_in, cout, 1, 1, variant=variant,
                        act=gate if variant == "conv" else "")  # fmt: skip


def _draw_elementwise(d: Draw) -> KernelConfig:
    variant = str(d.rng.choice(["add", "add", "mul"]))
    eact = "relu" if variant == "add" and d.rng.random() < 0.3 else ""
    return KernelConfig(KernelType.ELEMENTWISE, d.cin, d.cin, d.h, d.h, variant=variant, act=eact)


def _draw_broadcast(d: Draw) -> KernelConfig:
    variant = str(d.rng.choice(["mul", "add"]))  # SE blocks scale; a per-channel add (a bias, a gate) as often
    return KernelConfig(KernelType.BROADCAST, d.cin, d.cin, d.h, d.h, variant=variant)


def _draw_activation(d: Draw) -> KernelConfig:
    acts = ACTIVATIONS.get(d.runtime, ACTIVATIONS[Runtime.LITERT])
    return KernelConfig(KernelType.ACTIVATION, d.cin, d.cin, d.h, d.h, act=str(d.rng.choice(acts)))


def _draw_pooling(d: Draw) -> KernelConfig:
    variant = str(d.rng.choice(["max", "avg"]))
    k = int(d.rng.choice([2, 3]))
    return KernelConfig(KernelType.POOLING, d.cin, d.cin, d.h, d.h, k, 2, variant=variant)


def _draw_global_pool(d: Draw) -> KernelConfig:
    variant = str(d.rng.choice(["mean", "global"]))
    return KernelConfig(KernelType.GLOBAL_POOL, d.cin, d.cin, d.h, d.h, variant=variant)


def _draw_concat(d: Draw) -> KernelConfig:
    other = channels(d.rng, d.h, d.h)
    return KernelConfig(KernelType.CONCAT, d.cin, d.cin + other, d.h, d.h)


def _near_concat(cfg: KernelConfig, n: Near) -> KernelConfig:
    return replace(cfg, cin=n.cin, cout=max(n.cout, n.cin + 1), h=n.h, w=n.h)


def _draw_split(d: Draw) -> KernelConfig:
    c = d.cin - d.cin % 2
    return KernelConfig(KernelType.SPLIT, c, c // 2, d.h, d.h, variant=str(d.rng.choice(["split", "slice"])))


def _near_split(cfg: KernelConfig, n: Near) -> KernelConfig:
    cin = n.cin - n.cin % 2
    return replace(cfg, cin=cin, cout=cin // 2, h=n.h, w=n.h)


def _shuffle_draw(kind: KernelType) -> Callable[[Draw], KernelConfig]:
    """A channel shuffle's part (reshape, transpose, gather); a transpose is a 4-D layout one half the time."""

    def draw(d: Draw) -> KernelConfig:
        g = int(d.rng.choice([2, 2, 3, 4, 8]))
        c = max(g, d.cin - d.cin % g)
        variant = (
            "shuffle"
            if kind is not KernelType.TRANSPOSE or d.rng.random() < 0.5
            else str(d.rng.choice(["to_nchw", "to_nhwc"]))
        )
        return KernelConfig(kind, c, c, d.h, d.h, groups=g, variant=variant)

    return draw


def _valid_shuffle(cfg: KernelConfig) -> bool:
    return cfg.variant != "shuffle" or cfg.cin % cfg.groups == 0


def _shuffle(
    kind: KernelType,
    weight: float,
    near: Callable[[KernelConfig, Near], KernelConfig],
    onnx: Callable[[onnx_w.OnnxGraph, KernelConfig], list[str]] | None,
    tflite: Callable[[tflite_w.TfliteBuilder, KernelConfig], None] | None,
    grouped: bool = True,
) -> KernelSpec:
    """A channel shuffle part's spec: drawn with a group count that divides its channels."""
    return KernelSpec(kind, weight, _shuffle_draw(kind), near, onnx, tflite, valid=_valid_shuffle, grouped=grouped)


def _draw_pad(d: Draw) -> KernelConfig:
    kernel, variant = int(d.rng.choice([2, 3])), str(d.rng.choice(["zero", "min"]))
    return KernelConfig(KernelType.PAD, d.cin, d.cin, d.h, d.h, kernel=kernel, variant=variant)


def _conv(kind: KernelType, weight: float, draw: Callable[[Draw], KernelConfig], **kw: object) -> KernelSpec:
    """A convolution's spec: every conv type is one Conv / CONV_2D (DEPTHWISE_CONV_2D) node."""
    fields: dict[str, object] = {"near": _near_resized, "macs": _conv_macs, **kw}
    return KernelSpec(kind, weight, draw, onnx=onnx_w.conv, tflite=tflite_w.conv, **fields)  # type: ignore[arg-type]


def _near_depthwise(cfg: KernelConfig, n: Near) -> KernelConfig:
    return replace(cfg, cin=n.cin, cout=n.cin, h=n.h, w=n.h, groups=n.cin)


# In draw order: the space picks a type by index into this table, so its order is part of what a seed means.
SPECS: dict[KernelType, KernelSpec] = {
    spec.type: spec
    for spec in (
        _conv(KernelType.POINTWISE_CONV, 24, _draw_pointwise),
        _conv(
            KernelType.DEPTHWISE_CONV,
            18,
            _draw_depthwise,
            near=_near_depthwise,
            macs=lambda c: c.h_out * c.w_out * c.cin * c.kernel**2,
        ),
        _conv(KernelType.DENSE_CONV, 8, _draw_dense),
        _conv(
            KernelType.GROUPED_CONV, 16, _draw_grouped, valid=_valid_grouped, grouped=True, groups_stratum=group_stratum
        ),
        KernelSpec(
            KernelType.FULLY_CONNECTED,
            4,
            _draw_fully_connected,
            near=lambda cfg, n: replace(cfg, cin=n.cin, cout=n.cout),
            onnx=onnx_w.fully_connected,
            tflite=tflite_w.fully_connected,
            macs=lambda c: c.cin * c.cout,
        ),
        KernelSpec(
            KernelType.ELEMENTWISE, 5, _draw_elementwise, _near_same_channels, onnx_w.elementwise, tflite_w.elementwise
        ),
        KernelSpec(
            KernelType.ACTIVATION,
            5,
            _draw_activation,
            _near_same_channels,
            onnx_w.standalone_activation,
            tflite_w.standalone_activation,
            act_stratum=True,
        ),
        KernelSpec(
            KernelType.POOLING,
            3,
            _draw_pooling,
            _near_same_channels,
            onnx_w.pooling,
            tflite_w.pooling,
            valid=lambda cfg: cfg.h >= cfg.kernel,
        ),
        KernelSpec(
            KernelType.GLOBAL_POOL, 3, _draw_global_pool, _near_same_channels, onnx_w.global_pool, tflite_w.global_pool
        ),
        KernelSpec(KernelType.CONCAT, 4, _draw_concat, _near_concat, onnx_w.concat, tflite_w.concat),
        KernelSpec(
            KernelType.SPLIT, 3, _draw_split, _near_split, onnx_w.split, tflite_w.split, valid=lambda cfg: cfg.cin >= 2
        ),
        _shuffle(KernelType.TRANSPOSE, 5, _near_same_channels, onnx_w.transpose, tflite_w.transpose),
        _shuffle(KernelType.RESHAPE, 2, _near_resized, onnx_w.reshape, tflite_w.reshape),
        # litert-torch writes explicit pads before strided convs and pools; ORT's graphs have none
        KernelSpec(KernelType.PAD, 3, _draw_pad, _near_resized, tflite=tflite_w.pad),
        # ORT runs a channel shuffle's Gather; the converter writes none
        _shuffle(KernelType.GATHER, 1, _near_resized, onnx_w.gather, None, grouped=False),
        KernelSpec(KernelType.BROADCAST, 3, _draw_broadcast, _near_same_channels, onnx_w.broadcast, tflite_w.broadcast),
    )
}
