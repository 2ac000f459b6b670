"""Standalone blocks and the ShuffleNet V2 guideline experiments: hand-computed MACs, shapes, validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.errors import InvalidParameterError
from harness.zoo import get_entry, grid, list_models, resolve
from harness.zoo.counting import count
from harness.zoo.guidelines import g1_channels, g2_channels, memory_access_cost
from harness.zoo.registry import ParamValue

BLOCKS = [
    "activation",
    "conv1x1",
    "conv3x3",
    "depthwise_conv",
    "group_conv",
    "inverted_residual",
    "resnet_bottleneck",
    "resnext_block",
    "se",
    "separable_conv",
    "shuffle_channels_last",
    "shuffle_gather",
    "shuffle_transpose",
    "shufflenet_v1_unit",
    "shufflenet_v2_unit",
]


def macs(name: str, **params: ParamValue) -> int:
    spec = resolve(name, **params)
    return count(spec.build(), spec.example_input()).macs


def test_block_names_and_kind() -> None:
    names = [n for n in list_models(kind="block") if get_entry(n).family == "block"]
    assert names == BLOCKS
    assert list_models("shuffle_*") == ["shuffle_channels_last", "shuffle_gather", "shuffle_transpose"]
    assert list_models("guideline_*", kind="block") == [f"guideline_g{i}" for i in (1, 2, 3, 4)]
    assert all(not get_entry(n).references for n in [*BLOCKS, *list_models("guideline_*")])


@pytest.mark.parametrize("name", BLOCKS)
def test_blocks_build_and_keep_declared_input(name: str) -> None:
    spec = resolve(name)
    out = spec.build()(spec.example_input())
    assert out.shape[0] == 1 and out.dim() == 4
    assert spec.input_shape[1] == spec.param_dict.get("cin", spec.param_dict.get("channels"))


# --- hand-computed MACs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("conv3x3", {}, 56 * 56 * 64 * 64 * 9),
        ("conv3x3", {"cin": 32, "cout": 48, "h": 20, "w": 18, "stride": 2}, 10 * 9 * 32 * 48 * 9),
        ("conv1x1", {}, 56 * 56 * 64 * 64),
        ("conv1x1", {"cin": 3, "cout": 5, "h": 7, "w": 7, "stride": 2}, 4 * 4 * 3 * 5),
        ("group_conv", {}, 28 * 28 * 240 * 240 // 3),  # grouped 1×1: H·W·Cin·Cout/G
        (
            "group_conv",
            {"cin": 64, "cout": 128, "kernel": 3, "groups": 8, "h": 14, "w": 14, "stride": 2},
            7 * 7 * 64 * 128 * 9 // 8,
        ),
        ("group_conv", {"cin": 60, "cout": 60, "groups": 60}, 28 * 28 * 60),  # G = C is depthwise
        ("depthwise_conv", {}, 9 * 56 * 56 * 144),  # depthwise 3×3 stride 1: 9·H·W·C
        ("depthwise_conv", {"channels": 32, "kernel": 5, "stride": 2, "h": 15, "w": 15}, 25 * 8 * 8 * 32),
        ("separable_conv", {}, 56 * 56 * 64 * 9 + 56 * 56 * 64 * 128),
        ("separable_conv", {"stride": 2, "cout": 32}, 28 * 28 * 64 * 9 + 28 * 28 * 64 * 32),
        ("resnet_bottleneck", {}, 56 * 56 * (256 * 64 + 64 * 64 * 9 + 64 * 256)),
        (
            "resnet_bottleneck",
            {"planes": 128, "stride": 2},  # stride on the 3×3, projection shortcut 256→512 at stride 2
            56 * 56 * 256 * 128 + 28 * 28 * (128 * 128 * 9 + 128 * 512 + 256 * 512),
        ),
        ("resnext_block", {}, 56 * 56 * (256 * 128 + 128 * 128 * 9 // 32 + 128 * 256)),
        ("inverted_residual", {}, 56 * 56 * (24 * 144 + 144 * 9 + 144 * 24)),
        ("inverted_residual", {"cin": 32, "cout": 16, "expansion": 1}, 56 * 56 * (32 * 9 + 32 * 16)),
        (
            "inverted_residual",
            {"cin": 16, "cout": 24, "expansion": 6, "kernel": 5, "stride": 2},
            56 * 56 * 16 * 96 + 28 * 28 * (96 * 25 + 96 * 24),
        ),
        ("shufflenet_v1_unit", {}, 28 * 28 * (240 * 60 // 3 + 60 * 9 + 60 * 240 // 3)),
        (
            "shufflenet_v1_unit",
            {"cout": 480, "stride": 2},  # branch makes 480 - 240 channels; the avg-pool shortcut is free
            28 * 28 * 240 * 120 // 3 + 14 * 14 * (120 * 9 + 120 * 240 // 3),
        ),
        (
            "shufflenet_v1_unit",
            {"cin": 24, "cout": 240, "stride": 2, "grouped_first": False, "h": 56, "w": 56},
            56 * 56 * 24 * 60 + 28 * 28 * (60 * 9 + 60 * 216 // 3),
        ),
        ("shufflenet_v2_unit", {}, 28 * 28 * (58 * 58 + 58 * 9 + 58 * 58)),
        (
            "shufflenet_v2_unit",
            {"cin": 116, "cout": 232, "stride": 2},
            14 * 14 * (116 * 9 + 116 * 116) + 28 * 28 * 116 * 116 + 14 * 14 * (116 * 9 + 116 * 116),
        ),
        ("se", {}, 2 * 96 * 24),  # two FCs on the pooled vector
        ("se", {"channels": 240, "reduction": 8, "h": 7, "w": 7}, 2 * 240 * 30),
        ("shuffle_transpose", {}, 0),
        ("shuffle_gather", {"channels": 64, "groups": 8}, 0),
        ("shuffle_channels_last", {}, 0),
        ("activation", {"fn": "hswish"}, 0),
    ],
)
def test_block_macs_hand_computed(name: str, params: dict[str, ParamValue], expected: int) -> None:
    assert macs(name, **params) == expected


@pytest.mark.parametrize(
    ("name", "params", "shape"),
    [
        ("conv3x3", {"stride": 2, "cout": 32}, (1, 32, 28, 28)),
        ("separable_conv", {}, (1, 128, 56, 56)),
        ("resnet_bottleneck", {"planes": 128, "stride": 2}, (1, 512, 28, 28)),
        ("shufflenet_v1_unit", {"cout": 480, "stride": 2}, (1, 480, 14, 14)),
        ("shufflenet_v2_unit", {"cin": 24, "cout": 116, "stride": 2, "h": 56, "w": 56}, (1, 116, 28, 28)),
        ("shuffle_gather", {"channels": 64, "groups": 8, "h": 3, "w": 5}, (1, 64, 3, 5)),
        ("se", {}, (1, 96, 14, 14)),
    ],
)
def test_block_output_shapes(name: str, params: dict[str, ParamValue], shape: tuple[int, ...]) -> None:
    spec = resolve(name, **params)
    assert spec.build()(spec.example_input()).shape == shape


@pytest.mark.parametrize(
    ("fn", "kind"),
    [("relu", nn.ReLU), ("relu6", nn.ReLU6), ("swish", nn.SiLU), ("hswish", nn.Hardswish),
     ("sigmoid", nn.Sigmoid), ("hsigmoid", nn.Hardsigmoid)],
)  # fmt: skip
def test_activation_block_fn(fn: str, kind: type[nn.Module]) -> None:
    assert isinstance(resolve("activation", fn=fn).build(), kind)


def test_shuffle_blocks_agree() -> None:
    x = resolve("shuffle_transpose").example_input()
    outs = [resolve(n).build()(x) for n in ("shuffle_transpose", "shuffle_gather", "shuffle_channels_last")]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    assert not torch.equal(outs[0], x)  # it does permute


# --- validation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("group_conv", {"cin": 64, "groups": 5}, "groups"),
        ("group_conv", {"cin": 64, "cout": 100, "groups": 8}, "groups"),
        ("shuffle_gather", {"channels": 10, "groups": 4}, "groups"),
        ("shuffle_transpose", {"groups": 0}, "groups"),
        ("depthwise_conv", {"kernel": 4}, "kernel"),
        ("conv1x1", {"cin": 0}, "cin"),
        ("conv1x1", {"cout": "wide"}, "cout"),
        ("conv3x3", {"stride": 3}, "stride"),
        ("resnext_block", {"planes": 8, "group_width": 4}, "group_width"),
        ("shufflenet_v1_unit", {"cout": 480}, "cout"),  # stride 1 needs cin == cout
        ("shufflenet_v1_unit", {"cin": 240, "cout": 200, "stride": 2}, "cout"),
        ("shufflenet_v1_unit", {"cin": 48, "cout": 48, "groups": 8}, "groups"),  # bottleneck 12
        ("shufflenet_v1_unit", {"cin": 20, "cout": 240, "stride": 2, "grouped_first": False}, "groups"),  # 220
        ("shufflenet_v2_unit", {"cin": 117, "cout": 117}, "cout"),
        ("shufflenet_v2_unit", {"cin": 58}, "cout"),
        ("se", {"channels": 16, "reduction": 32}, "reduction"),
        ("activation", {"fn": "gelu"}, "fn"),
        ("activation", {"depth": 3}, "depth"),
    ],
)
def test_invalid_block_params_name_the_parameter(name: str, params: dict[str, ParamValue], param: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"'{param}'") as info:
        resolve(name, **params)
    assert name in str(info.value)


# --- ShuffleNet V2 guidelines ------------------------------------------------------------------------------


def _variant_macs(name: str, vary: str, **fixed: ParamValue) -> dict[ParamValue, int]:
    options = get_entry(name).param(vary).choices
    assert options is not None
    return {v: macs(name, **{vary: v}, **fixed) for v in options}


def _spread(values: dict[ParamValue, int]) -> float:
    return max(values.values()) / min(values.values()) - 1


def test_guideline_g1_flops_matched() -> None:
    arm = _variant_macs("guideline_g1", "ratio")
    # 10 blocks · 2 convs · 56² · c1·c2, with (c1, c2) = (32,32), (22,44), (13,78), (9,108)
    assert arm == {"1:1": 64_225_280, "1:2": 60_712_960, "1:6": 63_598_080, "1:12": 60_963_840}
    assert arm["1:1"] == 10 * 2 * 56 * 56 * 32 * 32
    assert _spread(arm) < 0.06
    # the GPU column (counting it would take seconds): c1·c2 = 16384, 16200, 16224, 15552
    gpu = {r: c1 * c2 for r in arm for c1, c2 in [g1_channels("gpu", str(r), 1)]}
    assert gpu == {"1:1": 16384, "1:2": 16200, "1:6": 16224, "1:12": 15552}
    assert _spread(gpu) < 0.06


def test_guideline_g1_mac_grows_with_channel_imbalance() -> None:
    for setting in ("arm", "gpu"):
        cost = [memory_access_cost(56, 56, *g1_channels(setting, r, 1)) for r in ("1:1", "1:2", "1:6", "1:12")]
        assert cost == sorted(cost) and len(set(cost)) == 4


def test_guideline_g2_flops_matched() -> None:
    arm = _variant_macs("guideline_g2", "groups")
    # 10 layers · 56² · c²/g with c = 64, 90, 128, 184
    assert arm == {1: 128_450_560, 2: 127_008_000, 4: 128_450_560, 8: 132_715_520}
    assert _spread(arm) < 0.05
    gpu = {g: g2_channels("gpu", g, 1) ** 2 // g for g in (1, 2, 4, 8)}  # c = 128, 180, 256, 360
    assert gpu == {1: 16384, 2: 16200, 4: 16384, 8: 16200}


@pytest.mark.parametrize("setting", ["arm", "gpu"])
@pytest.mark.parametrize("width", [1, 2, 4])
def test_guideline_g2_mac_increases_with_groups(setting: str, width: int) -> None:
    cost = []
    for g in (1, 2, 4, 8):
        c = g2_channels(setting, g, width)
        cost.append(memory_access_cost(56, 56, c, c, g))
    assert cost == sorted(cost) and len(set(cost)) == 4
    if (setting, width) == ("arm", 1):
        assert cost == [56 * 56 * 128 + 64 * 64, 56 * 56 * 180 + 90 * 90 / 2, 56 * 56 * 256 + 128 * 128 / 4,
                        56 * 56 * 368 + 184 * 184 / 8]  # fmt: skip


def test_guideline_g2_groups_are_real() -> None:
    model = resolve("guideline_g2", groups=8).build()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10 and all(c.groups == 8 and c.in_channels == 184 for c in convs)


def test_guideline_g3_flops_matched() -> None:
    arm = _variant_macs("guideline_g3", "variant")
    one = 10 * 56 * 56 * 64 * 64
    assert arm == {
        "1-fragment": one,
        "2-fragment-series": 10 * 2 * 56 * 56 * 45 * 45,
        "4-fragment-series": 10 * 4 * 56 * 56 * 32 * 32,
        "2-fragment-parallel": one,
        "4-fragment-parallel": one,
    }
    assert _spread(arm) < 0.02
    assert _spread(_variant_macs("guideline_g3", "variant", channels=128)) < 0.02


def test_guideline_g3_fragment_counts() -> None:
    def convs(variant: str) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in resolve("guideline_g3", variant=variant).build().modules())

    assert [convs(v) for v in ("1-fragment", "2-fragment-series", "4-fragment-parallel")] == [10, 20, 40]


def test_guideline_g4_flops_identical_and_ops_switched() -> None:
    variants = {(r, s): macs("guideline_g4", relu=r, shortcut=s) for r in (True, False) for s in (True, False)}
    assert set(variants.values()) == {10 * 56 * 56 * (32 * 8 + 8 * 8 * 9 + 8 * 32)}
    off = resolve("guideline_g4", relu=False).build()
    on = resolve("guideline_g4").build()
    assert sum(isinstance(m, nn.ReLU) for m in on.modules()) == 30
    assert sum(isinstance(m, nn.ReLU) for m in off.modules()) == 0
    # without the shortcut the unit is a plain chain; with it the input is added back
    x = torch.randn(1, 32, 56, 56)
    unit = resolve("guideline_g4", relu=False, shortcut=True).build().get_submodule("0")
    plain = resolve("guideline_g4", relu=False, shortcut=False).build().get_submodule("0")
    plain.load_state_dict(unit.state_dict())
    assert torch.allclose(unit(x), plain(x) + x)


def test_guideline_descriptions_state_the_direction() -> None:
    directions = {
        "guideline_g1": "equal channel widths minimise MAC",
        "guideline_g2": "more groups raise MAC",
        "guideline_g3": "fragmentation reduces parallelism",
        "guideline_g4": "element-wise ops",
    }
    for name, phrase in directions.items():
        entry = get_entry(name)
        assert entry.kind == "block" and entry.family == "guideline"
        assert phrase in entry.description and "Ma et al. 2018" in entry.description


def test_guideline_grids_all_build() -> None:
    sizes = {n: len(grid(n)) for n in list_models("guideline_*")}
    assert sizes == {"guideline_g1": 24, "guideline_g2": 24, "guideline_g3": 20, "guideline_g4": 12}
