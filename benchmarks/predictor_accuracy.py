"""The predictor's accuracy table (issue 20's targets): random nets, zoo leave-one-family-out and adaptation.

For each runtime (default: ONNX Runtime and LiteRT, fp32) and each seed, on the ``local`` device:

1. ``flopgap predictor build`` at 1 thread within ``--budget`` (the zoo models first, then kernel probes from the
   seed's sampling order), and a roofline calibration (for the roofline baseline) when the database has none;
2. the **random set**: ``--random`` nets of the seed (``flopgap predictor eval --random N --seed S``), measured and
   predicted, never in any build's training data;
3. **zoo leave-one-family-out** (``flopgap predictor eval``);
4. **adaptation** to ``--adapt-threads`` threads of this machine: ``predictor build --from`` the 1-thread predictor
   within ``--adapt-budget``, then a full build there within ``--budget``, both scored on the same random nets
   measured at that thread count (the adaptation runs first, so it never sees the full build's measurements), and
   the 1-thread predictor unadapted on them (what the adaptation bought).

Printed: the machine (CPU model, cores) and the load average sampled through the run (this is a shared machine;
figures taken under load say so), each build's device time, one table per runtime (share of models within ±5% and
±10% and RMSE % for the kernel predictor, latency linear in MACs and the roofline sum, with the noise floor), the
spread over the seeds, and per random set the models outside ±10% with what they are made of and which net features
go with the misses, and the machine's level after the random nets (the build's zoo models measured again, in a
database of their own: ``-seedS.level.db``) with the random set's score re-anchored on it. A benchmark: it prints
figures and asserts nothing. Each seed has its own database (``--db``'s stem + ``-seedS``): an interrupted run
resumes, and an adaptation never sees another seed's full build.

    python benchmarks/predictor_accuracy.py [--budget 15m] [--adapt-budget 3m] [--adapt-threads 2] [--random 30]
        [--net-size full] [--seed 0 [--seed 1]] [--runtime onnxruntime] [--db results/predictor.db]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from devices.base import Device
from devices.local import local_device
from devices.vocabulary import Precision, Runtime
from harness.cli.predict import parse_budget
from harness.cli.sweep import make_exporter
from harness.measure.calibrate import calibrate, store_calibration
from harness.measure.spec import SweepSpec, model_selection
from harness.measure.stats import target_ms
from harness.measure.sweep import run_sweep
from harness.predict.adapt import AdaptPlan, adapt_predictor, calibration_note, scaling_note
from harness.predict.build import MODEL_PROTOCOL, BuildPlan, BuildReporter, BuildResult, build_predictor, eval_models
from harness.predict.dataset import (
    Dataset,
    PredictContext,
    latest_versions,
    load_dataset,
    optional_float,
)
from harness.predict.evaluate import METHODS, Evaluation, ModelResult, Score, leave_one_family_out
from harness.predict.extract import extract_kernels
from harness.predict.held_out import RANDOM_FAMILY, HeldOutPlan, evaluate_held_out, random_models
from harness.predict.predictor import KernelPredictor
from harness.predict.random_nets import BlockKind, NetSpec, Size, draw
from harness.store import PointStatus, Store

LABELS = {"predictor": "kernel predictor", "macs_linear": "linear in MACs", "roofline": "roofline sum"}
# The random nets' protocol: fewer trials than the zoo's 5 (each net is measured once per context), enough for a
# trial spread (the noise floor).
EVAL_PROTOCOL = MODEL_PROTOCOL.model_copy(update={"trials": 3, "runs": 20, "min_seconds": 0.2})
EXPORTER = make_exporter(None, True)


class _Progress(BuildReporter):
    def stage(self, message: str) -> None:
        print(f"  [{datetime.datetime.now():%H:%M:%S}] {message}", flush=True)


class LoadSampler:
    """The 1-minute load average every ``period`` seconds in a daemon thread, for the machine line."""

    def __init__(self, period: float = 15.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(period,), daemon=True)

    def _loop(self, period: float) -> None:
        while not self._stop.wait(period):
            self.samples.append(os.getloadavg()[0])

    @contextmanager
    def running(self) -> Iterator[LoadSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()

    def text(self) -> str:
        s = self.samples
        return (f"1-min load average over the run: median {statistics.median(s):.1f}, min {min(s):.1f}, "
                f"max {max(s):.1f} ({len(s)} samples; {os.cpu_count()} CPUs)")  # fmt: skip


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
    return f"{cpu}, {os.cpu_count()} CPUs, {system}, load average at the start {load}"


@dataclass
class Row:
    """One line of a runtime's table: a set of models scored by the three methods."""

    name: str
    evaluation: Evaluation
    note: str = ""


