"""ShuffleNet V2, Ma et al. 2018: channel split, equal-width branches, concat, then shuffle with two groups.

Layout as in Table 5 of the paper (and torchvision's, whose parameter counts this build matches exactly):
stem 3×3/2 conv with 24 channels and a 3×3/2 max-pool, stages of 4, 8 and 4 units (the first one
downsamples), a 1×1 ``conv5`` and the classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.errors import InvalidParameterError
from harness.zoo.layers import SHUFFLES, Classifier, ConvBNAct, channel_shuffle
from harness.zoo.registry import Param, ParamValue, Reference, register_model

SCALES = (0.5, 1.0, 1.5, 2.0)
STEM_CHANNELS = 24
STAGE_REPEATS = (4, 8, 4)
# Table 5: output channels of Stage2, Stage3, Stage4 and Conv5 for each width.
STAGE_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}


class ShuffleV2Unit(nn.Module):
    """The ShuffleNet V2 unit; both branches end with ``cout / 2`` channels, concatenated, then shuffled.

    Stride 1: the input is split in halves; ``branch1`` is the identity, ``branch2`` is 1×1 → 3×3 depthwise →
    1×1 on the other half. Stride 2: no split; ``branch1`` is 3×3/2 depthwise → 1×1 and ``branch2`` as
    before with the stride on its depthwise conv. Every 1×1 has BN + ReLU, the depthwise convs BN only.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, shuffle: str = "transpose") -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if cout % 2:
            raise ValueError(f"cout must be even, got {cout}")
        if stride == 1 and cin != cout:
            raise ValueError(f"a stride-1 unit needs cin == cout, got {cin} and {cout}")
        self.stride = stride
        half = cout // 2
        self.branch1: nn.Module = nn.Identity()
        if stride == 2:
            branch1 = nn.Sequential()
            branch1.add_module("dw", ConvBNAct(cin, cin, 3, stride, groups=cin, act="none"))
            branch1.add_module("pw", ConvBNAct(cin, half, 1))
            self.branch1 = branch1
        self.branch2 = nn.Sequential()
        self.branch2.add_module("pw1", ConvBNAct(cin if stride == 2 else half, half, 1))
        self.branch2.add_module("dw", ConvBNAct(half, half, 3, stride, groups=half, act="none"))
        self.branch2.add_module("pw2", ConvBNAct(half, half, 1))
        self.shuffle = channel_shuffle(shuffle, cout, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
        else:
            left = right = x
        return self.shuffle(torch.cat([self.branch1(left), self.branch2(right)], dim=1))


class ShuffleNetV2(nn.Module):
    """Stem → ``stage2..stage4`` of :class:`ShuffleV2Unit` → ``conv5`` (1×1) → classifier."""

    def __init__(self, scale: float = 1.0, shuffle: str = "transpose", classes: int = 1000) -> None:
        super().__init__()
        if scale not in STAGE_CHANNELS:
            raise InvalidParameterError(f"shufflenet_v2: parameter 'scale'={scale} is not offered; allowed: {SCALES}")
        *stages, final = STAGE_CHANNELS[scale]
        self.stem = nn.Sequential()
        self.stem.add_module("conv", ConvBNAct(3, STEM_CHANNELS, 3, 2))
        self.stem.add_module("pool", nn.MaxPool2d(3, 2, 1))
        cin = STEM_CHANNELS
        built = []
        for repeats, cout in zip(STAGE_REPEATS, stages, strict=True):
            stage = nn.Sequential()
            for j in range(repeats):
                stage.add_module(str(j), ShuffleV2Unit(cin, cout, stride=2 if j == 0 else 1, shuffle=shuffle))
                cin = cout
            built.append(stage)
        self.stage2, self.stage3, self.stage4 = built
        self.conv5 = ConvBNAct(cin, final, 1)
        self.classifier = Classifier(final, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.classifier(self.conv5(x))


def _key(scale: float) -> tuple[tuple[str, ParamValue], ...]:
    return (("scale", scale),)


_TABLE5 = "Ma et al. 2018, Table 5"
REFERENCES = {
    _key(0.5): Reference(params=1_400_000, macs=41_000_000, source=_TABLE5),
    _key(1.0): Reference(params=2_300_000, macs=146_000_000, source=_TABLE5),
    _key(1.5): Reference(params=3_500_000, macs=299_000_000, source=_TABLE5),
    _key(2.0): Reference(params=7_400_000, macs=591_000_000, source=_TABLE5),
}
TORCHVISION_PARAMS = {
    _key(0.5): 1_366_792,
    _key(1.0): 2_278_604,
    _key(1.5): 3_503_624,
    _key(2.0): 7_393_996,
}


@register_model(
    family="shufflenet_v2",
    params=(Param("scale", 1.0, choices=SCALES), Param("shuffle", "transpose", choices=SHUFFLES)),
    references=REFERENCES,
    torchvision_params=TORCHVISION_PARAMS,
)
def shufflenet_v2(scale: float = 1.0, shuffle: str = "transpose") -> nn.Module:
    """ShuffleNet V2 (Ma et al. 2018): channel split, equal-width branches, concat and shuffle."""
    return ShuffleNetV2(scale=scale, shuffle=shuffle)
