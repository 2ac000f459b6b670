"""Exporters on small real blocks: real conversions (no mocks), each cached once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

import exporters.export as export_mod
from devices.core.digest import file_digest
from devices.vocabulary import Format, Precision
from exporters import tflite_export
from exporters.artifact import Artifact
from exporters.cache import ArtifactCache, cache_key, default_cache_dir, tool_versions
from exporters.errors import ExportError
from exporters.export import export, failing_op, settings
from exporters.fold import fold_batchnorm
from exporters.onnx_export import NAME_SCOPES_KEY, OPSET, STACK_TRACE_KEY, node_module_path
from exporters.parity import BOUNDS, MIN_COSINE, compare, cosine, criterion, measure, passes, relative_error
from exporters.quiet import captured_output
from harness.zoo.registry import ModelSpec, resolve
from tests.exporter_blocks import register

register()

# Small sizes keep each conversion under a second or two.
CONV = {"cin": 16, "cout": 16, "h": 16, "w": 16}
SHUFFLE = {"channels": 24, "h": 16, "w": 16, "groups": 3}
IR = {"cin": 16, "cout": 16, "h": 16, "w": 16, "expansion": 4}


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


def _onnx(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path))


# --- ONNX ------------------------------------------------------------------------------------------------------


def test_onnx_opset_static_shapes_and_no_batchnorm(cache: Path) -> None:
    spec = resolve("inverted_residual", **IR)
    art = export(spec, Format.ONNX, Precision.FP32, cache_dir=cache)
    model = _onnx(art.path)
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET == 18
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        assert all(d.HasField("dim_value") for d in dims), value.name
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 16, 16, 16]
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == 3
    assert art.notes["bn_folded"] == 3
    assert art.input_shape == (1, 16, 16, 16) and art.layout == "NCHW"


def test_onnx_nodes_map_back_to_module_paths(cache: Path) -> None:
    spec = resolve("inverted_residual", **IR)
    model = _onnx(export(spec, Format.ONNX, Precision.FP32, cache_dir=cache).path)
    convs = {node_module_path(n) for n in model.graph.node if n.op_type == "Conv"}
    # The folded conv keeps the conv's path (not the BatchNorm's), in metadata and in the node name.
    assert convs == {"expand.conv", "dw.conv", "project.conv"}
    names = sorted(n.name for n in model.graph.node)
    assert "dw.conv/Conv" in names and "dw.act/Clip" in names
    assert all(node_module_path(n.name) == node_module_path(n) for n in model.graph.node)
    assert node_module_path("/Add") == "" and node_module_path("stage2.0.branch2.dw.conv/Conv_1") == (
        "stage2.0.branch2.dw.conv"
    )


def test_an_onnx_export_holds_no_path_of_the_checkout_it_was_made_from(cache: Path) -> None:
    """The exporter's stack traces name this checkout's files (/work/main/harness/zoo/blocks.py): kept, the same
    model exported from another checkout was another artifact (another sha256), and a rerun of a sweep or an
    evaluation from there measured every ONNX model again instead of resuming."""
    import harness

    checkout = str(Path(harness.__file__).resolve().parents[1])
    art = export(resolve("inverted_residual", **IR), Format.ONNX, Precision.FP32, cache_dir=cache)
    assert checkout.encode() not in art.path.read_bytes()
    model = _onnx(art.path)
    keys = {p.key for n in model.graph.node for p in n.metadata_props}
    assert STACK_TRACE_KEY not in keys and NAME_SCOPES_KEY in keys  # the module paths stay


def test_fold_batchnorm_is_exact_and_leaves_no_batchnorm() -> None:
    spec = resolve("xt_conv_block")
    model, x = spec.build(), spec.example_input()
    folded = fold_batchnorm(model, x)
    assert folded.pairs == (("stem.conv", "stem.bn"), ("dw.conv", "dw.bn"), ("pw.conv", "pw.bn"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with torch.no_grad():
        assert torch.allclose(folded.model(x), model(x), atol=1e-5)


# --- TFLite ----------------------------------------------------------------------------------------------------


def test_tflite_io_is_nhwc(cache: Path) -> None:
    spec = resolve("conv3x3", **{**CONV, "cout": 8})
    art = export(spec, Format.TFLITE, Precision.FP32, cache_dir=cache)
    from exporters.parity import tflite_interpreter

    interp = tflite_interpreter(art.path)
    assert list(interp.get_input_details()[0]["shape"]) == [1, 16, 16, 16]
    assert list(interp.get_output_details()[0]["shape"]) == [1, 16, 16, 8]  # NHWC: 8 channels last
    assert art.input_shape == (1, 16, 16, 16) and art.layout == "NHWC"


def test_nchw_shuffle_gains_layout_transposes_under_tflite(cache: Path) -> None:
    conv = export(resolve("conv3x3", **CONV), Format.TFLITE, Precision.FP32, cache_dir=cache)
    shuffle = export(resolve("shuffle_transpose", **SHUFFLE), Format.TFLITE, Precision.FP32, cache_dir=cache)
    shuffle_onnx = export(resolve("shuffle_transpose", **SHUFFLE), Format.ONNX, Precision.FP32, cache_dir=cache)
    assert tflite_export.op_counts(conv.path).get("TRANSPOSE", 0) == 0
    # One transpose in the torch code; the NHWC conversion wraps it in two more (to NCHW and back).
    assert tflite_export.op_counts(shuffle.path)["TRANSPOSE"] == 3
    assert shuffle.notes["transpose_ops"] == 3 and shuffle.notes["source_transposes"] == 1
    assert shuffle.notes["layout_transposes_added"] == 2
    assert shuffle_onnx.notes["transpose_ops"] == 1 and shuffle_onnx.notes["layout_transposes_added"] == 0
    assert shuffle.notes["op_counts"] == {"TRANSPOSE": 3, "RESHAPE": 2}


def test_channels_last_shuffle_lets_the_converter_cancel_transposes(cache: Path) -> None:
    art = export(resolve("shuffle_channels_last", **SHUFFLE), Format.TFLITE, Precision.FP32, cache_dir=cache)
    assert art.notes["source_transposes"] == 3
    assert art.notes["transpose_ops"] == 1 and art.notes["layout_transposes_added"] == -2


# --- parity ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(Format))
def test_fp32_parity_within_1e4_and_stored_in_json(cache: Path, fmt: Format) -> None:
    art = export(resolve("xt_tiny_net"), fmt, Precision.FP32, cache_dir=cache)
    assert art.parity_bound == 1e-4
    assert art.parity_error is not None and art.parity_error < 1e-5
    stored = json.loads(art.path.with_suffix(".json").read_text())
    assert stored["parity_error"] == art.parity_error
    assert stored["notes"]["parity"]["top1_agrees"] is True
    assert stored["notes"]["parity"]["criterion"] == "relative error <= 0.0001"
    assert stored["notes"]["parity"]["ok"] is True
    assert stored["notes"]["parity"]["signal"] > 0.1  # the output does depend on the input
    assert Artifact.from_json(art.path.with_suffix(".json").read_text()) == art


@pytest.mark.parametrize("fmt", [Format.ONNX, Format.TFLITE])  # pte: tests/test_pte_export.py
@pytest.mark.parametrize("precision", [Precision.FP16, Precision.INT8_DYNAMIC, Precision.INT8])
def test_reduced_precisions_within_documented_bounds(cache: Path, fmt: Format, precision: Precision) -> None:
    art = export(resolve("conv3x3", **CONV), fmt, precision, cache_dir=cache)
    assert art.parity_bound == BOUNDS[precision]
    notes = art.notes["parity"]
    assert notes["ok"] is True and notes["criterion"] == criterion(precision)
    assert notes["min_cosine"] == MIN_COSINE.get(precision)
    # One conv: far inside the bounds set by the zoo's deep nets (measured fp16 <= 1e-3, int8 <= 0.08).
    assert art.parity_error is not None and 0 < art.parity_error <= (1e-3 if precision is Precision.FP16 else 0.1)
    assert notes["cosine"] > 0.999
    # The output depends on the input: another input moves it by its whole range; cosine ~1/pi after a ReLU.
    assert notes["signal"] >= 0.9 and notes["signal_cosine"] < 0.5


def test_tflite_int8_is_full_integer(cache: Path) -> None:
    # Conv, depthwise, shuffle (reshape/transpose), mean and fully-connected: every op runs on int8 tensors.
    art = export(resolve("xt_tiny_net"), Format.TFLITE, Precision.INT8, cache_dir=cache)
    from exporters.parity import tflite_float_ops, tflite_io_dtypes

    assert tflite_io_dtypes(art.path) == ("int8", "int8")
    assert tflite_float_ops(art.path) == {}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE", "FULLY_CONNECTED"} <= set(art.notes["op_counts"])
    assert art.notes["calibration"] == {"samples": 16, "seed": 1000, "dist": "randn"}
    assert art.notes["parity"]["ok"] is True and art.notes["parity"]["top1_agrees"] is True
    fp32 = export(resolve("xt_tiny_net"), Format.TFLITE, Precision.FP32, cache_dir=cache)
    assert tflite_io_dtypes(fp32.path) == ("float32", "float32")
    assert "CONV_2D" in tflite_float_ops(fp32.path)  # the check does see float ops where there are some


def test_fp16_tflite_stores_half_weights(cache: Path) -> None:
    fp32 = export(resolve("conv3x3", **CONV), Format.TFLITE, Precision.FP32, cache_dir=cache)
    fp16 = export(resolve("conv3x3", **CONV), Format.TFLITE, Precision.FP16, cache_dir=cache)
    assert fp16.notes["op_counts"].get("DEQUANTIZE", 0) >= 1
    assert fp16.size_bytes < fp32.size_bytes


def test_relative_error() -> None:
    import numpy as np

    ref = np.array([1.0, -4.0, 2.0])
    assert relative_error(ref + np.array([0.0, 0.4, 0.0]), ref) == pytest.approx(0.1)
    assert relative_error(ref[:2], ref) == float("inf")
    assert cosine(2 * ref, ref) == pytest.approx(1.0)


def test_criteria_combine_error_ceiling_and_cosine_floor() -> None:
    assert criterion(Precision.FP16) == "relative error <= 0.05"
    assert criterion(Precision.INT8) == "relative error <= 0.6 and cosine >= 0.9"
    assert passes(Precision.INT8, 0.3, 0.95)
    assert not passes(Precision.INT8, 0.3, 0.85)  # right scale, wrong values
    assert not passes(Precision.INT8, 1.0, 1.0)  # right direction, twice the scale: the cosine cannot see it
    assert not passes(Precision.INT8, 0.3, None) and not passes(Precision.FP32, None, 1.0)
    assert not passes(Precision.FP32, float("nan"), 1.0) and not passes(Precision.INT8, float("inf"), 0.99)
    assert passes(Precision.FP32, 5e-5, None) and not passes(Precision.FP32, 2e-4, 1.0)


def test_broken_outputs_fail_parity(cache: Path) -> None:
    """Shuffled, transposed (layout) or rescaled outputs of a correct artifact fail even the int8 criterion."""
    import numpy as np

    spec = resolve("conv3x3", **CONV)
    art = export(spec, Format.TFLITE, Precision.FP32, cache_dir=cache)
    x = spec.example_input()
    with torch.no_grad():
        ref = spec.build()(x).numpy()
    y = export_mod.parity.run_artifact(art.path, Format.TFLITE, x.numpy())
    assert compare(y, ref, ref, Precision.FP32, "rt").ok
    shuffled = np.random.default_rng(0).permutation(y.ravel()).reshape(y.shape)
    nhwc_as_nchw = y.transpose(0, 2, 3, 1)  # the NHWC output not transposed back (C == H == W == 16 here)
    for broken in (shuffled, nhwc_as_nchw, y[:, ::-1], 2 * y):
        for precision in Precision:
            assert not compare(broken, ref, ref, precision, "rt").ok, precision
    assert compare(shuffled, ref, ref, Precision.INT8, "rt").cosine < 0.5  # ~1/pi for non-negative (ReLU) outputs


def test_artifact_of_another_model_fails_parity(cache: Path) -> None:
    """The fp32 artifact of a different model with the same I/O shapes fails, whatever the precision's criterion."""
    spec = resolve("conv3x3", **CONV)
    other = export(resolve("conv1x1", **CONV), Format.ONNX, Precision.FP32, cache_dir=cache)
    for precision in (Precision.FP32, Precision.INT8):
        result = measure(spec.build(), spec.example_input(), other.path, Format.ONNX, precision)
        assert not result.ok
        assert result.cosine < 0.5 and result.error > 0.6


