"""One registry of architectures and building blocks.

Builders are small functions decorated with :func:`register_model`; each declares its parameters (with the
allowed values), its input shape and its published reference figures. :func:`create_model` validates the
parameters and builds the module in eval mode from a fixed seed (torch's global RNG is left alone); :func:`resolve`
gives the typed :class:`ModelSpec` that exporters, the cache and the store key on.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch
from torch import nn

from harness.errors import InvalidParameterError, UnknownModelError

SEED = 0


class EntryKind(StrEnum):
    """Whole networks, or building blocks (and guideline experiments) with explicit shapes."""

    MODEL = "model"
    BLOCK = "block"


ParamValue = int | float | str | bool
Params = Mapping[str, ParamValue]


@dataclass(frozen=True)
class Param:
    """A builder parameter: its default and either a closed set of choices or an open check."""

    name: str
    default: ParamValue
    choices: tuple[ParamValue, ...] | None = None
    check: Callable[[ParamValue], bool] | None = None
    hint: str = ""  # what is allowed, for open parameters ("a positive integer")

    def coerce(self, raw: ParamValue, model: str) -> ParamValue:
        """Convert a CLI string or a spec value to the default's type and validate it.

        Only exact conversions are made: ``3.7`` is not an int (it is not truncated to 3), ``true`` is not a number
        and ``1`` is not a bool; strings (from ``--param k=v``) are parsed as the default's type.
        """
        kind = type(self.default)
        value = _exact(kind, raw)
        if value is None:
            raise InvalidParameterError(
                f"{model}: parameter '{self.name}' must be {_KIND_NAMES[kind]}, got {raw!r}; allowed: {self.allowed()}"
            )
        if self.choices is not None and value not in self.choices:
            raise InvalidParameterError(
                f"{model}: parameter '{self.name}'={raw} is not offered; allowed: {self.allowed()}"
            )
        if self.check is not None and not self.check(value):
            raise InvalidParameterError(f"{model}: parameter '{self.name}'={raw} is invalid; allowed: {self.allowed()}")
        return value

    def allowed(self) -> str:
        if self.choices is not None:
            return ", ".join(str(c) for c in self.choices)
        return self.hint or f"any {type(self.default).__name__}"


_KIND_NAMES: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def _exact(kind: type, raw: object) -> ParamValue | None:
    """``raw`` as a ``kind`` when that loses nothing, else None. bool is checked first: it is an int in Python."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        return None
    if isinstance(raw, bool):
        return None  # never a number or a name
    if kind is int:
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                return None
        return None
    if kind is float:
        if isinstance(raw, int | float):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                return None
        else:
            return None
        return value if math.isfinite(value) else None
    if kind is str:
        return raw if isinstance(raw, str) else None
    return None


@dataclass(frozen=True)
class Reference:
    """Published figures for one configuration; MACs are multiply-accumulates at the model's input size."""

    params: int | None
    macs: int | None
    source: str


ReferenceTable = Mapping[tuple[tuple[str, ParamValue], ...], Reference]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    params: tuple[Param, ...]
    input_shape: Callable[[dict[str, ParamValue]], tuple[int, ...]]
    references: ReferenceTable
    kind: EntryKind
    description: str
    validate: Callable[[dict[str, ParamValue]], None] | None = None
    torchvision_params: Mapping[tuple[tuple[str, ParamValue], ...], int] = field(default_factory=dict)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise InvalidParameterError(f"{self.name}: unknown parameter '{name}'; parameters: {known}")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model with every parameter resolved: what exporters, caches and the store key on."""

    name: str
    params: tuple[tuple[str, ParamValue], ...]

    @property
    def entry(self) -> ModelEntry:
        return get_entry(self.name)

    @property
    def param_dict(self) -> dict[str, ParamValue]:
        return dict(self.params)

    @property
    def family(self) -> str:
        return self.entry.family

    @property
    def input_shape(self) -> tuple[int, ...]:
        """NCHW shape of the (single) input tensor, batch 1."""
        return (1, *self.entry.input_shape(self.param_dict))

    @property
    def reference(self) -> Reference | None:
        return lookup(self.entry.references, self.param_dict)

    @property
    def label(self) -> str:
        """Readable identity: ``shufflenet_v1[groups=3,scale=1.0]``; non-default params only."""
        entry = self.entry
        defaults = {p.name: p.default for p in entry.params}
        shown = [f"{k}={v}" for k, v in self.params if defaults.get(k) != v]
        return f"{self.name}[{','.join(shown)}]" if shown else self.name

    def build(self) -> nn.Module:
        """The module with signal-preserving random weights from a fixed seed, in eval mode.

        Layers draw their default init from torch's global RNG, so the build runs in a fork of it: the weights
        depend only on the spec, and the caller's random stream is left exactly as it was.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = self.entry.builder(**self.param_dict)
            init_weights(model)
            calibrate_batchnorm(model, self.input_shape)
        return model.eval()

    def example_input(self, seed: int = SEED) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(self.input_shape, generator=gen)


