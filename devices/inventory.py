"""The device inventory: a TOML file naming the devices flopgap can measure on and how to reach each one.

Where: ``$FLOPGAP_DEVICES`` if set, else ``devices.toml`` in the user config dir (``~/.config/flopgap`` on
Linux). A device named ``local`` (this machine) always exists, with or without a file; a ``[devices.local]``
table overrides it. One table per device, the table name being the device name::

    [devices.rpi5]                     # a Raspberry Pi 5 over SSH
    transport = "ssh"
    host = "192.168.1.50"
    user = "pi"                        # default: the ssh config's User for this host, else yours
    port = 22                          # default: the ssh config's Port, else 22
    key = "~/.ssh/id_ed25519"          # default: the ssh config's IdentityFile, else ssh-agent and ~/.ssh/id_*
    ssh_config = "~/.ssh/config"       # default; host may be one of its aliases (HostName, ProxyJump...)
    known_hosts = "~/.ssh/known_hosts" # default; the host key must be in it (ssh-keyscan, after checking)
    python = "/home/pi/venv/bin/python3"   # default "python3"; needs numpy and onnxruntime/ai-edge-litert
    affinity = [4, 5, 6, 7]            # or a hex mask: "f0"; or a cluster: "big", "little", "prime", "all"
    threads = [1, 4]                   # default [1]
    work_dir = "/tmp/flopgap"          # default; each session makes and removes its own dir inside
    connect_timeout = 10               # seconds, default 10

    [devices.pixel7]                   # a phone over adb, measured with TFLite's benchmark binary
    transport = "adb"
    serial = "2B111FDH2007NB"
    server = "10.0.0.2:5037"           # default the local adb server, 127.0.0.1:5037
    runner = "benchmark_model"         # default for adb; or "benchmark_model_plus_flex", "onnxruntime_perf_test"
    binary = "bin/android_aarch64_benchmark_model"
    affinity = "f0"

A device is a transport and a runner, and any runner works on any transport whose device can run it:
``agent`` (flopgap's ``runner.py``, the default except on adb) needs a Python with numpy and the runtime there
(``python``; on a phone, e.g. Termux's, named explicitly); ``benchmark_model``, ``benchmark_model_plus_flex`` and
``onnxruntime_perf_test`` need ``binary``, the local path of the prebuilt binary to push, built for the device's
architecture (checked against ``uname -m`` or the phone's ABI when it is pushed; on ``local``, when the inventory
is read). Relative paths (``key``, ``known_hosts``, ``binary``) are taken from the inventory file's folder;
``~`` expands. Unknown keys are errors. Every error is one line naming the file, the device and the key.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from devices.arm_cores import ClusterName
from devices.base import Device, Transport
from devices.core.errors import FlopgapError
from devices.placement import cluster_name, cpu_ids
from devices.vocabulary import RunnerKind

ENV_VAR = "FLOPGAP_DEVICES"
TRANSPORTS = ("local", "ssh", "adb")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class InventoryError(FlopgapError):
    """The inventory file is unreadable or invalid; the message names the file, the device and the key."""


class UnknownDeviceError(FlopgapError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class _DeviceBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    runner: RunnerKind = RunnerKind.AGENT
    python: str | None = Field(default=None, description="The device's Python for the agent runner.")
    binary: Path | None = Field(
        default=None, description="Local path of the benchmark binary to push (non-agent runners)."
    )
    affinity: list[int] | ClusterName | None = Field(
        default=None,
        description="CPU ids, a hex mask string such as 'f0', or a cluster: 'big', 'little', 'prime' or 'all' "
        "(resolved from the device's facts when it is used).",
    )
    threads: list[int] = Field(default_factory=lambda: [1], min_length=1)

    @field_validator("affinity", mode="before")
    @classmethod
    def _affinity(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return cluster_name(v)
            except ValueError:
                pass
            return parse_cpu_mask(v)
        if isinstance(v, list) and any(isinstance(c, bool) for c in v):  # pydantic would read true as CPU 1
            raise ValueError("give CPU ids >= 0 (e.g. [4, 5, 6, 7]) or a hex mask string (e.g. 'f0'), not true/false")
        return v

    @field_validator("affinity")
    @classmethod
    def _affinity_ids(cls, v: list[int] | ClusterName | None) -> list[int] | ClusterName | None:
        if v is None or isinstance(v, ClusterName):
            return v
        try:
            return cpu_ids(v)
        except ValueError as exc:
            raise ValueError(f"{exc}, or a hex mask string (e.g. 'f0')") from None

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: list[int]) -> list[int]:
        if min(v) < 1:
            raise ValueError("thread counts must be >= 1")
        return v

    @field_validator("binary", "key", "known_hosts", "ssh_config", "work_dir", check_fields=False)
    @classmethod
    def _local_path(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, Path):  # remote work dirs are strings and stay as written
            return v
        base = (info.context or {}).get("base")
        v = v.expanduser()
        return v if v.is_absolute() or base is None else Path(base) / v

    @model_validator(mode="after")
    def _runner_fits(self) -> _DeviceBase:
        """The runner and what it needs on this transport: a binary for binary runners, a Python for the agent."""
        if self.runner.is_binary and self.binary is None:
            raise ValueError(f"key 'binary' is required with runner '{self.runner}' (the prebuilt binary to push)")
        if not self.runner.is_binary and self.binary is not None:
            raise ValueError("key 'binary' is only used with a benchmark binary runner, not with 'agent'")
        if self.runner.is_binary and "python" in self.model_fields_set:
            raise ValueError(f"key 'python' is only used with runner 'agent', not with '{self.runner}'")
        return self

    @property
    def affinity_mask(self) -> str | None:
        """The affinity as a hex mask (``'f0'``), as ``taskset`` and benchmark tools take it (None for a cluster)."""
        return None if self.cpu_ids is None else format(sum(1 << c for c in self.cpu_ids), "x")

    @property
    def cpu_ids(self) -> list[int] | None:
        """The affinity's CPU ids when given as ids or a mask (a cluster name is resolved later, from facts)."""
        return self.affinity if isinstance(self.affinity, list) else None

    @property
    def cluster(self) -> ClusterName | None:
        """The affinity's cluster name, when the inventory gives one instead of CPU ids."""
        return self.affinity if isinstance(self.affinity, ClusterName) else None


