"""`flopgap lab start|join|status|leave|stop`: a lab of devices on several hosts, on a Ray cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.options import DevicesFileOpt
from harness.cli.user_errors import one_line_errors

lab_app = typer.Typer(help="A lab on Ray: hosts join with their devices; sweeps from any host share them.")
console = Console()

AddressArg = Annotated[
    str | None, typer.Argument(help="the lab's address (what 'lab start' printed); else $FLOPGAP_LAB")
]
HostOpt = Annotated[str | None, typer.Option("--host", help="this host's name in the lab (default: its hostname)")]


def _ray_cli(*args: str) -> None:
    """Ray's own command line (`ray start` / `ray stop`), one line and exit 2 if it refuses."""
    from harness.lab.ray_session import LabError, import_ray

    import_ray()
    done = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"'ray {' '.join(args)}' failed: {lines[-1] if lines else f'exit code {done.returncode}'}")


@lab_app.command("start")
@one_line_errors
def start(
    port: Annotated[int, typer.Option(help="the head's port")] = 6379,
    ip: Annotated[str | None, typer.Option("--ip", help="the address other hosts reach this one at")] = None,
) -> None:
    """Start a lab's head on this host and print its address.

    Example: flopgap lab start --port 6379
    """
    from harness.lab.membership import registry
    from harness.lab.ray_session import connect

    ip = ip or socket.gethostbyname(socket.gethostname())
    _ray_cli(
        "start",
        "--head",
        f"--port={port}",
        f"--node-ip-address={ip}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    )
    address = f"{ip}:{port}"
    ray = connect(address)
    registry(ray, ray.get_runtime_context().get_node_id())  # on the head: it lives as long as the lab
    console.print(f"lab started at {address}")
    console.print(f"on each host with devices: flopgap lab join {address} --devices devices.toml")


@lab_app.command("join")
@one_line_errors
def join(address: AddressArg = None, devices_file: DevicesFileOpt = None, host: HostOpt = None) -> None:
    """Join the lab from this host: start a Ray node here and one device actor per device of the inventory file.

    Example: flopgap lab join 10.0.0.1:6379 --devices devices.toml
    """
    from devices.inventory import load_inventory, parse_inventory
    from harness.lab.membership import join_devices
    from harness.lab.ray_session import LabError, connect, lab_address, reachable

    address = lab_address(address)
    inventory = load_inventory(devices_file)
    if not inventory.from_file:
        raise LabError(f"no inventory at {inventory.path}; pass --devices FILE with this host's devices")
    # The file's own devices only: the implicit 'local' of every host would clash across the lab.
    configs = list(parse_inventory(inventory.path.read_text(), str(inventory.path), inventory.path.parent).values())
    reachable(address)  # before Ray's node starts: its own refusal of another version is a multi-line traceback
    _ray_cli("start", f"--address={address}", "--disable-usage-stats")
    ray = connect(address)
    name = host or socket.gethostname()
    cache = Path.home() / ".cache" / "flopgap" / "lab-artifacts"
    joined = join_devices(ray, configs, name, ray.get_runtime_context().get_node_id(), cache)
    console.print(f"host '{escape(name)}' joined the lab at {address} with {', '.join(joined) or 'no devices'}")


@lab_app.command("status")
@one_line_errors
def status(address: AddressArg = None) -> None:
    """The lab's hosts and devices: facts, what each device measures and for whom, and how many trials queue.

    Example: flopgap lab status 10.0.0.1:6379
    """
    from harness.lab.device_actor import DeviceStatus
    from harness.lab.membership import statuses
    from harness.lab.ray_session import connect, lab_address

    address = lab_address(address)
    ray = connect(address)
    table = Table(title=f"lab at {address}")
    for col in ("host", "device", "transport", "runner", "measuring", "for", "queued", "trials", "problem"):
        table.add_column(col)
    for entry, st in statuses(ray):
        if isinstance(st, DeviceStatus):
            row = [st.measuring or "-", st.for_whom or "-", str(st.queued), str(st.trials_done), st.problem or "-"]
        else:
            row = ["-", "-", "-", "-", st]
        table.add_row(entry.host, entry.name, entry.transport, entry.runner, *map(escape, row))
    console.print(table)


@lab_app.command("leave")
@one_line_errors
def leave(address: AddressArg = None, host: HostOpt = None) -> None:
    """Take this host's devices out of the lab and stop its Ray node.

    Example: flopgap lab leave 10.0.0.1:6379
    """
    from harness.lab import membership
    from harness.lab.ray_session import connect, lab_address

    ray = connect(lab_address(address))
    name = host or socket.gethostname()
    gone = membership.leave(ray, name)
    ray.shutdown()
    _ray_cli("stop")
    console.print(f"host '{escape(name)}' left the lab ({', '.join(gone) or 'no devices'})")


@lab_app.command("stop")
@one_line_errors
def stop(address: AddressArg = None) -> None:
    """Stop the lab: remove every device actor and the registry, then stop the head on this host.

    Example: flopgap lab stop 10.0.0.1:6379
    """
    from harness.lab import membership
    from harness.lab.ray_session import connect, lab_address

    ray = connect(lab_address(address))
    gone = membership.leave(ray, None)
    ray.shutdown()
    _ray_cli("stop")
    console.print(f"lab stopped ({len(gone)} device(s) removed)")
