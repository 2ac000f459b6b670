"""Sweep specs: a TOML file naming models (names, wildcards, parameter grids), runtimes, precisions, threads,
devices and protocol settings. Validated on load; an unknown key, model or value names the file, the key and
what is allowed. A spec built in code (``flopgap run``) is written back as TOML with :func:`spec_to_toml`.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.errors import FlopgapError
from devices.vocabulary import Format, Precision, Runtime, choices
from harness.errors import InvalidParameterError, UnknownModelError
from harness.zoo.registry import ModelSpec, ParamValue, list_models, resolve


class SpecError(FlopgapError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSelection(_Strict):
    name: str = Field(description="A registered name or a shell wildcard such as 'shufflenet_v2' or 'mobilenet_*'.")
    params: dict[str, ParamValue | list[ParamValue]] = Field(
        default_factory=dict, description="Parameter values; a list expands into a grid."
    )


class Protocol(_Strict):
    trials: int = Field(default=3, ge=1, description="Interleaved trials per point.")
    warmup_runs: int = Field(default=10, ge=0)
    warmup_seconds: float = Field(default=0.5, ge=0)
    runs: int = Field(default=50, ge=1, description="Minimum timed runs per trial.")
    min_seconds: float = Field(default=1.0, ge=0, description="Minimum timed seconds per trial.")
    max_runs: int = Field(default=100_000, ge=1)
    timeout_s: float = Field(default=600, gt=0, description="A trial running longer is killed and the point fails.")
    cooldown_s: float = Field(default=0.0, ge=0, description="Sleep between trials.")
    affinity: list[int] | None = Field(default=None, description="CPU ids to pin the runner to.")
    cv_threshold: float = Field(default=0.10, gt=0, description="A point whose CV exceeds this is flagged noisy.")
    spread_threshold: float = Field(
        default=0.05, gt=0, description="Max relative spread of trial medians before noisy."
    )
    parity: bool = Field(default=True, description="Check each artifact against torch on export.")
    profile: bool = Field(
        default=False,
        description="After measuring, store each point's per-op times: ORT per-node for ONNX, per-block "
        "sub-model times for TFLite (see harness/measure/profile.py).",
    )
    profile_depth: int = Field(
        default=1, ge=1, description="TFLite block profiles: depth of the module tree to cut at."
    )
    # ONNX Runtime session settings; the defaults are ORT's own, what an application gets (README: protocol).
    ort_allow_spinning: bool = Field(
        default=True, description="session.intra_op.allow_spinning: idle intra-op threads busy-wait for work."
    )
    ort_graph_optimization: Literal["all", "extended", "basic", "disable"] = Field(
        default="all", description="ONNX Runtime graph optimization level."
    )
    ort_execution_mode: Literal["sequential", "parallel"] = Field(
        default="sequential", description="ONNX Runtime execution mode."
    )


class SweepSpec(_Strict):
    name: str = "sweep"
    models: list[ModelSelection] = Field(min_length=1)
    runtimes: list[Runtime] = Field(default_factory=lambda: [Runtime.ONNXRUNTIME, Runtime.LITERT])
    precisions: list[Precision] = Field(default_factory=lambda: [Precision.FP32])
    threads: list[int] | None = Field(
        default=None, description="Thread counts; default: each device's inventory 'threads'."
    )
    devices: list[str] = Field(default_factory=lambda: ["local"])
    protocol: Protocol = Field(default_factory=Protocol)

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(t < 1 for t in v):
            raise ValueError("thread counts must be >= 1")
        return v


@dataclass(frozen=True)
class SweepPoint:
    """One thing to measure: a model configuration in one format/precision on one runtime, device, thread count."""

    model: ModelSpec
    runtime: Runtime
    precision: Precision
    threads: int
    device: str

    @property
    def format(self) -> Format:
        return self.runtime.artifact_format

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.runtime.options)

    @property
    def label(self) -> str:
        return f"{self.model.label} {self.runtime} {self.precision} t{self.threads} @{self.device}"


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a TOML spec; every problem names the file and the key."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read sweep spec {path}: {exc.strerror}") from None
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "<spec>") -> SweepSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from None
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            raise SpecError(f"{source}: unknown key '{key}'; allowed here: {_allowed_keys(err['loc'])}") from None
        enum = _enum_of(err["loc"]) if err["type"] == "enum" else None
        if enum is not None:
            noun, field = enum.__name__.lower(), err["loc"][0]
            raise SpecError(
                f"{source}: key '{field}': unknown {noun} {err['input']!r}; allowed: {choices(enum)}"
            ) from None
        raise SpecError(f"{source}: key '{key}': {err['msg'].removeprefix('Value error, ')}") from None
    # Resolve models now, so a typo fails before anything is measured.
    try:
        expand_models(spec)
    except (UnknownModelError, InvalidParameterError) as exc:
        raise SpecError(f"{source}: {exc}") from None
    return spec


def spec_to_toml(spec: SweepSpec) -> str:
    """``spec`` as a TOML document that :func:`parse_spec` reads back to an equal spec (and a user can rerun)."""
    return tomli_w.dumps(spec.model_dump(mode="json", exclude_none=True))  # enums become their values


def _enum_of(loc: tuple[Any, ...]) -> type[StrEnum] | None:
    """The vocabulary enum of a top-level list field such as ``runtimes`` (from its annotation, not a re-list)."""
    field = SweepSpec.model_fields.get(str(loc[0]))
    args = getattr(field.annotation, "__args__", ()) if field else ()
    return next((a for a in args if isinstance(a, type) and issubclass(a, StrEnum)), None)


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] = SweepSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        inner = getattr(ann, "__args__", (ann,))[0] if ann is not None else None
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
    return ", ".join(model.model_fields)


def expand_models(spec: SweepSpec) -> list[ModelSpec]:
    """Every model configuration the spec selects, in spec order, without duplicates."""
    out: list[ModelSpec] = []
    for sel in spec.models:
        names = list_models(sel.name) if any(c in sel.name for c in "*?[") else [sel.name]
        if not names:
            raise UnknownModelError(f"models.name '{sel.name}' matches no model; run 'flopgap models'")
        keys = list(sel.params)
        grids = [v if isinstance(v, list) else [v] for v in sel.params.values()]
        for name in names:
            for combo in itertools.product(*grids):
                m = resolve(name, **dict(zip(keys, combo, strict=True)))
                if m not in out:
                    out.append(m)
    return out


def expand_points(spec: SweepSpec, device_threads: dict[str, list[int]] | None = None) -> list[SweepPoint]:
    """Every point; thread counts come from the spec, else from each device's inventory entry, else [1]."""
    return list(_points(spec, device_threads or {}))


def _points(spec: SweepSpec, device_threads: dict[str, list[int]]) -> Iterator[SweepPoint]:
    for device in spec.devices:
        for model in expand_models(spec):
            for runtime in spec.runtimes:
                for precision in spec.precisions:
                    for threads in spec.threads or device_threads.get(device) or [1]:
                        yield SweepPoint(model, runtime, precision, threads, device)


QUICK_SPEC = """\
# The built-in quick sweep: a handful of models from different families, both formats, a few minutes on 2 cores.
name = "quick"
runtimes = ["onnxruntime", "litert"]
precisions = ["fp32"]
threads = [1]
devices = ["local"]

[[models]]
name = "mobilenet_v1"
params = { alpha = 0.25, resolution = 128 }

[[models]]
name = "mobilenet_v2"
params = { alpha = 0.35 }

[[models]]
name = "mobilenet_v3_small"

[[models]]
name = "shufflenet_v1"
params = { groups = 3, scale = 0.5 }

[[models]]
name = "shufflenet_v2"
params = { scale = 0.5 }

[[models]]
name = "fd_mobilenet"
params = { alpha = 0.5 }

[protocol]
trials = 3
warmup_runs = 5
warmup_seconds = 0.2
runs = 30
min_seconds = 0.5
"""
