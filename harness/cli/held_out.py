"""`flopgap predictor eval --random N | --models DIR`: models nobody tuned to, measured now and predicted."""

from __future__ import annotations

from pathlib import Path

from devices.core.errors import FlopgapError, Interrupted
from harness.cli.predict import load_predictor
from harness.cli.sweep import ProgressReporter, make_exporter, open_devices
from harness.measure.spec import ModelRef
from harness.measure.spec import Protocol as SweepProtocol
from harness.predict.dataset import PredictContext
from harness.predict.evaluate import Evaluation
from harness.predict.held_out import (
    FILE_FAMILY,
    RANDOM_FAMILY,
    HeldOutPlan,
    evaluate_held_out,
    file_models,
    random_models,
)
from harness.predict.random_nets import Size
from harness.store import Store


def evaluate_held_out_cli(
    ctx: PredictContext,
    random: int | None,
    seed: int,
    size: Size,
    folder: Path | None,
    protocol: SweepProtocol,
    db: Path | None,
    cache_dir: Path | None,
    devices_file: Path | None,
) -> tuple[Evaluation, str, str]:
    """Measure and predict the random nets or the folder's files; the evaluation, its title and a note."""
    if random is not None and folder is not None:
        raise FlopgapError("give --random N or --models DIR, not both (run eval once for each)")
    if random is not None:
        refs: list[ModelRef] = [*random_models(random, seed, size)]
        what = f"{random} random {size} nets of seed {seed}"
        plan = HeldOutPlan(ctx, tuple(refs), RANDOM_FAMILY, f"predictor-eval {ctx} random={random} seed={seed} "
                           f"size={size}", protocol)  # fmt: skip
    else:
        assert folder is not None
        refs = [*file_models(folder, ctx.runtime)]
        what = f"{len(refs)} model files of {folder}"
        plan = HeldOutPlan(ctx, tuple(refs), FILE_FAMILY, f"predictor-eval {ctx} models={folder.resolve()}", protocol)
    dev = open_devices([ctx.device], devices_file)[ctx.device]
    try:
        progress = ProgressReporter()
        with Store(db) as store:
            row, predictor = load_predictor(store, ctx.device, ctx.runtime, ctx.threads, ctx.precision)
            with progress:
                try:
                    evaluation = evaluate_held_out(plan, store, dev, make_exporter(cache_dir, True), predictor,
                                                   progress)  # fmt: skip
                except KeyboardInterrupt as stop:
                    raise Interrupted.by(
                        stop,
                        f"interrupted; every model measured so far is saved in {store.path}; rerun the same command "
                        "to resume",
                    ) from None
    finally:
        dev.cleanup()
    note = (f"{what}, none in predictor {row.id}'s training data; baselines fitted on the context's "
            f"{evaluation.baseline_models} zoo models; "
            f"protocol {protocol.trials} trials x >= {protocol.runs} runs")  # fmt: skip
    return evaluation, f"{what}, {ctx}", note
