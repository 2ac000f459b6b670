"""Per-op measured time, mapped to torch module paths so FLOPs and time can be set side by side.

Three ways:

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
- **TFLite, per op** (``kind = "litert-ops"``, :func:`profile_litert`): where the device's LiteRT is one whose C API
  profiler flopgap's runner reads (ai-edge-litert 2.3: the device's facts list ``tflite`` in ``op_profiles``), each
  XNNPACK operator timed inside the whole model, joined to the graph op it runs and named like the graph account's
  rows (``<module path>/<OP_TYPE>``); ``benchmark_model``'s op profile on a phone (``kind = "tflite-ops"``,
  :func:`profile_binary`) likewise.
- **TFLite, per block** (``kind = "tflite-blocks"``), where the device's LiteRT gives no per-op times (the Python
  API has no per-op profiler; another ai-edge-litert release, ``tflite_runtime``): the model's blocks
  are exported as sub-models (:func:`block_cut`: modules of a chosen depth of the module tree, expanding only
  ``nn.Sequential`` containers of blocks so the blocks compose to the model; inputs captured by forward pre-hooks; NHWC
  I/O like the whole model) and each is timed on its own. One row per block, ``category = "block"``.

Error, reported as ``ratio = sum of rows / whole-model median`` measured in the same pass: ORT per-node times
add the profiler's own per-node overhead and lose the session's fixed per-run cost (LiteRT's operators lose it
too, and read whole microseconds); block times add the
boundary layout transposes of every sub-model, per-invoke overhead per block and lose cross-block fusion, and
miss ops of the parents' own ``forward`` (a channel split, a flatten). The ratio is returned with each profile
(:attr:`OpProfile.ratio`) and can be recomputed from the store as ``sum(time_us) / 1000 / points.median_ms``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from devices.base import Device
from devices.core.errors import FlopgapError
from devices.result import OpTiming, TrialResult
from devices.vocabulary import Format, PointOptions
from exporters.artifact import Artifact
from harness.measure.spec import Protocol
from harness.measure.trial import trial_request
from harness.proxies.runtime_ops import runtime_category
from harness.sources import FileSource, ModelRef
from harness.store import OpTime, Store

ORT_KIND = "ort-nodes"
TFLITE_KIND = "tflite-blocks"
LITERT_KIND = "litert-ops"  # XNNPACK's operators inside the model, read by flopgap's runner
BLOCK_CATEGORY = "block"
NCHWC_SUFFIX = "_nchwc"
# ORT layout nodes with no exported counterpart, and which neighbour (in execution order) they serve.
_LAYOUT_NEIGHBOUR = {"ReorderOutput": -1, "ReorderInput": +1}
_WALK_DEPTH = 4  # how far up a fused chain (Conv → Add → Relu) to look for the node that names the fused op
MIN_PROFILE_RUNS = 20
# How far (as a log ratio: x1.28 or /1.28) an ORT profile's nodes may sum from the model's timed latency before
# the profile is taken again (:data:`PROFILE_RETRIES` times at most; the closest is kept) and, if it still strays,
# a predictor learns no kernel rows from it (:func:`profile_agrees`).
PROFILE_STRAY = 0.25
PROFILE_RETRIES = 2


class ProfileError(FlopgapError):
    """A per-op profile could not be taken; the message names the model and what to do."""


@dataclass(frozen=True)
class OpProfile:
    """Per-op (or, for a TFLite model the device cannot profile, per-block) times of one artifact, with the
    whole-model median of the same pass."""

    kind: str  # ORT_KIND, LITERT_KIND, BINARY_KIND, TFLITE_KIND (blocks) or ExecuTorch's
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


def profile_stray(profile_sum_us: float, timed_us: float) -> float:
    """How far a profile's rows sum from the model's timed latency, as ``|log(sum / timed)|`` (inf: no time)."""
    if profile_sum_us <= 0 or timed_us <= 0:
        return math.inf
    return abs(math.log(profile_sum_us / timed_us))


def profile_agrees(profile_sum_us: float, timed_us: float) -> bool:
    """Whether a model's per-node profile (ONNX Runtime's, one profiled session) sums to within :data:`PROFILE_STRAY`
    of the model's timed latency (:func:`~harness.measure.stats.target_ms` of its interleaved trials). A sweep takes
    a profile that does not again (:func:`harness.measure.sweep._profile_point` keeps the closest of at most 1 +
    :data:`PROFILE_RETRIES`); a predictor build learns no kernel rows from one that still does not.

    The profile is one session, run apart from the trials, and on a shared machine a spell can slow it alone: two
    builds of the same seed timed their 16 training nets within 2% of each other (median), while the nets' profile
    sums differed by a median 15%, one net's by 1.7x, its sum 3.0x its timed p10 in one build and 1.8x in the other.
    Rescaling such a profile to the timed latency does not mend it (the spell slows small nodes more than large
    ones; refitted on six stored builds, rescaled rows brought 20-50% over-predictions on nets under 2 ms); leaving
    it out does: the same six ONNX Runtime builds, each scored against the random nets of every run of its seed (18
    pairs), came within ±10% for 74% of nets on average against 65% (13 pairs better by one to seven nets of 30, two
    equal, four lost one net; the worst pair 50% against 43%; thresholds of 0.2-0.5 gave 72-75%). Single-kernel
    probes are not held to it: their fixed per-run cost is a large share of a small kernel's timed latency, so their
    ratio strays by design; they are many, and the regressors' loss copes with the odd wayward one."""
    return profile_stray(profile_sum_us, timed_us) <= PROFILE_STRAY


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
        from exporters.onnx_export import node_module_path, ort_node_names

        if isinstance(model, Path):
            model = onnx.load(str(model), load_external_data=False)
        names = ort_node_names(model)
        nodes = {
            name: _Node(n.op_type, tuple(n.input), node_module_path(n))
            for name, n in zip(names, model.graph.node, strict=True)
        }
        producer = {out: name for name, n in zip(names, model.graph.node, strict=True) for out in n.output if out}
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


