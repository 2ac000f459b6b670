"""Analysis of a results database as pandas frames: where FLOP counts lie, in numbers.

Everything the report and the notebooks show is computed here, from the store, so a figure can always be
recomputed from a table: latency against MACs with a log-log fit per measurement context, the residual ranking
of models the FLOP proxy underestimates, per-model shares of FLOPs and of measured time per op category, the
roofline placement of every profiled op, and the ShuffleNetV2 guideline experiments (G1-G4).

A *context* is what a latency depends on besides the model: device, runtime, precision and threads
(:data:`CONTEXT`). Fits and rankings are made within one context; the runtime version and the input size travel
as columns so every table states them.

Per-op FLOPs come from :mod:`harness.proxies` run on each profiled artifact's file (``artifacts.path``); a
profiled op and an accounted op are the same op when they share the artifact and the node name.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.store import Store

CONTEXT: tuple[str, ...] = ("device", "runtime", "precision", "threads")

CATEGORIES: tuple[str, ...] = (
    "dense_conv",
    "pointwise_conv",
    "grouped_conv",
    "depthwise_conv",
    "fully_connected",
    "shuffle_transpose",
    "reshape_concat_split_slice",
    "elementwise",
    "activation",
    "pooling",
    "global_pool_se",
    "pad",
    "quantize",
    "other",
)
SHUFFLE = "shuffle_transpose"
DEPTHWISE = "depthwise_conv"
UNATTRIBUTED = "other"  # a profiled node neither the profiler nor the graph account could put in a category
# op_profile's category for TFLite rows: one row per block sub-model (module path), not per op.
BLOCK = "block"

# Models the latency-vs-MACs fit leaves out: guideline blocks are single-block stacks at matched FLOPs, not
# networks, and would pull the fit of the model zoo towards their own regime.
FIT_EXCLUDED_FAMILIES: tuple[str, ...] = ("guideline",)

# What to run to fill each kind of data; the report prints these when a section has nothing to show.
HOW_TO: dict[str, str] = {
    "points": "no measured points: run 'flopgap sweep SPEC.toml'",
    "fit": "fewer than two models with MACs in any context: sweep more models ('flopgap sweep SPEC.toml')",
    "op_profiles": "no op profiles: run 'flopgap profile MODEL --device DEVICE --runtime RUNTIME --threads N'",
    "accounts": "no graph accounts (per-op FLOPs) for the profiled artifacts: keep their files under the "
    "artifact cache, or re-export them with 'flopgap export MODEL'",
    "calibrations": "no roofline calibration: run 'flopgap calibrate --device DEVICE --runtime RUNTIME --threads N'",
    "guidelines": "no guideline experiments: sweep the guideline_g1..guideline_g4 blocks "
    "(e.g. 'flopgap sweep' with models = ['guideline_g*'])",
}


def profile_command(context: Context, model: str, params: Mapping[str, Any] | str | None = None) -> str:
    """The ``flopgap profile`` command line that fills the op profile of one model in one context."""
    values = json.loads(params) if isinstance(params, str) else dict(params or {})
    flags = "".join(f" -p {k}={v}" for k, v in sorted(values.items()))
    return (
        f"flopgap profile {model}{flags} --device {context.device} --runtime {context.runtime} "
        f"--threads {context.threads} --precision {context.precision}"
    )


def calibrate_command(context: Context) -> str:
    """The ``flopgap calibrate`` command line for the roofline of one context."""
    return f"flopgap calibrate --device {context.device} --runtime {context.runtime} --threads {context.threads}"


@dataclass(frozen=True)
class Context:
    """One measurement context: the group a fit, a figure or a ranking is made in."""

    device: str
    runtime: str
    precision: str
    threads: int

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Context:
        return cls(str(row["device"]), str(row["runtime"]), str(row["precision"]), int(row["threads"]))

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """Rows of ``frame`` measured in this context."""
        return (
            (frame["device"] == self.device)
            & (frame["runtime"] == self.runtime)
            & (frame["precision"] == self.precision)
            & (frame["threads"] == self.threads)
        )

    def __str__(self) -> str:
        return f"{self.device}/{self.runtime} {self.threads} thread{'s' if self.threads != 1 else ''} {self.precision}"


@dataclass
class Results:
    """The frames analysis works on, read once from a results database.

    ``points``: done points with a median (``Store.points_frame`` columns). ``op_profiles``: one row per profiled
    node and point (time averaged over the point's profiled trials), with the point's context and model.
    ``accounts``: one row per graph node of each profiled artifact, from :mod:`harness.proxies`.
    ``account_errors``: artifact sha → why it has no account. ``calibrations``: latest per device, runtime, threads.
    """

    points: pd.DataFrame
    op_profiles: pd.DataFrame
    accounts: pd.DataFrame
    calibrations: pd.DataFrame
    devices: pd.DataFrame
    source: str = ""
    account_errors: dict[str, str] = field(default_factory=dict)

    def contexts(self) -> list[Context]:
        """Every context with at least one measured point, sorted."""
        if self.points.empty:
            return []
        keys = self.points[list(CONTEXT)].drop_duplicates().sort_values(list(CONTEXT))
        return [Context.of(row) for row in keys.to_dict("records")]


# -- loading ---------------------------------------------------------------------------------------------------

ACCOUNT_COLUMNS: tuple[str, ...] = (
    "artifact_sha",
    "node_name",
    "op_type",
    "category",
    "module_path",
    "macs",
    "flops",
    "params",
    "bytes_read",
    "bytes_written",
    "bytes",
    "weight_bytes",
    "intensity",
)
# Names a graph account may use for the same idea, first match wins.
_ACCOUNT_ALIASES: dict[str, tuple[str, ...]] = {
    "node_name": ("node_name", "name", "node"),
    "op_type": ("op_type", "op", "type"),
    "category": ("category",),
    "module_path": ("module_path", "module"),
    "macs": ("macs",),
    "flops": ("flops",),
    "params": ("params", "param_count"),
    "bytes_read": ("bytes_read", "read_bytes"),
    "bytes_written": ("bytes_written", "write_bytes", "written_bytes"),
    "bytes": ("bytes", "bytes_moved", "memory_bytes", "mac_bytes", "bytes_total"),
    "weight_bytes": ("weight_bytes",),
    "intensity": ("arithmetic_intensity", "intensity", "ai"),
}

AccountFn = Callable[[Path], pd.DataFrame]


def normalize_account(frame: pd.DataFrame, artifact_sha: str) -> pd.DataFrame:
    """A graph account frame with the columns of :data:`ACCOUNT_COLUMNS` (missing ones NaN, bytes summed)."""
    out = pd.DataFrame(index=frame.index)
    for column, names in _ACCOUNT_ALIASES.items():
        found = next((n for n in names if n in frame.columns), None)
        out[column] = frame[found] if found is not None else np.nan
    if out["bytes"].isna().all() and not out[["bytes_read", "bytes_written"]].isna().all().all():
        out["bytes"] = out["bytes_read"].fillna(0) + out["bytes_written"].fillna(0)
    if out["flops"].isna().all() and not out["macs"].isna().all():
        out["flops"] = 2 * out["macs"]  # multiply-add = 2 FLOPs, the convention proxies use for FLOPs
    for column in ("macs", "flops", "params", "bytes_read", "bytes_written", "bytes", "weight_bytes", "intensity"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    if out["intensity"].isna().all():
        out["intensity"] = out["flops"] / out["bytes"].where(out["bytes"] > 0)
    out["category"] = out["category"].fillna(UNATTRIBUTED).astype(str)
    out.insert(0, "artifact_sha", artifact_sha)
    return out[list(ACCOUNT_COLUMNS)].reset_index(drop=True)


def proxies_account(path: Path) -> pd.DataFrame:
    """Per-op account of an artifact file by :func:`harness.proxies.account`."""
    from harness.proxies import account  # imported late: parsing graphs pulls in onnx / tflite readers

    return account(path).frame()


def _empty_accounts() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object" if c in _TEXT else "float64") for c in ACCOUNT_COLUMNS})


_TEXT = ("artifact_sha", "node_name", "op_type", "category", "module_path")


def _accounts(
    artifacts: pd.DataFrame,
    supplied: Mapping[str, pd.DataFrame] | None,
    account_fn: AccountFn,
    stored: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Graph accounts per artifact: supplied ones, else those stored in the database, else computed from the file."""
    stored = stored or {}
    frames: list[pd.DataFrame] = []
    errors: dict[str, str] = {}
    for sha, path in artifacts[["artifact_sha", "path"]].itertuples(index=False):
        if supplied is not None:
            if sha in supplied:
                frames.append(normalize_account(supplied[sha], sha))
            else:
                errors[sha] = "no graph account supplied"
            continue
        if sha in stored:
            frames.append(normalize_account(stored[sha], sha))
        elif not isinstance(path, str) or not path:
            errors[sha] = "the artifact row has no file path"
        elif not Path(path).is_file():
            errors[sha] = f"artifact file {path} is gone (re-export the model to recreate it)"
        else:
            try:
                frames.append(normalize_account(account_fn(Path(path)), sha))
            except ImportError as err:
                errors[sha] = f"graph accounting unavailable ({err})"
            except Exception as err:  # one unreadable graph must not hide the rest of the report
                errors[sha] = f"graph accounting of {path} failed: {type(err).__name__}: {err}"
    if not frames:
        return _empty_accounts(), errors
    return pd.concat(frames, ignore_index=True), errors


def _profiles(store: Store, points: pd.DataFrame) -> pd.DataFrame:
    """Per (point, node) time, averaged over the point's profiles (one profile per trial, or one untrialled)."""
    raw = store.op_profiles_frame(points["point_id"].tolist())
    columns = ["point_id", "node_name", "op_type", "category", "module_path", "time_us", "calls", "n_profiles"]
    if raw.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "time_us" else "object") for c in columns})
    raw["profile"] = raw["trial_id"].fillna(-1).astype("int64")
    per_profile = raw.groupby(["point_id", "profile", "node_name"], sort=False, as_index=False).agg(
        op_type=("op_type", "first"),
        category=("category", "first"),
        module_path=("module_path", "first"),
        time_us=("time_us", "sum"),
        calls=("calls", "max"),
    )
    per_node = per_profile.groupby(["point_id", "node_name"], sort=False, as_index=False).agg(
        op_type=("op_type", "first"),
        category=("category", "first"),
        module_path=("module_path", "first"),
        time_us=("time_us", "mean"),
        calls=("calls", "mean"),
        n_profiles=("profile", "nunique"),
    )
    return per_node[columns]


