"""The exporters' entry point: a model spec in, a verified, cached artifact out."""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from devices.core.digest import file_digest
from devices.vocabulary import Format, Precision
from exporters import onnx_export, parity, pte_export, tflite_export
from exporters.artifact import Artifact
from exporters.cache import (
    ArtifactCache,
    CacheUnwritable,
    cache_key,
    disk_error,
    file_stem,
    tool_versions,
    unwritable,
)
from exporters.errors import ExportError
from exporters.fold import fold_batchnorm
from exporters.quiet import captured_output
from exporters.source import ModelSource, example_inputs, input_shapes

# int8 calibration: random NCHW inputs from these seeds (the parity input uses the spec's seed 0, not among them).
CALIBRATION_SAMPLES = 16
CALIBRATION_SEED = 1000

SUPPORTED: dict[Format, tuple[Precision, ...]] = {
    Format.ONNX: (Precision.FP32, Precision.FP16, Precision.INT8_DYNAMIC, Precision.INT8),
    Format.TFLITE: (Precision.FP32, Precision.FP16, Precision.INT8_DYNAMIC, Precision.INT8),
    Format.PTE: (Precision.FP32, Precision.INT8),  # what the XNNPACK quantizer and partitioner offer
}


def export(
    spec: ModelSource,
    fmt: Format | str,
    precision: Precision | str,
    *,
    cache_dir: Path | None = None,
    check_parity: bool = True,
    allow_parity_failure: bool = False,
    out_dir: Path | None = None,
) -> Artifact:
    """Export ``spec`` to ``fmt`` at ``precision``, from cache when an identical export exists.

    With ``check_parity`` the artifact is run once in its runtime against torch and an error over the bound
    raises :class:`ExportError` (``allow_parity_failure`` records it instead). ``out_dir`` also receives a copy
    (file and sidecar); the returned artifact then points at that copy.
    """
    fmt, precision = _parse(spec, fmt, precision)
    cache = ArtifactCache(cache_dir)
    art = _cached_or_convert(spec, fmt, precision, cache)
    if check_parity and art.parity_error is None:
        art = _with_parity(spec, art)
        with contextlib.suppress(CacheUnwritable):  # a read-only cache still serves its artifacts; parity is redone
            cache.put(art)
    if check_parity and not allow_parity_failure and not _parity_ok(art):
        cos = art.notes.get("parity", {}).get("cosine")
        raise ExportError(
            f"{spec.label}: {fmt.value} {precision.value} parity fails {parity.criterion(precision)}: relative error "
            f"{art.parity_error:.3g} (max|y - y_torch| / max|y_torch|), cosine {_fmt(cos)}; "
            "pass allow_parity_failure to keep it anyway"
        )
    if out_dir is not None:
        art = _copy_out(art, Path(out_dir), file_stem(spec, art.precision))
    return art


def _parse(spec: ModelSource, fmt: Format | str, precision: Precision | str) -> tuple[Format, Precision]:
    try:
        fmt = Format(fmt)
    except ValueError:
        raise ExportError(f"unknown format '{fmt}'; allowed: {', '.join(f.value for f in Format)}") from None
    try:
        precision = Precision(precision)
    except ValueError:
        allowed = ", ".join(p.value for p in Precision)
        raise ExportError(f"unknown precision '{precision}'; allowed: {allowed}") from None
    if precision not in SUPPORTED[fmt]:
        allowed = ", ".join(p.value for p in SUPPORTED[fmt])
        raise ExportError(f"{spec.label}: {fmt.value} export does not offer {precision.value}; offered: {allowed}")
    return fmt, precision


def settings(fmt: Format, precision: Precision) -> dict[str, Any]:
    """Export settings that enter the cache key besides model, format, precision and tool versions."""
    out: dict[str, Any] = {"batch": 1, "fold_batchnorm": True}
    if fmt is Format.ONNX:
        out["opset"] = onnx_export.OPSET
        out["stack_traces"] = False  # dropped (onnx_export.drop_stack_traces): exports made before carried paths
    if fmt is Format.PTE:
        # In the key of pte artifacts only, so adding ExecuTorch leaves the other formats' cache keys as they were.
        out["executorch"] = pte_export.version()
        out["partitioner"] = "xnnpack"
    if precision is Precision.INT8:
        out["calibration"] = {"samples": CALIBRATION_SAMPLES, "seed": CALIBRATION_SEED, "dist": "randn"}
    return out


