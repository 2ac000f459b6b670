"""Sweep specs: validation names the file and the key; grids expand into points."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from harness.measure.spec import (
    QUICK_SPEC,
    SpecError,
    expand_models,
    expand_points,
    load_spec,
    parse_spec,
    spec_to_toml,
)


def test_quick_spec_expands_to_both_formats() -> None:
    spec = parse_spec(QUICK_SPEC, "quick")
    points = expand_points(spec)
    models = expand_models(spec)
    assert len(models) == 6
    assert len({m.family for m in models}) == 6  # six different families
    assert len(points) == 6 * 2  # two runtimes, one precision, one thread count, one device
    assert {p.format for p in points} == {"onnx", "tflite"}


def test_grid_expands_lists_and_wildcards() -> None:
    spec = parse_spec(
        """
        [[models]]
        name = "mobilenet_v1"
        params = { alpha = [0.25, 0.5], resolution = [128, 160, 224] }
        [[models]]
        name = "shufflenet_v2"
        """
    )
    labels = [m.label for m in expand_models(spec)]
    assert len(labels) == 2 * 3 + 1
    assert "mobilenet_v1[alpha=0.5,resolution=160]" in labels


def test_unknown_top_level_key_names_file_and_key(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('thread = [1]\n[[models]]\nname = "shufflenet_v2"\n')
    with pytest.raises(SpecError) as exc:
        load_spec(f)
    msg = str(exc.value)
    assert str(f) in msg and "'thread'" in msg and "threads" in msg


def test_unknown_protocol_key_lists_protocol_keys() -> None:
    with pytest.raises(SpecError, match=r"unknown key 'protocol.trails'; allowed here: trials, warmup_runs"):
        parse_spec('[[models]]\nname = "shufflenet_v2"\n[protocol]\ntrails = 3\n')


def test_unknown_model_suggests_close_match() -> None:
    with pytest.raises(SpecError, match="did you mean: shufflenet_v2"):
        parse_spec('[[models]]\nname = "shufflenet_v3"\n')


def test_value_not_offered_names_parameter() -> None:
    with pytest.raises(SpecError, match=r"'alpha'.*allowed: 0.25, 0.5, 0.75, 1.0"):
        parse_spec('[[models]]\nname = "mobilenet_v1"\nparams = { alpha = 0.3 }\n')


def test_unknown_runtime_lists_runtimes() -> None:
    with pytest.raises(SpecError, match=r"key 'runtimes': unknown runtime 'tvm'; allowed: onnxruntime, litert"):
        parse_spec('runtimes = ["tvm"]\n[[models]]\nname = "shufflenet_v2"\n')


def test_unknown_precision_lists_precisions() -> None:
    with pytest.raises(
        SpecError, match=r"key 'precisions': unknown precision 'int4'; allowed: fp32, fp16, int8, int8-dy"
    ):
        parse_spec('precisions = ["fp32", "int4"]\n[[models]]\nname = "shufflenet_v2"\n')


def test_spec_written_as_toml_reads_back_equal_even_with_hostile_strings() -> None:
    spec = parse_spec(QUICK_SPEC, "quick").model_copy(
        update={"name": 'a "quoted"\\ name\twith\nnewline, DEL \x7f and ü ✓', "devices": ['x"y', "local"]}
    )
    text = spec_to_toml(spec)
    assert tomllib.loads(text)["name"] == spec.name and tomllib.loads(text)["devices"] == ['x"y', "local"]
    assert parse_spec(text, "written") == spec
    assert parse_spec(spec_to_toml(parse_spec(text)), "again") == spec


def test_bad_toml_names_file() -> None:
    with pytest.raises(SpecError, match=r"my\.toml: not valid TOML"):
        parse_spec("[[models]\n", "my.toml")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("runtimes = []", "key 'runtimes' is empty; give at least one of: onnxruntime, litert, litert-builtin"),
        ("precisions = []", "key 'precisions' is empty; give at least one of: fp32, fp16, int8, int8-dynamic"),
        ("devices = []", "key 'devices' is empty; give device names from the inventory"),
        ("threads = []", "key 'threads' is empty; give thread counts such as [1, 4], or omit the key"),
        ("threads = [true]", "key 'threads': true/false is not a number"),
    ],
)
def test_empty_or_boolean_lists_are_rejected(line: str, expected: str) -> None:
    """An empty list ran 0 points and exited 0, as if the sweep had succeeded."""
    with pytest.raises(SpecError) as exc:
        parse_spec(f'{line}\n[[models]]\nname = "shufflenet_v2"\n', "s.toml")
    assert str(exc.value) == f"s.toml: {expected}" or str(exc.value).startswith(f"s.toml: {expected}")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('name = "shufflenet_v1"\nparams = { groups = 3.7 }', "parameter 'groups' must be an integer, got 3.7"),
        ('name = "mobilenet_v1"\nparams = { alpha = true }', "parameter 'alpha' must be a number, got True"),
        ('name = "mobilenet_v1"\nparams = { alpha = [] }', "parameter 'alpha' has an empty list of values"),
    ],
)
def test_spec_parameters_are_not_coerced(table: str, expected: str) -> None:
    with pytest.raises(SpecError, match=re.escape(expected)):
        parse_spec(f"[[models]]\n{table}\n", "s.toml")


def test_protocol_numbers_are_not_booleans() -> None:
    with pytest.raises(SpecError, match=r"s\.toml: key 'protocol\.trials': true/false is not a number"):
        parse_spec('[[models]]\nname = "shufflenet_v2"\n[protocol]\ntrials = true\n', "s.toml")
    assert parse_spec('[[models]]\nname = "shufflenet_v2"\n[protocol]\nparity = false\n').protocol.parity is False
