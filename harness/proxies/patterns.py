"""Op patterns that span several nodes of an exported graph: the channel shuffle.

A channel shuffle written as ``reshape(n, g, c/g, h, w) → transpose(1, 2) → reshape(n, c, h, w)`` (or the same on
an NHWC view, splitting and swapping the last axis) is three ops in every exported graph. All three are the
shuffle: the reshapes are views in PyTorch, but a runtime runs each as an op of its own (ONNX Runtime's profile
times every one of them), so counting only the transpose undercounts what the shuffle costs. A transpose that is
not the middle of such a chain only changes how a tensor is laid out, e.g. the NHWC↔NCHW pair a TFLite conversion
wraps around an NCHW-written shuffle: category ``layout``.

:func:`channel_shuffles` finds the chains in a graph by its tensors (each intermediate used once, the last reshape
giving back the input's shape). :func:`legacy_channel_shuffle_rows` finds them in a stored account frame written
before shuffles were grouped, where only graph order and output shapes are left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.proxies.categories import Category

if TYPE_CHECKING:
    from harness.proxies.costs import Node

RESHAPES = frozenset({"Reshape", "RESHAPE"})
TRANSPOSES = frozenset({"Transpose", "TRANSPOSE"})
GATHERS = frozenset({"Gather", "GatherND", "GatherElements", "GATHER", "GATHER_ND"})
# Accounts written before shuffles were grouped called every transpose (and a permuting gather) this.
LEGACY_SHUFFLE_TRANSPOSE = "shuffle_transpose"

Shape = tuple[int, ...]


def split_axis(whole: Shape, split: Shape) -> int | None:
    """The axis ``a`` of ``whole`` that ``split`` cuts in two (``split[a]·split[a+1] == whole[a]``, both > 1, every
    other axis kept); None when ``split`` is not such a cut."""
    if len(split) != len(whole) + 1:
        return None
    for a in range(len(whole)):
        head, tail = split[:a], split[a + 2 :]
        if head == whole[:a] and tail == whole[a + 1 :]:
            g, per = split[a], split[a + 1]
            return a if g > 1 and per > 1 and g * per == whole[a] else None
    return None


def is_channel_shuffle(whole: Shape, split: Shape, swapped: Shape) -> bool:
    """Whether reshaping ``whole`` to ``split`` and transposing to ``swapped`` is a group shuffle of one axis."""
    a = split_axis(whole, split)
    if a is None:
        return False
    return swapped == (*split[:a], split[a + 1], split[a], *split[a + 2 :])


def _swap_perm(rank: int, a: int) -> list[int]:
    perm = list(range(rank))
    perm[a], perm[a + 1] = perm[a + 1], perm[a]
    return perm


def channel_shuffles(nodes: Sequence[Node]) -> list[tuple[int, int, int]]:
    """``(reshape, transpose, reshape)`` node indexes of every channel shuffle in a graph, in graph order."""
    producer: dict[int, Node] = {}
    users: dict[int, int] = {}
    for node in nodes:
        for out in node.outputs:
            producer[id(out)] = node
        for t in node.inputs:
            if t is not None:
                users[id(t)] = users.get(id(t), 0) + 1
    consumer = {id(t): node for node in nodes for t in node.inputs if t is not None}
    found = []
    for node in nodes:
        if node.op_type not in TRANSPOSES or not node.inputs or node.inputs[0] is None or not node.outputs:
            continue
        split_t, swapped_t = node.inputs[0], node.outputs[0]
        first = producer.get(id(split_t))
        last = consumer.get(id(swapped_t))
        if first is None or last is None or first.op_type not in RESHAPES or last.op_type not in RESHAPES:
            continue
        if users.get(id(split_t)) != 1 or users.get(id(swapped_t)) != 1 or not first.inputs or not last.outputs:
            continue
        source = first.inputs[0]
        shapes = (source.shape if source else None, split_t.shape, swapped_t.shape, last.outputs[0].shape)
        whole, split, swapped, merged = shapes
        if whole is None or split is None or swapped is None or merged != whole:
            continue
        if not is_channel_shuffle(whole, split, swapped):
            continue
        perm = node.attrs.get("perm")  # ONNX keeps it as an attribute; a TFLite perm is a tensor (shapes suffice)
        a = split_axis(whole, split)
        if perm is not None and a is not None and list(perm) != _swap_perm(len(split), a):
            continue
        found.append((first.index, node.index, last.index))
    return found


def channel_shuffle_categories(nodes: Sequence[Node]) -> dict[int, Category]:
    """Node index → ``channel_shuffle`` for every op of every shuffle chain (for :func:`costs.cost_nodes`)."""
    return {i: Category.CHANNEL_SHUFFLE for chain in channel_shuffles(nodes) for i in chain}


def _shape(value: Any) -> Shape | None:
    if isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
        return tuple(int(v) for v in value)
    return None


def legacy_channel_shuffle_rows(frame: pd.DataFrame) -> set[int]:
    """Row labels of ``frame`` (a stored account, one row per op in graph order with ``op_type`` and ``out_shape``)
    that form a shuffle chain: a transpose right between two reshapes in graph order whose output shapes make it a
    group shuffle (the last reshape restores the shape the first one split). Without tensor names this trusts
    graph order, which the exporters keep topological with a shuffle's three ops next to each other."""
    if not {"op_type", "out_shape"} <= set(frame.columns):
        return set()
    ordered = frame.sort_values("index") if "index" in frame.columns else frame
    labels = list(ordered.index)
    op_types = ordered["op_type"].astype(str).tolist()
    shapes = [_shape(v) for v in ordered["out_shape"].tolist()]
    rows: set[int] = set()
    for k in range(1, len(labels) - 1):
        if op_types[k] not in TRANSPOSES or op_types[k - 1] not in RESHAPES or op_types[k + 1] not in RESHAPES:
            continue
        split, swapped, merged = shapes[k - 1], shapes[k], shapes[k + 1]
        if (
            split is not None
            and swapped is not None
            and merged is not None
            and is_channel_shuffle(merged, split, swapped)
        ):
            rows.update(labels[k - 1 : k + 2])
    return rows


def restate_legacy_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """A stored account written with the old ``shuffle_transpose`` category, in today's categories: the shuffle
    chains' three ops ``channel_shuffle``, other transposes ``layout``, a permuting gather ``channel_shuffle``."""
    if "category" not in frame.columns or not (frame["category"] == LEGACY_SHUFFLE_TRANSPOSE).any():
        return frame
    out = frame.copy()
    legacy = out["category"] == LEGACY_SHUFFLE_TRANSPOSE
    gathers = out["op_type"].astype(str).isin(GATHERS)
    out.loc[legacy & ~gathers, "category"] = Category.LAYOUT.value  # transposes, depth-to-space
    out.loc[legacy & gathers, "category"] = Category.CHANNEL_SHUFFLE.value
    shuffle = list(legacy_channel_shuffle_rows(out))
    out.loc[shuffle, "category"] = Category.CHANNEL_SHUFFLE.value
    return out
