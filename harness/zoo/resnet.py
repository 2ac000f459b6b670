"""ResNet-50 and ResNeXt-50 (32×4d): bottleneck v1.5, the stride on the 3×3 conv (torchvision's layout).

The dense reference points of the zoo: large, regular 1×1/3×3 convs with high arithmetic intensity.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.zoo.layers import Classifier, ConvBNAct
from harness.zoo.registry import Reference, register_model

EXPANSION = 4
STAGE_BLOCKS = (3, 4, 6, 3)
STAGE_PLANES = (64, 128, 256, 512)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (strided, optionally grouped) → 1×1 expand, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, planes: int, stride: int, groups: int, width_per_group: int) -> None:
        super().__init__()
        width = planes * width_per_group // 64 * groups
        cout = planes * EXPANSION
        self.reduce = ConvBNAct(cin, width, 1)
        self.conv = ConvBNAct(width, width, 3, stride, groups=groups)
        self.expand = ConvBNAct(width, cout, 1, act="none")
        needs_projection = stride != 1 or cin != cout
        self.shortcut: nn.Module = ConvBNAct(cin, cout, 1, stride, act="none") if needs_projection else nn.Identity()
        self.act = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.expand(self.conv(self.reduce(x))) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (7×7/2 conv, 3×3/2 max-pool) → four bottleneck stages ``layer1..layer4`` → classifier."""

    def __init__(self, groups: int = 1, width_per_group: int = 64, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential()
        self.stem.add_module("conv", ConvBNAct(3, 64, 7, 2))
        self.stem.add_module("pool", nn.MaxPool2d(3, 2, 1))
        cin = 64
        stages = []
        for i, (blocks, planes) in enumerate(zip(STAGE_BLOCKS, STAGE_PLANES, strict=True)):
            stage = nn.Sequential()
            for j in range(blocks):
                stride = 2 if j == 0 and i > 0 else 1
                stage.add_module(str(j), Bottleneck(cin, planes, stride, groups, width_per_group))
                cin = planes * EXPANSION
            stages.append(stage)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.classifier = Classifier(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(x)


# Xie et al. 2017 (ResNeXt), Table 1 lists both at 224×224 with the stride on the 3×3 (fb.resnet.torch), which is
# the v1.5 layout built here. He et al. 2016's 3.8 GFLOPs is the original v1 (stride on the first 1×1) and
# would be 7% off this build, so it is not used.
_XIE = "Xie et al. 2017, Table 1"


@register_model(
    family="resnet",
    references={(): Reference(params=25_500_000, macs=4_100_000_000, source=_XIE)},
    torchvision_params={(): 25_557_032},
)
def resnet50() -> nn.Module:
    """ResNet-50, bottleneck v1.5 (dense convs; the non-mobile baseline)."""
    return ResNet()


@register_model(
    family="resnet",
    references={(): Reference(params=25_000_000, macs=4_200_000_000, source=_XIE)},
    torchvision_params={(): 25_028_904},
)
def resnext50_32x4d() -> nn.Module:
    """ResNeXt-50 32×4d: ResNet-50 with 32-group 3×3 convs, 4 channels per group in the first stage."""
    return ResNet(groups=32, width_per_group=4)
