"""Sweep specs: a TOML file naming models (names, wildcards, parameter grids), runtimes, precisions, threads,
devices and protocol settings. Validated on load; an unknown key, model or value names the file, the key and
what is allowed. A spec built in code (``flopgap run``) is written back as TOML with :func:`spec_to_toml`.
"""

from __future__ import annotations

import itertools
import tomllib
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from devices.arm_cores import ClusterName
from devices.core.errors import FlopgapError
from devices.placement import cluster_name, cpu_ids
from devices.vocabulary import Format, PointOptions, Precision, Runtime, choices
from harness.errors import UnknownModelError
from harness.measure.duration import parse_duration
from harness.sources import FileSource, ModelRef, TorchFactory, load_factory, load_file
from harness.zoo.registry import ParamValue, list_models, resolve


class SpecError(FlopgapError):
    pass


class Cooldown(StrEnum):
    """What happens before each trial besides ``cooldown_s``: nothing, or wait until the device has cooled."""

    NONE = "none"
    THERMAL = "thermal"  # every thermal zone back within cooldown_margin_c of its value at sweep start


def _seconds(value: Any) -> Any:
    try:
        return parse_duration(value) if value is not None else None
    except FlopgapError as exc:
        raise ValueError(str(exc)) from None


Seconds = Annotated[float, BeforeValidator(_seconds)]  # "30s", "10m", "1h" or a number of seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads true as 1 for a number (bool is an int in Python); a spec saying `trials = true` is a typo.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _numeric(field.annotation):
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, bool) for v in values):
                raise ValueError("true/false is not a number; give a number (or a list of numbers)")
        return value


