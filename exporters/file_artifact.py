"""A user's model file as a measurable artifact: as it is where possible, derived (and cached) where it must be.

- The file is measured as it is when it is one self-contained file with static input shapes and its format's
  extension: the artifact is the file itself and its sha256 the file's.
- An ONNX file with external data, dynamic input dims (fixed by ``input_shapes``) or another extension is written
  once as one self-contained ``.onnx`` in the artifact cache (same graph and weights, inputs fixed), so one file
  goes to a device and the runner sees static shapes.
- A float ONNX file converts to fp16, int8-dynamic and int8 with onnxruntime's tools, exactly as the zoo's exports,
  and parity is checked against the file itself in onnxruntime. A file that already holds a reduced precision,
  and any TFLite file, is measured at the precision it holds; asking for another one is an error.

Before any of it is measured, the artifact is loaded once on this machine by its runtime, so an op the runtime
does not support is named here, in one line, and not as a failed trial on a device.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from devices.core.digest import file_digest
from devices.vocabulary import Format, Precision
from exporters import onnx_export, parity, tflite_export
from exporters.artifact import Artifact
from exporters.cache import ArtifactCache, CacheUnwritable, disk_error, tool_versions, unwritable
from exporters.errors import ExportError
from exporters.export import CALIBRATION_SAMPLES, CALIBRATION_SEED, SUPPORTED
from exporters.model_file import ModelFile, TensorInfo
from exporters.quiet import captured_output

FILE_VERSION = "1"  # bump when what this module writes for a file changes
PARITY_SEED = 0
MAX_ONE_FILE = 2**31 - 1  # protobuf's limit: larger ONNX models must keep external data
Shapes = Mapping[str, tuple[int, ...]]


def fixed_shapes(model: ModelFile, overrides: Shapes | None = None) -> dict[str, tuple[int, ...]]:
    """Every input's concrete shape: the file's static dims, ``overrides`` (``{input name: shape}``) for dynamic
    ones. A dynamic dim without an override, an unknown input name or a shape that contradicts the file raise."""
    overrides = dict(overrides or {})
    names = [i.name for i in model.inputs]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ExportError(
            f"{model.path.name} has no input '{unknown[0]}'; its inputs: {', '.join(i.shown() for i in model.inputs)}"
        )
    out: dict[str, tuple[int, ...]] = {}
    for info in model.inputs:
        given = overrides.get(info.name)
        if given is None:
            if info.dynamic:
                raise ExportError(_dynamic_message(model, info))
            out[info.name] = tuple(int(d) for d in info.shape)
            continue
        if model.format is Format.TFLITE and tuple(given) != info.shape:
            raise ExportError(
                f"{model.path.name}: a TFLite file's input shapes are fixed ({info.shown()}); drop --input-shape "
                "or convert the model with the shape you want"
            )
        if len(given) != len(info.shape) or any(
            isinstance(d, int) and d != g for d, g in zip(info.shape, given, strict=False)
        ):
            raise ExportError(
                f"{model.path.name}: --input-shape {info.name}={_dims(given)} does not fit input {info.shown()}; "
                "give a value for each dim and keep the static ones"
            )
        out[info.name] = tuple(given)
    return out


def _dynamic_message(model: ModelFile, info: TensorInfo) -> str:
    example = ",".join(str(d) if isinstance(d, int) else "1" for d in info.shape)
    if model.format is Format.TFLITE:
        return (
            f"{model.path.name}: input {info.shown()} has dynamic dims ({', '.join(info.dynamic)}); TFLite files are "
            "measured with static shapes: convert it with a fixed input shape"
        )
    return (
        f"{model.path.name}: input {info.shown()} has dynamic dims ({', '.join(info.dynamic)}); give them with "
        f"--input-shape {info.name}={example} (in a spec: input_shapes = {{ {info.name} = [{example}] }})"
    )


def _dims(shape: tuple[int, ...]) -> str:
    return ",".join(str(d) for d in shape)


def file_artifact(
    model: ModelFile,
    precision: Precision | str | None = None,
    input_shapes: Shapes | None = None,
    *,
    cache_dir: Path | None = None,
    check_parity: bool = True,
    allow_parity_failure: bool = False,
) -> Artifact:
    """The artifact that measures ``model`` at ``precision`` (None: the precision the file holds)."""
    wanted = check_precision(model, precision)
    shapes = fixed_shapes(model, input_shapes)
    cache = ArtifactCache(cache_dir)
    base = _as_is(model, shapes, cache)
    if wanted is model.holds:
        return base
    art = _converted(model, base, wanted, shapes, cache)
    if check_parity and art.parity_error is None:
        art = _with_parity(model, base, art, shapes)
        with contextlib.suppress(CacheUnwritable):  # a read-only cache still serves its artifacts; parity is redone
            cache.put(art)
    ok = parity.passes(art.precision, art.parity_error, art.notes.get("parity", {}).get("cosine"))
    if check_parity and not allow_parity_failure and not ok:
        raise ExportError(
            f"{model.label}: onnx {wanted.value} parity fails {parity.criterion(wanted)}: relative error "
            f"{art.parity_error:.3g} against the file itself in onnxruntime; pass --no-parity to keep it anyway"
        )
    return art


def check_precision(model: ModelFile, precision: Precision | str | None) -> Precision:
    """The precision to measure ``model`` at; a conversion the file does not allow raises in one line."""
    if precision is None:
        return model.holds
    try:
        wanted = Precision(precision)
    except ValueError:
        raise ExportError(
            f"unknown precision '{precision}'; allowed: {', '.join(p.value for p in Precision)}"
        ) from None
    if wanted is model.holds:
        return wanted
    if model.format is Format.TFLITE:
        raise ExportError(
            f"{model.path.name} is a TFLite file holding {model.holds.value}; a TFLite file is measured at the "
            f"precision it holds: pass --precision {model.holds.value} (or convert it yourself)"
        )
    if model.holds is not Precision.FP32:
        raise ExportError(
            f"{model.path.name} already holds {model.holds.value}; only a float32 ONNX file converts to other "
            f"precisions: pass --precision {model.holds.value}"
        )
    if wanted not in SUPPORTED[Format.ONNX]:
        raise ExportError(f"{model.path.name}: onnx does not offer {wanted.value}")
    return wanted


# --------------------------------------------------------------------------- the file as it is


def _as_is(model: ModelFile, shapes: Shapes, cache: ArtifactCache) -> Artifact:
    declared = {i.name: i.shape for i in model.inputs}
    fixed = any(declared[name] != shape for name, shape in shapes.items())
    extension_ok = model.path.suffix.lower() == model.format.extension
    if not model.external_data and not fixed and extension_ok:
        art = _artifact(model, model.path, model.holds, shapes, {"derived": None})
        check_loads(art.path, model.format, model.label)
        return art
    key = _key(model, "self-contained", shapes)
    path = cache.named_path(_stem(model, model.holds), model.format, key)
    hit = cache.read(path)
    if hit is not None:
        return hit
    with cache.staging(path) as tmp:
        with _cache_faults(cache.root, f"writing {model.label} as one file"):
            if model.format is Format.ONNX:
                _write_onnx(model, shapes, tmp)
            else:
                shutil.copyfile(model.path, tmp)
        why = [w for w, on in (("external data", model.external_data), ("fixed inputs", fixed)) if on]
        art = _artifact(model, tmp, model.holds, shapes, {"derived": ", ".join(why) or "extension", "cache_key": key})
        check_loads(tmp, model.format, model.label)
    return cache.put(replace(art, path=path))


def _write_onnx(model: ModelFile, shapes: Shapes, out: Path) -> None:
    """One self-contained ``.onnx``: external data read in, dynamic input dims set to ``shapes``."""
    import onnx

    proto = onnx.load(str(model.path), load_external_data=True)
    for vi in proto.graph.input:
        if vi.name not in shapes:
            continue
        for dim, value in zip(vi.type.tensor_type.shape.dim, shapes[vi.name], strict=True):
            dim.ClearField("dim_param")
            dim.dim_value = value
    if proto.ByteSize() > MAX_ONE_FILE:
        raise ExportError(
            f"{model.path.name}: over 2 GB with its external data, too large for one ONNX file; flopgap measures "
            "models that fit in one file"
        )
    onnx.save_model(proto, str(out))


@contextlib.contextmanager
def _cache_faults(root: Path, action: str) -> Iterator[None]:
    """A write that failed because the cache's disk is full or read-only raises :class:`CacheUnwritable` (the
    cache's fault, not the file's, as for the zoo's exports); any other failure passes through."""
    try:
        yield
    except CacheUnwritable:
        raise
    except Exception as exc:
        fault = _disk_fault(root, exc, action)
        if fault is None:
            raise
        raise fault from None


