"""A torch module factory named on the command line or in a spec: ``package.module:function``.

It is imported from the current directory or the environment, called with the user's keyword arguments under a
fixed seed (so random weights are the same every time; weights the factory loads itself are kept), checked to
return an ``nn.Module`` whose forward runs on the given input shapes, and then exported like a zoo model. Its
fingerprint (the source files of the factory and of every non-torch module class in the network, the arguments
and the initial weights) enters the artifact cache key, so an edited factory is exported again.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from devices.core.errors import FlopgapError
from harness.zoo.registry import SEED, ParamValue


class FactoryError(FlopgapError):
    """A factory that cannot be imported, called, or run on its input shapes; the message names it."""


@dataclass(frozen=True)
class TorchFactory:
    """A user's module factory with its keyword arguments and input shapes; a ``ModelSource`` for the exporters."""

    target: str  # "package.module:function"
    input_shapes: tuple[tuple[int, ...], ...]
    kwargs: tuple[tuple[str, ParamValue], ...] = ()
    fingerprint: str = ""

    family = "torch"

    @property
    def name(self) -> str:
        return self.target

    @property
    def params(self) -> tuple[tuple[str, ParamValue], ...]:
        return self.kwargs

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_shapes[0]

    @property
    def label(self) -> str:
        """``nets:tiny[width=8](1x3x32x32)``: target, keyword arguments, input shapes."""
        kw = f"[{','.join(f'{k}={v}' for k, v in self.kwargs)}]" if self.kwargs else ""
        shapes = ",".join("x".join(str(d) for d in s) for s in self.input_shapes)
        return f"{self.target}{kw}({shapes})"

    def build(self) -> nn.Module:
        """The factory's module, built under a fixed seed (torch's global RNG is left as it was), in eval mode."""
        return _call(self.target, dict(self.kwargs)).eval()

    def example_inputs(self, seed: int = SEED) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(seed)
        return tuple(torch.randn(shape, generator=gen) for shape in self.input_shapes)

    def example_input(self, seed: int = SEED) -> torch.Tensor:
        return self.example_inputs(seed)[0]


def is_factory_target(text: str) -> bool:
    """``a.b:c``: a dotted module path, a colon, an attribute (``C:\\...`` is a Windows path, not a factory)."""
    module, sep, attr = text.partition(":")
    if not sep or not attr or not module or len(module) == 1:
        return False
    return all(part.isidentifier() for part in [*module.split("."), *attr.split(".")])


def load_factory(
    target: str, input_shapes: tuple[tuple[int, ...], ...], kwargs: dict[str, ParamValue] | None = None
) -> TorchFactory:
    """Import and check the factory; every way it can fail raises :class:`FactoryError` in one line."""
    kwargs = dict(kwargs or {})
    if not input_shapes:
        raise FactoryError(
            f"{target}: a torch factory needs its input shapes: add --input-shape 1,3,224,224 (repeat it for each "
            "input; in a spec: input_shapes = [[1, 3, 224, 224]])"
        )
    module = _call(target, kwargs)
    xs = TorchFactory(target, input_shapes).example_inputs()
    try:
        with torch.no_grad():
            module.eval()(*xs)
    except Exception as exc:  # the user's forward: any failure is theirs to fix
        shapes = " ".join("x".join(str(d) for d in s) for s in input_shapes)
        raise FactoryError(f"{target}: forward fails on input shape {shapes} ({_first_line(exc)})") from None
    factory = TorchFactory(target, tuple(input_shapes), tuple(sorted(kwargs.items())))
    return TorchFactory(factory.target, factory.input_shapes, factory.kwargs, _fingerprint(factory, module))


def _call(target: str, kwargs: dict[str, ParamValue]) -> nn.Module:
    fn = _resolve(target)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            module = fn(**kwargs)
    except Exception as exc:  # the user's factory: any failure is theirs to fix
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise FactoryError(f"{target}({args}) raised {_first_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise FactoryError(f"{target} returned {type(module).__name__}, not a torch.nn.Module; return the network")
    return module


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # `flopgap` as a console script does not put the current directory on the path
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises while it is imported
        raise FactoryError(f"{target}: cannot import {module_name} ({_first_line(exc)})") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise FactoryError(f"{target}: {module_name} has no '{attr}'; check the name after the colon")
        obj = getattr(obj, part)
    if not callable(obj):
        raise FactoryError(f"{target} is a {type(obj).__name__}, not a function or class that builds a module")
    return obj


def _fingerprint(factory: TorchFactory, module: nn.Module) -> str:
    digest = hashlib.sha256(repr((factory.target, factory.input_shapes, factory.kwargs)).encode())
    torch_root = Path(torch.__file__).parent
    files = {_source_file(_resolve(factory.target))}
    files.update(_source_file(type(m)) for m in module.modules())
    # Each file by its name and contents, not its absolute path: the same factory in another checkout or virtual
    # environment is the same model, and its cached export (and measured points) are found again.
    ours = [Path(f) for f in files if f and not Path(f).is_relative_to(torch_root)]
    sources = sorted((path.name, path.read_bytes()) for path in ours)
    for name, text in sources:
        digest.update(name.encode())
        digest.update(text)
    digest.update(repr(module).encode())
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _source_file(obj: Any) -> str | None:
    try:
        return inspect.getsourcefile(obj)
    except TypeError:  # built-in or C-extension object: nothing of the user's to pin
        return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
