"""What an export produces: a file plus everything needed to trust and reproduce it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devices.vocabulary import Format, Precision


@dataclass(frozen=True)
class Artifact:
    path: Path
    format: Format
    precision: Precision
    sha256: str
    model: str
    params: tuple[tuple[str, Any], ...]
    input_shape: tuple[int, ...]  # as the artifact takes it (NHWC for TFLite, NCHW for ONNX)
    layout: str  # "NCHW" or "NHWC"
    tool_versions: dict[str, str]
    parity_error: float | None  # max |y - y_torch| / max |y_torch|; None when the check was skipped
    parity_bound: float | None
    size_bytes: int
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. {"transpose_ops": 2, "op_counts": {...}}

    def to_json(self) -> str:
        data = asdict(self)
        data["path"] = str(self.path)
        data["format"] = self.format.value
        data["precision"] = self.precision.value
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Artifact:
        data = json.loads(text)
        data["path"] = Path(data["path"])
        data["format"] = Format(data["format"])
        data["precision"] = Precision(data["precision"])
        data["params"] = tuple(tuple(p) for p in data["params"])
        data["input_shape"] = tuple(data["input_shape"])
        return cls(**data)
