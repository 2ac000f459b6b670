"""A zoo artifact's family and label as a sweep gives them to the store (the store itself knows no zoo)."""

from __future__ import annotations

from exporters.artifact import Artifact
from harness.zoo.registry import ModelSpec


def zoo_names(artifact: Artifact) -> dict[str, str]:
    """``family`` and ``label`` keywords for :meth:`harness.store.Store.upsert_artifact`."""
    spec = ModelSpec(artifact.model, artifact.params)
    return {"family": spec.family, "label": spec.label}
