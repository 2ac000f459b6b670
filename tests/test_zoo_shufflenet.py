"""ShuffleNet v1/v2 against the papers and torchvision; the three shuffle implementations against each other."""

from __future__ import annotations

import pytest
import torch

from harness.errors import InvalidParameterError
from harness.zoo import get_entry, grid, resolve
from harness.zoo.counting import count
from harness.zoo.layers import SHUFFLES, channel_shuffle
from harness.zoo.registry import ParamValue, lookup
from harness.zoo.shufflenet_v1 import ShuffleV1Unit, stage_widths
from harness.zoo.shufflenet_v2 import ShuffleV2Unit

# scale -> (params, MACs) of this build; params equal torchvision's shufflenet_v2_x* exactly.
V2_BUILT = {
    0.5: (1_366_792, 40_476_448),
    1.0: (2_278_604, 144_907_992),
    1.5: (3_503_624, 295_759_392),
    2.0: (7_393_996, 583_253_464),
}
# torchvision's weight metadata, GFLOPS (multiply-adds) to two decimals
V2_TORCHVISION_GFLOPS = {0.5: 0.04, 1.0: 0.14, 1.5: 0.30, 2.0: 0.58}
# (groups, scale) -> MACs of this build, for every configuration with a published figure.
V1_BUILT = {
    (1, 1.0): 143_078_976,
    (2, 1.0): 140_836_512,
    (3, 1.0): 137_460_672,
    (4, 1.0): 134_339_776,
    (8, 1.0): 138_365_952,
    (3, 1.5): 292_443_552,
    (3, 2.0): 524_045_184,
    (4, 0.5): 37_468_832,
}


@pytest.mark.parametrize("scale", sorted(V2_BUILT))
def test_shufflenet_v2_params_match_torchvision_and_macs_table5(scale: float) -> None:
    spec = resolve("shufflenet_v2", scale=scale)
    counts = count(spec.build(), spec.example_input())
    params, macs = V2_BUILT[scale]
    assert counts.params == params == lookup(spec.entry.torchvision_params, spec.param_dict)
    assert counts.macs == macs
    assert round(counts.macs / 1e9, 2) == V2_TORCHVISION_GFLOPS[scale]
    ref = spec.reference
    assert ref is not None and ref.macs is not None and ref.params is not None
    assert ref.source == "Ma et al. 2018, Table 5"
    assert abs(counts.macs / ref.macs - 1) < 0.02
    assert abs(counts.params - ref.params) <= 50_000  # the paper prints params to 0.1M


def test_shufflenet_v1_records_exactly_the_reproduced_figures() -> None:
    refs = get_entry("shufflenet_v1").references
    assert {(dict(k)["groups"], dict(k)["scale"]) for k in refs} == set(V1_BUILT)
    assert [r.macs for r in refs.values()] == [143e6, 140e6, 137e6, 133e6, 137e6, 292e6, 524e6, 38e6]
    assert all(r.params is None for r in refs.values())  # the paper gives no parameter counts


@pytest.mark.parametrize(("groups", "scale"), sorted(V1_BUILT))
def test_shufflenet_v1_macs_within_2pct_of_paper(groups: int, scale: float) -> None:
    spec = resolve("shufflenet_v1", groups=groups, scale=scale)
    counts = count(spec.build(), spec.example_input())
    ref = spec.reference
    assert ref is not None and ref.macs is not None
    assert counts.macs == V1_BUILT[(groups, scale)]
    assert abs(counts.macs / ref.macs - 1) < 0.02, f"{spec.label}: {counts.macs} vs {ref.macs} ({ref.source})"


def test_shufflenet_v1_1x_g3_params() -> None:
    assert count(resolve("shufflenet_v1").build(), torch.zeros(1, 3, 224, 224)).params == 1_865_728  # ≈1.87M


