"""Model sources: what every command measures, whichever way the user names it.

``resolve_model(text)``: an existing path is a model file (:class:`FileSource`, measured as it is), ``a.b:c`` a
torch module factory (:class:`TorchFactory`, exported like a zoo model), anything else a zoo name
(:class:`~harness.zoo.registry.ModelSpec`). :func:`source_artifact` gives any of them as an artifact.
"""

from __future__ import annotations

from harness.sources.export import source_artifact, source_counts
from harness.sources.factory import FactoryError, TorchFactory, is_factory_target, load_factory
from harness.sources.file import FileSource, load_file
from harness.sources.kinds import ModelRef
from harness.sources.resolve import SourceArgumentError, named_shapes, resolve_model, unnamed_shapes

__all__ = [
    "FactoryError",
    "FileSource",
    "ModelRef",
    "SourceArgumentError",
    "TorchFactory",
    "is_factory_target",
    "load_factory",
    "load_file",
    "named_shapes",
    "resolve_model",
    "source_artifact",
    "source_counts",
    "unnamed_shapes",
]
