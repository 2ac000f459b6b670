"""One kernel to probe in isolation, and the size bounds every probe keeps to.

A :class:`KernelConfig` names the kernel a probe model holds; its ``key`` is canonical JSON, so the same seed gives
the same probes and a rerun of a build finds its points again. What each kernel type's fields mean (and how it is
drawn, written and counted) is its spec in :mod:`harness.predict.kernel_specs`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from harness.predict.kernels import KernelType

RESOLUTIONS = (4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224)
MAX_ELEMENTS = 2_000_000  # largest activation tensor of a probe (a 224-pixel MobileNet's is 1.6 M)
MAX_MACS = 600_000_000  # largest probe conv: ResNet-50's biggest layers are ~0.2 GMACs, keeps each probe short


@dataclass(frozen=True)
class KernelConfig:
    """One kernel to probe. ``h``/``w``/``cin`` describe its (first) input; ``variant`` picks the op within a
    type (activation function, pool kind, shuffle or layout transpose, broadcast, SE-style 1×1 conv...)."""

    type: KernelType
    cin: int
    cout: int
    h: int
    w: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act: str = ""
    variant: str = ""
    fused_add: bool = False

    @property
    def key(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @property
    def h_out(self) -> int:
        return (self.h - 1) // self.stride + 1

    @property
    def w_out(self) -> int:
        return (self.w - 1) // self.stride + 1

    @property
    def macs(self) -> int:
        # The spec table imports the probe writers, which import this module: look it up when asked.
        from harness.predict.kernel_specs import SPECS

        return SPECS[self.type].macs(self)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = self.type.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelConfig:
        return cls(**{**data, "type": KernelType(data["type"])})
