"""Leave-one-family-out evaluation of the kernel predictor, next to two baselines fitted on the same models.

For each family F of the measured zoo models: the kernel regressors are trained on every kernel row whose source
is not F (probes, and other families' profiled nodes), the calibration and both baselines on the models of the
other families, and F's models are predicted. Baselines: latency linear in MACs (``a + b·MACs``), and the roofline
sum scaled (``k · Σ max(FLOPs/peak, bytes/bandwidth)``, peak and bandwidth from ``flopgap calibrate``); both are
least squares on relative error, as the predictor's calibration is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from harness.predict.dataset import Dataset, ModelPoint, calibration_set
from harness.predict.predictor import TrainingRow, fit_predictor

METHODS = ("predictor", "macs_linear", "roofline")


@dataclass(frozen=True)
class ModelResult:
    label: str
    family: str
    measured_ms: float
    predictor_ms: float | None  # None: no kernels measured for this context, or none extracted for this model
    macs_linear_ms: float
    roofline_ms: float | None
    ci_halfwidth: float | None  # half the 95% CI of the pooled median, relative to it
    # Half the spread of the trials' medians, relative: how far the same model measured minutes apart moved (the
    # machine's drift), which the pooled CI does not see; a prediction cannot be trusted to better than this.
    trial_halfspread: float | None = None

    def error(self, method: str) -> float | None:
        value = getattr(self, f"{method}_ms")
        return None if value is None else value / self.measured_ms - 1


@dataclass(frozen=True)
class Score:
    """Accuracy of one method over a set of models: share within ±5% and ±10%, RMSE of the relative error."""

    models: int
    within5: float
    within10: float
    rmse_pct: float

    @classmethod
    def of(cls, errors: Sequence[float | None]) -> Score | None:
        values = np.array([e for e in errors if e is not None], dtype=float)
        values = values[np.isfinite(values)]  # a baseline with too few models to fit predicts nothing
        if values.size == 0:
            return None
        return cls(
            int(values.size),
            float(np.mean(np.abs(values) <= 0.05)),
            float(np.mean(np.abs(values) <= 0.10)),
            float(np.sqrt(np.mean(values**2)) * 100),
        )


@dataclass
class Evaluation:
    results: list[ModelResult]
    baseline_models: int | None = None  # held-out models: how many zoo models the baselines were fitted on

    def scores(self, family: str | None = None) -> dict[str, Score | None]:
        chosen = [r for r in self.results if family is None or r.family == family]
        return {m: Score.of([r.error(m) for r in chosen]) for m in METHODS}

    @property
    def families(self) -> list[str]:
        return sorted({r.family for r in self.results})

    def noise_floor(self) -> str:
        """The measured medians' uncertainty, in words: median CI half-width and median trial half-spread."""
        ci = [r.ci_halfwidth for r in self.results if r.ci_halfwidth is not None]
        drift = [r.trial_halfspread for r in self.results if r.trial_halfspread is not None]
        parts = []
        if ci:
            parts.append(f"median 95% CI half-width of the pooled medians {float(np.median(ci)):.1%}")
        if drift:
            parts.append(
                f"median half-spread of the trials' medians {float(np.median(drift)):.1%} "
                f"(max {max(drift):.1%}; the machine's drift between trials minutes apart)"
            )
        return "; ".join(parts) if parts else "no confidence intervals stored"

    def frame(self) -> pd.DataFrame:
        """One row per model: measured and predicted latency of each method and their relative errors."""
        frame = pd.DataFrame([asdict(r) for r in self.results])
        for m in METHODS:
            frame[f"{m}_error"] = [r.error(m) for r in self.results]
        return frame

    def table(self) -> pd.DataFrame:
        """Per family and overall: models, then for each method within ±5%, within ±10% and RMSE %."""
        rows = []
        for family in [*self.families, None]:
            row: dict[str, object] = {"family": family or "overall"}
            scores = self.scores(family)
            first = next((s for s in scores.values() if s is not None), None)
            row["models"] = first.models if first else 0
            for m, s in scores.items():
                row[f"{m} ±5%"] = s.within5 if s else math.nan
                row[f"{m} ±10%"] = s.within10 if s else math.nan
                row[f"{m} RMSE%"] = s.rmse_pct if s else math.nan
            rows.append(row)
        return pd.DataFrame(rows)