def _latest_calibrations(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    latest = frame.sort_values(["measured_at", "id"]).groupby(["device", "runtime", "threads"], as_index=False).last()
    return latest.reset_index(drop=True)


_POINT_INFO = ("point_id", "artifact_sha", "model", "model_label", "family", "runtime_version", "input_shape")


def load(
    db: Store | str | os.PathLike[str] | None = None,
    *,
    run_id: int | None = None,
    accounts: Mapping[str, pd.DataFrame] | None = None,
    account_fn: AccountFn = proxies_account,
) -> Results:
    """Read a results database (a path, ``None`` for the default one, or an open :class:`Store`).

    ``accounts`` maps artifact sha → a graph account frame and replaces running ``account_fn`` (by default
    :func:`harness.proxies.account`) on the artifact files; only artifacts with op profiles are accounted.
    """
    if isinstance(db, Store):
        return _load(db, run_id, accounts, account_fn)
    with Store(db, readonly=True) as store:
        return _load(store, run_id, accounts, account_fn)


def _load(
    store: Store, run_id: int | None, supplied: Mapping[str, pd.DataFrame] | None, account_fn: AccountFn
) -> Results:
    points = store.points_frame(run_id)
    points = points[(points["status"] == "done") & points["median_ms"].notna()].reset_index(drop=True)
    points["threads"] = points["threads"].astype("int64")
    points["precision"] = points["precision"].fillna("unknown")
    profiles = _profiles(store, points)
    profiles = profiles.merge(points[list(_POINT_INFO) + list(CONTEXT)], on="point_id", how="inner")
    profiled = points[points["point_id"].isin(profiles["point_id"].unique())]
    artifacts = store.artifacts_frame().rename(columns={"sha256": "artifact_sha"})
    artifacts = artifacts[artifacts["artifact_sha"].isin(profiled["artifact_sha"].unique())]
    account_frame, errors = _accounts(artifacts, supplied, account_fn, store.op_accounts())
    for sha in set(profiled["artifact_sha"]) - set(artifacts["artifact_sha"]):
        errors[sha] = "no artifact row in the database"
    profiles = _attribute(profiles, account_frame)
    return Results(
        points=points,
        op_profiles=profiles,
        accounts=account_frame,
        calibrations=_latest_calibrations(store.calibrations_frame()),
        devices=store.devices_frame(),
        source=str(store.path),
        account_errors=errors,
    )


def _attribute(profiles: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Fill a profiled node's missing category and module path from the graph account's node of the same name."""
    if profiles.empty:
        return profiles.assign(category=profiles["category"].astype("object"))
    known = accounts[["artifact_sha", "node_name", "category", "module_path"]].drop_duplicates(
        ["artifact_sha", "node_name"]
    )
    merged = profiles.merge(known, on=["artifact_sha", "node_name"], how="left", suffixes=("", "_account"))
    merged["category"] = merged["category"].fillna(merged["category_account"]).fillna(UNATTRIBUTED)
    merged["module_path"] = merged["module_path"].fillna(merged["module_path_account"])
    return merged.drop(columns=["category_account", "module_path_account"])


# -- latency vs MACs, fits, residuals --------------------------------------------------------------------------

_LATENCY_COLUMNS = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model",
    "model_label",
    "family",
    "input_shape",
    "macs",
    "params_count",
    "median_ms",
    "ci_low_ms",
    "ci_high_ms",
    "noisy",
)


def latency_vs_macs(results: Results, *, include_guidelines: bool = False) -> pd.DataFrame:
    """One row per measured point that has MACs: context, model, family, MACs, median and its 95% CI."""
    frame = results.points
    frame = frame[frame["macs"].notna() & (frame["macs"] > 0) & (frame["median_ms"] > 0)]
    if not include_guidelines:
        frame = frame[~frame["family"].isin(FIT_EXCLUDED_FAMILIES)]
    out = frame[list(_LATENCY_COLUMNS)].copy()
    out["macs"] = out["macs"].astype("float64")
    return out.sort_values([*CONTEXT, "macs"]).reset_index(drop=True)


def _versions(values: Iterable[Any]) -> str:
    seen = sorted({str(v) for v in values if isinstance(v, str) and v})
    return ", ".join(seen) if seen else "unknown"


def fit_loglog(macs: Iterable[float], latency_ms: Iterable[float]) -> tuple[float, float, float, float]:
    """Least-squares ``log10(latency) = slope·log10(MACs) + intercept``: (slope, intercept, R², Spearman ρ).

    R² is on the log scale. ρ is the Pearson correlation of ranks (ties averaged). NaN where undefined
    (fewer than two distinct MACs).
    """
    x = np.log10(np.asarray(list(macs), dtype="float64"))
    y = np.log10(np.asarray(list(latency_ms), dtype="float64"))
    if len(x) < 2 or np.ptp(x) == 0:
        return math.nan, math.nan, math.nan, math.nan
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - (slope * x + intercept)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    rx, ry = pd.Series(x).rank(), pd.Series(y).rank()
    rho = float(rx.corr(ry)) if rx.nunique() > 1 and ry.nunique() > 1 else math.nan
    return float(slope), float(intercept), r2, rho


FIT_COLUMNS = (*CONTEXT, "runtime_version", "input_shapes", "n", "slope", "intercept", "r2", "spearman_rho")


def fits(results: Results) -> pd.DataFrame:
    """Per context: the log-log fit of median latency on MACs (slope, intercept, R², Spearman ρ) over ``n`` models.

    Latency ≈ 10^intercept · MACs^slope ms; a slope of 1 means latency proportional to MACs.
    """
    frame = latency_vs_macs(results)
    rows = []
    for key, group in frame.groupby(list(CONTEXT), sort=True):
        slope, intercept, r2, rho = fit_loglog(group["macs"], group["median_ms"])
        rows.append(
            {
                **dict(zip(CONTEXT, key, strict=True)),
                "runtime_version": _versions(group["runtime_version"]),
                "input_shapes": _versions(group["input_shape"]),
                "n": len(group),
                "slope": slope,
                "intercept": intercept,
                "r2": r2,
                "spearman_rho": rho,
            }
        )
    out = pd.DataFrame(rows, columns=list(FIT_COLUMNS))
    return out.astype({"threads": "int64", "n": "int64"}) if not out.empty else out


def residuals(results: Results, fit_frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Models ranked by how much the FLOP proxy underestimates their latency, worst first.

    ``predicted_ms`` is the context's log-log fit at the model's MACs and ``residual = median_ms / predicted_ms``
    (above 1: slower than its MACs predict). ``rank`` is 1 for the worst model within its context.
    """
    fit_frame = fits(results) if fit_frame is None else fit_frame
    frame = latency_vs_macs(results)
    if frame.empty or fit_frame.empty:
        return frame.assign(predicted_ms=pd.Series(dtype="float64"), residual=pd.Series(dtype="float64"))
    merged = frame.merge(fit_frame[[*CONTEXT, "slope", "intercept"]], on=list(CONTEXT), how="inner")
    merged = merged[merged["slope"].notna()].copy()
    merged["predicted_ms"] = 10.0 ** (merged["intercept"] + merged["slope"] * np.log10(merged["macs"]))
    merged["residual"] = merged["median_ms"] / merged["predicted_ms"]
    merged["rank"] = merged.groupby(list(CONTEXT))["residual"].rank(ascending=False, method="first").astype("int64")
    merged = merged.drop(columns=["slope", "intercept"])
    return merged.sort_values("residual", ascending=False, kind="stable").reset_index(drop=True)


# -- op breakdown ----------------------------------------------------------------------------------------------

BREAKDOWN_COLUMNS = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model_label",
    "family",
    "input_shape",
    "category",
    "flops",
    "flops_share",
    "time_us",
    "time_share",
    "n_ops",
    "n_profiled",
)


def op_breakdown(results: Results) -> pd.DataFrame:
    """Per profiled point and op category: FLOPs and their share of the model's FLOPs, next to measured time and
    its share of the profiled time. Shares within a point sum to 1; FLOP columns are NaN when the artifact has no
    graph account (see ``Results.account_errors``). Points without an op profile are not here: see
    :func:`missing_profiles`."""
    prof = results.op_profiles
    prof = prof[~prof["point_id"].isin(block_profiled(results))]
    if prof.empty:
        return pd.DataFrame(columns=list(BREAKDOWN_COLUMNS))
    info = prof.drop_duplicates("point_id")[["point_id", "artifact_sha", *_POINT_INFO[2:], *CONTEXT]]
    time = prof.groupby(["point_id", "category"], as_index=False).agg(
        time_us=("time_us", "sum"), n_profiled=("node_name", "count")
    )
    time["time_share"] = time["time_us"] / time.groupby("point_id")["time_us"].transform("sum")
    acc = results.accounts.groupby(["artifact_sha", "category"], as_index=False).agg(
        flops=("flops", "sum"), n_ops=("node_name", "count")
    )
    acc["flops_share"] = acc["flops"] / acc.groupby("artifact_sha")["flops"].transform("sum")
    acc = info[["point_id", "artifact_sha"]].merge(acc, on="artifact_sha", how="inner").drop(columns="artifact_sha")
    both = time.merge(acc, on=["point_id", "category"], how="outer")
    both = both.merge(info, on="point_id", how="left")
    accounted = both["artifact_sha"].isin(results.accounts["artifact_sha"].unique())
    # With an account, a category it does not have holds 0 FLOPs; without one, the FLOPs are unknown.
    for column in ("flops", "flops_share", "n_ops"):
        both.loc[accounted, column] = both.loc[accounted, column].fillna(0.0)
    for column in ("time_us", "time_share", "n_profiled"):
        both[column] = both[column].fillna(0.0)
    both[["n_ops", "n_profiled"]] = both[["n_ops", "n_profiled"]].astype("Int64")
    order = {c: i for i, c in enumerate(CATEGORIES)}
    both["_order"] = both["category"].map(lambda c: order.get(c, len(order)))
    both = both.sort_values(["point_id", "_order", "category"]).reset_index(drop=True)
    return both[list(BREAKDOWN_COLUMNS)]


def block_profiled(results: Results) -> set[int]:
    """Points whose profile is per block (TFLite sub-models), not per op: no per-category time."""
    prof = results.op_profiles
    if prof.empty:
        return set()
    blocks = prof.groupby("point_id")["category"].agg(lambda c: bool((c == BLOCK).all()))
    return {int(p) for p, is_block in blocks.items() if is_block}


BLOCK_COLUMNS = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model_label",
    "input_shape",
    "block",
    "op_type",
    "flops",
    "flops_share",
    "time_us",
    "time_share",
)
OUTSIDE_BLOCKS = "(outside the timed blocks)"


