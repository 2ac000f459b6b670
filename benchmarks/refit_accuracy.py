"""A change to the predictor scored on measurements already taken: each stored build of
``benchmarks/predictor_accuracy.py`` refitted with the code as it is now and scored on the random nets its run
measured, with no new timing. A benchmark: it reads stored points, prints figures, asserts nothing.

    python benchmarks/refit_accuracy.py RUN-seed0.db [RUN2-seed1.db ...] --runtime litert [--without TERM]
        [--rows probes] [--cross]

Per database: the build's kernel rows and whole models (zoo and training nets) refitted, then its random nets
predicted and compared with their p10 (:func:`harness.measure.stats.target_ms`): within ±5% / within ±10% / RMSE.
``--without TERM`` fits each build a second time with one of the regressors' base terms
(:data:`harness.predict.kernels.BASE_TERMS`) held at zero, on the same rows, and names the nets whose error moved by
more than 2 points: an A/B of that term where the measurements are the same, so the machine's spell cancels out.
``--rows probes`` refits on the probes' kernel rows alone (leaving out the kernels timed inside zoo models and
training nets; the whole models still calibrate): what the in-context rows bring, on the same measurements.
``--cross`` scores every build against every database's measurement of the nets they share (the same seed's nets
measured by several runs): how much of a score is the build, and how much the measurement.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from harness.predict.dataset import Dataset
    from harness.predict.kernels import Kernel
    from harness.predict.predictor import KernelPredictor

MOVED = 0.02  # a net whose error moved by more than this between the two fits is named


@dataclass(frozen=True)
class Net:
    label: str
    kernels: list[Kernel]
    measured_us: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("databases", nargs="+", type=Path, help="accuracy-run databases (the -seedS.db files)")
    parser.add_argument("--runtime", required=True, choices=["litert", "onnxruntime"])
    parser.add_argument("--without", default=None, help="a base term to refit without as well (an A/B)")
    parser.add_argument("--cross", action="store_true", help="every build against every database's nets")
    parser.add_argument(
        "--rows",
        choices=["all", "probes"],
        default="all",
        help="kernel rows to refit on: all, or the probes' alone (no kernels timed inside models)",
    )
    args = parser.parse_args(argv)

    from harness.predict.kernels import BASE_TERMS

    if args.without is not None and args.without not in BASE_TERMS:
        parser.error(f"--without {args.without}: no such base term; one of {', '.join(BASE_TERMS)}")
    for db in args.databases:
        if not db.is_file():
            raise SystemExit(f"{db}: no such database; give the -seedS.db files predictor_accuracy.py wrote")

    loaded = {db: load(db, args.runtime, probes_only=args.rows == "probes") for db in args.databases}
    print(
        f"| database | random nets | within ±5% / ±10% / RMSE{'' if args.without is None else ' (this code)'} |"
        + ("" if args.without is None else f" without {args.without} | nets moved by more than 2 points |")
    )
    print("|---|---|---|" + ("" if args.without is None else "---|---|"))
    fits = {}
    for db, (dataset, nets) in loaded.items():
        fits[db] = refit(dataset)
        errors = score(fits[db], nets)
        row = f"| {db.parent.name}/{db.name} | {len(nets)} | {cell(errors)} |"
        if args.without is not None:
            with term_held_at_zero(args.without):
                other = score(refit(dataset), nets)
            moved = [f"{short(n.label)} {b:+.1%} -> {a:+.1%}"
                     for n, a, b in zip(nets, errors, other, strict=True) if abs(a - b) > MOVED]  # fmt: skip
            row += f" {cell(other)} | {'; '.join(moved) or 'none'} |"
        print(row, flush=True)
    if args.cross:
        print("\n| build \\ nets measured by | " + " | ".join(f"{db.parent.name}/{db.name}" for db in loaded) + " |")
        print("|---|" + "---|" * len(loaded))
        for build in loaded:
            cells = []
            ours = {n.label for n in loaded[build][1]}
            for _, nets in loaded.values():
                shared = [n for n in nets if n.label in ours] or nets
                cells.append(cell(score(fits[build], shared)))
            print(f"| {build.parent.name}/{build.name} | " + " | ".join(cells) + " |", flush=True)
    return 0


def short(label: str) -> str:
    """``...random_net[index=12,seed=0,size=full](...)`` -> ``#12``."""
    return "#" + label.split("index=")[1].split(",")[0] if "index=" in label else label


