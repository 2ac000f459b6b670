"""Run an artifact once in its own runtime and compare it with torch on the same input.

The stored figure (``Artifact.parity_error``) is the relative error ``max|y - y_torch| / max|y_torch|``; the
cosine similarity of the flattened outputs, top-1 agreement and how much torch's own output moves between two
inputs (``signal``, ``signal_cosine``) are kept alongside in the artifact's notes.

Criteria per precision (``BOUNDS``: ceiling on the relative error; ``MIN_COSINE``: floor on the cosine, int8 only):

=============  ===============  ==========  ===================================================================
precision      relative error   cosine      worst measured (ONNX / TFLite)
=============  ===============  ==========  ===================================================================
fp32           <= 1e-4          -           2.2e-5 / 2.2e-5 (resnet50)
fp16           <= 0.05          -           2.0e-2 (resnet50; ONNX computes in fp16) / 1.4e-2 (mobilenet_v1)
int8-dynamic   <= 0.6           >= 0.9      0.39, cos 0.939 / 0.34, cos 0.952 (mobilenet_v1 0.25 @128)
int8           <= 0.6           >= 0.9      0.23, cos 0.963 / 0.30, cos 0.953 (mobilenet_v1, mobilenet_v2)
=============  ===============  ==========  ===================================================================

Measured 2026-11-23 on a 2-core x86_64 VM (torch 2.13.0, onnxruntime 1.32.0, litert-torch 0.10.0,
ai-edge-litert 2.3.0, ai-edge-quantizer 0.10.0) by ``benchmarks/parity_errors.py``: the smallest configuration
of every family (resnet50, mobilenet_v1 0.25 @128, mobilenet_v2 0.35, mobilenet_v3 small/large 0.75,
shufflenet_v1 g3 0.25, shufflenet_v2 0.5, fd_mobilenet 0.25, efficientnet_b0) and four blocks, with the zoo's
signal-preserving init (outputs depend on the input: ``signal`` 0.2 to 1.6), seed-0 input, int8 calibrated on
16 random inputs. The blocks are far inside every bound (int8: error <= 0.061, cosine >= 0.9997).

ExecuTorch (``.pte``, XNNPACK; fp32 and int8 only) is judged by the same bounds. Measured 2026-12-05 on the same VM
(executorch 1.5.1, torch 2.13.0) by ``benchmarks/parity_errors.py --formats pte``, on the configurations it reached:
fp32 2.2e-5 (resnet50), 8.9e-6 (mobilenet_v1), 4.8e-6 (mobilenet_v2); int8 0.14, cos 0.986 (resnet50) and 0.24,
cos 0.968 (mobilenet_v1). The small blocks of ``tests/test_pte_export.py`` stay within them too.

Why two figures for int8: on the classifiers the relative max error is set by the one logit where the
quantization noise peaks (0.08 to 0.39, growing as the net gets thinner) and says little on its own; the cosine
(0.94 to 0.999) measures the whole output. The cosine floor catches a wrong graph, a wrong output ordering or
layout (cosine near 0 on the zero-mean logits and the blocks' feature maps); the error ceiling, which the cosine
cannot see, catches a wrong scale (a factor 2 gives 0.5 to 1). fp32 and fp16 need only the error bound: their
worst errors are 2e-5 and 2e-2, a broken conversion's is of order 1. Bounds leave about 1.5x (int8) to 2.5x
(fp16) headroom over the worst case; a shape mismatch is an infinite error and always fails.

Caveat: logits of random-init classifiers on random inputs are largely input-independent, torch's own outputs
on two unrelated inputs already have a cosine of 0.87 to 0.99 (``signal_cosine``). On classifiers the int8
criterion therefore proves the graph, weights and output order right, not that every input-dependent detail
survived quantization; the blocks (``signal_cosine`` near 0) are where it checks that too.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from devices.vocabulary import Format, Precision

BOUNDS: dict[Precision, float] = {
    Precision.FP32: 1e-4,
    Precision.FP16: 0.05,
    Precision.INT8_DYNAMIC: 0.6,
    Precision.INT8: 0.6,
}
MIN_COSINE: dict[Precision, float] = {
    Precision.INT8_DYNAMIC: 0.9,
    Precision.INT8: 0.9,
}

SIGNAL_SEED = 7


def criterion(precision: Precision) -> str:
    """The pass condition for ``precision``, in words (stored with every parity result)."""
    text = f"relative error <= {BOUNDS[precision]:g}"
    floor = MIN_COSINE.get(precision)
    return text if floor is None else f"{text} and cosine >= {floor:g}"


def passes(precision: Precision, error: float | None, cosine: float | None) -> bool:
    """Whether a measured ``error`` (and ``cosine``, where the precision has a floor) meets the criterion."""
    if error is None or not np.isfinite(error) or error > BOUNDS[precision]:
        return False
    floor = MIN_COSINE.get(precision)
    return floor is None or (cosine is not None and bool(np.isfinite(cosine)) and cosine >= floor)


@dataclass(frozen=True)
class Parity:
    precision: Precision
    error: float  # max|y - y_torch| / max|y_torch|
    bound: float  # ceiling on error
    min_cosine: float | None  # floor on cosine; None where only the error is bounded
    criterion: str  # the pass condition in words
    cosine: float  # cosine similarity of the flattened outputs
    top1_agrees: bool | None  # same argmax as torch, for (1, classes) outputs; None otherwise
    runtime: str
    # How much torch's own output moves between two inputs (relative, as ``error``). Near zero, the output is
    # input-independent (signal vanished through a random-init net) and parity says little about the graph.
    signal: float
    signal_cosine: float  # cosine between torch's outputs on the two inputs

    @property
    def ok(self) -> bool:
        return passes(self.precision, self.error, self.cosine)

    def as_notes(self) -> dict[str, Any]:
        notes = asdict(self)
        notes["precision"] = self.precision.value
        notes["ok"] = self.ok
        return notes


def compare(y: np.ndarray, ref: np.ndarray, other: np.ndarray, precision: Precision, runtime: str) -> Parity:
    """Parity of an artifact's output ``y`` with torch's ``ref`` (``other``: torch on a second input)."""
    top1 = bool(np.argmax(y) == np.argmax(ref)) if ref.ndim == 2 and y.shape == ref.shape else None
    return Parity(
        precision=precision,
        error=relative_error(y, ref),
        bound=BOUNDS[precision],
        min_cosine=MIN_COSINE.get(precision),
        criterion=criterion(precision),
        cosine=cosine(y, ref),
        top1_agrees=top1,
        runtime=runtime,
        signal=relative_error(other, ref),
        signal_cosine=cosine(other, ref),
    )


def relative_error(y: np.ndarray, ref: np.ndarray) -> float:
    """``max|y - ref| / max|ref|`` (infinite when shapes differ or ``ref`` is all zeros)."""
    if y.shape != ref.shape:
        return float("inf")
    scale = float(np.max(np.abs(ref)))
    if scale == 0.0:
        return 0.0 if float(np.max(np.abs(y))) == 0.0 else float("inf")
    return float(np.max(np.abs(y.astype(np.float64) - ref.astype(np.float64))) / scale)


def cosine(y: np.ndarray, ref: np.ndarray) -> float:
    a, b = y.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    if a.shape != b.shape:
        return float("nan")
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom else float("nan")


def tflite_interpreter(path: Path, threads: int = 1) -> Any:
    """A LiteRT interpreter from ai-edge-litert, or from tflite-runtime where only that is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the install
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
    return Interpreter(model_path=str(path), num_threads=threads)


