"""The configuration space kernels are sampled from, and the adaptive step that samples more where error is high.

A :class:`KernelConfig` names one kernel to measure in isolation; each type's spec (:mod:`harness.predict.kernel_specs`)
draws it. The space covers
the zoo's and real networks' ranges: feature maps 4-224 pixels, channels 3-2048 bounded so a tensor stays under
~2 M elements (what a 224-pixel mobile network holds), kernel sizes 1-7, strides 1 and 2, groups 2-32 (odd
counts too) with wide groups, narrow ones (2-16 channels each, up to hundreds of them) and depthwise, grouped
kernels 1×1 to 7×7, expansion ratios 1/6-6 on pointwise
convs, SE-style broadcast scales and adds and 1×1 convs on 1×1 maps, the zoo's activations, pooling,
concat/split/shuffle/pad data movement, and a share of tiny kernels (4-14 pixels, 8-32 channels) whose time is
mostly per-invoke cost, as in narrow nets. Types are drawn with weights that follow
where real models spend their time (convolutions first). Each config's ``key`` is canonical JSON, so the same
seed gives the same probes and a rerun of a build finds its points again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from devices.vocabulary import Runtime
from harness.predict.kernel_config import MAX_ELEMENTS, MAX_MACS, RESOLUTIONS, KernelConfig
from harness.predict.kernel_specs import CONV_ACTIVATIONS, GROUPS, SPECS, Draw, Near, channels
from harness.predict.kernels import KernelType

__all__ = ["GROUPS", "RESOLUTIONS", "KernelConfig", "kernel_types", "neighbours", "sample", "stratified", "valid"]


def kernel_types(runtime: Runtime) -> list[KernelType]:
    """The types ``runtime``'s graphs hold, in draw order."""
    return [t for t, spec in SPECS.items() if spec.writes(runtime)]


def sample(rng: np.random.Generator, runtime: Runtime, n: int) -> list[KernelConfig]:
    """``n`` distinct configs drawn from the space (types by weight; valid for ``runtime``), stratified within each
    type: a type's configs are reordered so its strata (:func:`stratum`) take turns, so a build stopped after a few
    hundred probes has seen every group count, kernel size and stride of each type, not only the lucky draws (a
    run of 600 probes once held two grouped convs with 8 groups and none with 16)."""
    types = kernel_types(runtime)
    weights = np.array([SPECS[t].weight for t in types], dtype=float)
    out: dict[str, KernelConfig] = {}
    attempts = 0
    while len(out) < n and attempts < 50 * n:
        attempts += 1
        kind = types[int(rng.choice(len(types), p=weights / weights.sum()))]
        cfg = _draw(rng, kind, runtime)
        if valid(cfg):
            out.setdefault(cfg.key, cfg)
    return stratified(list(out.values()))


def stratum(cfg: KernelConfig) -> tuple[object, ...]:
    """What a regressor cannot interpolate across: the op's variant, kernel size, stride and groups (a grouped conv's
    narrow width or group count)."""
    spec = SPECS[cfg.type]
    groups: object = 0
    if spec.groups_stratum is not None:
        groups = spec.groups_stratum(cfg)
    elif spec.grouped:
        groups = cfg.groups
    return (cfg.variant, cfg.kernel, cfg.stride, groups, cfg.act if spec.act_stratum else "")


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
    return SPECS[cfg.type].valid(cfg)


def _resolution(rng: np.random.Generator) -> int:
    return int(rng.choice(RESOLUTIONS))


# Narrow nets of many tiny kernels: a few thousand elements each, whose time is mostly the runtime's per-invoke cost
# (a share of every type's draws: 4-14 pixels, 8-32 channels in).
TINY_SHARE = 0.1
TINY_RESOLUTIONS = tuple(r for r in RESOLUTIONS if r <= 14)
TINY_CHANNELS = 32


def _draw(rng: np.random.Generator, kind: KernelType, runtime: Runtime) -> KernelConfig:
    tiny = rng.random() < TINY_SHARE
    h = int(rng.choice(TINY_RESOLUTIONS)) if tiny else _resolution(rng)
    cin = channels(rng, h, h, high=TINY_CHANNELS) if tiny else channels(rng, h, h)
    stride = 2 if rng.random() < 0.25 and h >= 8 else 1
    act = str(rng.choice(CONV_ACTIVATIONS.get(runtime, CONV_ACTIVATIONS[Runtime.LITERT])))
    fused_add = runtime is Runtime.ONNXRUNTIME and stride == 1 and rng.random() < 0.15
    return SPECS[kind].draw(Draw(rng, runtime, h, cin, stride, act, fused_add))


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
        cand = SPECS[cfg.type].near(cfg, Near(cin, cout, h))
        if cand.key != cfg.key and valid(cand):
            out.setdefault(cand.key, cand)
    return list(out.values())


def _scaled(c: int, scale: float, cfg: KernelConfig) -> int:
    step = max(cfg.groups if SPECS[cfg.type].grouped else 1, 1)
    if c <= 3:
        return c
    return max(step, round(c * scale / step) * step)
