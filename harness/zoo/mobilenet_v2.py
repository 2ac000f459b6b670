"""MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks, laid out as torchvision builds it."""

from __future__ import annotations

import torch
from torch import nn

from harness.zoo.layers import Classifier, ConvBNAct, InvertedResidual, make_divisible
from harness.zoo.registry import Param, Reference, ReferenceTable, register_model

# (expansion t, output channels c, repeats n, first stride s), paper Table 2
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """``stem`` → ``features.0..16`` (``.expand``/``.dw``/``.project``) → ``head`` 1×1 conv → ``classifier``."""

    def __init__(self, alpha: float = 1.0, classes: int = 1000) -> None:
        super().__init__()
        cin = make_divisible(32 * alpha)
        # The 1280-wide head grows with alpha > 1 but never shrinks: the paper keeps it for multipliers below one.
        last = make_divisible(1280 * max(1.0, alpha))
        self.stem = ConvBNAct(3, cin, 3, 2, act="relu6")
        self.features = nn.Sequential()
        for t, c, n, s in STAGES:
            cout = make_divisible(c * alpha)
            for i in range(n):
                block = InvertedResidual(cin, cout, cin * t, 3, s if i == 0 else 1, act="relu6")
                self.features.add_module(str(len(self.features)), block)
                cin = cout
        self.head = ConvBNAct(cin, last, 1, act="relu6")
        self.classifier = Classifier(last, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.features(self.stem(x))))


# TF-slim's table lists the released checkpoints of the paper (one decimal more than the paper's tables). The
# paper's own Table 4 rounds 1.0 to 3.4M params, 3% under this build's 3.50M (BN affine included), so it is
# not used; the slim figures count a 1001-class classifier, a 0.04% difference.
_SLIM_V2 = "Sandler et al. 2018, released checkpoints table (tensorflow/models research/slim/nets/mobilenet/README.md)"
REFERENCES: ReferenceTable = {
    (("alpha", 1.4),): Reference(6_060_000, 582_000_000, _SLIM_V2),
    (("alpha", 1.0),): Reference(3_470_000, 300_000_000, _SLIM_V2),
    (("alpha", 0.75),): Reference(2_610_000, 209_000_000, _SLIM_V2),
    (("alpha", 0.5),): Reference(1_950_000, 97_000_000, _SLIM_V2),
    (("alpha", 0.35),): Reference(1_660_000, 59_000_000, _SLIM_V2),
}


@register_model(
    family="mobilenet_v2",
    params=(Param("alpha", 1.0, choices=(0.35, 0.5, 0.75, 1.0, 1.4)),),
    references=REFERENCES,
    torchvision_params={(("alpha", 1.0),): 3_504_872},
)
def mobilenet_v2(alpha: float = 1.0) -> nn.Module:
    """MobileNetV2: inverted residuals (expand 1×1, depthwise 3×3, linear 1×1); ``alpha`` scales widths."""
    return MobileNetV2(alpha)
