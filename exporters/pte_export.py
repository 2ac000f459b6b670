"""torch → ExecuTorch ``.pte``: ``torch.export``, then ``to_edge_transform_and_lower`` with the XNNPACK partitioner.

fp32 lowers the (BatchNorm-folded) module as is; int8 first quantizes it with the XNNPACK quantizer (symmetric,
per-channel weights, static activations calibrated like the other formats' int8). Every export writes an ETRecord
beside the program: the Inspector needs it to map an ETDump's events back to module paths.

An op the partitioner leaves outside the XNNPACK delegate runs on ExecuTorch's portable kernels, a silent latency
cliff; the notes count those ops by name (``ops_outside_delegate``), so ``flopgap export`` can say so.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from devices.vocabulary import Precision
from exporters.errors import ExportError

DELEGATE_CALL = "executorch_call_delegate"
ETRECORD_SUFFIX = ".etrecord"
# Graph plumbing, not work: delegate outputs unpacked by getitem.
_PLUMBING = frozenset({"getitem"})


def version() -> str:
    """The installed executorch version, or raise the one-line error that says how to get it."""
    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        raise ExportError(
            "the pte format needs ExecuTorch; install it with: pip install -c constraints.txt -e '.[executorch]'"
        ) from None


def etrecord_path(program: Path) -> Path:
    """Where the ETRecord of ``program`` lies (beside it)."""
    return program.with_suffix(ETRECORD_SUFFIX)


def export_pte(
    model: nn.Module,
    x: tuple[torch.Tensor, ...],
    path: Path,
    etrecord: Path,
    precision: Precision,
    calibration: Sequence[tuple[torch.Tensor, ...]] = (),
) -> dict[str, Any]:
    """Lower ``model`` to an XNNPACK-delegated program at ``path`` and its ETRecord at ``etrecord``; return notes."""
    version()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model = model.eval()
    with torch.no_grad():
        program = torch.export.export(model, x)
        if precision is Precision.INT8:
            program = torch.export.export(_quantized(program.module(), calibration), x)
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], generate_etrecord=True)
    notes = delegate_notes(edge.exported_program().graph_module.graph)
    et = edge.to_executorch()
    path.write_bytes(et.buffer)
    _save_etrecord(et.get_etrecord(), etrecord)
    return notes


def _quantized(module: nn.Module, calibration: Sequence[tuple[torch.Tensor, ...]]) -> nn.Module:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(module, quantizer)  # type: ignore[arg-type]
    for xs in calibration:
        prepared(*xs)
    return convert_pt2e(prepared)


def _save_etrecord(record: Any, dest: Path) -> None:
    # Written through a temp name so a killed export never leaves a half ETRecord beside a cached program.
    tmp = dest.with_name(f".{dest.name}.partial")
    record.save(str(tmp))
    os.replace(tmp, dest)


def delegate_notes(graph: torch.fx.Graph) -> dict[str, Any]:
    """Delegate partitions and the ops left outside the delegate (by op name) in a lowered edge graph."""
    outside: Counter[str] = Counter()
    partitions = 0
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        name = op_name(node.target)
        if name == DELEGATE_CALL:
            partitions += 1
        elif name not in _PLUMBING:
            outside[name] += 1
    return {
        "delegate": "XnnpackBackend",
        "delegate_partitions": partitions,
        "ops_outside_delegate": sum(outside.values()),
        "op_counts_outside_delegate": dict(sorted(outside.items())),
    }


def op_name(target: Any) -> str:
    """``aten.split_with_sizes_copy`` for an edge op, ``getitem`` for a Python builtin."""
    text = str(target)
    if text.startswith("<"):  # a Python builtin or function: "<built-in function getitem>"
        text = getattr(target, "__name__", text)
    for suffix in (".default", ".out", ".Tensor"):
        text = text.removesuffix(suffix)
    return text.removeprefix("<edge>.")


def run_pte(path: Path, xs: Sequence[np.ndarray]) -> np.ndarray:
    """Run the program's ``forward`` once on NCHW float inputs with ExecuTorch's Python runtime; first output."""
    version()
    from executorch.runtime import Runtime, Verification

    method = Runtime.get().load_program(path, verification=Verification.Minimal).load_method("forward")
    outputs = method.execute([torch.from_numpy(np.ascontiguousarray(a)) for a in xs])
    return np.asarray(outputs[0])
