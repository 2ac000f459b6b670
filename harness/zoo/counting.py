"""Parameter and MAC counts of a torch module, by the papers' convention.

Convention (as MobileNet, ShuffleNet and ResNet tables count): MACs are the multiply-accumulates of
convolutions and fully connected layers only; BatchNorm, activations, pooling, element-wise adds and
shuffles count zero here. Graph-level accounting of every op (bytes moved included) lives in the
proxies, which work on exported graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Counts:
    params: int
    macs: int


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """Conv and linear MACs of one forward pass on ``x`` (batch 1 expected; a tuple for several inputs)."""
    total = 0

    def conv_hook(m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Conv2d)
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Linear)
        total += out.numel() * m.in_features

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model(*x) if isinstance(x, tuple) else model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def count(model: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...]) -> Counts:
    return Counts(params=count_params(model), macs=count_macs(model, x))
