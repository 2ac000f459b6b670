"""Per-op measured time, mapped to torch module paths so FLOPs and time can be set side by side.

Two ways, one per format:

- **ONNX** (``kind = "ort-nodes"``): flopgap's runner with ``--profile`` gives ORT's kernel time per node. The
  session is profiled at the graph-optimization level that sweeps time (``all``), so the profile describes the
  graph that actually ran: on x86 ORT's NCHWc layout pass replaces convolutions (and pools) by nodes named
  ``<output tensor>_nchwc`` and adds ``ReorderInput`` / ``ReorderOutput`` layout nodes; the ``extended`` level
  fuses Conv + activation under the conv's own name. Each row is mapped back to the exported graph
  (:func:`map_ort_rows`): an exported node name is kept as is; a ``*_nchwc`` name is resolved through the
  tensor it writes to the exported node of the same op type (so a fused Conv + Relu is charged to the Conv, and
  the activation gets no row of its own: its time is inside the conv's); a Reorder node has no exported
  counterpart, keeps ORT's name and takes the module path of the op it serves (``ReorderOutput``: the one
  before it in execution order, ``ReorderInput``: the one after). Profiling at ``disable`` or ``basic`` would
  keep every exported name but time a graph 2-3x slower than the one the sweep measured, so it is not used.
- **TFLite** (``kind = "tflite-blocks"``): the LiteRT Python API has no per-op profiler, so the model's blocks
  are exported as sub-models (:func:`block_cut`: modules of a chosen depth of the module tree, expanding only
  ``nn.Sequential`` containers of blocks so the blocks compose to the model; inputs captured by forward pre-hooks; NHWC
  I/O like the whole model) and each is timed on its own. One row per block, ``category = "block"``.

Error, reported as ``ratio = sum of rows / whole-model median`` measured in the same pass: ORT per-node times
add the profiler's own per-node overhead and lose the session's fixed per-run cost; block times add the
boundary layout transposes of every sub-model, per-invoke overhead per block and lose cross-block fusion, and
miss ops of the parents' own ``forward`` (a channel split, a flatten). The ratio is returned with each profile
(:attr:`OpProfile.ratio`) and can be recomputed from the store as ``sum(time_us) / 1000 / points.median_ms``.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from devices.base import Device
from devices.errors import FlopgapError
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from exporters.cache import ArtifactCache, sha256_file
from harness.measure.spec import Protocol
from harness.measure.trial import TrialResult, check_runner_doc, parse_runner_output, runner_args
from harness.proxies.runtime_ops import runtime_category
from harness.store import OpTime, Store
from harness.zoo.registry import ModelSpec

ORT_KIND = "ort-nodes"
TFLITE_KIND = "tflite-blocks"
BLOCK_CATEGORY = "block"
NCHWC_SUFFIX = "_nchwc"
# ORT layout nodes with no exported counterpart, and which neighbour (in execution order) they serve.
_LAYOUT_NEIGHBOUR = {"ReorderOutput": -1, "ReorderInput": +1}
_WALK_DEPTH = 4  # how far up a fused chain (Conv → Add → Relu) to look for the node that names the fused op
MIN_PROFILE_RUNS = 20
# What the tests hold a profile's ratio (sum of rows / whole-model median) to. Measured on the quick sweep's
# models, 1 thread, 2-core x86 host: ORT per-node 1.11-1.50 (more, smaller nodes: higher; ORT's trace has
# 1 us resolution and the runner averages calls, so a busy host pushes it to ~2.2), TFLite blocks 0.99-1.02 at
# depth 1 and 1.01-1.04 at depth 2; a tiny test block on a busy machine strays further, hence the slack.
EXPECTED_RATIO = (1 / 3, 3.0)


class ProfileError(FlopgapError):
    """A per-op profile could not be taken; the message names the model and what to do."""


@dataclass(frozen=True)
class OpProfile:
    """Per-op (ONNX) or per-block (TFLite) times of one artifact, with the whole-model median of the same pass."""

    kind: str  # ORT_KIND or TFLITE_KIND
    ops: tuple[OpTime, ...]
    whole_us: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def sum_us(self) -> float:
        return float(sum(op.time_us for op in self.ops))

    @property
    def ratio(self) -> float:
        """Sum of the rows over the whole-model median (1.0 = the rows account for the measured time exactly)."""
        return self.sum_us / self.whole_us


# --------------------------------------------------------------------------- ONNX: map ORT rows to the export


@dataclass(frozen=True)
class _Node:
    op_type: str
    inputs: tuple[str, ...]
    module_path: str


@dataclass(frozen=True)
class GraphIndex:
    """What mapping ORT's node names back needs from the exported graph: nodes by name, producers by tensor."""

    nodes: Mapping[str, _Node]
    producer: Mapping[str, str]

    @classmethod
    def of(cls, model: onnx.ModelProto | Path) -> GraphIndex:
        from exporters.onnx_export import node_module_path

        if isinstance(model, Path):
            model = onnx.load(str(model), load_external_data=False)
        nodes = {n.name: _Node(n.op_type, tuple(n.input), node_module_path(n)) for n in model.graph.node}
        producer = {out: n.name for n in model.graph.node for out in n.output if out}
        return cls(nodes, producer)

    def anchor(self, name: str, op_type: str) -> tuple[str | None, set[str]]:
        """The exported node an ORT node name stands for (None when it has none), and the exported nodes it runs."""
        if name in self.nodes:
            return name, {name}
        tensor = name.removesuffix(NCHWC_SUFFIX)
        if tensor == name or tensor not in self.producer:
            return None, set()
        start = self.producer[tensor]
        # The fused node writes the last tensor of its chain (the activation's); charge it to the op it runs.
        frontier, seen = [start], {start}
        for _ in range(_WALK_DEPTH):
            for node in frontier:
                if self.nodes[node].op_type == op_type:
                    return node, seen
            frontier = [
                self.producer[t]
                for node in frontier
                for t in self.nodes[node].inputs
                if t in self.producer and self.producer[t] not in seen
            ]
            seen.update(frontier)
        return start, {start}


