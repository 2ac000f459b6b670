"""Graph accounts of the profiled artifacts: per-op FLOPs and bytes moved, from :mod:`harness.proxies`.

An account is taken, in this order, from frames the caller supplies, from the results database (the sweep stores
each artifact's account), or by running :func:`harness.proxies.account` on the artifact's file. A profiled op and
an accounted op are the same op when they share the artifact and the node name.

Accounts written before channel shuffles were grouped (category ``shuffle_transpose``) are read in today's
categories (:func:`harness.proxies.patterns.restate_legacy_categories`). Nodes a runtime inserted and profiled
(ONNX Runtime's NCHWc reorders) get rows of their own, with zero FLOPs and the bytes of the tensor they convert
(:func:`runtime_op_accounts`), so their time and bytes sit next to the exported graph's ops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from harness.proxies.categories import Category
from harness.proxies.patterns import restate_legacy_categories
from harness.proxies.runtime_ops import RUNTIME_OPS, Converts

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
_TEXT = ("artifact_sha", "node_name", "op_type", "category", "module_path")
# GraphAccount.frame() names a node "name" and its memory access cost (read + written + weights) "mac_bytes".
_FROM_PROXIES = {"name": "node_name", "mac_bytes": "bytes"}

AccountFn = Callable[[Path], pd.DataFrame]


def normalize_account(frame: pd.DataFrame, artifact_sha: str) -> pd.DataFrame:
    """A :meth:`harness.proxies.GraphAccount.frame` as :data:`ACCOUNT_COLUMNS` (absent ones NaN); intensity is
    FLOPs per byte moved when the frame does not give it."""
    out = restate_legacy_categories(frame.rename(columns=_FROM_PROXIES))
    for column in ACCOUNT_COLUMNS:
        if column not in out.columns:
            out[column] = np.nan
    for column in ACCOUNT_COLUMNS:
        if column not in _TEXT:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    if out["intensity"].isna().all():
        out["intensity"] = out["flops"] / out["bytes"].where(out["bytes"] > 0)
    out["category"] = out["category"].fillna(Category.OTHER.value).astype(str)
    out["artifact_sha"] = artifact_sha
    return out[list(ACCOUNT_COLUMNS)].reset_index(drop=True)


def proxies_account(path: Path) -> pd.DataFrame:
    """Per-op account of an artifact file by :func:`harness.proxies.account`."""
    from harness.proxies import account  # imported late: parsing graphs pulls in onnx / tflite readers

    return account(path).frame()


def empty_accounts() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object" if c in _TEXT else "float64") for c in ACCOUNT_COLUMNS})


def collect_accounts(
    artifacts: pd.DataFrame,
    supplied: Mapping[str, pd.DataFrame] | None,
    account_fn: AccountFn,
    stored: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Graph accounts of ``artifacts`` (``artifact_sha``, ``path``): supplied ones, else those stored in the
    database, else computed from the file. Returns the accounts and, per artifact without one, why."""
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
        return empty_accounts(), errors
    return pd.concat(frames, ignore_index=True), errors


def runtime_op_accounts(profiles: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Account rows (:data:`ACCOUNT_COLUMNS`) for the profiled nodes a runtime inserted (ORT's reorders).

    ``profiles`` holds one row per profiled node in execution order within each point, with ``point_id``,
    ``artifact_sha``, ``node_name``, ``op_type`` and ``module_path``. Each inserted node's bytes come from the
    account row of the op it serves (:mod:`harness.proxies.runtime_ops`): that op's input (bytes read) or output
    (bytes written); NaN when no neighbour has an account row. One row per artifact and node name.
    """
    inserted = profiles["op_type"].isin(list(RUNTIME_OPS)) if not profiles.empty else pd.Series(dtype=bool)
    if not inserted.any():
        return empty_accounts()
    known = accounts.drop_duplicates(["artifact_sha", "node_name"]).set_index(["artifact_sha", "node_name"])
    rows: list[dict[str, object]] = []
    seen: set[tuple[str, str]] = set()
    for _, group in profiles.groupby("point_id", sort=False):
        records = group.to_dict("records")
        for i, record in enumerate(records):
            op = RUNTIME_OPS.get(str(record["op_type"]))
            key = (str(record["artifact_sha"]), str(record["node_name"]))
            if op is None or key in seen or key in known.index:
                continue
            seen.add(key)
            tensor = np.nan
            j = i + op.serves
            while 0 <= j < len(records):
                neighbour = (key[0], str(records[j]["node_name"]))
                if neighbour in known.index:
                    column = "bytes_read" if op.converts is Converts.INPUT else "bytes_written"
                    tensor = float(known.at[neighbour, column])
                    break
                j += op.serves
            read, written = op.bytes_moved(tensor)
            rows.append(
                {
                    "artifact_sha": key[0],
                    "node_name": key[1],
                    "op_type": str(record["op_type"]),
                    "category": op.category.value,
                    "module_path": record.get("module_path"),
                    "macs": 0.0,
                    "flops": 0.0,
                    "params": 0.0,
                    "bytes_read": read,
                    "bytes_written": written,
                    "bytes": read + written,
                    "weight_bytes": 0.0,
                    "intensity": 0.0,
                }
            )
    return pd.DataFrame(rows, columns=list(ACCOUNT_COLUMNS))
