"""A model file as a sweep's model: the parsed file, the shapes that fix its dynamic dims, and what it can run on.

A file runs on the runtimes of its own format only, and (TFLite, or an ONNX file already reduced) at the precision
it holds; :meth:`FileSource.runtime_error` and :meth:`FileSource.precision` say so in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devices.vocabulary import Format, Precision, Runtime
from exporters.file_artifact import Shapes, check_precision, fixed_shapes
from exporters.model_file import ModelFile, read_model_file


@dataclass(frozen=True)
class FileSource:
    file: ModelFile
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # overrides of dynamic dims, by input name

    family = "file"

    @property
    def name(self) -> str:
        return str(self.file.path)

    @property
    def label(self) -> str:
        return self.file.label

    @property
    def format(self) -> Format:
        return self.file.format

    @property
    def shapes(self) -> Shapes:
        return dict(self.input_shapes)

    @property
    def converts(self) -> bool:
        """Whether other precisions can be made from it (a float32 ONNX graph)."""
        return self.file.format is Format.ONNX and self.file.holds is Precision.FP32

    def runtimes(self) -> tuple[Runtime, ...]:
        return tuple(r for r in Runtime if r.artifact_format is self.file.format)

    def runtime_error(self, runtime: Runtime) -> str | None:
        """Why ``runtime`` cannot run this file (None when it can)."""
        if runtime.artifact_format is self.file.format:
            return None
        kind = "an ONNX" if self.file.format is Format.ONNX else "a TFLite"
        fitting = " or ".join(r.value for r in self.runtimes())
        return (
            f"{self.file.path.name} is {kind} model and {runtime.value} runs .{runtime.artifact_format.value} files; "
            f"use --runtime {fitting}"
        )

    def precision(self, wanted: Precision | None) -> Precision:
        """The precision to measure at; one the file cannot give raises in one line."""
        return check_precision(self.file, wanted)


def load_file(path: Path | str, input_shapes: Shapes | None = None) -> FileSource:
    """Parse the file and fix its input shapes now, so a bad file or a missing shape fails before measuring."""
    model = read_model_file(path)
    shapes = fixed_shapes(model, input_shapes)
    declared = {i.name: i.shape for i in model.inputs}
    overrides = tuple((k, v) for k, v in sorted(shapes.items()) if declared[k] != v)
    return FileSource(model, overrides)
