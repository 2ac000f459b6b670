"""The kernel-type table: every type the space draws has one spec; a broadcast is one spec plus this test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devices.vocabulary import Precision, Runtime
from exporters.export import export
from harness.predict.extract import extract_kernels
from harness.predict.kernel_specs import SPECS
from harness.predict.kernels import FEATURES, KernelType, broadcast_or
from harness.predict.probes import probe_artifact
from harness.predict.space import KernelConfig, kernel_types, sample, valid
from harness.zoo.registry import resolve

K = KernelType


def test_every_drawable_kernel_type_has_a_spec_that_writes_some_format() -> None:
    # REORDER and OTHER exist only where a runtime adds or renames nodes: nothing to probe in isolation
    assert set(SPECS) == set(KernelType) - {K.REORDER, K.OTHER}
    assert all(spec.onnx is not None or spec.tflite is not None for spec in SPECS.values())
    assert K.GATHER not in kernel_types(Runtime.LITERT) and K.PAD not in kernel_types(Runtime.ONNXRUNTIME)


def test_an_elementwise_op_is_a_broadcast_only_when_its_inputs_differ_in_size() -> None:
    assert broadcast_or(K.ELEMENTWISE, [(1, 96, 28, 28), (1, 96, 1, 1)]) is K.BROADCAST
    assert broadcast_or(K.ELEMENTWISE, [(1, 96, 28, 28), (1, 96, 28, 28)]) is K.ELEMENTWISE
    assert broadcast_or(K.ELEMENTWISE, [(1, 96, 28, 28)]) is K.ELEMENTWISE  # a constant operand is no input
    assert broadcast_or(K.CONCAT, [(1, 96, 28, 28), (1, 8, 28, 28)]) is K.CONCAT


@pytest.mark.parametrize("runtime", [Runtime.ONNXRUNTIME, Runtime.LITERT])
@pytest.mark.parametrize("variant", ["mul", "add"])
def test_a_broadcast_probe_runs_as_one_broadcast_kernel(runtime: Runtime, variant: str, tmp_path: Path) -> None:
    cfg = KernelConfig(K.BROADCAST, 96, 96, 28, 28, variant=variant)
    assert valid(cfg) and cfg.macs == 0
    (kernel,) = extract_kernels(probe_artifact(cfg, runtime, tmp_path).path, runtime)
    assert kernel.type is K.BROADCAST and kernel.op_type.lower() == variant
    assert (kernel.cin, kernel.h_in, kernel.w_in, kernel.inputs) == (96, 28, 28, 2)
    assert kernel.elements_out == 96 * 28 * 28 and kernel.flops == 96 * 28 * 28
    assert kernel.bytes_read == 4 * (96 * 28 * 28 + 96)  # the map, and the scale once per channel
    assert kernel.bytes_written == 4 * 96 * 28 * 28


@pytest.mark.parametrize("runtime", [Runtime.ONNXRUNTIME, Runtime.LITERT])
def test_the_space_draws_broadcasts_and_an_se_blocks_scale_is_one(runtime: Runtime) -> None:
    drawn = [c for c in sample(np.random.default_rng(1), runtime, 200) if c.type is K.BROADCAST]
    assert drawn and {c.variant for c in drawn} == {"mul", "add"} and all(c.cin == c.cout for c in drawn)
    kernels = extract_kernels(export(resolve("se"), runtime.artifact_format, Precision.FP32).path, runtime)
    (scale,) = [k for k in kernels if k.type is K.BROADCAST]
    assert scale.op_type.lower() == "mul" and scale.elements_out == 96 * 14 * 14
    assert K.ELEMENTWISE not in {k.type for k in kernels}


def test_the_space_draws_narrow_and_odd_grouped_convs_and_tiny_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the misses showed (issue 20, item 8): SE nets whose grouped convs have a few channels per group, odd
    group counts, and narrow nets whose tiny kernels are mostly per-invoke cost."""
    from harness.predict import space

    drawn = sample(np.random.default_rng(0), Runtime.ONNXRUNTIME, 1000)
    grouped = [c for c in drawn if c.type is K.GROUPED_CONV]
    assert {2, 4, 8} <= {c.cin // c.groups for c in grouped if c.cin == c.cout}  # narrow groups, in and out
    assert {3, 5, 7} <= {c.groups for c in grouped}
    assert all(valid(c) and c.cin % c.groups == 0 and c.cout % c.groups == 0 for c in grouped)
    narrow = sum(c.cin // c.groups <= 8 for c in grouped) / len(grouped)
    assert narrow >= 0.4  # half the draws by design, plus wide draws that come out narrow

    def tiny(configs: list[KernelConfig]) -> int:
        return sum(c.h <= 14 and c.cin <= 32 for c in configs)

    with monkeypatch.context() as m:
        m.setattr(space, "TINY_SHARE", 0.0)
        without = tiny(sample(np.random.default_rng(0), Runtime.ONNXRUNTIME, 1000))
    assert tiny(drawn) >= without + 50  # a tenth of the draws on top of those that come out tiny anyway


@pytest.mark.parametrize("runtime", [Runtime.ONNXRUNTIME, Runtime.LITERT])
def test_a_narrow_odd_grouped_probe_is_one_grouped_kernel_with_its_group_width(
    runtime: Runtime, tmp_path: Path
) -> None:
    cfg = KernelConfig(K.GROUPED_CONV, 5 * 4, 5 * 4, 14, 14, kernel=3, groups=5, act="relu")
    assert valid(cfg) and cfg.macs == 14 * 14 * 20 * 4 * 9
    (kernel,) = [k for k in extract_kernels(probe_artifact(cfg, runtime, tmp_path).path, runtime)
                 if k.type is K.GROUPED_CONV]  # fmt: skip
    assert (kernel.cin, kernel.cout, kernel.groups, kernel.kernel_size) == (20, 20, 5, 3)
    features = dict(zip(FEATURES, kernel.features(), strict=True))
    assert features["channels_per_group"] == 4 and features["groups"] == 5 and features["cin_align"] == 2