def _remote_dir(v: str) -> str:
    if not v.startswith("/") or "\n" in v:
        raise ValueError(f"'{v}' must be an absolute path on the device (e.g. /tmp/flopgap)")
    return v


class LocalConfig(_DeviceBase):
    transport: Literal["local"]
    python: str | None = Field(
        default=None, description="Interpreter for the runner; default: the one running flopgap."
    )
    work_dir: Path | None = None

    @model_validator(mode="after")
    def _binary_runs_here(self) -> LocalConfig:
        # This machine's architecture is known now: a binary built for another one is named at load time.
        if self.binary is not None and self.binary.is_file():
            from devices.binary import check_executable
            from devices.local import this_machine

            try:
                check_executable(self.name, self.binary, this_machine(), self.runner)
            except FlopgapError as exc:
                why = str(exc).removeprefix(f"device '{self.name}': ")
                raise ValueError(f"key 'binary': {why}") from None
        return self


class SshConfig(_DeviceBase):
    transport: Literal["ssh"]
    host: str = Field(min_length=1, description="A host name, an address, or a Host alias of the ssh config.")
    user: str | None = Field(default=None, description="Default: the ssh config's User, else the local user name.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Default: the ssh config's Port, else 22.")
    key: Path | None = Field(
        default=None, description="Private key; default: the ssh config's IdentityFile, else ssh-agent and ~/.ssh/id_*."
    )
    known_hosts: Path = Path("~/.ssh/known_hosts")
    ssh_config: Path | None = Field(
        default=Path("~/.ssh/config"), description="OpenSSH client config that aliases are read from (ProxyJump too)."
    )
    python: str | None = Field(default=None, description='The board\'s Python for the agent; default "python3".')
    work_dir: str = "/tmp/flopgap"
    connect_timeout: float = Field(default=10.0, gt=0)

    @field_validator("work_dir")
    @classmethod
    def _work_dir(cls, v: str) -> str:
        return _remote_dir(v)


