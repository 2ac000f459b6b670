"""Device errors: each is a :class:`~devices.core.errors.FlopgapError` (one line for the user) that names the device
and what to do.
"""

from __future__ import annotations

from devices.core.errors import FlopgapError


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
