"""The report's latency-predictor section: per context with a stored predictor, the leave-one-family-out figure
and table (the predictor next to the MACs-linear and roofline baselines) and the per-kernel-type error."""

from __future__ import annotations

from functools import partial

import pandas as pd

from harness.predict.dataset import load_dataset, predictor_contexts
from harness.predict.evaluate import kernel_error_table, kernel_errors, leave_one_family_out
from harness.report import predictor_plots
from harness.report.page import Page
from harness.store import Store

HOW_TO_PREDICTOR = "no latency predictor: run 'flopgap predictor build --device DEVICE --runtime RUNTIME'"
TABLE_COLUMNS = ("family", "models", "predictor ±10%", "predictor RMSE%", "macs_linear ±10%", "macs_linear RMSE%",
                 "roofline ±10%", "roofline RMSE%")  # fmt: skip


def predictor_section(page: Page, source: str) -> None:
    if not source:
        page.missing(HOW_TO_PREDICTOR)
        return
    with Store(source, readonly=True) as store:
        contexts = predictor_contexts(store)
        datasets = [load_dataset(store, ctx) for ctx in contexts]
    usable = [d for d in datasets if len(d.families) >= 2]
    if not usable:
        page.missing(HOW_TO_PREDICTOR)
        return
    for dataset in usable:
        ctx = dataset.context
        evaluation = leave_one_family_out(dataset)
        page.heading(3, f"{ctx}: {len(dataset.models)} zoo models, {len(dataset.rows)} measured kernels")
        title = f"held-out family predictions, {ctx}"
        page.figure(f"predictor-{ctx}", partial(predictor_plots.predicted_vs_measured, evaluation.frame(), title))
        page.table(percentages(evaluation.table()), TABLE_COLUMNS)
        errors = kernel_error_table(kernel_errors(dataset))
        page.figure(f"kernel-error-{ctx}", partial(predictor_plots.kernel_type_error, errors, f"kernel error, {ctx}"))
        shown = errors.rename(columns={"median_abs_error": "median_abs_error_share", "within10": "within10_share"})
        page.table(shown, ("type", "kernels", "median_abs_error_share", "within10_share", "time_share"))


def percentages(table: pd.DataFrame) -> pd.DataFrame:
    """The evaluation table with shares as whole percentages and RMSE to one decimal, as text."""
    shown = table.copy()
    for column in shown.columns:
        if "±" in column:
            shown[column] = [f"{v:.0%}" if pd.notna(v) else "–" for v in shown[column]]
        elif column.endswith("RMSE%"):
            shown[column] = [f"{v:.1f}" if pd.notna(v) else "–" for v in shown[column]]
    return shown