def tflite_io_dtypes(path: Path) -> tuple[str, str]:
    """Dtype names of a .tflite model's first input and first output (``("int8", "int8")`` when full-integer)."""
    interp = tflite_interpreter(path)
    return interp.get_input_details()[0]["dtype"].__name__, interp.get_output_details()[0]["dtype"].__name__


def tflite_float_ops(path: Path) -> dict[str, int]:
    """Ops that read or write a floating-point tensor, by name, QUANTIZE and DEQUANTIZE excepted.

    Empty for a full-integer model (which may still convert float I/O at its edges with QUANTIZE/DEQUANTIZE).
    """
    interp = tflite_interpreter(path)
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    found: Counter[str] = Counter()
    for op in interp._get_ops_details():
        name = str(op["op_name"])
        if name in ("QUANTIZE", "DEQUANTIZE", "DELEGATE"):
            continue
        tensors = [int(t) for t in (*op["inputs"], *op["outputs"]) if int(t) >= 0]
        if any(np.issubdtype(dtypes[t], np.floating) for t in tensors if t in dtypes):
            found[name] += 1
    return dict(found.most_common())


Inputs = np.ndarray | Sequence[np.ndarray]


def _as_tuple(x: Inputs) -> tuple[np.ndarray, ...]:
    return (x,) if isinstance(x, np.ndarray) else tuple(x)


