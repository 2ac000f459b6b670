"""The model argument every command shares: a zoo name, a model file or a torch factory, with its runtime,
precision and format defaults (a file's own format and precision; the zoo's defaults otherwise)."""

from __future__ import annotations

from devices.core.errors import FlopgapError
from devices.vocabulary import Format, Precision, Runtime
from harness.sources import FileSource, ModelRef, resolve_model


def cli_model(name: str, param: list[str] | None, input_shape: list[str] | None) -> ModelRef:
    """Resolve the MODEL argument with its --param/--kwarg and --input-shape options."""
    return resolve_model(name, param or [], input_shape or [])


def pick_runtime(model: ModelRef, runtime: Runtime | None, default: Runtime) -> Runtime:
    """``runtime``, else a file's own format's runtime, else ``default``; a runtime that cannot run the file raises."""
    if isinstance(model, FileSource):
        chosen = runtime or model.runtimes()[0]
        error = model.runtime_error(chosen)
        if error is not None:
            raise FlopgapError(error)
        return chosen
    return runtime or default


def pick_precision(model: ModelRef, precision: Precision | None) -> Precision:
    """``precision``, else what a file holds, else fp32; a precision a file cannot give raises."""
    if isinstance(model, FileSource):
        return model.precision(precision)
    return precision or Precision.FP32


def pick_format(model: ModelRef, fmt: Format | None, default: Format) -> Format:
    if isinstance(model, FileSource):
        if fmt is not None and fmt is not model.format:
            raise FlopgapError(
                f"{model.file.path.name} is a .{model.format.value} model; flopgap measures a file in its own format, "
                f"not converted to .{fmt.value}: drop --format"
            )
        return model.format
    return fmt or default