# --- cache -----------------------------------------------------------------------------------------------------


def test_cache_hit_does_not_reconvert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = export_mod.onnx_export.export_onnx

    def counting(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(export_mod.onnx_export, "export_onnx", counting)
    spec = resolve("conv3x3", **CONV)
    first = export(spec, "onnx", "fp32", cache_dir=tmp_path)
    mtime = first.path.stat().st_mtime_ns
    second = export(spec, "onnx", "fp32", cache_dir=tmp_path)
    assert calls == [1]
    assert second == first and second.path.stat().st_mtime_ns == mtime
    # A file changed behind the cache's back fails its sha256 check and is exported again.
    first.path.write_bytes(first.path.read_bytes() + b"\0")
    third = export(spec, "onnx", "fp32", cache_dir=tmp_path)
    assert calls == [1, 1] and third.sha256 == first.sha256


def test_cache_key_covers_params_precision_and_versions() -> None:
    versions = tool_versions()
    a = resolve("conv3x3", **CONV)
    b = resolve("conv3x3", **{**CONV, "cout": 8})
    s = settings(Format.ONNX, Precision.FP32)
    base = cache_key(a, Format.ONNX, Precision.FP32, versions, s)
    assert base == cache_key(a, Format.ONNX, Precision.FP32, dict(versions), s)
    assert base != cache_key(b, Format.ONNX, Precision.FP32, versions, s)
    assert base != cache_key(a, Format.ONNX, Precision.FP16, versions, s)
    assert base != cache_key(a, Format.ONNX, Precision.FP32, {**versions, "torch": "0.0"}, s)
    assert base != cache_key(a, Format.ONNX, Precision.FP32, versions, {**s, "opset": 17})
    assert {"torch", "onnx", "onnxscript", "litert-torch", "ai-edge-litert", "flopgap-exporter"} <= set(versions)


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOPGAP_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FLOPGAP_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == ("flopgap", "artifacts")


def test_out_dir_receives_a_copy(cache: Path, tmp_path: Path) -> None:
    art = export(resolve("conv3x3", **CONV), Format.ONNX, Precision.FP32, cache_dir=cache, out_dir=tmp_path)
    assert art.path.parent == tmp_path and art.path.name == "conv3x3_cin=16_cout=16_h=16_w=16_fp32.onnx"
    assert art.path.with_suffix(".json").is_file()
    assert ArtifactCache(cache).root == cache


# --- failures --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "op"), [(Format.ONNX, "prims.bessel_j0"), (Format.TFLITE, "aten.special_bessel_j0")])
def test_conversion_failure_names_op_and_leaves_no_file(tmp_path: Path, fmt: Format, op: str) -> None:
    with pytest.raises(ExportError) as info:
        export(resolve("xt_unconvertible"), fmt, Precision.FP32, cache_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"xt_unconvertible: {fmt.value} fp32 conversion failed at op '{op}'")
    assert "\n" not in message
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent == tmp_path]
    assert leftovers == []  # no artifact, no sidecar, no .partial temp file
    logs = list((tmp_path / "logs").iterdir())
    assert len(logs) == 1 and "bessel" in logs[0].read_text()