def cell(errors: np.ndarray) -> str:
    if len(errors) == 0:
        return "-"
    within5, within10 = np.mean(np.abs(errors) <= 0.05), np.mean(np.abs(errors) <= 0.10)
    return f"{within5:.0%} / {within10:.0%} / {np.sqrt(np.mean(errors**2)):.1%}"


def load(db: Path, runtime: str, threads: int = 1, probes_only: bool = False) -> tuple[Dataset, list[Net]]:
    """The build's dataset (``probes_only``: its probes' kernel rows alone) and the random nets the run measured at
    ``threads`` (their kernels as the build's predictor sees them: ONNX Runtime's from the graph the device
    optimized, stored; LiteRT's from the file)."""
    from dataclasses import replace

    from devices.vocabulary import Runtime
    from harness.measure.stats import target_ms
    from harness.predict.dataset import (
        RANDOM_NETS,
        SPACE,
        PredictContext,
        latest_versions,
        load_dataset,
        optional_float,
    )
    from harness.predict.device_graph import kernel_key
    from harness.predict.extract import extract_kernels
    from harness.predict.kernels import Kernel
    from harness.store import PointStatus, Store

    rt = Runtime(runtime)
    store = Store(db, readonly=True)
    points = store.points_frame()
    points = points[(points["runtime"] == rt.value) & (points["threads"] == threads)
                    & (points["status"] == PointStatus.DONE)]  # fmt: skip
    if points.empty:
        raise SystemExit(f"{db}: no {runtime} point at {threads} thread(s); give a {runtime} accuracy run's database")
    ctx = PredictContext(str(points["device"].iloc[0]), rt, threads)
    dataset = load_dataset(store, ctx, latest_versions(store, ctx))
    if probes_only:
        dataset = replace(dataset, rows=[r for r in dataset.rows if r.source == SPACE])
    paths = store.artifacts_frame().set_index("sha256")["path"]
    key = kernel_key(rt, ctx.device)
    nets = []
    for r in points[points["model_label"].astype(str).str.startswith(RANDOM_NETS)].itertuples():
        sha = str(r.artifact_sha)
        if rt is Runtime.ONNXRUNTIME:
            kernels = [Kernel.from_json(row.kernel) for row in store.kernels_of(sha, key)]
        else:
            kernels = extract_kernels(Path(str(paths[sha])), rt, cache=True)
        if kernels:
            nets.append(Net(str(r.model_label), kernels, target_ms(r.median_ms, optional_float(r.p10_ms)) * 1e3))
    return dataset, nets


def refit(dataset: Dataset) -> KernelPredictor:
    """The predictor this code fits on the build's rows, calibrated on its whole models (as the build did)."""
    from harness.predict.dataset import calibration_set
    from harness.predict.predictor import fit_predictor

    return fit_predictor(dataset.context.to_json(), dataset.rows, *calibration_set(dataset.models))


def score(predictor: KernelPredictor, nets: list[Net]) -> np.ndarray:
    """Each net's relative error, predicted over measured minus one."""
    return np.array([predictor.predict(n.kernels).total_ms * 1e3 / n.measured_us - 1 for n in nets])


@contextlib.contextmanager
def term_held_at_zero(term: str) -> Iterator[None]:
    """Every kernel's ``term`` reads zero while inside (its coefficient then fits to nothing)."""
    from harness.predict import kernels

    index = kernels.BASE_TERMS.index(term)
    original = kernels.base_terms

    def without(kernel: Kernel) -> list[float]:
        terms = original(kernel)
        terms[index] = 0.0
        return terms

    kernels.base_terms = without
    try:
        yield
    finally:
        kernels.base_terms = original


if __name__ == "__main__":
    raise SystemExit(main())
