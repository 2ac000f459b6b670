"""One kernel type's latency model: a non-negative linear base (FLOPs, bytes, what a conv gathers), times a boosted
correction.

``t = base(x) · exp(g(x))`` where ``base = c0 + c1·FLOPs + c2·bytes + c3·window bytes + c4·groups + ...`` (the
terms of :data:`~harness.predict.kernels.BASE_TERMS`; fitted by non-negative least squares on relative error: a
roofline with learned per-type throughputs, plus what a convolution gathers, the GEMMs its groups run, traffic past
the caches and weights that went cold between two runs of a model) and ``g`` is a
LightGBM regressor of
``log(t / base)`` on :data:`~harness.predict.kernels.FEATURES`. The base carries the scale, so a model
extrapolates to kernels larger than any probe along its FLOPs and bytes; the trees only learn the efficiency
a kernel gets at a shape (cache fits, vector widths, channel blocking), which is bounded.

Why LightGBM (over scikit-learn's forests, nn-Meter's choice): its text model format is the library's own,
loads without executing code (no pickle), and round-trips exactly; it fits a few hundred rows per type in
milliseconds on one thread and predicts a whole model's kernels in well under a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from scipy.optimize import nnls

from devices.vocabulary import Runtime
from harness.predict.kernels import BASE_TERMS, FEATURES, KernelType

MIN_ROWS_FOR_TREES = 12  # fewer rows: the linear base alone
MIN_TIME_US = 0.05
_LGB_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "max_depth": 6,
    "lambda_l2": 1.0,
    "feature_fraction": 0.9,
    "max_bin": 63,
    "verbose": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 0,
}
ROUNDS = 300


class Loss(StrEnum):
    """What the trees minimise on the log-ratio the base leaves."""

    L2 = "l2"  # squared error: rows whose noise is symmetric (ONNX Runtime's per-node profile medians)
    L1 = "l1"  # absolute error: rows with one-sided outliers (a probe whose buffers landed badly is only ever slower)


_OBJECTIVES = {Loss.L2: "regression", Loss.L1: "regression_l1"}
# A LiteRT (or TFLite-builtin) kernel row is a single-op probe's p10, one probe per configuration: contention and
# buffer placement only slow it, so a bad probe is an outlier above, never below. Refitted on the same stored
# measurements (the 15-minute builds, seeds 0 and 1, four builds against two or three measurements of their random
# nets), the L1 loss put 0-13 points more of the nets within ±10% in 9 of 10 cells and cut the RMSE in all 10
# (e.g. 8.7% to 7.9%); on ONNX Runtime's rows it lost 0-20 points (README, "the accuracy table").
LOSS_BY_FORMAT = {"tflite": Loss.L1}


def loss_for(runtime: object) -> Loss:
    """The loss for rows measured on ``runtime`` (a Runtime value, as a predictor's context stores it; anything
    else: L2)."""
    if not isinstance(runtime, str) or runtime not in Runtime.__members__.values():
        return Loss.L2
    return LOSS_BY_FORMAT.get(Runtime(runtime).artifact_format.value, Loss.L2)


def lightgbm_version() -> str:
    import lightgbm

    return str(lightgbm.__version__)


@dataclass(frozen=True)
class Rescale:
    """An adaptation's correction of a model's prediction ``t`` (µs): ``factor · t · (t / pivot)^exponent``, with
    ``t`` held to ``[low_us, high_us]`` in the power (the predicted times the adaptation measured: the exponent is
    never extrapolated past them). ``exponent`` 0 is a plain scale; a negative one gives large kernels a smaller
    factor than small ones (a second thread speeds up a 5 ms convolution, not a 5 µs reshape)."""

    factor: float = 1.0
    exponent: float = 0.0
    pivot_us: float = 1.0
    low_us: float = MIN_TIME_US
    high_us: float = math.inf

    def apply(self, time_us: np.ndarray) -> np.ndarray:
        if self.exponent == 0.0:
            return self.factor * time_us
        held = np.clip(time_us, self.low_us, self.high_us)
        return self.factor * time_us * np.exp(self.exponent * np.log(held / self.pivot_us))

    def to_json(self) -> dict[str, float]:
        return {"factor": self.factor, "exponent": self.exponent, "pivot_us": self.pivot_us, "low_us": self.low_us,
                "high_us": self.high_us}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rescale:
        return cls(float(data["factor"]), float(data["exponent"]), float(data["pivot_us"]), float(data["low_us"]),
                   float(data["high_us"]))  # fmt: skip


@dataclass
class TypeModel:
    """The latency model of one kernel type (``None`` type: the fallback fitted on every type)."""

    type: KernelType | None
    # µs, then µs per unit of each of BASE_TERMS (µs per FLOP, per byte, ...); a predictor stored before a term
    # existed has fewer, and the missing ones count as zero
    base: tuple[float, ...]
    booster_text: str | None
    rows: int
    # adaptations to other devices, applied in order to what base and trees predict (empty: as fitted)
    rescales: tuple[Rescale, ...] = ()
    _booster: Any = field(default=None, repr=False, compare=False)

    def predict(self, features: np.ndarray, terms: np.ndarray) -> np.ndarray:
        """Predicted µs for each row of ``features`` (columns in FEATURES order; ``terms``: in BASE_TERMS order)."""
        return self.rescaled(self.base_us(terms) * self.efficiency(features))

    def rescaled(self, time_us: np.ndarray) -> np.ndarray:
        """``time_us`` as fitted (base times trees) through this model's adaptations."""
        for rescale in self.rescales:
            time_us = rescale.apply(time_us)
        return time_us

    def efficiency(self, features: np.ndarray) -> np.ndarray:
        """The trees' factor on the base for each row of ``features`` (1 where there are no trees)."""
        if self.booster_text is None or len(features) == 0:
            return np.ones(len(features))
        return np.exp(self.booster().predict(features))

    def base_us(self, terms: np.ndarray) -> np.ndarray:
        """The linear base's µs for each row of ``terms`` (in BASE_TERMS order)."""
        coef = np.zeros(1 + len(BASE_TERMS))
        coef[: len(self.base)] = self.base[: len(coef)]
        return np.maximum(coef[0] + terms @ coef[1:], MIN_TIME_US)

    def booster(self) -> Any:
        if self._booster is None:
            import lightgbm

            self._booster = lightgbm.Booster(model_str=self.booster_text)
        return self._booster

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type.value if self.type is not None else None,
            "base": list(self.base),
            "lightgbm_model": self.booster_text,
            "rows": self.rows,
            "rescales": [r.to_json() for r in self.rescales],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TypeModel:
        kind = KernelType(data["type"]) if data.get("type") else None
        return cls(kind, tuple(float(v) for v in data["base"]), data.get("lightgbm_model"), int(data["rows"]),
                   tuple(Rescale.from_json(r) for r in data.get("rescales") or ()))  # fmt: skip


