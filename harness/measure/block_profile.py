"""TFLite per-block profiles, where the device's LiteRT gives no per-op times (the Python API has no per-op profiler,
and flopgap's runner reads only ai-edge-litert 2.3's C API one): a model's blocks are exported as sub-models and each
is timed on its own (see :mod:`harness.measure.profile` for how the rows are read).

:func:`block_cut` takes the modules of a chosen depth of the module tree, expanding only ``nn.Sequential``
containers of blocks so the blocks compose to the model; their inputs are captured by forward pre-hooks; each
block is exported with NHWC I/O like the whole model, at the artifact's precision, and cached by content.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from devices.base import Device
from devices.core.digest import file_digest
from devices.vocabulary import Format, PointOptions, Precision
from exporters.artifact import Artifact
from exporters.cache import ArtifactCache
from exporters.source import ModelSource
from harness.measure.profile import BLOCK_CATEGORY, TFLITE_KIND, OpProfile, ProfileError, median_us, time_model
from harness.measure.spec import Protocol
from harness.store import OpTime


@dataclass(frozen=True)
class Block:
    """A module of the model timed on its own: its path, class and the NCHW input it receives in the model."""

    path: str
    kind: str
    input_shape: tuple[int, ...]


def block_cut(model: nn.Module, example: torch.Tensor, depth: int = 1) -> tuple[list[Block], dict[str, str]]:
    """Blocks of ``model`` at ``depth`` of its module tree in call order, and the modules left out (with why).

    Depth 1 is the top-level children; each further level expands ``nn.Sequential`` containers of blocks only
    (their children run one after another, so the blocks still compose to the model; a Sequential of leaf layers
    such as conv-bn-act stays whole). A block must be called exactly
    once with one tensor argument; ``nn.Identity`` modules are left out (no ops).
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")
    candidates = [(name, module) for name, module in model.named_children()]
    for _ in range(depth - 1):
        expanded: list[tuple[str, nn.Module]] = []
        for name, module in candidates:
            if _is_block_container(module):
                expanded.extend((f"{name}.{child}", sub) for child, sub in module.named_children())
            else:
                expanded.append((name, module))
        candidates = expanded
    calls: dict[str, list[tuple[Any, ...]]] = {}
    order: list[str] = []

    def recorder(name: str) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if name not in calls:
                order.append(name)
            calls.setdefault(name, []).append((args, kwargs))

        return hook

    handles = [m.register_forward_pre_hook(recorder(n), with_kwargs=True) for n, m in candidates]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    blocks: list[Block] = []
    skipped: dict[str, str] = {}
    modules = dict(candidates)
    for name, module in candidates:
        if name not in calls:
            skipped[name] = "never called"
        elif isinstance(module, nn.Identity):
            skipped[name] = "identity"
        elif len(calls[name]) != 1:
            skipped[name] = f"called {len(calls[name])} times"
    for name in order:
        if name in skipped:
            continue
        args, kwargs = calls[name][0]
        if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor) or args[0].dim() != 4:
            skipped[name] = "input is not one NCHW tensor"
            continue
        blocks.append(Block(name, type(modules[name]).__name__, tuple(int(d) for d in args[0].shape)))
    return blocks, skipped


def _is_block_container(module: nn.Module) -> bool:
    """A Sequential holding blocks (stem, stage, features); a Sequential of leaf layers (conv-bn-act, a classifier
    head) is one fused group and stays whole."""
    return isinstance(module, nn.Sequential) and any(len(list(child.children())) > 0 for child in module.children())


@dataclass(frozen=True)
class BlockArtifact:
    block: Block
    path: Path
    sha256: str
    ops: dict[str, int]  # TFLite op histogram of the sub-model


