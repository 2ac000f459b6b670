"""FD-MobileNet (Qin et al. 2018): MobileNetV1 layers with fast downsampling to 7×7 within the first 12 layers.

Five stride-2 layers come first (224 → 7 after the stem and four depthwise-separable layers), so most layers run
at small resolution with many channels: 5 layers at 512 and one at 1024, all at 7×7 (paper Table 1).
"""

from __future__ import annotations

from torch import nn

from harness.zoo.mobilenet_v1 import MobileNetV1
from harness.zoo.registry import Param, Reference, register_model

# (output channels, stride) of the 11 depthwise-separable layers after the 32-channel stride-2 stem
LAYERS: tuple[tuple[int, int], ...] = (
    (64, 2),  # 56×56
    (128, 2),  # 28×28
    (128, 1),
    (256, 2),  # 14×14
    (256, 1),
    (512, 2),  # 7×7
    *((512, 1),) * 4,
    (1024, 1),
)


# Qin et al. 2018 count FLOPs as multiply-adds (as ShuffleNet does) and compare at three complexity levels:
# 1x 144M, 0.5x 40M, 0.25x 12M (ImageNet results; the authors' README, github.com/qinzheng93/FD-MobileNet, lists
# the same). Their released code builds exactly these layers with int(c * alpha) widths. No parameter count is
# used: none could be traced to the paper (this build has 2.90M / 0.99M / 0.38M).
_QIN = "Qin et al. 2018, ImageNet results table (MFLOPs = mult-adds)"


@register_model(
    family="fd_mobilenet",
    params=(Param("alpha", 1.0, choices=(0.25, 0.5, 1.0)),),
    references={
        (("alpha", 1.0),): Reference(None, 144_000_000, _QIN),
        (("alpha", 0.5),): Reference(None, 40_000_000, _QIN),
        (("alpha", 0.25),): Reference(None, 12_000_000, _QIN),
    },
)
def fd_mobilenet(alpha: float = 1.0) -> nn.Module:
    """FD-MobileNet: depthwise-separable layers with fast downsampling to 7×7; ``alpha`` scales widths."""
    return MobileNetV1(alpha, layers=LAYERS)
