"""Run an artifact once in its own runtime and compare it with torch on the same input.

The stored figure is the relative error ``max|y - y_torch| / max|y_torch|``. Bounds per precision were set by
measuring the zoo (smallest configuration of each family, random-init weights, seed 0); see ``BOUNDS``.
Cosine similarity and top-1 agreement are kept alongside for reading quantized results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from exporters.artifact import Format, Precision

# Bounds on max|y - y_torch| / max|y_torch|. Worst cases measured on the zoo's smallest configurations and the
# blocks (ONNX and TFLite, seed-0 input; also with a signal-preserving kaiming init, see signal below):
#   fp32          2.2e-6            fp16     8.3e-4 (fp16 weights; ONNX also computes in fp16)
#   int8-dynamic  3.9e-2            int8     3.1e-2 ONNX QDQ; 7.5e-2 TFLite on blocks, shufflenets, resnet50
# TFLite full-integer int8 of mobilenet_v1/v2/v3, fd_mobilenet and efficientnet_b0 is far off (0.4 to 1.0: the
# calibrated activation ranges collapse layer by layer); those exports fail parity on purpose.
BOUNDS: dict[Precision, float] = {
    Precision.FP32: 1e-4,
    Precision.FP16: 5e-3,
    Precision.INT8_DYNAMIC: 0.1,
    Precision.INT8: 0.15,
}


SIGNAL_SEED = 7


@dataclass(frozen=True)
class Parity:
    error: float  # max|y - y_torch| / max|y_torch|
    bound: float
    cosine: float  # cosine similarity of the flattened outputs
    top1_agrees: bool | None  # same argmax as torch, for (1, classes) outputs; None otherwise
    runtime: str
    # How much torch's own output moves between two inputs (relative, as ``error``). Near zero, the output is
    # input-independent (signal vanished through a random-init net) and parity says little about the graph.
    signal: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.error)) and self.error <= self.bound

    def as_notes(self) -> dict[str, Any]:
        return asdict(self)


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


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    """One onnxruntime CPU inference on NCHW ``x``; returns the first output."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x.astype(np.float32)})[0])


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    """One LiteRT inference on NHWC ``x``; quantized input/output tensors are (de)quantized with their params."""
    interp = tflite_interpreter(path)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    y = np.array(interp.get_tensor(out["index"]))
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def run_artifact(path: Path, fmt: Format, x_nchw: np.ndarray) -> np.ndarray:
    """Run ``path`` on an NCHW input and return its output in torch's layout."""
    if fmt is Format.ONNX:
        return run_onnx(path, x_nchw)
    y = run_tflite(path, np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)))
    return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y


def runtime_name(fmt: Format) -> str:
    if fmt is Format.ONNX:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    try:
        from importlib.metadata import version

        return f"ai-edge-litert {version('ai-edge-litert')}"
    except Exception:  # pragma: no cover - tflite-runtime fallback
        return "tflite-runtime"


def measure(model: nn.Module, x: torch.Tensor, path: Path, fmt: Format, precision: Precision) -> Parity:
    """Compare the artifact at ``path`` with ``model`` (the original torch module) on NCHW input ``x``."""
    with torch.no_grad():
        ref = model(x).detach().numpy()
        other = model(torch.randn(x.shape, generator=torch.Generator().manual_seed(SIGNAL_SEED))).detach().numpy()
    y = run_artifact(path, fmt, x.numpy())
    top1 = bool(np.argmax(y) == np.argmax(ref)) if ref.ndim == 2 and y.shape == ref.shape else None
    return Parity(
        error=relative_error(y, ref),
        bound=BOUNDS[precision],
        cosine=cosine(y, ref),
        top1_agrees=top1,
        runtime=runtime_name(fmt),
        signal=relative_error(other, ref),
    )
