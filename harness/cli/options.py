"""Arguments and options that several `flopgap` commands share, declared once so their names and help agree.

Runtimes, precisions and formats are the :mod:`devices.vocabulary` enums: typer lists their values in ``--help``
and rejects anything else with its usual one-line usage error (exit code 2). A command sets its own default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devices.vocabulary import Format, Precision, Runtime

ModelArg = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        help="A zoo name (see 'flopgap models'), an .onnx/.tflite file, or a torch factory 'package.module:function'.",
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param", "-p", "--kwarg", help="Zoo model parameter, or factory keyword argument, as key=value; repeatable."
    ),
]
InputShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        help="Factory: an input shape like 1,3,224,224 (repeat per input). File: NAME=1,3,224,224 for dynamic dims.",
    ),
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Artifact format.")]
PrecisionOpt = Annotated[
    Precision, typer.Option(help="Artifact precision; int8 is full integer, int8-dynamic quantises weights only.")
]
RuntimeOpt = Annotated[Runtime, typer.Option(help="Runtime; litert runs XNNPACK, litert-builtin LiteRT's own kernels.")]
ModelRuntimeOpt = Annotated[
    Runtime | None,
    typer.Option(
        help="Runtime; litert runs XNNPACK, litert-builtin LiteRT's own kernels. Default: the file's own for a "
        "model file, else as shown.",
        show_default=False,
    ),
]
ModelPrecisionOpt = Annotated[
    Precision | None,
    typer.Option(
        help="Artifact precision; int8 is full integer, int8-dynamic quantises weights only. Default: fp32, or what "
        "a model file holds.",
        show_default=False,
    ),
]
ModelFormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format", "-f", help="Artifact format (default: tflite, or a model file's own).", show_default=False
    ),
]
ThreadsOpt = Annotated[int, typer.Option(min=1, help="Runtime threads.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Device name from the inventory ('local' always exists).")]
TrialsOpt = Annotated[int, typer.Option(min=1, help="Interleaved trials, each a fresh runner process.")]
RunsOpt = Annotated[int, typer.Option(min=1, help="Minimum timed runs per trial (profile: also per TFLite block).")]
MinSecondsOpt = Annotated[
    float, typer.Option(min=0, help="Minimum timed seconds per trial (profile: also per TFLite block).")
]
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="Results database (default: $FLOPGAP_DB, else results/flopgap.db).", show_default=False),
]
CacheDirOpt = Annotated[
    Path | None, typer.Option(help="Artifact cache (default: $FLOPGAP_CACHE_DIR, else the user cache dir).")
]
DevicesFileOpt = Annotated[
    Path | None,
    typer.Option("--devices", help="Device inventory TOML (default: $FLOPGAP_DEVICES, else the user config dir)."),
]
LabOpt = Annotated[
    str | None,
    typer.Option(
        "--lab",
        envvar="FLOPGAP_LAB",
        help="Measure on a lab's devices (the address 'flopgap lab start' printed; default: $FLOPGAP_LAB).",
        show_default=False,
    ),
]
