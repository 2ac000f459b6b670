"""Where on a device a benchmark runs: a cluster name (``big``, ``little``, ``prime``, ``all``) resolved to CPU ids
from the device's facts.

The same name means different CPUs on different devices (``big`` is cpus 4-7 on one phone and 4-6 on another), so a
name is resolved per device, from the cores and maximum frequencies its facts report (``devices/arm_cores.py``). A
device without ARM core information (an x86 machine, an older runner) has one cluster, ``all``: every CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.arm_cores import Cluster, ClusterName, clusters, cores_from_facts, format_cpus, max_khz_from_facts
from devices.core.errors import FlopgapError
from devices.facts import DeviceFacts


class ClusterMissing(FlopgapError):
    """A device was asked for a cluster it does not have; the message names the ones it has."""


def cluster_name(text: str | ClusterName) -> ClusterName:
    """``"little"``, ``"LITTLE"``, ``"Big"`` ... → the :class:`ClusterName`; ValueError naming the allowed ones."""
    if isinstance(text, ClusterName):
        return text
    for name in ClusterName:
        if str(text).strip().lower() == name.value.lower():
            return name
    raise ValueError(f"unknown cluster '{text}'; allowed: {', '.join(cluster_choices())}")


def cpu_ids(ids: list[int]) -> list[int]:
    """CPU ids as given by a user (an inventory's or a spec's ``affinity``): sorted, unique, each >= 0; ValueError
    saying what to give otherwise. Checked where the ids enter, before anything is exported or measured."""
    if any(isinstance(c, bool) for c in ids):  # pydantic would read true as CPU 1
        raise ValueError("give CPU ids >= 0 (e.g. [4, 5, 6, 7]), not true/false")
    if not ids or min(ids) < 0:
        raise ValueError(f"CPU ids are >= 0 (got {ids}); give e.g. [4, 5, 6, 7]")
    return sorted(set(ids))


def cluster_choices() -> list[str]:
    """The names a user writes (lower case, as in the README): big, little, prime, all."""
    return [name.value.lower() for name in (ClusterName.BIG, ClusterName.LITTLE, ClusterName.PRIME, ClusterName.ALL)]


@dataclass(frozen=True)
class Placement:
    """A cluster of one device and its CPU ids."""

    cluster: ClusterName
    cpus: tuple[int, ...]

    @property
    def label(self) -> str:
        """E.g. ``big (cpus 4-7)``."""
        return f"{self.cluster} (cpus {format_cpus(self.cpus)})"


def device_clusters(facts: DeviceFacts) -> list[Cluster]:
    """The clusters of a device with these facts: ARM clusters from its cores, else one ``all`` of every CPU."""
    arm = clusters(cores_from_facts(facts), max_khz_from_facts(facts))
    if arm:
        return arm
    count = facts.get("cpu_count") or facts.get("cores")
    if count is not None and count > 0:
        return [Cluster(ClusterName.ALL, facts.get("cpu_model") or "CPU", tuple(range(count)), None)]
    return []


def place(device: str, facts: DeviceFacts, name: str | ClusterName) -> Placement:
    """The CPUs of cluster ``name`` on ``device``; :class:`ClusterMissing` (one line) when it has none such.

    ``all`` is every CPU of every cluster; ``big`` may span two clusters (two kinds of middle cores).
    """
    wanted = cluster_name(name)
    found = device_clusters(facts)
    if wanted is ClusterName.ALL:
        cpus = sorted(cpu for cluster in found for cpu in cluster.cpus)
    else:
        cpus = sorted(cpu for cluster in found if cluster.name == wanted for cpu in cluster.cpus)
    if cpus:
        return Placement(wanted, tuple(cpus))
    if not found:
        raise ClusterMissing(
            f"device '{device}': its facts name no CPUs, so cluster '{wanted}' cannot be placed; run "
            f"'flopgap devices check {device}', or give CPU ids instead of a cluster name"
        )
    have = sorted({c.name.value for c in found} | {ClusterName.ALL.value}, key=str.lower)
    raise ClusterMissing(
        f"device '{device}' has no '{wanted}' cluster (it has {'; '.join(c.summary() for c in found)}); "
        f"ask for one of: {', '.join(have)}, or give CPU ids in the inventory's 'affinity'"
    )
