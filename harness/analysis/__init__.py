"""Analysis of a results database as pandas frames: where FLOP counts lie, in numbers.

Everything the report and the notebooks show is computed here, from the store, so a figure can always be
recomputed from a table: latency against MACs with a log-log fit per measurement context (:mod:`.fits`), the
residual ranking of models the FLOP proxy underestimates (:mod:`.residuals`), per-model shares of FLOPs and of
measured time per op category (:mod:`.breakdowns`, :mod:`.headlines`), the roofline placement of every profiled
op (:mod:`.roofline`), and the ShuffleNetV2 guideline experiments G1-G4 (:mod:`.guidelines`). :func:`load` reads
the frames once (:mod:`.results`); a :class:`Context` is what a latency depends on besides the model.

Use it as ``import harness.analysis as analysis; analysis.fits(analysis.load("results/flopgap.db"))``.
"""

from harness.analysis.accounts import ACCOUNT_COLUMNS, normalize_account, proxies_account, runtime_op_accounts
from harness.analysis.breakdowns import (
    BLOCK,
    BLOCK_COLUMNS,
    BREAKDOWN_COLUMNS,
    OUTSIDE_BLOCKS,
    OVERHEAD_NOTE,
    SHARE_COLUMNS,
    TIME_SHARE_BASIS,
    block_breakdown,
    block_profiled,
    category_gaps,
    missing_profiles,
    op_breakdown,
)
from harness.analysis.context import CONTEXT, Context, contexts_in
from harness.analysis.fits import FIT_COLUMNS, FIT_EXCLUDED_FAMILIES, LogLogFit, fit_loglog, fits, latency_vs_macs
from harness.analysis.guidelines import GUIDELINE_COLUMNS, GUIDELINES, Guideline, guideline_verdicts, guidelines
from harness.analysis.headlines import Headline, headline_frame, headlines
from harness.analysis.hints import HOW_TO, calibrate_command, profile_command
from harness.analysis.op_types import OP_TYPE_COLUMNS, op_type_breakdown, unattributed_points
from harness.analysis.residuals import residuals
from harness.analysis.results import OVERVIEW_COLUMNS, Results, context_overview, load
from harness.analysis.roofline import (
    MOVEMENT_COLUMNS,
    ROOFLINE_COLUMNS,
    ROOFLINE_SUMMARY_COLUMNS,
    data_movement,
    roofline,
    roofline_summary,
)
from harness.analysis.runtimes import RUNTIME_COLUMNS, LayoutCost, layout_costs, runtime_comparison

__all__ = [
    "ACCOUNT_COLUMNS",
    "BLOCK",
    "BLOCK_COLUMNS",
    "BREAKDOWN_COLUMNS",
    "CONTEXT",
    "FIT_COLUMNS",
    "FIT_EXCLUDED_FAMILIES",
    "GUIDELINES",
    "GUIDELINE_COLUMNS",
    "HOW_TO",
    "MOVEMENT_COLUMNS",
    "OP_TYPE_COLUMNS",
    "OUTSIDE_BLOCKS",
    "OVERHEAD_NOTE",
    "OVERVIEW_COLUMNS",
    "ROOFLINE_COLUMNS",
    "ROOFLINE_SUMMARY_COLUMNS",
    "RUNTIME_COLUMNS",
    "SHARE_COLUMNS",
    "TIME_SHARE_BASIS",
    "Context",
    "Guideline",
    "Headline",
    "LayoutCost",
    "LogLogFit",
    "Results",
    "block_breakdown",
    "block_profiled",
    "calibrate_command",
    "category_gaps",
    "context_overview",
    "contexts_in",
    "data_movement",
    "fit_loglog",
    "fits",
    "guideline_verdicts",
    "guidelines",
    "headline_frame",
    "headlines",
    "latency_vs_macs",
    "layout_costs",
    "load",
    "missing_profiles",
    "normalize_account",
    "op_breakdown",
    "op_type_breakdown",
    "profile_command",
    "proxies_account",
    "residuals",
    "roofline",
    "roofline_summary",
    "runtime_comparison",
    "runtime_op_accounts",
    "unattributed_points",
]
