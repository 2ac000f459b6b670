"""What an exporter needs from a model: a name and parameters to key on, and a way to build it.

The zoo's ``ModelSpec`` is one such source; the exporters depend on this protocol, not on the zoo, so the import
direction stays ``devices <- exporters <- harness``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn


class ModelSource(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def params(self) -> tuple[tuple[str, Any], ...]: ...

    @property
    def label(self) -> str:
        """Readable identity, used in file names and messages."""
        ...

    @property
    def input_shape(self) -> tuple[int, ...]:
        """NCHW shape of the (single) input tensor, batch 1."""
        ...

    def build(self) -> nn.Module:
        """The module with seeded random weights, in eval mode."""
        ...

    def example_input(self, seed: int = ...) -> torch.Tensor: ...
