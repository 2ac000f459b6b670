"""How long `flopgap predict --grid` takes to rank a 100-configuration grid: cold (every configuration exported and
its kernels extracted) and warm (artifacts and kernel lists cached), each in a fresh process, as a user runs it.

The predictor is fitted on one block's kernels with made-up times (what it predicts does not matter here, only how
fast the grid is ranked), stored in a results database of its own. A benchmark: it prints figures, asserts nothing.

    python benchmarks/grid_search.py [--repeats 3] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["--grid", "cin=16,32,48,64,96", "--grid", "cout=32,64,96,128,160", "--grid", "h=14,28,42,56"]  # 100 points


def _store_predictor(db: Path, cache: Path) -> None:
    from devices.vocabulary import Format, Precision, Runtime
    from exporters.export import export
    from harness.predict.extract import extract_kernels
    from harness.predict.predictor import TrainingRow, fit_predictor
    from harness.store import Store
    from harness.zoo.registry import resolve

    art = export(resolve("separable_conv"), Format.ONNX, Precision.FP32, cache_dir=cache)
    kernels = extract_kernels(art.path, Runtime.ONNXRUNTIME)
    rows = [TrainingRow(k, 1 + k.flops / 1e4 + k.bytes_moved / 1e3, "space") for k in kernels * 8]
    predictor = fit_predictor({"device": "local", "runtime": "onnxruntime"}, rows, [])
    with Store(db) as store:
        store.add_predictor("local", "onnxruntime", 1, "fp32", "lightgbm", predictor.versions, predictor.to_json(), {})


def _machine() -> str:
    """The machine in full, as flopgap identifies it (results must say exactly which machine made them)."""
    from devices.inventory import load_inventory, open_device
    from harness.store.identity import full_identity

    device = open_device(load_inventory(None).get("local"))
    try:
        return f"{full_identity(device.facts())}, Python {platform.python_version()}"
    finally:
        device.cleanup()


def _rank(db: Path, cache: Path) -> float:
    argv = [sys.executable, "-m", "harness.cli", "predict", "separable_conv", "--runtime", "onnxruntime", *GRID,
            "--db", str(db), "--cache-dir", str(cache), "--format", "csv"]  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    took = time.perf_counter() - started
    assert len(out.strip().splitlines()) == 101, out  # a header and 100 configurations
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="warm runs")
    parser.add_argument("--cache-dir", type=Path, help="artifact cache (default: a new temporary one, so cold is cold)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or Path(tmp) / "cache"
        db = Path(tmp) / "grid.db"
        _store_predictor(db, cache)
        print(f"machine: {_machine()}")
        cold = _rank(db, cache)
        print(f"cold (100 exports + kernel extraction): {cold:.1f} s")
        warm = [_rank(db, cache) for _ in range(args.repeats)]
        print(f"warm, whole process incl. start-up: median {statistics.median(warm):.2f} s "
              f"(min {min(warm):.2f}, max {max(warm):.2f}, {len(warm)} runs)")  # fmt: skip


if __name__ == "__main__":
    main()
