"""Build a latency predictor on the local device within a fixed budget, then evaluate it family by family.

For each runtime (default: ONNX Runtime and LiteRT, 1 thread, fp32): ``flopgap predictor build`` on ``local`` with
the given budget (the zoo models of :data:`harness.predict.build.EVAL_MODELS` first, then kernel probes), a roofline
calibration (for the roofline baseline) when the database has none, then the leave-one-family-out table. Printed:
the machine, build time (measuring, and exports of the zoo models on a cold cache), kernels measured, the table
(share of models within ±5% / ±10% and RMSE % for the predictor, latency linear in MACs and the roofline sum), the
noise floor (the pooled medians' CI half-width and the trials' half-spread), and the time to predict one model.
A benchmark: it prints figures and asserts nothing.

    python benchmarks/predictor_accuracy.py [--budget 15m] [--runtime onnxruntime] [--db results/predictor.db]
                                            [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

from devices.local import local_device
from devices.vocabulary import Runtime
from harness.cli.predict import parse_budget
from harness.measure.calibrate import calibrate, store_calibration
from harness.predict.build import BuildPlan, BuildReporter, build_predictor, eval_models
from harness.predict.dataset import PredictContext, load_dataset
from harness.predict.evaluate import METHODS, leave_one_family_out
from harness.predict.extract import extract_kernels
from harness.predict.predictor import KernelPredictor
from harness.sources import source_artifact
from harness.store import Store

LABELS = {"predictor": "kernel predictor", "macs_linear": "linear in MACs", "roofline": "roofline sum"}


class _Progress(BuildReporter):
    def stage(self, message: str) -> None:
        print(f"  [{datetime.datetime.now():%H:%M:%S}] {message}", flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} CPUs, {system}, load average {load}"


def run(runtime: Runtime, budget_s: float, db: Path, seed: int = 0) -> None:
    ctx = PredictContext("local", runtime)
    device = local_device()
    started = time.monotonic()
    with Store(db) as store:
        result = build_predictor(BuildPlan(ctx, budget_s, seed=seed), store, device, source_artifact, _Progress())
        wall = time.monotonic() - started
        ctx = result.context  # the device as stored (another machine behind "local" is stored apart)
        cals = store.calibrations_frame()
        if cals[(cals["device"] == ctx.device) & (cals["runtime"] == runtime.value)].empty:
            print("  calibrating the roofline (for the roofline baseline)", flush=True)
            store_calibration(store, device, calibrate(device, runtime, 1, source_artifact))
        dataset = load_dataset(store, ctx)
        predictor_row = store.latest_predictor(ctx.device, runtime.value, 1, "fp32")
    evaluation = leave_one_family_out(dataset)
    print(
        f"\n{ctx}: build {result.build_s / 60:.1f} min of measuring ({wall / 60:.1f} min wall with exports), "
        f"{result.probes_total} kernel probes, {result.kernel_rows} kernel rows, {result.models} zoo models"
    )
    header = ["family", "models"] + [f"{LABELS[m]} {w}" for m in METHODS for w in ("±5%", "±10%", "RMSE%")]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for family in [*evaluation.families, None]:
        scores = evaluation.scores(family)
        n = next((s.models for s in scores.values() if s is not None), 0)
        cells = [f"**{family or 'overall'}**" if family is None else family, str(n)]
        for m in METHODS:
            s = scores[m]
            cells += [f"{s.within5:.0%}", f"{s.within10:.0%}", f"{s.rmse_pct:.1f}"] if s else ["–"] * 3
        print("| " + " | ".join(cells) + " |")
    print(f"noise floor: {evaluation.noise_floor()}")
    assert predictor_row is not None
    predictor = KernelPredictor.from_json(predictor_row.model)
    times = []
    for spec in eval_models():
        path = source_artifact(spec, runtime.artifact_format, ctx.precision).path
        t0 = time.perf_counter()
        predictor.predict(extract_kernels(path, runtime))
        times.append(time.perf_counter() - t0)
    print(f"predicting one model (kernel extraction + regressors): median {statistics.median(times) * 1e3:.0f} ms, "
          f"max {max(times) * 1e3:.0f} ms\n")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="15m", help="measuring budget per runtime (default 15m)")
    parser.add_argument("--runtime", type=Runtime, action="append", help="repeatable; default: both")
    parser.add_argument("--db", type=Path, default=Path("results") / "predictor.db")
    parser.add_argument("--seed", type=int, default=0, help="the probe sampling order's seed (default 0)")
    args = parser.parse_args()
    print(f"{datetime.date.today()}: {machine()}")
    for runtime in args.runtime or [Runtime.ONNXRUNTIME, Runtime.LITERT]:
        run(runtime, parse_budget(args.budget), args.db, args.seed)


if __name__ == "__main__":
    main()
