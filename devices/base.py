"""The Device protocol: a transport that can push files, run a command and pull files back.

Every transport (local subprocess, SSH, adb) implements the same small surface and raises the same typed
errors, so the sweep treats a phone, a board and this machine alike. Commands are argv lists, never shell
strings built from unquoted input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.errors import FlopgapError


@dataclass(frozen=True)
class ShellReturn:
    """What one command on a device gave back."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class DeviceError(FlopgapError):
    """Something went wrong talking to a device; the message names the device and what to do."""


class DeviceUnreachable(DeviceError):
    pass


class DeviceTimeout(DeviceError):
    pass


class PushFailed(DeviceError):
    pass


class PullFailed(DeviceError):
    pass


class RunnerMissing(DeviceError):
    """The runner (or the runtime it needs) is not present on the device."""


class HostKeyUnknown(DeviceError):
    """The SSH host is not in known_hosts; the message says how to add it after checking its fingerprint."""


class HostKeyMismatch(DeviceError):
    """The SSH host offered a different key than known_hosts holds; flopgap refuses to connect."""


class AuthFailed(DeviceError):
    """The device refused our credentials (SSH key not authorized)."""


class NoSpaceLeft(DeviceError):
    """The device's file system is full (ENOSPC) while pushing or creating the work dir."""


class DeviceOffline(DeviceUnreachable):
    """The transport sees the device but it does not answer (adb state 'offline')."""


class DeviceUnauthorized(DeviceUnreachable):
    """The phone has not accepted this host's adb key (adb state 'unauthorized')."""


class UnknownSerial(DeviceUnreachable):
    """No device with this serial is attached to the adb server."""


class WrongABI(DeviceError):
    """A runner binary was built for another CPU architecture than the device's."""


class BinaryMissing(RunnerMissing):
    """The runner binary named in the inventory does not exist on this machine."""


@runtime_checkable
class Device(Protocol):
    name: str
    transport: str

    def facts(self) -> dict[str, Any]:
        """Static facts: CPU, cores, frequencies, OS, runtime versions."""
        ...

    def push(self, local: Path) -> str:
        """Copy a file onto the device (idempotent); return its path there."""
        ...

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        """Run a command on the device; raise :class:`DeviceTimeout` past ``timeout`` seconds."""
        ...

    def pull(self, remote: str, local: Path) -> Path: ...

    def cleanup(self) -> None:
        """Remove what this session pushed (the per-run work dir)."""
        ...