class AdbConfig(_DeviceBase):
    transport: Literal["adb"]
    runner: RunnerKind = RunnerKind.BENCHMARK_MODEL
    serial: str = Field(min_length=1)
    server: str = Field(default="127.0.0.1:5037", description="host:port of the adb server.")
    work_dir: str = "/data/local/tmp/flopgap"

    @field_validator("work_dir")
    @classmethod
    def _work_dir(cls, v: str) -> str:
        return _remote_dir(v)

    @model_validator(mode="after")
    def _agent_needs_python(self) -> AdbConfig:
        if not self.runner.is_binary and self.python is None:
            raise ValueError(
                "runner 'agent' on a phone needs key 'python': the path of a Python with numpy there "
                "(e.g. Termux's /data/data/com.termux/files/usr/bin/python3)"
            )
        return self

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"'{v}' is not host:port (e.g. 127.0.0.1:5037)")
        return v

    @property
    def server_host(self) -> str:
        return self.server.rpartition(":")[0].strip("[]")

    @property
    def server_port(self) -> int:
        return int(self.server.rpartition(":")[2])


DeviceConfig = LocalConfig | SshConfig | AdbConfig
_ADAPTER: TypeAdapter[DeviceConfig] = TypeAdapter(
    Annotated[LocalConfig | SshConfig | AdbConfig, Field(discriminator="transport")]
)
_MODELS: dict[str, type[_DeviceBase]] = {"local": LocalConfig, "ssh": SshConfig, "adb": AdbConfig}


def parse_cpu_mask(mask: str) -> list[int]:
    """``'f0'`` or ``'0xf0'`` → ``[4, 5, 6, 7]``."""
    text = mask.strip().lower().removeprefix("0x")
    # Hex digits only: int(text, 16) would also take '-1' (read as CPU 0), '+f' and 'f_0'.
    if not re.fullmatch(r"[0-9a-f]+", text):
        raise ValueError(
            f"'{mask}' is not a hex CPU mask; give a list of CPU ids, a mask such as 'f0' or a cluster "
            "(big, little, prime, all)"
        )
    bits = int(text, 16)
    cpus = [i for i in range(bits.bit_length()) if bits >> i & 1]
    if not cpus:
        raise ValueError(f"mask '{mask}' selects no CPU")
    return cpus


