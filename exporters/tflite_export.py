"""torch → .tflite with litert-torch (NHWC input/output), reduced precisions with ai-edge-quantizer.

The fp32 flatbuffer comes from ``litert_torch.convert``; fp16, int8-dynamic and int8 are ai-edge-quantizer
recipes applied to it, so every precision shares one graph (the same layout transposes):

- fp16: float16 weights cast back by DEQUANTIZE ops, float32 compute (``float_casting``, weight-only);
- int8-dynamic: int8 per-channel weights, activations quantized at run time (``dynamic_wi8_afp32``);
- int8: int8 weights and activations, int8 input and output tensors (``static_wi8_ai8``), calibrated on
  fixed-seed random inputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from devices.vocabulary import Precision
from exporters.parity import first_output, natural_key, tflite_interpreter

SIGNATURE = "serving_default"


def export_tflite(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: Path) -> None:
    """Convert ``model`` (NCHW, BatchNorm already folded) to an fp32 .tflite whose 4-D inputs and output are NHWC."""
    import litert_torch

    xs = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    with torch.no_grad():
        out_rank = first_output(model(*xs)).dim()
    images = [i for i, x in enumerate(xs) if x.dim() == 4]
    # Image-shaped outputs (blocks) go NHWC too; a classifier's (1, classes) output has no layout.
    wrapped = litert_torch.to_channel_last_io(model, args=images, outputs=[0] if out_rank == 4 else None)
    nhwc = tuple(x.permute(0, 2, 3, 1).contiguous() if i in images else x for i, x in enumerate(xs))
    edge = litert_torch.convert(wrapped.eval(), nhwc)
    edge.export(str(path))


def convert_precision(
    src: Path, dst: Path, precision: Precision, calibration: Sequence[np.ndarray | tuple[np.ndarray, ...]]
) -> None:
    """Quantize the fp32 flatbuffer ``src`` to ``precision`` at ``dst``; ``calibration`` holds NHWC inputs (one
    array, or one tuple in signature argument order, per sample)."""
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    quant = quantizer.Quantizer(str(src))
    if precision is Precision.FP16:
        quant.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
    elif precision is Precision.INT8_DYNAMIC:
        quant.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    elif precision is Precision.INT8:
        quant.load_quantization_recipe(recipe.static_wi8_ai8())
    else:
        raise ValueError(f"no TFLite conversion to {precision.value}")
    calibrated = None
    if quant.need_calibration:
        names = _input_names(src)
        samples = [dict(zip(names, (x,) if isinstance(x, np.ndarray) else x, strict=True)) for x in calibration]
        calibrated = quant.calibrate({SIGNATURE: samples}, num_threads=1)
    result = quant.quantize(calibrated, enable_progress_report=False)
    result.export_model(str(dst), overwrite=True)


def _input_names(path: Path) -> list[str]:
    interp = tflite_interpreter(path)
    return sorted((str(n) for n in interp.get_signature_list()[SIGNATURE]["inputs"]), key=natural_key)


def op_counts(path: Path) -> dict[str, int]:
    """Histogram of builtin op names (``TRANSPOSE``, ``CONV_2D``, ...) in the model, most frequent first."""
    interp = tflite_interpreter(path)
    ops = interp._get_ops_details()  # type: ignore[attr-defined]
    return dict(Counter(str(op["op_name"]) for op in ops).most_common())
