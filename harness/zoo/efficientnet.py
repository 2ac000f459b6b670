"""EfficientNet-B0 (Tan & Le 2019): MBConv blocks with SE and swish, laid out as torchvision builds it.

SE here squeezes to a quarter of the block's *input* width (not of the expanded width, unlike MobileNetV3) and
uses swish with a sigmoid gate. Stochastic depth and dropout are training-only and left out.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.zoo.layers import Classifier, ConvBNAct, InvertedResidual, SqueezeExcite, make_divisible
from harness.zoo.registry import Reference, register_model

# (expansion, kernel, first stride, output channels, repeats), paper Table 1
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


class EfficientNet(nn.Module):
    """``stem`` → ``features.N`` (``.expand``/``.dw``/``.se``/``.project``) → ``head`` 1×1 conv → ``classifier``."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        cin = 32
        self.stem = ConvBNAct(3, cin, 3, 2, act="swish")
        self.features = nn.Sequential()
        for expansion, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                expanded = make_divisible(cin * expansion)
                se = SqueezeExcite(expanded, max(1, cin // 4), act="swish", gate="sigmoid")
                block = InvertedResidual(cin, cout, expanded, kernel, stride if i == 0 else 1, "swish", se)
                self.features.add_module(str(len(self.features)), block)
                cin = cout
        self.head = ConvBNAct(cin, 4 * cin, 1, act="swish")
        self.classifier = Classifier(4 * cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.features(self.stem(x))))


@register_model(
    family="efficientnet",
    references={(): Reference(params=5_300_000, macs=390_000_000, source="Tan & Le 2019, Table 2")},
    torchvision_params={(): 5_288_548},
)
def efficientnet_b0() -> nn.Module:
    """EfficientNet-B0: MBConv (inverted residual + SE, swish) found by NAS; the base of the compound scaling."""
    return EfficientNet()
