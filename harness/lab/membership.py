"""Hosts and devices joining and leaving a lab: the registry, device actors pinned to their host's node."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

from devices.inventory import DeviceConfig
from harness.lab.device_actor import DeviceActor, DeviceStatus
from harness.lab.ray_session import NAMESPACE, LabError
from harness.lab.registry import REGISTRY_NAME, DeviceEntry, Registry, actor_name

TRIAL_QUEUE = 32  # threads of a device actor: status() answers while trials queue on its own lock


def driver_name() -> str:
    """Who is asking, as ``lab status`` shows it."""
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"


# Ray gives the head node this resource (and only it), whatever its address.
HEAD_RESOURCE = "node:__internal_head__"


def registry(ray: ModuleType, node_id: str | None = None) -> Any:
    """The lab's registry actor, created if there is none yet on ``node_id`` or else on the head's node: never on a
    host that may leave or die and take every driver's view of the lab with it."""
    opts: dict[str, Any] = {"name": REGISTRY_NAME, "namespace": NAMESPACE, "lifetime": "detached", "num_cpus": 0}
    where = node_id if node_id is not None else head_node_id(ray)
    if where is not None:
        opts["scheduling_strategy"] = _pinned(where)
    return ray.remote(Registry).options(get_if_exists=True, **opts).remote()


def head_node_id(ray: ModuleType) -> str | None:
    """The head's node id: the live node holding Ray's own head-node resource."""
    for node in ray.nodes():
        if node.get("Alive") and HEAD_RESOURCE in node.get("Resources", {}):
            return str(node["NodeID"])
    return None


def join_devices(ray: ModuleType, configs: list[DeviceConfig], host: str, node_id: str, cache_dir: Path) -> list[str]:
    """One named, detached device actor per config on node ``node_id`` (this host's), recorded in the registry.

    A name another host already has fails with one line naming both hosts (the devices before it stay joined),
    unless that host died (its actor does not answer); the same host joining again replaces its actor.
    Returns the names joined.
    """
    reg = registry(ray)
    joined = []
    for cfg in configs:
        cluster = str(cfg.cluster) if cfg.cluster else None
        entry = DeviceEntry(cfg.name, host, node_id, cfg.transport, str(cfg.runner), cluster, tuple(cfg.threads))
        other = ray.get(reg.claim.remote(entry))
        if other is not None and not _answers(ray, cfg.name):  # its host died: the name is free again
            ray.get(reg.release.remote(cfg.name))
            other = ray.get(reg.claim.remote(entry))
        if other is not None:
            raise LabError(
                f"device '{cfg.name}' of host '{host}' clashes with the lab's device '{cfg.name}' on host '{other}'; "
                "device names are unique across a lab: rename one in its inventory"
            )
        old = _actor(ray, cfg.name)
        if old is not None:
            ray.kill(old)
        actor = (
            ray.remote(DeviceActor)
            .options(
                name=actor_name(cfg.name),
                namespace=NAMESPACE,
                lifetime="detached",
                num_cpus=0,  # a device is not a CPU of the node: exports get every CPU
                max_concurrency=TRIAL_QUEUE,
                scheduling_strategy=_pinned(node_id),
            )
            .remote(cfg, host, str(cache_dir))
        )
        ray.get(actor.node_id.remote())  # wait until it runs (and fail here if it cannot start)
        joined.append(cfg.name)
    return joined


def leave(ray: ModuleType, host: str | None = None) -> list[str]:
    """Remove every device of ``host`` (of the whole lab if None) and, for the whole lab, the registry."""
    reg = registry(ray)
    gone = []
    for entry in ray.get(reg.entries.remote()):
        if host is not None and entry.host != host:
            continue
        actor = _actor(ray, entry.name)
        if actor is not None:
            # Remove what it pushed while its host is there; a dead host or a hung device has nothing to clean.
            with contextlib.suppress(Exception):
                ray.get(actor.close.remote(), timeout=30)
            ray.kill(actor)
        ray.get(reg.release.remote(entry.name))
        gone.append(entry.name)
    if host is None:
        ray.kill(reg)
    return gone


def entries(ray: ModuleType) -> list[DeviceEntry]:
    return list(ray.get(registry(ray).entries.remote()))


def device_actor(ray: ModuleType, name: str) -> Any:
    """The device actor of ``name``; one line naming the lab's devices if there is none."""
    actor = _actor(ray, name)
    if actor is None:
        known = ", ".join(e.name for e in entries(ray)) or "none"
        raise LabError(f"the lab has no device '{name}' (its devices: {known}); join it with 'flopgap lab join'")
    return actor


def statuses(ray: ModuleType, timeout_s: float = 10) -> list[tuple[DeviceEntry, DeviceStatus | str]]:
    """Each device with its status, or one line saying why it does not answer (its host is gone)."""
    from ray.exceptions import GetTimeoutError, RayActorError

    out: list[tuple[DeviceEntry, DeviceStatus | str]] = []
    for entry in entries(ray):
        actor = _actor(ray, entry.name)
        if actor is None:
            out.append((entry, f"no actor: host '{entry.host}' left or died; join it again"))
            continue
        try:
            out.append((entry, ray.get(actor.status.remote(), timeout=timeout_s)))
        except RayActorError:
            out.append((entry, f"host '{entry.host}' is gone (its Ray node died); join it again"))
        except GetTimeoutError:
            out.append((entry, f"no answer within {timeout_s:g} s from host '{entry.host}'"))
    return out


def _answers(ray: ModuleType, name: str, timeout_s: float = 10) -> bool:
    """Whether the device actor of ``name`` is alive (its host's node is up)."""
    from ray.exceptions import GetTimeoutError, RayActorError

    actor = _actor(ray, name)
    if actor is None:
        return False
    try:
        ray.get(actor.node_id.remote(), timeout=timeout_s)
    except RayActorError:
        return False
    except GetTimeoutError:
        return True  # busy or slow, not gone: keep its claim
    return True


def _actor(ray: ModuleType, name: str) -> Any:
    try:
        return ray.get_actor(actor_name(name), namespace=NAMESPACE)
    except ValueError:
        return None


def _pinned(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # Not soft: a device actor anywhere but its own host's node could not reach its device.
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
