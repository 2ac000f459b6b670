"""The user-error base and exit codes. A :class:`FlopgapError` is something the user can fix (bad name, bad spec,
unreachable device): the CLI prints its message as one line and exits with ``exit_code``; any other exception is a
bug and keeps its traceback.
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

    exit_code: int = ExitCode.BAD_INPUT


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
