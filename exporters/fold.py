"""Fold each BatchNorm into the convolution that feeds it, in torch, before any export.

Folding here (rather than leaving it to a converter's graph rewrite) keeps the fused op attributed to the conv
module (``features.3.conv``) in every format, and gives ONNX and TFLite the same graph to start from. Pairs are
found on the ``torch.export`` graph, so only a conv whose sole consumer is a BatchNorm is folded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_BN_TARGETS = {
    torch.ops.aten.batch_norm.default,
    torch.ops.aten._native_batch_norm_legit_no_training.default,
}
_CONV_TARGETS = {torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default}
_TRANSPOSE_TARGETS = {torch.ops.aten.permute.default, torch.ops.aten.transpose.int, torch.ops.aten.t.default}


@dataclass(frozen=True)
class Folded:
    """The folded copy of the model and what the source graph held."""

    model: nn.Module
    pairs: tuple[tuple[str, str], ...]  # (conv path, bn path) for each fold
    source_transposes: int  # permute/transpose calls the torch program itself makes


def fold_batchnorm(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> Folded:
    """Return an eval-mode copy of ``model`` with every conv → BatchNorm pair fused into one conv."""
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        program = torch.export.export(model, (example,) if isinstance(example, torch.Tensor) else tuple(example))
    sig = program.graph_signature
    owner = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
    calls: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []
    transposes = 0
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target in _TRANSPOSE_TARGETS:
            transposes += 1
        if node.target in _CONV_TARGETS:
            path = _module_of(owner, node.args[1])
            if path is not None:
                calls[path] = calls.get(path, 0) + 1
        if node.target not in _BN_TARGETS:
            continue
        conv = node.args[0]
        if not (isinstance(conv, torch.fx.Node) and conv.target in _CONV_TARGETS and len(conv.users) == 1):
            continue
        conv_path = _module_of(owner, conv.args[1])
        bn_path = _module_of(owner, node.args[3])  # running_mean: present whether or not the BN is affine
        if conv_path is not None and bn_path is not None:
            pairs.append((conv_path, bn_path))
    done = []
    for conv_path, bn_path in pairs:
        conv_mod, bn_mod = model.get_submodule(conv_path), model.get_submodule(bn_path)
        # A module called twice (shared weights) cannot be rewritten for one call site only.
        if calls.get(conv_path, 0) != 1 or [b for _, b in pairs].count(bn_path) != 1:
            continue
        if not (isinstance(conv_mod, nn.Conv2d) and isinstance(bn_mod, nn.BatchNorm2d)):
            continue
        _replace(model, conv_path, fuse_conv_bn_eval(conv_mod, bn_mod))
        _replace(model, bn_path, nn.Identity())
        done.append((conv_path, bn_path))
    return Folded(model=model, pairs=tuple(done), source_transposes=transposes)


def _module_of(owner: dict[str, str], arg: object) -> str | None:
    if not isinstance(arg, torch.fx.Node) or arg.name not in owner:
        return None
    return owner[arg.name].rpartition(".")[0]


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, new)
