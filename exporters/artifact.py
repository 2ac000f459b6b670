"""What an export produces: a file plus everything needed to trust and reproduce it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.zoo.registry import ModelSpec


class Format(StrEnum):
    ONNX = "onnx"
    TFLITE = "tflite"

    @property
    def extension(self) -> str:
        return f".{self.value}"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"  # float16 weights, float32 compute where the runtime chooses
    INT8 = "int8"  # full integer, calibrated on random inputs
    INT8_DYNAMIC = "int8-dynamic"  # dynamic range: int8 weights, float activations


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

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.model, self.params)

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