@dataclass
class SeedRun:
    seed: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Keep ``row`` for the table and print it now: a run stopped later still leaves its figures."""
        self.rows.append(row)
        scores = row.evaluation.scores()
        cells = " | ".join(f"{LABELS[m]} {_cells(scores[m])}" for m in METHODS)
        print(f"  => {row.name}: {cells} | noise floor: {row.evaluation.noise_floor()}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  => {text}", flush=True)


def seed_db(db: Path, seed: int) -> Path:
    return db.with_name(f"{db.stem}-seed{seed}{db.suffix or '.db'}")


def eval_name(ctx: PredictContext, seed: int, args: argparse.Namespace) -> str:
    """The random set's sweep name: a rerun with the same nets resumes it."""
    return f"accuracy random {ctx} seed={seed} n={args.random} size={args.net_size}"


def _build_line(what: str, result: BuildResult, wall_s: float) -> str:
    return (f"{what}: predictor {result.predictor_id}, {result.build_s / 60:.1f} min of device time "
            f"({wall_s / 60:.1f} min wall with exports), {result.probes_total} probes, {result.kernel_rows} kernel "
            f"rows, {result.models} zoo models, {result.nets} training nets"
            + (" (no probe: the models' sweep took the whole budget; a larger --budget buys probes)"
               if result.probes_total == 0 else ""))  # fmt: skip


def _timed(step: Callable[[], BuildResult]) -> tuple[BuildResult, float]:
    t0 = time.monotonic()
    result = step()
    return result, time.monotonic() - t0