def map_ort_rows(rows: Sequence[OpTiming], index: GraphIndex) -> list[OpTime]:
    """The runner's ORT profile rows (execution order) as :class:`OpTime` named after the exported graph.

    Rows with no exported counterpart keep ORT's name. A Reorder node takes the module path of the op it serves;
    any other (e.g. ``HardSigmoid_158`` + ``Mul_159``, ORT's decomposition of a HardSwish it could not fuse) takes
    the deepest module holding the exported nodes that ran between its mapped neighbours without a row of their
    own, and no module path when there are none.
    """
    resolved = [index.anchor(r.name, r.op_type) for r in rows]
    anchors = [anchor for anchor, _ in resolved]
    covered = set().union(*(nodes for _, nodes in resolved))
    paths: list[str | None] = [index.nodes[a].module_path if a is not None else None for a in anchors]
    order = {name: i for i, name in enumerate(index.nodes)}
    rowless = [name for name in index.nodes if name not in covered]
    for i, row in enumerate(rows):
        if anchors[i] is not None:
            continue
        step = _LAYOUT_NEIGHBOUR.get(row.op_type)
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
            node_name=anchor if anchor is not None else row.name,
            op_type=row.op_type,
            # A runner that reports a per-node median is preferred: ORT's mean is pulled up by the odd slow call.
            time_us=row.median_us if row.median_us is not None else row.time_us,
            calls=row.calls,
            # Runtime-inserted layout nodes have no exported counterpart to take a category from.
            category=runtime_category(row.op_type),
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
    options: PointOptions | None = None,
    profile_runs: int | None = None,
) -> OpProfile:
    """Run the ONNX artifact once with ``--profile`` on ``dev`` and map ORT's per-node times to module paths."""
    if artifact.format is not Format.ONNX:
        raise ProfileError(f"{artifact.path.name}: per-node profiles need an ONNX artifact, not {artifact.format}")
    runs = profile_runs if profile_runs is not None else max(MIN_PROFILE_RUNS, protocol.runs)
    result = time_model(dev, artifact.path, threads, protocol, options, profile=True, profile_runs=runs)
    rows = result.ops
    if not rows:
        note = result.ops_note or "the runner returned no per-op rows"
        raise ProfileError(f"{artifact.path.name} on '{dev.name}': no profile ({note})")
    index = GraphIndex.of(artifact.path)
    ops = map_ort_rows(rows, index)
    total = sum(op.time_us for op in ops)
    runtime_only = [op for op in ops if op.node_name not in index.nodes]
    notes = {
        "graph_optimization": result.graph_optimization or "all",
        "profile_runs": runs,
        "runtime_version": result.runtime_version,
        "nodes_profiled": len(ops),
        "nodes_exported": len(index.nodes),
        "runtime_only_nodes": [op.node_name for op in runtime_only],  # Reorder*, decompositions
        "runtime_only_time_share": sum(op.time_us for op in runtime_only) / total if total else None,
        "unattributed_nodes": [op.node_name for op in ops if op.module_path is None],
    }
    return OpProfile(ORT_KIND, tuple(ops), median_us(result), notes)