@dataclass(frozen=True)
class Inventory:
    """The devices of one inventory file (plus the implicit ``local``)."""

    path: Path
    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    from_file: bool = False  # False: no file there yet, only the implicit 'local'

    def get(self, name: str) -> DeviceConfig:
        try:
            return self.devices[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(name, list(self.devices), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        where = str(self.path) if self.from_file else f"{self.path}, which does not exist yet"
        raise UnknownDeviceError(
            f"unknown device '{name}'; {hint}known: {', '.join(sorted(self.devices))} (inventory: {where}; "
            f"set ${ENV_VAR} or --devices to use another)"
        )

    def names(self) -> list[str]:
        return sorted(self.devices)


def default_inventory_path() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs  # only needed when no path was given

    return Path(platformdirs.user_config_dir("flopgap")) / "devices.toml"


def load_inventory(path: Path | None = None) -> Inventory:
    """Read and validate an inventory. A missing default file means only ``local``; a missing named one is an error."""
    explicit = path is not None or bool(os.environ.get(ENV_VAR))
    path = path if path is not None else default_inventory_path()
    local = LocalConfig(name="local", transport="local")
    if not path.exists() and not explicit:
        return Inventory(path, {"local": local}, from_file=False)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(f"cannot read device inventory {path}: {exc.strerror}") from None
    devices = parse_inventory(text, source=str(path), base=path.parent)
    return Inventory(path, {"local": local, **devices}, from_file=True)


def parse_inventory(text: str, source: str = "<inventory>", base: Path | None = None) -> dict[str, DeviceConfig]:
    """Validate inventory TOML text; relative paths are taken from ``base``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{source}: not valid TOML: {exc}") from None
    for key in data:
        if key != "devices":
            hint = " (write [devices.NAME] tables, not [[device]])" if key == "device" else ""
            raise InventoryError(f"{source}: unknown top-level key '{key}'; allowed: devices{hint}")
    tables = data.get("devices", {})
    if not isinstance(tables, dict):
        raise InventoryError(f"{source}: 'devices' must hold [devices.NAME] tables")
    devices: dict[str, DeviceConfig] = {}
    for name, table in tables.items():
        where = f"{source}: device '{name}'"
        if not _NAME.fullmatch(name):
            raise InventoryError(f"{where}: names may use letters, digits, '_', '.' and '-' only")
        if not isinstance(table, dict):
            raise InventoryError(f"{where}: expected a table [devices.{name}]")
        if name == "local" and table.get("transport") != "local":
            raise InventoryError(
                f"{where}: 'local' is this machine; its table sets this machine's options with transport = \"local\" "
                f"(got {table.get('transport')!r}); give the other device its own name, e.g. [devices.board1]"
            )
        if "name" in table and table["name"] != name:
            raise InventoryError(f"{where}: key 'name': the table name is the device name; drop this key")
        try:
            devices[name] = _ADAPTER.validate_python({**table, "name": name}, context={"base": base})
        except ValidationError as exc:
            raise InventoryError(f"{where}: {_describe(exc, table)}") from None
    return devices


def _describe(exc: ValidationError, table: dict[str, Any]) -> str:
    errors = exc.errors()
    # A typo shows up as an unknown key plus a missing one: name the unknown key, it is the cause.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    transport = table.get("transport")
    loc = [str(p) for p in err["loc"]]
    if loc and loc[0] == transport:  # the discriminated union puts the tag first
        loc = loc[1:]
    key = loc[0] if loc else ""
    allowed = ", ".join(TRANSPORTS)
    if err["type"] == "union_tag_not_found":
        return f"key 'transport' is missing; allowed: {allowed}"
    if err["type"] == "union_tag_invalid":
        return f"key 'transport': unknown transport '{transport}'; allowed: {allowed}"
    if err["type"] == "extra_forbidden":
        model = _MODELS[str(transport)]
        keys = [k for k in model.model_fields if k != "name"]
        close = difflib.get_close_matches(key, keys, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown key '{key}' for transport '{transport}'; {hint}allowed: {', '.join(keys)}"
    if err["type"] == "missing":
        return f"key '{key}' is required for transport '{transport}'"
    msg = err["msg"].removeprefix("Value error, ")
    return f"key '{'.'.join(loc)}': {msg}" if loc else msg


def open_device(cfg: DeviceConfig) -> Device:
    """Compose the device of one inventory entry: its transport and its runner (nothing connects until used)."""
    from devices.agent import AgentBackend
    from devices.base import Backend
    from devices.binary import binary_backend

    backend: Backend
    if cfg.runner.is_binary:
        assert cfg.binary is not None  # the config's validator requires it
        backend = binary_backend(cfg.runner, cfg.binary, cfg.cpu_ids)
    else:
        default = sys.executable if isinstance(cfg, LocalConfig) else "python3"
        backend = AgentBackend(cfg.python or default, cfg.cpu_ids)
    return Device(cfg.name, _transport(cfg), backend, cluster=cfg.cluster)


def _transport(cfg: DeviceConfig) -> Transport:
    if isinstance(cfg, LocalConfig):
        from devices.local import LocalTransport

        return LocalTransport(cfg.name, work_dir=cfg.work_dir)
    if isinstance(cfg, SshConfig):
        from devices.ssh import SshTransport  # paramiko is only imported when a board is used

        return SshTransport(
            cfg.name,
            cfg.host,
            user=cfg.user,
            port=cfg.port,
            key=cfg.key,
            known_hosts=cfg.known_hosts,
            work_dir=cfg.work_dir,
            connect_timeout=cfg.connect_timeout,
            ssh_config=cfg.ssh_config,
        )
    from devices.adb import AdbTransport  # adbutils likewise, when a phone is used

    return AdbTransport(cfg.name, cfg.serial, cfg.server_host, cfg.server_port, work_dir=cfg.work_dir)
