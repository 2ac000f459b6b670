"""An adaptation fitted again on measurements already taken: in each database of ``benchmarks/predictor_accuracy.py``
run with ``--adapt-threads N``, the rows and models its adaptation measured (the points of its ``predictor-adapt``
runs) adapt the stored source predictor again with the code as it is now, scored on the random nets the run
measured at N threads; beside it, the full build there refitted (on every row of that context, as the build
had them) and the source unadapted. An A/B of a change to the adaptation where the measurements are the same. A
benchmark: it reads stored points, prints figures, asserts nothing.

    python benchmarks/adapt_refit.py RUN-seed0.db [RUN-seed1.db ...] --runtime onnxruntime

Each cell: within ±5% / within ±10% / RMSE.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from refit_accuracy import cell, load, refit, score

ADAPT_RUN = "predictor-adapt "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("databases", nargs="+", type=Path, help="accuracy-run databases (the -seedS.db files)")
    parser.add_argument("--runtime", required=True, choices=["litert", "onnxruntime"])
    args = parser.parse_args(argv)
    for db in args.databases:
        if not db.is_file():
            raise SystemExit(f"{db}: no such database; give the -seedS.db files predictor_accuracy.py wrote")

    from harness.predict.adapt import adapt_from, scaling_note
    from harness.predict.predictor import KernelPredictor
    from harness.store import Store

    print("| database | threads | adaptation's rows | adapted (this code) | full build | unadapted |")
    print("|---|---|---|---|---|---|")
    for db in args.databases:
        with Store(db, readonly=True) as store:
            runs = store.runs_frame()
            runs = runs[runs["spec_name"].astype(str).str.startswith(ADAPT_RUN)]
            if runs.empty:
                print(f"| {db.parent.name}/{db.name} | - | no adaptation stored (run with --adapt-threads N) | | | |")
                continue
            source_id = int(str(runs["spec_name"].iloc[-1]).split("from=")[1].split()[0])
            measured: set[int] = set()
            for run_id in runs["run_id"]:
                measured |= {int(p) for p in store.points_frame(int(run_id))["point_id"]}
            threads = int(store.points_frame(int(runs["run_id"].iloc[-1]))["threads"].iloc[0])
            row = store.predictor(source_id)
            if row is None:
                raise SystemExit(f"{db}: the adaptation's source predictor {source_id} is not stored")
            source = KernelPredictor.from_json(row.model)
        dataset, nets = load(db, args.runtime, threads)
        rows = [r for r in dataset.rows if r.point_id in measured]
        models = [(m.kernels, m.target_ms * 1e3) for m in dataset.models if m.point_id in measured and m.kernels]
        adapted = adapt_from(source, rows, models)
        print(f"| {db.parent.name}/{db.name} | {threads} | {len(rows)} rows, {len(models)} models "
              f"({scaling_note(adapted.summary).split(' at ')[-1]}) | {cell(score(adapted, nets))} | "
              f"{cell(score(refit(dataset), nets))} | {cell(score(source, nets))} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