def map_ort_rows(rows: Sequence[Mapping[str, Any]], index: GraphIndex) -> list[OpTime]:
    """The runner's ORT profile rows (execution order) as :class:`OpTime` named after the exported graph.

    Rows with no exported counterpart keep ORT's name. A Reorder node takes the module path of the op it serves;
    any other (e.g. ``HardSigmoid_158`` + ``Mul_159``, ORT's decomposition of a HardSwish it could not fuse) takes
    the deepest module holding the exported nodes that ran between its mapped neighbours without a row of their
    own, and no module path when there are none.
    """
    resolved = [index.anchor(str(r["name"]), str(r["op_type"])) for r in rows]
    anchors = [anchor for anchor, _ in resolved]
    covered = set().union(*(nodes for _, nodes in resolved))
    paths: list[str | None] = [index.nodes[a].module_path if a is not None else None for a in anchors]
    order = {name: i for i, name in enumerate(index.nodes)}
    rowless = [name for name in index.nodes if name not in covered]
    for i, row in enumerate(rows):
        if anchors[i] is not None:
            continue
        step = _LAYOUT_NEIGHBOUR.get(str(row["op_type"]))
        if step is not None:
            for direction in (step, -step):  # the served neighbour first, the other side at the graph's ends
                j = _mapped_neighbour(anchors, i, direction)
                if j is not None:
                    paths[i] = paths[j]
                    break
            continue
        before, after = _mapped_neighbour(anchors, i, -1), _mapped_neighbour(anchors, i, +1)
        low = order[anchors[before]] if before is not None and anchors[before] else -1  # type: ignore[index]
        high = order[anchors[after]] if after is not None and anchors[after] else len(order)  # type: ignore[index]
        between = [index.nodes[n].module_path for n in rowless if low < order[n] < high]
        paths[i] = _common_module(between) if between else None
    return [
        OpTime(
            node_name=anchor if anchor is not None else str(row["name"]),
            op_type=str(row["op_type"]),
            # A runner that reports a per-node median is preferred: ORT's mean is pulled up by the odd slow call.
            time_us=float(row.get("median_us", row["time_us"])),
            calls=int(row["calls"]) if row.get("calls") is not None else None,
            # Runtime-inserted layout nodes have no exported counterpart to take a category from.
            category=getattr(runtime_category(str(row["op_type"])), "value", None),
            module_path=path,
        )
        for row, anchor, path in zip(rows, anchors, paths, strict=True)
    ]


def _mapped_neighbour(anchors: Sequence[str | None], i: int, direction: int) -> int | None:
    j = i + direction
    while 0 <= j < len(anchors) and anchors[j] is None:
        j += direction
    return j if 0 <= j < len(anchors) else None