# --------------------------------------------------------------------------- dispatch and storage


def profile_artifact(
    dev: Device,
    spec: ModelRef,
    artifact: Artifact,
    threads: int,
    protocol: Protocol,
    options: PointOptions | None = None,
    depth: int = 1,
    cache_dir: Path | None = None,
) -> OpProfile:
    """Per-op rows where the device's tool reports them (ORT nodes, ExecuTorch's ETDump and LiteRT 2.3's operators
    from flopgap's runner, TFLite ops from ``benchmark_model``); otherwise, for TFLite, per-block rows from timing
    the model's blocks one by one."""
    fmt = artifact.format
    if dev.profiles_ops(fmt):
        if fmt is Format.PTE:
            from exporters.pte_export import etrecord_path
            from harness.measure.etdump_profile import profile_pte

            return profile_pte(dev, artifact, etrecord_path(artifact.path), threads, protocol, options)
        if fmt is Format.ONNX:
            return profile_onnx(dev, artifact, threads, protocol, options)
        if not dev.runner.is_binary:
            return profile_litert(dev, artifact, threads, protocol, options)
        return profile_binary(dev, artifact, threads, protocol, options)
    if fmt is Format.TFLITE and dev.can_run(fmt):
        from harness.measure.block_profile import profile_tflite_blocks

        if isinstance(spec, FileSource):
            raise ProfileError(
                f"{spec.label}: the LiteRT on '{dev.name}' gives no per-op profile (flopgap's runner reads "
                "ai-edge-litert 2.3's) and a TFLite file has no torch module to cut into timed blocks; install "
                "ai-edge-litert 2.3 there, profile it on a device running benchmark_model, or profile its ONNX form"
            )

        return profile_tflite_blocks(dev, spec, artifact, threads, protocol, options, depth, cache_dir)
    raise ProfileError(
        f"device '{dev.name}' runs {dev.runner}, which cannot profile {fmt.value} models; "
        "profile them on a device with flopgap's runner, or use a TFLite artifact with benchmark_model"
    )


BINARY_KIND = "tflite-ops"
_BRACKETED = re.compile(r"^\[(?P<tensor>.*)\](?::\d+)?$")


