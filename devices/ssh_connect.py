"""Opening an SSH connection to a board, with every way it can fail mapped to one typed, one-line error.

Why paramiko and not the system ``ssh``/``scp`` client: paramiko raises typed exceptions for a changed host key
(``BadHostKeyException``), an unknown one (the missing-host-key policy) and a refused key
(``AuthenticationException``), so each maps to one typed :class:`~devices.errors.DeviceError` without parsing
``ssh`` stderr in whatever language the host is set to; SFTP moves files by path, with no remote shell and so no
quoting; one connection is kept and reused for every command without ControlMaster sockets; and it works on hosts
that have no OpenSSH client.

``~/.ssh/config`` (or the inventory's ``ssh_config``) is read with paramiko's parser, so ``host = "pi5"`` inherits
that alias's HostName, User, Port and IdentityFile (what the inventory sets wins), and ``ProxyJump`` (one hop or a
chain, each hop looked up in the same file) reaches boards behind a gateway through ``direct-tcpip`` channels.

Host keys are checked against ``known_hosts`` and unknown hosts are rejected (never added automatically), for every
jump host as for the board.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import paramiko

from devices.errors import AuthFailed, DeviceError, DeviceUnreachable, HostKeyMismatch, HostKeyUnknown

# paramiko logs transport errors itself; without a handler Python would print them to stderr next to our one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class SshTarget:
    """Where a board is and how to log in (from the inventory)."""

    name: str  # the device's name, for messages
    host: str
    user: str | None = None
    port: int = 22
    key: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    timeout: float = 10.0
    jump: SshTarget | None = None  # the gateway this host is reached through (ProxyJump)

    @property
    def where(self) -> str:
        here = f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"
        return f"{here} via {self.jump.where}" if self.jump else here

    @property
    def host_key_name(self) -> str:
        """The host as known_hosts names it (``[host]:port`` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"{hostname} not found in known_hosts")
        self.key = key


