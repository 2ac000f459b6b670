"""Typed errors. A :class:`FlopgapError` is something the user can fix (bad name, bad spec, unreachable device):
the CLI prints its message as one line and exits with ``exit_code``; any other exception is a bug and keeps its
traceback. Device errors name the device and what to do.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What the exit status of a flopgap command means (the README lists them)."""

    OK = 0  # everything asked for was done
    REGRESSED = 1  # compare --fail-above: measured, and a point got slower than the gate allows
    BAD_INPUT = 2  # a FlopgapError: bad spec, name or option, or an environment the user must fix; nothing ran
    SOME_FAILED = 3  # the command ran, but some points (calibration kernels, profiles) failed; reasons are printed
    INTERRUPTED = 130  # Ctrl-C: stopped cleanly, what was measured is kept
    TERMINATED = 143  # SIGTERM (systemd, timeout, CI runners): handled as Ctrl-C


class FlopgapError(Exception):
    """An error the user can fix; its message is one line naming the thing and what to do."""

    exit_code = 2


class MeasurementFailed(FlopgapError):
    """The command ran, but what it measured failed on the device (the message says why): not bad input."""

    exit_code = ExitCode.SOME_FAILED


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the signal lands so that it unwinds as Ctrl-C does: runners killed, the run marked
    interrupted, everything committed kept."""


class Interrupted(FlopgapError):
    """Ctrl-C or SIGTERM: the work stopped cleanly and everything committed so far is kept."""

    exit_code: int = ExitCode.INTERRUPTED

    @classmethod
    def by(cls, signal: KeyboardInterrupt, message: str) -> Interrupted:
        """The Interrupted for a Ctrl-C or a SIGTERM (``Terminated``), with the exit code a shell expects of it."""
        error = cls(message)
        error.exit_code = ExitCode.TERMINATED if isinstance(signal, Terminated) else ExitCode.INTERRUPTED
        return error


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


class TrialFailed(DeviceError):
    """One trial could not be measured; ``kind`` is the runner's error kind (or the backend's, e.g. RunnerCrashed)."""

    def __init__(self, message: str, kind: str = "RunnerFailed") -> None:
        super().__init__(message)
        self.kind = kind
