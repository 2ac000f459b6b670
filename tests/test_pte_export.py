"""ExecuTorch export on small real blocks: real lowering to XNNPACK, real runs in ExecuTorch's Python runtime."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import exporters.export as export_mod
from devices.vocabulary import Format, Precision
from exporters import pte_export
from exporters.errors import ExportError
from exporters.export import export
from exporters.parity import BOUNDS
from harness.cli.main import app
from harness.zoo.registry import resolve
from tests.exporter_blocks import register

register()

CONV = {"cin": 16, "cout": 16, "h": 16, "w": 16}
IR = {"cin": 16, "cout": 16, "h": 16, "w": 16, "expansion": 4}
SHUFFLE = {"channels": 24, "h": 16, "w": 16, "groups": 3}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pte-artifacts")


def test_pte_fp32_is_delegated_within_parity_and_has_its_etrecord(cache: Path) -> None:
    art = export(resolve("inverted_residual", **IR), Format.PTE, Precision.FP32, cache_dir=cache)
    assert art.path.suffix == ".pte" and art.path.read_bytes()[4:8] == b"ET12"  # ExecuTorch's flatbuffer id
    assert art.layout == "NCHW" and art.input_shape == (1, 16, 16, 16)
    assert art.parity_error is not None and art.parity_error <= BOUNDS[Precision.FP32]
    assert art.notes["parity"]["runtime"].startswith("executorch 1.5")
    # Every conv, ReLU6 and the residual add run inside one XNNPACK partition; nothing falls back.
    assert art.notes["delegate_partitions"] == 1
    assert art.notes["ops_outside_delegate"] == 0 and art.notes["op_counts_outside_delegate"] == {}
    assert art.notes["bn_folded"] == 3
    etrecord = pte_export.etrecord_path(art.path)
    assert etrecord.name == art.notes["etrecord"] and zipfile.is_zipfile(etrecord)


def test_pte_counts_the_ops_left_outside_xnnpack(cache: Path) -> None:
    """A ShuffleNetV2 split (torch.chunk) is not an XNNPACK op: it runs on portable kernels, and the notes say so."""
    art = export(
        resolve("shufflenet_v2_unit", cin=48, cout=48, h=8, w=8, stride=1), Format.PTE, Precision.FP32, cache_dir=cache
    )
    assert art.parity_error is not None and art.parity_error <= BOUNDS[Precision.FP32]
    assert art.notes["op_counts_outside_delegate"] == {"aten.split_with_sizes_copy": 1}
    assert art.notes["ops_outside_delegate"] == 1


def test_pte_int8_is_quantized_and_within_its_bound(cache: Path) -> None:
    fp32 = export(resolve("conv3x3", **CONV), Format.PTE, Precision.FP32, cache_dir=cache)
    int8 = export(resolve("conv3x3", **CONV), Format.PTE, Precision.INT8, cache_dir=cache)
    parity = int8.notes["parity"]
    assert int8.parity_error is not None and 0 < int8.parity_error <= BOUNDS[Precision.INT8]
    assert parity["cosine"] >= 0.99
    assert int8.parity_error > fp32.parity_error  # quantization noise, not a copy of the fp32 program
    assert int8.size_bytes < fp32.size_bytes  # int8 weights: 16*16*9 bytes instead of 4x that
    assert int8.notes["calibration"]["samples"] == export_mod.CALIBRATION_SAMPLES
    assert int8.sha256 != fp32.sha256


def test_pte_cache_hit_reuses_the_program_and_etrecord(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = export(resolve("conv3x3", **CONV), Format.PTE, Precision.FP32, cache_dir=cache)
    etrecord = pte_export.etrecord_path(first.path).stat().st_mtime_ns

    def no_conversion(*_a: object, **_k: object) -> None:
        raise AssertionError("a cached artifact was converted again")

    monkeypatch.setattr(pte_export, "export_pte", no_conversion)
    again = export(resolve("conv3x3", **CONV), Format.PTE, Precision.FP32, cache_dir=cache)
    assert (again.path, again.sha256) == (first.path, first.sha256)
    assert pte_export.etrecord_path(again.path).stat().st_mtime_ns == etrecord
    key = json.loads(first.path.with_suffix(".json").read_text())["notes"]["cache_key"]
    assert first.path.name.endswith(f"_{key[:16]}.pte")


def test_pte_key_holds_executorch_and_leaves_other_formats_keys_alone() -> None:
    assert export_mod.settings(Format.PTE, Precision.FP32)["executorch"] == pte_export.version()
    assert "executorch" not in export_mod.settings(Format.ONNX, Precision.FP32)
    assert "executorch" not in export_mod.settings(Format.TFLITE, Precision.INT8)


def test_pte_refuses_a_precision_xnnpack_lowering_does_not_offer(cache: Path) -> None:
    with pytest.raises(ExportError, match=r"pte export does not offer fp16; offered: fp32, int8"):
        export(resolve("conv3x3", **CONV), Format.PTE, Precision.FP16, cache_dir=cache)


def test_cli_export_pte_prints_the_ops_outside_xnnpack(cache: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "export",
            "shufflenet_v2_unit",
            "-p",
            "cin=48",
            "-p",
            "cout=48",
            "-p",
            "h=8",
            "-p",
            "w=8",
            "-p",
            "stride=1",
            "--format",
            "pte",
            "--cache-dir",
            str(cache),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "outside XNNPACK │ 1 (aten.split_with_sizes_copy x1)" in result.output


def test_run_pte_matches_torch_on_a_random_input(cache: Path) -> None:
    spec = resolve("conv3x3", **CONV)
    art = export(spec, Format.PTE, Precision.FP32, cache_dir=cache)
    x = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = spec.build().eval()(x).numpy()
    y = pte_export.run_pte(art.path, [x.numpy()])
    assert y.shape == ref.shape == (1, 16, 16, 16)
    assert abs(y - ref).max() <= 1e-4 * abs(ref).max()
