"""Ray, imported lazily, and a driver's connection to a lab: every way it can fail is one line, exit code 2."""

from __future__ import annotations

import os
import socket
from types import ModuleType
from typing import Any

from devices.core.errors import FlopgapError

NAMESPACE = "flopgap-lab"  # every lab actor lives here, so any driver finds them by name
LAB_ENV = "FLOPGAP_LAB"


class LabError(FlopgapError):
    """A lab the user must fix: Ray missing, an address nobody answers at, a version mismatch, a name clash."""


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise LabError("a lab needs Ray, which is not installed: pip install -e '.[lab]'") from None
    return ray


def lab_address(address: str | None) -> str:
    """The lab's address: the one given, else $FLOPGAP_LAB."""
    found = address or os.environ.get(LAB_ENV)
    if not found:
        raise LabError(f"no lab address: pass --lab ADDRESS (what 'flopgap lab start' printed) or set ${LAB_ENV}")
    return found


def connect(address: str, **init: Any) -> ModuleType:
    """Join the lab at ``address`` as a driver (a no-op if already connected); returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    _answers(address)
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR", **init)
    except ConnectionError as exc:
        raise LabError(
            f"no lab answers at {address} ({_first_line(exc)}); start one with 'flopgap lab start' or check the address"
        ) from None
    except RuntimeError as exc:
        if "version" in str(exc).lower():  # Ray refuses a driver whose Ray or Python differs from the cluster's
            raise LabError(
                f"the lab at {address} runs another Ray or Python version than this host ({_first_line(exc)}); "
                f"install the same on every host: pip install -c constraints.txt -e '.[lab]'"
            ) from None
        raise
    _cluster_news_to_stderr()
    return ray


def _cluster_news_to_stderr() -> None:
    """Ray prints the cluster's own news (a node marked dead, a worker killed) on the driver's stdout, where a sweep's
    ``--format json`` goes: send it to stderr with the progress. Ray has no option for this; its printer is a module
    function that its listener looks up on every message, so it is wrapped here."""
    from ray._private import worker

    printer = worker.print_to_stdstream
    if getattr(printer, "flopgap_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        printer({**data, "is_err": True}, ignore_prefix)

    to_stderr.flopgap_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _answers(address: str, timeout_s: float = 5) -> None:
    """Fail in seconds where nobody listens at ``address``: Ray itself retries an absent head for many minutes."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise LabError(f"'{address}' is not a lab address; give HOST:PORT, as 'flopgap lab start' printed it")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise LabError(
            f"no lab answers at {address} ({exc.strerror or exc}); start one with 'flopgap lab start' or check "
            "the address"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
