"""The lab's memory footprint per node, on a real two-node Ray cluster on 127.0.0.1 (one CPU per node).

The head ('node-a') and a second node ('node-b') each hold one device actor (this machine's own device) that has
measured one trial, as after `flopgap lab join` and a sweep. Per node: the resident memory (RSS, and USS: the pages
only that process holds) of each of its Ray processes (gcs_server on the head, raylet with its object store,
dashboard agent, runtime-env agent, log monitor, the device actor's worker and idle workers), summed. The driver is
not counted (it is any `flopgap sweep --lab`). A benchmark: it prints figures, asserts nothing.

    python benchmarks/lab_memory.py
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node and driver on 127.0.0.1

MIB = 1024 * 1024


def node_processes(node: Any) -> list[tuple[str, psutil.Process]]:
    """Every live process of a Ray node with its part: those the node started (by Ray's own process type: raylet,
    gcs_server, log_monitor...) and everything they started (agents and workers, by their process title)."""
    found: dict[int, tuple[str, psutil.Process]] = {}
    for kind, infos in node.all_processes.items():
        for info in infos:
            try:
                root = psutil.Process(info.process.pid)
                children = root.children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            found[root.pid] = (kind, root)
            for proc in children:
                found.setdefault(proc.pid, (_title(proc), proc))
    return list(found.values())


def _title(proc: psutil.Process) -> str:
    """A worker's part from its title: Ray names it by the actor it hosts (``ray::DeviceActor``) or ``ray::IDLE``."""
    try:
        title = " ".join(proc.cmdline())
    except psutil.NoSuchProcess:
        return "gone"
    for key in ("DashboardAgent", "RuntimeEnvAgent", "DeviceActor", "Registry", "IDLE"):
        if f"ray::{key}" in title:
            return f"ray::{key}"
    return title.split()[0] if title else proc.name()


def footprint(node: Any) -> dict[str, tuple[int, int, int]]:
    """Role -> (processes, RSS bytes, USS bytes)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for part, proc in node_processes(node):
        try:
            mem = proc.memory_full_info()
            row = out[part]
        except psutil.NoSuchProcess:
            continue
        row[0] += 1
        row[1] += mem.rss
        row[2] += mem.uss
    return {k: (v[0], v[1], v[2]) for k, v in sorted(out.items())}


def main() -> None:
    from ray.cluster_utils import Cluster

    from devices.base import TrialRequest
    from devices.inventory import parse_inventory
    from devices.vocabulary import Format, Precision
    from exporters.export import export
    from harness.lab.driver import lab_devices
    from harness.lab.membership import join_devices, leave, registry
    from harness.lab.ray_session import connect
    from harness.zoo.registry import resolve

    tmp = Path(tempfile.mkdtemp(prefix="fglab"))
    Path(tempfile.gettempdir(), "ray").mkdir(parents=True, exist_ok=True)  # Ray notes the newest cluster there
    node = {"num_cpus": 1, "object_store_memory": 80 * MIB, "include_dashboard": False}
    cluster = Cluster(initialize_head=False)
    try:
        nodes = [cluster.add_node(**node, node_ip_address="127.0.0.1", temp_dir=str(tmp / "ray")) for _ in range(2)]
        cluster.wait_for_nodes()
        ray = connect(str(cluster.address), _node_ip_address="127.0.0.1")
        registry(ray, str(nodes[0].node_id))
        cfg = parse_inventory('[devices.a]\ntransport = "local"\n[devices.b]\ntransport = "local"\n', base=tmp)
        join_devices(ray, [cfg["a"]], "node-a", str(nodes[0].node_id), tmp / "a")
        join_devices(ray, [cfg["b"]], "node-b", str(nodes[1].node_id), tmp / "b")
        art = export(resolve("conv1x1"), Format.ONNX, Precision.FP32, cache_dir=tmp / "cache")
        request = TrialRequest(warmup_runs=5, warmup_seconds=0, runs=50, min_seconds=0)
        for name, dev in lab_devices(ray, ["a", "b"]).devices.items():
            dev.measure(art.path, request, sha256=art.sha256)  # each actor has pushed its runner and measured
            print(f"device {name}: one trial measured")
        per_node = {"node-a (head)": footprint(nodes[0]), "node-b": footprint(nodes[1])}
        leave(ray)
    finally:
        import ray as ray_module

        ray_module.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB, "
          f"Ray {ray_module.__version__}, object store 80 MiB per node")  # fmt: skip
    for label, roles in per_node.items():
        print(f"{label}:")
        for name, (count, rss, uss) in roles.items():
            print(f"  {name:24s} x{count}  RSS {rss / MIB:7.1f} MiB  USS {uss / MIB:7.1f} MiB")
        rss_total = sum(r for _, r, _ in roles.values())
        uss_total = sum(u for _, _, u in roles.values())
        print(f"  {'total':24s}     RSS {rss_total / MIB:7.1f} MiB  USS {uss_total / MIB:7.1f} MiB")


if __name__ == "__main__":
    main()
