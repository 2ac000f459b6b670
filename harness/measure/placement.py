"""Cluster-aware placement of sweep points: which CPU ids a point's cluster (``big``, ``little``...) is on its
device, read from that device's facts once they are known.

A point names a cluster when the spec lists ``clusters``, or when its device's inventory ``affinity`` is a cluster
name. Its CPU ids become part of the point (its options, hence its key), so big and LITTLE points are stored apart and
each trial is pinned there. A device asked for a cluster it does not have stops the sweep before anything is measured
with one line naming the device and the clusters it has (:class:`devices.placement.ClusterMissing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from devices.arm_cores import ClusterName
from devices.base import Device
from devices.facts import DeviceFacts
from devices.placement import place
from harness.measure.spec import SweepPoint


def place_points(
    points: list[SweepPoint], facts: Mapping[str, DeviceFacts], devices: Mapping[str, Device]
) -> list[SweepPoint]:
    """``points`` with their clusters' CPU ids filled in from each device's ``facts``.

    A point without a cluster takes its device's inventory cluster, if any. A device whose facts could not be read
    (unreachable) keeps the cluster name without CPU ids; its points fail when measured, with the device's reason.
    """
    placed: dict[tuple[str, ClusterName], tuple[int, ...]] = {}
    out = []
    for p in points:
        cluster = p.cluster or getattr(devices.get(p.device), "cluster", None)
        if cluster is None:
            out.append(p)
            continue
        device_facts = facts.get(p.device)
        if not device_facts:
            out.append(replace(p, cluster=cluster))
            continue
        key = (p.device, cluster)
        if key not in placed:
            placed[key] = place(p.device, device_facts, cluster).cpus
        out.append(replace(p, cluster=cluster, cpus=placed[key]))
    return out