def run_seed(runtime: Runtime, seed: int, args: argparse.Namespace, device: Device) -> SeedRun:
    out = SeedRun(seed)
    ctx = PredictContext("local", runtime)
    budget, adapt_budget = parse_budget(args.budget), parse_budget(args.adapt_budget)
    nets = tuple(random_models(args.random, seed, args.net_size))
    progress = _Progress()
    with Store(seed_db(args.db, seed)) as store:
        progress.stage(f"{runtime}, seed {seed}: full build at 1 thread ({args.budget})")
        plan = BuildPlan(ctx, budget, seed, train_nets=args.train_nets)
        result, wall = _timed(lambda: build_predictor(plan, store, device, EXPORTER, progress))
        out.note(_build_line("1-thread build", result, wall))
        ctx = result.context  # the device as stored (another machine behind "local" is stored apart)
        cals = store.calibrations_frame()
        if cals[(cals["device"] == ctx.device) & (cals["runtime"] == runtime.value)].empty:
            progress.stage("calibrating the roofline (for the roofline baseline)")
            store_calibration(store, device, calibrate(device, runtime, 1, EXPORTER))
        base = result.predictor
        progress.stage(f"random set: {len(nets)} {args.net_size} nets of seed {seed}")
        plan = HeldOutPlan(ctx, nets, RANDOM_FAMILY, eval_name(ctx, seed, args), EVAL_PROTOCOL)
        random_eval = evaluate_held_out(plan, store, device, EXPORTER, base, progress)
        out.add(Row(f"random nets (seed {seed}), 1 thread", random_eval))
        out.note(f"misses of the random set at 1 thread: {misses(random_eval, seed, args.net_size)}")
        out.note(f"random nets by the measurement's own noise: {by_noise(random_eval)}")
        features = by_feature(random_eval, seed, args.net_size)
        out.note(f"random nets by feature (kernel predictor within ±10%, mean error): {features}")
        dataset = load_dataset(store, ctx, latest_versions(store, ctx))
        progress.stage(f"the build's {len(eval_models())} zoo models again, right after the random nets")
        out.note(f"the machine's level after the random nets: {level_after(dataset, random_eval, args, seed, device)}")
        out.add(Row("zoo leave-one-family-out, 1 thread", leave_one_family_out(dataset)))
        speed = predict_time(base, dataset, store)
        out.note(f"predicting one zoo model (kernel extraction + regressors, cached): {speed}")
        if args.adapt_threads:
            actx = PredictContext("local", runtime, args.adapt_threads)
            progress.stage(f"{runtime}, seed {seed}: adaptation to {args.adapt_threads} threads ({args.adapt_budget})")
            earlier = stored_adaptation(store, BuildPlan(actx, budget, seed).name, result.predictor_id)
            if earlier is None:
                aplan = AdaptPlan(actx, adapt_budget, seed, source_id=result.predictor_id)
                adapted, awall = _timed(lambda: adapt_predictor(aplan, store, device, EXPORTER, progress))
                out.note(
                    _build_line(f"adaptation to {args.adapt_threads} threads", adapted, awall)
                    + f"; {scaling_note(adapted.predictor.summary)}; {calibration_note(adapted.predictor.summary)}"
                )
                a_ctx, a_predictor = adapted.context, adapted.predictor
            else:  # a rerun: adapting again would train on the full build's measurements
                a_ctx, a_predictor = earlier
                out.note(f"adaptation to {args.adapt_threads} threads: the one stored before the full build there")
            aplan_eval = HeldOutPlan(a_ctx, nets, RANDOM_FAMILY, eval_name(a_ctx, seed, args), EVAL_PROTOCOL)
            # The same nets measured once at the new thread count, predicted by both predictors.
            a_eval = evaluate_held_out(aplan_eval, store, device, EXPORTER, a_predictor, progress)
            out.add(Row(f"adapted ({args.adapt_budget}) on the random nets, {args.adapt_threads} threads", a_eval))
            out.note(f"misses of the adapted predictor: {misses(a_eval, seed, args.net_size)}")
            # What the adaptation bought: the source predictor as it was, on the same measurements.
            s_eval = evaluate_held_out(aplan_eval, store, device, EXPORTER, base, progress)
            out.add(Row(f"1-thread predictor unadapted, same nets, {args.adapt_threads} threads", s_eval))
            progress.stage(f"{runtime}, seed {seed}: full build at {args.adapt_threads} threads ({args.budget})")
            full, fwall = _timed(lambda: build_predictor(BuildPlan(actx, budget, seed), store, device, EXPORTER,
                                                         progress))  # fmt: skip
            out.note(_build_line(f"full build at {args.adapt_threads} threads", full, fwall))
            f_eval = evaluate_held_out(aplan_eval, store, device, EXPORTER, full.predictor, progress)
            out.add(Row(f"full build ({args.budget}) on the same nets, {args.adapt_threads} threads", f_eval))
    return out


def stored_adaptation(store: Store, full_build: str, source_id: int) -> tuple[PredictContext, KernelPredictor] | None:
    """The adaptation from ``source_id`` stored before ``full_build`` started in this database, if it has."""
    if not (store.runs_frame()["spec_name"] == full_build).any():
        return None
    frame = store.predictors_frame()
    adapted = [int(r.id) for r in frame.itertuples()
               if json.loads(str(r.summary_json)).get("adapted_from") == source_id]  # fmt: skip
    row = store.predictor(adapted[-1]) if adapted else None
    if row is None:
        return None
    ctx = PredictContext(row.device, Runtime(row.runtime), row.threads, Precision(row.precision))
    return ctx, KernelPredictor.from_json(row.model)


def _index(label: str) -> int | None:
    found = re.search(r"index=(\d+)", label)
    return int(found.group(1)) if found else None


def _spec(label: str, seed: int, size: Size) -> NetSpec | None:
    i = _index(label)
    return draw(seed, i, size) if i is not None else None


def misses(evaluation: Evaluation, seed: int, size: Size) -> str:
    """The nets outside ±10%, worst first: index, error, measured time and what the net is made of."""
    parts = []
    for r in sorted(evaluation.results, key=lambda r: -abs(r.error("predictor") or 0.0)):
        err = r.error("predictor")
        if err is None or abs(err) <= 0.10:
            continue
        spec = _spec(r.label, seed, size)
        what = spec.summary() if spec else r.label
        parts.append(f"#{_index(r.label)} {err:+.0%} ({r.measured_ms:.1f} ms; {what})")
    return "; ".join(parts) or "none"


# A net whose trials' medians agree within this (relative spread, max - min over the median) was measured in a quiet
# spell; past it, its measured latency itself is uncertain by about as much as the ±10% band.
QUIET_SPREAD = 0.10


