"""Your own model through every command: ONNX files (legacy TorchScript export with a dynamic batch, dynamo export
with external data, several inputs of four dtypes), a quantized TFLite file, torch factories, and every bad input.

The files are built here from the small networks in ``tests/own_nets.py`` with the real exporters; everything runs
through the real CLI, runtimes, store and (for pushes) the loopback sshd.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from typer.testing import CliRunner, Result

from devices.core.digest import file_digest
from devices.runner import random_input
from devices.vocabulary import Format, Precision
from exporters import tflite_export
from exporters.cache import CacheUnwritable
from exporters.file_artifact import file_artifact
from exporters.model_file import content_sha256, read_model_file
from exporters.onnx_export import legacy_module_path, node_module_path, ort_node_names
from harness.cli.main import app
from harness.sources import FileSource, TorchFactory, load_factory, resolve_model
from tests.conftest import Sshd, small_tmpfs
from tests.own_nets import MixedInputs, TinyNet, mixed_example, tiny_macs
from tests.sweep_files import ssh_board, write_inventory

WIDE = {"COLUMNS": "240"}
FAST = ["--trials", "1", "--runs", "5", "--min-seconds", "0"]
FILE = "an .onnx or .tflite file"
NOT_MODEL = "an ONNX model nor a TFLite flatbuffer"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=WIDE)


def _one_error_line(res: Result) -> str:
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _own_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOPGAP_CACHE_DIR", str(cache))  # push has no --cache-dir


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The foreign models, written once per module."""
    d = tmp_path_factory.mktemp("files")
    net = TinyNet().eval()
    x = torch.randn(1, 3, 32, 32)
    # Legacy TorchScript export, dynamic batch: node names like /features/features.0/Conv.
    torch.onnx.export(net, (x,), str(d / "legacy.onnx"), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    # Dynamo export with its weights in net.onnx.data.
    (d / "dynamo").mkdir()
    torch.onnx.export(net, (x,), str(d / "dynamo" / "net.onnx"), dynamo=True, external_data=True)
    torch.onnx.export(
        MixedInputs().eval(),
        mixed_example(),
        str(d / "mixed.onnx"),
        dynamo=False,
        input_names=["x", "ids", "keep", "pixels"],
    )
    # The legacy file with every node name removed, as some tools write graphs: no module path anywhere.
    plain = onnx.load(str(d / "legacy.onnx"))
    for node in plain.graph.node:
        node.name = ""
    onnx.save(plain, str(d / "plain.onnx"))
    # A full-integer TFLite file converted from the torch module (litert-torch, then ai-edge-quantizer).
    fp32 = d / "tiny_fp32.tflite"
    tflite_export.export_tflite(net, x, fp32)
    calib = [np.random.default_rng(i).standard_normal((1, 32, 32, 3)).astype(np.float32) for i in range(4)]
    tflite_export.convert_precision(fp32, d / "quant.tflite", Precision.INT8, calib)
    # An op onnxruntime has no kernel for.
    node = helper.make_node("Foo", ["x"], ["y"], domain="com.example", name="mystery")
    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("x", "y")]
    graph = helper.make_graph([node], "g", [value[0]], [value[1]])
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(d / "custom.onnx"))
    (d / "broken.onnx").write_bytes(b"this is not a model, only some text\n" * 8)
    (d / "broken.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 64)
    return d


def _store(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return conn


# --------------------------------------------------------------------------- files


def test_legacy_export_names_its_dynamic_batch_then_runs_with_file_identity(files: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    line = _one_error_line(_invoke("run", str(files / "legacy.onnx"), "--db", str(db), *FAST))
    assert line == (
        "error: legacy.onnx: input x[n,3,32,32] float32 has dynamic dims (n); give them with "
        "--input-shape x=1,3,32,32 (in a spec: input_shapes = { x = [1,3,32,32] })"
    )
    assert not db.exists()
    res = _invoke("run", str(files / "legacy.onnx"), "--input-shape", "x=1,3,32,32", "--db", str(db), *FAST)
    assert res.exit_code == 0, res.output
    sha = file_digest(files / "legacy.onnx")
    with _store(db) as conn:
        [art] = conn.execute("SELECT * FROM artifacts").fetchall()
        [point] = conn.execute("SELECT * FROM points").fetchall()
    assert art["label"] == f"legacy.onnx#{sha[:8]}" and art["family"] == "file"
    assert art["model"] == str(files / "legacy.onnx") and art["format"] == "onnx" and art["precision"] == "fp32"
    assert json.loads(art["input_shape_json"]) == [1, 3, 32, 32]
    assert art["macs"] == tiny_macs()  # read from the graph: BatchNorm folded into the conv by the exporter
    notes = json.loads(art["notes_json"])
    assert notes["file_sha256"] == sha and notes["derived"] == "fixed inputs"
    assert point["status"] == "done" and point["runtime"] == "onnxruntime"
    assert f"legacy.onnx#{sha[:8]}" in res.output


def test_same_file_under_two_names_is_one_artifact_and_inputs_of_four_dtypes(files: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    copy = tmp_path / "renamed.onnx"
    shutil.copyfile(files / "mixed.onnx", copy)
    first = _invoke("run", str(files / "mixed.onnx"), "--db", str(db), *FAST)
    assert first.exit_code == 0, first.output
    second = _invoke("run", str(copy), "--db", str(db), *FAST)
    assert second.exit_code == 0, second.output
    assert "0 trials measured, 1 points already done (skipped)" in second.output
    with _store(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] == 1
        runner = json.loads(conn.execute("SELECT runner_json FROM trials").fetchone()[0])
    inputs = {i["name"]: (i["dtype"], i["shape"]) for i in runner["inputs"]}
    assert inputs == {
        "x": ("float32", [1, 4, 8, 8]),
        "ids": ("int64", [1, 5]),
        "keep": ("bool", [1, 4, 8, 8]),
        "pixels": ("uint8", [1, 4, 8, 8]),
    }


def test_external_data_is_part_of_the_identity_and_the_artifact_is_one_file(files: Path, tmp_path: Path) -> None:
    model, data = files / "dynamo" / "net.onnx", files / "dynamo" / "net.onnx.data"
    graph = onnx.load(str(model), load_external_data=False).graph
    outside = [i.name for i in graph.initializer if i.data_location == TensorProto.EXTERNAL]
    assert len(outside) >= 3 and data.stat().st_size > 2000  # the conv weights really are outside the graph file
    parsed = read_model_file(model)
    assert parsed.external_data == (data,)
    assert parsed.sha256 == content_sha256(model, [data]) != file_digest(model)
    # The same graph with one weight byte changed is another model.
    other = tmp_path / "net"
    shutil.copytree(files / "dynamo", other)
    raw = bytearray((other / "net.onnx.data").read_bytes())
    raw[100] ^= 0xFF
    (other / "net.onnx.data").write_bytes(bytes(raw))
    assert read_model_file(other / "net.onnx").sha256 != parsed.sha256
    (other / "net.onnx.data").unlink()
    with pytest.raises(Exception, match=r"keeps its weights in net.onnx.data, which is not next to it"):
        read_model_file(other / "net.onnx")
    art = file_artifact(parsed, cache_dir=tmp_path / "cache")
    assert art.notes["derived"] == "external data" and art.path.parent == tmp_path / "cache"
    alone = tmp_path / "alone.onnx"
    shutil.copyfile(art.path, alone)  # no .data next to it: it must load on its own
    assert read_model_file(alone).external_data == ()
    from exporters.parity import run_onnx

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(run_onnx(alone, x), run_onnx(model, x))


def _fill(disk: Path) -> None:
    """Write into ``disk`` until its filesystem is full."""
    with (disk / "filler").open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)


def test_a_file_model_into_a_full_cache_fails_in_one_cache_line_not_as_the_models_fault(
    files: Path, tmp_path: Path
) -> None:
    """Writing a file model's self-contained copy or its fp16 conversion into a full cache raised the disk's
    OSError (or blamed the model's conversion); it is the cache's one line, as for the zoo's exports."""
    with small_tmpfs(tmp_path / "disk", "64k") as disk:
        cache = disk / "cache"
        cache.mkdir()
        _fill(disk)
        net, mixed = read_model_file(files / "dynamo" / "net.onnx"), read_model_file(files / "mixed.onnx")
        with pytest.raises(CacheUnwritable) as as_one_file:  # external data: written as one file into the cache
            file_artifact(net, cache_dir=cache)
        with pytest.raises(CacheUnwritable) as converted:  # self-contained: only the fp16 conversion writes
            file_artifact(mixed, Precision.FP16, cache_dir=cache)
        actions = (f"writing {net.label} as one file", f"converting {mixed.label} to onnx fp16")
        for err, action in zip((as_one_file, converted), actions, strict=True):
            message = str(err.value)
            assert message.startswith(f"artifact cache {cache} is full (no space left on its disk) while {action}")
            assert "--cache-dir" in message and "\n" not in message
        assert not list(cache.iterdir())  # no partial file left behind


def test_push_sends_a_file_model_with_its_external_data_once_over_ssh(files: Path, tmp_path: Path, sshd: Sshd) -> None:
    inventory = write_inventory(tmp_path / "devices.toml", {"board": ssh_board(sshd, tmp_path / "board")})
    res = _invoke("push", "--device", "board", "--devices", str(inventory), str(files / "dynamo" / "net.onnx"))
    assert res.exit_code == 0, res.output
    remote = Path(res.output.strip())
    assert remote.is_file() and remote.suffix == ".onnx"  # the board is this machine: read what landed there
    assert read_model_file(remote).external_data == ()  # one self-contained file carries the weights
    art = file_artifact(read_model_file(files / "dynamo" / "net.onnx"))
    assert file_digest(remote) == art.sha256 and remote.parent.name == art.sha256  # content-addressed

    from devices.inventory import load_inventory, open_device

    device = open_device(load_inventory(inventory).get("board"))
    try:
        copy = tmp_path / "again.onnx"
        shutil.copyfile(files / "mixed.onnx", copy)
        there = device.push(files / "mixed.onnx")
        assert device.push(copy) == there  # the same bytes under another name are not sent again
    finally:
        device.cleanup()


def test_quantized_tflite_runs_at_the_precision_it_holds_with_int8_inputs(files: Path, tmp_path: Path) -> None:
    quant = files / "quant.tflite"
    parsed = read_model_file(quant)
    assert parsed.format is Format.TFLITE and parsed.holds is Precision.INT8
    assert [(i.dtype, i.shape) for i in parsed.inputs] == [("int8", (1, 32, 32, 3))]
    db = tmp_path / "r.db"
    res = _invoke("run", str(quant), "--db", str(db), *FAST)
    assert res.exit_code == 0, res.output
    with _store(db) as conn:
        art = conn.execute("SELECT * FROM artifacts").fetchone()
        runner = json.loads(conn.execute("SELECT runner_json FROM trials").fetchone()[0])
        point = conn.execute("SELECT runtime, status FROM points").fetchone()
    assert art["precision"] == "int8" and art["format"] == "tflite" and art["family"] == "file"
    assert tuple(point) == ("litert", "done")
    assert runner["inputs"] == [{"name": parsed.inputs[0].name, "shape": [1, 32, 32, 3], "dtype": "int8"}]
    assert _one_error_line(_invoke("run", str(quant), "--precision", "fp32", "--db", str(db))) == (
        "error: quant.tflite is a TFLite file holding int8; a TFLite file is measured at the precision it holds: "
        "pass --precision int8 (or convert it yourself)"
    )


def test_runner_quantized_inputs_dequantize_to_unit_normal_values() -> None:
    rng = np.random.default_rng(0)
    q = random_input((1, 64, 64, 3), np.dtype(np.int8), rng, (0.05, -3))
    assert q.dtype == np.int8
    values = (q.astype(np.float64) + 3) * 0.05
    assert abs(values.mean()) < 0.02 and 0.95 < values.std() < 1.05  # N(0, 1) as a float input would see
    full = random_input((1, 64, 64, 3), np.dtype(np.int8), rng)  # no quantization: the whole int8 range
    assert full.min() == -128 and full.max() == 127


# --------------------------------------------------------------------------- factories


def test_factory_with_two_inputs_exports_to_both_formats_with_parity(tmp_path: Path) -> None:
    shapes = ("--input-shape", "1,3,16,16", "--input-shape", "1,1,16,16")
    for fmt, shown in (
        ("onnx", "#0 1x3x16x16 float32; #1 1x1x16x16 float32 (NCHW)"),
        ("tflite", "#0 1x16x16x3 float32; #1 1x16x16x1 float32 (NHWC)"),
    ):
        res = _invoke("export", "tests.own_nets:two_input_net", *shapes, "--format", fmt, "--cache-dir", str(tmp_path))
        assert res.exit_code == 0, res.output
        assert "parity error" in res.output and "skipped" not in res.output and shown in res.output
    factory = resolve_model("tests.own_nets:two_input_net", (), ["1,3,16,16", "1,1,16,16"])
    assert isinstance(factory, TorchFactory) and factory.input_shapes == ((1, 3, 16, 16), (1, 1, 16, 16))
    from harness.sources import source_artifact

    art = source_artifact(factory, Format.TFLITE, Precision.FP32, cache_dir=tmp_path)
    assert art.notes["inputs"] == [
        {"shape": [1, 16, 16, 3], "dtype": "float32"},
        {"shape": [1, 16, 16, 1], "dtype": "float32"},
    ]
    assert art.parity_error is not None and art.parity_error <= 1e-4


def test_factory_fingerprint_follows_its_source_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_nets.py").write_text("from torch import nn\n\ndef net(c=4):\n    return nn.Conv2d(3, c, 1)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = load_factory("my_nets:net", ((1, 3, 8, 8),), {"c": 4})
    assert before.label == "my_nets:net[c=4](1x3x8x8)" and len(before.fingerprint) == 64
    assert load_factory("my_nets:net", ((1, 3, 8, 8),), {"c": 4}).fingerprint == before.fingerprint
    (tmp_path / "my_nets.py").write_text("from torch import nn\n\ndef net(c=4):\n    return nn.Conv2d(3, c, 3)\n")
    assert load_factory("my_nets:net", ((1, 3, 8, 8),), {"c": 4}).fingerprint != before.fingerprint
    sys.modules.pop("my_nets", None)


def test_the_same_factory_in_another_checkout_has_the_same_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fingerprint held each source file's absolute path: the same factory in two checkouts (two users of a lab,
    or a benchmark run from a copy of the repository) got two cache keys, was exported twice and measured twice."""
    code = "from torch import nn\n\ndef net(c=4):\n    return nn.Conv2d(3, c, 1)\n"
    prints = []
    for checkout in ("alice", "bob"):
        (tmp_path / checkout).mkdir()
        (tmp_path / checkout / "lab_nets.py").write_text(code)
        with monkeypatch.context() as m:
            m.syspath_prepend(str(tmp_path / checkout))
            prints.append(load_factory("lab_nets:net", ((1, 3, 8, 8),), {"c": 4}).fingerprint)
        sys.modules.pop("lab_nets", None)
    assert prints[0] == prints[1]


# --------------------------------------------------------------------------- bad input: one line, exit code 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("run", "models/nope.onnx"),
            "error: models/nope.onnx does not exist; give the path of an .onnx or .tflite file",
        ),
        (
            ("run", "{files}/broken.onnx"),
            "error: broken.onnx is neither an ONNX model nor a TFLite flatbuffer (protobuf: ",
        ),
        (
            ("profile", "{files}/broken.tflite"),
            "error: broken.tflite is neither an ONNX model nor a TFLite flatbuffer (flatbuffer: ",
        ),
        (
            ("run", "{files}/quant.tflite", "--runtime", "onnxruntime"),
            "error: quant.tflite is a TFLite model and onnxruntime runs .onnx files; use --runtime litert or "
            "litert-builtin",
        ),
        (
            ("run", "{files}/mixed.onnx", "--runtime", "litert"),
            "error: mixed.onnx is an ONNX model and litert runs .tflite files; use --runtime onnxruntime",
        ),
        (
            ("run", "tests.no_such_module:net", "--input-shape", "1,3,8,8"),
            "error: tests.no_such_module:net: cannot import tests.no_such_module (ModuleNotFoundError: No module named "
            "'tests.no_such_module')",
        ),
        (
            ("export", "tests.own_nets:not_a_module", "--input-shape", "1,3,8,8"),
            "error: tests.own_nets:not_a_module returned list, not a torch.nn.Module; return the network",
        ),
        (
            ("proxies", "show", "tests.own_nets:wants_ten_features", "--input-shape", "1,3,32,32"),
            "error: tests.own_nets:wants_ten_features: forward fails on input shape 1x3x32x32 (RuntimeError: ",
        ),
        (
            ("run", "tests.own_nets:tiny_net"),
            "error: tests.own_nets:tiny_net: a torch factory needs its input shapes: add --input-shape 1,3,224,224",
        ),
        (
            ("run", "tests.own_nets:needs_an_argument", "--input-shape", "1,3,8,8"),
            "error: tests.own_nets:needs_an_argument() raised TypeError: needs_an_argument() missing 1 required",
        ),
        (
            ("run", "{files}/custom.onnx"),
            "error: custom.onnx#",  # the rest is checked below: the op is named
        ),
        (("run", "conv1x1", "--input-shape", "1,3,8,8"), "error: conv1x1 is a zoo model with a fixed input size; "),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    files: Path, tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    db = tmp_path / "r.db"
    extra = ("--db", str(db)) if args[0] in {"run", "profile"} else ()
    line = _one_error_line(_invoke(*(a.format(files=files) for a in args), *extra))
    assert line.startswith(expected), line
    if "custom.onnx" in args[1]:
        assert "does not support op 'com.example:Foo'" in line
    assert not db.exists()


def test_a_spec_with_a_missing_file_fails_before_measuring(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('[[models]]\npath = "gone.onnx"\n')
    line = _one_error_line(_invoke("sweep", str(spec), "--db", str(tmp_path / "r.db")))
    assert line == f"error: {spec}: {tmp_path / 'gone.onnx'} does not exist; give the path of an .onnx or .tflite file"
    spec.write_text('[[models]]\npath = "gone.onnx"\nname = "conv1x1"\n')
    assert "give exactly one of name, path, torch (got name, path)" in _one_error_line(_invoke("sweep", str(spec)))


# --------------------------------------------------------------------------- names from other exporters


def test_node_names_of_other_exporters_map_to_module_paths_or_to_none(files: Path) -> None:
    assert legacy_module_path("/layer1/layer1.0/downsample/downsample.0") == "layer1.0.downsample.0"
    assert node_module_path("/features/features.3/Conv") == "features.3"
    assert node_module_path("/ReduceMean") == "" and node_module_path("features.3.conv/Conv_1") == "features.3.conv"
    assert node_module_path("StatefulPartitionedCall/model/conv2d/Conv2D") == ""  # tf2onnx scopes: no torch module
    plain = onnx.load(str(files / "plain.onnx"))
    # Unnamed nodes get the names onnxruntime's profiler reports: op type and index, Constants not counted.
    ops = [n.op_type for n in plain.graph.node]
    names = ort_node_names(plain)
    assert names[ops.index("Gemm")] == f"Gemm_{len([o for o in ops[: ops.index('Gemm')] if o != 'Constant'])}"


# --------------------------------------------------------------------------- a sweep of every kind, then analysis


@pytest.fixture(scope="module")
def swept(files: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Result]]:
    d = tmp_path_factory.mktemp("sweep")
    shutil.copytree(files, d / "models")
    spec = d / "mixed.toml"
    spec.write_text(
        """
name = "own models"
runtimes = ["onnxruntime", "litert"]

[[models]]
path = "models/legacy.onnx"
input_shapes = { x = [1, 3, 32, 32] }

[[models]]
path = "models/quant.tflite"

[[models]]
torch = "tests.own_nets:tiny_net"
input_shapes = [[1, 3, 32, 32]]
kwargs = { width = 4 }

[[models]]
name = "conv1x1"
params = { cin = 16, cout = 16, h = 16, w = 16 }

[protocol]
trials = 1
warmup_runs = 1
warmup_seconds = 0
runs = 5
min_seconds = 0
profile = true
"""
    )
    db = d / "r.db"
    with pytest.MonkeyPatch.context() as mp:  # the session's cache again afterwards, not none
        mp.setenv("FLOPGAP_CACHE_DIR", str(cache))
        res = _invoke("sweep", str(spec), "--db", str(db))
    yield db, res


def test_sweep_mixes_file_factory_and_zoo_models_and_resumes(swept: tuple[Path, Result], files: Path) -> None:
    db, res = swept
    # Every point is measured and profiled (the TFLite file too: LiteRT's operators, timed inside it).
    assert res.exit_code == 0, res.output
    assert "0 failed" in res.output.replace("\n", " ") and "profiles failed" not in res.output
    with _store(db) as conn:
        rows = conn.execute(
            "SELECT a.label, a.family, a.format, a.precision, p.runtime, p.status FROM points p "
            "JOIN artifacts a ON a.sha256 = p.artifact_sha ORDER BY a.family, p.runtime"
        ).fetchall()
    legacy = f"legacy.onnx#{file_digest(files / 'legacy.onnx')[:8]}"
    quant = f"quant.tflite#{file_digest(files / 'quant.tflite')[:8]}"
    factory = "tests.own_nets:tiny_net[width=4](1x3x32x32)"
    zoo = "conv1x1[cin=16,cout=16,h=16,w=16]"
    assert sorted(tuple(r) for r in rows) == sorted(
        [
            (zoo, "block", "tflite", "fp32", "litert", "done"),
            (zoo, "block", "onnx", "fp32", "onnxruntime", "done"),
            (quant, "file", "tflite", "int8", "litert", "done"),  # a file runs in its own format, at its precision
            (legacy, "file", "onnx", "fp32", "onnxruntime", "done"),
            (factory, "torch", "tflite", "fp32", "litert", "done"),
            (factory, "torch", "onnx", "fp32", "onnxruntime", "done"),
        ]
    )
    # The int8 TFLite file has no torch module to cut into blocks; XNNPACK's quantized operators are timed instead.
    with _store(db) as conn:
        quant_ops = conn.execute(
            "SELECT o.op_type, o.time_us FROM op_profiles o JOIN points p ON p.id = o.point_id "
            "JOIN artifacts a ON a.sha256 = p.artifact_sha WHERE a.label = ?",
            (quant,),
        ).fetchall()
    assert "CONV_2D" in {op for op, _ in quant_ops} and sum(t for _, t in quant_ops) > 0, quant_ops
    again = _invoke("sweep", str(db.parent / "mixed.toml"), "--db", str(db))
    assert again.exit_code == 0, again.output
    assert "0 trials measured, 6 points already done (skipped), 0 failed" in again.output


def test_proxies_show_accounts_a_foreign_graph_and_lists_ops_without_handler(files: Path) -> None:
    res = _invoke("proxies", "show", str(files / "legacy.onnx"), "--input-shape", "x=1,3,32,32", "--ops")
    assert res.exit_code == 0, res.output
    assert f"{tiny_macs() / 1e6:.2f} M MACs" in res.output
    assert "features.3" in res.output  # legacy names map back to the module tree
    mixed = _invoke("proxies", "show", str(files / "mixed.onnx"))
    assert mixed.exit_code == 0, mixed.output
    assert "unsupported ops not in the FLOPs:" in mixed.output and "Where" in mixed.output


def test_profile_of_a_graph_without_module_paths_groups_by_op_and_the_report_says_so(
    swept: tuple[Path, Result], files: Path, tmp_path: Path
) -> None:
    db, _ = swept
    res = _invoke("profile", str(files / "plain.onnx"), "--input-shape", "x=1,3,32,32", "--db", str(db), *FAST)
    assert res.exit_code == 0, res.output
    assert "this graph names no torch modules (exported by another tool): grouped by op type" in res.output
    assert "by op type" in res.output and "Conv" in res.output
    legacy = _invoke("profile", str(files / "legacy.onnx"), "--input-shape", "x=1,3,32,32", "--db", str(db), *FAST)
    assert legacy.exit_code == 0 and "features.3" in legacy.output and "grouped by op type" not in legacy.output
    out = tmp_path / "report"
    rep = _invoke("report", "--db", str(db), "--out", str(out))
    assert rep.exit_code == 0, rep.output
    page = (out / "report.html").read_text()
    assert "Profiles grouped by op type (graphs that name no torch modules)" in page
    assert f"plain.onnx#{read_model_file(files / 'plain.onnx').sha256[:8]}" in page
    assert "tests.own_nets:tiny_net[width=4](1x3x32x32)" in page


def test_resolution_rule_file_then_factory_then_zoo(files: Path) -> None:
    assert isinstance(resolve_model(str(files / "mixed.onnx")), FileSource)
    assert isinstance(resolve_model("tests.own_nets:tiny_net", (), ["1,3,32,32"]), TorchFactory)
    assert resolve_model("conv1x1").name == "conv1x1"
    assert (
        hashlib.sha256((files / "mixed.onnx").read_bytes()).hexdigest() == read_model_file(files / "mixed.onnx").sha256
    )