def export_blocks(
    spec: ModelSource, artifact: Artifact, depth: int = 1, cache_dir: Path | None = None
) -> tuple[list[BlockArtifact], dict[str, str]]:
    """Export the blocks of ``spec`` as .tflite sub-models at the artifact's precision, cached by content.

    The cache key is the whole-model artifact's sha256 (which pins weights, tools and precision) plus the block's
    path and input shape; files live under ``<cache_dir or the artifact's directory>/blocks``.
    """
    from exporters import tflite_export
    from exporters.fold import fold_batchnorm
    from exporters.quiet import captured_output

    if artifact.format is not Format.TFLITE:
        raise ProfileError(f"{spec.label}: block sub-models are for TFLite artifacts, not {artifact.format}")
    example = spec.example_input()
    folded = fold_batchnorm(spec.build(), example).model  # the graph the whole-model export started from
    blocks, skipped = block_cut(folded, example, depth)
    if not blocks:
        raise ProfileError(f"{spec.label}: no block to time at depth {depth} ({_why(skipped)}); try another depth")
    root = (Path(cache_dir) if cache_dir is not None else artifact.path.parent) / "blocks"
    cache = ArtifactCache(root)
    calibration = _block_calibration(spec, folded, blocks) if artifact.precision is Precision.INT8 else {}
    out: list[BlockArtifact] = []
    for block in blocks:
        key = _block_key(artifact, block)
        final = root / f"{artifact.path.stem}" / f"{block.path or 'model'}_{key[:16]}.tflite"
        if not final.is_file():
            module = folded.get_submodule(block.path)
            x = torch.randn(block.input_shape, generator=torch.Generator().manual_seed(0))
            with captured_output() as log:
                try:
                    with cache.staging(final) as tmp:
                        if artifact.precision is Precision.FP32:
                            tflite_export.export_tflite(module, x, tmp)
                        else:
                            with tempfile.TemporaryDirectory(prefix="flopgap-block-") as scratch:
                                fp32 = Path(scratch) / "fp32.tflite"
                                tflite_export.export_tflite(module, x, fp32)
                                tflite_export.convert_precision(
                                    fp32, tmp, artifact.precision, calibration.get(block.path, [])
                                )
                    failure: Exception | None = None
                except Exception as exc:  # converter failures become one ProfileError below
                    failure = exc
            if failure is not None:
                tail = log.tail(3).replace("\n", " | ")
                raise ProfileError(
                    f"{spec.label}: block '{block.path}' ({block.kind}) did not convert to TFLite "
                    f"({type(failure).__name__}: {failure}); converter said: {tail}"
                ) from failure
        out.append(BlockArtifact(block, final, file_digest(final), tflite_export.op_counts(final)))
    return out, skipped


def _block_key(artifact: Artifact, block: Block) -> str:
    text = json.dumps([artifact.sha256, artifact.precision.value, block.path, list(block.input_shape)])
    return hashlib.sha256(text.encode()).hexdigest()


def _block_calibration(spec: ModelSource, model: nn.Module, blocks: Sequence[Block]) -> dict[str, list[np.ndarray]]:
    """Each block's NHWC inputs over the whole model's int8 calibration inputs (same seeds as the exporter)."""
    from exporters.export import CALIBRATION_SAMPLES, CALIBRATION_SEED

    seen: dict[str, list[np.ndarray]] = {b.path: [] for b in blocks}

    def recorder(path: str) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            seen[path].append(np.ascontiguousarray(args[0].numpy().transpose(0, 2, 3, 1)))

        return hook

    handles = [model.get_submodule(b.path).register_forward_pre_hook(recorder(b.path)) for b in blocks]
    try:
        with torch.no_grad():
            for i in range(CALIBRATION_SAMPLES):
                model(spec.example_input(seed=CALIBRATION_SEED + i))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def profile_tflite_blocks(
    dev: Device,
    spec: ModelSource,
    artifact: Artifact,
    threads: int,
    protocol: Protocol,
    options: PointOptions | None = None,
    depth: int = 1,
    cache_dir: Path | None = None,
) -> OpProfile:
    """Time the whole TFLite model and each of its block sub-models on ``dev``; one row per block."""
    blocks, skipped = export_blocks(spec, artifact, depth, cache_dir)
    whole = time_model(dev, artifact.path, threads, protocol, options)
    ops = []
    for b in blocks:
        result = time_model(dev, b.path, threads, protocol, options)
        ops.append(
            OpTime(
                node_name=f"{b.block.path}/{b.block.kind}",
                op_type=b.block.kind,
                time_us=median_us(result),
                calls=result.n or None,
                category=BLOCK_CATEGORY,
                module_path=b.block.path,
            )
        )
    whole_transposes = int((artifact.notes.get("op_counts") or {}).get("TRANSPOSE", 0))
    notes = {
        "depth": depth,
        "blocks": [b.block.path for b in blocks],
        "skipped_modules": skipped,
        "block_transposes": sum(b.ops.get("TRANSPOSE", 0) for b in blocks),
        "whole_transposes": whole_transposes,
        "block_ops": sum(sum(b.ops.values()) for b in blocks),
        "whole_ops": sum((artifact.notes.get("op_counts") or {}).values()),
        "runtime_version": whole.runtime_version,
    }
    return OpProfile(TFLITE_KIND, tuple(ops), median_us(whole), notes)


def _why(skipped: Mapping[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in skipped.items()) or "the model has no child modules"