def _numeric(annotation: Any) -> bool:
    """Whether a field holds numbers only: int, float, a list of them, or None."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) is not None else (annotation,)
    kinds = {a for a in args if a is not type(None)}
    inner = {k for a in kinds if typing.get_origin(a) is list for k in typing.get_args(a)}
    flat = (kinds - {a for a in kinds if typing.get_origin(a) is list}) | inner
    return bool(flat) and flat <= {int, float}


class ModelSelection(_Strict):
    """One ``[[models]]`` entry: a zoo ``name`` (with ``params``), a model file ``path``, or a ``torch`` factory."""

    name: str | None = Field(
        default=None, description="A registered name or a shell wildcard such as 'shufflenet_v2' or 'mobilenet_*'."
    )
    params: dict[str, ParamValue | list[ParamValue]] = Field(
        default_factory=dict, description="Parameter values; a list expands into a grid."
    )
    path: str | None = Field(default=None, description="An .onnx or .tflite file, relative to the spec file.")
    torch: str | None = Field(default=None, description="A torch module factory 'package.module:function'.")
    input_shapes: list[list[int]] | dict[str, list[int]] | None = Field(
        default=None,
        description="Factory: one shape per forward argument; file: {input name = shape} for its dynamic dims.",
    )
    kwargs: dict[str, ParamValue] = Field(default_factory=dict, description="Factory keyword arguments.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSelection:
        given = [k for k in ("name", "path", "torch") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of name, path, torch (got {', '.join(given) or 'none'})")
        if self.params and self.name is None:
            raise ValueError("params are for zoo models (name); a factory takes kwargs")
        if self.kwargs and self.torch is None:
            raise ValueError("kwargs are for torch factories")
        if self.input_shapes is not None and self.name is not None:
            raise ValueError("input_shapes are for path and torch entries; zoo models have a fixed input size")
        if isinstance(self.input_shapes, dict) and self.torch is not None:
            raise ValueError("a factory's input_shapes is a list of shapes, e.g. [[1, 3, 224, 224]]")
        if isinstance(self.input_shapes, list) and self.path is not None:
            raise ValueError("a file's input_shapes names its inputs, e.g. { x = [1, 3, 224, 224] }")
        return self

    @field_validator("params")
    @classmethod
    def _no_empty_grid(cls, v: dict[str, ParamValue | list[ParamValue]]) -> dict[str, ParamValue | list[ParamValue]]:
        empty = [k for k, values in v.items() if isinstance(values, list) and not values]
        if empty:
            raise ValueError(f"parameter '{empty[0]}' has an empty list of values; give at least one value")
        return v


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

    @field_validator("affinity", mode="before")
    @classmethod
    def _cpu_ids(cls, v: Any) -> Any:
        return cpu_ids(v) if isinstance(v, list) else v

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
    sustained: Seconds | None = Field(
        default=None,
        description="Run each trial continuously this long (e.g. '10m') and record a timeline of latency, "
        "frequencies and temperatures; replaces runs/min_seconds (flopgap's runner only).",
    )
    sustained_window: Seconds = Field(default=1.0, description="Timeline window of a sustained run (e.g. '1s').")
    instances: int = Field(
        default=1,
        ge=1,
        description="Load each model this many times in a trial's process and time each in turn, the runs shared "
        "out, samples pooled: a single-op probe's buffers land in several places (flopgap's runner only).",
    )
    cooldown: Cooldown = Field(
        default=Cooldown.NONE,
        description="'thermal': before each trial wait until every thermal zone is within cooldown_margin_c of "
        "its value at sweep start (at most cooldown_max_s, then the trial runs and is flagged).",
    )
    cooldown_margin_c: float = Field(default=2.0, gt=0, description="Thermal cooldown margin in °C.")
    cooldown_max_s: Seconds = Field(default=300.0, description="Longest thermal cooldown before a trial runs anyway.")

    @model_validator(mode="after")
    def _window_fits(self) -> Protocol:
        if self.sustained is not None and self.sustained_window > self.sustained:
            raise ValueError(f"sustained_window ({self.sustained_window:g}s) exceeds sustained ({self.sustained:g}s)")
        return self


class SweepSpec(_Strict):
    name: str = "sweep"
    models: list[ModelSelection] = Field(min_length=1)
    # An empty list would run nothing and look like success: every list needs an entry (omit a key for its default).
    runtimes: list[Runtime] = Field(default_factory=lambda: [Runtime.ONNXRUNTIME, Runtime.LITERT], min_length=1)
    precisions: list[Precision] = Field(default_factory=lambda: [Precision.FP32], min_length=1)
    threads: list[int] | None = Field(
        default=None, min_length=1, description="Thread counts; default: each device's inventory 'threads'."
    )
    devices: list[str] = Field(default_factory=lambda: ["local"], min_length=1)
    clusters: list[ClusterName] | None = Field(
        default=None,
        min_length=1,
        description="CPU clusters to measure on, each a dimension of the sweep: 'big', 'little', 'prime', 'all'; "
        "resolved per device from its facts (default: the device's inventory 'affinity', else unpinned).",
    )
    protocol: Protocol = Field(default_factory=Protocol)

    @field_validator("clusters", mode="before")
    @classmethod
    def _cluster_names(cls, v: Any) -> Any:
        # "little" as users write it is the LITTLE cluster; an unknown name lists the allowed ones.
        if isinstance(v, list):
            return [cluster_name(c) if isinstance(c, str) else c for c in v]
        return v

    @field_validator("clusters")
    @classmethod
    def _clusters_once(cls, v: list[ClusterName] | None) -> list[ClusterName] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("a cluster is listed twice; list each once")
        return v

    @field_validator("protocol")
    @classmethod
    def _clusters_or_affinity(cls, v: Protocol, info: ValidationInfo) -> Protocol:
        if v.affinity is not None and info.data.get("clusters"):
            raise ValueError("'affinity' pins every point to the same CPUs; give either 'clusters' or 'affinity'")
        return v

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(t < 1 for t in v):
            raise ValueError("thread counts must be >= 1")
        return v


@dataclass(frozen=True)
class SweepPoint:
    """One thing to measure: a model configuration in one format/precision on one runtime, device, thread count."""

    model: ModelRef
    runtime: Runtime
    precision: Precision
    threads: int
    device: str
    cluster: ClusterName | None = None  # which cores of the device (None: the device's own affinity, if any)
    cpus: tuple[int, ...] | None = None  # the cluster's CPU ids on this device, from its facts (placement.py)

    @property
    def format(self) -> Format:
        return self.runtime.artifact_format

    @property
    def options(self) -> PointOptions:
        """The runtime's options, and the cluster and its CPU ids: big and LITTLE points are different points."""
        options = self.runtime.options
        if self.cluster is not None:
            options["cluster"] = self.cluster.value
        if self.cpus is not None:
            options["cpus"] = list(self.cpus)
        return options

    @property
    def label(self) -> str:
        where = f" {self.cluster}" if self.cluster is not None else ""
        return f"{self.model.label} {self.runtime} {self.precision} t{self.threads}{where} @{self.device}"


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a TOML spec; every problem names the file and the key."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read sweep spec {path}: {exc.strerror}") from None
    return parse_spec(text, source=str(path), base_dir=path.parent)


