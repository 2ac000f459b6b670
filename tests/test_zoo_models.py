"""The zoo's CNN families against published figures and torchvision's exact parameter counts.

Every configuration with a published reference is built, counted (conv + linear MACs at its input size) and run
once; the whole file takes a few seconds on a laptop CPU.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch

from harness.errors import InvalidParameterError
from harness.zoo import grid, resolve
from harness.zoo.counting import Counts, count
from harness.zoo.registry import ModelSpec, lookup

FAMILIES = (
    "resnet50",
    "resnext50_32x4d",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "fd_mobilenet",
    "efficientnet_b0",
)
TOLERANCE = 0.02


@cache
def measure(spec: ModelSpec) -> tuple[Counts, tuple[int, ...]]:
    """Counts and output shape of one configuration (built once per test session)."""
    model = spec.build()
    x = spec.example_input()
    counts = count(model, x)
    with torch.no_grad():
        shape = tuple(model(x).shape)
    return counts, shape


def _referenced() -> list[ModelSpec]:
    return [spec for name in FAMILIES for spec in grid(name) if spec.reference is not None]


def _close(built: int, published: int) -> bool:
    return abs(built - published) <= TOLERANCE * published


# How many configurations of each model carry a published figure: guards against a reference table that
# silently stops matching (lookup returning None would skip the checks below).
EXPECTED_REFERENCED = {
    "resnet50": 1,
    "resnext50_32x4d": 1,
    "mobilenet_v1": 16,
    "mobilenet_v2": 5,
    "mobilenet_v3_large": 2,
    "mobilenet_v3_small": 2,
    "fd_mobilenet": 3,
    "efficientnet_b0": 1,
}


def test_every_configuration_with_a_paper_figure_is_covered() -> None:
    found: dict[str, int] = {}
    for spec in _referenced():
        found[spec.name] = found.get(spec.name, 0) + 1
    assert found == EXPECTED_REFERENCED


@pytest.mark.parametrize("spec", _referenced(), ids=lambda s: s.label)
def test_counts_match_the_published_figures(spec: ModelSpec) -> None:
    ref = spec.reference
    assert ref is not None and (ref.params is not None or ref.macs is not None)
    counts, shape = measure(spec)
    assert shape == (1, 1000)
    if ref.params is not None:
        assert _close(counts.params, ref.params), f"{spec.label}: {counts.params} params vs {ref.params} ({ref.source})"
    if ref.macs is not None:
        assert _close(counts.macs, ref.macs), f"{spec.label}: {counts.macs} MACs vs {ref.macs} ({ref.source})"


# torchvision's exact parameter counts, and its GFLOPS (multiply-adds, two decimals) from the weights' metadata.
TORCHVISION = {
    ("resnet50", ()): (25_557_032, 4.09),
    ("resnext50_32x4d", ()): (25_028_904, 4.23),
    ("mobilenet_v2", (("alpha", 1.0),)): (3_504_872, 0.30),
    ("mobilenet_v3_large", (("alpha", 1.0),)): (5_483_032, 0.22),
    ("mobilenet_v3_small", (("alpha", 1.0),)): (2_542_856, 0.06),
    ("efficientnet_b0", ()): (5_288_548, 0.39),
}


@pytest.mark.parametrize(("name", "params"), list(TORCHVISION), ids=lambda v: v if isinstance(v, str) else "")
def test_torchvision_counts_are_exact(name: str, params: tuple[tuple[str, float], ...]) -> None:
    spec = resolve(name, **dict(params))
    exact, gflops = TORCHVISION[(name, params)]
    assert lookup(spec.entry.torchvision_params, spec.param_dict) == exact  # the registry carries the same number
    counts, shape = measure(spec)
    assert counts.params == exact
    assert round(counts.macs / 1e9, 2) == gflops
    assert shape == (1, 1000)


# Exact MACs of this build: a change in any layer's shape moves them (1.0 defaults; hand-checkable for V1:
# stem 10.8M + 13 separable layers + 1.024M classifier).
PINNED_MACS = {
    "resnet50": 4_089_184_256,
    "resnext50_32x4d": 4_230_479_872,
    "mobilenet_v1": 568_740_352,
    "mobilenet_v2": 300_774_272,
    "mobilenet_v3_large": 216_589_760,
    "mobilenet_v3_small": 56_510_400,
    "fd_mobilenet": 144_489_728,
    "efficientnet_b0": 385_814_752,
}


@pytest.mark.parametrize("name", FAMILIES)
def test_default_macs_are_pinned(name: str) -> None:
    counts, _ = measure(resolve(name))
    assert counts.macs == PINNED_MACS[name]


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_bad_alpha_names_the_parameter(name: str) -> None:
    with pytest.raises(InvalidParameterError, match="alpha") as info:
        resolve(name, alpha=0.6)
    assert "\n" not in str(info.value)
    allowed = ", ".join(str(c) for c in resolve(name).entry.param("alpha").choices or ())
    assert allowed in str(info.value)


def test_fd_mobilenet_bad_alpha() -> None:
    with pytest.raises(InvalidParameterError, match=r"'alpha'.*allowed: 0\.25, 0\.5, 1\.0"):
        resolve("fd_mobilenet", alpha=0.75)


def test_resnets_take_no_parameters() -> None:
    with pytest.raises(InvalidParameterError, match="unknown parameter 'alpha'"):
        resolve("resnet50", alpha=0.5)


def test_mobilenet_v1_input_follows_resolution() -> None:
    spec = resolve("mobilenet_v1", alpha="0.5", resolution="160")
    assert spec.input_shape == (1, 3, 160, 160)
    with pytest.raises(InvalidParameterError, match="resolution"):
        resolve("mobilenet_v1", resolution=96)


def test_mobilenet_v3_thin_models_keep_the_wide_classifier() -> None:
    # The paper's 0.75 models keep the 1280/1024 layer (torchvision would shrink it to 960/768).
    for name, width in (("mobilenet_v3_large", 1280), ("mobilenet_v3_small", 1024)):
        fc1 = resolve(name, alpha=0.75).build().get_submodule("classifier.fc1")
        assert isinstance(fc1, torch.nn.Linear)
        assert fc1.out_features == width


def test_module_paths_name_the_op() -> None:
    names = dict(resolve("mobilenet_v3_large").build().named_modules())
    for path in ("stem.conv", "features.3.expand.conv", "features.3.dw.conv", "features.3.se.fc1", "head.conv"):
        assert path in names
    assert "features.0.expand" not in names or isinstance(names["features.0.expand"], torch.nn.Identity)
    v1 = dict(resolve("mobilenet_v1").build().named_modules())
    assert {"features.12.dw.conv", "features.12.pw.conv", "classifier.fc"} <= set(v1)
    r50 = dict(resolve("resnet50").build().named_modules())
    assert {"layer1.0.shortcut.conv", "layer4.2.conv.conv", "classifier.fc"} <= set(r50)


def test_build_leaves_the_global_rng_alone_and_gives_the_same_weights() -> None:
    spec = resolve("mobilenet_v3_small")  # layer default inits, init_weights, then BatchNorm calibration
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    first = spec.build().state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(99)  # another global stream must not change the weights either
    second = spec.build().state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_biases_are_small_seeded_and_never_zero() -> None:
    model = resolve("mobilenet_v3_large").build()
    biased = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and m.bias is not None]
    assert len(biased) == 18  # 16 SE convs (8 blocks × fc1, fc2) and the classifier's two linears
    for m in biased:
        assert m.bias is not None
        bias = m.bias.detach()
        assert bool((bias != 0).all()) and float(bias.abs().max()) < 0.01
    again = [
        m for m in resolve("mobilenet_v3_large").build().modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    again = [m for m in again if m.bias is not None]
    assert all(torch.equal(a.bias, b.bias) for a, b in zip(again, biased, strict=True))  # type: ignore[arg-type]


def test_onnx_export_of_mobilenet_v3_large_keeps_every_conv_and_linear_bias(tmp_path: Path) -> None:
    import onnx

    from exporters.export import export

    spec = resolve("mobilenet_v3_large")
    layers = sum(isinstance(m, torch.nn.Conv2d | torch.nn.Linear) for m in spec.build().modules())
    graph = onnx.load(str(export(spec, "onnx", "fp32", cache_dir=tmp_path, check_parity=False).path)).graph
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    with_bias = [n.name for n in weighted if len([i for i in n.input if i]) == 3]
    # Every conv gets a bias (BatchNorm folded into it, or its own); with zero-initialised biases the exporter
    # dropped the 16 SE convs' and the 2 classifier linears' (46 of 64 kept).
    assert len(weighted) == layers == 64
    assert len(with_bias) == 64
    assert {"features.3.se.fc1/Conv", "features.3.se.fc2/Conv", "classifier.fc2/Gemm"} <= set(with_bias)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("shufflenet_v1", {"groups": 3.7}, r"parameter 'groups' must be an integer, got 3\.7; allowed: 1, 2, 3, 4, 8"),
        ("shufflenet_v1", {"groups": True}, r"parameter 'groups' must be an integer, got True; allowed: 1, 2, 3"),
        ("mobilenet_v1", {"alpha": True}, r"parameter 'alpha' must be a number, got True; allowed: 0\.25, 0\.5"),
        ("mobilenet_v1", {"alpha": "nan"}, r"parameter 'alpha' must be a number, got 'nan'"),
        ("shufflenet_v2", {"shuffle": 1}, r"parameter 'shuffle' must be a string, got 1; allowed: transpose"),
    ],
)
def test_parameters_are_never_coerced_lossily(name: str, params: dict[str, object], expected: str) -> None:
    """3.7 was truncated to groups=3 and true read as alpha=1.0: a typo measured the wrong model."""
    with pytest.raises(InvalidParameterError, match=expected):
        resolve(name, **params)  # type: ignore[arg-type]


def test_exact_conversions_are_still_accepted() -> None:
    assert resolve("shufflenet_v1", groups=3.0).param_dict["groups"] == 3  # TOML 3.0 is the integer 3
    assert resolve("shufflenet_v1", groups="8").param_dict["groups"] == 8  # --param groups=8
    assert resolve("mobilenet_v1", alpha=1).param_dict["alpha"] == 1.0
    assert resolve("mobilenet_v1", alpha="0.5").param_dict["alpha"] == 0.5
