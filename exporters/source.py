"""What an exporter needs from a model: a name and parameters to key on, and a way to build it.

The zoo's ``ModelSpec`` is one such source, a torch module factory given on the command line another; the exporters
depend on this protocol, not on the zoo, so the import direction stays ``devices <- exporters <- harness``.
A source with several inputs also offers :class:`MultiInputSource`; one whose code the cache cannot pin by name
(a user's factory) offers :class:`FingerprintedSource`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

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
        """NCHW shape of the (first) input tensor, batch 1."""
        ...

    def build(self) -> nn.Module:
        """The module with seeded random weights, in eval mode."""
        ...

    def example_input(self, seed: int = ...) -> torch.Tensor: ...


@runtime_checkable
class MultiInputSource(Protocol):
    """A source whose forward takes several tensors (in order)."""

    @property
    def input_shapes(self) -> tuple[tuple[int, ...], ...]: ...

    def example_inputs(self, seed: int = ...) -> tuple[torch.Tensor, ...]: ...


@runtime_checkable
class FingerprintedSource(Protocol):
    """A source whose name does not pin its code: the fingerprint (code and initial weights) enters the cache key."""

    @property
    def fingerprint(self) -> str: ...


def example_inputs(spec: ModelSource, seed: int | None = None) -> tuple[torch.Tensor, ...]:
    """Every input of ``spec`` for one forward call, from ``seed`` (the source's default seed when None)."""
    if isinstance(spec, MultiInputSource):
        return spec.example_inputs() if seed is None else spec.example_inputs(seed)
    return (spec.example_input(),) if seed is None else (spec.example_input(seed),)


def input_shapes(spec: ModelSource) -> tuple[tuple[int, ...], ...]:
    return spec.input_shapes if isinstance(spec, MultiInputSource) else (spec.input_shape,)