class _RejectUnknownHost(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, keeping the offered key so the error can show its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise _UnknownHostKey(hostname, key)


_MAX_HOPS = 8
DEFAULT_SSH_CONFIG = Path("~/.ssh/config")


def resolve(
    name: str,
    host: str,
    *,
    user: str | None = None,
    port: int | None = None,
    key: Path | None = None,
    known_hosts: Path = Path("~/.ssh/known_hosts"),
    timeout: float = 10.0,
    ssh_config: Path | None = DEFAULT_SSH_CONFIG,
) -> SshTarget:
    """Where ``host`` really is: the ssh config's entry for it (HostName, User, Port, IdentityFile, ProxyJump), under
    what the inventory sets explicitly; no config file means the inventory's values as they are."""
    config = _read_config(name, ssh_config)
    return _resolve(name, host, user, port, key, known_hosts, timeout, config, depth=0)


def _read_config(name: str, path: Path | None) -> paramiko.SSHConfig | None:
    if path is None or not path.expanduser().is_file():
        return None
    try:
        return paramiko.SSHConfig.from_path(str(path.expanduser()))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise DeviceError(f"device '{name}': cannot read ssh config {path}: {exc}; fix it or set ssh_config") from None


def _resolve(
    name: str,
    host: str,
    user: str | None,
    port: int | None,
    key: Path | None,
    known_hosts: Path,
    timeout: float,
    config: paramiko.SSHConfig | None,
    depth: int,
) -> SshTarget:
    entry = config.lookup(host) if config is not None else {}
    if key is None:
        files = [Path(f).expanduser() for f in entry.get("identityfile", [])]
        key = next((f for f in files if f.is_file()), None)
    jump = None
    proxy = str(entry.get("proxyjump", "none"))
    if proxy.lower() != "none":
        if depth >= _MAX_HOPS:
            raise DeviceError(f"device '{name}': ProxyJump chain of '{host}' is longer than {_MAX_HOPS} hops (a loop?)")
        for hop in proxy.split(","):  # the first hop is the outermost gateway
            hop_user, hop_host, hop_port = _hop(name, hop.strip())
            gateway = _resolve(name, hop_host, hop_user, hop_port, None, known_hosts, timeout, config, depth + 1)
            if jump is not None:
                gateway = SshTarget(**{**gateway.__dict__, "jump": jump})
            jump = gateway
    return SshTarget(
        name,
        str(entry.get("hostname", host)),
        user if user is not None else entry.get("user"),
        port if port is not None else int(entry.get("port", 22)),
        key,
        known_hosts,
        timeout,
        jump,
    )


def _hop(name: str, text: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` of a ProxyJump hop (``ssh://`` URIs too)."""
    text = text.removeprefix("ssh://")
    user, _, rest = text.rpartition("@")
    host, sep, port = rest.rpartition(":") if rest.count(":") == 1 else ("", "", "")
    if not sep:
        host, port = rest, ""
    if not host or (port and not port.isdigit()):
        raise DeviceError(f"device '{name}': cannot read ProxyJump hop '{text}'; write [user@]host[:port]")
    return user or None, host.strip("[]"), int(port) if port else None


class _ChainedClient(paramiko.SSHClient):
    """A client reached through gateways, which it closes with itself."""

    def __init__(self) -> None:
        super().__init__()
        self.gateways: list[paramiko.SSHClient] = []

    def close(self) -> None:
        super().close()
        for gateway in reversed(self.gateways):
            gateway.close()
        self.gateways.clear()


def connect(t: SshTarget) -> paramiko.SSHClient:
    """A logged-in client (through its gateways, if any); raises the typed error that says what to fix."""
    key = t.key.expanduser() if t.key else None
    known_hosts = t.known_hosts.expanduser()
    if key is not None and not key.is_file():
        raise AuthFailed(f"device '{t.name}': ssh key {key} does not exist; fix `key` in the inventory")
    client = _ChainedClient()
    sock: paramiko.Channel | None = None
    if t.jump is not None:
        gateway = connect(t.jump)  # strict host keys there too
        client.gateways.append(gateway)
        try:
            transport = gateway.get_transport()
            assert transport is not None
            sock = transport.open_channel("direct-tcpip", (t.host, t.port), ("127.0.0.1", 0), timeout=t.timeout)
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise DeviceUnreachable(
                f"device '{t.name}': gateway {t.jump.where} cannot reach {t.host}:{t.port} ({os_message(exc)}); "
                "check the board is on and the gateway allows TCP forwarding"
            ) from None
    if known_hosts.is_file():
        try:
            client.load_system_host_keys(str(known_hosts))  # read only: never written back
        except (OSError, paramiko.SSHException) as exc:
            raise DeviceError(f"device '{t.name}': cannot read {known_hosts}: {exc}") from None
    client.set_missing_host_key_policy(_RejectUnknownHost())
    try:
        client.connect(
            t.host,
            port=t.port,
            username=t.user,
            key_filename=str(key) if key else None,
            # With an explicit key, use only that key, so a wrong key fails here rather than another key passing.
            allow_agent=key is None,
            look_for_keys=key is None,
            timeout=t.timeout,
            banner_timeout=t.timeout,
            auth_timeout=t.timeout,
            sock=sock,
        )
    except _UnknownHostKey as exc:
        client.close()
        raise HostKeyUnknown(
            f"device '{t.name}': host {t.host_key_name} is not in {known_hosts} (it offers "
            f"{exc.key.get_name()} {fingerprint(exc.key)}); check that fingerprint on the board "
            f"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then run: "
            f"ssh-keyscan -p {t.port} {shlex.quote(t.host)} >> {shlex.quote(str(known_hosts))}"
        ) from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyMismatch(
            f"device '{t.name}': host key of {t.host_key_name} CHANGED (offers {exc.key.get_name()} "
            f"{fingerprint(exc.key)}, {known_hosts} has {fingerprint(exc.expected_key)}); not connecting. "
            f"If the board was reinstalled, verify the new key, then run: "
            f"ssh-keygen -R {shlex.quote(t.host_key_name)} -f {shlex.quote(str(known_hosts))}"
        ) from None
    except paramiko.PasswordRequiredException:
        client.close()
        raise AuthFailed(
            f"device '{t.name}': ssh key {key} is passphrase-protected; add it to ssh-agent and "
            "leave `key` unset in the inventory"
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        which = f"key {key}" if key else "the ssh-agent and default keys"
        raise AuthFailed(
            f"device '{t.name}': {t.where} refused {which}; add the public key to "
            "~/.ssh/authorized_keys on the board (ssh-copy-id) or fix `user`/`key` in the inventory"
        ) from None
    except (OSError, paramiko.SSHException, EOFError) as exc:  # refused, no route, DNS, timeout, bad banner
        client.close()
        raise DeviceUnreachable(
            f"device '{t.name}': cannot reach {t.where} ({os_message(exc)}); is the board on, on this "
            "network and running sshd?"
        ) from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(30)
    return client


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: ``SHA256:`` and the unpadded base64 of the key blob's sha256."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def os_message(exc: BaseException) -> str:
    """A short reason for a socket or SFTP failure."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__