def leave_one_family_out(
    dataset: Dataset, on_fold: Callable[[str, list[TrainingRow], list[ModelPoint]], None] | None = None
) -> Evaluation:
    """Predict every family's models from a predictor that never saw that family (see the module doc).

    ``on_fold(family, training_rows, training_models)`` sees what each fold trains on (the tests check it).
    """
    results: list[ModelResult] = []
    for family in dataset.families:
        rows, train_models = dataset.without(family)
        if on_fold is not None:
            on_fold(family, rows, train_models)
        held_out = [m for m in dataset.models if m.family == family]
        calibrating, weights = calibration_set(train_models)
        predictor = fit_predictor(dataset.context.to_json(), rows, calibrating, weights) if rows else None
        macs = _fit_macs(train_models)
        roof = _fit_roofline(train_models)
        for m in held_out:
            ci = None
            if m.ci_low_ms is not None and m.ci_high_ms is not None:
                ci = (m.ci_high_ms - m.ci_low_ms) / 2 / m.median_ms
            results.append(
                ModelResult(
                    label=m.label,
                    family=m.family,
                    measured_ms=m.target_ms,
                    predictor_ms=predictor.predict(m.kernels).total_ms if predictor and m.kernels else None,
                    macs_linear_ms=macs(m),
                    roofline_ms=roof(m) if roof is not None and m.roofline_ms is not None else None,
                    ci_halfwidth=ci,
                    trial_halfspread=m.trial_spread / 2 if m.trial_spread is not None else None,
                )
            )
    return Evaluation(results)


def fit_baselines(
    models: Sequence[ModelPoint],
) -> tuple[Callable[[ModelPoint], float], Callable[[ModelPoint], float] | None]:
    """Both baselines fitted on ``models``: linear in MACs, and the scaled roofline sum (None: not calibrated)."""
    return _fit_macs(models), _fit_roofline(models)


def _weighted_lstsq(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(design / y[:, None], np.ones_like(y), rcond=None)
    return np.asarray(coef)


def _fit_macs(models: Sequence[ModelPoint]) -> Callable[[ModelPoint], float]:
    y = np.array([m.target_ms for m in models])
    if len(models) < 2:
        return lambda m: math.nan
    a, b = _weighted_lstsq(np.column_stack([np.ones_like(y), [m.macs for m in models]]), y)
    return lambda m: float(a + b * m.macs)


def _fit_roofline(models: Sequence[ModelPoint]) -> Callable[[ModelPoint], float] | None:
    usable = [m for m in models if m.roofline_ms]
    if not usable:
        return None
    y = np.array([m.target_ms for m in usable])
    (k,) = _weighted_lstsq(np.array([[m.roofline_ms] for m in usable], dtype=float), y)
    return lambda m: float(k * (m.roofline_ms or 0.0))


def kernel_errors(dataset: Dataset, folds: int = 4) -> pd.DataFrame:
    """Each kernel row's time predicted by regressors fitted without its point (K folds over points, so a probe's
    or a model's kernels are held out together): type, source, measured and predicted µs, relative error."""
    from harness.predict.predictor import fit_kernel_models
    from harness.predict.regressor import loss_for

    points = sorted({r.point_id for r in dataset.rows if r.point_id is not None})
    fold_of = {p: i % folds for i, p in enumerate(points)}
    records = []
    for f in range(folds):
        train = [r for r in dataset.rows if fold_of.get(r.point_id or -1, -1) != f]
        test = [r for r in dataset.rows if fold_of.get(r.point_id or -1, -1) == f]
        if not train or not test:
            continue
        context = dataset.context.to_json()
        predictor = fit_kernel_models(train, loss_for(context.get("runtime"))).predictor(context)
        predicted = predictor.kernel_times_us([r.kernel for r in test])
        records += [
            {
                "type": r.kernel.type.value,
                "source": r.source,
                "measured_us": r.time_us,
                "predicted_us": float(p),
                "error": float(p) / r.time_us - 1,
            }
            for r, p in zip(test, predicted, strict=True)
        ]
    return pd.DataFrame(records, columns=["type", "source", "measured_us", "predicted_us", "error"])


def kernel_error_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Per kernel type: rows, median |error|, share within ±10%, and the type's share of the measured time."""
    if errors.empty:
        return pd.DataFrame(columns=["type", "kernels", "median_abs_error", "within10", "time_share"])
    grouped = errors.assign(abs_error=errors["error"].abs()).groupby("type")
    table = pd.DataFrame(
        {
            "kernels": grouped.size(),
            "median_abs_error": grouped["abs_error"].median(),
            "within10": grouped["abs_error"].apply(lambda s: float((s <= 0.10).mean())),
            "time_share": grouped["measured_us"].sum() / errors["measured_us"].sum(),
        }
    )
    return table.sort_values("time_share", ascending=False).reset_index()
