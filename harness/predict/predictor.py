"""A per-device latency predictor: per-kernel-type regressors, summed over a model's kernels, then calibrated.

``latency = c0 + c1 · Σ predicted kernel times + c2 · kernels`` where the three coefficients are fitted on the
training models' measured latencies (each point's p10: :func:`harness.predict.dataset.target_ms`; relative error,
with a weak prior on ``(0, 1, 0)`` so a handful of models cannot swing it): ``c2`` absorbs what a kernel timed
alone carries that it does not carry inside a model (a probe's per-invoke cost, ORT's profiler overhead per node),
``c0`` a session's fixed cost. Stored as JSON: the context (device, runtime, threads, precision), the library
versions, every type's base and LightGBM text model.
"""

from __future__ import annotations

import math
import platform
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
from scipy.optimize import lsq_linear

from devices.core.errors import FlopgapError
from harness.predict.kernels import (
    COLD_TERMS,
    COMPUTE_TYPES,
    FEATURES,
    Kernel,
    KernelType,
    cold_terms_at,
    feature_matrix,
)
from harness.predict.regressor import Loss, TypeModel, fit_type_model, lightgbm_version, loss_for
from harness.predict.trust import model_errors, training_ranges

LIBRARY = "lightgbm"
FORMAT_VERSION = 5  # 2: models per group of types for types with too few rows; 3: alignment, implementation;
# 4: the base's cold-weight terms (a kernel's weights reused once per run of its model); 5: an adaptation's rescales
# (a power of the predicted time), which format 4 lacks and means the same without: it is read as well
READABLE_VERSIONS = (4, FORMAT_VERSION)
MIN_TYPE_ROWS = 8  # fewer rows of a type: its group's model predicts it (a line through one probe is no model)
# A variant within a type whose cost per element differs by an order of magnitude (swish's exp against ReLU's
# max) gets a model of its own from this many rows: a type model dominated by ReLU rows cannot carve out a few
# swish rows (its leaves need more rows than that), and a linear base through them already fits their scale.
MIN_VARIANT_ROWS = 4
COMPUTE = "compute"  # convolutions and fully connected layers
MEMORY = "memory"  # everything whose time is bytes: element-wise, activations, pools, data movement


def variant_key(kernel: Kernel) -> str | None:
    """The variant model a kernel is predicted by, where its type has them (standalone activations: per function)."""
    if kernel.type is KernelType.ACTIVATION and kernel.activation:
        return f"{kernel.type.value}/{kernel.activation}"
    return None


def kernel_group(kind: KernelType) -> str:
    return COMPUTE if kind in COMPUTE_TYPES else MEMORY


PRIOR_WEIGHT = 0.3  # weight of the (0, 1, 0) prior rows against one model's relative error
# Passes of a model's kernel sum through its kernels' reuse interval (:meth:`KernelPredictor.model_times_us`): the
# second moved the stored builds' random nets by under a point, a third by none.
REUSE_PASSES = 2


@dataclass(frozen=True)
class Calibration:
    """Model-level correction of the kernel sum (µs, ratio, µs per kernel)."""

    c0: float = 0.0
    c1: float = 1.0
    c2: float = 0.0

    def apply(self, kernel_sum_us: float, kernels: int) -> float:
        """The calibrated total; the kernel sum itself where the fit would give zero or less (a model far outside
        the training models: extrapolating the line there says nothing), never zero."""
        value = self.c0 + self.c1 * kernel_sum_us + self.c2 * kernels
        return value if self.holds(kernel_sum_us, kernels) else kernel_sum_us

    def holds(self, kernel_sum_us: float, kernels: int) -> bool:
        """Whether the calibration gives a positive total here."""
        value = self.c0 + self.c1 * kernel_sum_us + self.c2 * kernels
        return math.isfinite(value) and value > 0


