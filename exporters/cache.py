"""Content-addressed artifact cache: one file plus a JSON sidecar per (model, params, format, precision, tools).

The key is the sha256 of everything that can change the bytes of an export: model name and resolved
parameters, format, precision, opset, calibration settings, the versions of every tool involved and the
flopgap exporter version. A hit is only trusted when the file's sha256 still matches the sidecar. Files appear
atomically (temp file in the same directory, then ``os.replace``), so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import platformdirs

from devices.core.digest import file_digest
from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from exporters.errors import ExportError
from exporters.source import FingerprintedSource, ModelSource

# Bump when a change in flopgap's exporters changes what they write (invalidates every cached artifact).
EXPORTER_VERSION = "2"  # 2: signal-preserving init + BatchNorm calibration in the zoo
CACHE_ENV = "FLOPGAP_CACHE_DIR"
TOOLS = ("torch", "onnx", "onnxscript", "onnxruntime", "litert-torch", "ai-edge-litert", "ai-edge-quantizer")


def default_cache_dir() -> Path:
    """``$FLOPGAP_CACHE_DIR`` if set, else the per-user cache dir (``~/.cache/flopgap/artifacts`` on Linux)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("flopgap")) / "artifacts"


class CacheUnwritable(ExportError):
    """The artifact cache cannot be written: its disk is full, it is read-only, or it is not a directory."""

    def __init__(self, message: str, root: Path) -> None:
        super().__init__(message)
        self.root = root


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
_READ_ONLY_TEXT = ("Read-only file system", "Permission denied")


def unwritable(root: Path, err: OSError | None, action: str, text: str = "") -> CacheUnwritable:
    """One line naming the cache directory, what failed and what to do."""
    code = err.errno if err is not None else None
    where = f"artifact cache {root}"
    elsewhere = f"or point --cache-dir / ${CACHE_ENV} at another directory"
    if code in _FULL or any(t in text for t in _FULL_TEXT):
        msg = f"{where} is full (no space left on its disk) while {action}; free space there {elsewhere}"
    elif code in _READ_ONLY or any(t in text for t in _READ_ONLY_TEXT):
        msg = f"{where} is read-only while {action}; make it writable {elsewhere}"
    else:
        reason = err.strerror if err is not None and err.strerror else text or "unknown error"
        msg = f"cannot write to {where} ({reason}) while {action}; check the directory {elsewhere}"
    return CacheUnwritable(msg, root)


def disk_error(exc: BaseException) -> OSError | str | None:
    """The cause in an exception's chain that says the disk is full or read-only (an OSError, or the text of a
    converter's own error that only quotes one), else None: such a failure is the cache's, not the model's."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in _FULL | _READ_ONLY:
            return seen
        text = str(seen)
        if any(t in text for t in _FULL_TEXT + _READ_ONLY_TEXT):
            return text
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def writing(root: Path, action: str) -> Iterator[None]:
    """Turn an OSError raised while writing into the cache into one :class:`CacheUnwritable` line."""
    try:
        yield
    except OSError as err:
        raise unwritable(root, err, action) from None


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools an export depends on (``"absent"`` for one not installed)."""
    out = {"flopgap-exporter": EXPORTER_VERSION}
    for tool in TOOLS:
        try:
            out[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            out[tool] = "absent"
    return out


def cache_key(
    spec: ModelSource, fmt: Format, precision: Precision, versions: Mapping[str, str], settings: Mapping[str, Any]
) -> str:
    """sha256 over the canonical JSON of everything that determines the artifact's bytes."""
    payload = {
        "model": spec.name,
        "params": [[k, v] for k, v in spec.params],
        "format": fmt.value,
        "precision": precision.value,
        "versions": dict(sorted(versions.items())),
        "settings": dict(sorted(settings.items())),
    }
    if isinstance(spec, FingerprintedSource):  # a user's factory: its name does not pin its code
        payload["fingerprint"] = spec.fingerprint
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_stem(spec: ModelSource, precision: Precision) -> str:
    """A readable, filesystem-safe stem: ``shufflenet_v1_groups=8_int8``."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", spec.label).strip("_") + f"_{precision.value}"


class ArtifactCache:
    """Artifacts stored flat under ``root`` as ``<stem>_<key16><ext>`` with a ``.json`` sidecar."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def file_path(self, spec: ModelSource, fmt: Format, precision: Precision, key: str) -> Path:
        return self.named_path(file_stem(spec, precision), fmt, key)

    def named_path(self, stem: str, fmt: Format, key: str) -> Path:
        """``<root>/<stem>_<key16><ext>``: where an artifact of that stem and key lives."""
        return self.root / f"{stem}_{key[:16]}{fmt.extension}"

    @staticmethod
    def sidecar(path: Path) -> Path:
        return path.with_suffix(".json")

    def get(self, spec: ModelSource, fmt: Format, precision: Precision, key: str) -> Artifact | None:
        """The cached artifact, or None when absent, unreadable or its file no longer matches its sha256."""
        return self.read(self.file_path(spec, fmt, precision, key))

    def read(self, path: Path) -> Artifact | None:
        """The artifact at ``path`` from its sidecar, or None when absent, unreadable or no longer matching."""
        side = self.sidecar(path)
        if not (path.is_file() and side.is_file()):
            return None
        try:
            art = Artifact.from_json(side.read_text())
        except (ValueError, TypeError, KeyError):
            return None
        if file_digest(path) != art.sha256:
            return None  # modified or truncated behind our back: the caller re-exports over it
        return _with_path(art, path)

    def put(self, art: Artifact) -> Artifact:
        """(Re)write the sidecar of an artifact whose file already sits in the cache."""
        with writing(self.root, f"writing {self.sidecar(art.path).name}"):
            write_atomic(self.sidecar(art.path), art.to_json().encode())
        return art

    @contextlib.contextmanager
    def staging(self, final: Path) -> Iterator[Path]:
        """A temp path next to ``final``; moved onto ``final`` if the block succeeds, deleted if it raises.

        Failing to create or move the file raises :class:`CacheUnwritable`; what the block raises passes through.
        """
        with writing(self.root, f"creating {final.name}"):
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".partial{final.suffix}", dir=final.parent)
            os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            with writing(self.root, f"moving {final.name} into place"):
                os.replace(tmp_path, final)
        finally:
            with contextlib.suppress(OSError):  # a read-only disk cannot delete either; nothing was written
                tmp_path.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)


def _with_path(art: Artifact, path: Path) -> Artifact:
    from dataclasses import replace

    return replace(art, path=path)