def _common_module(paths: Sequence[str]) -> str:
    """The deepest module path that holds all of ``paths`` (``''``: the model itself)."""
    parts = [p.split(".") if p else [] for p in paths]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def profile_onnx(
    dev: Device,
    artifact: Artifact,
    threads: int,
    protocol: Protocol,
    options: Mapping[str, Any] | None = None,
    profile_runs: int | None = None,
) -> OpProfile:
    """Run the ONNX artifact once with ``--profile`` on ``dev`` and map ORT's per-node times to module paths."""
    if artifact.format is not Format.ONNX:
        raise ProfileError(f"{artifact.path.name}: per-node profiles need an ONNX artifact, not {artifact.format}")
    runs = profile_runs if profile_runs is not None else max(MIN_PROFILE_RUNS, protocol.runs)
    result = _time(dev, artifact.path, threads, protocol, options or {}, profile=True, profile_runs=runs)
    rows = result.doc.get("profile")
    if not rows:
        note = result.doc.get("profile_note") or "the runner returned no per-op rows"
        raise ProfileError(f"{artifact.path.name} on '{dev.name}': no profile ({note})")
    index = GraphIndex.of(artifact.path)
    ops = map_ort_rows(rows, index)
    total = sum(op.time_us for op in ops)
    runtime_only = [op for op in ops if op.node_name not in index.nodes]
    notes = {
        "graph_optimization": (result.doc.get("protocol") or {}).get("graph_optimization", "all"),
        "profile_runs": runs,
        "runtime_version": result.doc.get("runtime_version"),
        "nodes_profiled": len(ops),
        "nodes_exported": len(index.nodes),
        "runtime_only_nodes": [op.node_name for op in runtime_only],  # Reorder*, decompositions
        "runtime_only_time_share": sum(op.time_us for op in runtime_only) / total if total else None,
        "unattributed_nodes": [op.node_name for op in ops if op.module_path is None],
    }
    return OpProfile(ORT_KIND, tuple(ops), _median_us(result), notes)


# --------------------------------------------------------------------------- TFLite: blocks as sub-models


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
    spec: ModelSpec, artifact: Artifact, depth: int = 1, cache_dir: Path | None = None
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
        out.append(BlockArtifact(block, final, sha256_file(final), tflite_export.op_counts(final)))
    return out, skipped


def _block_key(artifact: Artifact, block: Block) -> str:
    text = json.dumps([artifact.sha256, artifact.precision.value, block.path, list(block.input_shape)])
    return hashlib.sha256(text.encode()).hexdigest()


