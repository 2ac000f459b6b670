"""Parity of exported artifacts against torch: the smallest configuration of every zoo family and a few blocks.

For every model × format (ONNX, TFLite, ExecuTorch) × precision the format offers (fp32, fp16, int8-dynamic, int8;
ExecuTorch: fp32, int8) the artifact is exported
(from the artifact cache when present; parity is always measured afresh here, not read from the sidecar) and run
once on the seed-0 input. Printed per row:

- ``error``: ``max|y - y_torch| / max|y_torch|`` (what ``Artifact.parity_error`` stores);
- ``cosine``: cosine similarity of the flattened outputs;
- ``top1``: same argmax as torch (classifiers only);
- ``signal``: how far torch's own output moves on another input (relative, as ``error``): parity is only
  meaningful when this is well above the error;
- ``ok``: the verdict of :mod:`exporters.parity`'s criterion for that precision;
- ``float ops``: TFLite int8 only, ops that read or write a float tensor other than QUANTIZE/DEQUANTIZE
  (0 for a full-integer model), with the input/output dtypes.

Then the worst case per format × precision. A benchmark: it prints figures and asserts nothing.

    python benchmarks/parity_errors.py [--cache-dir DIR] [--only NAME ...] [--formats onnx tflite pte]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devices.vocabulary import Format, Precision
from exporters import parity
from exporters.cache import default_cache_dir, tool_versions
from exporters.export import SUPPORTED, export
from exporters.quiet import captured_output
from harness.zoo.registry import ModelSpec, ParamValue, resolve

CONFIGS: tuple[tuple[str, dict[str, ParamValue]], ...] = (
    ("resnet50", {}),
    ("mobilenet_v1", {"alpha": 0.25, "resolution": 128}),
    ("mobilenet_v2", {"alpha": 0.35}),
    ("mobilenet_v3_small", {"alpha": 0.75}),
    ("mobilenet_v3_large", {"alpha": 0.75}),
    ("shufflenet_v1", {"groups": 3, "scale": 0.25}),
    ("shufflenet_v2", {"scale": 0.5}),
    ("fd_mobilenet", {"alpha": 0.25}),
    ("efficientnet_b0", {}),
    ("shufflenet_v2_unit", {}),
    ("inverted_residual", {}),
    ("se", {}),
    ("guideline_g2", {"groups": 2}),
)
PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8_DYNAMIC, Precision.INT8)


@dataclass(frozen=True)
class Row:
    label: str
    fmt: Format
    precision: Precision
    result: parity.Parity
    float_ops: str
    seconds: float


def measure_one(spec: ModelSpec, fmt: Format, precision: Precision, cache_dir: Path) -> Row:
    start = time.perf_counter()
    art = export(spec, fmt, precision, cache_dir=cache_dir, check_parity=False)
    with captured_output():
        result = parity.measure(spec.build(), spec.example_input(), art.path, fmt, precision)
    float_ops = ""
    if fmt is Format.TFLITE and precision is Precision.INT8:
        io = parity.tflite_io_dtypes(art.path)
        float_ops = f"{sum(parity.tflite_float_ops(art.path).values())} ({io[0]}->{io[1]})"
    return Row(spec.label, fmt, precision, result, float_ops, time.perf_counter() - start)


def format_row(row: Row) -> str:
    r = row.result
    top1 = "-" if r.top1_agrees is None else ("yes" if r.top1_agrees else "NO")
    return (
        f"{row.label:<34} {row.fmt.value:<6} {row.precision.value:<12} {r.error:>9.2e} {r.cosine:>9.6f} "
        f"{top1:>4} {r.signal:>7.3f} {'ok' if r.ok else 'FAIL':>4} {row.float_ops:>16} {row.seconds:>6.1f}"
    )


HEADER = (
    f"{'model':<34} {'format':<6} {'precision':<12} {'error':>9} {'cosine':>9} {'top1':>4} {'signal':>7} "
    f"{'ok':>4} {'float ops':>16} {'sec':>6}"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache-dir", type=Path, default=None, help="artifact cache (default: flopgap's own)")
    parser.add_argument("--only", nargs="*", default=None, help="model names to measure (default: all)")
    parser.add_argument("--formats", nargs="*", type=Format, default=list(Format), help="formats (default: all)")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir or default_cache_dir()
    versions = tool_versions()
    print(f"# {datetime.date.today().isoformat()}  {platform.node()}  {platform.processor() or platform.machine()}")
    print(f"# python {platform.python_version()}  " + "  ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    print(HEADER)
    rows: list[Row] = []
    for name, params in CONFIGS:
        if args.only and name not in args.only:
            continue
        spec = resolve(name, **params)
        for fmt in args.formats:
            for precision in (p for p in PRECISIONS if p in SUPPORTED[fmt]):
                row = measure_one(spec, fmt, precision, cache_dir)
                rows.append(row)
                print(format_row(row), flush=True)
    print("\n# worst case per format and precision (max error, min cosine)")
    for fmt in args.formats:
        for precision in PRECISIONS:
            sel = [r for r in rows if r.fmt is fmt and r.precision is precision]
            if not sel:
                continue
            worst_err = max(sel, key=lambda r: r.result.error)
            worst_cos = min(sel, key=lambda r: r.result.cosine)
            disagree = sum(1 for r in sel if r.result.top1_agrees is False)
            failing = sum(1 for r in sel if not r.result.ok)
            print(
                f"{fmt.value:<6} {precision.value:<12} error {worst_err.result.error:.2e} ({worst_err.label})  "
                f"cosine {worst_cos.result.cosine:.6f} ({worst_cos.label})  top1 disagreements {disagree}  "
                f"failing {failing}/{len(sel)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
