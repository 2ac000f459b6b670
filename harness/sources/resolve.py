"""One rule turns a command-line or spec value into a model source: an existing path is a file, ``a.b:c`` is a
torch factory, anything else is a zoo name. A value that looks like a file (a path separator, or an ``.onnx`` /
``.tflite`` ending) but does not exist is a missing file, not an unknown zoo name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from devices.core.errors import FlopgapError
from devices.vocabulary import Format
from harness.sources.factory import is_factory_target, load_factory
from harness.sources.file import load_file
from harness.sources.kinds import ModelRef
from harness.zoo.registry import ParamValue, parse_param_args, resolve


class SourceArgumentError(FlopgapError):
    """An option that does not fit the model given (``--input-shape`` for a zoo model, a malformed shape...)."""


def looks_like_file(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in {f.extension for f in Format}


def resolve_model(
    text: str,
    params: Sequence[str] | Mapping[str, ParamValue] = (),
    input_shapes: Sequence[str] = (),
    base_dir: Path | None = None,
) -> ModelRef:
    """The model ``text`` names, with zoo parameters or factory keyword arguments (``params``) and input shapes
    (``--input-shape`` values: ``1,3,224,224`` for a factory, ``NAME=1,3,224,224`` for a file's dynamic dims)."""
    values = parse_param_args(params) if not isinstance(params, Mapping) else dict(params)
    path = Path(text).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if path.exists():
        if values:
            raise SourceArgumentError(f"{text} is a model file; --param/--kwarg are for zoo models and factories")
        return load_file(path, named_shapes(input_shapes, text))
    if is_factory_target(text):
        return load_factory(text, unnamed_shapes(input_shapes, text), {k: parse_value(v) for k, v in values.items()})
    if looks_like_file(text):
        raise SourceArgumentError(f"{path} does not exist; give the path of an .onnx or .tflite file")
    if input_shapes:
        raise SourceArgumentError(
            f"{text} is a zoo model with a fixed input size; --input-shape is for model files and torch factories"
        )
    return resolve(text, **values)


def parse_shape(text: str, what: str) -> tuple[int, ...]:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise SourceArgumentError(f"{what}: input shape '{text}' is not a list of positive integers like 1,3,224,224")
    return shape


def unnamed_shapes(items: Sequence[str], what: str) -> tuple[tuple[int, ...], ...]:
    """``--input-shape 1,3,224,224`` values of a factory, one per forward argument in order."""
    out = []
    for item in items:
        if "=" in item:
            raise SourceArgumentError(f"{what}: a factory's --input-shape is positional ('1,3,224,224'), not '{item}'")
        out.append(parse_shape(item, what))
    return tuple(out)


def named_shapes(items: Sequence[str], what: str) -> dict[str, tuple[int, ...]]:
    """``--input-shape NAME=1,3,224,224`` values of a file's dynamic inputs."""
    out: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise SourceArgumentError(
                f"{what}: a file's --input-shape names its input: NAME=1,3,224,224 (got '{item}')"
            )
        out[name.strip()] = parse_shape(dims, what)
    return out


def parse_value(text: ParamValue) -> ParamValue:
    """A factory keyword argument from the command line: int, float, true/false, else the string itself."""
    if not isinstance(text, str):
        return text
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
