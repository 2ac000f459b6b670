"""User-facing error types.

A :class:`FlopgapError` is something the user caused (bad name, bad parameter, bad spec). The CLI prints
its message as one line and exits non-zero; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class FlopgapError(Exception):
    """An error the user can fix; its message is one line naming the thing and what to do."""

    exit_code = 2


class Interrupted(FlopgapError):
    """Ctrl-C: the work stopped cleanly and everything committed so far is kept."""

    exit_code = 130


class UnknownModelError(FlopgapError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidParameterError(FlopgapError, ValueError):
    pass


class ExportError(FlopgapError):
    """A conversion or parity failure; names the model, the format and (where known) the failing op."""
