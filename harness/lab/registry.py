"""The lab registry: one named, detached actor that lists every device of the lab and the host it hangs off."""

from __future__ import annotations

from dataclasses import dataclass

REGISTRY_NAME = "flopgap-registry"


def actor_name(device: str) -> str:
    """The device actor's name in the lab's namespace."""
    return f"flopgap-device-{device}"


@dataclass(frozen=True)
class DeviceEntry:
    """One device of the lab: where it is (host, Ray node) and what drives it."""

    name: str
    host: str
    node_id: str
    transport: str
    runner: str
    cluster: str | None = None  # the inventory's affinity as a cluster name (big, little...), if any
    threads: tuple[int, ...] = (1,)  # the inventory's thread counts: a sweep's points where its spec names none


class Registry:
    """The lab's device list (a Ray actor: its calls run one at a time, so two joins cannot both claim a name)."""

    def __init__(self) -> None:
        self._devices: dict[str, DeviceEntry] = {}

    def node(self) -> str:
        """The node this registry runs on (the head's)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def claim(self, entry: DeviceEntry) -> str | None:
        """Record ``entry``; returns the host that already has a device of that name (nothing recorded), else None.
        The same host joining again with the same device replaces its entry (a re-join after a restart)."""
        held = self._devices.get(entry.name)
        if held is not None and held.host != entry.host:
            return held.host
        self._devices[entry.name] = entry
        return None

    def release(self, name: str) -> None:
        self._devices.pop(name, None)

    def entries(self) -> list[DeviceEntry]:
        return sorted(self._devices.values(), key=lambda e: (e.host, e.name))
