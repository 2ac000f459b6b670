"""A kernel's weights reused once per run of its model: warm in short runs and as a probe, cold in long runs.

On the development machine a 1280x1000 fully connected layer's profiled time was 0.03-0.04 ns per FLOP in models
of under 1.6 ms and 0.10-0.15 in models of 3 ms and more (``harness.predict.kernels.REUSE_STEPS_US``). The laws
below are synthetic (a warm rate, plus the weights' bytes at a DRAM rate once a run outlasts a threshold the test
picks between the steps); the predictor is real: its base's cold-weight steps, its trees and its two passes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from harness.predict.kernels import FEATURES, REUSE_STEPS_US, Kernel, KernelType, base_terms, cold_terms_at
from harness.predict.predictor import TrainingRow, fit_predictor

COLD_AFTER_US = 1500.0  # where the synthetic device's weights go cold: between two of the steps
DRAM_BYTES_PER_US = 20e3  # 20 GB/s


def _fc(cin: int, cout: int) -> Kernel:
    return Kernel(f"fc{cin}x{cout}", KernelType.FULLY_CONNECTED, "Gemm", cin=cin, cout=cout, flops=2 * cin * cout,
                  bytes_read=4 * cin, bytes_written=4 * cout, weight_bytes=4 * cin * cout, rank=2)  # fmt: skip


def _conv(cout: int, h: int) -> Kernel:
    """A stem conv: much arithmetic, next to no weights (what makes a run long without cold weights of its own)."""
    return Kernel(f"stem{cout}h{h}", KernelType.DENSE_CONV, "Conv", cin=3, cout=cout, h_in=2 * h, w_in=2 * h,
                  h_out=h, w_out=h, kernel_size=3, stride=2, flops=2 * h * h * cout * 27, bytes_read=4 * 3 * 4 * h * h,
                  bytes_written=4 * cout * h * h, weight_bytes=4 * cout * 27)  # fmt: skip


def law(kernel: Kernel) -> float:
    """µs: a per-invoke cost and a warm rate per FLOP, plus the weights streamed from DRAM once a run outlasts
    :data:`COLD_AFTER_US`."""
    cold = kernel.weight_bytes / DRAM_BYTES_PER_US if kernel.reuse_us > COLD_AFTER_US else 0.0
    return 2.0 + kernel.flops / 60e3 + cold


FCS = [_fc(cin, cout) for cin in (256, 512, 768, 1024, 1536) for cout in (500, 1000, 1500)]
CONVS = [_conv(c, h) for c in (16, 24, 32, 48) for h in (56, 96, 112, 160)]


def _rows() -> list[TrainingRow]:
    """Probes (reuse 0: timed alone) of every kernel, and each FC profiled inside a short model and a long one."""
    rows = [TrainingRow(k, law(k), "space") for k in FCS + CONVS]
    for run_us in (400.0, 900.0, 3000.0, 6000.0):
        for k in FCS:
            inside = replace(k, reuse_us=run_us)
            rows.append(TrainingRow(inside, law(inside), "zoo"))
    return rows


def test_a_fully_connected_layer_is_priced_warm_alone_and_in_short_runs_and_cold_in_long_ones() -> None:
    predictor = fit_predictor({"device": "local", "runtime": "onnxruntime"}, _rows(), [])
    unseen = _fc(1280, 1000)
    assert unseen not in FCS
    for run_us, cold in ((0.0, False), (600.0, False), (4000.0, True), (12000.0, True)):
        k = replace(unseen, reuse_us=run_us)
        (us,) = predictor.kernel_times_us([k])
        assert us == pytest.approx(law(k), rel=0.05), (run_us, us, law(k))
        assert (law(k) > law(replace(unseen, reuse_us=0.0))) is cold
    assert "reuse_us" not in FEATURES  # only the base reads it: the trees cannot key a model's rows on its run


def test_a_whole_model_prices_its_weights_by_its_own_run() -> None:
    """``predict`` sets each kernel's reuse to the model's own kernel sum: the same FC head is warm behind a short
    stem and cold behind a long one (the +35% a 0.7 ms random net had when every head was priced cold)."""
    predictor = fit_predictor({"device": "local", "runtime": "onnxruntime"}, _rows(), [])
    head = _fc(1280, 1000)
    short = predictor.predict([_conv(16, 56), head])
    long = predictor.predict([_conv(48, 160), _conv(48, 160), head])
    short_run = sum(law(k) for k in (_conv(16, 56), head))
    assert short_run < COLD_AFTER_US
    assert short.kernel_us[-1] == pytest.approx(law(head), rel=0.05)
    assert long.kernel_sum_ms * 1e3 > COLD_AFTER_US
    assert long.kernel_us[-1] == pytest.approx(law(replace(head, reuse_us=long.kernel_sum_ms * 1e3)), rel=0.05)
    assert long.kernel_us[-1] > 1.5 * short.kernel_us[-1]
    np.testing.assert_allclose(predictor.model_times_us([_conv(16, 56), head]), short.kernel_us)


def test_the_cold_weight_terms_step_at_each_reuse_interval() -> None:
    k = _fc(1024, 1000)
    for run_us in (0.0, *REUSE_STEPS_US, 1e6):
        steps = base_terms(replace(k, reuse_us=run_us))[-len(REUSE_STEPS_US) :]
        assert steps == [float(k.weight_bytes) if run_us > s else 0.0 for s in REUSE_STEPS_US]
        assert cold_terms_at([k], run_us)[0].tolist() == steps  # what a whole model's passes write into its terms
