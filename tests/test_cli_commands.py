"""The command line through typer's CliRunner: typed options reject bad values in one line, `run` and `profile`
build their spec as objects (a quote in a name stays a name), and every command reports user errors alike."""

from __future__ import annotations

import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner, Result

from devices.vocabulary import Precision, Runtime
from harness.cli.main import app
from harness.cli.sweep import one_point_spec
from harness.cli.user_errors import one_line_errors
from harness.measure.spec import Protocol, parse_spec, spec_to_toml
from harness.zoo.registry import resolve

WIDE = {"COLUMNS": "240"}  # so typer's error box never wraps its one line
INVENTORY = """
[devices.rpi5]
transport = "ssh"
host = "192.168.1.50"
"""


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=WIDE)


def _lines_with(output: str, needle: str) -> list[str]:
    return [line for line in output.splitlines() if needle in line]


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "devices.toml"
    path.write_text(INVENTORY)
    return path


@pytest.mark.parametrize("command", ["run", "profile"])
def test_precision_with_a_quote_is_rejected_in_one_line_naming_the_choices(command: str, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    res = _invoke(command, "conv1x1", "--precision", 'fp32", "int8', "--db", str(db))
    assert res.exit_code == 2
    [line] = _lines_with(res.output, "Invalid value for '--precision'")
    assert "'fp32\", \"int8' is not one of 'fp32', 'fp16', 'int8', 'int8-dynamic'" in line
    assert not db.exists()  # nothing was measured, not even a database created


@pytest.mark.parametrize(
    "args",
    [
        ("run", "conv1x1", "--runtime", "tflite"),
        ("profile", "conv1x1", "--runtime", "tflite"),
        ("calibrate", "--runtime", "tflite"),
    ],
)
def test_unknown_runtime_is_rejected_in_one_line_naming_the_choices(args: tuple[str, ...]) -> None:
    res = _invoke(*args)
    assert res.exit_code == 2
    [line] = _lines_with(res.output, "Invalid value for '--runtime'")
    assert "'tflite' is not one of 'onnxruntime', 'litert', 'litert-builtin'" in line


def test_unknown_format_is_rejected_by_export_and_proxies() -> None:
    export = _invoke("export", "conv1x1", "--format", "pb")
    assert export.exit_code == 2
    assert "'pb' is not one of 'onnx', 'tflite', 'pte'" in _lines_with(export.output, "Invalid value for '--format'")[0]
    # The proxies account graphs: an ExecuTorch program is not offered (it would fail after its export).
    for fmt in ("pb", "pte"):
        proxies = _invoke("proxies", "show", "conv1x1", "--format", fmt)
        assert proxies.exit_code == 2
        line = _lines_with(proxies.output, "Invalid value for '--format'")[0]
        assert f"'{fmt}' is not one of onnx, tflite, both" in line


def test_threads_below_one_is_a_usage_error() -> None:
    res = _invoke("run", "conv1x1", "--threads", "0")
    assert res.exit_code == 2
    assert len(_lines_with(res.output, "Invalid value for '--threads'")) == 1


@pytest.mark.parametrize("command", ["run", "profile"])
def test_device_with_a_quote_is_an_unknown_device_as_in_a_spec_file(
    command: str, inventory: Path, tmp_path: Path
) -> None:
    db = tmp_path / "r.db"
    res = _invoke(command, "conv1x1", "--device", 'rpi"5', "--devices", str(inventory), "--db", str(db))
    assert res.exit_code == 2
    assert res.output == (
        f"error: unknown device 'rpi\"5'; did you mean 'rpi5'? known: local, rpi5 (inventory: {inventory}; "
        "set $FLOPGAP_DEVICES or --devices to use another)\n"
    )
    assert not db.exists()
    spec = tmp_path / "s.toml"
    spec.write_text('devices = ["rpi\\"5"]\n[[models]]\nname = "conv1x1"\n')
    from_file = _invoke("sweep", str(spec), "--devices", str(inventory), "--db", str(db))
    assert from_file.exit_code == 2 and from_file.output == res.output


def test_user_errors_print_one_line_and_exit_2() -> None:
    res = _invoke("run", "shufflenet_v3")
    assert res.exit_code == 2
    hint = "did you mean: shufflenet_v2, shufflenet_v1, shufflenet_v2_unit?"
    assert res.output == f"error: unknown model 'shufflenet_v3'; {hint}\n"
    bad_kind = _invoke("models", "--kind", "layer")
    assert bad_kind.exit_code == 2
    assert "'layer' is not one of 'model', 'block'" in _lines_with(bad_kind.output, "Invalid value for '--kind'")[0]


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer's own click classes)
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_every_command_reports_user_errors_in_one_line() -> None:
    commands = dict(_commands(get_command(app)))
    assert {"run", "profile", "calibrate", "export", "push", "results show", "proxies show"} <= set(commands)
    ours = one_line_errors(lambda: None).__code__.co_qualname  # functools.wraps keeps the code object's own name
    for name, cmd in commands.items():
        chain: list[object] = [cmd.callback]
        while hasattr(chain[-1], "__wrapped__"):
            chain.append(chain[-1].__wrapped__)  # type: ignore[attr-defined]
        assert any(getattr(getattr(f, "__code__", None), "co_qualname", None) == ours for f in chain), name


def test_one_point_spec_is_built_from_objects_and_stored_as_toml_that_reads_back() -> None:
    model = resolve("shufflenet_v2", scale=0.5, shuffle="gather")
    protocol = Protocol(trials=2, runs=7, min_seconds=0.25, profile=True, profile_depth=2)
    spec = one_point_spec("profile", model, Runtime.LITERT_BUILTIN, Precision.INT8_DYNAMIC, 4, 'pi"x\\y', protocol)
    assert spec.name == "profile shufflenet_v2[scale=0.5,shuffle=gather]"
    assert spec.runtimes == [Runtime.LITERT_BUILTIN] and spec.precisions == [Precision.INT8_DYNAMIC]
    assert spec.threads == [4] and spec.devices == ['pi"x\\y']
    assert spec.models[0].params == {"scale": 0.5, "shuffle": "gather"}
    text = spec_to_toml(spec)
    assert tomllib.loads(text)["devices"] == ['pi"x\\y']
    assert parse_spec(text, "stored") == spec


def test_run_stores_its_spec_as_toml_of_the_constructed_spec(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    cache = tmp_path / "cache"
    args = ["run", "conv1x1", "-p", "cin=8", "-p", "cout=8", "-p", "h=8", "-p", "w=8", "--runtime", "onnxruntime",
            "--trials", "1", "--runs", "3", "--min-seconds", "0", "--threads", "1", "--db", str(db),
            "--cache-dir", str(cache)]  # fmt: skip
    res = _invoke(*args)
    assert res.exit_code == 0, res.output
    with sqlite3.connect(db) as conn:
        name, text = conn.execute("SELECT spec_name, spec_toml FROM runs").fetchone()
        (status,) = conn.execute("SELECT status FROM points").fetchone()
    assert status == "done"
    spec = parse_spec(text, "stored")
    assert name == spec.name == "run conv1x1[cin=8,cout=8,h=8,w=8]"
    assert spec.runtimes == [Runtime.ONNXRUNTIME] and spec.precisions == [Precision.FP32] and spec.threads == [1]
    assert (spec.protocol.trials, spec.protocol.runs, spec.protocol.min_seconds) == (1, 3, 0.0)
    assert spec.models[0].params == {"cin": 8, "cout": 8, "h": 8, "w": 8, "stride": 1}
