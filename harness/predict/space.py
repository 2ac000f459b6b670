"""The configuration space kernels are sampled from, and the adaptive step that samples more where error is high.

A :class:`KernelConfig` names one kernel to measure in isolation (a probe model holds just it). The space covers
the zoo's and real networks' ranges: feature maps 4-224 pixels, channels 3-2048 bounded so a tensor stays under
~2 M elements (what a 224-pixel mobile network holds), kernel sizes 1-7, strides 1 and 2, groups 2-64 and
depthwise, expansion ratios 1/6-6 on pointwise convs, SE-style broadcast scales and 1×1 convs on 1×1 maps,
the zoo's activations, pooling, concat/split/shuffle/pad data movement. Types are drawn with weights that follow
where real models spend their time (convolutions first). Each config's ``key`` is canonical JSON, so the same
seed gives the same probes and a rerun of a build finds its points again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from devices.vocabulary import Runtime
from harness.predict.kernels import KernelType

RESOLUTIONS = (4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224)
MAX_ELEMENTS = 2_000_000  # largest activation tensor of a probe (a 224-pixel MobileNet's is 1.6 M)
MAX_MACS = 600_000_000  # largest probe conv: ResNet-50's biggest layers are ~0.2 GMACs, keeps each probe short
# Activations a conv carries: LiteRT's converter fuses ReLU and ReLU6; ORT's NCHWc convs also take hard-swish (the
# MobileNetV3 convs) and an SE gate's sigmoid / hard-sigmoid on its 1x1 convs.
CONV_ACTIVATIONS: dict[Runtime, tuple[str, ...]] = {
    Runtime.ONNXRUNTIME: ("", "relu", "relu6", "hardswish"),
    Runtime.LITERT: ("", "relu", "relu6"),
}
GATE_ACTIVATIONS: dict[Runtime, tuple[str, ...]] = {
    Runtime.ONNXRUNTIME: ("", "relu", "sigmoid", "hardsigmoid"),
    Runtime.LITERT: ("", "relu"),
}
# Standalone activations: ORT runs swish (x * sigmoid(x), EfficientNet's) as one QuickGelu kernel; the converter
# writes it as LOGISTIC then MUL (an activation and an element-wise probe), and hard-sigmoid has no builtin.
ACTIVATIONS: dict[Runtime, tuple[str, ...]] = {
    Runtime.ONNXRUNTIME: ("relu", "relu6", "sigmoid", "hardsigmoid", "hardswish", "swish", "swish"),
    Runtime.LITERT: ("relu", "relu6", "sigmoid", "hardswish"),
}
GROUPS = (2, 3, 4, 8, 16, 32)

# How often each type is drawn (relative); a runtime only draws the types its graphs contain.
_WEIGHTS: dict[KernelType, float] = {
    KernelType.POINTWISE_CONV: 24,
    KernelType.DEPTHWISE_CONV: 18,
    KernelType.DENSE_CONV: 8,
    KernelType.GROUPED_CONV: 12,
    KernelType.FULLY_CONNECTED: 4,
    KernelType.ELEMENTWISE: 7,
    KernelType.ACTIVATION: 5,
    KernelType.POOLING: 3,
    KernelType.GLOBAL_POOL: 3,
    KernelType.CONCAT: 4,
    KernelType.SPLIT: 3,
    KernelType.TRANSPOSE: 5,
    KernelType.RESHAPE: 2,
    KernelType.PAD: 3,
    KernelType.GATHER: 1,
}
_ONNX_ONLY = {KernelType.GATHER}
_TFLITE_ONLY = {KernelType.PAD}  # litert-torch writes explicit pads before strided convs and pools; ORT has none


@dataclass(frozen=True)
class KernelConfig:
    """One kernel to probe. ``h``/``w``/``cin`` describe its (first) input; ``variant`` picks the op within a
    type (activation function, pool kind, shuffle or layout transpose, broadcast, SE-style 1×1 conv...)."""

    type: KernelType
    cin: int
    cout: int
    h: int
    w: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act: str = ""
    variant: str = ""
    fused_add: bool = False

    @property
    def key(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @property
    def h_out(self) -> int:
        return (self.h - 1) // self.stride + 1

    @property
    def w_out(self) -> int:
        return (self.w - 1) // self.stride + 1

    @property
    def macs(self) -> int:
        if self.type in (KernelType.DENSE_CONV, KernelType.POINTWISE_CONV, KernelType.GROUPED_CONV):
            return self.h_out * self.w_out * self.cout * self.cin // self.groups * self.kernel**2
        if self.type is KernelType.DEPTHWISE_CONV:
            return self.h_out * self.w_out * self.cin * self.kernel**2
        if self.type is KernelType.FULLY_CONNECTED:
            return self.cin * self.cout
        return 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = self.type.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelConfig:
        return cls(**{**data, "type": KernelType(data["type"])})


def kernel_types(runtime: Runtime) -> list[KernelType]:
    excluded = _TFLITE_ONLY if runtime is Runtime.ONNXRUNTIME else _ONNX_ONLY
    return [t for t in _WEIGHTS if t not in excluded]


def sample(rng: np.random.Generator, runtime: Runtime, n: int) -> list[KernelConfig]:
    """``n`` distinct configs drawn from the space (types by weight; valid for ``runtime``), stratified within each
    type: a type's configs are reordered so its strata (:func:`stratum`) take turns, so a build stopped after a few
    hundred probes has seen every group count, kernel size and stride of each type, not only the lucky draws (a
    run of 600 probes once held two grouped convs with 8 groups and none with 16)."""
    types = kernel_types(runtime)
    weights = np.array([_WEIGHTS[t] for t in types], dtype=float)
    out: dict[str, KernelConfig] = {}
    attempts = 0
    while len(out) < n and attempts < 50 * n:
        attempts += 1
        kind = types[int(rng.choice(len(types), p=weights / weights.sum()))]
        cfg = _draw(rng, kind, runtime)
        if cfg is not None and valid(cfg):
            out.setdefault(cfg.key, cfg)
    return stratified(list(out.values()))


def stratum(cfg: KernelConfig) -> tuple[object, ...]:
    """What a regressor cannot interpolate across: the op's variant, kernel size, stride and group count."""
    groups = cfg.groups if cfg.type in (KernelType.GROUPED_CONV, KernelType.TRANSPOSE, KernelType.RESHAPE) else 0
    return (cfg.variant, cfg.kernel, cfg.stride, groups, cfg.act if cfg.type is KernelType.ACTIVATION else "")


