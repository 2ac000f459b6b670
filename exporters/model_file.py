"""A model file the user brings: an ONNX graph (with or without external data) or a TFLite flatbuffer.

The format is found by parsing, not by the extension: a TFLite flatbuffer carries the identifier ``TFL3`` and must
unpack with LiteRT's schema; anything else must decode as an ONNX ``ModelProto`` with a graph and an opset. A file
is identified by the sha256 of its bytes, external data included (the data files follow the model's bytes in the
hash, in name order, each after its name), so the same file under two names is one model. Its inputs (names,
shapes with their dynamic dims, dtypes) and the precision it holds are read from the graph.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.vocabulary import Format, Precision
from exporters.errors import ExportError

TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8
DYNAMIC = "?"  # an unnamed dynamic dimension


class ModelFileError(ExportError):
    """A model file that cannot be measured: missing, not a model, or missing its external data."""


@dataclass(frozen=True)
class TensorInfo:
    """One graph input: name, shape (``int`` dims, ``str`` for a dynamic dim: its symbol or ``?``) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str  # numpy dtype name

    @property
    def dynamic(self) -> tuple[str, ...]:
        """The names of the dynamic dims (empty for a static input)."""
        return tuple(str(d) for d in self.shape if not isinstance(d, int))

    def shown(self) -> str:
        return f"{self.name}[{','.join(str(d) for d in self.shape)}] {self.dtype}"


@dataclass(frozen=True)
class ModelFile:
    path: Path  # absolute
    format: Format
    sha256: str  # of the bytes, external data included
    inputs: tuple[TensorInfo, ...]
    holds: Precision  # the precision of the graph as written
    external_data: tuple[Path, ...] = ()

    @property
    def label(self) -> str:
        """``net.onnx#1a2b3c4d``: the file name and the first 8 hex digits of its hash."""
        return f"{self.path.name}#{self.sha256[:8]}"


def read_model_file(path: Path | str) -> ModelFile:
    """Parse the model at ``path``; a missing file, a file that is not a model, or missing external data raise
    :class:`ModelFileError` in one line."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a directory, not a model file" if path.is_dir() else "does not exist"
        raise ModelFileError(f"{path} {what}; give the path of an .onnx or .tflite file")
    path = path.resolve()
    with path.open("rb") as f:
        head = f.read(8)
    if head[4:8] == TFLITE_IDENTIFIER:
        return _read_tflite(path)
    return _read_onnx(path)


def _not_a_model(path: Path, why: str) -> ModelFileError:
    return ModelFileError(
        f"{path.name} is neither an ONNX model nor a TFLite flatbuffer ({why}); give the file an exporter wrote"
    )


def content_sha256(path: Path, external: Iterable[Path] = ()) -> str:
    """sha256 of the model's bytes, then of each external data file's name and bytes (name order)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    for data in sorted(external, key=lambda p: p.name):
        digest.update(b"\0" + data.name.encode() + b"\0")
        with data.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- ONNX


def _read_onnx(path: Path) -> ModelFile:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise _not_a_model(path, f"protobuf: {_first_line(exc)}") from None
    if not proto.opset_import or not proto.graph.node or proto.ir_version <= 0:
        raise _not_a_model(path, "no graph, opset or IR version in it")
    external = _external_files(proto, path)
    initializers = {i.name for i in proto.graph.initializer}
    inputs = tuple(_onnx_input(vi) for vi in proto.graph.input if vi.name not in initializers)
    return ModelFile(path, Format.ONNX, content_sha256(path, external), inputs, onnx_precision(proto), external)


def _external_files(proto: object, path: Path) -> tuple[Path, ...]:
    from onnx import TensorProto

    locations: set[str] = set()
    for init in proto.graph.initializer:  # type: ignore[attr-defined]
        if init.data_location == TensorProto.EXTERNAL:
            locations.update(e.value for e in init.external_data if e.key == "location")
    files = []
    for location in sorted(locations):
        data = (path.parent / location).resolve()
        if not data.is_file():
            raise ModelFileError(
                f"{path.name} keeps its weights in {location}, which is not next to it; copy {location} beside "
                f"{path.name}"
            )
        files.append(data)
    return tuple(files)


def _onnx_input(vi: object) -> TensorInfo:
    from onnx import helper

    tt = vi.type.tensor_type  # type: ignore[attr-defined]
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
    except (KeyError, TypeError, ValueError):
        dtype = f"onnx-type-{tt.elem_type}"
    dims: list[int | str] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or DYNAMIC)
    return TensorInfo(vi.name, tuple(dims), dtype)  # type: ignore[attr-defined]


_ONNX_DYNAMIC_INT8 = {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}
_ONNX_STATIC_INT8 = {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "QLinearAdd"}


def onnx_precision(proto: object) -> Precision:
    """The precision an ONNX graph holds: int8 dynamic (integer convs on runtime-quantized activations), int8
    (quantize/dequantize pairs or QLinear ops), fp16 (float16 weights), else fp32."""
    from onnx import TensorProto

    ops = {n.op_type for n in proto.graph.node}  # type: ignore[attr-defined]
    if ops & _ONNX_DYNAMIC_INT8:
        return Precision.INT8_DYNAMIC
    if ops & _ONNX_STATIC_INT8:
        return Precision.INT8
    if any(i.data_type == TensorProto.FLOAT16 for i in proto.graph.initializer):  # type: ignore[attr-defined]
        return Precision.FP16
    return Precision.FP32


# --------------------------------------------------------------------------- TFLite


def _read_tflite(path: Path) -> ModelFile:
    from ai_edge_litert import schema_py_generated as fb

    try:
        model = fb.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    except Exception as exc:  # a corrupt flatbuffer fails anywhere in the generated unpacker
        raise _not_a_model(path, f"flatbuffer: {_first_line(exc)}") from None
    if not model.subgraphs:
        raise _not_a_model(path, "a flatbuffer with no subgraph")
    graph = model.subgraphs[0]
    type_names = {v: k for k, v in vars(fb.TensorType).items() if isinstance(v, int)}
    inputs = []
    for index in graph.inputs if graph.inputs is not None else []:
        t = graph.tensors[int(index)]
        signature = t.shapeSignature if t.shapeSignature is not None else t.shape
        dims: list[int | str] = [int(d) if d > 0 else DYNAMIC for d in (signature if signature is not None else [])]
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        inputs.append(TensorInfo(name, tuple(dims), type_names.get(t.type, "unknown").lower()))
    return ModelFile(path, Format.TFLITE, content_sha256(path), tuple(inputs), _tflite_precision(model, type_names))


def _tflite_precision(model: object, type_names: dict[int, str]) -> Precision:
    """int8 when activations are integer, int8-dynamic when only weights are, fp16 for float16 weights."""
    graph = model.subgraphs[0]  # type: ignore[attr-defined]
    buffers = model.buffers  # type: ignore[attr-defined]

    def constant(t: object) -> bool:
        buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None  # type: ignore[attr-defined]
        return buf is not None and ((buf.data is not None and len(buf.data) > 0) or bool(getattr(buf, "size", 0)))

    kinds = [(type_names.get(t.type, ""), constant(t)) for t in graph.tensors]
    if any(kind in ("INT8", "UINT8") and not const for kind, const in kinds):
        return Precision.INT8
    if any(kind == "INT8" and const for kind, const in kinds):
        return Precision.INT8_DYNAMIC
    if any(kind == "FLOAT16" for kind, _ in kinds):
        return Precision.FP16
    return Precision.FP32


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