def _disk_fault(root: Path, exc: BaseException, action: str) -> CacheUnwritable | None:
    """The one-line cache error for ``exc`` when its cause is a full or read-only disk, else None."""
    cause = disk_error(exc)
    if cause is None:
        return None
    return unwritable(root, cause if isinstance(cause, OSError) else None, action, str(cause))


# --------------------------------------------------------------------------- reduced precisions (ONNX)


def _converted(
    model: ModelFile, base: Artifact, precision: Precision, shapes: Shapes, cache: ArtifactCache
) -> Artifact:
    key = _key(model, precision.value, shapes)
    path = cache.named_path(_stem(model, precision), Format.ONNX, key)
    hit = cache.read(path)
    if hit is not None:
        return hit
    with cache.staging(path) as tmp:
        with captured_output() as log:
            try:
                calib = calibration_inputs(model, shapes) if precision is Precision.INT8 else []
                onnx_export.convert_precision(base.path, tmp, precision, calib)
                failure: Exception | None = None
            except Exception as exc:  # any converter failure becomes one ExportError below
                failure = exc
        if failure is not None:
            fault = _disk_fault(cache.root, failure, f"converting {model.label} to onnx {precision.value}")
            if fault is not None:  # the converter could not write its output: the cache's fault, not the file's
                raise fault from None
            tail = log.tail(2).replace("\n", " | ")
            raise ExportError(
                f"{model.label}: onnx {precision.value} conversion failed ({type(failure).__name__}: "
                f"{_one_line(str(failure))}){'; ' + tail if tail else ''}"
            ) from failure
        art = _artifact(
            model, tmp, precision, shapes, {"derived": f"{precision.value} by onnxruntime", "cache_key": key}
        )
        check_loads(tmp, Format.ONNX, model.label)
    return cache.put(replace(art, path=path))


