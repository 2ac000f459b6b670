"""Device facts and state read through a Linux shell (boards, phones, this machine), whatever the backend.

Binary backends have no agent on the device to report frequencies and temperatures, so the transport reads them:
constant scripts (no user input in them) that the device's own ``sh`` runs, parsed here. sysfs globs are expanded
by that shell, so one command reads every cpufreq policy and thermal zone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from devices.facts import ArmCoreRow, DeviceFacts, DeviceState, PolicyState, parse_facts

if TYPE_CHECKING:
    from devices.base import Transport

_SYSFS_GLOBS = (
    "/sys/devices/system/cpu/cpufreq/policy*/scaling_cur_freq",
    "/sys/devices/system/cpu/cpufreq/policy*/cpuinfo_max_freq",
    "/sys/devices/system/cpu/cpufreq/policy*/scaling_governor",
    "/sys/devices/system/cpu/cpufreq/policy*/related_cpus",
    "/sys/class/thermal/thermal_zone*/type",
    "/sys/class/thermal/thermal_zone*/temp",
)
STATE_SCRIPT = "grep -s -H . " + " ".join(_SYSFS_GLOBS)
# One "key=value" line per fact; a line the device cannot produce is simply missing.
FACTS_SCRIPT = "; ".join(
    (
        'echo "machine=$(uname -m)"',
        'echo "kernel=$(uname -r)"',
        'echo "system=$(uname -s)"',
        'echo "cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null)"',
        '(. /etc/os-release 2>/dev/null && echo "os_pretty_name=$PRETTY_NAME")',
        "grep -m1 -i '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: */cpu_model=/'",
        "grep -m1 '^Model' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: */board_model=/'",
    )
)


def read_state(device: Transport, timeout: float = 30) -> DeviceState:
    """Per-cluster frequency and governor and the thermal zones, right now."""
    res = device.run(["sh", "-c", STATE_SCRIPT], timeout=timeout)
    clusters: dict[str, dict[str, Any]] = {}
    thermal: dict[str, dict[str, Any]] = {}
    for ln in res.stdout.splitlines():
        path, sep, value = ln.partition(":")
        if not sep:
            continue
        parts = path.split("/")
        if len(parts) < 2:
            continue
        if "cpufreq" in parts and parts[-2].startswith("policy"):
            clusters.setdefault(parts[-2], {})[parts[-1]] = _int_or_str(value.strip())
        elif parts[-2].startswith("thermal_zone"):
            thermal.setdefault(parts[-2], {})[parts[-1]] = _int_or_str(value.strip())
    temps = {
        str(z.get("type", name)): _millideg(z["temp"])
        for name, z in sorted(thermal.items())
        if isinstance(z.get("temp"), int)
    }
    return {
        "cpufreq": {
            name: {
                "cpus": cpu_list(str(c.get("related_cpus", ""))),
                "cur_khz": c.get("scaling_cur_freq"),
                "max_khz": c.get("cpuinfo_max_freq"),
                "governor": c.get("scaling_governor"),
            }
            for name, c in sorted(clusters.items())
        },
        "temperatures_c": temps,
        "time": time.time(),
    }


def read_facts(device: Transport, timeout: float = 30) -> DeviceFacts:
    """Architecture, kernel, OS, cores and CPU model, as a POSIX shell on the device reports them."""
    res = device.run(["sh", "-c", FACTS_SCRIPT], timeout=timeout)
    facts: dict[str, Any] = {}
    for ln in res.stdout.splitlines():
        key, sep, value = ln.partition("=")
        if sep and value.strip() and key not in facts:
            facts[key] = value.strip()
    if str(facts.get("cores", "")).isdigit():
        facts["cpu_count"] = int(facts.pop("cores"))
    state = read_state(device, timeout)
    facts["clusters"] = state["cpufreq"]
    facts["temperatures_c"] = state["temperatures_c"]
    facts.update(arm_core_facts(device, state["cpufreq"], timeout))
    return parse_facts(facts)


def arm_core_facts(device: Transport, cpufreq: dict[str, PolicyState], timeout: float = 30) -> DeviceFacts:
    """``cpu_cores`` and ``cpu_max_khz`` as flopgap's runner reports them (so ``devices/arm_cores.py`` names the
    cores and finds clusters), from ``/proc/cpuinfo`` and the cpufreq policies; empty where cpuinfo lists no parts
    (x86)."""
    from devices.arm_cores import parse_cpuinfo

    res = device.run(["cat", "/proc/cpuinfo"], timeout=timeout)
    cores = parse_cpuinfo(res.stdout) if res.ok else []
    if not cores:
        return {}
    rows = []
    for core in cores:  # written as cpuinfo writes them: ids in hex, the revision in decimal
        row: ArmCoreRow = {"processor": core.cpu}
        if core.implementer is not None:
            row["implementer"] = f"0x{core.implementer:x}"
        if core.part is not None:
            row["part"] = f"0x{core.part:x}"
        if core.variant is not None:
            row["variant"] = f"0x{core.variant:x}"
        if core.revision is not None:
            row["revision"] = str(core.revision)
        rows.append(row)
    max_khz = {
        str(cpu): khz
        for policy in cpufreq.values()
        if isinstance(khz := policy.get("max_khz"), int)
        for cpu in policy.get("cpus", [])
    }
    return {"cpu_cores": rows, "cpu_max_khz": max_khz or None}


def cpu_list(text: str) -> list[int]:
    """``"0-3 6"`` or ``"0-3,6"`` → ``[0, 1, 2, 3, 6]``."""
    cpus: list[int] = []
    for part in text.replace(",", " ").split():
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            cpus += list(range(int(lo), int(hi or lo) + 1))
    return cpus


def _int_or_str(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _millideg(value: int) -> float:
    # Most zones report millidegrees; a few report degrees.
    return value / 1000 if abs(value) > 200 else float(value)