@pytest.mark.parametrize(
    ("groups", "stage2"), [(1, 144), (2, 200), (3, 240), (4, 272), (8, 384)]
)  # Zhang et al. 2018, Table 1
def test_shufflenet_v1_stage_widths_table1(groups: int, stage2: int) -> None:
    stem, outs, mids = stage_widths(groups, 1.0)
    assert stem == 24
    assert outs == (stage2, 2 * stage2, 4 * stage2)
    assert mids == (stage2 // 4, stage2 // 2, stage2)


def test_shufflenet_v1_scaled_widths() -> None:
    assert stage_widths(3, 2.0) == (48, (480, 960, 1920), (120, 240, 480))
    assert stage_widths(3, 1.5) == (24, (360, 720, 1440), (90, 180, 360))
    # 136/4 = 34 cannot be split in 4 groups: the bottleneck rounds (half up) to 36; the stem stays 12.
    assert stage_widths(4, 0.5) == (12, (136, 272, 544), (36, 68, 136))
    # 24·0.5 = 12 is rounded up to a multiple of 8 so that 192 - stem splits in 8 groups.
    assert stage_widths(8, 0.5) == (16, (192, 384, 768), (48, 96, 192))


@pytest.mark.parametrize("name", ["shufflenet_v1", "shufflenet_v2"])
def test_every_grid_point_builds_and_classifies(name: str) -> None:
    specs = [s for s in grid(name) if s.param_dict["shuffle"] == "transpose"]
    assert len(specs) == (25 if name == "shufflenet_v1" else 4)
    x = torch.randn(1, 3, 64, 64)  # fully convolutional up to the global pool: a small input keeps this fast
    for spec in specs:
        assert spec.build()(x).shape == (1, 1000), spec.label


def conv(module: torch.nn.Module, path: str) -> torch.nn.Conv2d:
    found = module.get_submodule(path)
    assert isinstance(found, torch.nn.Conv2d)
    return found


def test_v1_unit_stride2_concatenates_avgpool_shortcut() -> None:
    unit = ShuffleV1Unit(240, 480, 120, groups=3, stride=2).eval()
    x = torch.randn(1, 240, 28, 28)
    out = unit(x)
    assert out.shape == (1, 480, 14, 14)
    assert conv(unit, "pw2.conv").out_channels == 240  # cout - cin
    # the first 240 channels are ReLU(avgpool(x))
    pooled = torch.nn.functional.avg_pool2d(x, 3, 2, 1)
    assert torch.equal(out[:, :240], torch.relu(pooled))


def test_v1_unit_dense_first_conv_and_no_shuffle_for_one_group() -> None:
    first = ShuffleV1Unit(24, 240, 60, groups=3, stride=2, grouped_first=False)
    assert conv(first, "pw1.conv").groups == 1 and conv(first, "pw2.conv").groups == 3
    assert isinstance(ShuffleV1Unit(144, 144, 36, groups=1).shuffle, torch.nn.Identity)


def test_v2_unit_stride1_passes_half_through() -> None:
    unit = ShuffleV2Unit(116, 116, stride=1).eval()
    x = torch.randn(1, 116, 28, 28)
    out = unit(x)
    # after the 2-group shuffle the untouched half lands on the even channels
    assert torch.equal(out[:, 0::2], x[:, :58])
    assert conv(unit, "branch2.pw1.conv").in_channels == 58
    assert isinstance(unit.branch1, torch.nn.Identity)


def test_v2_unit_stride2_has_two_branches() -> None:
    unit = ShuffleV2Unit(24, 116, stride=2)
    assert unit(torch.randn(1, 24, 56, 56)).shape == (1, 116, 28, 28)
    assert conv(unit, "branch1.dw.conv").stride == conv(unit, "branch2.dw.conv").stride == (2, 2)
    assert conv(unit, "branch1.pw.conv").out_channels == conv(unit, "branch2.pw2.conv").out_channels == 58


# --- channel shuffle ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "order"),
    [(2, [0, 3, 1, 4, 2, 5]), (3, [0, 2, 4, 1, 3, 5]), (1, [0, 1, 2, 3, 4, 5]), (6, [0, 1, 2, 3, 4, 5])],
)
@pytest.mark.parametrize("impl", SHUFFLES)
def test_shuffle_matches_hand_computed_permutation(impl: str, groups: int, order: list[int]) -> None:
    x = torch.arange(6 * 2 * 3, dtype=torch.float32).reshape(1, 6, 2, 3)
    out = channel_shuffle(impl, 6, groups)(x)
    assert torch.equal(out, x[:, order])


def test_shuffle_implementations_identical_on_random_input() -> None:
    x = torch.randn(2, 240, 7, 5)
    outs = [channel_shuffle(impl, 240, 3)(x) for impl in SHUFFLES]
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_v2_unit_bit_identical_across_shuffle_implementations() -> None:
    x = torch.randn(1, 116, 28, 28)
    outs = []
    for impl in SHUFFLES:
        torch.manual_seed(0)
        outs.append(ShuffleV2Unit(116, 116, shuffle=impl).eval()(x))
    assert all(torch.equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("shufflenet_v1_unit", {}),
        ("shufflenet_v2_unit", {"stride": 2, "cin": 24}),
        ("shufflenet_v1", {"scale": 0.5}),
        ("shufflenet_v2", {"scale": 0.5}),
    ],
)
def test_units_and_models_agree_across_shuffle_implementations(name: str, params: dict[str, ParamValue]) -> None:
    outs = {}
    for impl in SHUFFLES:
        spec = resolve(name, shuffle=impl, **params)
        outs[impl] = spec.build()(spec.example_input())
    assert torch.equal(outs["transpose"], outs["gather"])
    # channels_last hands on an NHWC-strided tensor, so the convs after it sum in another order: equal up to
    # rounding (bit-equal when nothing follows the shuffle, as in the V2 unit)
    torch.testing.assert_close(outs["transpose"], outs["channels_last"], rtol=0, atol=1e-5)


# --- parameter validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("shufflenet_v1", {"scale": 0.75}, "scale"),
        ("shufflenet_v1", {"groups": 5}, "groups"),
        ("shufflenet_v1", {"shuffle": "roll"}, "shuffle"),
        ("shufflenet_v2", {"scale": 0.25}, "scale"),
        ("shufflenet_v2", {"scale": "wide"}, "scale"),
    ],
)
def test_invalid_params_name_the_parameter(name: str, params: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"'{param}'"):
        resolve(name, **params)  # type: ignore[arg-type]


def test_string_params_are_coerced() -> None:
    spec = resolve("shufflenet_v1", groups="8", scale="0.5")
    assert spec.param_dict == {"groups": 8, "scale": 0.5, "shuffle": "transpose"}
    assert spec.label == "shufflenet_v1[groups=8,scale=0.5]"