def random_inputs(model: ModelFile, shapes: Shapes, seed: int) -> tuple[np.ndarray, ...]:
    """Inputs of the file's dtypes: floats ~ N(0, 1), integers in 0..9 (likely indices), bools 50/50."""
    rng = np.random.default_rng(seed)
    out = []
    for info in model.inputs:
        shape, dtype = shapes[info.name], np.dtype(info.dtype)
        if dtype.kind == "f":
            out.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind in "iu":
            out.append(rng.integers(0, 9, size=shape, endpoint=True).astype(dtype))
        else:
            out.append(rng.random(shape) < 0.5)
    return tuple(out)


def calibration_inputs(model: ModelFile, shapes: Shapes) -> list[tuple[np.ndarray, ...]]:
    return [random_inputs(model, shapes, CALIBRATION_SEED + i) for i in range(CALIBRATION_SAMPLES)]


def _with_parity(model: ModelFile, base: Artifact, art: Artifact, shapes: Shapes) -> Artifact:
    x = random_inputs(model, shapes, PARITY_SEED)
    other = random_inputs(model, shapes, parity.SIGNAL_SEED)
    with captured_output():
        ref, y, moved = parity.run_onnx(base.path, x), parity.run_onnx(art.path, x), parity.run_onnx(base.path, other)
    result = parity.compare(y, ref, moved, art.precision, parity.runtime_name(Format.ONNX))
    notes = {**art.notes, "parity": {**result.as_notes(), "reference": "the file itself in onnxruntime"}}
    return replace(art, parity_error=result.error, parity_bound=result.bound, notes=notes)