def stratified(configs: Sequence[KernelConfig]) -> list[KernelConfig]:
    """``configs`` with each type's positions kept (the type mix stays as drawn) but its configs reordered so its
    strata take turns: the k-th config of every stratum before the (k+1)-th of any, draw order within a round."""
    positions: dict[KernelType, list[int]] = {}
    for i, cfg in enumerate(configs):
        positions.setdefault(cfg.type, []).append(i)
    out = list(configs)
    for idx in positions.values():
        seen: dict[tuple[object, ...], int] = {}
        ranked = []
        for i in idx:
            key = stratum(configs[i])
            ranked.append((seen.get(key, 0), i))
            seen[key] = seen.get(key, 0) + 1
        for slot, (_, i) in zip(idx, sorted(ranked), strict=True):
            out[slot] = configs[i]
    return out


def valid(cfg: KernelConfig) -> bool:
    """Within the space's size bounds, and the channels divide as the op needs."""
    if min(cfg.cin, cfg.cout, cfg.h, cfg.w) < 1 or cfg.cin * cfg.h * cfg.w > MAX_ELEMENTS:
        return False
    if cfg.cout * cfg.h_out * cfg.w_out > MAX_ELEMENTS or cfg.macs > MAX_MACS:
        return False
    if cfg.type is KernelType.GROUPED_CONV and (
        cfg.cin % cfg.groups or cfg.cout % cfg.groups or not 2 <= cfg.groups < cfg.cin
    ):  # groups == cin is a depthwise conv (with a channel multiplier)
        return False
    if cfg.type in (KernelType.TRANSPOSE, KernelType.RESHAPE, KernelType.GATHER) and cfg.variant == "shuffle":
        return cfg.cin % cfg.groups == 0
    if cfg.type is KernelType.SPLIT and cfg.cin < 2:
        return False
    return cfg.h >= cfg.kernel or cfg.type not in (KernelType.POOLING,)


