"""Building blocks as standalone models with explicit shapes, to time one op or unit in isolation.

Every block takes its input shape from its parameters (``cin`` or ``channels``, ``h``, ``w``) and has no
reference table: its MACs are hand-computable (the tests do so). Channel shuffle is registered once per
implementation (``shuffle_transpose``, ``shuffle_gather``, ``shuffle_channels_last``) so that a wildcard
(``shuffle_*``) selects the three for a side-by-side run; activations share one ``activation`` block whose
``fn`` picks the function. Units are imported from the architectures that use them (one implementation each).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from harness.errors import InvalidParameterError
from harness.zoo.layers import (
    ACTIVATIONS,
    SHUFFLES,
    ConvBNAct,
    DepthwiseSeparable,
    InvertedResidual,
    SqueezeExcite,
    channel_shuffle,
)
from harness.zoo.registry import EntryKind, Param, ParamValue, register_model
from harness.zoo.resnet import Bottleneck
from harness.zoo.shufflenet_v1 import ShuffleV1Unit
from harness.zoo.shufflenet_v2 import ShuffleV2Unit

FAMILY = "block"
POSITIVE = "a positive integer"
ACTIVATION_FNS = tuple(k for k in ACTIVATIONS if k != "none")
Values = dict[str, ParamValue]


def _positive(value: ParamValue) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _odd_positive(value: ParamValue) -> bool:
    return _positive(value) and int(value) % 2 == 1


def _int(name: str, default: int) -> Param:
    return Param(name, default, check=_positive, hint=POSITIVE)


def _spatial(size: int) -> tuple[Param, Param]:
    return _int("h", size), _int("w", size)


STRIDE = Param("stride", 1, choices=(1, 2))


def _kernel(default: int) -> Param:
    return Param("kernel", default, check=_odd_positive, hint="an odd positive integer")


def _shape_of(channels: str) -> Callable[[Values], tuple[int, ...]]:
    def shape(p: Values) -> tuple[int, ...]:
        return (int(p[channels]), int(p["h"]), int(p["w"]))

    return shape


def _fail(block: str, param: str, value: ParamValue, allowed: str) -> InvalidParameterError:
    return InvalidParameterError(f"{block}: parameter '{param}'={value} is invalid; allowed: {allowed}")


def _check_divides(block: str, p: Values, divisor: str, *channels: str) -> None:
    g = int(p[divisor])
    for name in channels:
        if int(p[name]) % g:
            raise _fail(block, divisor, g, f"a divisor of '{name}'={p[name]}")


# --- convolutions ------------------------------------------------------------------------------------------


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(_int("cin", 64), _int("cout", 64), *_spatial(56), STRIDE),
    input_shape=_shape_of("cin"),
)
def conv3x3(cin: int = 64, cout: int = 64, h: int = 56, w: int = 56, stride: int = 1) -> nn.Module:
    """Dense 3×3 conv + BN + ReLU: Ho·Wo·cin·cout·9 MACs."""
    return ConvBNAct(cin, cout, 3, stride)


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(_int("cin", 64), _int("cout", 64), *_spatial(56), STRIDE),
    input_shape=_shape_of("cin"),
)
def conv1x1(cin: int = 64, cout: int = 64, h: int = 56, w: int = 56, stride: int = 1) -> nn.Module:
    """Pointwise 1×1 conv + BN + ReLU: Ho·Wo·cin·cout MACs."""
    return ConvBNAct(cin, cout, 1, stride)


def _validate_group_conv(p: Values) -> None:
    _check_divides("group_conv", p, "groups", "cin", "cout")


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(_int("cin", 240), _int("cout", 240), *_spatial(28), _kernel(1), STRIDE, _int("groups", 3)),
    input_shape=_shape_of("cin"),
    validate=_validate_group_conv,
)
def group_conv(
    cin: int = 240, cout: int = 240, h: int = 28, w: int = 28, kernel: int = 1, stride: int = 1, groups: int = 3
) -> nn.Module:
    """Grouped k×k conv + BN + ReLU (any G dividing cin and cout): Ho·Wo·cin·cout·k²/G MACs."""
    return ConvBNAct(cin, cout, kernel, stride, groups=groups)


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(_int("channels", 144), *_spatial(56), _kernel(3), STRIDE),
    input_shape=_shape_of("channels"),
)
def depthwise_conv(channels: int = 144, h: int = 56, w: int = 56, kernel: int = 3, stride: int = 1) -> nn.Module:
    """Depthwise k×k conv + BN + ReLU (G = channels): Ho·Wo·channels·k² MACs, memory bound."""
    return ConvBNAct(channels, channels, kernel, stride, groups=channels)


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(_int("cin", 64), _int("cout", 128), *_spatial(56), _kernel(3), STRIDE),
    input_shape=_shape_of("cin"),
)
def separable_conv(
    cin: int = 64, cout: int = 128, h: int = 56, w: int = 56, kernel: int = 3, stride: int = 1
) -> nn.Module:
    """Depthwise-separable conv (MobileNetV1): depthwise k×k then pointwise 1×1, each with BN + ReLU."""
    return DepthwiseSeparable(cin, cout, stride, kernel)


# --- channel shuffle: one registered name per implementation -----------------------------------------------


_SHUFFLE_DOCS = {
    "transpose": "Channel shuffle as reshape → transpose → reshape (zero MACs, copies the tensor).",
    "gather": "Channel shuffle as a gather (index_select) along channels (zero MACs, copies the tensor).",
    "channels_last": "Channel shuffle written on an NHWC view (zero MACs; the layout transposes may cancel).",
}


def _register_shuffle(impl: str) -> None:
    def build(channels: int = 240, h: int = 28, w: int = 28, groups: int = 3) -> nn.Module:
        return channel_shuffle(impl, channels, groups)

    def validate(p: Values) -> None:
        _check_divides(name, p, "groups", "channels")

    name = f"shuffle_{impl}"
    build.__doc__ = _SHUFFLE_DOCS[impl]
    register_model(
        name=name,
        family=FAMILY,
        kind=EntryKind.BLOCK,
        params=(_int("channels", 240), *_spatial(28), _int("groups", 3)),
        input_shape=_shape_of("channels"),
        validate=validate,
    )(build)


for _impl in SHUFFLES:
    _register_shuffle(_impl)


# --- residual units ----------------------------------------------------------------------------------------


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(_int("cin", 256), _int("planes", 64), *_spatial(56), STRIDE),
    input_shape=_shape_of("cin"),
)
def resnet_bottleneck(cin: int = 256, planes: int = 64, h: int = 56, w: int = 56, stride: int = 1) -> nn.Module:
    """ResNet bottleneck (v1.5): 1×1 cin→planes, 3×3 planes→planes, 1×1 planes→4·planes, shortcut, ReLU."""
    return Bottleneck(cin, planes, stride, groups=1, width_per_group=64)


def _validate_resnext(p: Values) -> None:
    # ResNeXt's width is planes·group_width/64 per group; keep it whole so the block is what it says.
    if int(p["planes"]) * int(p["group_width"]) % 64:
        raise _fail("resnext_block", "group_width", p["group_width"], "a value with planes·group_width divisible by 64")


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(
        _int("cin", 256),
        _int("planes", 64),
        _int("cardinality", 32),
        _int("group_width", 4),
        *_spatial(56),
        STRIDE,
    ),
    input_shape=_shape_of("cin"),
    validate=_validate_resnext,
)
def resnext_block(
    cin: int = 256,
    planes: int = 64,
    cardinality: int = 32,
    group_width: int = 4,
    h: int = 56,
    w: int = 56,
    stride: int = 1,
) -> nn.Module:
    """ResNeXt block: the bottleneck with a grouped 3×3 (cardinality groups of group_width·planes/64 channels)."""
    return Bottleneck(cin, planes, stride, groups=cardinality, width_per_group=group_width)


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(_int("cin", 24), _int("cout", 24), *_spatial(56), _int("expansion", 6), _kernel(3), STRIDE),
    input_shape=_shape_of("cin"),
)
def inverted_residual(
    cin: int = 24, cout: int = 24, h: int = 56, w: int = 56, expansion: int = 6, kernel: int = 3, stride: int = 1
) -> nn.Module:
    """MobileNetV2 inverted residual: 1×1 expand ×T → depthwise k×k → linear 1×1, skip when shapes allow."""
    return InvertedResidual(cin, cout, cin * expansion, kernel, stride)


def _validate_v1_unit(p: Values) -> None:
    block, cin, cout = "shufflenet_v1_unit", int(p["cin"]), int(p["cout"])
    if p["stride"] == 1 and cin != cout:
        raise _fail(block, "cout", cout, f"cout == cin ({cin}) at stride 1")
    if p["stride"] == 2 and cout <= cin:
        raise _fail(block, "cout", cout, f"more than cin ({cin}) at stride 2 (the shortcut is concatenated)")
    if cout % 4:
        raise _fail(block, "cout", cout, "a multiple of 4 (the bottleneck is cout/4)")
    _check_divides(block, {**p, "bottleneck (cout/4)": cout // 4}, "groups", "bottleneck (cout/4)")
    if p["stride"] == 2:
        _check_divides(block, {**p, "cout - cin": cout - cin}, "groups", "cout - cin")
    if p["grouped_first"]:
        _check_divides(block, p, "groups", "cin")


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(
        _int("cin", 240),
        _int("cout", 240),
        *_spatial(28),
        _int("groups", 3),
        STRIDE,
        Param("grouped_first", True, choices=(True, False)),
        Param("shuffle", "transpose", choices=SHUFFLES),
    ),
    input_shape=_shape_of("cin"),
    validate=_validate_v1_unit,
)
def shufflenet_v1_unit(
    cin: int = 240,
    cout: int = 240,
    h: int = 28,
    w: int = 28,
    groups: int = 3,
    stride: int = 1,
    grouped_first: bool = True,
    shuffle: str = "transpose",
) -> nn.Module:
    """ShuffleNet v1 unit: 1×1 group conv → shuffle → 3×3 depthwise → 1×1 group conv, add or concat."""
    return ShuffleV1Unit(cin, cout, cout // 4, groups, stride, grouped_first, shuffle)


def _validate_v2_unit(p: Values) -> None:
    block, cin, cout = "shufflenet_v2_unit", int(p["cin"]), int(p["cout"])
    if cout % 2:
        raise _fail(block, "cout", cout, "an even number (two equal branches)")
    if p["stride"] == 1 and cin != cout:
        raise _fail(block, "cout", cout, f"cout == cin ({cin}) at stride 1")


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(
        _int("cin", 116),
        _int("cout", 116),
        *_spatial(28),
        STRIDE,
        Param("shuffle", "transpose", choices=SHUFFLES),
    ),
    input_shape=_shape_of("cin"),
    validate=_validate_v2_unit,
)
def shufflenet_v2_unit(
    cin: int = 116, cout: int = 116, h: int = 28, w: int = 28, stride: int = 1, shuffle: str = "transpose"
) -> nn.Module:
    """ShuffleNet V2 unit: channel split (or two branches at stride 2), concat, shuffle with 2 groups."""
    return ShuffleV2Unit(cin, cout, stride, shuffle)


# --- attention and activations -----------------------------------------------------------------------------


def _validate_se(p: Values) -> None:
    if int(p["reduction"]) > int(p["channels"]):
        raise _fail("se", "reduction", p["reduction"], f"at most channels ({p['channels']})")


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(
        _int("channels", 96),
        *_spatial(14),
        _int("reduction", 4),
        Param("gate", "sigmoid", choices=("sigmoid", "hsigmoid")),
    ),
    input_shape=_shape_of("channels"),
    validate=_validate_se,
)
def se(channels: int = 96, h: int = 14, w: int = 14, reduction: int = 4, gate: str = "sigmoid") -> nn.Module:
    """Squeeze-and-excitation: pool → FC c→c/r → ReLU → FC c/r→c → gate → scale: 2·c·(c/r) MACs."""
    return SqueezeExcite(channels, channels // reduction, act="relu", gate=gate)


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(_int("channels", 64), *_spatial(56), Param("fn", "relu", choices=ACTIVATION_FNS)),
    input_shape=_shape_of("channels"),
)
def activation(channels: int = 64, h: int = 56, w: int = 56, fn: str = "relu") -> nn.Module:
    """One element-wise activation (relu, relu6, swish, hswish, sigmoid, hsigmoid): zero MACs."""
    return ACTIVATIONS[fn]()
