"""A real results database with hand-computable numbers, for the analysis and report tests.

Context A, ``local/onnxruntime 1.20.1``, 4 threads, fp32: three models whose latency is exactly proportional to
their MACs (2 ms per 100 M): fit slope 1, R² 1, ρ 1. ShuffleNetV2 there has an op profile (two trials) and a
graph account whose shares are round numbers; the guideline blocks G1-G4 are measured there too, and the
device is calibrated (200 GFLOP/s, 100 GB/s).

Context B, ``pi4/litert 2.16.1``, 1 thread, fp32: four models at 10^6..10^9 MACs whose log-latency is
``log10(MACs) - 6 + e`` with ``e = (+1, -3, +3, -1)·0.05``, a perturbation orthogonal to a line: the fit is
exactly slope 1, intercept -6, R² = 1 - 0.05/5.05, and the residual ranking is 10^0.15, 10^0.05, 10^-0.05,
10^-0.15 (models at 10^8, 10^6, 10^9, 10^7). The first of them has a per-block (TFLite) profile.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.store import OpTime, Store
from tests.zoo_labels import zoo_names

ORT = ("local", "onnxruntime", "1.20.1", 4)
TFL = ("pi4", "litert", "2.16.1", 1)

# Context A: (model, params, MACs, median ms)
PROPORTIONAL: tuple[tuple[str, tuple[tuple[str, Any], ...], int, float], ...] = (
    ("mobilenet_v2", (("alpha", 0.5),), 100_000_000, 2.0),
    ("shufflenet_v2", (("scale", 0.5),), 200_000_000, 4.0),
    ("mobilenet_v2", (("alpha", 1.0),), 400_000_000, 8.0),
)
SHUFFLENET_LABEL = "shufflenet_v2[scale=0.5]"

D = 0.05
PERTURBATION = (D, -3 * D, 3 * D, -D)
# Context B: (model, params, MACs, median ms)
ORTHOGONAL = tuple(
    (name, params, 10**exp, 10 ** (exp - 6 + e))
    for (name, params), exp, e in zip(
        (
            ("mobilenet_v2", (("alpha", 0.35),)),
            ("mobilenet_v1", ()),
            ("shufflenet_v2", (("scale", 1.0),)),
            ("resnet50", ()),
        ),
        (6, 7, 8, 9),
        PERTURBATION,
        strict=True,
    )
)
R2_B = 1 - 20 * D**2 / (5 + 20 * D**2)
RESIDUAL_ORDER_B = ("shufflenet_v2", "mobilenet_v2[alpha=0.35]", "resnet50", "mobilenet_v1")
RESIDUALS_B = (10**0.15, 10**0.05, 10**-0.05, 10**-0.15)

# ShuffleNetV2's graph account (context A): node, op type, category, FLOPs, bytes moved, bytes written, module path.
# The shuffle's transpose and reshape are both channel_shuffle (the whole reshape → transpose → reshape).
ACCOUNT_ROWS = (
    ("/stem/Conv", "Conv", "dense_conv", 4_000_000, 800_000, 200_000, "stem.0"),
    ("/s2/pw/Conv", "Conv", "pointwise_conv", 2_400_000, 1_200_000, 400_000, "stage2.0.branch2.0"),
    ("/s2/dw/Conv", "Conv", "depthwise_conv", 800_000, 1_600_000, 400_000, "stage2.0.branch2.3"),
    ("/s2/Relu", "Relu", "activation", 800_000, 400_000, 200_000, "stage2.0.branch2.2"),
    ("/s2/shuffle/Transpose", "Transpose", "channel_shuffle", 0, 400_000, 200_000, "stage2.0.shuffle"),
    ("/s2/shuffle/Reshape", "Reshape", "channel_shuffle", 0, 400_000, 200_000, "stage2.0.shuffle"),
)
# Its ORT profile, per trial: (node, op type, time µs); the ReLU is fused into the conv (no row of its own), the
# NCHWc reorder after the depthwise conv is runtime-added (not in the graph: layout, converting the 400 kB the conv
# wrote). Transpose: 8 then 12 µs, mean 10; each trial sums to 100 µs on average against a 4 ms median.
PROFILE_TRIALS = (
    (
        ("/stem/Conv", "FusedConv", 40.0),
        ("/s2/pw/Conv", "Conv", 20.0),
        ("/s2/dw/Conv", "FusedConv", 25.0),
        ("ReorderOutput_3", "ReorderOutput", 2.0),
        ("/s2/shuffle/Transpose", "Transpose", 8.0),
        ("/s2/shuffle/Reshape", "Reshape", 3.0),
    ),
    (
        ("/stem/Conv", "FusedConv", 40.0),
        ("/s2/pw/Conv", "Conv", 20.0),
        ("/s2/dw/Conv", "FusedConv", 25.0),
        ("ReorderOutput_3", "ReorderOutput", 2.0),
        ("/s2/shuffle/Transpose", "Transpose", 12.0),
        ("/s2/shuffle/Reshape", "Reshape", 3.0),
    ),
)
REORDER_BYTES = 2 * 400_000  # the depthwise conv's output, read and written once
PROFILED_US, SHUFFLENET_MEDIAN_US = 100.0, 4000.0
PEAK_GFLOPS, BANDWIDTH_GBS = 200.0, 100.0
HEADLINE = (
    "shufflenet_v2[scale=0.5] on local/onnxruntime: channel shuffle 0.0% of FLOPs, 13.0% of time; "
    "layout conversions 0.0% of FLOPs, 2.0% of time; depthwise conv 10.0% of FLOPs, 25.0% of time; "
    "time shares of the summed node times, 0.03x the model's median "
    "(onnxruntime 1.20.1, 4 threads, fp32, input 1x3x224x224)"
)

# Context B's block-profiled model: blocks and the account ops under them (module path, FLOPs).
BLOCK_PROFILE = (("features.0", "ConvBNAct", 30.0), ("features.1", "InvertedResidual", 70.0))
BLOCK_ACCOUNT = (("features.0", 2_000_000), ("features.1.conv.0", 5_000_000), ("features.1.conv.1", 1_000_000))
BLOCK_ACCOUNT_OUTSIDE = ("classifier.1", 2_000_000)

# Guideline blocks (context A): (model, params, median ms)
GUIDELINE_POINTS: tuple[tuple[str, tuple[tuple[str, Any], ...], float], ...] = (
    *(
        ("guideline_g1", (("ratio", r), ("setting", "arm"), ("width", 1)), ms)
        for r, ms in (("1:1", 1.0), ("1:2", 1.1), ("1:6", 1.3), ("1:12", 1.6))
    ),
    *(
        ("guideline_g2", (("groups", g), ("setting", "arm"), ("width", 1)), ms)
        for g, ms in ((1, 1.0), (2, 1.2), (4, 1.1), (8, 1.5))  # not monotone: disagrees
    ),
    *(
        ("guideline_g3", (("variant", v), ("channels", 64)), ms)
        for v, ms in (
            ("1-fragment", 1.0),
            ("2-fragment-series", 1.2),
            ("4-fragment-series", 1.5),
            ("2-fragment-parallel", 1.3),
            ("4-fragment-parallel", 1.4),
        )
    ),
    *(
        ("guideline_g4", (("relu", relu), ("shortcut", shortcut), ("channels", 32)), ms)
        for relu, shortcut, ms in ((True, True, 2.0), (False, True, 1.8), (True, False, 1.7), (False, False, 1.5))
    ),
)


def artifact(tmp: Path, model: str, params: Sequence[tuple[str, Any]], fmt: Format, shape: tuple[int, ...]) -> Artifact:
    sha = hashlib.sha256(repr((model, tuple(params), fmt.value)).encode()).hexdigest()
    return Artifact(
        path=tmp / f"{sha[:12]}{fmt.extension}",  # never written: accounts are supplied
        format=fmt,
        precision=Precision.FP32,
        sha256=sha,
        model=model,
        params=tuple(params),
        input_shape=shape,
        layout="NCHW" if fmt is Format.ONNX else "NHWC",
        tool_versions={"torch": "2.13.0"},
        parity_error=1e-6,
        parity_bound=1e-4,
        size_bytes=1000,
    )


def _point(store: Store, run: int, art: Artifact, macs: int, ctx: tuple[str, str, str, int], median_ms: float) -> int:
    device, runtime, version, threads = ctx
    store.upsert_artifact(art, macs=macs, params_count=1000, **zoo_names(art))
    point = store.ensure_point(run, art.sha256, device, runtime, threads, runtime_version=version)
    store.complete_point(
        point, {"n": 100, "median_ms": median_ms, "ci_low_ms": median_ms * 0.99, "ci_high_ms": median_ms * 1.01}
    )
    return point


def populate(store: Store, tmp: Path) -> dict[str, pd.DataFrame]:
    """Write the database; returns the graph accounts to pass to ``analysis.load(accounts=...)``."""
    run = store.start_run("analysis-test", "")
    store.upsert_device("local", "local", {"cpu": "x86_64"})
    store.upsert_device("pi4", "ssh", {"cpu": "cortex-a72"})
    accounts: dict[str, pd.DataFrame] = {}
    for model, params, macs, ms in PROPORTIONAL:
        art = artifact(tmp, model, params, Format.ONNX, (1, 3, 224, 224))
        point = _point(store, run, art, macs, ORT, ms)
        if model == "shufflenet_v2":
            accounts[art.sha256] = pd.DataFrame(
                ACCOUNT_ROWS,
                columns=["name", "op_type", "category", "flops", "mac_bytes", "bytes_written", "module_path"],
            )
            for index, rows in enumerate(PROFILE_TRIALS):
                trial = store.add_trial(point, index, {"runtime_version": ORT[2]}, [2_000_000] * 5, run_id=run)
                store.add_op_profile(point, [OpTime(n, t, us, calls=20) for n, t, us in rows], trial_id=trial)
    for i, (model, params, macs, ms) in enumerate(ORTHOGONAL):
        art = artifact(tmp, model, params, Format.TFLITE, (1, 224, 224, 3))
        point = _point(store, run, art, macs, TFL, ms)
        if i == 0:
            store.add_op_profile(
                point,
                [OpTime(f"{p}/{k}", k, us, category="block", module_path=p) for p, k, us in BLOCK_PROFILE],
            )
            rows = [*BLOCK_ACCOUNT, BLOCK_ACCOUNT_OUTSIDE]
            accounts[art.sha256] = pd.DataFrame(
                {
                    "name": [f"op{j}" for j in range(len(rows))],
                    "op_type": "CONV_2D",
                    "category": "dense_conv",
                    "flops": [f for _, f in rows],
                    "mac_bytes": 1000,
                    "module_path": [p for p, _ in rows],
                }
            )
    for model, params, ms in GUIDELINE_POINTS:
        art = artifact(tmp, model, params, Format.ONNX, (1, 32, 56, 56))
        _point(store, run, art, 50_000_000, ORT, ms)
    store.add_calibration("local", "onnxruntime", 4, 1.0, 1.0, {"note": "superseded"})
    store.add_calibration("local", "onnxruntime", 4, PEAK_GFLOPS, BANDWIDTH_GBS, {"kernel": "gemm"})
    store.finish_run(run, "completed")
    return accounts


def log_residual(ms: float, macs: int) -> float:
    return math.log10(ms) - (math.log10(macs) - 6)