def _channels(rng: np.random.Generator, h: int, w: int, low: int = 8, high: int = 2048) -> int:
    """Log-uniform channels, mostly multiples of 8 (as real widths are), capped by the tensor-size bound."""
    cap = max(low, min(high, MAX_ELEMENTS // (h * w)))
    c = float(np.exp(rng.uniform(math.log(low), math.log(cap))))
    return max(1, round(c / 8) * 8 if rng.random() < 0.7 and c >= 8 else round(c))


def _resolution(rng: np.random.Generator) -> int:
    return int(rng.choice(RESOLUTIONS))


def _draw(rng: np.random.Generator, kind: KernelType, runtime: Runtime) -> KernelConfig | None:
    h = _resolution(rng)
    cin = _channels(rng, h, h)
    stride = 2 if rng.random() < 0.25 and h >= 8 else 1
    act = str(rng.choice(CONV_ACTIVATIONS.get(runtime, CONV_ACTIVATIONS[Runtime.LITERT])))
    fused_add = runtime is Runtime.ONNXRUNTIME and stride == 1 and rng.random() < 0.15
    if kind is KernelType.POINTWISE_CONV:
        ratio = float(rng.choice([1 / 6, 1 / 4, 1 / 3, 1 / 2, 1, 1, 2, 3, 4, 6]))
        cout = max(8, int(round(cin * ratio / 8) * 8)) if rng.random() < 0.6 else _channels(rng, h, h)
        stride = 1 if rng.random() < 0.9 else 2
        return KernelConfig(kind, cin, cout, h, h, 1, stride, 1, act, fused_add=fused_add and cin == cout)
    if kind is KernelType.DEPTHWISE_CONV:
        k = int(rng.choice([3, 3, 3, 5, 7]))
        return KernelConfig(kind, cin, cin, h, h, k, stride, cin, act)
    if kind is KernelType.DENSE_CONV:
        k = int(rng.choice([3, 3, 5, 7]))
        first = rng.random() < 0.2  # a stem: RGB in
        c_in = 3 if first else _channels(rng, h, h, high=512)
        cout = _channels(rng, h, h, high=512)
        return KernelConfig(kind, c_in, cout, h, h, k, stride if not first else 2, 1, act, fused_add=fused_add)
    if kind is KernelType.GROUPED_CONV:
        g = int(rng.choice(GROUPS))
        k = int(rng.choice([1, 1, 3]))
        per_in = max(1, cin // g)
        per_out = max(1, _channels(rng, h, h) // g)
        return KernelConfig(kind, per_in * g, per_out * g, h, h, k, stride if k == 3 else 1, g, act)
    if kind is KernelType.FULLY_CONNECTED:
        cout = _channels(rng, 1, 1, high=2048)
        variant = "conv" if rng.random() < 0.6 else "gemm"  # SE's 1x1 convs on a 1x1 map, or a classifier
        c_in = _channels(rng, 1, 1, high=2048)
        gate = str(rng.choice(GATE_ACTIVATIONS.get(runtime, GATE_ACTIVATIONS[Runtime.LITERT])))
        return KernelConfig(kind, c_in, cout, 1, 1, variant=variant, act=gate if variant == "conv" else "")
    if kind is KernelType.ELEMENTWISE:
        variant = str(rng.choice(["add", "add", "mul", "mul_broadcast"]))
        eact = "relu" if variant == "add" and rng.random() < 0.3 else ""
        return KernelConfig(kind, cin, cin, h, h, variant=variant, act=eact)
    if kind is KernelType.ACTIVATION:
        acts = ACTIVATIONS.get(runtime, ACTIVATIONS[Runtime.LITERT])
        return KernelConfig(kind, cin, cin, h, h, act=str(rng.choice(acts)))
    if kind is KernelType.POOLING:
        variant = str(rng.choice(["max", "avg"]))
        k = int(rng.choice([2, 3]))
        return KernelConfig(kind, cin, cin, h, h, k, 2, variant=variant)
    if kind is KernelType.GLOBAL_POOL:
        return KernelConfig(kind, cin, cin, h, h, variant=str(rng.choice(["mean", "global"])))
    if kind is KernelType.CONCAT:
        other = _channels(rng, h, h)
        return KernelConfig(kind, cin, cin + other, h, h)
    if kind is KernelType.SPLIT:
        return KernelConfig(
            kind, cin - cin % 2, (cin - cin % 2) // 2, h, h, variant=str(rng.choice(["split", "slice"]))
        )
    if kind in (KernelType.TRANSPOSE, KernelType.RESHAPE, KernelType.GATHER):
        g = int(rng.choice([2, 2, 3, 4, 8]))
        c = max(g, cin - cin % g)
        variant = (
            "shuffle"
            if kind is not KernelType.TRANSPOSE or rng.random() < 0.5
            else str(rng.choice(["to_nchw", "to_nhwc"]))
        )
        return KernelConfig(kind, c, c, h, h, groups=g, variant=variant)
    if kind is KernelType.PAD:
        return KernelConfig(
            kind, cin, cin, h, h, kernel=int(rng.choice([2, 3])), variant=str(rng.choice(["zero", "min"]))
        )
    return None


def neighbours(rng: np.random.Generator, cfg: KernelConfig, n: int) -> list[KernelConfig]:
    """``n`` valid configs near ``cfg``: channels and resolution scaled by up to ×1.5, one at a time or both,
    type, kernel, stride and variant kept (nn-Meter's finer sampling around a poorly predicted config)."""
    out: dict[str, KernelConfig] = {}
    attempts = 0
    while len(out) < n and attempts < 30 * n:
        attempts += 1
        scale_c = float(np.exp(rng.uniform(-0.4, 0.4)))
        h = int(min(RESOLUTIONS, key=lambda r: abs(r - cfg.h * float(np.exp(rng.uniform(-0.4, 0.4))))))
        cin = _scaled(cfg.cin, scale_c, cfg)
        cout = _scaled(cfg.cout, scale_c, cfg)
        if cfg.type is KernelType.DEPTHWISE_CONV:
            cand = replace(cfg, cin=cin, cout=cin, h=h, w=h, groups=cin)
        elif cfg.type is KernelType.SPLIT:
            cin -= cin % 2
            cand = replace(cfg, cin=cin, cout=cin // 2, h=h, w=h)
        elif cfg.type is KernelType.CONCAT:
            cand = replace(cfg, cin=cin, cout=max(cout, cin + 1), h=h, w=h)
        elif cfg.type in (KernelType.ELEMENTWISE, KernelType.ACTIVATION, KernelType.POOLING, KernelType.GLOBAL_POOL):
            cand = replace(cfg, cin=cin, cout=cin, h=h, w=h)
        elif cfg.type is KernelType.FULLY_CONNECTED:
            cand = replace(cfg, cin=cin, cout=cout)
        else:
            cand = replace(cfg, cin=cin, cout=cout if cfg.type is not KernelType.TRANSPOSE else cin, h=h, w=h)
        if cand.key != cfg.key and valid(cand):
            out.setdefault(cand.key, cand)
    return list(out.values())


def _scaled(c: int, scale: float, cfg: KernelConfig) -> int:
    step = cfg.groups if cfg.type in (KernelType.GROUPED_CONV, KernelType.TRANSPOSE, KernelType.RESHAPE) else 1
    step = max(step, 1)
    if c <= 3:
        return c
    return max(step, round(c * scale / step) * step)


def by_type(configs: Sequence[KernelConfig]) -> dict[KernelType, int]:
    counts: dict[KernelType, int] = {}
    for cfg in configs:
        counts[cfg.type] = counts.get(cfg.type, 0) + 1
    return counts
