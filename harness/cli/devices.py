"""`flopgap devices list|check` and `flopgap push`: the device inventory from the command line."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from devices.arm_cores import clusters, cores_from_facts, max_khz_from_facts
from devices.core.errors import FlopgapError
from devices.vocabulary import Format
from harness.cli.options import DeviceOpt, DevicesFileOpt, InputShapeOpt, ModelFormatOpt, ModelPrecisionOpt, ParamOpt
from harness.cli.output import make_console
from harness.cli.user_errors import one_line_errors

devices_app = typer.Typer(help="The device inventory: list devices, check that one is reachable and ready.")
console = make_console()


def _address(cfg: Any) -> str:
    if cfg.transport == "ssh":
        return f"{cfg.user or ''}{'@' if cfg.user else ''}{cfg.host}:{cfg.port}"
    if cfg.transport == "adb":
        return f"{cfg.serial} via {cfg.server_host}:{cfg.server_port}"
    return "this machine"


@devices_app.command("list")
@one_line_errors
def list_devices(devices_file: DevicesFileOpt = None) -> None:
    """List the inventory's devices: transport, address, runner, threads, affinity, work dir.

    Example: flopgap devices list --devices devices.toml
    """
    from devices.inventory import load_inventory

    inventory = load_inventory(devices_file)
    table = Table(title=f"devices ({inventory.path}{'' if inventory.from_file else ', not created yet'})")
    for col in ("name", "transport", "address", "runner", "threads", "affinity", "work dir"):
        table.add_column(col)
    for name in inventory.names():
        cfg = inventory.get(name)
        affinity = getattr(cfg, "affinity", None)
        table.add_row(
            name,
            cfg.transport,
            escape(_address(cfg)),
            getattr(cfg, "runner", "agent"),
            ",".join(str(t) for t in getattr(cfg, "threads", [1])),
            (str(affinity) if isinstance(affinity, str) else ",".join(str(c) for c in affinity)) if affinity else "-",
            str(getattr(cfg, "work_dir", None) or "-"),
        )
    console.print(table)


@devices_app.command("check")
@one_line_errors
def check(
    name: Annotated[str, typer.Argument(help="Device name from the inventory.")],
    devices_file: DevicesFileOpt = None,
) -> None:
    """Check a device: reachable, its runner (or benchmark binary) and runtimes present, and print its facts.

    Example: flopgap devices check rpi5
    """
    from devices.inventory import load_inventory, open_device

    cfg = load_inventory(devices_file).get(name)
    device = open_device(cfg)
    try:
        with console.status(f"contacting {name}..."):
            facts = device.facts()
            binary = device.push_binary() if getattr(cfg, "binary", None) else None  # type: ignore[attr-defined]
    finally:
        device.cleanup()
    table = Table(title=f"{name} ({cfg.transport}) is reachable", show_header=False)
    runtimes = facts.get("runtimes")
    if isinstance(runtimes, dict):
        present = {k: v for k, v in runtimes.items() if v}
        if not present.keys() & {"onnxruntime", "ai_edge_litert", "tflite_runtime"} and binary is None:
            raise FlopgapError(
                f"device '{name}': no runtime importable by its python (onnxruntime, ai-edge-litert or "
                "tflite-runtime); install one there, or configure a benchmark binary in the inventory"
            )
        table.add_row("runtimes", ", ".join(f"{k} {v}" for k, v in present.items()))
    if binary is not None:
        table.add_row("benchmark binary", f"{binary} (pushed, hash verified)")
    arm = clusters(cores_from_facts(facts), max_khz_from_facts(facts))
    if arm:  # ARM boards and phones: core names and LITTLE/big/prime clusters instead of raw part numbers
        table.add_row("clusters", escape("; ".join(cluster.summary() for cluster in arm)))
    cluster = getattr(cfg, "cluster", None)
    if cluster is not None:  # the inventory pins to a cluster: show its CPUs here, or say it has none such
        from devices.placement import place

        table.add_row("affinity", escape(place(name, facts, cluster).label))
    for key, value in facts.items():
        if key in {"runtimes", "state"} or (arm and key == "cpu_cores"):
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        table.add_row(key, escape(text if len(text) < 200 else text[:197] + "..."))
    console.print(table)


@one_line_errors
def push(
    artifact: Annotated[
        str, typer.Argument(help="An .onnx/.tflite file, a zoo model name or a torch factory (exported first).")
    ],
    device_name: DeviceOpt,
    param: ParamOpt = None,
    input_shape: InputShapeOpt = None,
    fmt: ModelFormatOpt = None,
    precision: ModelPrecisionOpt = None,
    devices_file: DevicesFileOpt = None,
) -> None:
    """Push a model to a device and print its path there (pushed once; an identical file is reused).

    A model file is checked first; one with external data or dynamic inputs goes as one self-contained file. With a
    model name or factory, --param, --format and --precision choose the export.

    Example: flopgap push --device pixel7 mobilenet_v2 --param alpha=0.35
    """
    from devices.inventory import load_inventory, open_device
    from harness.cli.model_args import cli_model, pick_format, pick_precision
    from harness.sources import source_artifact

    model = cli_model(artifact, param, input_shape)
    fmt = pick_format(model, fmt, Format.TFLITE)
    level = pick_precision(model, precision)
    device = open_device(load_inventory(devices_file).get(device_name))
    with console.status(f"preparing {model.label} as {fmt} {level}..."):
        path = source_artifact(model, fmt, level).path
    try:
        remote = device.push(path)
    finally:
        close = getattr(device, "close", None)
        if close is not None:
            close()
    console.print(remote, highlight=False, soft_wrap=True)