def block_breakdown(results: Results) -> pd.DataFrame:
    """Per block-profiled point (TFLite) and block: share of the model's FLOPs vs share of the blocks' time.

    A block's FLOPs are those of the graph-account ops whose module path is the block's or under it; the ops
    under no timed block get one row named :data:`OUTSIDE_BLOCKS` (no time). FLOP columns are NaN when the
    artifact has no account or the account has no module paths.
    """
    prof = results.op_profiles
    prof = prof[prof["point_id"].isin(block_profiled(results))]
    if prof.empty:
        return pd.DataFrame(columns=list(BLOCK_COLUMNS))
    rows: list[dict[str, Any]] = []
    for _point_id, group in prof.groupby("point_id", sort=True):
        acc = results.accounts[results.accounts["artifact_sha"] == group["artifact_sha"].iloc[0]]
        paths = acc["module_path"].fillna("").astype(str)
        usable = not acc.empty and bool((paths != "").any())
        total_flops = float(acc["flops"].sum()) if usable else math.nan
        total_time = float(group["time_us"].sum())
        covered = pd.Series(False, index=acc.index)
        base = {c: group[c].iloc[0] for c in ("point_id", *CONTEXT, "runtime_version", "model_label", "input_shape")}
        for record in group.to_dict("records"):
            block = str(record["module_path"] or record["node_name"])
            inside = (paths == block) | paths.str.startswith(block + ".")
            covered |= inside
            flops = float(acc.loc[inside, "flops"].sum()) if usable else math.nan
            rows.append(
                {
                    **base,
                    "block": block,
                    "op_type": record["op_type"],
                    "flops": flops,
                    "flops_share": flops / total_flops if total_flops else math.nan,
                    "time_us": record["time_us"],
                    "time_share": record["time_us"] / total_time if total_time else math.nan,
                }
            )
        if usable:
            rest = float(acc.loc[~covered, "flops"].sum())
            rows.append(
                {
                    **base,
                    "block": OUTSIDE_BLOCKS,
                    "op_type": "",
                    "flops": rest,
                    "flops_share": rest / total_flops if total_flops else math.nan,
                    "time_us": 0.0,
                    "time_share": 0.0,
                }
            )
    return pd.DataFrame(rows, columns=list(BLOCK_COLUMNS))


