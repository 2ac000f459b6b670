"""Thermal-aware cooldown: before each trial, wait until every thermal zone of the device is back within a margin
of its temperature at sweep start, at most ``cooldown_max_s``; after that the trial runs anyway and is flagged.

Temperatures come from the device's transport (``Transport.state()["temperatures_c"]``: sysfs thermal zones read by
the device's own shell), so this works the same on this machine, a board over SSH and a phone over adb. A device
without thermal zones is reported once and then measured without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from devices.base import Device
from devices.errors import DeviceError
from devices.result import TrialResult

Temperatures = Callable[[], Mapping[str, float]]


@dataclass(frozen=True)
class CooldownOutcome:
    """What one thermal cooldown did before a trial."""

    waited_s: float
    timed_out: bool  # the maximum wait passed with some zone still too warm: the trial ran hot
    excess_c: Mapping[str, float] = field(default_factory=dict)  # zones still above baseline + margin, by how much

    def record(self) -> dict[str, Any]:
        return {"waited_s": round(self.waited_s, 3), "timed_out": self.timed_out, "excess_c": dict(self.excess_c)}

    @classmethod
    def of(cls, result: TrialResult) -> CooldownOutcome | None:
        """The cooldown :meth:`attach` kept with a trial, read back; None where none ran (or an unreadable one)."""
        data = result.details.get("cooldown")
        if not isinstance(data, Mapping):
            return None
        excess = data.get("excess_c")
        return cls(
            float(data.get("waited_s") or 0),
            bool(data.get("timed_out")),
            {str(z): float(e) for z, e in excess.items()} if isinstance(excess, Mapping) else {},
        )

    def attach(self, result: TrialResult) -> TrialResult:
        """``result`` with this cooldown kept in its stored document (``runner_json.cooldown``)."""
        return replace(result, details={**result.details, "cooldown": self.record()})

    @property
    def reason(self) -> str:
        zones = ", ".join(f"{z} +{e:.1f} °C" for z, e in sorted(self.excess_c.items()))
        return f"ran before cooling down ({zones} over the sweep-start temperature after {self.waited_s:.0f}s)"


def device_temperatures(device: Device) -> Temperatures:
    """The device's thermal zones (°C by zone type), read through its transport."""

    def read() -> Mapping[str, float]:
        state = device.transport.state()
        temps = state.get("temperatures_c") or {}
        return {str(k): float(v) for k, v in temps.items()}

    return read


class ThermalCooldown:
    """One device's cooldown: :meth:`start` records the baseline, :meth:`wait` runs before each trial."""

    def __init__(
        self,
        device: str,
        read: Temperatures,
        margin_c: float,
        max_wait_s: float,
        *,
        poll_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.device = device
        self.read = read
        self.margin_c = margin_c
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self.sleep = sleep
        self.clock = clock
        self.warn = warn
        self.baseline: dict[str, float] | None = None
        self._usable = True

    def start(self) -> None:
        """Read the sweep-start temperatures; a device without thermal zones is reported once and skipped."""
        try:
            temps = dict(self.read())
        except DeviceError as exc:
            temps, why = {}, f" ({exc})"
        else:
            why = ""
        if not temps:
            self._usable = False
            if self.warn is not None:
                self.warn(f"device '{self.device}' has no readable thermal zones{why}; cooldown = \"thermal\" "
                          "cannot wait there, its trials run without a cooldown")  # fmt: skip
            return
        self.baseline = temps

    def excess(self, temps: Mapping[str, float]) -> dict[str, float]:
        """Zones warmer than their baseline plus the margin, and by how much."""
        base = self.baseline or {}
        return {z: t - base[z] for z, t in temps.items() if z in base and t > base[z] + self.margin_c}

    def wait(self) -> CooldownOutcome | None:
        """Block until every zone is within the margin, or the maximum wait has passed; None where unusable."""
        if not self._usable:
            return None
        if self.baseline is None:
            self.start()
            if not self._usable:
                return None
        began = self.clock()
        while True:
            try:
                excess = self.excess(self.read())
            except DeviceError:
                excess = {}  # a failed read must not hang the sweep; the trial itself will report the device
            waited = self.clock() - began
            if not excess:
                return CooldownOutcome(waited, False)
            if waited >= self.max_wait_s:
                return CooldownOutcome(waited, True, excess)
            self.sleep(min(self.poll_s, max(0.0, self.max_wait_s - waited)))


def hot_trials(trials: Mapping[int, TrialResult]) -> list[str]:
    """One noisy-point reason per trial (by index) whose thermal cooldown ran out before the device cooled."""
    reasons = []
    for index, trial in sorted(trials.items()):
        outcome = CooldownOutcome.of(trial)
        if outcome is not None and outcome.timed_out:
            reasons.append(f"trial {index + 1} {outcome.reason}")
    return reasons
