"""Errors of the exporters."""

from __future__ import annotations

from devices.core.errors import FlopgapError


class ExportError(FlopgapError):
    """A conversion or parity failure; names the model, the format and (where known) the failing op."""