def _cached_or_convert(spec: ModelSource, fmt: Format, precision: Precision, cache: ArtifactCache) -> Artifact:
    versions = tool_versions()
    key = cache_key(spec, fmt, precision, versions, settings(fmt, precision))
    hit = cache.get(spec, fmt, precision, key)
    if hit is not None:
        return hit
    final = cache.file_path(spec, fmt, precision, key)
    notes: dict[str, Any] = {"cache_key": key, **settings(fmt, precision)}
    if fmt is Format.PTE:
        return _convert_pte(spec, precision, cache, final, notes, versions)
    if precision is Precision.FP32:
        base = None
    else:
        # Reduced precisions start from the (cached) fp32 artifact of the same format: one graph, one conversion.
        base = _cached_or_convert(spec, fmt, Precision.FP32, cache)
        notes["source_transposes"] = base.notes.get("source_transposes")
        notes["bn_folded"] = base.notes.get("bn_folded")
    start = time.perf_counter()
    with cache.staging(final) as tmp:
        with captured_output() as log:
            try:
                if base is None:
                    notes.update(_convert_fp32(spec, fmt, tmp))
                else:
                    calib = calibration_inputs(spec, fmt) if precision is Precision.INT8 else []
                    module = onnx_export if fmt is Format.ONNX else tflite_export
                    module.convert_precision(base.path, tmp, precision, calib)
                failure: BaseException | None = None
            except Exception as exc:  # any converter failure becomes one ExportError below
                failure = exc
        if failure is not None:
            _raise_conversion_failure(spec, fmt, precision, failure, log.text, cache, key)
        notes["convert_seconds"] = round(time.perf_counter() - start, 3)
        notes.update(_graph_notes(fmt, tmp, notes.get("source_transposes")))
        art = _staged_artifact(spec, fmt, precision, final, tmp, versions, notes)
    return cache.put(art)


def _convert_pte(
    spec: ModelSource,
    precision: Precision,
    cache: ArtifactCache,
    final: Path,
    notes: dict[str, Any],
    versions: dict[str, str],
) -> Artifact:
    """Both precisions lower from torch (int8 quantizes the torch graph), so neither starts from another artifact."""
    start = time.perf_counter()
    with cache.staging(final) as tmp:
        with captured_output() as log:
            try:
                model = spec.build()
                x = example_inputs(spec)
                folded = fold_batchnorm(model, x)
                calib = [example_inputs(spec, CALIBRATION_SEED + i) for i in range(CALIBRATION_SAMPLES)]
                notes.update(
                    pte_export.export_pte(
                        folded.model,
                        x,
                        tmp,
                        pte_export.etrecord_path(final),
                        precision,
                        calib if precision is Precision.INT8 else [],
                    )
                )
                notes.update(bn_folded=len(folded.pairs), source_transposes=folded.source_transposes)
                failure: BaseException | None = None
            except ExportError:
                raise
            except Exception as exc:  # any converter failure becomes one ExportError below
                failure = exc
        if failure is not None:
            _raise_conversion_failure(spec, Format.PTE, precision, failure, log.text, cache, notes["cache_key"])
        notes["convert_seconds"] = round(time.perf_counter() - start, 3)
        notes["etrecord"] = pte_export.etrecord_path(final).name
        art = _staged_artifact(spec, Format.PTE, precision, final, tmp, versions, notes)
    return cache.put(art)


def _raise_conversion_failure(
    spec: ModelSource,
    fmt: Format,
    precision: Precision,
    failure: BaseException,
    log: str,
    cache: ArtifactCache,
    key: str,
) -> NoReturn:
    """A converter failed: the cache's fault when it could not write its output (one line naming the cache), else
    the model's (an ExportError pointing at the converter's log)."""
    cause = disk_error(failure)
    if cause is not None:
        action = f"exporting {spec.label} to {fmt.value} {precision.value}"
        raise unwritable(cache.root, cause if isinstance(cause, OSError) else None, action, str(cause)) from None
    raise _conversion_error(spec, fmt, precision, failure, log, cache.root, key) from failure


def _staged_artifact(
    spec: ModelSource,
    fmt: Format,
    precision: Precision,
    final: Path,
    tmp: Path,
    versions: dict[str, str],
    notes: dict[str, Any],
) -> Artifact:
    """The artifact converted into staging file ``tmp``, kept at ``final`` once the cache takes it; ``notes`` gain
    what the model's inputs are."""
    inputs = _input_notes(spec, fmt)
    if inputs is not None:
        notes["inputs"] = inputs
    return Artifact(
        path=final,
        format=fmt,
        precision=precision,
        sha256=file_digest(tmp),
        model=spec.name,
        params=spec.params,
        input_shape=_artifact_input_shape(spec, fmt),
        layout="NHWC" if fmt is Format.TFLITE else "NCHW",
        tool_versions=versions,
        parity_error=None,
        parity_bound=None,
        size_bytes=tmp.stat().st_size,
        notes=notes,
    )


def _convert_fp32(spec: ModelSource, fmt: Format, path: Path) -> dict[str, Any]:
    model = spec.build()
    x = example_inputs(spec)
    folded = fold_batchnorm(model, x)
    if fmt is Format.ONNX:
        onnx_export.export_onnx(folded.model, x, path)
    else:
        tflite_export.export_tflite(folded.model, x, path)
    return {"bn_folded": len(folded.pairs), "source_transposes": folded.source_transposes}


