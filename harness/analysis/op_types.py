"""Profiles of graphs that name no torch modules (exported by another tool): their time grouped by op type.

flopgap's own exports name every node after its module, so a profile maps to blocks; a foreign graph's node names
carry no module path, and the only grouping that means something across its nodes is the op type.
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.context import CONTEXT
from harness.analysis.results import Results

OP_TYPE_COLUMNS = ("point_id", *CONTEXT, "model_label", "input_shape", "op_type", "nodes", "time_us", "time_share")


def unattributed_points(results: Results) -> list[int]:
    """Profiled points none of whose rows has a module path."""
    prof = results.op_profiles
    if prof.empty:
        return []
    named = prof["module_path"].fillna("").astype(str) != ""
    return sorted(int(p) for p, has in named.groupby(prof["point_id"]).any().items() if not has)


def op_type_breakdown(results: Results) -> pd.DataFrame:
    """Per point without module paths and op type: nodes profiled, time and share of the point's profiled time."""
    prof = results.op_profiles
    prof = prof[prof["point_id"].isin(unattributed_points(results))]
    if prof.empty:
        return pd.DataFrame(columns=list(OP_TYPE_COLUMNS))
    keys = ["point_id", *CONTEXT, "model_label", "input_shape", "op_type"]
    out = prof.groupby(keys, as_index=False, dropna=False).agg(nodes=("node_name", "count"), time_us=("time_us", "sum"))
    out["time_share"] = out["time_us"] / out.groupby("point_id")["time_us"].transform("sum")
    return out.sort_values(["point_id", "time_us"], ascending=[True, False])[list(OP_TYPE_COLUMNS)].reset_index(
        drop=True
    )
