"""Random CNN architectures from a space wider than the zoo: a typed description, drawn from a seed, built as a module.

The space spans what the zoo's families vary and more: input resolution (odd ones included), stem width and stride,
an optional stem max pool, stages of 1-4 blocks, each block one of three kinds (an inverted residual, a bottleneck
whose spatial conv is grouped, a two-branch block whose outputs are concatenated), kernel sizes 3/5/7, strides 1/2,
group widths from depthwise through small groups (odd group counts included) to dense, expansion ratios,
squeeze-excitation, four activations, residual connections where the shapes allow them, and average or max global
pooling. Net ``index`` of seed ``seed`` is drawn from its own generator ``(seed, index)``, so it is the same
whatever N is; :func:`random_net` is a torch factory (``harness.predict.random_nets:random_net``) the sweep exports.

Two streams share the space: **evaluation nets** (:func:`random_net`, what ``predictor eval --random`` measures and no
build ever trains on) and **training nets** (:func:`training_net`, generator ``(seed, index, TRAINING_STREAM)``), which
a build measures whole to calibrate its kernel sum on nets of this space, not only on the zoo's. The generators
differ, so no seed of one stream ever draws a net of the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np
import torch
from torch import nn

TARGET = "harness.predict.random_nets:random_net"  # the factory as a sweep names it
TRAINING_TARGET = "harness.predict.random_nets:training_net"  # a build's training nets (never evaluated on)
TRAINING_STREAM = 1  # the third word of a training net's generator seed (evaluation nets have two)
CLASSES = 1000
T = TypeVar("T")


class BlockKind(StrEnum):
    INVERTED = "inverted"  # 1x1 expand, kxk grouped/depthwise, [SE], 1x1 project (MobileNetV2/V3, EfficientNet)
    BOTTLENECK = "bottleneck"  # 1x1 reduce, kxk grouped, [SE], 1x1 expand (ResNeXt, RegNet)
    CONCAT = "concat"  # a 1x1 branch and a kxk grouped branch, concatenated (Inception, ShuffleNet's concat)


class Activation(StrEnum):
    RELU = "relu"
    RELU6 = "relu6"
    HSWISH = "hswish"
    SILU = "silu"


class Pooling(StrEnum):
    AVG = "avg"
    MAX = "max"


class Size(StrEnum):
    FULL = "full"  # comparable to the zoo: 96-255 px, up to 512 channels
    SMALL = "small"  # tests: 24-48 px, up to 48 channels, milliseconds to export and time


@dataclass(frozen=True)
class BlockSpec:
    kind: BlockKind
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    hidden: int  # channels of the spatial conv (expanded, reduced, or the kxk branch's)
    group_width: int  # channels per group of the spatial conv: 1 is depthwise, ``hidden`` is dense
    squeeze_excite: bool
    activation: Activation
    residual: bool  # only where stride is 1 and channels match

    @property
    def groups(self) -> int:
        return self.hidden // self.group_width


@dataclass(frozen=True)
class NetSpec:
    resolution: int
    stem_channels: int
    stem_stride: int
    stem_pool: bool
    blocks: tuple[BlockSpec, ...]
    head_channels: int  # 0: no 1x1 head conv
    pooling: Pooling
    activation: Activation  # stem and head

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.resolution, self.resolution)

    def summary(self) -> str:
        """One line: resolution, block kinds, kernel sizes, group widths, SE and activations."""
        kinds = "/".join(sorted({b.kind.value for b in self.blocks}))
        ks = "".join(sorted({str(b.kernel_size) for b in self.blocks}))
        gw = ",".join(str(w) for w in sorted({b.group_width for b in self.blocks}))
        se = sum(b.squeeze_excite for b in self.blocks)
        return (f"{self.resolution}px {len(self.blocks)} blocks {kinds} k{ks} gw{gw} se{se} "
                f"{self.blocks[-1].out_channels if self.blocks else self.stem_channels}ch {self.pooling}")  # fmt: skip


# The ranges each size draws from: resolution bounds, stem widths, stages, blocks per stage, channel ceiling.
_RANGES = {
    Size.FULL: ((96, 255), (8, 16, 24, 32), (2, 5), (1, 4), 512, (0, 0, 512, 1024, 1280)),
    Size.SMALL: ((24, 48), (8, 12, 16), (1, 2), (1, 2), 48, (0, 32)),
}
_KERNELS = (3, 5, 7)
_GROUP_WIDTHS = (1, 1, 2, 4, 8, 16, 0)  # 0: dense (one group); depthwise drawn twice as often, as in the zoo
_EXPANSIONS = {BlockKind.INVERTED: (1.0, 2.0, 3.0, 4.0, 6.0), BlockKind.BOTTLENECK: (0.25, 0.5, 1.0),
               BlockKind.CONCAT: (0.5,)}  # fmt: skip


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def draw(seed: int, index: int, size: Size = Size.FULL, training: bool = False) -> NetSpec:
    """Net ``index`` of seed ``seed``: the same description on every machine and for any number of nets drawn
    (``training``: of the training stream, see the module doc)."""
    rng = np.random.default_rng([seed, index, TRAINING_STREAM] if training else [seed, index])
    (lo, hi), stems, (s_lo, s_hi), (d_lo, d_hi), ceiling, heads = _RANGES[size]

    def pick(options: tuple[T, ...] | list[T]) -> T:
        return options[int(rng.integers(len(options)))]

    resolution = int(rng.integers(lo, hi + 1))
    stem = int(pick(stems))
    stem_stride = 2 if size is Size.FULL or rng.random() < 0.5 else 1
    stem_pool = bool(rng.random() < 0.3)
    blocks: list[BlockSpec] = []
    channels = stem
    for stage in range(int(rng.integers(s_lo, s_hi + 1))):
        kind = pick(list(BlockKind))
        act = pick(list(Activation))
        ks = int(pick(_KERNELS))
        se = bool(rng.random() < 0.35)
        width = pick(_GROUP_WIDTHS)
        expansion = float(pick(_EXPANSIONS[kind]))
        out = min(ceiling, _round_to(channels * float(rng.uniform(1.2, 2.2)), 8))
        for i in range(int(rng.integers(d_lo, d_hi + 1))):
            stride = 2 if i == 0 and (stage > 0 or rng.random() < 0.5) else 1
            blocks.append(_block(kind, channels, out, ks, stride, expansion, width, se, act, bool(rng.random() < 0.8)))
            channels = out = blocks[-1].out_channels  # a concat block rounds its width to its branches'
    return NetSpec(resolution, stem, stem_stride, stem_pool, tuple(blocks), int(pick(heads)), pick(list(Pooling)),
                   pick(list(Activation)))  # fmt: skip


def _block(kind: BlockKind, cin: int, cout: int, ks: int, stride: int, expansion: float, width: int, se: bool,
           act: Activation, wants_residual: bool) -> BlockSpec:  # fmt: skip
    if kind is BlockKind.CONCAT:
        cout -= cout % 2
        hidden = cout // 2  # the kxk branch's half; the 1x1 branch gives the other
    else:
        hidden = _round_to((cin if kind is BlockKind.INVERTED else cout) * expansion, 8)
    # A dense spatial conv is 3x3 on at most 128 channels, as in ResNet's early stages: a dense 7x7 on wide maps
    # would take seconds, far from what efficient nets run.
    gw = min(hidden, 128) if width == 0 else width
    if width == 0:
        ks = 3
    if hidden % gw:
        hidden = _round_to(hidden, gw)
        if kind is BlockKind.CONCAT:
            cout = 2 * hidden
    residual = wants_residual and stride == 1 and cin == cout and kind is not BlockKind.CONCAT
    return BlockSpec(kind, cin, cout, ks, stride, hidden, gw, se, act, residual)


def draw_nets(n: int, seed: int, size: Size = Size.FULL) -> list[NetSpec]:
    return [draw(seed, i, size) for i in range(n)]


_ACTIVATIONS: dict[Activation, type[nn.Module]] = {
    Activation.RELU: nn.ReLU,
    Activation.RELU6: nn.ReLU6,
    Activation.HSWISH: nn.Hardswish,
    Activation.SILU: nn.SiLU,
}


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: Activation | None = None) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(_ACTIVATIONS[act]())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Global average, 1x1 reduce to a quarter (at least 8), ReLU, 1x1 expand, hard sigmoid, rescale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = max(8, channels // 4)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(torch.relu(self.reduce(s))))


class Block(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.spec = spec
        b = spec
        if b.kind is BlockKind.CONCAT:
            self.branch1 = _conv(b.in_channels, b.out_channels - b.hidden, 1, b.stride, act=b.activation)
            self.branch2 = nn.Sequential(
                _conv(b.in_channels, b.hidden, 1, act=b.activation),
                _conv(b.hidden, b.hidden, b.kernel_size, b.stride, b.groups, b.activation),
                *([SqueezeExcite(b.hidden)] if b.squeeze_excite else []),
            )
            return
        expand = [] if b.hidden == b.in_channels and b.kind is BlockKind.INVERTED else [
            _conv(b.in_channels, b.hidden, 1, act=b.activation)]  # fmt: skip
        self.body = nn.Sequential(
            *expand,
            _conv(b.hidden, b.hidden, b.kernel_size, b.stride, b.groups, b.activation),
            *([SqueezeExcite(b.hidden)] if b.squeeze_excite else []),
            # A bottleneck's expanding 1x1 is followed by the activation after the sum; an inverted one's is linear.
            _conv(b.hidden, b.out_channels, 1),
        )
        self.after = _ACTIVATIONS[b.activation]() if b.kind is BlockKind.BOTTLENECK else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.kind is BlockKind.CONCAT:
            return torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        y = self.body(x)
        return self.after(y + x if self.spec.residual else y)


class RandomNet(nn.Module):
    def __init__(self, spec: NetSpec, classes: int = CLASSES) -> None:
        super().__init__()
        self.spec = spec
        self.stem = nn.Sequential(
            _conv(3, spec.stem_channels, 3, spec.stem_stride, act=spec.activation),
            *([nn.MaxPool2d(3, 2, 1)] if spec.stem_pool else []),
        )
        self.blocks = nn.Sequential(*(Block(b) for b in spec.blocks))
        last = spec.blocks[-1].out_channels if spec.blocks else spec.stem_channels
        self.head = _conv(last, spec.head_channels, 1, act=spec.activation) if spec.head_channels else nn.Identity()
        self.classifier = nn.Linear(spec.head_channels or last, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.blocks(self.stem(x)))
        pooled = y.mean((2, 3)) if self.spec.pooling is Pooling.AVG else y.amax((2, 3))
        return self.classifier(pooled)


def build(spec: NetSpec) -> RandomNet:
    return RandomNet(spec).eval()


def random_net(seed: int, index: int, size: str = Size.FULL.value) -> nn.Module:
    """The torch factory a sweep exports: net ``index`` of seed ``seed`` (input shape: ``draw(...).input_shape``)."""
    return build(draw(seed, index, Size(size)))


def training_net(seed: int, index: int, size: str = Size.FULL.value) -> nn.Module:
    """The torch factory of training net ``index`` of seed ``seed`` (input shape: ``draw(..., training=True)``)."""
    return build(draw(seed, index, Size(size), training=True))
