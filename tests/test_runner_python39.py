"""The on-device runner stays Python 3.9: boards ship old Pythons (Debian 11, Ubuntu 20.04 images, Jetson JetPack)."""

from __future__ import annotations

import ast
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "devices" / "runner.py"


def _newer_than_39(source: str) -> list[str]:
    """Runtime uses of 3.10+ features that parsing with feature_version=(3, 9) does not catch."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            second = node.args[1] if len(node.args) == 2 else None
            union = isinstance(second, ast.BinOp) and isinstance(second.op, ast.BitOr)
            if node.func.id in ("isinstance", "issubclass") and union:
                found.append(f"line {node.lineno}: {node.func.id} with an X | Y union (3.10)")
            if node.func.id == "zip" and any(k.arg == "strict" for k in node.keywords):
                found.append(f"line {node.lineno}: zip(strict=...) (3.10)")
        if isinstance(node, ast.Attribute) and node.attr in ("bit_count", "aiter", "anext"):
            found.append(f"line {node.lineno}: .{node.attr} (3.10)")
    return found


def test_runner_parses_as_python_39() -> None:
    source = RUNNER.read_text()
    ast.parse(source, feature_version=(3, 9))  # match statements, parenthesized context managers, ... fail here
    assert source.startswith('"""') and "from __future__ import annotations" in source  # X | Y in annotations
    assert _newer_than_39(source) == []


def test_the_checker_sees_310_only_code() -> None:
    code = "isinstance(x, int | float)\nzip(a, b, strict=True)\n(5).bit_count()\n"
    assert _newer_than_39(code) == [
        "line 1: isinstance with an X | Y union (3.10)",
        "line 2: zip(strict=...) (3.10)",
        "line 3: .bit_count (3.10)",
    ]
    try:
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 9))
    except SyntaxError:
        return
    raise AssertionError("feature_version=(3, 9) accepted a match statement")