def by_noise(evaluation: Evaluation) -> str:
    """What the machine's noise does to the score: the kernel predictor within ±10% among the nets whose trials
    agreed within :data:`QUIET_SPREAD` and among the rest, and over all nets with the set's median ratio of predicted
    to measured divided out (a slow or fast spell of the machine moves every net of the set alike)."""
    quiet: list[float] = []
    noisy: list[float] = []
    for r in evaluation.results:
        err = r.error("predictor")
        if err is None:
            continue
        agreed = r.trial_halfspread is not None and 2 * r.trial_halfspread <= QUIET_SPREAD
        (quiet if agreed else noisy).append(err)

    def share(errs: list[float]) -> str:
        if not errs:
            return "none"
        return f"{float(np.mean(np.abs(errs) <= 0.10)):.0%} of {len(errs)} (mean {float(np.mean(errs)):+.1%})"

    parts = [f"trials within {QUIET_SPREAD:.0%} of each other {share(quiet)}", f"the others {share(noisy)}"]
    logs = np.log1p(np.array(quiet + noisy))
    if logs.size:
        ratio = float(np.exp(np.median(logs)))
        centred = float(np.mean(np.abs(np.expm1(logs - np.median(logs))) <= 0.10))
        parts.append(f"all with their median ratio ({ratio:.3f}) divided out {centred:.0%}")
    return "; ".join(parts)


def level_after(dataset: Dataset, random_eval: Evaluation, args: argparse.Namespace, seed: int, device: Device) -> str:
    """The build's zoo models measured again right after the random nets (the nets' protocol), over their times in
    the build: a machine that sped up or slowed down between the build's first minutes and the nets moves this ratio
    as it moves the nets. The random set is scored again with the ratio multiplied into every prediction, which is
    what re-anchoring a predictor on a few known models before use would buy. Its own database (``-level``), so the
    second measurement of a zoo model never enters a build's training data; the exports are the build's (cached)."""
    ctx = dataset.context
    built = {m.artifact_sha: m.target_ms for m in dataset.models}
    spec = SweepSpec(
        name=f"{eval_name(ctx, seed, args)}-level",
        models=[model_selection(m) for m in eval_models()],
        runtimes=[ctx.runtime],
        precisions=[ctx.precision],
        threads=[ctx.threads],
        devices=[device.name],
        protocol=EVAL_PROTOCOL,
    )
    with Store(seed_db(args.db, seed).with_suffix(".level.db")) as store:
        result = run_sweep(spec, f"# {spec.name}\n", store, {device.name: device}, EXPORTER)
        points = store.points_frame()
    points = points[points["point_id"].isin(result.point_ids) & (points["status"] == PointStatus.DONE)]
    ratios = [target_ms(float(r.median_ms), optional_float(r.p10_ms)) / built[str(r.artifact_sha)]
              for r in points.itertuples() if str(r.artifact_sha) in built]  # fmt: skip
    if not ratios:
        return "no zoo model of the build was measured again"
    level = float(np.median(ratios))
    errs = [(1 + e) * level - 1 for r in random_eval.results if (e := r.error("predictor")) is not None]
    anchored = float(np.mean(np.abs(errs) <= 0.10)) if errs else float("nan")
    rmse = float(np.sqrt(np.mean(np.square(errs)))) if errs else float("nan")
    return (
        f"{len(ratios)} zoo models measured again took {level:.3f}x their build-time times (median; "
        f"{min(ratios):.3f}-{max(ratios):.3f}); the random set with that level multiplied into the predictions: "
        f"{anchored:.0%} within ±10%, RMSE {rmse:.1%}"
    )


