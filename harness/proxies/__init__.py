"""Graph accounting on exported graphs: per-op FLOPs, params, bytes moved and arithmetic intensity.

``account(artifact_or_path)`` reads an ONNX or TFLite file and returns a :class:`GraphAccount`: one
:class:`OpCost` row per op (category, MACs, FLOPs, params, bytes read / written / weights, memory access cost,
intensity, torch module path), totals, and the ops no handler covers (never counted as zero). Conventions are
written down in :mod:`harness.proxies.categories` (FLOPs, categories) and :mod:`harness.proxies.costs` (bytes).
"""

from __future__ import annotations

from pathlib import Path

from devices.core.errors import FlopgapError
from devices.vocabulary import Format
from exporters.artifact import Artifact
from harness.proxies.categories import Category
from harness.proxies.costs import GraphAccount, OpCost, Totals
from harness.proxies.onnx_graph import account_onnx
from harness.proxies.tflite_graph import account_tflite

__all__ = ["Category", "GraphAccount", "OpCost", "Totals", "account"]


def account(artifact_or_path: Artifact | Path | str) -> GraphAccount:
    """Account every op of an exported model (an :class:`Artifact`, or a ``.onnx`` / ``.tflite`` path)."""
    if isinstance(artifact_or_path, Artifact):
        path, fmt = artifact_or_path.path, artifact_or_path.format
    else:
        path = Path(artifact_or_path)
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in {Format.ONNX.value, Format.TFLITE.value}:
            raise FlopgapError(f"cannot account '{path}': expected a .onnx or .tflite file")
        fmt = Format(suffix)
    if fmt is Format.PTE:
        raise FlopgapError(f"cannot account '{path}': proxies read ONNX and TFLite graphs, not ExecuTorch programs")
    if not Path(path).is_file():
        raise FlopgapError(f"no model file at '{path}'; export it first ('flopgap export')")
    return account_onnx(Path(path)) if fmt is Format.ONNX else account_tflite(Path(path))