def _graph_notes(fmt: Format, path: Path, source_transposes: int | None) -> dict[str, Any]:
    if fmt is Format.ONNX:
        counts = onnx_export.op_counts(path)
        transposes = counts.get("Transpose", 0)
    else:
        counts = tflite_export.op_counts(path)
        transposes = counts.get("TRANSPOSE", 0)
    notes: dict[str, Any] = {"op_counts": counts, "transpose_ops": transposes}
    if source_transposes is not None:
        # Transposes the converter added (negative: it cancelled some of the model's own) for layout reasons.
        notes["layout_transposes_added"] = transposes - source_transposes
    return notes


def _artifact_input_shape(spec: ModelSource, fmt: Format) -> tuple[int, ...]:
    return _layout_shape(spec.input_shape, fmt)


def _layout_shape(shape: tuple[int, ...], fmt: Format) -> tuple[int, ...]:
    """An NCHW shape as the artifact takes it (TFLite: NHWC); shapes of other ranks are kept."""
    if fmt is not Format.TFLITE or len(shape) != 4:
        return tuple(shape)
    n, c, h, w = shape
    return (n, h, w, c)


def _input_notes(spec: ModelSource, fmt: Format) -> list[dict[str, Any]] | None:
    """Every input's shape as the artifact takes it, for a source with several inputs (None for one)."""
    shapes = input_shapes(spec)
    if len(shapes) == 1:
        return None
    return [{"shape": list(_layout_shape(s, fmt)), "dtype": "float32"} for s in shapes]


def calibration_inputs(spec: ModelSource, fmt: Format) -> list[np.ndarray] | list[tuple[np.ndarray, ...]]:
    """Fixed-seed standard-normal inputs for int8 calibration, in the artifact's layout (tuples for several)."""
    samples = [example_inputs(spec, CALIBRATION_SEED + i) for i in range(CALIBRATION_SAMPLES)]
    laid = [tuple(_to_layout(x.numpy(), fmt) for x in xs) for xs in samples]
    return [xs[0] for xs in laid] if all(len(xs) == 1 for xs in laid) else laid


def _to_layout(x: np.ndarray, fmt: Format) -> np.ndarray:
    return x if fmt is not Format.TFLITE or x.ndim != 4 else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _with_parity(spec: ModelSource, art: Artifact) -> Artifact:
    try:
        with captured_output():
            result = parity.measure(spec.build(), example_inputs(spec), art.path, art.format, art.precision)
    except Exception as exc:
        raise ExportError(
            f"{spec.label}: {art.format.value} {art.precision.value} artifact failed to run in its runtime "
            f"({type(exc).__name__}: {_one_line(str(exc))})"
        ) from exc
    notes = {**art.notes, "parity": result.as_notes()}
    return replace(art, parity_error=result.error, parity_bound=result.bound, notes=notes)


def _parity_ok(art: Artifact) -> bool:
    """The stored measurement judged by the current criterion (a cached sidecar may predate a change of bounds)."""
    return parity.passes(art.precision, art.parity_error, art.notes.get("parity", {}).get("cosine"))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _copy_out(art: Artifact, out_dir: Path, stem: str) -> Artifact:
    dest = out_dir / f"{stem}{art.format.extension}"
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(art.path, tmp)
        tmp.replace(dest)
        copy = replace(art, path=dest)
        ArtifactCache(out_dir).put(copy)
    except (OSError, CacheUnwritable) as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = err.strerror if isinstance(err, OSError) else str(err)
        raise ExportError(
            f"cannot copy {art.path.name} into --out {out_dir} ({reason}); choose another --out"
        ) from None
    return copy


_OP_PATTERNS = (
    re.compile(r"target=torch\.ops\.([\w.]+)"),  # fx node in both exporters' messages
    re.compile(r"OpOverload\(op='([\w.]+)'"),  # ONNX dispatcher
    re.compile(r"Lowering not found: ([\w.]+)"),  # litert-torch
    re.compile(r"'([\w]+)' op .*(?:not supported|failed to legalize)", re.IGNORECASE),  # MLIR legalization
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failing_op(exc: BaseException) -> str | None:
    """The op a converter choked on, parsed from its exception chain, or None."""
    seen: BaseException | None = exc
    texts: list[str] = []
    while seen is not None and len(texts) < 8:
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    text = _ANSI.sub("", "\n".join(texts))
    for pattern in _OP_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(1).removesuffix(".default")
    return None


def _conversion_error(
    spec: ModelSource, fmt: Format, precision: Precision, exc: BaseException, log: str, root: Path, key: str
) -> ExportError:
    log_path = root / "logs" / f"{file_stem(spec, precision)}_{fmt.value}_{key[:16]}.log"
    op = failing_op(exc)
    what = f"at op '{op}'" if op else f"({type(exc).__name__}: {_one_line(str(exc))})"
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"{log}\n--- exception ---\n{type(exc).__name__}: {_ANSI.sub('', str(exc))}\n")
    except OSError as err:  # the conversion's own error matters more than its log; say why there is none
        return ExportError(
            f"{spec.label}: {fmt.value} {precision.value} conversion failed {what}; no converter log "
            f"({unwritable(root, err, 'writing the converter log')})"
        )
    return ExportError(
        f"{spec.label}: {fmt.value} {precision.value} conversion failed {what}; converter log: {log_path}"
    )


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(_ANSI.sub("", text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
