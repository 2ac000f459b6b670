"""ARM core names and clusters from ``/proc/cpuinfo`` and cpufreq: which cores a board or phone has, and which are
its LITTLE, big and prime ones.

Pure functions, no I/O. The part numbers are the MIDR_EL1 implementer/part codes that Linux names in
``arch/arm64/include/asm/cputype.h`` (``ARM_CPU_PART_*``, ``QCOM_CPU_PART_*``, ...); Samsung's Exynos M1 is from
util-linux's ``lscpu-arm.c``. The table below is written for flopgap, by hand, from those definitions.

Clusters: cores that share a part and a maximum frequency form one cluster. Clusters are ranked by maximum
frequency (by the part's usual role where no frequency is known): the slowest is ``LITTLE``, the fastest ``prime``
when there are three ranks or more, and everything between is ``big`` (so a phone can have two ``big`` clusters,
e.g. two kinds of middle cores). A board whose cores are all alike has one cluster, ``all``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from devices.facts import DeviceFacts


class Role(IntEnum):
    """The usual place of a core design in a big.LITTLE system; orders clusters when no frequency is known."""

    LITTLE = 0
    BIG = 1
    PRIME = 2


class ClusterName(StrEnum):
    """What a cluster is called, by its frequency rank (see the module docstring)."""

    LITTLE = "LITTLE"
    BIG = "big"
    PRIME = "prime"
    ALL = "all"  # every core alike


IMPLEMENTERS: dict[int, str] = {
    0x41: "Arm",
    0x42: "Broadcom",
    0x43: "Cavium",
    0x46: "Fujitsu",
    0x48: "HiSilicon",
    0x4E: "NVIDIA",
    0x50: "APM",
    0x51: "Qualcomm",
    0x53: "Samsung",
    0x61: "Apple",
    0x6D: "Microsoft",
    0xC0: "Ampere",
}

# (implementer, part) -> (name, role). Kryo parts: Qualcomm's own MIDRs; from the Kryo 5xx/6xx on, Qualcomm cores
# report Arm's parts (cputype.h notes: Kryo 5xx Gold/Prime = A77, 6xx Prime = X1, 6xx Gold = A78, 6xx Silver = A55).
CORES: dict[tuple[int, int], tuple[str, Role]] = {
    (0x41, 0xD03): ("Cortex-A53", Role.LITTLE),
    (0x41, 0xD04): ("Cortex-A35", Role.LITTLE),
    (0x41, 0xD05): ("Cortex-A55", Role.LITTLE),
    (0x41, 0xD07): ("Cortex-A57", Role.BIG),
    (0x41, 0xD08): ("Cortex-A72", Role.BIG),
    (0x41, 0xD09): ("Cortex-A73", Role.BIG),
    (0x41, 0xD0A): ("Cortex-A75", Role.BIG),
    (0x41, 0xD0B): ("Cortex-A76", Role.BIG),
    (0x41, 0xD0C): ("Neoverse-N1", Role.BIG),
    (0x41, 0xD0D): ("Cortex-A77", Role.BIG),
    (0x41, 0xD0E): ("Cortex-A76AE", Role.BIG),
    (0x41, 0xD40): ("Neoverse-V1", Role.PRIME),
    (0x41, 0xD41): ("Cortex-A78", Role.BIG),
    (0x41, 0xD42): ("Cortex-A78AE", Role.BIG),
    (0x41, 0xD44): ("Cortex-X1", Role.PRIME),
    (0x41, 0xD46): ("Cortex-A510", Role.LITTLE),
    (0x41, 0xD47): ("Cortex-A710", Role.BIG),
    (0x41, 0xD48): ("Cortex-X2", Role.PRIME),
    (0x41, 0xD49): ("Neoverse-N2", Role.BIG),
    (0x41, 0xD4B): ("Cortex-A78C", Role.BIG),
    (0x41, 0xD4C): ("Cortex-X1C", Role.PRIME),
    (0x41, 0xD4D): ("Cortex-A715", Role.BIG),
    (0x41, 0xD4E): ("Cortex-X3", Role.PRIME),
    (0x41, 0xD4F): ("Neoverse-V2", Role.PRIME),
    (0x41, 0xD80): ("Cortex-A520", Role.LITTLE),
    (0x41, 0xD81): ("Cortex-A720", Role.BIG),
    (0x41, 0xD82): ("Cortex-X4", Role.PRIME),
    (0x41, 0xD84): ("Neoverse-V3", Role.PRIME),
    (0x41, 0xD85): ("Cortex-X925", Role.PRIME),
    (0x41, 0xD87): ("Cortex-A725", Role.BIG),
    (0x41, 0xD8E): ("Neoverse-N3", Role.BIG),
    (0x51, 0x001): ("Oryon", Role.PRIME),
    (0x51, 0x200): ("Kryo", Role.BIG),
    (0x51, 0x800): ("Kryo 2xx Gold", Role.BIG),
    (0x51, 0x801): ("Kryo 2xx Silver", Role.LITTLE),
    (0x51, 0x802): ("Kryo 3xx Gold", Role.BIG),
    (0x51, 0x803): ("Kryo 3xx Silver", Role.LITTLE),
    (0x51, 0x804): ("Kryo 4xx Gold", Role.BIG),
    (0x51, 0x805): ("Kryo 4xx Silver", Role.LITTLE),
    (0x51, 0xC00): ("Falkor", Role.BIG),
    (0x53, 0x001): ("Exynos M1", Role.BIG),
    (0x4E, 0x003): ("Denver", Role.BIG),
    (0x4E, 0x004): ("Carmel", Role.BIG),
    (0xC0, 0xAC3): ("Ampere-1", Role.BIG),
    (0xC0, 0xAC4): ("Ampere-1A", Role.BIG),
}


@dataclass(frozen=True)
class Core:
    """One logical CPU as ``/proc/cpuinfo`` describes it (ids as integers; None where the kernel did not say)."""

    cpu: int
    implementer: int | None
    part: int | None
    variant: int | None = None
    revision: int | None = None

    @property
    def name(self) -> str:
        return core_name(self.implementer, self.part)

    @property
    def role(self) -> Role | None:
        known = CORES.get((self.implementer or -1, self.part or -1))
        return known[1] if known else None


@dataclass(frozen=True)
class Cluster:
    """Cores of one part at one maximum frequency."""

    name: ClusterName
    core: str
    cpus: tuple[int, ...]
    max_khz: int | None

    def summary(self) -> str:
        """E.g. ``big: 4x Cortex-A76 (cpus 4-7) @ 2.40 GHz``."""
        ghz = f" @ {self.max_khz / 1e6:.2f} GHz" if self.max_khz else ""
        return f"{self.name}: {len(self.cpus)}x {self.core} (cpus {format_cpus(self.cpus)}){ghz}"


def core_name(implementer: int | None, part: int | None) -> str:
    """``Cortex-A76`` for (0x41, 0xd0b); unknown codes as ``Arm part 0xd99`` or ``implementer 0x99 part 0x001``."""
    if implementer is None or part is None:
        return "unknown core"
    known = CORES.get((implementer, part))
    if known:
        return known[0]
    vendor = IMPLEMENTERS.get(implementer, f"implementer 0x{implementer:02x}")
    return f"{vendor} part 0x{part:03x}"


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), 0)  # cpuinfo writes ids in hex (0x41) and revisions in decimal (3)
    except ValueError:
        return None


_FIELDS = {"cpu implementer": "implementer", "cpu part": "part", "cpu variant": "variant", "cpu revision": "revision"}


def parse_cpuinfo(text: str) -> list[Core]:
    """Every ``processor : N`` block that has a CPU part, in the order listed (offline cores are not listed).

    Accepts tabs or spaces around the colon and the 32-bit and old Android forms (a leading ``Processor : AArch64
    Processor rev 4`` line, which is a model string, not a CPU number).
    """
    blocks: list[dict[str, Any]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            if value.isdigit():
                blocks.append({"cpu": int(value)})
        elif key in _FIELDS and blocks:
            blocks[-1][_FIELDS[key]] = _int(value)
    return [Core(**block) for block in blocks if block.get("part") is not None]


def cores_from_facts(facts: DeviceFacts) -> list[Core]:
    """The cores a runner's ``--facts`` lists under ``cpu_cores`` (empty for x86 or an older runner)."""
    cores = []
    for row in facts.get("cpu_cores") or []:
        if not isinstance(row, Mapping) or not isinstance(row.get("processor"), int):
            continue
        core = Core(
            row["processor"],
            _int(row.get("implementer")),
            _int(row.get("part")),
            _int(row.get("variant")),
            _int(row.get("revision")),
        )
        if core.part is not None:
            cores.append(core)
    return cores