def fit_calibration(
    sums_us: Sequence[float],
    counts: Sequence[int],
    measured_us: Sequence[float],
    prior: Calibration | None = None,
    prior_weight: float = PRIOR_WEIGHT,
    weights: Sequence[float] | None = None,
) -> Calibration:
    """Least squares on relative error over the training models (each model's squared error times its weight in
    ``weights``, scaled to a mean of 1; default: all 1), pulled towards ``prior`` (default: the identity) with
    ``prior_weight``, with the fixed cost ``c0`` held at zero or above.

    A model's fixed cost (one invoke, its input's copy) is never negative, and the zoo models the calibration is
    fitted on (0.8-87 ms on the development machine) barely pin the intercept: left free, LiteRT's fits put it at
    -72 to -112 µs, which took 10-16% off nets of half a millisecond. Bounded, it lands on zero and the per-kernel
    term carries the probes' per-invoke cost; refitted on five stored LiteRT builds, as many random nets or more came
    within ±10% in all 15 build × measurement pairs (up to +13 points) and the RMSE fell in each; ONNX Runtime's fits
    stay within the noise of the free ones (their intercepts were -101 to +13 µs)."""
    y = np.asarray(measured_us, dtype=float)
    centre = prior or Calibration()
    if len(y) < 3:
        return centre
    s, n = np.asarray(sums_us, dtype=float), np.asarray(counts, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    root = np.sqrt(w / w.mean())
    rows = np.column_stack([np.ones_like(y), s, n]) / y[:, None] * root[:, None]
    target = root
    # The prior: c0 ~ centre's (in units of the median model), c1, c2 ~ centre's (c2 in units of the median kernel
    # time).
    scale = np.array([float(np.median(y)), 1.0, float(np.median(s / np.maximum(n, 1)))])
    rows = np.vstack([rows, np.diag(prior_weight / scale)])
    target = np.concatenate([target, prior_weight * np.array([centre.c0, centre.c1, centre.c2]) / scale])
    fit = lsq_linear(rows, target, bounds=([0.0, -np.inf, -np.inf], [np.inf, np.inf, np.inf]))
    return Calibration(float(fit.x[0]), float(fit.x[1]), float(fit.x[2]))


@dataclass(frozen=True)
class TrainingRow:
    """One measured kernel: its features, its time and where it came from (``space`` or a model family)."""

    kernel: Kernel
    time_us: float
    source: str
    point_id: int | None = None  # the measured point it came from


@dataclass
class Prediction:
    total_ms: float
    kernel_us: np.ndarray  # per kernel, before calibration
    kernels: list[Kernel]
    sources: dict[int, str] = field(default_factory=dict)  # kernel index -> the model that priced it
    calibrated: bool = True  # False: the calibration would give <= 0 here, so total_ms is the kernel sum

    @property
    def kernel_sum_ms(self) -> float:
        return float(self.kernel_us.sum()) / 1e3


@dataclass
class KernelPredictor:
    """Regressors per kernel type, per group of types (compute, memory) for types with few rows, a fallback over
    all rows, and the model-level calibration."""

    context: dict[str, Any]
    models: dict[KernelType, TypeModel]
    fallback: TypeModel
    calibration: Calibration = field(default_factory=Calibration)
    versions: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, TypeModel] = field(default_factory=dict)
    variants: dict[str, TypeModel] = field(default_factory=dict)

    def model_for(self, kernel: Kernel) -> TypeModel:
        """Its variant's model, else its type's, else its group's, else the fallback."""
        return self._pick(kernel)[0]

    def source_of(self, kernel: Kernel) -> str:
        """Which model prices ``kernel``: ``variant``, ``type``, ``group compute|memory`` or ``fallback``."""
        return self._pick(kernel)[1]

    def _pick(self, kernel: Kernel) -> tuple[TypeModel, str]:
        variant = variant_key(kernel)
        if variant and variant in self.variants:
            return self.variants[variant], "variant"
        if kernel.type in self.models:
            return self.models[kernel.type], "type"
        group = kernel_group(kernel.type)
        if group in self.groups:
            return self.groups[group], f"group {group}"
        return self.fallback, "fallback"

    def _by_model(self, kernels: Sequence[Kernel]) -> list[tuple[TypeModel, list[int]]]:
        """The kernels' indices grouped by the model that prices them."""
        by_model: dict[int, tuple[TypeModel, list[int]]] = {}
        for i, k in enumerate(kernels):
            model = self.model_for(k)
            by_model.setdefault(id(model), (model, []))[1].append(i)
        return list(by_model.values())

    def kernel_times_us(self, kernels: Sequence[Kernel]) -> np.ndarray:
        """Each kernel's predicted µs (uncalibrated), by the most specific model there is for it, with the reuse
        interval each kernel carries."""
        out = np.zeros(len(kernels))
        for model, idx in self._by_model(kernels):
            out[idx] = model.predict(*feature_matrix([kernels[i] for i in idx]))
        return out

    def model_times_us(self, kernels: Sequence[Kernel]) -> np.ndarray:
        """Each kernel's predicted µs (uncalibrated) as part of one model run back to back: its weights' reuse
        interval (:attr:`~harness.predict.kernels.Kernel.reuse_us`) is the model's own run, so the kernels are
        priced with none first, then :data:`REUSE_PASSES` times with the kernel sum of the pass before (only the
        linear base reads it: the trees' factor is computed once)."""
        groups = []
        for model, idx in self._by_model(kernels):
            members = [kernels[i] for i in idx]
            features, terms = feature_matrix(members)
            groups.append((model, idx, members, terms, model.efficiency(features)))

        def priced(run_us: float) -> np.ndarray:
            out = np.zeros(len(kernels))
            for model, idx, members, terms, factor in groups:
                terms[:, COLD_TERMS] = cold_terms_at(members, run_us)
                out[idx] = model.rescaled(model.base_us(terms) * factor)
            return out

        times = priced(0.0)
        for _ in range(REUSE_PASSES):
            times = priced(float(times.sum()))
        return times

    def predict(self, kernels: Sequence[Kernel]) -> Prediction:
        """A whole model's prediction (its kernels, the graph's order)."""
        times = self.model_times_us(kernels)
        kernel_sum, n = float(times.sum()), len(kernels)
        sources = {i: self.source_of(k) for i, k in enumerate(kernels)}
        return Prediction(self.calibration.apply(kernel_sum, n) / 1e3, times, list(kernels), sources,
                          self.calibration.holds(kernel_sum, n))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "library": LIBRARY,
            "features": list(FEATURES),
            "context": self.context,
            "versions": self.versions,
            "models": [m.to_json() for m in self.models.values()],
            "groups": {name: m.to_json() for name, m in self.groups.items()},
            "variants": {name: m.to_json() for name, m in self.variants.items()},
            "fallback": self.fallback.to_json(),
            "calibration": {"c0": self.calibration.c0, "c1": self.calibration.c1, "c2": self.calibration.c2},
            "summary": self.summary,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KernelPredictor:
        if data.get("format_version") not in READABLE_VERSIONS or list(data.get("features") or []) != list(FEATURES):
            raise FlopgapError(
                "this predictor was stored by another version of flopgap (its features differ); rebuild it with "
                "'flopgap predictor build' (measurements already in the database are reused)"
            )
        models = [TypeModel.from_json(m) for m in data["models"]]
        return cls(
            context=dict(data["context"]),
            models={m.type: m for m in models if m.type is not None},
            fallback=TypeModel.from_json(data["fallback"]),
            calibration=Calibration(**data["calibration"]),
            versions=dict(data.get("versions") or {}),
            summary=dict(data.get("summary") or {}),
            groups={name: TypeModel.from_json(m) for name, m in (data.get("groups") or {}).items()},
            variants={name: TypeModel.from_json(m) for name, m in (data.get("variants") or {}).items()},
        )


