"""The architecture zoo: importing this package registers every model and block."""

from harness.zoo.registry import (
    EntryKind,
    ModelEntry,
    ModelSpec,
    Param,
    Reference,
    create_model,
    get_entry,
    grid,
    list_models,
    register_model,
    resolve,
)

# Builder modules register themselves on import (order does not matter).
from harness.zoo import (  # noqa: F401  isort: skip
    blocks,
    efficientnet,
    fd_mobilenet,
    guidelines,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    resnet,
    shufflenet_v1,
    shufflenet_v2,
)

__all__ = [
    "EntryKind",
    "ModelEntry",
    "ModelSpec",
    "Param",
    "Reference",
    "create_model",
    "get_entry",
    "grid",
    "list_models",
    "register_model",
    "resolve",
]
