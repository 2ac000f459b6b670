"""ShuffleNet (v1), Zhang et al. 2018: pointwise group convs with a channel shuffle between them.

The stage widths are Table 1's (for each group count g), scaled by ``scale``. The stem follows the authors'
released configurations: 24 channels at 1× and 1.5×, 48 at 2×, 24·s below 1×; this is what reproduces the
paper's 292 and 524 MFLOPs. Where scaling leaves a width that g cannot divide, the stem is rounded up to a
multiple of g and the bottleneck (out/4) to the nearest multiple of g (half up); stage widths stay exact.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.errors import InvalidParameterError
from harness.zoo.layers import SHUFFLES, Classifier, ConvBNAct, channel_shuffle
from harness.zoo.registry import Param, ParamValue, Reference, register_model

GROUPS = (1, 2, 3, 4, 8)
SCALES = (0.25, 0.5, 1.0, 1.5, 2.0)
STAGE_REPEATS = (4, 8, 4)  # the first unit of each stage has stride 2
# Table 1: output channels of Stage2 for each g; Stage3 and Stage4 double it.
STAGE2_CHANNELS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
STEM_CHANNELS = {0.25: 6, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}


def _round_up(value: int, divisor: int) -> int:
    return -(-value // divisor) * divisor


def _round_half_up(value: float, divisor: int) -> int:
    return max(divisor, int(value / divisor + 0.5) * divisor)


class ShuffleV1Unit(nn.Module):
    """1×1 group conv → shuffle → 3×3 depthwise (carries the stride) → 1×1 group conv, plus the shortcut.

    Stride 1: identity shortcut, element-wise add. Stride 2: 3×3 average-pool shortcut, concat, so the
    residual branch produces ``cout - cin`` channels. ReLU after the merge, none after the depthwise conv.
    ``grouped_first=False`` keeps the first 1×1 dense (the paper does so for the first unit of Stage2).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        mid: int,
        groups: int,
        stride: int = 1,
        grouped_first: bool = True,
        shuffle: str = "transpose",
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and cin != cout:
            raise ValueError(f"a stride-1 unit needs cin == cout, got {cin} and {cout}")
        self.stride = stride
        branch_out = cout - cin if stride == 2 else cout
        self.pw1 = ConvBNAct(cin, mid, 1, groups=groups if grouped_first else 1)
        # With one group the permutation is the identity: leave it out rather than export no-op reshapes.
        self.shuffle: nn.Module = channel_shuffle(shuffle, mid, groups) if groups > 1 else nn.Identity()
        self.dw = ConvBNAct(mid, mid, 3, stride, groups=mid, act="none")
        self.pw2 = ConvBNAct(mid, branch_out, 1, groups=groups, act="none")
        self.shortcut: nn.Module = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.act = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw2(self.dw(self.shuffle(self.pw1(x))))
        merged = torch.cat([self.shortcut(x), out], dim=1) if self.stride == 2 else x + out
        return self.act(merged)


def stage_widths(groups: int, scale: float) -> tuple[int, tuple[int, int, int], tuple[int, int, int]]:
    """Stem width, stage output widths and bottleneck widths for ``groups`` and ``scale``."""
    if groups not in STAGE2_CHANNELS:
        raise InvalidParameterError(f"shufflenet_v1: parameter 'groups'={groups} is not offered; allowed: {GROUPS}")
    if scale not in STEM_CHANNELS:
        raise InvalidParameterError(f"shufflenet_v1: parameter 'scale'={scale} is not offered; allowed: {SCALES}")
    stem = _round_up(STEM_CHANNELS[scale], groups)
    outs = tuple(_round_half_up(STAGE2_CHANNELS[groups] * scale * 2**i, groups) for i in range(3))
    mids = tuple(_round_half_up(out / 4, groups) for out in outs)
    return stem, outs, mids  # type: ignore[return-value]


class ShuffleNetV1(nn.Module):
    """Stem (3×3/2 conv, 3×3/2 max-pool) → ``stage2..stage4`` of :class:`ShuffleV1Unit` → classifier."""

    def __init__(self, groups: int = 3, scale: float = 1.0, shuffle: str = "transpose", classes: int = 1000) -> None:
        super().__init__()
        stem, outs, mids = stage_widths(groups, scale)
        self.stem = nn.Sequential()
        self.stem.add_module("conv", ConvBNAct(3, stem, 3, 2))
        self.stem.add_module("pool", nn.MaxPool2d(3, 2, 1))
        cin = stem
        stages = []
        for i, (repeats, cout, mid) in enumerate(zip(STAGE_REPEATS, outs, mids, strict=True)):
            stage = nn.Sequential()
            for j in range(repeats):
                unit = ShuffleV1Unit(
                    cin,
                    cout,
                    mid,
                    groups,
                    stride=2 if j == 0 else 1,
                    grouped_first=not (i == 0 and j == 0),  # the 24-channel stem output is too thin to group
                    shuffle=shuffle,
                )
                stage.add_module(str(j), unit)
                cin = cout
            stages.append(stage)
        self.stage2, self.stage3, self.stage4 = stages
        self.classifier = Classifier(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.classifier(x)


_TABLE1 = "Zhang et al. 2018, Table 1 (complexity row)"
_TABLE5 = "Zhang et al. 2018, Table 5"


def _key(groups: int, scale: float) -> tuple[tuple[str, ParamValue], ...]:
    return (("groups", groups), ("scale", scale))


# Only figures this build reproduces within 2% (MFLOPs in the paper are multiply-adds). The paper gives no
# parameter counts. Not recorded: 0.25× 13M (Table 2; this build gives 12.4M at g=8 and 11.0M at g=3: the
# paper does not say how it scaled the stem and rounded widths at 0.25×).
REFERENCES = {
    _key(1, 1.0): Reference(params=None, macs=143_000_000, source=_TABLE1),
    _key(2, 1.0): Reference(params=None, macs=140_000_000, source=_TABLE1),
    _key(3, 1.0): Reference(params=None, macs=137_000_000, source=_TABLE1),
    _key(4, 1.0): Reference(params=None, macs=133_000_000, source=_TABLE1),
    _key(8, 1.0): Reference(params=None, macs=137_000_000, source=_TABLE1),
    _key(3, 1.5): Reference(params=None, macs=292_000_000, source=_TABLE5),
    _key(3, 2.0): Reference(params=None, macs=524_000_000, source=_TABLE5),
    _key(4, 0.5): Reference(params=None, macs=38_000_000, source=_TABLE5),
}


@register_model(
    family="shufflenet_v1",
    params=(
        Param("groups", 3, choices=GROUPS),
        Param("scale", 1.0, choices=SCALES),
        Param("shuffle", "transpose", choices=SHUFFLES),
    ),
    references=REFERENCES,
)
def shufflenet_v1(groups: int = 3, scale: float = 1.0, shuffle: str = "transpose") -> nn.Module:
    """ShuffleNet v1 (Zhang et al. 2018): 1×1 group convs + channel shuffle + depthwise 3×3."""
    return ShuffleNetV1(groups=groups, scale=scale, shuffle=shuffle)
