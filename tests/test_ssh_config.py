"""``~/.ssh/config`` aliases and ProxyJump, against two real sshd instances on loopback: a gateway on 127.0.0.1
and the board on 127.0.0.2, reached through the gateway (its log shows the forwarded connection)."""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.errors import HostKeyUnknown
from devices.ssh import SshTransport
from devices.ssh_connect import resolve
from harness.cli.main import app
from harness.store import Store
from tests.conftest import Sshd, _keygen, running_sshd

USER = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, Sshd]]:
    base = tmp_path_factory.mktemp("jump")
    key = _keygen(base / "client_ed25519")
    with (
        running_sshd(base / "gateway", "127.0.0.1", key, extra="LogLevel DEBUG1\nAllowTcpForwarding yes\n") as gateway,
        running_sshd(base / "board", "127.0.0.2", key) as board,
    ):
        yield gateway, board


def _config(tmp_path: Path, gateway: Sshd, board: Sshd) -> tuple[Path, Path]:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host gw\n  HostName 127.0.0.1\n  Port {gateway.port}\n  User {USER}\n  IdentityFile {gateway.client_key}\n"
        f"Host pi5\n  HostName 127.0.0.2\n  Port {board.port}\n  User {USER}\n  IdentityFile {board.client_key}\n"
        "  ProxyJump gw\n"
    )
    known = tmp_path / "known_hosts"  # both hosts' keys: checking stays strict for the gateway too
    known.write_text(gateway.known_hosts.read_text() + board.known_hosts.read_text())
    return config, known


def test_an_alias_inherits_hostname_user_port_key_and_its_gateway(servers: tuple[Sshd, Sshd], tmp_path: Path) -> None:
    gateway, board = servers
    config, known = _config(tmp_path, gateway, board)
    target = resolve("pi", "pi5", known_hosts=known, ssh_config=config)
    assert (target.host, target.port, target.user, target.key) == ("127.0.0.2", board.port, USER, board.client_key)
    assert target.jump is not None and (target.jump.host, target.jump.port) == ("127.0.0.1", gateway.port)
    assert target.where == f"{USER}@127.0.0.2:{board.port} via {USER}@127.0.0.1:{gateway.port}"
    explicit = resolve("pi", "pi5", user="other", port=2022, known_hosts=known, ssh_config=config)
    assert (explicit.user, explicit.port) == ("other", 2022)  # what the inventory sets wins
    assert resolve("pi", "pi5", known_hosts=known, ssh_config=None).host == "pi5"  # no config: the name as given


def test_an_inventory_alias_behind_a_proxyjump_measures_a_point(servers: tuple[Sshd, Sshd], tmp_path: Path) -> None:
    gateway, board = servers
    config, known = _config(tmp_path, gateway, board)
    inventory = tmp_path / "devices.toml"
    inventory.write_text(
        f'[devices.pi]\ntransport = "ssh"\nhost = "pi5"\nssh_config = "{config}"\nknown_hosts = "{known}"\n'
        f'python = "{sys.executable}"\nwork_dir = "{tmp_path / "pi"}"\n'
    )
    db = tmp_path / "r.db"
    args = ["run", "conv1x1", "-p", "cin=8", "-p", "cout=8", "-p", "h=8", "-p", "w=8", "--runtime", "onnxruntime",
            "--device", "pi", "--devices", str(inventory), "--db", str(db)]  # fmt: skip
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200", "FLOPGAP_LOCK_DIR": str(tmp_path / "locks")})
    assert res.exit_code == 0, res.output
    with Store(db) as store:
        points = store.points_frame()
        assert list(points["status"]) == ["done"] and list(points["device"]) == ["pi"]
        assert len(store.trials_frame()) == 3
    forwarded = (gateway.dir / "sshd.log").read_text()
    assert f"target 127.0.0.2 port {board.port}" in forwarded  # the board was reached through the gateway


def test_an_unknown_gateway_host_key_is_refused(servers: tuple[Sshd, Sshd], tmp_path: Path) -> None:
    gateway, board = servers
    config, _ = _config(tmp_path, gateway, board)
    only_board = tmp_path / "known_board_only"
    only_board.write_text(board.known_hosts.read_text())
    transport = SshTransport("pi", "pi5", known_hosts=only_board, ssh_config=config, work_dir=str(tmp_path / "w"))
    with pytest.raises(HostKeyUnknown, match=rf"host \[127\.0\.0\.1\]:{gateway.port} is not in"):
        transport.run(["true"], timeout=10)
