"""How well a LiteRT kernel probe's time repeats from one runner process to the next, timed in one instance of the
probe against :data:`harness.predict.build.PROBE_INSTANCES` instances (the build's probe protocol, its runs shared out
between them). A benchmark: it prints figures, asserts nothing.

    python benchmarks/probe_instances.py [--probes 40] [--processes 3] [--instances 3]

The probes are the first ``--probes`` of the build's LiteRT sampling order (seed 0). Each of ``--processes`` rounds
times every probe both ways, each way one runner process for all the probes, the order of the ways alternating. A
probe's figure is its p10 (what a build learns); two rounds agree on a probe when their figures are within ±10% of
each other. The spread is the standard deviation of the log ratio between rounds, over probes and pairs of rounds.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--instances", type=int, default=None, help="default: the build's PROBE_INSTANCES")
    args = parser.parse_args(argv)

    import numpy as np

    from devices.inventory import LocalConfig, open_device
    from devices.result import TrialResult
    from devices.runner import cpu_identity
    from devices.vocabulary import Runtime
    from harness.measure.trial import trial_request
    from harness.predict.build import PROBE_INSTANCES, PROBE_PROTOCOL
    from harness.predict.probes import probe_artifact
    from harness.predict.space import sample

    instances = args.instances or PROBE_INSTANCES
    runtime = Runtime.LITERT
    arts = [probe_artifact(cfg, runtime) for cfg in sample(np.random.default_rng(0), runtime, args.probes)]
    ways = {n: f"{n} instance{'s' if n > 1 else ''}" for n in (1, instances)}
    p10: dict[int, list[np.ndarray]] = {n: [] for n in ways}
    seconds: dict[int, list[float]] = {n: [] for n in ways}
    with tempfile.TemporaryDirectory(prefix="flopgap-bench-") as tmp:
        device = open_device(LocalConfig(name="local", transport="local", work_dir=Path(tmp)))
        try:
            for round_ in range(args.processes):
                for n in list(ways) if round_ % 2 == 0 else list(ways)[::-1]:
                    request = trial_request(PROBE_PROTOCOL.model_copy(update={"instances": n}), 1)
                    started = time.perf_counter()
                    results = device.measure_many([a.path for a in arts], request, [a.sha256 for a in arts])
                    seconds[n].append((time.perf_counter() - started) / len(arts))
                    p10[n].append(np.array([np.percentile(r.samples_ns, 10) / 1e3 if isinstance(r, TrialResult)
                                            else np.nan for r in results]))  # fmt: skip
        finally:
            device.cleanup()

    cpu = cpu_identity()
    print(f"{platform.node()}: {cpu.get('cpu_vendor')} family {cpu.get('cpu_family')} model "
          f"{cpu.get('cpu_model_number')}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
          f"{len(arts)} LiteRT probes, {args.processes} runner processes each way")  # fmt: skip
    size = np.nanmedian(np.vstack(p10[1]), axis=0)
    bands = [("all", np.ones_like(size, dtype=bool)), ("< 100 us", size < 100), (">= 100 us", size >= 100)]
    for n, name in ways.items():
        rows = np.vstack(p10[n])
        parts = []
        for label, mask in bands:
            logs = np.concatenate([np.log(rows[i, mask] / rows[j, mask])
                                   for i, j in itertools.combinations(range(len(rows)), 2)])  # fmt: skip
            logs = logs[np.isfinite(logs)]
            if logs.size:
                within = float(np.mean(np.abs(np.expm1(logs)) <= 0.10))
                parts.append(f"{label} ({int(mask.sum())}): spread {np.std(logs):.1%}, agree ±10% {within:.0%}")
        print(f"  {name:>11}: {np.median(seconds[n]):.3f} s per probe; " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