def by_feature(evaluation: Evaluation, seed: int, size: Size) -> str:
    """Share within ±10% among the nets that have each feature, and their mean signed error."""
    features: dict[str, Callable[[NetSpec, ModelResult], bool]] = {
        "inverted": lambda s, r: any(b.kind is BlockKind.INVERTED for b in s.blocks),
        "bottleneck": lambda s, r: any(b.kind is BlockKind.BOTTLENECK for b in s.blocks),
        "concat": lambda s, r: any(b.kind is BlockKind.CONCAT for b in s.blocks),
        "SE": lambda s, r: any(b.squeeze_excite for b in s.blocks),
        "small groups (2-16 wide)": lambda s, r: any(1 < b.group_width < min(b.hidden, 17) for b in s.blocks),
        "7x7": lambda s, r: any(b.kernel_size == 7 for b in s.blocks),
        "under 5 ms": lambda s, r: r.measured_ms < 5,
    }
    parts = []
    for name, has in features.items():
        errs = []
        for r in evaluation.results:
            err, spec = r.error("predictor"), _spec(r.label, seed, size)
            if err is not None and spec is not None and has(spec, r):
                errs.append(err)
        if errs:
            within = float(np.mean(np.abs(errs) <= 0.10))
            parts.append(f"{name} {within:.0%} of {len(errs)} (mean {float(np.mean(errs)):+.1%})")
    return ", ".join(parts)


def predict_time(predictor: KernelPredictor, dataset: object, store: Store) -> str:
    paths = store.artifacts_frame().set_index("sha256")["path"]
    times = []
    for m in getattr(dataset, "models", []):
        path = Path(str(paths[m.artifact_sha]))
        t0 = time.perf_counter()
        predictor.predict(extract_kernels(path, Runtime(predictor.context["runtime"])))
        times.append(time.perf_counter() - t0)
    if not times:
        return "no zoo model"
    return f"median {statistics.median(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms"


def _cells(s: Score | None) -> str:
    return f"{s.within5:.0%} / {s.within10:.0%} / {s.rmse_pct:.1f}%" if s else "–"


def print_table(runtime: Runtime, runs: list[SeedRun]) -> None:
    print(f"\n## {runtime}, fp32 (each cell: within ±5% / within ±10% / RMSE)\n")
    header = ["set", "models", *(LABELS[m] for m in METHODS), "noise floor"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for run in runs:
        for row in run.rows:
            scores = row.evaluation.scores()
            n = next((s.models for s in scores.values() if s is not None), 0)
            cells = [row.name, str(n), *(_cells(scores[m]) for m in METHODS), row.evaluation.noise_floor()]
            print("| " + " | ".join(cells) + " |")
    if len(runs) > 1:
        print("\nspread over the seeds (kernel predictor within ±10%, min–max; RMSE min–max):")
        for i, row in enumerate(runs[0].rows):
            got = [s for r in runs if i < len(r.rows) if (s := r.rows[i].evaluation.scores()["predictor"]) is not None]
            if got:
                w = [s.within10 for s in got]
                e = [s.rmse_pct for s in got]
                name = re.sub(r" \(seed \d+\)", "", row.name)
                print(f"  {name}: {min(w):.0%}–{max(w):.0%}, RMSE {min(e):.1f}–{max(e):.1f}%")
    print()
    for run in runs:
        for note in run.notes:
            print(f"- seed {run.seed}: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="15m", help="each full build's measuring budget (default 15m)")
    parser.add_argument("--adapt-budget", default="3m", help="the adaptation's budget (default 3m)")
    parser.add_argument("--adapt-threads", type=int, default=2, help="the adaptation's thread count; 0: none")
    parser.add_argument("--random", type=int, default=30, help="random nets per seed (default 30)")
    parser.add_argument("--train-nets", type=int, default=None,
                        help="training nets per full build (default: the device's, as predictor build)")  # fmt: skip
    parser.add_argument("--net-size", type=Size, default=Size.FULL, help="full (zoo-sized, default) or small")
    parser.add_argument("--seed", type=int, action="append", help="repeatable; build and random-net seed (0)")
    parser.add_argument("--runtime", type=Runtime, action="append", help="repeatable; default: both")
    parser.add_argument("--db", type=Path, default=Path("results") / "predictor.db",
                        help="each seed's database is this stem + -seedS")  # fmt: skip
    args = parser.parse_args()
    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC: {machine()}", flush=True)
    device = local_device()
    sampler = LoadSampler()
    try:
        with sampler.running():
            for runtime in args.runtime or [Runtime.ONNXRUNTIME, Runtime.LITERT]:
                runs = [run_seed(runtime, seed, args, device) for seed in args.seed or [0]]
                print(f"\n{sampler.text()}")
                print_table(runtime, runs)
    finally:
        device.cleanup()
    print(f"\n{sampler.text()}")


if __name__ == "__main__":
    main()
