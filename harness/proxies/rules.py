"""Handler builders shared by the ONNX and TFLite tables (element-wise, activations, data movement, pooling)."""

from __future__ import annotations

import math

from harness.proxies.categories import ACTIVATION_FLOPS, BINARY_FLOPS, QUANT_FLOPS, Category
from harness.proxies.costs import Handler, Node, Work


def binary(args: tuple[int, ...] = ()) -> Handler:
    """Element-wise binary op (broadcasting allowed): 1 FLOP per output element."""

    def handle(node: Node) -> Work:
        return Work(Category.ELEMENTWISE, flops=BINARY_FLOPS * node.out_numel(), args=args)

    return handle


def unary(flops_per_element: int, category: Category = Category.ELEMENTWISE) -> Handler:
    def handle(node: Node) -> Work:
        return Work(category, flops=flops_per_element * node.out_numel())

    return handle


def activation(kind: str, args: tuple[int, ...] = (), weights: tuple[int, ...] = ()) -> Handler:
    """An activation with the per-element count of :data:`ACTIVATION_FLOPS` (``weights``: a PReLU slope)."""
    per = ACTIVATION_FLOPS[kind]

    def handle(node: Node) -> Work:
        return Work(Category.ACTIVATION, flops=per * node.out_numel(), args=args, weights=weights)

    return handle


def movement(
    category: Category, args: tuple[int, ...] = (), *, is_view: bool = False, touched_only: bool = False
) -> Handler:
    """Zero-FLOP ops that copy (or, for views, could alias) their data."""

    def handle(node: Node) -> Work:
        return Work(category, args=args, is_view=is_view, touched_only=touched_only)

    return handle


def gather(args: tuple[int, ...] = ()) -> Handler:
    """A gather that permutes a whole tensor (a channel shuffle) is a shuffle; a smaller pick is a slice."""

    def handle(node: Node) -> Work:
        permutes = node.out_numel() == node.in_numel(0)
        category = Category.CHANNEL_SHUFFLE if permutes else Category.RESHAPE_CONCAT_SPLIT_SLICE
        return Work(category, args=args, touched_only=True)

    return handle


def quantize(args: tuple[int, ...] = ()) -> Handler:
    def handle(node: Node) -> Work:
        return Work(Category.QUANTIZE, flops=QUANT_FLOPS * node.out_numel(), args=args)

    return handle


def reduce_mean(args: tuple[int, ...] = ()) -> Handler:
    """A mean over axes (global pool when over H and W): one add per input element."""

    def handle(node: Node) -> Work:
        category = Category.GLOBAL_POOL_SE if _is_global(node) else Category.POOLING
        return Work(category, flops=node.in_numel(0), args=args)

    return handle


def global_pool(node: Node) -> Work:
    return Work(Category.GLOBAL_POOL_SE, flops=node.in_numel(0))


def pool_work(node: Node, kernel: tuple[int, int], args: tuple[int, ...] = ()) -> Work:
    """Windowed pooling: kh·kw FLOPs per output element."""
    return Work(Category.POOLING, flops=math.prod(kernel) * node.out_numel(), args=args)


def _is_global(node: Node) -> bool:
    """A reduction whose output keeps at most N·C elements of an image-shaped (rank 4) input."""
    shape = node.shape(0)
    return len(shape) == 4 and node.out_numel() <= shape[0] * max(shape[1], shape[3])
