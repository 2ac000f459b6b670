"""The ShuffleNet V2 guideline experiments (Ma et al. 2018, Sec. 2, Tables 1-4) as benchmark networks.

Each experiment is one registered block whose parameters pick the variant; the variants of one experiment
have (nearly) the same FLOPs, so any latency difference between them is what FLOPs do not show. As in the
paper, every network stacks one building block 10 times on a 56×56 input. ``setting`` picks the paper's
channel numbers for its GPU or its ARM column (the ARM ones suit on-device runs; G2's ARM widths are derived,
see ``G2_CHANNELS``) and ``width`` its ×1, ×2, ×4 columns. G1-G3 stack bare 1×1 convs (no BN, no activation),
as the paper describes them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from harness.zoo.layers import ConvBNAct
from harness.zoo.registry import EntryKind, Param, ParamValue, register_model

FAMILY = "guideline"
SIZE = 56  # input height and width in all four experiments
REPEATS = 10  # building blocks per network
SETTINGS = ("arm", "gpu")
WIDTHS = (1, 2, 4)

# Table 1: (c1, c2) at ×1 for each c1:c2 ratio; c1·c2 is held (nearly) constant.
G1_CHANNELS: dict[str, dict[str, tuple[int, int]]] = {
    "gpu": {"1:1": (128, 128), "1:2": (90, 180), "1:6": (52, 312), "1:12": (36, 432)},
    "arm": {"1:1": (32, 32), "1:2": (22, 44), "1:6": (13, 78), "1:12": (9, 108)},
}
# Table 2: channels c at ×1 for each group count g; c²/g is held (nearly) constant. The ARM widths halve the
# GPU ones, except at g=8 where 180 cannot be split in 8 groups: 184 is the nearest width that can (+3% FLOPs).
G2_CHANNELS: dict[str, dict[int, int]] = {
    "gpu": {1: 128, 2: 180, 4: 256, 8: 360},
    "arm": {1: 64, 2: 90, 4: 128, 8: 184},
}
G3_VARIANTS = ("1-fragment", "2-fragment-series", "4-fragment-series", "2-fragment-parallel", "4-fragment-parallel")
G3_CHANNELS = (64, 128, 256, 512)  # Table 3: ARM columns 64-256, GPU columns 128-512
G4_CHANNELS = (32, 64, 128)  # Table 4


def memory_access_cost(h: int, w: int, c1: int, c2: int, groups: int = 1) -> float:
    """Memory access cost of a 1×1 (group) conv in elements, the paper's hw(c1 + c2) + c1·c2/g."""
    return h * w * (c1 + c2) + c1 * c2 / groups


def g1_channels(setting: str, ratio: str, width: int) -> tuple[int, int]:
    c1, c2 = G1_CHANNELS[setting][ratio]
    return c1 * width, c2 * width


def g2_channels(setting: str, groups: int, width: int) -> int:
    return G2_CHANNELS[setting][groups] * width


def g3_fragment_channels(variant: str, channels: int) -> int:
    """Block width of a G3 variant: k convs in series need c/√k each to keep the 1-fragment FLOPs."""
    if variant.endswith("-series"):
        return round(channels / math.sqrt(int(variant[0])))
    return channels


def _stack(make: Callable[[], nn.Module]) -> nn.Sequential:
    """``REPEATS`` fresh copies of a building block, named ``0`` … ``9``."""
    return nn.Sequential(*(make() for _ in range(REPEATS)))


def _p(p: dict[str, ParamValue], name: str) -> int:
    return int(p[name])


# --- G1: equal channel width minimises MAC -----------------------------------------------------------------


class PointwisePair(nn.Module):
    """1×1 conv c1→c2 followed by 1×1 conv c2→c1 (the G1 building block)."""

    def __init__(self, c1: int, c2: int, groups: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c1, c2, 1, groups=groups, bias=False)
        self.conv2 = nn.Conv2d(c2, c1, 1, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(
        Param("ratio", "1:1", choices=tuple(G1_CHANNELS["arm"])),
        Param("setting", "arm", choices=SETTINGS),
        Param("width", 1, choices=WIDTHS),
    ),
    input_shape=lambda p: (g1_channels(str(p["setting"]), str(p["ratio"]), _p(p, "width"))[0], SIZE, SIZE),
)
def guideline_g1(ratio: str = "1:1", setting: str = "arm", width: int = 1) -> nn.Module:
    """G1 (Ma et al. 2018, Table 1): equal channel widths minimise MAC; 1×1 c1→c2→c1 blocks at fixed FLOPs."""
    c1, c2 = g1_channels(setting, ratio, width)
    return _stack(lambda: PointwisePair(c1, c2))