def profile_binary(
    dev: Device, artifact: Artifact, threads: int, protocol: Protocol, options: PointOptions | None = None
) -> OpProfile:
    """Per-op TFLite times from the official ``benchmark_model --enable_op_profiling`` (its CSV pulled back).

    Rows are named like the graph account's (``<module path>/<OP_TYPE>``) where the op's output tensor carries a
    litert-torch module path, so they join the FLOP and byte proxies; otherwise they keep the tool's name.
    """
    from harness.proxies.tflite_graph import torch_module_paths

    result = time_model(dev, artifact.path, threads, protocol, options, profile=True)
    if not result.ops:
        raise ProfileError(f"device '{dev.name}': the benchmark binary printed no op profile")
    ops = []
    for row in result.ops:
        match = _BRACKETED.match(row.name)
        paths = torch_module_paths(match.group("tensor") if match else row.name)
        module = paths[-1][0] if paths else None
        ops.append(
            OpTime(
                node_name=f"{module}/{row.op_type}" if module else row.name,
                op_type=row.op_type,
                time_us=row.time_us,
                calls=row.calls,
                module_path=module,
            )
        )
    notes = {"source": f"{dev.runner} --enable_op_profiling (CSV)", "device": dev.name}
    return OpProfile(BINARY_KIND, tuple(ops), median_us(result), notes)


def profile_litert(
    dev: Device, artifact: Artifact, threads: int, protocol: Protocol, options: PointOptions | None = None
) -> OpProfile:
    """XNNPACK's operators timed inside the whole model by flopgap's runner (LiteRT's C API profiler, in a second
    instance of the model after the trial), each joined to the graph's op it runs
    (:func:`~harness.predict.tflite_profile.pair_rows`) and named like the graph account's rows (``<module
    path>/<OP_TYPE>``, the copies of a concatenation summed); an operator no op nearby runs keeps its own name."""
    from harness.predict.tflite_kernels import tflite_kernels
    from harness.predict.tflite_profile import ProfiledOp, pair_rows

    runs = max(MIN_PROFILE_RUNS, protocol.runs)
    result = time_model(dev, artifact.path, threads, protocol, options, profile=True, profile_runs=runs)
    if not result.ops:
        note = result.ops_note or "the runner returned no per-op rows"
        raise ProfileError(f"{artifact.path.name} on '{dev.name}': no profile ({note})")
    kernels = tflite_kernels(artifact.path)
    pairs = pair_rows([ProfiledOp(r.op_type, r.time_us) for r in result.ops], kernels)
    ops: list[OpTime] = []
    at: dict[int, int] = {}  # kernel index -> its row in ops
    for row, k in zip(result.ops, pairs, strict=True):
        if k is None:
            ops.append(OpTime(row.name, row.op_type, row.time_us, row.calls))
        elif k in at:
            ops[at[k]] = replace(ops[at[k]], time_us=ops[at[k]].time_us + row.time_us)
        else:
            at[k] = len(ops)
            k_ = kernels[k]
            ops.append(OpTime(k_.name, k_.op_type, row.time_us, row.calls, module_path=k_.module_path or None))
    notes = {"source": "LiteRT's C API profiler (flopgap's runner)", "profile_runs": runs,
             "runtime_version": result.runtime_version, "operators": len(result.ops), "ops_timed": len(at),
             "ops_in_graph": len(kernels)}  # fmt: skip
    return OpProfile(LITERT_KIND, tuple(ops), median_us(result), notes)


def store_profile(store: Store, point_id: int, profile: OpProfile, trial_id: int | None = None) -> int:
    """Write a profile's rows for a point; returns how many were written."""
    return store.add_op_profile(point_id, profile.ops, trial_id=trial_id)


def has_profile(store: Store, point_id: int) -> bool:
    return not store.op_profiles_frame([point_id]).empty


def time_model(
    dev: Device,
    path: Path,
    threads: int,
    protocol: Protocol,
    options: PointOptions | None = None,
    profile: bool = False,
    profile_runs: int | None = None,
) -> TrialResult:
    """One trial of a model file on ``dev``, per-op rows included when ``profile`` is asked."""
    return dev.measure(path, trial_request(protocol, threads, options, profile=profile, profile_runs=profile_runs))


def median_us(result: TrialResult) -> float:
    centre = result.centre_ns
    if centre is None:
        raise ProfileError("the runner returned no timing")
    return centre / 1e3
