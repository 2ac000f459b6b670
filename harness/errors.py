"""Errors of the zoo: an unknown model or a parameter value it does not offer.

Both are :class:`~devices.core.errors.FlopgapError` (the base every user error shares): the CLI prints their message as
one line and exits with code 2.
"""

from __future__ import annotations

from devices.core.errors import FlopgapError


class UnknownModelError(FlopgapError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidParameterError(FlopgapError, ValueError):
    pass
