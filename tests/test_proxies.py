"""Graph accounting on real exports: hand-computed MACs, bytes and categories of zoo blocks, whole models vs papers.

Blocks are exported small (8×8 maps) so every number below is computable by hand. The default run converts three
referenced models (ShuffleNetV2, MobileNetV1, FD-MobileNet; exports cached for the session); one model per
family and the whole zoo are marked slow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from devices.vocabulary import Format, Precision
from exporters.export import export
from harness.proxies import GraphAccount, OpCost, account
from harness.proxies.tflite_graph import torch_module_paths
from harness.zoo.counting import count_macs
from harness.zoo.registry import ModelSpec, grid, list_models, resolve

FP32 = 4
H = W = 8

Accounter = Callable[..., GraphAccount]


@pytest.fixture(scope="session")
def cache_dir(artifact_cache: Path) -> Path:
    return artifact_cache  # the zoo exports of tests/test_exporters_zoo.py: one conversion per model


@pytest.fixture(scope="session")
def acc(cache_dir: Path) -> Accounter:
    """``acc(name, fmt, precision="fp32", **params)``: the accounting of a cached export."""
    seen: dict[tuple[object, ...], GraphAccount] = {}

    def get(name: str, fmt: str, precision: str = "fp32", **params: object) -> GraphAccount:
        key = (name, fmt, precision, tuple(sorted(params.items())))
        if key not in seen:
            spec = resolve(name, **params)  # type: ignore[arg-type]
            seen[key] = account(export(spec, fmt, precision, cache_dir=cache_dir, check_parity=False))
        return seen[key]

    return get


def only(graph: GraphAccount, op_type: str) -> OpCost:
    rows = [op for op in graph.ops if op.op_type == op_type]
    assert len(rows) == 1, [op.name for op in graph.ops]
    return rows[0]


def of_type(graph: GraphAccount, *op_types: str) -> list[OpCost]:
    return [op for op in graph.ops if op.op_type in op_types]


CONV = {"onnx": "Conv", "tflite": "CONV_2D"}


# --- blocks: hand-computed numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_depthwise_3x3_has_9_hwc_macs(acc: Accounter, fmt: str) -> None:
    c = 16
    graph = acc("depthwise_conv", fmt, channels=c, h=H, w=W)
    conv = only(graph, "Conv" if fmt == "onnx" else "DEPTHWISE_CONV_2D")
    assert conv.category == "depthwise_conv"
    assert conv.macs == 9 * H * W * c
    assert conv.params == 9 * c + c  # weights + the bias BatchNorm folding adds
    assert conv.weight_bytes == conv.params * FP32
    assert conv.bytes_read == conv.bytes_written == H * W * c * FP32
    assert conv.module_path == "conv"
    relu_flops = H * W * c  # ReLU: 1 FLOP per element, its own op in ONNX, fused into the conv in TFLite
    if fmt == "onnx":
        assert conv.flops == 2 * conv.macs and only(graph, "Relu").flops == relu_flops
        assert only(graph, "Relu").module_path == "act"
    else:
        assert conv.fused_activation == "relu" and conv.flops == 2 * conv.macs + relu_flops
    assert graph.totals.flops == 2 * 9 * H * W * c + relu_flops
    assert conv.intensity == pytest.approx(conv.flops / (conv.bytes_read + conv.bytes_written + conv.weight_bytes))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_grouped_1x1_has_hw_cin_cout_over_g_macs(acc: Accounter, fmt: str) -> None:
    cin, cout, g = 24, 48, 3
    conv = only(acc("group_conv", fmt, cin=cin, cout=cout, h=H, w=W, groups=g), CONV[fmt])
    assert conv.category == "grouped_conv"
    assert conv.macs == H * W * cin * cout // g
    assert conv.params == cin * cout // g + cout


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_pointwise_and_dense_conv(acc: Accounter, fmt: str) -> None:
    cin, cout = 16, 32
    pw = only(acc("conv1x1", fmt, cin=cin, cout=cout, h=H, w=W), CONV[fmt])
    dense = only(acc("conv3x3", fmt, cin=cin, cout=cout, h=H, w=W), CONV[fmt])
    assert (pw.category, pw.macs) == ("pointwise_conv", H * W * cin * cout)
    assert (dense.category, dense.macs) == ("dense_conv", 9 * H * W * cin * cout)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_shuffle_is_reshape_transpose_reshape_and_each_moves_the_whole_tensor(acc: Accounter, fmt: str) -> None:
    c = 24
    graph = acc("shuffle_transpose", fmt, channels=c, h=H, w=W, groups=3)
    rows = [(op.op_type, op.category) for op in graph.ops]
    shuffle = [("Reshape", "channel_shuffle"), ("Transpose", "channel_shuffle"), ("Reshape", "channel_shuffle")]
    if fmt == "onnx":
        assert rows == shuffle
    else:  # the NCHW-written shuffle wrapped in the NHWC→NCHW and NCHW→NHWC transposes the conversion adds
        assert rows == [("TRANSPOSE", "layout"), *((t.upper(), k) for t, k in shuffle), ("TRANSPOSE", "layout")]
    for t in graph.ops:
        assert (t.flops, t.macs, t.weight_bytes) == (0, 0, 0)
        assert t.mac_bytes == 2 * 1 * H * W * c * FP32
        assert t.intensity == 0
    reshapes = of_type(graph, "Reshape", "RESHAPE")
    assert len(reshapes) == 2 and all(r.is_view for r in reshapes)
    assert graph.totals.view_bytes == 2 * 2 * H * W * c * FP32
    assert graph.totals.flops == 0 and graph.totals.unsupported_ops == 0


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_shuffle_v2_unit_categories_node_by_node(acc: Accounter, fmt: str) -> None:
    graph = acc("shufflenet_v2_unit", fmt, cin=48, cout=48, h=H, w=W)
    rows = [(op.name, op.category) for op in graph.ops]
    if fmt == "onnx":
        assert rows == [
            ("/Split", "reshape_concat_split_slice"),
            ("branch2.pw1.conv/Conv", "pointwise_conv"),
            ("branch2.pw1.act/Relu", "activation"),
            ("branch2.dw.conv/Conv", "depthwise_conv"),
            ("branch2.pw2.conv/Conv", "pointwise_conv"),
            ("branch2.pw2.act/Relu", "activation"),
            ("/Concat", "reshape_concat_split_slice"),
            ("shuffle/Reshape", "channel_shuffle"),
            ("shuffle/Transpose", "channel_shuffle"),
            ("shuffle/Reshape_1", "channel_shuffle"),
        ]
    else:
        assert rows == [
            ("/SLICE", "reshape_concat_split_slice"),
            ("/SLICE_1", "reshape_concat_split_slice"),
            ("branch2.pw1.conv/CONV_2D", "pointwise_conv"),
            ("branch2.dw.conv/DEPTHWISE_CONV_2D", "depthwise_conv"),
            ("branch2.pw2.conv/CONV_2D", "pointwise_conv"),
            ("/CONCATENATION", "reshape_concat_split_slice"),
            ("/TRANSPOSE", "layout"),  # NHWC → NCHW, added by the converter for the NCHW-written shuffle
            ("shuffle/RESHAPE", "channel_shuffle"),
            ("shuffle/TRANSPOSE", "channel_shuffle"),
            ("shuffle/RESHAPE_1", "channel_shuffle"),
            ("shuffle/TRANSPOSE_1", "layout"),  # and back to NHWC
        ]
    shuffle = [op for op in graph.ops if op.category == "channel_shuffle"]
    assert all(op.note.startswith("part of a channel shuffle") for op in shuffle)
    assert sum(op.mac_bytes for op in shuffle) == 3 * 2 * 48 * H * W * FP32  # three ops, each reads and writes all


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_channels_last_shuffle_keeps_its_permutes_as_layout(acc: Accounter, fmt: str) -> None:
    graph = acc("shuffle_channels_last", fmt, channels=24, h=H, w=W, groups=3)
    rows = [(op.op_type.lower(), op.category, op.out_shape) for op in graph.ops]
    shuffle = [
        ("reshape", "channel_shuffle", (1, H, W, 3, 8)),
        ("transpose", "channel_shuffle", (1, H, W, 8, 3)),
        ("reshape", "channel_shuffle", (1, H, W, 24)),
    ]
    if fmt == "onnx":  # permute to NHWC and back: layout around the shuffle
        assert rows == [("transpose", "layout", (1, H, W, 24)), *shuffle, ("transpose", "layout", (1, 24, H, W))]
    else:  # the permutes cancel against the NHWC I/O: the shuffle alone
        assert rows == shuffle


def test_a_transpose_between_reshapes_that_is_no_shuffle_stays_layout(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4, 4])
    shape5 = helper.make_tensor("s5", TensorProto.INT64, [5], [1, 2, 3, 4, 4])
    shape4 = helper.make_tensor("s4", TensorProto.INT64, [4], [1, 6, 4, 4])
    nodes = [
        helper.make_node("Reshape", ["x", "s5"], ["a"], name="m/Reshape"),
        helper.make_node("Transpose", ["a"], ["b"], name="m/Transpose", perm=[0, 1, 2, 4, 3]),  # swaps H and W
        helper.make_node("Reshape", ["b", "s4"], ["y"], name="m/Reshape_1"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[shape5, shape4])
    path = tmp_path / "not_a_shuffle.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    assert [op.category for op in account(path).ops] == [
        "reshape_concat_split_slice",
        "layout",
        "reshape_concat_split_slice",
    ]


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_shuffle_gather_is_a_shuffle(acc: Accounter, fmt: str) -> None:
    c = 24
    graph = acc("shuffle_gather", fmt, channels=c, h=H, w=W, groups=3)
    gathers = of_type(graph, "Gather", "GATHER", "GATHER_ND")  # litert-torch lowers index_select to GATHER_ND
    assert len(gathers) == 1 and graph.totals.unsupported_ops == 0
    gather = gathers[0]
    assert gather.category == "channel_shuffle"
    assert gather.bytes_read == gather.bytes_written == H * W * c * FP32
    assert gather.weight_bytes in (c * 4, c * 8)  # the constant channel index, int32 or int64
    assert gather.flops == 0


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_squeeze_excite(acc: Accounter, fmt: str) -> None:
    c, s, hw = 96, 24, 14 * 14  # the block's defaults: 96 channels, reduction 4, 14×14
    graph = acc("se", fmt)
    pool = only(graph, "ReduceMean" if fmt == "onnx" else "MEAN")
    assert (pool.category, pool.flops, pool.module_path) == ("global_pool_se", hw * c, "pool")
    fcs = of_type(graph, CONV[fmt])
    assert [(f.category, f.macs, f.module_path) for f in fcs] == [
        ("fully_connected", c * s, "fc1"),
        ("fully_connected", s * c, "fc2"),
    ]
    gate = only(graph, "Sigmoid" if fmt == "onnx" else "LOGISTIC")
    assert (gate.category, gate.flops, gate.module_path) == ("activation", 4 * c, "gate")
    scale = only(graph, "Mul" if fmt == "onnx" else "MUL")
    assert (scale.category, scale.flops, scale.module_path) == ("elementwise", hw * c, "")
    assert scale.bytes_read == (hw * c + c) * FP32  # the map and the broadcast gate


@pytest.mark.parametrize(("fn", "op_types", "per_element"), [("hswish", ("HardSwish", "HARD_SWISH"), 5)])
def test_activation_counts(acc: Accounter, fn: str, op_types: tuple[str, str], per_element: int) -> None:
    c = 16
    for fmt, op_type in zip(("onnx", "tflite"), op_types, strict=True):
        act = only(acc("activation", fmt, channels=c, h=H, w=W, fn=fn), op_type)
        assert (act.category, act.flops) == ("activation", per_element * H * W * c)


def test_int8_tflite_counts_one_byte_per_element(acc: Accounter) -> None:
    cin, cout = 16, 32
    conv = only(acc("conv1x1", "tflite", "int8", cin=cin, cout=cout, h=H, w=W), "CONV_2D")
    assert conv.dtype == "int8" and conv.macs == H * W * cin * cout
    assert conv.bytes_read == H * W * cin and conv.bytes_written == H * W * cout
    assert conv.weight_bytes == cin * cout + 4 * cout  # int8 weights, int32 bias


def test_fp16_tflite_weights_dequantized_once(acc: Accounter) -> None:
    cin, cout = 16, 32
    graph = acc("conv1x1", "tflite", "fp16", cin=cin, cout=cout, h=H, w=W)
    dequant = of_type(graph, "DEQUANTIZE")
    assert dequant and all(d.constant and d.mac_bytes == 0 and d.flops == 0 for d in dequant)
    conv = only(graph, "CONV_2D")
    assert conv.weight_bytes == cin * cout * 2 + cout * FP32  # read as stored: float16 weights, float32 bias
    assert conv.params == cin * cout + cout


# --- module paths --------------------------------------------------------------------------------------------


def test_litert_tensor_names_map_to_torch_paths() -> None:
    wrapper = "litert_torch._convert.to_channel_last_io.ChannelLastIOWrapper"
    name = (
        f"{wrapper}/harness.zoo.shufflenet_v2.ShuffleNetV2_wrapped/torch.nn.modules.container.Sequential_stage2/"
        "harness.zoo.shufflenet_v2.ShuffleV2Unit_0/torch.nn.modules.container.Sequential_branch_main/"
        "torch.nn.modules.activation.ReLU_act;;"
        f"{wrapper}/harness.zoo.shufflenet_v2.ShuffleNetV2_wrapped/torch.nn.modules.conv.Conv2d_conv;1"
    )
    assert torch_module_paths(name) == [("stage2.0.branch_main.act", "ReLU"), ("conv", "Conv2d")]
    assert torch_module_paths(f"{wrapper};2") == [("", wrapper.rsplit(".", 1)[-1])]
    assert torch_module_paths("arith.constant1") == []
    assert torch_module_paths("serving_default_output_0_output") == []


def test_onnx_and_tflite_rows_of_a_unit_line_up(acc: Accounter) -> None:
    def macs_by_module(graph: GraphAccount) -> dict[str, int]:
        return {op.module_path: op.macs or 0 for op in graph.ops if op.macs}

    onnx_macs = macs_by_module(acc("shufflenet_v2_unit", "onnx", cin=48, cout=48, h=H, w=W))
    tfl_macs = macs_by_module(acc("shufflenet_v2_unit", "tflite", cin=48, cout=48, h=H, w=W))
    assert onnx_macs == tfl_macs
    assert set(onnx_macs) == {"branch2.pw1.conv", "branch2.dw.conv", "branch2.pw2.conv"}


# --- unsupported ops, frames ---------------------------------------------------------------------------------


def test_an_op_without_a_handler_is_reported_not_zero(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="a/Relu"),
        helper.make_node("LpNormalization", ["r"], ["y"], name="b.c/LpNormalization", axis=1),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "odd.onnx"
    onnx.save_model(model, str(path))
    graph = account(path)
    odd = graph.ops[1]
    assert graph.unsupported == [odd]
    assert (odd.category, odd.macs, odd.flops, odd.supported, odd.module_path) == ("other", None, None, False, "b.c")
    assert odd.bytes_read == odd.bytes_written == 8 * 4 * 4 * FP32  # bytes are still known
    assert graph.totals.unsupported_ops == 1 and graph.totals.unsupported_types == {"LpNormalization": 1}
    assert graph.totals.flops == 8 * 4 * 4 and not graph.totals.complete
    frame = graph.frame()
    assert frame["flops"].isna().tolist() == [False, True]
    by_cat = graph.totals_by_category()
    assert by_cat.loc["other", "unsupported"] == 1 and by_cat.loc["activation", "flops"] == 128


def test_frame_and_category_totals(acc: Accounter) -> None:
    graph = acc("shufflenet_v2_unit", "onnx", cin=48, cout=48, h=H, w=W)
    frame = graph.frame()
    assert len(frame) == len(graph.ops) and frame["mac_bytes"].sum() == graph.totals.mac_bytes
    by_cat = graph.totals_by_category()
    assert by_cat["flops"].sum() == graph.totals.flops
    assert by_cat["flops_share"].sum() == pytest.approx(1.0) and by_cat["bytes_share"].sum() == pytest.approx(1.0)
    assert by_cat.loc["channel_shuffle", "ops"] == 3


def test_unknown_file_is_one_clear_error(tmp_path: Path) -> None:
    from devices.core.errors import FlopgapError

    with pytest.raises(FlopgapError, match=r"\.onnx or \.tflite"):
        account(tmp_path / "model.pt")


# --- whole models --------------------------------------------------------------------------------------------

# The smallest configuration with a published MAC count, per family. Three run by default (about 50 s of
# conversions on two shared cores); the rest, and every referenced configuration of the zoo, are marked slow.
REFERENCED: dict[str, tuple[str, dict[str, object]]] = {
    "mobilenet_v1": ("mobilenet_v1", {"alpha": 0.25, "resolution": 160}),
    "mobilenet_v2": ("mobilenet_v2", {"alpha": 0.35}),
    "mobilenet_v3": ("mobilenet_v3_small", {"alpha": 0.75}),
    "shufflenet_v1": ("shufflenet_v1", {"groups": 4, "scale": 0.5}),
    "shufflenet_v2": ("shufflenet_v2", {"scale": 0.5}),
    "fd_mobilenet": ("fd_mobilenet", {"alpha": 0.25}),
    "efficientnet": ("efficientnet_b0", {}),
    "resnet": ("resnet50", {}),
}
SLOW_FAMILIES = {"efficientnet", "resnet", "mobilenet_v2", "mobilenet_v3", "shufflenet_v1"}
TOLERANCE = 0.02


def _check_model(spec: ModelSpec, cache_dir: Path) -> None:
    ref = spec.reference
    assert ref is not None and ref.macs is not None
    torch_macs = count_macs(spec.build(), spec.example_input())
    for fmt in (Format.ONNX, Format.TFLITE):  # the graphs proxies read
        graph = account(export(spec, fmt, Precision.FP32, cache_dir=cache_dir, check_parity=False))
        assert graph.totals.unsupported_ops == 0, graph.totals.unsupported_types
        assert graph.totals.macs == torch_macs, f"{spec.label} {fmt}: graph and torch disagree"
        assert abs(graph.totals.macs - ref.macs) <= TOLERANCE * ref.macs, (spec.label, graph.totals.macs, ref)


@pytest.mark.parametrize(
    "family",
    [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAMILIES else f for f in REFERENCED],
)
def test_model_macs_match_the_papers(cache_dir: Path, family: str) -> None:
    name, params = REFERENCED[family]
    _check_model(resolve(name, **params), cache_dir)  # type: ignore[arg-type]


def test_every_model_family_is_covered() -> None:
    families = {resolve(n).family for n in list_models(kind="model")}
    assert families == set(REFERENCED)


def _all_referenced() -> list[ModelSpec]:
    specs = [s for n in list_models(kind="model") for s in grid(n)]
    return [s for s in specs if s.reference is not None and s.reference.macs is not None and s.param_dict.get(
        "shuffle", "transpose") == "transpose"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("spec", _all_referenced(), ids=lambda s: s.label)
def test_whole_zoo_macs_match_the_papers(cache_dir: Path, spec: ModelSpec) -> None:
    _check_model(spec, cache_dir)


def test_tflite_shufflenet_v2_moves_more_transpose_bytes(acc: Accounter) -> None:
    onnx_graph, tfl_graph = acc("shufflenet_v2", "onnx", scale=0.5), acc("shufflenet_v2", "tflite", scale=0.5)

    def category_bytes(graph: GraphAccount, category: str) -> int:
        return sum(op.mac_bytes for op in graph.ops if op.category == category)

    # One shuffle per unit: stage2 4 units of 48×28×28, stage3 8 of 96×14×14, stage4 4 of 192×7×7; each of its
    # three ops (reshape, transpose, reshape) reads and writes the whole tensor once in fp32.
    per_unit = [(4, 48 * 28 * 28), (8, 96 * 14 * 14), (4, 192 * 7 * 7)]
    one_pass = sum(units * 2 * numel * FP32 for units, numel in per_unit)
    assert one_pass == 2_709_504
    assert category_bytes(onnx_graph, "channel_shuffle") == category_bytes(tfl_graph, "channel_shuffle") == 3 * one_pass
    # The NHWC conversion wraps every NCHW-style shuffle in two layout transposes; ONNX has none.
    assert category_bytes(tfl_graph, "layout") == 2 * one_pass and category_bytes(onnx_graph, "layout") == 0
    assert len(of_type(tfl_graph, "TRANSPOSE")) == 48 and len(of_type(onnx_graph, "Transpose")) == 16
    assert sum(op.category == "layout" for op in tfl_graph.ops) == 32
    assert math.isclose(onnx_graph.totals.macs, tfl_graph.totals.macs)