def parse_spec(text: str, source: str = "<spec>", base_dir: Path | None = None) -> SweepSpec:
    """Validate a spec; ``path`` entries are taken relative to ``base_dir`` (the spec file's folder)."""
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
        if err["type"] == "too_short":
            raise SpecError(f"{source}: key '{key}' is empty; {_needs_entry(err['loc'])}") from None
        enum = _enum_of(err["loc"]) if err["type"] == "enum" else None
        if enum is not None:
            noun, field = enum.__name__.lower(), err["loc"][0]
            raise SpecError(
                f"{source}: key '{field}': unknown {noun} {err['input']!r}; allowed: {choices(enum)}"
            ) from None
        raise SpecError(f"{source}: key '{key}': {err['msg'].removeprefix('Value error, ')}") from None
    if base_dir is not None:
        models = [
            m.model_copy(update={"path": str(base_dir / m.path)}) if m.path and not Path(m.path).is_absolute() else m
            for m in spec.models
        ]
        spec = spec.model_copy(update={"models": models})
    # Resolve models now, so a typo, a bad file or a broken factory fails before anything is measured.
    try:
        for model in expand_models(spec):
            if isinstance(model, FileSource) and not set(model.runtimes()) & set(spec.runtimes):
                raise SpecError(
                    f"{model.file.path.name} is a .{model.format.value} model and no runtime of the spec runs it; "
                    f"add {' or '.join(r.value for r in model.runtimes())} to runtimes"
                )
    except FlopgapError as exc:
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


def _needs_entry(loc: tuple[Any, ...]) -> str:
    """What to write instead of an empty list: the allowed values, or how to get the default."""
    field = str(loc[0])
    enum = _enum_of(loc)
    if enum is not None:
        return f"give at least one of: {choices(enum)} (or omit the key for the default)"
    if field == "threads":
        return "give thread counts such as [1, 4], or omit the key to use each device's inventory 'threads'"
    if field == "clusters":
        return 'give cluster names such as ["big", "little"], or omit the key to leave points unpinned'
    if field == "devices":
        return "give device names from the inventory such as [\"local\"], or omit the key for 'local'"
    return "give at least one entry"


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


def expand_models(spec: SweepSpec) -> list[ModelRef]:
    """Every model configuration the spec selects, in spec order, without duplicates."""
    out: list[ModelRef] = []
    for sel in spec.models:
        own = _own_model(sel)
        if own is not None:
            if own not in out:
                out.append(own)
            continue
        assert sel.name is not None  # the validator allows exactly one of name, path, torch
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


def _own_model(sel: ModelSelection) -> FileSource | TorchFactory | None:
    """The file or factory an entry names (None for a zoo entry)."""
    if sel.path is not None:
        shapes = sel.input_shapes if isinstance(sel.input_shapes, dict) else {}
        return load_file(Path(sel.path), {k: tuple(v) for k, v in shapes.items()})
    if sel.torch is not None:
        shapes_list = sel.input_shapes if isinstance(sel.input_shapes, list) else []
        return load_factory(sel.torch, tuple(tuple(s) for s in shapes_list), dict(sel.kwargs))
    return None


def model_selection(model: ModelRef) -> ModelSelection:
    """The ``[[models]]`` entry that selects exactly ``model`` (``flopgap run`` writes its spec with it)."""
    if isinstance(model, FileSource):
        shapes = {k: list(v) for k, v in model.input_shapes}
        return ModelSelection(path=str(model.file.path), input_shapes=shapes or None)
    if isinstance(model, TorchFactory):
        return ModelSelection(
            torch=model.target, input_shapes=[list(s) for s in model.input_shapes], kwargs=dict(model.kwargs)
        )
    params: dict[str, ParamValue | list[ParamValue]] = dict(model.params)
    return ModelSelection(name=model.name, params=params)


def expand_points(spec: SweepSpec, device_threads: dict[str, list[int]] | None = None) -> list[SweepPoint]:
    """Every point; thread counts come from the spec, else from each device's inventory entry, else [1]."""
    return list(_points(spec, device_threads or {}))


def _points(spec: SweepSpec, device_threads: dict[str, list[int]]) -> Iterator[SweepPoint]:
    for device in spec.devices:
        for model in expand_models(spec):
            runtimes, precisions = spec.runtimes, spec.precisions
            if isinstance(model, FileSource):
                # A file runs in its own format, and at the precision it holds unless it is a float ONNX graph.
                runtimes = [r for r in runtimes if model.runtime_error(r) is None]
                precisions = precisions if model.converts else [model.file.holds]
            for runtime in runtimes:
                for precision in precisions:
                    for threads in spec.threads or device_threads.get(device) or [1]:
                        clusters: list[ClusterName | None] = [*spec.clusters] if spec.clusters else [None]
                        for cluster in clusters:
                            yield SweepPoint(model, runtime, precision, threads, device, cluster)


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
