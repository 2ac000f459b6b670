"""Ray, imported lazily, and a driver's connection to a lab: every way it can fail is one line, exit code 2."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Versions:
    """The Ray and Python a process runs: every node and driver of a lab must run the same (Ray refuses others)."""

    ray: str
    python: str

    def __str__(self) -> str:
        return f"Ray {self.ray} on Python {self.python}"


def here_versions() -> Versions:
    import ray

    return Versions(ray.__version__, ".".join(map(str, sys.version_info[:3])))


def lab_versions(address: str, timeout_s: float = 10) -> Versions | None:
    """The Ray and Python the lab's head started with (None where its GCS has none stored): the cluster metadata the
    head puts in its GCS key-value store, which Ray's own check (a driver's ray.init, `ray start --address`) reads."""
    from ray._common.usage.usage_constants import CLUSTER_METADATA_KEY
    from ray._private.ray_constants import KV_NAMESPACE_CLUSTER
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # compiled; Ray's stub leaves it out

    stored = GcsClient(address=address).internal_kv_get(
        CLUSTER_METADATA_KEY, namespace=KV_NAMESPACE_CLUSTER, timeout=timeout_s
    )
    if not stored:
        return None
    metadata = json.loads(stored)
    return Versions(str(metadata["ray_version"]), str(metadata["python_version"]))


def mismatch_line(address: str, lab: Versions, here: Versions) -> str:
    return (
        f"the lab at {address} runs {lab} but this host has {here}; every host and driver of a lab needs the same "
        "Ray and Python: install the lab's Python, then pip install -c constraints.txt -e '.[lab]'"
    )


_RAY_PYTHON = re.compile(r"Ray: (\S+)\s+Python: (\S+)")


def parse_mismatch(text: str) -> tuple[Versions, Versions] | None:
    """The lab's and this process's versions from Ray's "Version mismatch: The cluster was started with: Ray: ..
    Python: .. This process on .. was started with: Ray: .. Python: .." (ray._private.utils.check_version_info)."""
    if not text.startswith("Version mismatch"):
        return None
    found = [Versions(r, p) for r, p in _RAY_PYTHON.findall(text)]
    return (found[0], found[1]) if len(found) == 2 else None


def check_versions(address: str) -> None:
    """One line naming both versions where this host's Ray or Python differs from the lab's, by Ray's own rule (its
    Ray equal, its Python equal to the patch level unless RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL says minor).
    Ray's own message spans several lines and names this host only as its address."""
    try:  # Ray's private modules: where a later Ray moved them, its own check in ray.init (parsed below) still runs
        from ray._private.utils import check_version_info

        lab = lab_versions(address)
    except (ImportError, AttributeError):
        return
    if lab is None:
        return
    try:
        check_version_info({"ray_version": lab.ray, "python_version": lab.python}, "this host")
    except RuntimeError:
        raise LabError(mismatch_line(address, lab, here_versions())) from None


def reachable(address: str) -> ModuleType:
    """Ray, where the lab at ``address`` answers and runs this host's Ray and Python: each a line of its own if not.
    Before `ray start --address` too, which would otherwise retry an absent head for minutes."""
    ray = import_ray()
    _answers(address)
    check_versions(address)
    return ray


def connect(address: str, **init: Any) -> ModuleType:
    """Join the lab at ``address`` as a driver (a no-op if already connected); returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    reachable(address)
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR", **init)
    except ConnectionError as exc:
        raise LabError(
            f"no lab answers at {address} ({_first_line(exc)}); start one with 'flopgap lab start' or check the address"
        ) from None
    except RuntimeError as exc:
        # Ray's own check refused us (the lab's head changed since check_versions): its words, on one line.
        both = parse_mismatch(str(exc))
        if both is not None:
            raise LabError(mismatch_line(address, *both)) from None
        if "version" in str(exc).lower():
            raise LabError(
                f"the lab at {address} runs another Ray or Python than this host ({_one_line(exc)}); "
                "install the same on every host: pip install -c constraints.txt -e '.[lab]'"
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
        with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
            spoke = _http2_greeting(conn)
    except OSError as exc:
        raise LabError(
            f"no lab answers at {address} ({exc.strerror or exc}); start one with 'flopgap lab start' or check "
            "the address"
        ) from None
    if spoke is not None:  # Ray's client would wait 40 s on it, then raise a multi-line RpcError
        raise LabError(
            f"{address} answers, but not as a lab's head ({spoke}, not Ray's gRPC); give the address "
            "'flopgap lab start' printed"
        )


# A client's HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113, section 3.4): a gRPC server, as Ray's
# GCS is, answers with a SETTINGS frame of its own (frame type 4 in the fourth byte of its 9-byte header).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS = 4


def _http2_greeting(conn: socket.socket) -> str | None:
    """None where the peer speaks HTTP/2; else what it did instead, for the error line."""
    conn.sendall(_H2_PREFACE)
    got, silent = b"", "it closed the connection without a word"
    try:
        while len(got) < 9:
            chunk = conn.recv(64)
            if not chunk:
                break
            got += chunk
    except TimeoutError:
        silent = f"it said nothing in {conn.gettimeout():g} s"
    if len(got) >= 9 and got[3] == _SETTINGS:
        return None
    if not got:
        return silent
    text = (got.decode("ascii", errors="replace").splitlines() or [""])[0].strip()
    return f"it said '{text[:60]}'" if text.isprintable() and text else f"it sent {len(got)} bytes of something else"


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
