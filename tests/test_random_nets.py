"""The random architectures of `predictor eval --random`: deterministic per seed, covering every dimension of the
space, built into modules whose layers and counts are the description's."""

from __future__ import annotations

import torch
from torch import nn

from harness.predict.random_nets import (
    Activation,
    BlockKind,
    BlockSpec,
    NetSpec,
    Pooling,
    Size,
    build,
    draw,
    draw_nets,
    random_net,
)
from harness.zoo.counting import count


def test_the_same_seed_draws_the_same_nets_whatever_n_and_another_seed_others() -> None:
    nets = draw_nets(12, seed=3)
    assert nets == draw_nets(12, seed=3)
    assert draw(3, 7) == nets[7] and draw_nets(8, seed=3) == nets[:8]
    assert all(a != b for a, b in zip(nets, draw_nets(12, seed=4), strict=True))
    first = build(nets[0]).state_dict()
    again = random_net(3, 0).state_dict()  # the factory the sweep calls: the same layers
    assert [(k, tuple(v.shape)) for k, v in first.items()] == [(k, tuple(v.shape)) for k, v in again.items()]


def test_forty_nets_cover_every_dimension_of_the_space() -> None:
    nets = draw_nets(40, seed=0)
    blocks = [b for n in nets for b in n.blocks]
    assert {b.kind for b in blocks} == set(BlockKind)
    assert {b.activation for b in blocks} == set(Activation)
    assert {n.pooling for n in nets} == set(Pooling)
    assert {b.kernel_size for b in blocks} == {3, 5, 7}
    assert {b.stride for b in blocks} == {1, 2}
    assert {b.squeeze_excite for b in blocks} == {True, False}
    assert {b.residual for b in blocks} == {True, False}
    assert {n.stem_pool for n in nets} == {True, False}
    assert {n.resolution % 2 for n in nets} == {0, 1}  # odd resolutions
    assert len({n.resolution for n in nets}) > 30 and min(n.resolution for n in nets) >= 96
    assert any(b.group_width == 1 for b in blocks)  # depthwise
    assert any(b.group_width == b.hidden and b.groups == 1 for b in blocks)  # dense
    small_groups = [b for b in blocks if 1 < b.group_width < b.hidden]
    assert {b.group_width for b in small_groups} >= {2, 4, 8, 16}
    assert any(b.groups % 2 == 1 and b.groups > 1 for b in small_groups)  # odd group counts
    ratios = {b.hidden / b.in_channels for b in blocks if b.kind is BlockKind.INVERTED}
    assert {1.0, 2.0, 4.0, 6.0} <= ratios
    assert len({b.out_channels for b in blocks}) > 20
    assert {n.head_channels for n in nets} >= {0, 1280}
    # Every residual is legal: stride 1 and channels kept, never across a concatenation.
    assert all(b.stride == 1 and b.in_channels == b.out_channels for b in blocks if b.residual)
    assert not any(b.residual for b in blocks if b.kind is BlockKind.CONCAT)


def test_a_built_net_has_the_described_layers_and_runs_at_an_odd_resolution() -> None:
    for index in range(4):
        spec = draw(11, index)
        net = build(spec)
        spatial = [m for m in net.blocks.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] > 1]
        assert [(m.kernel_size[0], m.stride[0], m.groups) for m in spatial] == [
            (b.kernel_size, b.stride, b.groups) for b in spec.blocks
        ]
        out = net(torch.zeros(spec.input_shape))
        assert out.shape == (1, 1000)


def test_params_and_macs_of_a_small_inverted_residual_net_are_counted_by_hand() -> None:
    block = BlockSpec(BlockKind.INVERTED, 8, 8, 3, 1, hidden=16, group_width=1, squeeze_excite=False,
                      activation=Activation.RELU, residual=True)  # fmt: skip
    spec = NetSpec(8, 8, 1, False, (block,), 0, Pooling.AVG, Activation.RELU)
    counts = count(build(spec), torch.zeros(spec.input_shape))
    # stem 3x3 3->8 + BN; expand 8->16 + BN; depthwise 3x3 16 + BN; project 16->8 + BN; classifier 8->1000 + bias
    assert counts.params == (216 + 16) + (128 + 32) + (144 + 32) + (128 + 16) + (8000 + 1000) == 9712
    # on 8x8 maps: 64 outputs x (27 x 8, 8 x 16, 9 x 16, 16 x 8) MACs, then 8 x 1000
    assert counts.macs == 64 * (216 + 128 + 144 + 128) + 8000 == 47424


def test_grouped_concat_and_squeeze_excite_blocks_count_their_groups_and_gates() -> None:
    block = BlockSpec(BlockKind.CONCAT, 16, 48, 5, 2, hidden=24, group_width=8, squeeze_excite=True,
                      activation=Activation.HSWISH, residual=False)  # fmt: skip
    assert block.groups == 3
    spec = NetSpec(17, 16, 1, False, (block,), 0, Pooling.MAX, Activation.SILU)
    net = build(spec)
    counts = count(net, torch.zeros(spec.input_shape))
    stem = 3 * 16 * 9 + 32
    branch1 = 16 * 24 + 48  # 1x1 stride 2, 24 out + BN
    branch2 = (16 * 24 + 48) + (24 * 8 * 25 + 48)  # 1x1 then the 5x5 in 3 groups of 8
    se = (24 * 8 + 8) + (8 * 24 + 24)  # squeeze to max(8, 24 // 4) = 8 and back, with biases
    assert counts.params == stem + branch1 + branch2 + se + 48 * 1000 + 1000
    # 17x17: the stem and branch 2's 1x1; 9x9: branch 1's strided 1x1 and the strided 5x5; SE convs run on 1x1
    assert counts.macs == 289 * (27 * 16 + 16 * 24) + 81 * (16 * 24 + 24 * 8 * 25) + 2 * 24 * 8 + 48000 == 704112
    assert net(torch.zeros(spec.input_shape)).shape == (1, 1000)


def test_small_nets_stay_small_for_tests() -> None:
    nets = draw_nets(10, seed=1, size=Size.SMALL)
    assert all(24 <= n.resolution <= 48 for n in nets)
    assert max(b.out_channels for n in nets for b in n.blocks) <= 48
