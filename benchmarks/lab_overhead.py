"""What a lab costs over measuring locally, on a real two-node Ray cluster on 127.0.0.1 (one CPU per node).

1. The same point measured through the lab (the device actor on node B) and locally (this process), trials
   interleaved: the ratio of the medians (the runner is the same process either way: goal 1.00 +- 0.02) and the
   scheduling overhead per trial (wall time of a lab trial minus a local one: object store, actor call, result).
2. A sweep of two devices, each on its own node, against the same sweep one device after the other (wall time).

Both devices are this machine's own (local transport), so on a machine with fewer free cores than devices the
parallel sweep shares them. A benchmark: it prints figures, asserts nothing.

    python benchmarks/lab_overhead.py [--pairs 10] [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node and driver on 127.0.0.1

SWEEP = """
name = "lab overhead"
runtimes = ["onnxruntime"]
devices = {devices}
[[models]]
name = "conv1x1"
params = {{ cin = 32, cout = 32, h = 16, w = 16 }}
[[models]]
name = "depthwise_conv"
params = {{ channels = 32, h = 16, w = 16 }}
[protocol]
trials = 3
warmup_runs = 5
warmup_seconds = 0
runs = {runs}
min_seconds = 0
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10, help="interleaved lab/local trial pairs")
    ap.add_argument("--runs", type=int, default=200, help="timed runs per trial")
    args = ap.parse_args()

    from ray.cluster_utils import Cluster

    from devices.base import TrialRequest
    from devices.inventory import open_device, parse_inventory
    from devices.vocabulary import Format, Precision
    from exporters.export import export
    from harness.lab.driver import LabExporter, lab_devices
    from harness.lab.membership import join_devices, leave, registry
    from harness.lab.ray_session import connect
    from harness.measure.spec import parse_spec
    from harness.measure.sweep import run_sweep
    from harness.store import Store
    from harness.zoo.registry import resolve

    tmp = Path(tempfile.mkdtemp(prefix="fglab"))
    node = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024, "include_dashboard": False}
    cluster = Cluster(initialize_head=False)
    try:
        nodes = [cluster.add_node(**node, node_ip_address="127.0.0.1", temp_dir=str(tmp / "ray")) for _ in range(2)]
        cluster.wait_for_nodes()
        ray = connect(str(cluster.address), _node_ip_address="127.0.0.1")
        registry(ray, str(nodes[0].node_id))
        cfg = parse_inventory('[devices.a]\ntransport = "local"\n[devices.b]\ntransport = "local"\n', base=tmp)
        join_devices(ray, [cfg["a"]], "node-a", str(nodes[0].node_id), tmp / "a")
        join_devices(ray, [cfg["b"]], "node-b", str(nodes[1].node_id), tmp / "b")

        # 1. Interleaved pairs: lab trial, local trial, on the same artifact.
        art = export(resolve("conv1x1"), Format.ONNX, Precision.FP32, cache_dir=tmp / "cache")
        request = TrialRequest(warmup_runs=5, warmup_seconds=0, runs=args.runs, min_seconds=0)
        lab = lab_devices(ray, ["b"]).devices["b"]
        here = open_device(cfg["b"])
        lab.measure(art.path, request, sha256=art.sha256)  # the blob into the object store, the runner pushed
        here.measure(art.path, request, sha256=art.sha256)
        med: dict[str, list[float]] = {"lab": [], "local": []}
        wall: dict[str, list[float]] = {"lab": [], "local": []}
        for _ in range(args.pairs):
            for kind, dev in (("lab", lab), ("local", here)):
                started = time.perf_counter()
                result = dev.measure(art.path, request, sha256=art.sha256)
                wall[kind].append(time.perf_counter() - started)
                med[kind].append(float(result.median_ms or 0))
        here.cleanup()
        ratio = statistics.median(med["lab"]) / statistics.median(med["local"])
        overhead = [(a - b) * 1000 for a, b in zip(wall["lab"], wall["local"], strict=True)]

        # 2. Two devices on two nodes at once, against one after the other (fresh databases, artifacts cached).
        def sweep(devices: list[str], db: Path) -> float:
            text = SWEEP.format(devices=devices, runs=args.runs)
            spec = parse_spec(text, "lab overhead")
            found = lab_devices(ray, devices)
            exporter = LabExporter(ray, found.shelf, tmp / "cache", parity=False)
            started = time.perf_counter()
            with Store(db) as store:
                run_sweep(spec, text, store, found.devices, exporter, device_threads=found.threads)
            return time.perf_counter() - started

        sweep(["a", "b"], tmp / "warm.db")  # exports done once, runners pushed
        both = sweep(["a", "b"], tmp / "both.db")
        apart = sweep(["a"], tmp / "a.db") + sweep(["b"], tmp / "b.db")
        leave(ray)
    finally:
        import ray as ray_module

        ray_module.shutdown()
        cluster.shutdown()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end")
    print(f"median of trial medians: lab {statistics.median(med['lab']):.4f} ms, "
          f"local {statistics.median(med['local']):.4f} ms, ratio {ratio:.3f} ({args.pairs} pairs)")  # fmt: skip
    print(f"scheduling overhead per trial: median {statistics.median(overhead):.1f} ms "
          f"(min {min(overhead):.1f}, max {max(overhead):.1f})")  # fmt: skip
    print(f"2-device sweep: both nodes at once {both:.1f} s, one device after the other {apart:.1f} s, "
          f"speed-up {apart / both:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