def test_unknown_precision_is_one_clear_line(cache: Path) -> None:
    with pytest.raises(ExportError, match=r"^unknown precision 'int4'; allowed: fp32, fp16, int8, int8-dynamic$"):
        export(resolve("conv3x3", **CONV), "onnx", "int4", cache_dir=cache)
    with pytest.raises(ExportError, match=r"^unknown format 'coreml'"):
        export(resolve("conv3x3", **CONV), "coreml", "fp32", cache_dir=cache)


def test_parity_failure_raises_unless_allowed(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = resolve("conv3x3", **CONV)
    monkeypatch.setitem(export_mod.parity.BOUNDS, Precision.INT8_DYNAMIC, 1e-9)
    fresh = cache / "strict"
    pattern = (
        r"^conv3x3\[.*\]: onnx int8-dynamic parity fails relative error <= 1e-09 and cosine >= 0\.9: "
        r"relative error \S+ \(max\|y - y_torch\| / max\|y_torch\|\), cosine 0\.99\d*; pass allow_parity_failure"
    )
    with pytest.raises(ExportError, match=pattern):
        export(spec, Format.ONNX, Precision.INT8_DYNAMIC, cache_dir=fresh)
    art = export(spec, Format.ONNX, Precision.INT8_DYNAMIC, cache_dir=fresh, allow_parity_failure=True)
    assert art.parity_error is not None and art.parity_error > 1e-9
    assert art.notes["parity"]["ok"] is False
    # The cosine floor alone also fails an export (judged again from the stored figures, not the stored verdict).
    monkeypatch.setitem(export_mod.parity.BOUNDS, Precision.INT8_DYNAMIC, 0.6)
    assert export(spec, Format.ONNX, Precision.INT8_DYNAMIC, cache_dir=fresh).parity_error == art.parity_error
    monkeypatch.setitem(export_mod.parity.MIN_COSINE, Precision.INT8_DYNAMIC, 1.0 + 1e-9)
    with pytest.raises(ExportError, match=r"cosine >= 1: relative error"):
        export(spec, Format.ONNX, Precision.INT8_DYNAMIC, cache_dir=fresh)
    skipped = export(
        resolve("se", channels=16, h=8, w=8), Format.ONNX, Precision.FP32, cache_dir=fresh, check_parity=False
    )
    assert skipped.parity_error is None


def test_failing_op_parses_converter_messages() -> None:
    assert failing_op(RuntimeError("Lowering not found: aten.erfinv.default\n\nWhile executing")) == "aten.erfinv"
    assert failing_op(ValueError("nothing useful")) is None


def test_captured_output_keeps_the_terminal_clean(capfd: pytest.CaptureFixture[str]) -> None:
    with captured_output() as log:
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert "native stdout" in log.text and "native stderr" in log.text


def test_spec_roundtrip_through_artifact(cache: Path) -> None:
    art = export(resolve("conv3x3", **CONV), Format.ONNX, Precision.FP32, cache_dir=cache)
    assert ModelSpec(art.model, art.params) == ModelSpec("conv3x3", art.params)


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    f = tmp_path / "abc"
    f.write_bytes(b"abc")  # the FIPS 180-2 test vector
    assert file_digest(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
