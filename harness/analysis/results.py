"""The frames analysis works on, read once from a results database, and the overview of its contexts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from devices.vocabulary import parse_point_options
from harness.analysis.accounts import AccountFn, collect_accounts, proxies_account, runtime_op_accounts
from harness.analysis.context import CONTEXT, Context, contexts_in, joined
from harness.proxies.categories import Category
from harness.proxies.runtime_ops import runtime_category
from harness.store import PointStatus, Store

# What a per-op or per-point table carries of its point besides the context.
POINT_INFO = ("point_id", "artifact_sha", "model", "model_label", "family", "runtime_version", "input_shape")


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
        return contexts_in(self.points)


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
    points = points[(points["status"] == PointStatus.DONE) & points["median_ms"].notna()].reset_index(drop=True)
    points["threads"] = points["threads"].astype("int64")
    points["precision"] = points["precision"].fillna("unknown")
    points["device"] = _device_and_cluster(points)
    profiles = _profiles(store, points)
    profiles = profiles.merge(points[list(POINT_INFO) + list(CONTEXT)], on="point_id", how="inner")
    profiled = points[points["point_id"].isin(profiles["point_id"].unique())]
    artifacts = store.artifacts_frame().rename(columns={"sha256": "artifact_sha"})
    artifacts = artifacts[artifacts["artifact_sha"].isin(profiled["artifact_sha"].unique())]
    account_frame, errors = collect_accounts(artifacts, supplied, account_fn, store.op_accounts())
    for sha in set(profiled["artifact_sha"]) - set(artifacts["artifact_sha"]):
        errors[sha] = "no artifact row in the database"
    accounted = profiles[profiles["artifact_sha"].isin(account_frame["artifact_sha"])]
    inserted = runtime_op_accounts(accounted, account_frame)
    if not inserted.empty:
        account_frame = pd.concat([account_frame, inserted], ignore_index=True)
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


def _attribute(profiles: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Fill a profiled node's missing category and module path from the graph account's node of the same name,
    else from its op type when a runtime inserted it (``layout``); a node nothing places is ``other``."""
    if profiles.empty:
        return profiles.assign(category=profiles["category"].astype("object"))
    known = accounts[["artifact_sha", "node_name", "category", "module_path"]].drop_duplicates(
        ["artifact_sha", "node_name"]
    )
    merged = profiles.merge(known, on=["artifact_sha", "node_name"], how="left", suffixes=("", "_account"))
    inserted = merged["op_type"].map(lambda t: getattr(runtime_category(str(t)), "value", None))
    merged["category"] = merged["category"].fillna(merged["category_account"]).fillna(inserted)
    merged["category"] = merged["category"].fillna(Category.OTHER.value)
    merged["module_path"] = merged["module_path"].fillna(merged["module_path_account"])
    return merged.drop(columns=["category_account", "module_path_account"])


OVERVIEW_COLUMNS = (*CONTEXT, "runtime_version", "input_shapes", "models", "points", "noisy")


def context_overview(results: Results) -> pd.DataFrame:
    """One row per measurement context: runtime versions, input shapes, how many models and points, how many of
    those points are flagged noisy."""
    points = results.points
    if points.empty:
        return pd.DataFrame(columns=list(OVERVIEW_COLUMNS))
    return points.groupby(list(CONTEXT), as_index=False).agg(
        runtime_version=("runtime_version", joined),
        input_shapes=("input_shape", joined),
        models=("model_label", "nunique"),
        points=("point_id", "count"),
        noisy=("noisy", lambda v: int(v.fillna(False).sum())),
    )[list(OVERVIEW_COLUMNS)]


def _device_and_cluster(points: pd.DataFrame) -> pd.Series:
    """The device column, with the cluster of points pinned to one (``rpi5 (big)``): big and LITTLE cores are two
    measurement contexts, fitted and plotted apart, and every caption says which."""

    def name(row: Any) -> str:
        cluster = parse_point_options(row.options if isinstance(row.options, str) else None).get("cluster")
        return f"{row.device} ({cluster})" if cluster else str(row.device)

    if points.empty:
        return points["device"]
    return pd.Series([name(row) for row in points.itertuples()], index=points.index, dtype=object)
