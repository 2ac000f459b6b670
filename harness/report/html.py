"""The FLOP-gap report: every figure as a PNG plus one self-contained HTML page (figures inlined as base64 PNGs,
tables as HTML, no external links), from a results database.

The page opens with the headline (one table of FLOP and time shares of the op categories FLOP counts misjudge, and
three findings computed from the data), then follows what the user reads (DESIGN.md, Analysis): latency vs MACs,
the residual ranking, op shares, building blocks, the roofline and the guideline experiments; then devices side by
side, sustained runs and a comparison with a baseline where the data has them. Each figure and table is made per
measurement context and captioned with its device, runtime and version, threads, precision and input size; a
section or figure whose data is absent says which command produces it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

import harness.analysis as analysis
from devices.core.errors import FlopgapError
from harness import __version__
from harness.analysis import CONTEXT, HOW_TO, ROOFLINE_SUMMARY_COLUMNS, Context, Results, contexts_in
from harness.analysis.compare import Comparison
from harness.report import plots, sections
from harness.report.page import CSS, DPI, REPORT_NAME, Page, table_html
from harness.report.predictor_section import predictor_section
from harness.store.devices import stored_facts
from harness.store.identity import describe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DPI", "REPORT_NAME", "Report", "render", "table_html", "write_report"]

_SECTIONS = (
    ("headline", "Headline: where FLOP counts lie"),
    ("contexts", "Measurement contexts"),
    ("latency", "Latency vs MACs"),
    ("residuals", "Residual ranking: where FLOPs underestimate latency"),
    ("ops", "Op breakdown: share of FLOPs vs share of time"),
    ("runtimes", "Runtimes side by side"),
    ("blocks", "Building blocks"),
    ("roofline", "Roofline"),
    ("guidelines", "ShuffleNetV2 guideline experiments"),
    ("predictor", "Latency predictor: held-out families"),
    ("devices", "Devices compared"),
    ("sustained", "Sustained runs: minute 1 vs the last minute"),
    ("comparison", "Comparison with a baseline"),
)


@dataclass
class Report:
    """What :func:`write_report` wrote: the HTML page, the PNGs, and the lines that stand in for absent data."""

    html_path: Path
    figures: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    headlines: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # the headline's sentences computed from the data


def _context_heading(page: Page, context: Context, frame: pd.DataFrame) -> None:
    page.heading(3, plots.caption(context, frame))


# A measured model in a context's tables: which one, its MACs and its median.
_MODEL_ROW = ("model_label", "family", "input_shape", "runtime_version", "macs", "median_ms")


def _per_context(
    page: Page, frame: pd.DataFrame, name: str, draw: Callable[[Context], Callable[[], Figure]]
) -> Iterator[tuple[Context, pd.DataFrame]]:
    """Per context of ``frame``: its heading and its figure ``name`` (``draw(context)`` draws it); yields the context
    and its rows for the tables that follow."""
    for context in contexts_in(frame):
        sel = frame[context.mask(frame)]
        _context_heading(page, context, sel)
        page.figure(f"{name}-{context}", draw(context))
        yield context, sel


def _overview(page: Page, results: Results) -> None:
    if results.points.empty:
        page.missing(HOW_TO["points"])
        return
    page.para("Measurement contexts in this database (a context is a device, runtime, precision and thread count):")
    page.table(analysis.context_overview(results))
    for note in machine_notes(results.devices):
        page.para(note, "note")


def machine_notes(devices: pd.DataFrame) -> list[str]:
    """One sentence per inventory name that stood for more than one machine (their results are kept apart)."""
    if "inventory_name" not in devices or devices.empty:
        return []
    notes = []
    for name, group in devices.groupby(devices["inventory_name"].fillna(devices["name"]), sort=True):
        if len(group) < 2:
            continue
        machines = "; ".join(
            f"'{row.name}': {describe(stored_facts(row.facts_json))}, seen {str(row.first_seen)[:10]} to "
            f"{str(row.last_seen)[:10]}"
            for row in group.sort_values("first_seen").itertuples()
        )
        notes.append(
            f"Device '{name}' was {len(group)} different machines (their fingerprints differ); each one's results "
            f"are kept apart under its own name: {machines}."
        )
    return notes


def version_note(fit: pd.DataFrame) -> str | None:
    """A warning when a fit line goes through points of more than one runtime version."""
    mixed = sorted({str(v) for v in fit.get("runtime_version", pd.Series(dtype=str)) if ", " in str(v)})
    if not mixed:
        return None
    return (
        f"This fit mixes runtime versions ({'; '.join(mixed)}): its points were measured with different versions "
        "of the runtime, so the line is not one runtime's; rerun the older points or read the table per version."
    )


def _per_model(page: Page, results: Results, breakdown: pd.DataFrame) -> None:
    """Per profiled model, one sentence: shuffle's and depthwise convs' share of FLOPs against their share of time."""
    heads = analysis.headlines(results, breakdown)
    if not heads:
        return
    page.para(
        "A channel shuffle (reshape → transpose → reshape, all three counted) has no FLOPs but moves the whole "
        "tensor three times; layout conversions (transposes a converter adds, ONNX Runtime's NCHWc reorders) have "
        "none either; depthwise convs have few FLOPs and low arithmetic intensity. Their share of measured time "
        f"({analysis.TIME_SHARE_BASIS}) against their share of FLOPs, per model, with the profiler overhead "
        "(summed node times / whole-model median):"
    )
    page.add('<ul class="headline">' + "".join(f"<li>{html.escape(h.sentence)}</li>" for h in heads) + "</ul>")
    # The terminal gets the sentences that measure a gap; report.html has every one.
    page.report.headlines.extend(
        h.sentence for h in heads if not h.per_block and (h.has_shuffle or h.has_layout or h.has_depthwise)
    )
    unaccounted = sorted({h.model_label for h in heads if h.shuffle_flops_share is None and not h.per_block})
    if unaccounted:
        reasons = sorted(set(results.account_errors.values()))
        page.missing(f"FLOP shares unknown for {', '.join(unaccounted)}: {'; '.join(reasons) or HOW_TO['accounts']}")


def _missing_profiles(page: Page, results: Results) -> None:
    missing = analysis.missing_profiles(results)
    for context in contexts_in(missing):
        sel = missing[context.mask(missing)]
        labels = sel["model_label"].astype(str).tolist()
        names = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")
        first = sel.iloc[0]
        command = analysis.profile_command(context, str(first["model"]), first["params"])
        page.missing(f"{len(labels)} model(s) on {context} have no op profile ({names}): run e.g. '{command}'")


def _latency(page: Page, results: Results, frame: pd.DataFrame, fit_frame: pd.DataFrame) -> None:
    if frame.empty:
        page.missing(
            HOW_TO["points"] if results.points.empty else f"no measured point has MACs recorded; {HOW_TO['points']}"
        )
        return
    draw = partial(plots.latency_vs_macs, results, frame=frame, fit_frame=fit_frame)
    for context, sel in _per_context(page, frame, "latency_vs_macs", lambda c: partial(draw, c)):
        fit = fit_frame[context.mask(fit_frame)]
        if fit.empty or fit["slope"].isna().all():
            page.missing(f"{HOW_TO['fit']} (only {len(sel)} model(s) in {context})")
        else:
            page.table(fit)
            note = version_note(fit)
            if note is not None:
                page.para(note, "note")
        page.table(sel, (*_MODEL_ROW, "ci_low_ms", "ci_high_ms", "noisy"))


def _residuals(page: Page, results: Results, frame: pd.DataFrame, gaps: pd.DataFrame) -> None:
    if frame.empty:
        page.missing(HOW_TO["fit"])
    for _, sel in _per_context(page, frame, "residuals", lambda c: partial(plots.residuals, results, c, frame=frame)):
        page.table(sel, ("rank", *_MODEL_ROW, "predicted_ms", "residual"))
    page.heading(3, "Op categories the FLOP proxy underestimates most (mean over profiled models)")
    if gaps.empty:
        page.missing(HOW_TO["op_profiles"] if results.op_profiles.empty else HOW_TO["accounts"])
        return
    for context in contexts_in(gaps):
        sel = gaps[context.mask(gaps)]
        shapes = results.points[context.mask(results.points)]
        page.para(f"{plots.caption(context, shapes)} — gap = share of time − share of FLOPs; residual = their ratio")
        page.table(sel, ("category", "models", "flops_share", "time_share", "gap", "residual"))


def _ops(page: Page, results: Results, breakdown: pd.DataFrame, blocks: pd.DataFrame) -> None:
    if breakdown.empty and blocks.empty:
        page.missing(HOW_TO["op_profiles"])
        return
    _per_model(page, results, breakdown)
    page.para(
        f"time_share: {analysis.TIME_SHARE_BASIS} (profiled_us); time_share_of_median: of the whole-model median "
        f"(median_us); {analysis.OVERHEAD_NOTE}. Guideline blocks are not models and are left out."
    )
    draw = partial(plots.op_share, results, breakdown=breakdown)
    for _, sel in _per_context(page, breakdown, "op_share", lambda c: partial(draw, c)):
        page.table(
            sel,
            (
                "model_label",
                "input_shape",
                "runtime_version",
                "category",
                *analysis.SHARE_COLUMNS,
                "n_ops",
                "n_profiled",
            ),
        )
    if not blocks.empty:
        page.para("TFLite models profiled per block (no per-op times) are in the Building blocks section.")
    by_op = analysis.op_type_breakdown(results)
    if not by_op.empty:
        page.heading(3, "Profiles grouped by op type (graphs that name no torch modules)")
        page.para(
            "These models' graphs were exported by another tool: their node names carry no torch module path, so "
            "their time is grouped by op type instead of by block."
        )
        page.table(by_op, ("model_label", "runtime", "input_shape", "op_type", "nodes", "time_us", "time_share"))
    _missing_profiles(page, results)


def _roofline(page: Page, results: Results, frame: pd.DataFrame, movement: pd.DataFrame) -> None:
    if results.op_profiles.empty:
        page.missing(HOW_TO["op_profiles"])
        return
    placed = set(contexts_in(frame))
    for context in contexts_in(results.op_profiles):
        blocks_only = plots.no_per_op_points(results, context) if context not in placed else None
        if blocks_only is not None:
            page.missing(str(blocks_only))
    if frame.empty:
        if not set(results.op_profiles["point_id"]) <= analysis.block_profiled(results):
            page.missing(HOW_TO["accounts"])
        return
    summary = analysis.roofline_summary(results, frame, movement)
    draw = partial(plots.roofline, results, frame=frame, movement=movement)
    for context, sel in _per_context(page, frame, "roofline", lambda c: partial(draw, c)):
        if sel["peak_gflops"].isna().all():
            page.missing(
                f"no roofline calibration for {context.device}/{context.runtime} at {context.threads} threads: "
                f"run '{analysis.calibrate_command(context)}'"
            )
        page.table(summary[context.mask(summary)], ROOFLINE_SUMMARY_COLUMNS[len(CONTEXT) :])


def _guidelines(page: Page, results: Results, frame: pd.DataFrame) -> None:
    if frame.empty:
        page.missing(HOW_TO["guidelines"])
        return
    verdicts = analysis.guideline_verdicts(results, frame)
    draw = partial(plots.guidelines, results, frame=frame)
    for context, sel in _per_context(page, frame, "guidelines", lambda c: partial(draw, c)):
        page.table(
            verdicts[context.mask(verdicts)], ("experiment", "setup", "variants", "fastest", "expected", "agrees")
        )
        page.table(sel, _GUIDELINE_TABLE)


# The context is the section's heading and the expected order is the verdict table's.
_GUIDELINE_TABLE = tuple(c for c in analysis.GUIDELINE_COLUMNS if c not in (*CONTEXT, "runtime_version", "expected"))


def render(
    results: Results, out: Path, *, sustained: sections.Sustained | None = None, comparison: Comparison | None = None
) -> Report:
    """Write the PNGs and the HTML page of ``results`` into ``out`` (created if needed); ``sustained`` and
    ``comparison`` fill their sections (else those say what to run)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FlopgapError(f"cannot create report directory {out} ({err.strerror}); choose another --out") from None
    report = Report(out / REPORT_NAME)
    page = Page(out, report)
    breakdown = analysis.op_breakdown(results)
    latency = analysis.latency_vs_macs(results)
    fit_frame = analysis.fits(results)
    blocks = analysis.block_breakdown(results)
    body: dict[str, Callable[[], None]] = {
        "headline": lambda: sections.headline(page, results, breakdown),
        "contexts": lambda: _overview(page, results),
        "latency": lambda: _latency(page, results, latency, fit_frame),
        "residuals": lambda: _residuals(
            page, results, analysis.residuals(results, fit_frame), analysis.category_gaps(results, breakdown)
        ),
        "ops": lambda: _ops(page, results, breakdown, blocks),
        "runtimes": lambda: sections.runtimes(page, results),
        "blocks": lambda: sections.blocks(page, results, blocks),
        "roofline": lambda: _roofline(page, results, analysis.roofline(results), analysis.data_movement(results)),
        "guidelines": lambda: _guidelines(page, results, analysis.guidelines(results)),
        "predictor": lambda: predictor_section(page, results.source),
        "devices": lambda: sections.devices(page, results),
        "sustained": lambda: sections.sustained(page, sustained),
        "comparison": lambda: sections.comparison(page, comparison),
    }
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page.add("<h1>flopgap report: where FLOP counts lie</h1>")
    page.para(f"Results database {results.source or '(in memory)'} · generated {stamp} by flopgap {__version__}")
    page.add("<nav>" + "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title in _SECTIONS) + "</nav>")
    for key, title in _SECTIONS:
        page.heading(2, title, key)
        body[key]()
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>flopgap report</title><style>{CSS}</style></head><body>\n"
        + "\n".join(page.parts)
        + "\n</body></html>\n"
    )
    try:
        report.html_path.write_text(document, encoding="utf-8")
    except OSError as err:
        raise FlopgapError(f"cannot write {report.html_path} ({err.strerror}); choose another --out") from None
    return report


def write_report(db: Any = None, out: str | Path = Path("results") / "report", baseline: str | None = None) -> Report:
    """Load a results database (path, ``None`` for the default, or a Store) and render its report into ``out``;
    ``baseline`` (a database, ``DB:RUN`` or a run id of ``db``) adds the comparison section."""
    from harness.analysis.compare import compare, parse_side
    from harness.store import Store, resolve_db_path

    results = analysis.load(db)
    if isinstance(db, Store):
        data = _sustained(db)
        path = db.path
    else:
        path = resolve_db_path(db)
        with Store(path, readonly=True) as store:
            data = _sustained(store)
    comparison = None
    if baseline is not None:
        comparison = compare(parse_side(baseline, path), parse_side(str(path)))
    return render(results, Path(out), sustained=data, comparison=comparison)


def _sustained(store: Any) -> sections.Sustained:
    return sections.Sustained(store.sustained_frame(), store.timelines_frame(), store.points_frame())