def _block_calibration(spec: ModelSpec, model: nn.Module, blocks: Sequence[Block]) -> dict[str, list[np.ndarray]]:
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
    spec: ModelSpec,
    artifact: Artifact,
    threads: int,
    protocol: Protocol,
    options: Mapping[str, Any] | None = None,
    depth: int = 1,
    cache_dir: Path | None = None,
) -> OpProfile:
    """Time the whole TFLite model and each of its block sub-models on ``dev``; one row per block."""
    blocks, skipped = export_blocks(spec, artifact, depth, cache_dir)
    opts = dict(options or {})
    whole = _time(dev, artifact.path, threads, protocol, opts)
    ops = []
    for b in blocks:
        result = _time(dev, b.path, threads, protocol, opts)
        ops.append(
            OpTime(
                node_name=f"{b.block.path}/{b.block.kind}",
                op_type=b.block.kind,
                time_us=_median_us(result),
                calls=len(result.samples_ns) or None,
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
        "runtime_version": whole.doc.get("runtime_version"),
    }
    return OpProfile(TFLITE_KIND, tuple(ops), _median_us(whole), notes)


# --------------------------------------------------------------------------- dispatch and storage


def profile_artifact(
    dev: Device,
    spec: ModelSpec,
    artifact: Artifact,
    threads: int,
    protocol: Protocol,
    options: Mapping[str, Any] | None = None,
    depth: int = 1,
    cache_dir: Path | None = None,
) -> OpProfile:
    """Per-node profile for ONNX, per-block profile for TFLite; per-op from ``benchmark_model`` on phones."""
    if getattr(dev, "runner_argv", None) is None:
        if artifact.format is Format.TFLITE and hasattr(dev, "measure"):
            return profile_binary(dev, artifact, threads, protocol, options)
        raise ProfileError(
            f"device '{dev.name}' runs a benchmark binary that cannot profile {artifact.format.value} models; "
            "use a TFLite artifact with benchmark_model"
        )
    if artifact.format is Format.ONNX:
        return profile_onnx(dev, artifact, threads, protocol, options)
    return profile_tflite_blocks(dev, spec, artifact, threads, protocol, options, depth, cache_dir)


BINARY_KIND = "tflite-ops"
_BRACKETED = re.compile(r"^\[(?P<tensor>.*)\](?::\d+)?$")


def profile_binary(
    dev: Device, artifact: Artifact, threads: int, protocol: Protocol, options: Mapping[str, Any] | None = None
) -> OpProfile:
    """Per-op TFLite times from the official ``benchmark_model --enable_op_profiling`` (its CSV pulled back).

    Rows are named like the graph account's (``<module path>/<OP_TYPE>``) where the op's output tensor carries a
    litert-torch module path, so they join the FLOP and byte proxies; otherwise they keep the tool's name.
    """
    from devices.adb import BenchmarkOptions
    from harness.proxies.tflite_graph import torch_module_paths

    opts = BenchmarkOptions.from_protocol(protocol, threads, dict(options or {}))
    with tempfile.TemporaryDirectory(prefix="flopgap-ops-") as tmp:
        doc = dev.measure(artifact.path, opts, protocol.timeout_s, profile_dir=Path(tmp))  # type: ignore[attr-defined]
    result = check_runner_doc(doc, dev.name)
    rows = doc.get("ops") or []
    if not rows:
        raise ProfileError(f"device '{dev.name}': the benchmark binary printed no op profile")
    ops = []
    for row in rows:
        raw = str(row["name"])
        match = _BRACKETED.match(raw)
        paths = torch_module_paths(match.group("tensor") if match else raw)
        module = paths[-1][0] if paths else None
        ops.append(
            OpTime(
                node_name=f"{module}/{row['op_type']}" if module else raw,
                op_type=str(row["op_type"]),
                time_us=float(row["avg_ms"]) * 1e3,
                calls=int(row["times_called"]) if row.get("times_called") is not None else None,
                module_path=module,
            )
        )
    notes = {"source": "benchmark_model --enable_op_profiling (CSV)", "device": dev.name}
    return OpProfile(BINARY_KIND, tuple(ops), _median_us(result), notes)


def store_profile(store: Store, point_id: int, profile: OpProfile, trial_id: int | None = None) -> int:
    """Write a profile's rows for a point; returns how many were written."""
    return store.add_op_profile(point_id, profile.ops, trial_id=trial_id)


def has_profile(store: Store, point_id: int) -> bool:
    return not store.op_profiles_frame([point_id]).empty


def _time(
    dev: Device,
    path: Path,
    threads: int,
    protocol: Protocol,
    options: Mapping[str, Any],
    profile: bool = False,
    profile_runs: int | None = None,
) -> TrialResult:
    starter = getattr(dev, "runner_argv", None)
    if starter is None:
        raise ProfileError(f"device '{dev.name}' has no flopgap runner configured")
    remote = dev.push(path)
    argv = [*starter(), *runner_args(remote, threads, protocol, dict(options), profile=profile)]
    if profile_runs is not None:
        argv += ["--profile-runs", str(profile_runs)]
    return parse_runner_output(dev.run(argv, timeout=protocol.timeout_s), dev.name)


def _median_us(result: TrialResult) -> float:
    samples = result.samples_ns
    if samples:
        return float(statistics.median(samples)) / 1e3
    median_ms = result.median_ms
    if median_ms is None:
        raise ProfileError("the runner returned no timing")
    return median_ms * 1e3


def _why(skipped: Mapping[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in skipped.items()) or "the model has no child modules"


def ratio_table(profiles: Iterable[tuple[str, OpProfile]]) -> list[dict[str, Any]]:
    """One summary row per (label, profile): rows, sum, whole median and their ratio, for printing or tests."""
    return [
        {
            "label": label,
            "kind": p.kind,
            "rows": len(p.ops),
            "sum_ms": p.sum_us / 1e3,
            "whole_ms": p.whole_us / 1e3,
            "ratio": p.ratio,
        }
        for label, p in profiles
    ]
