"""A fake sysfs for thermal tests: a ``/sys/class/thermal`` and a ``/sys/devices/system/cpu`` tree in a temporary
folder, bind-mounted over the real ones inside a private mount namespace (``unshare --mount``, root only) for one
command and its children. The test writes temperatures and frequencies into the folder while the command runs;
everything inside the namespace reads them where the kernel would put them, and nothing outside sees them.

The CPU tree is what a Linux kernel with cpufreq shows: ``possible``/``present``/``online``, one cpufreq policy per
CPU (``cpufreq/policyN``, with ``cpuN/cpufreq`` a link to it) and a flat topology, sized to this machine's CPUs,
so the runtimes (which read the topology) start as usual.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

THERMAL = "/sys/class/thermal"
CPU = "/sys/devices/system/cpu"
_ENTER = 'mount --bind "$1" ' + THERMAL + ' && mount --bind "$2" ' + CPU + ' || exit 126\nshift 2\nexec "$@"\n'


def unavailable() -> str | None:
    """Why a fake sysfs cannot be mounted here, or None when it can."""
    if sys.platform != "linux":
        return "a fake sysfs needs Linux mount namespaces"
    if os.geteuid() != 0:
        return "a fake sysfs needs root (a private mount namespace over /sys)"
    if shutil.which("unshare") is None:
        return "a fake sysfs needs unshare (util-linux)"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a mount namespace here ({probe.stderr.strip()}); needs CAP_SYS_ADMIN"
    if not Path(THERMAL).is_dir() or not Path(CPU).is_dir():
        return f"this kernel has no {THERMAL} or {CPU} to mount over"
    return None


def _write(path: Path, value: object) -> None:
    """Replace a file at once, so a reader never sees it half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


@dataclass
class FakeSysfs:
    root: Path
    cpus: int

    @property
    def thermal(self) -> Path:
        return self.root / "thermal"

    @property
    def cpu(self) -> Path:
        return self.root / "cpu"

    def set_temperature(self, zone: int, celsius: float) -> None:
        _write(self.thermal / f"thermal_zone{zone}" / "temp", round(celsius * 1000))

    def set_frequency(self, khz: int, cpus: list[int] | None = None) -> None:
        for cpu in range(self.cpus) if cpus is None else cpus:
            _write(self.cpu / "cpufreq" / f"policy{cpu}" / "scaling_cur_freq", khz)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run in a private mount namespace where this tree is the system's."""
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", _ENTER, "sh", str(self.thermal), str(self.cpu), *argv,
        ]  # fmt: skip


def build(root: Path, zones: Mapping[str, float], max_khz: int = 2_400_000, cpus: int | None = None) -> FakeSysfs:
    """A fake tree under ``root`` with thermal zones ``{type: °C}`` and every CPU at ``max_khz``."""
    n = cpus or os.cpu_count() or 1
    fake = FakeSysfs(root, n)
    for i, (kind, celsius) in enumerate(zones.items()):
        zone = fake.thermal / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(f"{kind}\n")
        fake.set_temperature(i, celsius)
    fake.thermal.mkdir(parents=True, exist_ok=True)
    every = f"0-{n - 1}" if n > 1 else "0"
    fake.cpu.mkdir(parents=True)
    for name, value in (
        ("possible", every),
        ("present", every),
        ("online", every),
        ("offline", ""),
        ("kernel_max", n - 1),
    ):
        (fake.cpu / name).write_text(f"{value}\n")
    for cpu in range(n):
        policy = fake.cpu / "cpufreq" / f"policy{cpu}"
        policy.mkdir(parents=True)
        for name, value in (
            ("cpuinfo_max_freq", max_khz), ("cpuinfo_min_freq", max_khz // 4), ("scaling_max_freq", max_khz),
            ("scaling_min_freq", max_khz // 4), ("scaling_cur_freq", max_khz), ("scaling_governor", "schedutil"),
            ("related_cpus", cpu), ("affected_cpus", cpu),
        ):  # fmt: skip
            (policy / name).write_text(f"{value}\n")
        core = fake.cpu / f"cpu{cpu}"
        (core / "topology").mkdir(parents=True)
        (core / "online").write_text("1\n")
        (core / "cpufreq").symlink_to(f"../cpufreq/policy{cpu}")
        for name, value in (
            ("physical_package_id", 0), ("core_id", cpu), ("cluster_id", 0), ("thread_siblings_list", cpu),
            ("core_cpus_list", cpu), ("core_siblings_list", every), ("package_cpus_list", every),
            ("cluster_cpus_list", every),
        ):  # fmt: skip
            (core / "topology" / name).write_text(f"{value}\n")
    return fake
