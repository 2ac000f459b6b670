"""The Device protocol: a transport that can push files, run a command and pull files back.

Every transport (local subprocess, SSH, adb) implements the same small surface and raises the same typed
errors, so the sweep treats a phone, a board and this machine alike. Commands are argv lists, never shell
strings built from unquoted input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


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
