"""Device facts and state as types: what a transport and a backend tell about a device, parsed once where they are
read (:func:`parse_facts`), so the sweep, the store, analysis and reports read typed keys instead of guessing.

Facts are the union of what every source reports: flopgap's runner (``--facts``), a POSIX shell on a board
(:mod:`devices.linux_state`), an adb phone's properties, a benchmark binary's digest. A key is present only where
its source knows it; keys no source declares here are kept as they came (the store keeps a device's facts whole).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, TypedDict, Union, cast, get_args, get_origin, get_type_hints


class ArmCoreRow(TypedDict, total=False):
    """One ``processor`` of ``/proc/cpuinfo`` on ARM, ids as cpuinfo writes them (``0x41``, ``0xd0b``)."""

    processor: int
    implementer: str
    part: str
    variant: str
    revision: str


class PolicyState(TypedDict):
    """One cpufreq policy (a cluster) right now."""

    cpus: list[int]
    cur_khz: int | str | None
    max_khz: int | str | None
    governor: int | str | None


class Battery(TypedDict):
    """A phone's battery, from ``dumpsys battery``."""

    temperature_c: float | None
    level: int | None
    charging: bool | None
    powered_by: list[str]


class DeviceState(TypedDict, total=False):
    """What a transport reads while measuring (:meth:`~devices.base.Transport.state`): per-policy frequency and
    governor, thermal zones (°C by zone type), the time it was read and, on phones, the battery."""

    cpufreq: dict[str, PolicyState]
    temperatures_c: dict[str, float]
    time: float
    battery: Battery


class DeviceFacts(TypedDict, total=False):
    """What a device tells about itself (:meth:`~devices.base.Device.facts`), stored with the device."""

    transport: str  # the TransportKind that read them
    # flopgap's runner (devices/runner.py device_facts) or a shell on the device
    schema: str
    runner_version: str
    cpu_model: str
    cpu_hardware: str
    board_model: str
    cpu_parts: list[str]
    cpu_part_per_core: list[str]
    cpu_implementers: list[str]
    cpu_cores: list[ArmCoreRow]
    cpu_vendor: str
    cpu_family: str
    cpu_model_number: str
    cpu_stepping: str
    cpu_revision: str
    cpu_flags_digest: str
    cpu_caches: dict[str, str] | None
    machine_id_digest: str | None
    cpu_count: int | None
    cpus_usable: int | None
    cpu_max_khz: dict[str, int] | None
    os: str
    os_pretty_name: str | None
    kernel: str
    system: str
    machine: str
    mem_total_kib: int | None
    python: str
    hostname: str
    runtimes: dict[str, str | None]  # importable module -> version (None: not importable)
    op_profiles: list[str]  # the formats whose per-op profile the runner returns there (op_profile_formats)
    state: dict[str, Any]  # the runner's device_state() as it read the facts
    clusters: dict[str, PolicyState]  # a shell's or phone's cpufreq policies
    temperatures_c: dict[str, float]
    # a benchmark binary
    runner: str
    runner_sha256: str | None
    host: str  # a board: where SSH reached it
    # an adb phone
    serial: str
    server: str
    model: str | None
    manufacturer: str | None
    soc: str | None
    board_platform: str | None
    hardware: str | None
    sdk: str | None
    abi: str | None
    cores: int | None
    battery: Battery
    props: dict[str, str]
    # a device written by hand (a test's fake, an old store)
    cpu: str


def _accepted(hint: Any) -> tuple[type, ...]:
    """The runtime types a value of the annotation ``hint`` may have (containers checked by their outer type)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return tuple(t for arg in get_args(hint) for t in _accepted(arg))
    if hint is float:
        return (float, int)  # JSON writes 40.0 as 40
    if origin is not None:
        return (origin,)
    if isinstance(hint, type) and issubclass(hint, dict):  # a nested TypedDict is a dict at runtime
        return (dict,)
    return (hint,)


_FACT_TYPES: dict[str, tuple[type, ...]] = {k: _accepted(h) for k, h in get_type_hints(DeviceFacts).items()}


def parse_facts(raw: Mapping[str, Any] | None) -> DeviceFacts:
    """Facts read from a device or the store, typed: a declared key whose value has the wrong JSON type is dropped
    (one bad fact must not poison every consumer), undeclared keys are kept as they are."""
    facts: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        accepted = _FACT_TYPES.get(key)
        if accepted is None or isinstance(value, accepted):
            facts[key] = value
    return cast(DeviceFacts, facts)


def cpu_name(facts: DeviceFacts) -> str | None:
    """The CPU as people name it: its model name, else the phone model or SoC, else the architecture."""
    return facts.get("cpu_model") or facts.get("model") or facts.get("soc") or facts.get("cpu") or facts.get("machine")


def core_count(facts: DeviceFacts) -> int | None:
    """How many CPUs there are: those this process may use where the runner says, else the online count."""
    return facts.get("cpus_usable") or facts.get("cpu_count") or facts.get("cores")