def run_onnx(path: Path, x: Inputs) -> np.ndarray:
    """One onnxruntime CPU inference on the NCHW input(s) ``x`` (graph input order); returns the first output."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = {}
    for meta, array in zip(session.get_inputs(), _as_tuple(x), strict=True):
        # torch hands float32; a float graph input takes it as float32, any other type keeps the array's own.
        feeds[meta.name] = array.astype(np.float32) if meta.type == "tensor(float)" else array
    return np.asarray(session.run(None, feeds)[0])


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if detail["dtype"] == np.float32 or not np.issubdtype(detail["dtype"], np.integer):
        return x.astype(detail["dtype"])
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale if scale else y.astype(np.float32)


def run_tflite(path: Path, x: Inputs) -> np.ndarray:
    """One LiteRT inference on the NHWC input(s) ``x``; quantized input/output tensors are (de)quantized with their
    params. Several inputs are fed by signature argument order (``args_0``, ``args_1``...)."""
    xs = _as_tuple(x)
    interp = tflite_interpreter(path)
    signatures = interp.get_signature_list()
    if len(xs) > 1 and SIGNATURE_KEY in signatures:
        runner = interp.get_signature_runner(SIGNATURE_KEY)
        details = runner.get_input_details()
        names = sorted(details, key=natural_key)
        feeds = {n: _quantize(a, details[n]) for n, a in zip(names, xs, strict=True)}
        outputs = runner(**feeds)
        out_details = runner.get_output_details()
        first = sorted(outputs, key=natural_key)[0]
        return _dequantize(np.array(outputs[first]), out_details[first])
    interp.allocate_tensors()
    inputs, out = interp.get_input_details(), interp.get_output_details()[0]
    for detail, array in zip(inputs, xs, strict=True):
        interp.set_tensor(detail["index"], _quantize(array, detail))
    interp.invoke()
    return _dequantize(np.array(interp.get_tensor(out["index"])), out)


SIGNATURE_KEY = "serving_default"


def natural_key(name: str) -> tuple[Any, ...]:
    """``args_2`` before ``args_10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def run_artifact(path: Path, fmt: Format, x_nchw: Inputs) -> np.ndarray:
    """Run ``path`` on NCHW input(s) and return its (first) output in torch's layout."""
    xs = _as_tuple(x_nchw)
    if fmt is Format.ONNX:
        return run_onnx(path, xs)
    if fmt is Format.PTE:
        from exporters.pte_export import run_pte

        return run_pte(path, xs)
    y = run_tflite(path, tuple(np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 else a for a in xs))
    return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y


def first_output(y: Any) -> torch.Tensor:
    """A module's output, or the first tensor of a tuple/list/dict output (what parity compares)."""
    while not isinstance(y, torch.Tensor):
        if isinstance(y, dict):
            y = next(iter(y.values()))
        elif isinstance(y, (tuple, list)) and y:
            y = y[0]
        else:
            raise TypeError(f"the model returned {type(y).__name__}, not a tensor")
    return y


def runtime_name(fmt: Format) -> str:
    if fmt is Format.ONNX:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    if fmt is Format.PTE:
        from exporters import pte_export

        return f"executorch {pte_export.version()}"
    try:
        from importlib.metadata import version

        return f"ai-edge-litert {version('ai-edge-litert')}"
    except Exception:  # pragma: no cover - tflite-runtime fallback
        return "tflite-runtime"


def measure(
    model: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...], path: Path, fmt: Format, precision: Precision
) -> Parity:
    """Compare the artifact at ``path`` with ``model`` (the original torch module) on NCHW input(s) ``x``."""
    xs = (x,) if isinstance(x, torch.Tensor) else tuple(x)
    gen = torch.Generator().manual_seed(SIGNAL_SEED)
    others = tuple(torch.randn(t.shape, generator=gen).to(t.dtype) if t.is_floating_point() else t for t in xs)
    with torch.no_grad():
        ref = first_output(model(*xs)).detach().numpy()
        other = first_output(model(*others)).detach().numpy()
    y = run_artifact(path, fmt, tuple(t.numpy() for t in xs))
    return compare(y, ref, other, precision, runtime_name(fmt))
