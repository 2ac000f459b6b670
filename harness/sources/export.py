"""The artifact and the MAC/parameter counts of any model source, as the sweep, `run`, `push`, `proxies` and
`profile` need them: zoo models and factories go through flopgap's exporters, files through
:mod:`exporters.file_artifact`."""

from __future__ import annotations

from pathlib import Path

from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from exporters.errors import ExportError
from exporters.export import export
from exporters.file_artifact import file_artifact
from exporters.source import example_inputs
from harness.sources.file import FileSource
from harness.sources.kinds import ModelRef
from harness.zoo.counting import Counts, count


def source_artifact(
    model: ModelRef,
    fmt: Format | str,
    precision: Precision | str | None = None,
    *,
    cache_dir: Path | None = None,
    check_parity: bool = True,
    out_dir: Path | None = None,
) -> Artifact:
    """The artifact measuring ``model`` as ``fmt`` at ``precision`` (None: fp32, or what a file holds)."""
    fmt = Format(fmt)
    if isinstance(model, FileSource):
        if fmt is not model.format:
            raise ExportError(
                f"{model.file.path.name} is a .{model.format.value} model; flopgap measures a file in its own "
                f"format, not converted to .{fmt.value}"
            )
        if out_dir is not None:
            raise ExportError(f"{model.file.path.name} is already a model file; --out is for zoo models and factories")
        return file_artifact(model.file, precision, model.shapes, cache_dir=cache_dir, check_parity=check_parity)
    return export(
        model, fmt, precision or Precision.FP32, cache_dir=cache_dir, check_parity=check_parity, out_dir=out_dir
    )


def source_counts(model: ModelRef, artifact: Artifact) -> Counts | None:
    """Parameters and conv/linear MACs: counted on the torch module where there is one, else read from the
    artifact's graph account (None when the graph cannot be accounted)."""
    if not isinstance(model, FileSource):
        xs = example_inputs(model)
        return count(model.build(), xs[0] if len(xs) == 1 else xs)
    from harness.proxies import account

    try:
        totals = account(artifact).totals
    except Exception:  # accounting is analysis support: the sweep records the point without MACs
        return None
    return Counts(params=int(totals.params), macs=int(totals.macs))
