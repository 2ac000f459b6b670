"""Layers shared by the architectures and the standalone blocks.

Module attribute names matter: exporters keep the module path in node names, so analysis maps each op back
to its block (``stage2.0.branch2.dw``). Name submodules for what they are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=False),
    "relu6": lambda: nn.ReLU6(inplace=False),
    "swish": lambda: nn.SiLU(inplace=False),
    "hswish": lambda: nn.Hardswish(inplace=False),
    "sigmoid": nn.Sigmoid,
    "hsigmoid": lambda: nn.Hardsigmoid(inplace=False),
    "none": nn.Identity,
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without going below 90% of it (MobileNetV2 rule)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) → BatchNorm → activation; ``groups`` covers grouped and depthwise convs."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: str = "relu",
        padding: int | None = None,
    ) -> None:
        pad = (kernel - 1) // 2 if padding is None else padding
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = ACTIVATIONS[act]()


class SqueezeExcite(nn.Module):
    """Global pool → FC reduce → act → FC expand → gate → scale (SE; MobileNetV3 uses ReLU + hard-sigmoid)."""

    def __init__(self, channels: int, squeeze: int, act: str = "relu", gate: str = "sigmoid") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = ACTIVATIONS[act]()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = ACTIVATIONS[gate]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * s


# --- channel shuffle: zero FLOPs, but every byte moves -----------------------------------------------------


class ChannelShuffle(nn.Module):
    """ShuffleNet's shuffle as reshape → transpose → reshape, written NCHW-style."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.reshape(n, self.groups, c // self.groups, h, w)
        x = x.transpose(1, 2)
        return x.reshape(n, c, h, w)


class ChannelShuffleGather(nn.Module):
    """The same permutation as a gather along channels (``index_select`` with a fixed index)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        per = channels // groups
        # output channel j*groups + i takes input channel i*per + j
        index = torch.arange(channels).reshape(groups, per).t().reshape(-1)
        self.index: torch.Tensor
        self.register_buffer("index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(x, 1, self.index)


class ChannelShuffleChannelsLast(nn.Module):
    """Shuffle formulated on an NHWC view: permute to channels-last, shuffle the last axis, permute back.

    The outer permutes cancel against the NHWC I/O a TFLite conversion adds, so the shuffle itself is one
    transpose over the innermost axes.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = x.permute(0, 2, 3, 1)  # NHWC
        y = y.reshape(n, h, w, self.groups, c // self.groups).transpose(3, 4).reshape(n, h, w, c)
        return y.permute(0, 3, 1, 2)


SHUFFLES = ("transpose", "gather", "channels_last")


def channel_shuffle(kind: str, channels: int, groups: int) -> nn.Module:
    if kind == "transpose":
        return ChannelShuffle(groups)
    if kind == "gather":
        return ChannelShuffleGather(channels, groups)
    if kind == "channels_last":
        return ChannelShuffleChannelsLast(groups)
    raise ValueError(f"unknown shuffle '{kind}'; allowed: {', '.join(SHUFFLES)}")


class Classifier(nn.Sequential):
    """Global average pool → flatten → (dropout-free) linear: the common head."""

    def __init__(self, cin: int, classes: int = 1000) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(cin, classes)


# --- MobileNet-style blocks shared by several families -------------------------------------------------------


class DepthwiseSeparable(nn.Module):
    """Depthwise k×k (carries the stride) → pointwise 1×1, each with BN and activation (MobileNetV1)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, kernel: int = 3, act: str = "relu") -> None:
        super().__init__()
        self.dw = ConvBNAct(cin, cin, kernel, stride, groups=cin, act=act)
        self.pw = ConvBNAct(cin, cout, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class InvertedResidual(nn.Module):
    """Expand 1×1 → depthwise k×k → optional SE → linear project 1×1, with an identity skip when shapes allow.

    Shared by MobileNetV2, MobileNetV3 and EfficientNet's MBConv; the expand conv is left out (``nn.Identity``)
    when ``expanded == cin``, as those papers do for expansion ratio 1.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        expanded: int,
        kernel: int = 3,
        stride: int = 1,
        act: str = "relu6",
        se: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.expand: nn.Module = ConvBNAct(cin, expanded, 1, act=act) if expanded != cin else nn.Identity()
        self.dw = ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act)
        self.se: nn.Module = se if se is not None else nn.Identity()
        self.project = ConvBNAct(expanded, cout, 1, act="none")
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        return x + out if self.residual else out