# Conv and linear biases: never exactly zero, and small enough that a classifier's output still follows its input
# (a linear's N(0, 0.01) weights make small outputs; the parity checks' "signal" must stay visible over the bias).
BIAS_STD = 1e-3


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan-in) convs, N(0, 0.01) linears, N(0, 0.001) conv and linear biases, unit BatchNorm.

    Latency does not depend on trained weights, but it does depend on the values flowing through: PyTorch's
    default init lets activations vanish through a deep random net in eval mode, which makes parity checks
    meaningless (the output no longer depends on the input) and can produce subnormal floats that slow x86
    kernels. Fan-in keeps the forward variance of depthwise convs (fan-in 9) as of dense ones. Biases are
    non-zero because exporters drop an all-zero bias (an SE conv's, the classifier's), which a trained model never
    has: the exported graph would lose the bias adds a deployed model runs. The values come from the build's seed.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.normal_(m.bias, 0.0, BIAS_STD)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.normal_(m.bias, 0.0, BIAS_STD)


def calibrate_batchnorm(model: nn.Module, input_shape: tuple[int, ...], batch: int = 2) -> None:
    """Set BatchNorm running statistics from one forward pass on random inputs, as training would.

    In eval mode every BatchNorm then normalises its real input, so activations keep a trained net's scale all
    the way to the output (residual sums and SE gates included) instead of exploding or vanishing.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    gen = torch.Generator().manual_seed(SEED + 1)
    model.train()
    with torch.no_grad():
        model(torch.randn((batch, *input_shape[1:]), generator=gen))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def lookup(table: Mapping[tuple[tuple[str, ParamValue], ...], Any], params: Mapping[str, ParamValue]) -> Any:
    """Find the row whose key parameters all match ``params`` (keys may name a subset of the parameters)."""
    for key, value in table.items():
        if all(params.get(k) == v for k, v in key):
            return value
    return None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    *,
    family: str,
    params: Sequence[Param] = (),
    input_shape: Callable[[dict[str, ParamValue]], tuple[int, ...]] | tuple[int, ...] = (3, 224, 224),
    references: ReferenceTable | None = None,
    kind: EntryKind = EntryKind.MODEL,
    validate: Callable[[dict[str, ParamValue]], None] | None = None,
    torchvision_params: Mapping[tuple[tuple[str, ParamValue], ...], int] | None = None,
    name: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under its function name (or ``name``); a duplicate name raises ``ValueError``."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model '{key}' is registered twice")
        shape = input_shape
        shape_fn = shape if callable(shape) else (lambda _p, _s=tuple(shape): _s)
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelEntry(
            name=key,
            family=family,
            builder=fn,
            params=tuple(params),
            input_shape=shape_fn,
            references=references or {},
            kind=kind,
            description=doc[0] if doc else "",
            validate=validate,
            torchvision_params=torchvision_params or {},
        )
        return fn

    return decorator


def _ensure_loaded() -> None:
    # Importing the package registers every builder module exactly once.
    import harness.zoo  # noqa: F401


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean: {', '.join(close)}?" if close else "run 'flopgap models' to list them"
        raise UnknownModelError(f"unknown model '{name}'; {hint}") from None


def list_models(pattern: str = "*", kind: EntryKind | None = None) -> list[str]:
    """Registered names matching a shell-style wildcard, sorted."""
    _ensure_loaded()
    return sorted(
        n for n, e in _REGISTRY.items() if fnmatch.fnmatchcase(n, pattern) and (kind is None or e.kind == kind)
    )


def resolve(name: str, **params: ParamValue) -> ModelSpec:
    """Validate ``params`` against the entry (unknown names and values not offered raise) and fill defaults."""
    entry = get_entry(name)
    values: dict[str, ParamValue] = {}
    for key, raw in params.items():
        values[key] = entry.param(key).coerce(raw, name)
    for p in entry.params:
        values.setdefault(p.name, p.default)
    if entry.validate is not None:
        entry.validate(values)
    return ModelSpec(name, tuple((p.name, values[p.name]) for p in entry.params))


def create_model(name: str, **params: ParamValue) -> nn.Module:
    """Build a registered model with random weights from a fixed seed, in eval mode."""
    return resolve(name, **params).build()


def grid(name: str) -> list[ModelSpec]:
    """Every configuration of a model whose parameters all have closed choices (open ones stay default)."""
    entry = get_entry(name)
    specs: list[dict[str, ParamValue]] = [{}]
    for p in entry.params:
        options = p.choices if p.choices is not None else (p.default,)
        specs = [{**s, p.name: o} for s in specs for o in options]
    out = []
    for s in specs:
        try:
            out.append(resolve(name, **s))
        except InvalidParameterError:
            continue  # a combination the builder rules out (validate), e.g. groups that don't divide channels
    return out


def parse_param_args(items: Sequence[str]) -> dict[str, str]:
    """Parse CLI ``k=v`` pairs; values stay strings and are typed by :meth:`Param.coerce`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameterError(f"--param '{item}' is not of the form key=value")
        out[key.strip()] = value.strip()
    return out
