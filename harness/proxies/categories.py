"""Op categories and the per-element FLOP conventions both graph readers share.

Conventions (one place, so ONNX and TFLite rows agree):

- 1 MAC (multiply-accumulate) = 2 FLOPs. ``macs`` is only non-zero for convolutions, fully connected layers and
  matrix products (the papers' convention, as :mod:`harness.zoo.counting`); a bias add is folded into the
  accumulation and not counted.
- conv MACs = output elements × Cin/G × kh × kw; fully connected / MatMul MACs = output elements × K (inputs).
- element-wise binary (add, sub, mul, div, max, min): 1 FLOP per output element.
- activations: FLOPs per element from :data:`ACTIVATION_FLOPS` below.
- pooling: the window size per output element (avg: the adds, the divide not counted; max: the compares);
  a global pool or spatial mean reads every input element once: FLOPs = input elements.
- transpose, reshape, concat, split, slice, gather, pad, cast: 0 FLOPs (but they move bytes).
- a channel shuffle is the whole reshape → transpose → reshape (or one gather that permutes every channel): all
  of its ops are ``channel_shuffle`` (:mod:`harness.proxies.patterns` finds them). Any other transpose, and the
  layout conversions a runtime inserts (ONNX Runtime's NCHWc ``ReorderInput`` / ``ReorderOutput``, see
  :mod:`harness.proxies.runtime_ops`), is ``layout``: it only changes how a tensor sits in memory.
- quantize / dequantize: :data:`QUANT_FLOPS` per element (scale and zero point; rounding and saturation free).
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    DENSE_CONV = "dense_conv"
    POINTWISE_CONV = "pointwise_conv"
    GROUPED_CONV = "grouped_conv"
    DEPTHWISE_CONV = "depthwise_conv"
    FULLY_CONNECTED = "fully_connected"
    CHANNEL_SHUFFLE = "channel_shuffle"
    LAYOUT = "layout"
    RESHAPE_CONCAT_SPLIT_SLICE = "reshape_concat_split_slice"
    ELEMENTWISE = "elementwise"
    ACTIVATION = "activation"
    POOLING = "pooling"
    GLOBAL_POOL_SE = "global_pool_se"
    PAD = "pad"
    QUANTIZE = "quantize"
    OTHER = "other"


FLOPS_PER_MAC = 2

# FLOPs per output element. sigmoid = negate, exp, add 1, divide; hard-sigmoid = x/6 + 1/2 (mul, add), then
# min and max; hard-swish and swish add one multiply by x; tanh counted like sigmoid.
ACTIVATION_FLOPS: dict[str, int] = {
    "relu": 1,
    "relu6": 2,  # min and max
    "relu_n1_to_1": 2,
    "clip": 2,
    "leaky_relu": 2,  # compare and multiply
    "prelu": 2,
    "elu": 4,
    "sigmoid": 4,
    "tanh": 4,
    "hardsigmoid": 4,
    "hardswish": 5,
    "swish": 5,
    "softmax": 5,  # max-subtract, exp, sum, divide (+ the max search)
}

BINARY_FLOPS = 1
QUANT_FLOPS = 2  # quantize: divide by scale, add zero point; dequantize: subtract zero point, multiply by scale


def conv_category(cin: int, cout: int, groups: int, kernel: tuple[int, int], in_spatial: int) -> Category:
    """Category of a 2-D convolution from its channel counts, groups, kernel and input H·W.

    depthwise: G = Cin > 1 (a channel multiplier Cout = k·Cin allowed); grouped: 1 < G < Cin (any kernel, so a
    grouped 1×1 is grouped); a 1×1 on a 1×1 map (an SE or head FC written as a conv) is fully connected; other
    G = 1 convs are pointwise (1×1) or dense.
    """
    if groups > 1 and groups == cin and cout % cin == 0:
        return Category.DEPTHWISE_CONV
    if groups > 1:
        return Category.GROUPED_CONV
    if kernel == (1, 1):
        return Category.FULLY_CONNECTED if in_spatial == 1 else Category.POINTWISE_CONV
    return Category.DENSE_CONV
