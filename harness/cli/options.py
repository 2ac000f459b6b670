"""Command-line options shared by several `flopgap` commands, declared once so their names and help agree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p", help="Model parameter as key=value; repeatable.")]
PrecisionOpt = Annotated[str, typer.Option(help="fp32, fp16, int8 (full integer) or int8-dynamic.")]
ThreadsOpt = Annotated[int, typer.Option(help="Runtime threads.")]
DeviceOpt = Annotated[str, typer.Option(help="Device name from the inventory.")]
DbOpt = Annotated[Path | None, typer.Option(help="Results database (default results/flopgap.db or $FLOPGAP_DB).")]
CacheDirOpt = Annotated[
    Path | None, typer.Option(help="Artifact cache (default: user cache dir, or $FLOPGAP_CACHE_DIR).")
]
DevicesFileOpt = Annotated[
    Path | None,
    typer.Option("--devices", help="Device inventory TOML (default $FLOPGAP_DEVICES or the user config dir)."),
]