def missing_profiles(results: Results) -> pd.DataFrame:
    """Measured points that have no op profile: context and model, to say what to profile."""
    frame = results.points[~results.points["point_id"].isin(results.op_profiles["point_id"].unique())]
    columns = ["point_id", *CONTEXT, "runtime_version", "model", "params", "model_label", "input_shape"]
    return frame[columns].reset_index(drop=True)


def category_gaps(results: Results, breakdown: pd.DataFrame | None = None) -> pd.DataFrame:
    """Op categories the FLOP proxy underestimates most, per context, worst first.

    Per category: mean over profiled models of the FLOP share and the time share, ``gap`` = time share − FLOP
    share (what FLOPs miss, as a fraction of the model's time) and ``residual`` = time share / FLOP share
    (measured time over the time its FLOPs predict; infinite for zero-FLOP ops such as a channel shuffle).
    """
    frame = op_breakdown(results) if breakdown is None else breakdown
    frame = frame[frame["flops_share"].notna()]
    columns = [*CONTEXT, "category", "models", "flops_share", "time_share", "gap", "residual"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    out = frame.groupby([*CONTEXT, "category"], as_index=False).agg(
        models=("point_id", "nunique"), flops_share=("flops_share", "mean"), time_share=("time_share", "mean")
    )
    out["gap"] = out["time_share"] - out["flops_share"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = out["time_share"] / out["flops_share"]
    out["residual"] = ratio.where(out["time_share"] > 0, np.nan)
    return out.sort_values("gap", ascending=False, kind="stable").reset_index(drop=True)[columns]


# -- headline --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    """The FLOP gap of channel shuffle and depthwise convs for one profiled model in one context."""

    point_id: int
    context: Context
    runtime_version: str
    model_label: str
    input_shape: str
    shuffle_flops_share: float | None  # None: no graph account
    shuffle_time_share: float
    depthwise_flops_share: float | None
    depthwise_time_share: float
    has_shuffle: bool
    has_depthwise: bool
    per_block: bool = False  # a TFLite per-block profile: op categories' time cannot be told apart

    @property
    def sentence(self) -> str:
        """``shufflenet_v2[scale=0.5] on local/onnxruntime: shuffle/transpose 0.0% of FLOPs, 7.3% of time; …``."""
        parts = []
        if self.per_block:
            parts.append(
                "per-block profile only (the TFLite runtime has no per-op profiler), so shuffle/transpose and "
                "depthwise time cannot be told apart from the rest of each block; see the block breakdown"
            )
        elif self.has_shuffle:
            parts.append(
                f"shuffle/transpose {_pct(self.shuffle_flops_share)} of FLOPs, {_pct(self.shuffle_time_share)} of time"
            )
        if self.has_depthwise:
            parts.append(
                f"depthwise conv {_pct(self.depthwise_flops_share)} of FLOPs, {_pct(self.depthwise_time_share)} of time"
            )
        if not parts:
            parts.append(
                "no shuffle/transpose or depthwise ops"
                if self.shuffle_flops_share is not None
                else "op categories and FLOP shares unknown (no graph account of the artifact)"
            )
        where = f"{self.model_label} on {self.context.device}/{self.context.runtime}"
        detail = (
            f"({self.context.runtime} {self.runtime_version}, {self.context.threads} "
            f"thread{'s' if self.context.threads != 1 else ''}, {self.context.precision}, input {self.input_shape})"
        )
        return f"{where}: {'; '.join(parts)} {detail}"


def _pct(share: float | None) -> str:
    return "unknown (no graph account)" if share is None or math.isnan(share) else f"{100 * share:.1f}%"


def headlines(results: Results, breakdown: pd.DataFrame | None = None) -> list[Headline]:
    """Shuffle and depthwise share of FLOPs vs share of time, one per profiled point (model × context)."""
    frame = op_breakdown(results) if breakdown is None else breakdown
    out = []
    for point_id, group in frame.groupby("point_id", sort=False):
        first = group.iloc[0]
        by_cat = group.set_index("category")
        accounted = not group["flops_share"].isna().all()

        def share(category: str, column: str, by_cat: pd.DataFrame = by_cat) -> float:
            return float(by_cat.at[category, column]) if category in by_cat.index else 0.0

        def present(category: str, by_cat: pd.DataFrame = by_cat) -> bool:
            if category not in by_cat.index:
                return False
            row = by_cat.loc[category]
            return bool((row["n_ops"] if pd.notna(row["n_ops"]) else 0) > 0 or row["n_profiled"] > 0)

        out.append(
            Headline(
                point_id=int(point_id),
                context=Context.of(first),
                runtime_version=str(first["runtime_version"] or "unknown"),
                model_label=str(first["model_label"]),
                input_shape=str(first["input_shape"]),
                shuffle_flops_share=share(SHUFFLE, "flops_share") if accounted else None,
                shuffle_time_share=share(SHUFFLE, "time_share"),
                depthwise_flops_share=share(DEPTHWISE, "flops_share") if accounted else None,
                depthwise_time_share=share(DEPTHWISE, "time_share"),
                has_shuffle=present(SHUFFLE),
                has_depthwise=present(DEPTHWISE),
            )
        )
    blocks = results.op_profiles[results.op_profiles["point_id"].isin(block_profiled(results))]
    for point_id, group in blocks.groupby("point_id", sort=True):
        first = group.iloc[0]
        out.append(
            Headline(
                point_id=int(point_id),
                context=Context.of(first),
                runtime_version=str(first["runtime_version"] or "unknown"),
                model_label=str(first["model_label"]),
                input_shape=str(first["input_shape"]),
                shuffle_flops_share=None,
                shuffle_time_share=math.nan,
                depthwise_flops_share=None,
                depthwise_time_share=math.nan,
                has_shuffle=False,
                has_depthwise=False,
                per_block=True,
            )
        )
    return out


def headline_frame(results: Results, breakdown: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`headlines` as a table (shares as fractions), one row per profiled point."""
    rows = [
        {
            "point_id": h.point_id,
            **{c: getattr(h.context, c) for c in CONTEXT},
            "runtime_version": h.runtime_version,
            "model_label": h.model_label,
            "input_shape": h.input_shape,
            "shuffle_flops_share": h.shuffle_flops_share,
            "shuffle_time_share": h.shuffle_time_share,
            "depthwise_flops_share": h.depthwise_flops_share,
            "depthwise_time_share": h.depthwise_time_share,
            "sentence": h.sentence,
        }
        for h in headlines(results, breakdown)
    ]
    return pd.DataFrame(rows)


# -- roofline --------------------------------------------------------------------------------------------------

ROOFLINE_COLUMNS = (
    "point_id",
    *CONTEXT,
    "runtime_version",
    "model_label",
    "input_shape",
    "node_name",
    "op_type",
    "category",
    "flops",
    "bytes",
    "intensity",
    "time_us",
    "achieved_gflops",
    "peak_gflops",
    "bandwidth_gbs",
    "attainable_gflops",
    "efficiency",
    "bound",
)


def roofline(results: Results) -> pd.DataFrame:
    """Every profiled op with FLOPs and bytes from the graph account: arithmetic intensity (FLOPs/byte), achieved
    GFLOP/s (``flops / time``) and, where the device/runtime/threads is calibrated, the attainable
    ``min(peak, intensity·bandwidth)``, the efficiency achieved/attainable and whether the op is memory- or
    compute-bound. Ops with no FLOPs (shuffle, reshape) have no place on a roofline and are left out."""
    prof = results.op_profiles
    if prof.empty or results.accounts.empty:
        return pd.DataFrame(columns=list(ROOFLINE_COLUMNS))
    acc = results.accounts[["artifact_sha", "node_name", "flops", "bytes", "intensity"]].drop_duplicates(
        ["artifact_sha", "node_name"]
    )
    frame = prof.merge(acc, on=["artifact_sha", "node_name"], how="inner")
    frame = frame[(frame["flops"] > 0) & (frame["time_us"] > 0)].copy()
    frame["achieved_gflops"] = frame["flops"] / frame["time_us"] / 1e3
    cal = results.calibrations
    if cal.empty:
        frame["peak_gflops"] = np.nan
        frame["bandwidth_gbs"] = np.nan
    else:
        cal = cal[["device", "runtime", "threads", "peak_gflops", "bandwidth_gbs"]].astype({"threads": "int64"})
        frame = frame.merge(cal, on=["device", "runtime", "threads"], how="left")
    frame["peak_gflops"] = frame["peak_gflops"].astype("float64")
    frame["bandwidth_gbs"] = frame["bandwidth_gbs"].astype("float64")
    memory_roof = frame["intensity"] * frame["bandwidth_gbs"]
    frame["attainable_gflops"] = np.fmin(frame["peak_gflops"], memory_roof)
    frame.loc[frame["peak_gflops"].isna() | memory_roof.isna(), "attainable_gflops"] = np.nan
    frame["efficiency"] = frame["achieved_gflops"] / frame["attainable_gflops"]
    bound = pd.Series(np.where(memory_roof < frame["peak_gflops"], "memory", "compute"), index=frame.index)
    frame["bound"] = bound.where(frame["attainable_gflops"].notna(), None)
    return frame.sort_values(["point_id", "node_name"]).reset_index(drop=True)[list(ROOFLINE_COLUMNS)]


# -- guideline experiments -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guideline:
    """One ShuffleNetV2 guideline experiment: its registered block, the parameters that pick the variant, the
    paper's expected direction, and how a set of measured variants is checked against it."""

    experiment: str
    model: str
    variant_params: tuple[str, ...]
    expected: str
    order: Callable[[Mapping[str, Any]], float]
    agrees: Callable[[dict[str, float]], bool | None]  # variant label -> median ms


def _ratio(p: Mapping[str, Any]) -> float:
    left, right = str(p["ratio"]).split(":")
    return float(right) / float(left)


def _fragments(p: Mapping[str, Any]) -> float:
    """The paper's order: 1 fragment, then 2 and 4 in series, then 2 and 4 in parallel."""
    variant = str(p["variant"])
    return int(variant[0]) + (10.0 if variant.endswith("parallel") else 0.0)


def _increasing(latencies: list[float]) -> bool | None:
    if len(latencies) < 2:
        return None
    return all(a < b for a, b in itertools.pairwise(latencies))


def _g1_agrees(lat: dict[str, float]) -> bool | None:
    if "ratio=1:1" not in lat or len(lat) < 2:
        return None
    return min(lat, key=lambda k: lat[k]) == "ratio=1:1"


def _g2_agrees(lat: dict[str, float]) -> bool | None:
    ordered = sorted(lat, key=lambda k: int(k.split("=")[1]))
    return _increasing([lat[k] for k in ordered])


def _g3_agrees(lat: dict[str, float]) -> bool | None:
    verdicts = []
    for kind in ("series", "parallel"):
        chain = [
            k for k in ("variant=1-fragment", f"variant=2-fragment-{kind}", f"variant=4-fragment-{kind}") if k in lat
        ]
        verdict = _increasing([lat[k] for k in chain])
        if verdict is not None:
            verdicts.append(verdict)
    return all(verdicts) if verdicts else None


def _g4_ops(label: str) -> frozenset[str]:
    values = dict(part.split("=") for part in label.split(","))
    return frozenset(name for name in ("relu", "shortcut") if values.get(name) == "True")


def _g4_agrees(lat: dict[str, float]) -> bool | None:
    # Any variant whose element-wise ops are a strict subset of another's should be faster than it.
    pairs = [(a, b) for a in lat for b in lat if _g4_ops(a) < _g4_ops(b)]
    if not pairs:
        return None
    return all(lat[a] < lat[b] for a, b in pairs)


GUIDELINES: tuple[Guideline, ...] = (
    Guideline("G1", "guideline_g1", ("ratio",), "equal widths (1:1) fastest", _ratio, _g1_agrees),
    Guideline(
        "G2", "guideline_g2", ("groups",), "latency grows with groups g", lambda p: float(p["groups"]), _g2_agrees
    ),
    Guideline(
        "G3",
        "guideline_g3",
        ("variant",),
        "more fragments slower (1 < 2 < 4, in series and in parallel)",
        _fragments,
        _g3_agrees,
    ),
    Guideline(
        "G4",
        "guideline_g4",
        ("relu", "shortcut"),
        "removing ReLU and shortcut faster",
        lambda p: (not p["relu"]) + 2 * (not p["shortcut"]),  # both on (the reference), no ReLU, no shortcut, none
        _g4_agrees,
    ),
)

GUIDELINE_COLUMNS = (
    "experiment",
    *CONTEXT,
    "runtime_version",
    "setup",
    "variant",
    "input_shape",
    "macs",
    "median_ms",
    "ci_low_ms",
    "ci_high_ms",
    "relative",
    "expected",
    "agrees",
)


def _params(text: Any) -> dict[str, Any]:
    return json.loads(text) if isinstance(text, str) else {}


def guidelines(results: Results) -> pd.DataFrame:
    """Measured latency of each guideline variant next to the paper's expected direction.

    Rows are grouped by experiment, context and ``setup`` (the parameters that are not the variant: setting,
    width, channels). ``relative`` is the latency over the setup's first (reference) variant; ``agrees`` says
    whether this device shows the paper's direction for that setup (``None`` with fewer than two variants).
    """
    pts = results.points
    rows: list[dict[str, Any]] = []
    for g in GUIDELINES:
        sel = pts[pts["model"] == g.model]
        for record in sel.to_dict("records"):
            params = _params(record["params"])
            if not all(p in params for p in g.variant_params):
                continue
            rows.append(
                {
                    "experiment": g.experiment,
                    **{c: record[c] for c in CONTEXT},
                    "runtime_version": record["runtime_version"],
                    "setup": ",".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in g.variant_params),
                    "variant": ",".join(f"{k}={params[k]}" for k in g.variant_params),
                    "_order": g.order(params),
                    "input_shape": record["input_shape"],
                    "macs": record["macs"],
                    "median_ms": record["median_ms"],
                    "ci_low_ms": record["ci_low_ms"],
                    "ci_high_ms": record["ci_high_ms"],
                    "expected": g.expected,
                }
            )
    if not rows:
        return pd.DataFrame(columns=list(GUIDELINE_COLUMNS))
    frame = pd.DataFrame(rows).sort_values(["experiment", *CONTEXT, "setup", "_order"], kind="stable")
    by_experiment = {g.experiment: g for g in GUIDELINES}
    keys = ["experiment", *CONTEXT, "setup"]
    frame["relative"] = frame["median_ms"] / frame.groupby(keys)["median_ms"].transform("first")
    verdicts = {
        key: by_experiment[key[0]].agrees(dict(zip(group["variant"], group["median_ms"], strict=True)))
        for key, group in frame.groupby(keys, sort=False)
    }
    frame["agrees"] = [verdicts[tuple(k)] for k in frame[keys].itertuples(index=False)]
    frame["agrees"] = frame["agrees"].astype("object")
    return frame.reset_index(drop=True)[list(GUIDELINE_COLUMNS)]


def guideline_verdicts(results: Results, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per experiment, context and setup: the expected direction and whether this device agrees."""
    frame = guidelines(results) if frame is None else frame
    keys = ["experiment", *CONTEXT, "setup"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "runtime_version", "variants", "fastest", "expected", "agrees"])
    return frame.groupby(keys, as_index=False, sort=False).agg(
        runtime_version=("runtime_version", "first"),
        variants=("variant", "count"),
        fastest=("variant", lambda v: v.loc[frame.loc[v.index, "median_ms"].idxmin()]),
        expected=("expected", "first"),
        agrees=("agrees", "first"),
    )