# --------------------------------------------------------------------------- shared


def _artifact(model: ModelFile, path: Path, precision: Precision, shapes: Shapes, notes: dict[str, Any]) -> Artifact:
    counts = onnx_export.op_counts(path) if model.format is Format.ONNX else tflite_export.op_counts(path)
    transpose = "Transpose" if model.format is Format.ONNX else "TRANSPOSE"
    first = next(iter(shapes.values()), ())
    return Artifact(
        path=path,
        format=model.format,
        precision=precision,
        sha256=file_digest(path),
        model=str(model.path),
        params=(),
        input_shape=tuple(first),
        layout="as-is",  # a foreign graph's layout is whatever its author chose
        tool_versions=tool_versions(),
        parity_error=None,
        parity_bound=None,
        size_bytes=path.stat().st_size,
        notes={
            "source": "file",
            "file": model.path.name,
            "file_sha256": model.sha256,
            "label": model.label,
            "external_data": [p.name for p in model.external_data],
            "holds": model.holds.value,
            "inputs": [{"name": i.name, "shape": list(shapes[i.name]), "dtype": i.dtype} for i in model.inputs],
            "op_counts": counts,
            "transpose_ops": counts.get(transpose, 0),
            **{k: v for k, v in notes.items() if v is not None},
        },
    )


def _key(model: ModelFile, step: str, shapes: Shapes) -> str:
    import hashlib

    payload = {
        "file": model.sha256,
        "step": step,
        "shapes": {k: list(v) for k, v in sorted(shapes.items())},
        "version": FILE_VERSION,
        "tools": tool_versions(),
    }
    if step == Precision.INT8.value:
        payload["calibration"] = {"samples": CALIBRATION_SAMPLES, "seed": CALIBRATION_SEED}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _stem(model: ModelFile, precision: Precision) -> str:
    name = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", model.path.stem).strip("_") or "model"
    return f"{name}_{model.sha256[:8]}_{precision.value}"


_ORT_MISSING = (
    re.compile(r"Could not find an implementation for (?P<op>[\w.:]+)\(\d+\) node with name '(?P<node>[^']*)'"),
    re.compile(r"(?P<op>[\w.]*:?[\w.]+)\(-?\d+\) is not a registered function/op"),
    re.compile(r"No Op registered for (?P<op>\w+) with domain_version"),
    re.compile(r"No opset import for domain '(?P<op>[^']+)'"),
)
_TFLITE_MISSING = (
    re.compile(r"unresolved custom op: (?P<op>[\w.]+)"),
    re.compile(r"Didn't find op for builtin opcode '(?P<op>\w+)'"),
)


def check_loads(path: Path, fmt: Format, label: str) -> None:
    """Load the model once in its runtime here; an op it does not support is named in the one-line error."""
    try:
        with captured_output():
            if fmt is Format.ONNX:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.log_severity_level = 3
                ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            else:
                interp = parity.tflite_interpreter(path)
                interp.allocate_tensors()
    except Exception as exc:  # the runtimes raise their own exception types (or RuntimeError)
        text = str(exc)
        runtime = parity.runtime_name(fmt)
        for pattern in _ORT_MISSING if fmt is Format.ONNX else _TFLITE_MISSING:
            found = pattern.search(text)
            if found:
                node = found.groupdict().get("node")
                where = f" (node '{node}')" if node else ""
                raise ExportError(
                    f"{label}: {runtime} does not support op '{found.group('op')}'{where}; replace that op or "
                    "measure the model with a runtime that has it"
                ) from None
        raise ExportError(f"{label}: {runtime} cannot load it ({_one_line(text)})") from None


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
