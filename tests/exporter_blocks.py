"""Small torch modules registered as test-family blocks for the exporter tests (no zoo dependency)."""

from __future__ import annotations

import torch
from torch import nn

from harness.zoo.layers import ChannelShuffle, ConvBNAct
from harness.zoo.registry import _REGISTRY, register_model

TEST_BLOCKS = ("xt_conv_block", "xt_shuffle_block", "xt_tiny_net", "xt_unconvertible")


class ConvBlock(nn.Module):
    """3×3 conv → depthwise 3×3 → pointwise 1×1, each with BN and ReLU (a MobileNet-style unit)."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, channels, 3, 2)
        self.dw = ConvBNAct(channels, channels, 3, 1, groups=channels)
        self.pw = ConvBNAct(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(self.stem(x)))


class ShuffleBlock(ConvBlock):
    """The conv block with an NCHW-style channel shuffle (reshape → transpose → reshape) after the pointwise."""

    def __init__(self, channels: int = 16, groups: int = 4) -> None:
        super().__init__(channels)
        self.shuffle = ChannelShuffle(groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(super().forward(x))


class TinyNet(nn.Module):
    """A conv block with a classifier head: (1, 10) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = ShuffleBlock(16, 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class Unconvertible(nn.Module):
    """A conv followed by a Bessel function: neither the ONNX exporter nor litert-torch lowers it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(self.conv(x))


def register() -> None:
    """Register the test blocks once per process."""
    if "xt_conv_block" in _REGISTRY:
        return
    shape = (3, 32, 32)
    register_model(family="test", kind="block", input_shape=shape, name="xt_conv_block")(lambda: ConvBlock())
    register_model(family="test", kind="block", input_shape=shape, name="xt_shuffle_block")(lambda: ShuffleBlock())
    register_model(family="test", kind="block", input_shape=shape, name="xt_tiny_net")(lambda: TinyNet())
    register_model(family="test", kind="block", input_shape=(3, 8, 8), name="xt_unconvertible")(lambda: Unconvertible())