@dataclass
class KernelModels:
    """The regressors fitted on a set of kernel rows (see :meth:`KernelPredictor.model_for` for which predicts)."""

    types: dict[KernelType, TypeModel]
    groups: dict[str, TypeModel]
    variants: dict[str, TypeModel]
    fallback: TypeModel

    def predictor(self, context: Mapping[str, Any], **extra: Any) -> KernelPredictor:
        return KernelPredictor(dict(context), self.types, self.fallback, groups=self.groups, variants=self.variants,
                               **extra)  # fmt: skip


def fit_kernel_models(rows: Sequence[TrainingRow], loss: Loss = Loss.L2) -> KernelModels:
    """A model per kernel type with at least :data:`MIN_TYPE_ROWS` rows, per variant with at least
    :data:`MIN_VARIANT_ROWS`, one per group of types, and a fallback over all rows; each minimising ``loss``
    (:func:`~harness.predict.regressor.loss_for` the rows' runtime)."""
    by_type: dict[KernelType, list[TrainingRow]] = {}
    by_group: dict[str, list[TrainingRow]] = {}
    by_variant: dict[str, list[TrainingRow]] = {}
    for row in rows:
        by_type.setdefault(row.kernel.type, []).append(row)
        by_group.setdefault(kernel_group(row.kernel.type), []).append(row)
        variant = variant_key(row.kernel)
        if variant:
            by_variant.setdefault(variant, []).append(row)
    models = {kind: _fit(kind, group, loss) for kind, group in by_type.items() if len(group) >= MIN_TYPE_ROWS}
    groups = {name: _fit(None, group, loss) for name, group in by_group.items() if len(group) >= MIN_TYPE_ROWS}
    variants = {name: _fit(group[0].kernel.type, group, loss) for name, group in by_variant.items()
                if len(group) >= MIN_VARIANT_ROWS}  # fmt: skip
    fallback = _fit(None, list(rows), loss) if rows else TypeModel(None, (1.0,), None, 0)
    return KernelModels(models, groups, variants, fallback)


