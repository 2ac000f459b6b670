"""A real multi-node Ray cluster on 127.0.0.1 for the lab tests: one CPU and a small object store per node."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

NODE = {
    "num_cpus": 1,
    "object_store_memory": 80 * 1024 * 1024,
    "include_dashboard": False,
    "node_ip_address": "127.0.0.1",
}


@dataclass
class LabCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    nodes: dict[str, Any]  # host label -> ray._private.node.Node

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    temp: str = ""

    def node_id(self, host: str) -> str:
        return str(self.nodes[host].node_id)

    def add_host(self, host: str) -> str:
        """Another node, for a host a test will kill; returns its node id."""
        self.nodes[host] = self.cluster.add_node(**NODE, temp_dir=self.temp)
        self.cluster.wait_for_nodes()
        return self.node_id(host)

    def processes(self, host: str) -> list[psutil.Process]:
        """Every live process of ``host``'s node: its raylet and all it started (workers, what they run)."""
        raylet = psutil.Process(self.nodes[host].all_processes["raylet"][0].process.pid)
        return [raylet, *raylet.children(recursive=True)]

    def kill_host(self, host: str) -> None:
        """The host dies: its raylet and every worker of its node are killed (SIGKILL), nothing cleaned up, and all
        are gone when this returns. Ray's ``remove_node`` kills the raylet but leaves its workers to notice and exit
        on their own: an actor call made meanwhile could still be served (a test's next trial on a "dead" host
        once was, and the host's second point got a trial it should not have)."""
        procs = self.processes(host)
        self.cluster.remove_node(self.nodes.pop(host), allow_graceful=False)
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        _, alive = psutil.wait_procs(procs, timeout=30)
        assert not alive, f"processes of host {host} outlived a SIGKILL: {alive}"


@contextlib.contextmanager
def lab_cluster(hosts: list[str]) -> Iterator[LabCluster]:
    """A head (the first host) and one node per other host; shut down whatever happens, no raylet left behind."""
    from ray.cluster_utils import Cluster

    # Ray's session dir holds Unix sockets: keep its path short.
    temp = tempfile.mkdtemp(prefix="fgray", dir="/tmp")
    # Ray notes the newest cluster's address in <system temp>/ray; that dir must exist.
    Path(tempfile.gettempdir(), "ray").mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=False)
    try:
        nodes = {hosts[0]: cluster.add_node(**NODE, temp_dir=temp)}
        for host in hosts[1:]:
            nodes[host] = cluster.add_node(**NODE, temp_dir=temp)
        cluster.wait_for_nodes()
        yield LabCluster(cluster, nodes, temp)
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
