"""Small torch networks the own-model tests export to files and name as factories (``tests.own_nets:tiny_net``).

They stand for a user's models: a plain CNN, a network with two image inputs, one with float/int64/bool/uint8
inputs, and factories that fail in each way the CLI must report in one line.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """conv-bn-relu, a depthwise conv, a pointwise conv, global pool, classifier: 3x32x32 -> 10."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, groups=width),
            nn.Conv2d(width, 2 * width, 1),
        )
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def tiny_macs(width: int = 8, hw: int = 32) -> int:
    """Conv and linear MACs of :class:`TinyNet` on a 3 x hw x hw input (the papers' convention)."""
    return hw * hw * (width * 3 * 9 + width * 9 + 2 * width * width) + 2 * width * 10


def tiny_net(width: int = 8) -> nn.Module:
    return TinyNet(width)


class TwoInputNet(nn.Module):
    """An image and a guidance map: conv(image) + conv(guide), then a pointwise conv. NCHW in, NCHW out."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Conv2d(3, 8, 3, padding=1)
        self.guide = nn.Conv2d(1, 8, 1)
        self.mix = nn.Conv2d(8, 4, 1)

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.relu(self.image(image) + self.guide(guide)))


def two_input_net() -> nn.Module:
    return TwoInputNet()


class MixedInputs(nn.Module):
    """Inputs of four dtypes: float32 features, int64 token ids, a bool mask and a uint8 image."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor, ids: torch.Tensor, keep: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        bias = self.embed(ids).mean(1)[:, :, None, None]
        y = self.conv(x + pixels.float() / 255.0) + bias
        return torch.where(keep, y, torch.zeros_like(y))


def mixed_example() -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    return (
        torch.randn(1, 4, 8, 8, generator=gen),
        torch.randint(0, 10, (1, 5), generator=gen),
        torch.rand(1, 4, 8, 8, generator=gen) > 0.5,
        torch.randint(0, 255, (1, 4, 8, 8), generator=gen, dtype=torch.uint8),
    )


def not_a_module() -> list[int]:
    return [1, 2, 3]


def wants_ten_features() -> nn.Module:
    """Runs on (1, 10) inputs only: its forward fails on an image shape."""
    return nn.Linear(10, 2)


def needs_an_argument(depth: int) -> nn.Module:
    return nn.Sequential(*[nn.ReLU() for _ in range(depth)])
