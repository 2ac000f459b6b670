"""How well the measurement a predictor is judged against repeats: the same random nets, measured by two runs of
``benchmarks/predictor_accuracy.py`` (two databases, hours apart or on two machines), compared net by net. A benchmark:
it reads stored points, prints figures, asserts nothing.

    python benchmarks/net_repeatability.py RUN_A-seed0.db RUN_B-seed0.db [RUN_C-seed0.db ...] [--runtime litert]

For every pair of databases and each runtime: the nets both measured (same label: the same net of the same seed),
the median ratio of their figures (the level: the machine faster or slower as a whole), the share within ±5% and
±10% of each other, the share within ±10% once the level is divided out, and the standard deviation of the log
ratio; B is scored against A as a prediction is against a measurement. A net's figure is its p10
(:func:`harness.predict.dataset.target_ms`), what the predictor is fitted to and scored against.

The last column is what that noise leaves to a predictor exact in expectation (level aside): if each run adds its
own log-normal noise of equal size to a net, one run's noise is the log-sd over the square root of 2, and such a
predictor lands within ±10% of one measurement with probability ``2·Φ(ln 1.1 / σ) − 1``. A ±10% target above that
share cannot be shown on that machine, whatever the predictor.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Agreement:
    nets: int
    level: float  # median ratio b / a
    within5: float
    within10: float
    within10_level_divided: float
    log_sd: float

    @property
    def ceiling(self) -> float:
        """Share within ±10% of one measurement for a predictor exact in expectation (see the module doc)."""
        sigma = self.log_sd / math.sqrt(2)
        return 1.0 if sigma == 0 else math.erf(math.log(1.1) / sigma / math.sqrt(2))


def agreement(a: dict[str, float], b: dict[str, float]) -> Agreement | None:
    """Figures of the nets both measured (label -> ms); None when they share none."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    logs = np.log([b[k] / a[k] for k in common])
    level = float(np.median(logs))
    return Agreement(
        nets=len(common),
        level=float(np.exp(level)),
        within5=float(np.mean(np.abs(np.expm1(logs)) <= 0.05)),
        within10=float(np.mean(np.abs(np.expm1(logs)) <= 0.10)),
        within10_level_divided=float(np.mean(np.abs(np.expm1(logs - level)) <= 0.10)),
        log_sd=float(np.std(logs)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("databases", nargs="+", type=Path, help="two or more accuracy-run databases")
    parser.add_argument("--runtime", action="append", default=None, help="default: every runtime they share")
    args = parser.parse_args(argv)
    if len(args.databases) < 2:
        parser.error("give two or more databases of predictor_accuracy.py runs (the same seed)")

    from harness.measure.stats import target_ms
    from harness.predict.dataset import RANDOM_NETS, optional_float
    from harness.store import PointStatus, Store

    def nets(db: Path) -> tuple[dict[str, dict[str, float]], str]:
        if not db.is_file():
            raise SystemExit(f"{db}: no such database; give the -seedS.db files predictor_accuracy.py wrote")
        with Store(db, readonly=True) as store:
            points = store.points_frame()
        points = points[(points["status"] == PointStatus.DONE) & (points["threads"] == 1)
                        & points["model_label"].astype(str).str.startswith(RANDOM_NETS)]  # fmt: skip
        out: dict[str, dict[str, float]] = {}
        for r in points.itertuples():
            out.setdefault(str(r.runtime), {})[str(r.model_label)] = target_ms(r.median_ms, optional_float(r.p10_ms))
        done = f"{points['updated_at'].min()[:16]} to {points['updated_at'].max()[11:16]}" if len(points) else "none"
        return out, done

    loaded = {db: nets(db) for db in args.databases}
    for db, (_, done) in loaded.items():
        print(f"{db}: random nets' points completed {done} UTC")
    print("| runtime | A | B | nets | level B/A | within ±5% | within ±10% | ±10%, level divided out | log-sd | "
          "ceiling for an exact predictor |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")

    def name(db: Path) -> str:
        return f"{db.parent.name}/{db.name}"

    for (db_a, (a, _)), (db_b, (b, _)) in itertools.combinations(loaded.items(), 2):
        for runtime in args.runtime or sorted(set(a) & set(b)):
            found = agreement(a.get(runtime, {}), b.get(runtime, {}))
            if found is None:
                print(f"| {runtime} | {name(db_a)} | {name(db_b)} | 0 | - | - | - | - | - | - |")
                continue
            print(f"| {runtime} | {name(db_a)} | {name(db_b)} | {found.nets} | {found.level:.3f} | "
                  f"{found.within5:.0%} | {found.within10:.0%} | {found.within10_level_divided:.0%} | "
                  f"{found.log_sd:.1%} | {found.ceiling:.0%} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