def _fit(kind: KernelType | None, rows: Sequence[TrainingRow], loss: Loss) -> TypeModel:
    features, terms = feature_matrix([r.kernel for r in rows])
    return fit_type_model(kind, features, terms, np.array([r.time_us for r in rows]), loss=loss)


def fit_predictor(
    context: Mapping[str, Any],
    rows: Sequence[TrainingRow],
    models: Sequence[tuple[Sequence[Kernel], float]],
    weights: Sequence[float] | None = None,
) -> KernelPredictor:
    """Fit kernel models on ``rows`` (with the loss for ``context``'s runtime), then the calibration on ``models``
    (kernel lists with measured µs; ``weights``: each one's, see :func:`fit_calibration`)."""
    fitted = fit_kernel_models(rows, loss_for(context.get("runtime")))
    predictor = fitted.predictor(context, versions=library_versions())
    sums = [float(predictor.model_times_us(kernels).sum()) for kernels, _ in models]
    counts = [len(k) for k, _ in models]
    predictor.calibration = fit_calibration(sums, counts, [m for _, m in models], weights=weights)
    calibrated = [predictor.calibration.apply(s, n) for s, n in zip(sums, counts, strict=True)]
    predictor.summary = {
        "ranges": training_ranges([r.kernel for r in rows]),
        "calibration_errors": model_errors(calibrated, [m for _, m in models]),
        "kernel_rows": len(rows),
        "rows_per_type": dict(Counter(r.kernel.type.value for r in rows).most_common()),
        "types_by_group": sorted(k.value for k in KernelType if k not in fitted.types),
        "variants": sorted(fitted.variants),
        "calibration_models": len(models),
    }
    return predictor


def library_versions() -> dict[str, str]:
    versions = {"lightgbm": lightgbm_version(), "python": platform.python_version()}
    for package in ("numpy", "scipy", "onnxruntime", "ai-edge-litert"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions
