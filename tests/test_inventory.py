"""Device inventory: a valid file parses; every mistake is one line naming the file, the device and the key."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from devices.agent import AgentBackend
from devices.base import Device
from devices.binary import TfliteBenchmarkBackend
from devices.inventory import (
    AdbConfig,
    InventoryError,
    LocalConfig,
    SshConfig,
    UnknownDeviceError,
    load_inventory,
    open_device,
    parse_cpu_mask,
)
from devices.local import LocalTransport
from devices.vocabulary import RunnerKind

EXAMPLE = """
[devices.rpi5]
transport = "ssh"
host = "192.168.1.50"
user = "pi"
key = "keys/rpi_ed25519"
python = "/home/pi/venv/bin/python3"
affinity = "f0"
threads = [1, 4]

[devices.pixel7]
transport = "adb"
serial = "2B111FDH2007NB"
server = "10.0.0.2:5038"
runner = "benchmark_model"
binary = "/opt/bin/benchmark_model"
affinity = [6, 7]
"""


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "devices.toml"
    f.write_text(text)
    return f


def test_valid_inventory_parses_with_defaults(tmp_path: Path) -> None:
    inv = load_inventory(_write(tmp_path, EXAMPLE))
    assert inv.names() == ["local", "pixel7", "rpi5"]
    rpi = inv.get("rpi5")
    assert isinstance(rpi, SshConfig)
    assert (rpi.host, rpi.user, rpi.port, rpi.python) == ("192.168.1.50", "pi", None, "/home/pi/venv/bin/python3")
    assert rpi.key == tmp_path / "keys/rpi_ed25519"  # relative to the inventory file
    assert rpi.known_hosts == Path("~/.ssh/known_hosts")
    assert rpi.affinity == [4, 5, 6, 7] and rpi.affinity_mask == "f0"
    assert rpi.threads == [1, 4] and rpi.work_dir == "/tmp/flopgap" and rpi.runner == "agent"
    phone = inv.get("pixel7")
    assert isinstance(phone, AdbConfig)
    assert (phone.server_host, phone.server_port) == ("10.0.0.2", 5038)
    assert phone.work_dir == "/data/local/tmp/flopgap" and phone.affinity_mask == "c0" and phone.threads == [1]
    assert isinstance(inv.get("local"), LocalConfig)


def test_cpu_masks() -> None:
    assert parse_cpu_mask("0xF0") == [4, 5, 6, 7]
    assert parse_cpu_mask("1") == [0]
    with pytest.raises(ValueError, match="selects no CPU"):
        parse_cpu_mask("0")
    for bad in ("-1", "+f", "f_0", "0x", "f0 0f"):  # int(text, 16) took '-1' as CPU 0
        with pytest.raises(ValueError, match=re.escape(f"'{bad}' is not a hex CPU mask")):
            parse_cpu_mask(bad)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            'transport = "ssh"\nhots = "192.168.1.50"',
            "device 'rpi5': unknown key 'hots' for transport 'ssh'; did you mean 'host'?",
        ),
        ('transport = "telnet"\nhost = "x"', "device 'rpi5': key 'transport': unknown transport 'telnet'"),
        ('transport = "ssh"\nuser = "pi"', "device 'rpi5': key 'host' is required for transport 'ssh'"),
        ('host = "x"', "device 'rpi5': key 'transport' is missing; allowed: local, ssh, adb"),
        ('transport = "ssh"\nhost = "x"\nport = 70000', "device 'rpi5': key 'port': Input should be less than"),
        ('transport = "ssh"\nhost = "x"\naffinity = "4-7"', "device 'rpi5': key 'affinity': '4-7' is not a hex"),
        ('transport = "ssh"\nhost = "x"\naffinity = "-1"', "device 'rpi5': key 'affinity': '-1' is not a hex"),
        ('transport = "ssh"\nhost = "x"\naffinity = [true]', "device 'rpi5': key 'affinity': give CPU ids >= 0"),
        ('transport = "ssh"\nhost = "x"\nwork_dir = "flopgap"', "device 'rpi5': key 'work_dir': 'flopgap' must be"),
        ('transport = "ssh"\nhost = "x"\nrunner = "benchmark_model"', "device 'rpi5': key 'binary' is required"),
        ('transport = "adb"\nserial = "s"\nserver = "5037"', "device 'rpi5': key 'server': '5037' is not host:port"),
    ],
)
def test_invalid_device_names_file_device_and_key(tmp_path: Path, table: str, expected: str) -> None:
    f = _write(tmp_path, f"[devices.rpi5]\n{table}\n")
    with pytest.raises(InventoryError) as exc:
        load_inventory(f)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{f}: {expected}"), msg


def test_array_of_tables_form_gets_a_hint(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"unknown top-level key 'device'.*write \[devices.NAME\] tables"):
        load_inventory(_write(tmp_path, '[[device]]\nname = "rpi5"\ntransport = "ssh"\n'))


def test_unknown_device_suggests_close_matches(tmp_path: Path) -> None:
    f = _write(tmp_path, EXAMPLE)
    with pytest.raises(UnknownDeviceError) as exc:
        load_inventory(f).get("rpi4")
    msg = str(exc.value)
    assert msg.startswith("unknown device 'rpi4'; did you mean 'rpi5'? known: local, pixel7, rpi5")
    assert str(f) in msg and "\n" not in msg


def test_local_exists_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOPGAP_DEVICES", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))  # platformdirs' config dir on Linux
    inv = load_inventory()
    assert inv.names() == ["local"] and not inv.from_file
    assert inv.path == tmp_path / "cfg" / "flopgap" / "devices.toml"
    with pytest.raises(UnknownDeviceError, match="does not exist yet"):
        inv.get("rpi5")


def test_env_var_names_the_file_and_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = _write(tmp_path, EXAMPLE)
    monkeypatch.setenv("FLOPGAP_DEVICES", str(f))
    assert "rpi5" in load_inventory().devices
    monkeypatch.setenv("FLOPGAP_DEVICES", str(tmp_path / "missing.toml"))
    with pytest.raises(InventoryError, match=f"cannot read device inventory {tmp_path / 'missing.toml'}"):
        load_inventory()


def test_open_device_composes_transport_and_runner_without_connecting(tmp_path: Path) -> None:
    inv = load_inventory(_write(tmp_path, EXAMPLE))
    local = open_device(inv.get("local"))
    assert isinstance(local, Device) and isinstance(local.transport, LocalTransport)
    assert isinstance(local.backend, AgentBackend) and local.backend.python == sys.executable
    from devices.ssh import SshTransport

    rpi = open_device(inv.get("rpi5"))
    assert isinstance(rpi.transport, SshTransport) and isinstance(rpi.backend, AgentBackend)
    target = rpi.transport.target
    assert (rpi.name, target.host, target.port, rpi.backend.affinity) == ("rpi5", "192.168.1.50", 22, [4, 5, 6, 7])
    assert target.key == tmp_path / "keys/rpi_ed25519" and rpi.backend.python == "/home/pi/venv/bin/python3"


def test_open_device_builds_the_adb_transport(tmp_path: Path) -> None:
    from devices.adb import AdbTransport

    phone = open_device(load_inventory(_write(tmp_path, EXAMPLE)).get("pixel7"))
    assert isinstance(phone.transport, AdbTransport)  # constructing it does not talk to the adb server
    assert (phone.name, phone.transport.serial, phone.transport.server) == (
        "pixel7", "2B111FDH2007NB", ("10.0.0.2", 5038),
    )  # fmt: skip
    backend = phone.backend
    assert isinstance(backend, TfliteBenchmarkBackend) and phone.runner is RunnerKind.BENCHMARK_MODEL
    assert (backend.binary, backend.affinity) == (Path("/opt/bin/benchmark_model"), [6, 7])


def test_any_runner_on_any_transport(tmp_path: Path) -> None:
    """A Raspberry Pi running benchmark_model over SSH, a phone running flopgap's runner under Termux."""
    text = """
[devices.pi]
transport = "ssh"
host = "pi.local"
runner = "benchmark_model"
binary = "bin/benchmark_model"

[devices.termux]
transport = "adb"
serial = "S1"
runner = "agent"
python = "/data/data/com.termux/files/usr/bin/python3"
"""
    inv = load_inventory(_write(tmp_path, text))
    pi = open_device(inv.get("pi"))
    assert isinstance(pi.backend, TfliteBenchmarkBackend) and pi.backend.binary == tmp_path / "bin/benchmark_model"
    termux = open_device(inv.get("termux"))
    assert isinstance(termux.backend, AgentBackend)
    assert termux.backend.python == "/data/data/com.termux/files/usr/bin/python3"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            'transport = "adb"\nserial = "S1"\nrunner = "agent"',
            "runner 'agent' on a phone needs key 'python': the path of a Python with numpy there",
        ),
        (
            'transport = "ssh"\nhost = "x"\nrunner = "benchmark_model"\nbinary = "/b"\npython = "/usr/bin/python3"',
            "key 'python' is only used with runner 'agent', not with 'benchmark_model'",
        ),
        ('transport = "ssh"\nhost = "x"\nrunner = "tflite"', "key 'runner': Input should be 'agent', "),
    ],
)
def test_runner_and_transport_mismatch_is_one_line(tmp_path: Path, table: str, expected: str) -> None:
    f = _write(tmp_path, f"[devices.d1]\n{table}\n")
    with pytest.raises(InventoryError) as exc:
        load_inventory(f)
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith(f"{f}: device 'd1': {expected}"), str(exc.value)


def test_local_binary_for_another_architecture_is_named_on_load(tmp_path: Path) -> None:
    import platform
    import struct

    foreign = (183, "aarch64") if platform.machine() != "aarch64" else (62, "x86_64")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HH", 2, foreign[0]) + bytes(64))
    f = _write(tmp_path, f'[devices.here]\ntransport = "local"\nrunner = "benchmark_model"\nbinary = "{binary}"\n')
    with pytest.raises(InventoryError) as exc:
        load_inventory(f)
    assert f"key 'binary': benchmark_model is built for {foreign[1]} but this machine is" in str(exc.value)
