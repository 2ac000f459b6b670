"""What a test needs from its machine, and the one switch that turns "missing here" from a skip into a failure.

Every test that cannot run without something of the machine's (a real sshd, root's mounts, a browser, ...) asks
through :func:`require` or the :func:`needs` mark, never with a bare ``pytest.skip``. Where it is missing the test
is skipped, unless ``FLOPGAP_REQUIRE`` names it (a comma-separated list of :class:`Need` values, or ``all``, which
CI sets): then the test fails with one line naming what is missing and how to get it. The older switches
``FLOPGAP_ARM64=require`` and ``FLOPGAP_BROWSER=require`` still work: they add ``arm64`` and ``browser``.

A test marked with a required need (``@pytest.mark.arm64``, say) is required whole: an arm64 test on a machine
without sshd fails, it does not skip on the sshd before its board is ever looked at.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from typing import NoReturn

import pytest


class Need(StrEnum):
    SSHD = "sshd"  # OpenSSH's server at /usr/sbin/sshd and its privilege-separation dir
    MOUNT = "mount"  # root with CAP_SYS_ADMIN: tmpfs and bind mounts for full-disk and read-only tests
    NAMESPACE = "namespace"  # a private mount namespace over a fake /sys (root, unshare, thermal and cpufreq sysfs)
    ADB = "adb"  # Debian's adb client
    ARM64 = "arm64"  # the emulated aarch64 board (qemu-user-static, dpkg's arm64 architecture, root)
    BROWSER = "browser"  # headless chromium
    CPUS = "cpus"  # at least two CPUs
    PHONE = "phone"  # a real Android phone (FLOPGAP_ADB_SERIAL)
    RAY = "ray"  # Ray, the lab's engine (the `lab` extra, in the README's test install line)


ALL = "all"
_LEGACY = {"FLOPGAP_ARM64": Need.ARM64, "FLOPGAP_BROWSER": Need.BROWSER}
MARK = "needs"  # pytest.mark.needs(Need, why-missing or None), registered in pyproject.toml


def required_names(environ: Mapping[str, str] = os.environ) -> set[str]:
    """The needs the environment requires: FLOPGAP_REQUIRE's names (``all`` kept as is) and the legacy switches."""
    names = {n.strip() for n in environ.get("FLOPGAP_REQUIRE", "").split(",") if n.strip()}
    unknown = names - {ALL, *Need}
    if unknown:
        raise pytest.UsageError(
            f"FLOPGAP_REQUIRE: unknown need(s) {', '.join(sorted(unknown))}; use 'all' or some of {', '.join(Need)}"
        )
    names |= {need.value for var, need in _LEGACY.items() if environ.get(var) == "require"}
    return names


# The markers of the test being set up (conftest.py keeps this current), so that a need met in a fixture knows
# whether its test as a whole is required.
current_markers: set[str] = set()


def is_required(need: Need, markers: set[str] | None = None) -> bool:
    names = required_names()
    return ALL in names or need.value in names or bool(names & (current_markers if markers is None else markers))


def require(need: Need, missing: str | None) -> None:
    """Go on if ``missing`` is None; else skip the test, or fail it where FLOPGAP_REQUIRE asks for ``need``."""
    if missing is not None:
        unmet(need, missing)


def unmet(need: Need, missing: str) -> NoReturn:
    if is_required(need):
        pytest.fail(f"required by FLOPGAP_REQUIRE but missing ({need}): {missing}", pytrace=False)
    pytest.skip(f"{need}: {missing}")


def require_module(need: Need, missing: str | None) -> None:
    """At a test module's top: go on if ``missing`` is None; else skip the whole module, or fail its collection where
    FLOPGAP_REQUIRE asks for ``need``."""
    if missing is None:
        return
    if is_required(need):
        pytest.fail(f"required by FLOPGAP_REQUIRE but missing ({need}): {missing}", pytrace=False)
    pytest.skip(f"{need}: {missing}", allow_module_level=True)


def needs(need: Need, missing: str | None) -> pytest.MarkDecorator:
    """A mark: the test runs only where ``missing`` is None (checked at setup, before any fixture)."""
    return getattr(pytest.mark, MARK)(need, missing)
