"""The kernel-type table: every type the space draws has one spec; a broadcast is one spec plus this test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devices.vocabulary import Precision, Runtime
from exporters.export import export
from harness.predict.extract import extract_kernels
from harness.predict.kernel_specs import SPECS
from harness.predict.kernels import KernelType, broadcast_or
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
    drawn = [c for c in sample(np.random.default_rng(3), runtime, 200) if c.type is K.BROADCAST]
    assert drawn and {c.variant for c in drawn} == {"mul", "add"} and all(c.cin == c.cout for c in drawn)
    kernels = extract_kernels(export(resolve("se"), runtime.artifact_format, Precision.FP32).path, runtime)
    (scale,) = [k for k in kernels if k.type is K.BROADCAST]
    assert scale.op_type.lower() == "mul" and scale.elements_out == 96 * 14 * 14
    assert K.ELEMENTWISE not in {k.type for k in kernels}
