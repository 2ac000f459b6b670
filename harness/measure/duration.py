"""Durations as people write them in specs and on the command line: ``"30s"``, ``"10m"``, ``"1h"``, ``"1m30s"``, or
a bare number of seconds."""

from __future__ import annotations

import re

from devices.core.errors import FlopgapError

_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)")


class DurationError(FlopgapError):
    pass


def parse_duration(value: str | float | int) -> float:
    """Seconds in ``value``; raises :class:`DurationError` naming the value and the accepted forms."""
    if isinstance(value, bool):
        raise DurationError(f"duration {value!r} is not a duration; write e.g. '30s', '10m', '1h' or 90")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise DurationError(
                    f"duration {value!r} is not a duration; write e.g. '30s', '10m', '1h', '1m30s' or 90"
                ) from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0 or seconds != seconds or seconds == float("inf"):
        raise DurationError(f"duration {value!r} must be a positive, finite time")
    return seconds


def format_duration(seconds: float) -> str:
    """``90`` → ``"1m30s"``, ``0.5`` → ``"0.5s"``: the short form people write."""
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or "0s"
