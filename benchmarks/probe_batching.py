"""Seconds per kernel probe on the local device: one runner process per probe against batches of
:data:`harness.predict.probe_trials.PROBE_BATCH` probes per process, with the build's own probe request (ONNX Runtime:
timed runs, per-node profile and the optimized graph brought back). A benchmark: it prints figures, asserts nothing.

    python benchmarks/probe_batching.py [--probes 24] [--repeats 2]

The probes are the first ``--probes`` of the build's sampling order (seed 0); each repeat times both ways, the
order alternating, so drift spreads over both.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    import numpy as np

    from devices.inventory import LocalConfig, open_device
    from devices.vocabulary import Runtime
    from harness.measure.trial import trial_request
    from harness.predict.build import PROBE_PROTOCOL
    from harness.predict.probe_trials import PROBE_BATCH, PROFILE_RUNS
    from harness.predict.probes import probe_artifact
    from harness.predict.space import sample

    runtime = Runtime.ONNXRUNTIME
    arts = [probe_artifact(cfg, runtime) for cfg in sample(np.random.default_rng(0), runtime, args.probes)]
    request = replace(trial_request(PROBE_PROTOCOL, 1, None, profile=True, profile_runs=PROFILE_RUNS), save_graph=True)
    per_probe: dict[str, list[float]] = {"one process per probe": [], f"{PROBE_BATCH} probes per process": []}
    with tempfile.TemporaryDirectory(prefix="flopgap-bench-") as tmp:
        device = open_device(LocalConfig(name="local", transport="local", work_dir=Path(tmp)))
        try:
            for repeat in range(args.repeats):
                ways = list(per_probe)
                for way in ways if repeat % 2 == 0 else ways[::-1]:
                    started = time.perf_counter()
                    if way.startswith("one"):
                        for art in arts:
                            device.measure(art.path, request, art.sha256)
                    else:
                        for i in range(0, len(arts), PROBE_BATCH):
                            chunk = arts[i : i + PROBE_BATCH]
                            device.measure_many([a.path for a in chunk], request, [a.sha256 for a in chunk])
                    per_probe[way].append((time.perf_counter() - started) / len(arts))
        finally:
            device.cleanup()
    print(f"{platform.node()} ({platform.machine()}, {platform.processor() or 'cpu'}), {len(arts)} ONNX Runtime "
          f"probes, {args.repeats} repeats")  # fmt: skip
    for way, values in per_probe.items():
        spread = f"min {min(values):.3f} / max {max(values):.3f}"
        print(f"  {way:>26}: {statistics.median(values):.3f} s per probe (median; {spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
