"""A per-device, kernel-level latency predictor (nn-Meter's idea): a model's latency is the sum of its kernels'.

Kernels are what the runtime runs after fusion (:mod:`~harness.predict.kernels`, extracted from ORT's optimized
graph or the ``.tflite`` op list); each type has a regressor trained on kernels measured on the device
(:mod:`~harness.predict.build`: probes sampled from a configuration space, adaptive resampling, per-node profiles
of zoo models); the sum is calibrated on whole models (:mod:`~harness.predict.predictor`) and judged family by
family, never on a family it saw (:mod:`~harness.predict.evaluate`).
"""

from harness.predict.dataset import Dataset, ModelPoint, PredictContext, load_dataset
from harness.predict.evaluate import Evaluation, Score, leave_one_family_out
from harness.predict.extract import extract_kernels
from harness.predict.kernels import FEATURES, Kernel, KernelType
from harness.predict.predictor import Calibration, KernelPredictor, Prediction, TrainingRow, fit_predictor

__all__ = [
    "FEATURES",
    "Calibration",
    "Dataset",
    "Evaluation",
    "Kernel",
    "KernelPredictor",
    "KernelType",
    "ModelPoint",
    "PredictContext",
    "Prediction",
    "Score",
    "TrainingRow",
    "extract_kernels",
    "fit_predictor",
    "leave_one_family_out",
    "load_dataset",
]
