"""The three kinds of model every command takes: a zoo configuration, a torch factory, a model file."""

from __future__ import annotations

from harness.sources.factory import TorchFactory
from harness.sources.file import FileSource
from harness.zoo.registry import ModelSpec

ModelRef = ModelSpec | TorchFactory | FileSource
