"""What identifies a sweep point: a hash of canonical JSON, so a rerun of the same spec finds its points."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with keys sorted at every level and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def point_key(
    artifact_sha: str,
    device: str,
    runtime: str,
    threads: int,
    options: Mapping[str, Any] | None = None,
    *,
    runtime_version: str | None = None,
    runner_version: str | None = None,
) -> str:
    """sha256 hex of the canonical JSON of what identifies a sweep point (dict keys sorted at every level).

    The runtime's and the runner's versions are part of it, so after an upgrade a rerun measures anew instead of
    skipping; a version not known (None) is left out, which keeps keys of points stored without one.
    """
    doc: dict[str, Any] = {
        "artifact_sha": artifact_sha,
        "device": device,
        "runtime": runtime,
        "threads": int(threads),
        "options": dict(options or {}),
    }
    if runtime_version is not None:
        doc["runtime_version"] = runtime_version
    if runner_version is not None:
        doc["runner_version"] = runner_version
    try:
        text = canonical_json(doc)
    except (TypeError, ValueError) as err:
        raise ValueError(f"point options must be JSON values (str, number, bool, None, list, dict): {err}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