def fit_type_model(
    kind: KernelType | None,
    features: np.ndarray,
    terms: np.ndarray,
    time_us: np.ndarray,
    rounds: int = ROUNDS,
    loss: Loss = Loss.L2,
) -> TypeModel:
    """Fit the base on relative error, then the trees on the log-ratio the base leaves (minimising ``loss``)."""
    y = np.maximum(np.asarray(time_us, dtype=float), MIN_TIME_US)
    design = np.column_stack([np.ones_like(y), terms]) / y[:, None]
    scale = np.maximum(np.abs(design).max(axis=0), 1e-30)
    coef, _ = nnls(design / scale, np.ones_like(y))
    base = tuple(float(v) for v in coef / scale)
    if not all(math.isfinite(v) for v in base) or sum(base) == 0:
        base = (float(np.median(y)),) + (0.0,) * len(BASE_TERMS)
    model = TypeModel(kind, base, None, len(y))
    if len(y) < MIN_ROWS_FOR_TREES:
        return model
    import lightgbm

    target = np.log(y) - np.log(model.base_us(terms))
    params = {**_LGB_PARAMS, "objective": _OBJECTIVES[loss], "min_data_in_leaf": max(3, len(y) // 50)}
    data = lightgbm.Dataset(features, target, feature_name=list(FEATURES), free_raw_data=False)
    booster = lightgbm.train(params, data, num_boost_round=rounds)
    model.booster_text = booster.model_to_string()
    model._booster = booster
    return model
