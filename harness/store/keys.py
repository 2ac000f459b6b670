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
    artifact_sha: str, device: str, runtime: str, threads: int, options: Mapping[str, Any] | None = None
) -> str:
    """sha256 hex of the canonical JSON of what identifies a sweep point (dict keys sorted at every level)."""
    doc = {
        "artifact_sha": artifact_sha,
        "device": device,
        "runtime": runtime,
        "threads": int(threads),
        "options": dict(options or {}),
    }
    try:
        text = canonical_json(doc)
    except (TypeError, ValueError) as err:
        raise ValueError(f"point options must be JSON values (str, number, bool, None, list, dict): {err}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