def max_khz_from_facts(facts: DeviceFacts) -> dict[int, int]:
    """``cpu_max_khz`` of the runner's facts ({"0": 1800000, ...}) with integer CPU ids."""
    raw = facts.get("cpu_max_khz") or {}
    return {int(cpu): int(khz) for cpu, khz in raw.items() if str(cpu).isdigit() and isinstance(khz, int)}


def clusters(cores: Iterable[Core], max_khz: Mapping[int, int] | None = None) -> list[Cluster]:
    """Group ``cores`` by (part, max frequency) and name each group by its rank, slowest first.

    ``max_khz`` maps CPU id to ``cpuinfo_max_freq``; without it (or with gaps) groups are ranked by the part's
    usual role (LITTLE < big < prime). Clusters of one rank are listed by their first CPU.
    """
    max_khz = max_khz or {}
    groups: dict[tuple[int | None, int | None, int | None], list[Core]] = {}
    for core in cores:
        groups.setdefault((core.implementer, core.part, max_khz.get(core.cpu)), []).append(core)
    if not groups:
        return []
    with_freq = all(key[2] is not None for key in groups)

    def rank(key: tuple[int | None, int | None, int | None]) -> int:
        """Maximum frequency where every group has one, else the part's role (unknown parts count as big)."""
        role = groups[key][0].role
        if with_freq:
            return key[2] or 0
        return int(role) if role is not None else int(Role.BIG)

    ordered = sorted(groups, key=lambda key: (rank(key), min(c.cpu for c in groups[key])))
    ranks = sorted({rank(key) for key in ordered})
    out = []
    for key in ordered:
        position = ranks.index(rank(key))
        if len(ranks) == 1:
            name = ClusterName.ALL
        elif position == 0:
            name = ClusterName.LITTLE
        elif position == len(ranks) - 1 and len(ranks) >= 3:
            name = ClusterName.PRIME
        else:
            name = ClusterName.BIG
        members = groups[key]
        out.append(Cluster(name, members[0].name, tuple(sorted(c.cpu for c in members)), key[2]))
    return out


def cluster_cpus(found: Iterable[Cluster], name: ClusterName | str) -> list[int]:
    """CPU ids of every cluster called ``name`` (``big`` can be more than one cluster), sorted."""
    return sorted(cpu for cluster in found if cluster.name == name for cpu in cluster.cpus)


def format_cpus(cpus: Iterable[int]) -> str:
    """[0, 1, 2, 3, 6] -> '0-3,6'."""
    runs: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
