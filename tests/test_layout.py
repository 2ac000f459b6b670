"""The layout stays as the README's Layout section draws it: modules stay small and the runner self-contained.

Which way packages import is import-linter's layers contract in pyproject.toml (CI runs ``lint-imports``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("devices", "exporters", "harness")
MAX_LINES = 500
RUNNER = ROOT / "devices" / "runner.py"  # one self-contained file that is copied onto boards


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every absolute module a file imports, at any depth (function-local imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_runner_needs_only_stdlib_numpy_and_a_runtime() -> None:
    """Top level: stdlib and numpy; a runtime is imported only when a model of its format is run."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    tree = ast.parse(RUNNER.read_text())
    top = {
        (alias.name if isinstance(node, ast.Import) else str(node.module)).split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert top - stdlib == {"numpy"}
    anywhere = {m.split(".")[0] for m in _imports(RUNNER)} - stdlib
    # ExecuTorch's Python runtime takes torch tensors (and depends on torch itself): both only for a .pte model
    assert anywhere <= {"numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime", "executorch", "torch"}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    if path == RUNNER:
        return
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by idea"


def test_the_import_reader_sees_local_imports(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    import onnxruntime.capi\n    from ai_edge_litert import interpreter\n")
    assert {"onnxruntime.capi", "ai_edge_litert", "ai_edge_litert.interpreter"} <= _imports(bad)


def test_devices_core_imports_nothing_of_flopgap() -> None:
    """devices.core is the bottom every package may import (errors, exit codes, digests): it imports no flopgap module
    but its own, so importing it can never cycle."""
    core = ROOT / "devices" / "core"
    for path in sorted(core.rglob("*.py")):
        ours = {m for m in _imports(path) if m.split(".")[0] in PACKAGES}
        assert {m for m in ours if not m.startswith("devices.core")} == set(), path.relative_to(ROOT)