# --- G2: excessive group convolution increases MAC ---------------------------------------------------------


class GroupPointwise(nn.Module):
    """One 1×1 group conv c→c (the G2 building block)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.gconv = nn.Conv2d(channels, channels, 1, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gconv(x)


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(
        Param("groups", 1, choices=tuple(G2_CHANNELS["arm"])),
        Param("setting", "arm", choices=SETTINGS),
        Param("width", 1, choices=WIDTHS),
    ),
    input_shape=lambda p: (g2_channels(str(p["setting"]), _p(p, "groups"), _p(p, "width")), SIZE, SIZE),
)
def guideline_g2(groups: int = 1, setting: str = "arm", width: int = 1) -> nn.Module:
    """G2 (Ma et al. 2018, Table 2): more groups raise MAC at fixed FLOPs; 1×1 group convs, width grows with g."""
    c = g2_channels(setting, groups, width)
    return _stack(lambda: GroupPointwise(c, groups))


# --- G3: network fragmentation reduces parallelism ---------------------------------------------------------


class SeriesFragments(nn.Sequential):
    """``fragments`` 1×1 convs c→c one after the other."""

    def __init__(self, channels: int, fragments: int) -> None:
        super().__init__()
        for i in range(fragments):
            self.add_module(f"conv{i}", nn.Conv2d(channels, channels, 1, bias=False))


class ParallelFragments(nn.Module):
    """``fragments`` 1×1 convs c→c/k side by side on the same input, concatenated back to c channels.

    The appendix figure of the paper draws the parallel variants as branches joined by a concat; splitting
    the output channels over k branches keeps the FLOPs of one c→c conv.
    """

    def __init__(self, channels: int, fragments: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(channels, channels // fragments, 1, bias=False) for _ in range(fragments)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(Param("variant", "1-fragment", choices=G3_VARIANTS), Param("channels", 64, choices=G3_CHANNELS)),
    input_shape=lambda p: (g3_fragment_channels(str(p["variant"]), _p(p, "channels")), SIZE, SIZE),
)
def guideline_g3(variant: str = "1-fragment", channels: int = 64) -> nn.Module:
    """G3 (Ma et al. 2018, Table 3): fragmentation reduces parallelism; 1, 2 or 4 1×1 convs in series or parallel."""
    fragments = int(variant[0])
    width = g3_fragment_channels(variant, channels)
    block = ParallelFragments if variant.endswith("-parallel") else SeriesFragments
    return _stack(lambda: block(width, fragments))


# --- G4: element-wise operations are non-negligible -------------------------------------------------------


class SwitchableBottleneck(nn.Module):
    """ResNet bottleneck c→c/4→c/4→c (1×1, 3×3, 1×1, BN each) whose ReLUs and identity shortcut can be removed."""

    def __init__(self, channels: int, relu: bool = True, shortcut: bool = True) -> None:
        super().__init__()
        act = "relu" if relu else "none"
        mid = channels // 4
        self.shortcut = shortcut
        self.reduce = ConvBNAct(channels, mid, 1, act=act)
        self.conv = ConvBNAct(mid, mid, 3, act=act)
        self.expand = ConvBNAct(mid, channels, 1, act="none")
        self.act: nn.Module = nn.ReLU(inplace=False) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.conv(self.reduce(x)))
        return self.act(out + x if self.shortcut else out)


@register_model(
    family=FAMILY,
    kind=EntryKind.BLOCK,
    params=(
        Param("relu", True, choices=(True, False)),
        Param("shortcut", True, choices=(True, False)),
        Param("channels", 32, choices=G4_CHANNELS),
    ),
    input_shape=lambda p: (_p(p, "channels"), SIZE, SIZE),
)
def guideline_g4(relu: bool = True, shortcut: bool = True, channels: int = 32) -> nn.Module:
    """G4 (Ma et al. 2018, Table 4): element-wise ops (ReLU, shortcut add) cost time; bottlenecks with them on/off."""
    return _stack(lambda: SwitchableBottleneck(channels, relu, shortcut))
