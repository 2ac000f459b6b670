"""adb's ``sync:`` SEND, spoken directly over an adbutils connection.

adbutils has a push of its own, but it drops the device's FAIL message, which is the only place "No space left
on device" appears; this sends the file the same way (SEND, DATA chunks, DONE) and reads the answer itself.
"""

from __future__ import annotations

import datetime
import stat
import struct
from pathlib import Path

import adbutils
from adbutils.errors import AdbError

from devices.errors import NoSpaceLeft, PushFailed

_SYNC_CHUNK = 64 * 1024  # adb's SYNC_DATA_MAX


def sync_send(device: adbutils.AdbDevice, local: Path, remote: str, mode: int, timeout: float, where: str) -> None:
    """Write ``local`` to ``remote`` on the phone with permission bits ``mode``; ``where`` names the device."""
    spec = f"{remote},{stat.S_IFREG | mode}".encode()
    status, message = b"", ""
    try:
        with device.open_transport(timeout=timeout) as c:
            c.send_command("sync:")
            c.check_okay()
            sock = c.conn
            try:
                sock.sendall(b"SEND" + struct.pack("<I", len(spec)) + spec)
                with local.open("rb") as f:
                    for chunk in iter(lambda: f.read(_SYNC_CHUNK), b""):
                        sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                mtime = int(datetime.datetime.now().timestamp())
                sock.sendall(b"DONE" + struct.pack("<I", mtime))
            except OSError:
                pass  # the phone may have hung up after a FAIL; read it below
            status = c.read(4)
            if status == b"FAIL":
                message = c.read(c.read_uint32()).decode("utf-8", "replace")
    except (AdbError, OSError, EOFError) as exc:
        raise PushFailed(f"{where}: push of {local.name} to {remote} failed: {adb_message(exc)}") from None
    if status == b"OKAY":
        return
    if "No space left" in message:
        raise NoSpaceLeft(f"{where}: no space left on the phone for {remote}; free space there and push again")
    raise PushFailed(f"{where}: push to {remote} failed: {message or status.decode() or 'connection closed'}")


def adb_message(exc: BaseException) -> str:
    return " ".join(str(a) for a in exc.args) or type(exc).__name__
