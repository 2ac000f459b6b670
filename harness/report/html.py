"""The FLOP-gap report: every figure as a PNG plus one self-contained HTML page (figures inlined as base64 PNGs,
tables as HTML, no external links), from a results database.

Sections follow what the user reads (DESIGN.md, Analysis): the headline shuffle/depthwise numbers, latency vs
MACs, the residual ranking, op shares, the roofline and the guideline experiments. Each figure and table is made
per measurement context and captioned with its device, runtime and version, threads, precision and input size;
a figure whose data is absent becomes one line saying what to run.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

import harness.analysis as analysis
from devices.errors import FlopgapError
from harness import __version__
from harness.analysis import CONTEXT, HOW_TO, ROOFLINE_SUMMARY_COLUMNS, Context, Results, contexts_in
from harness.report import plots
from harness.report.plots import NoData
from harness.report.predictor_section import predictor_section
from harness.store.identity import describe

REPORT_NAME = "report.html"
DPI = 110


@dataclass
class Report:
    """What :func:`write_report` wrote: the HTML page, the PNGs, and the lines that stand in for absent data."""

    html_path: Path
    figures: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    headlines: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _fmt(value: Any, share: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if share and isinstance(value, (int, float)):
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def table_html(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> str:
    """A frame as an escaped HTML table; ``*_share`` columns as percentages, floats to 4 significant digits."""
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    shown = pd.DataFrame(
        {c: [_fmt(v, c.endswith("_share") or c in ("gap",)) for v in frame[c].tolist()] for c in frame.columns}
    )
    return shown.to_html(index=False, escape=True, border=0, classes="data")


class _Page:
    """Accumulates the HTML body and writes the PNGs as it goes."""

    def __init__(self, out: Path, report: Report) -> None:
        self.out = out
        self.report = report
        self.parts: list[str] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        ident = f' id="{anchor}"' if anchor else ""
        self.add(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def para(self, text: str, cls: str = "") -> None:
        self.add(f'<p class="{cls}">{html.escape(text)}</p>' if cls else f"<p>{html.escape(text)}</p>")

    def missing(self, line: str) -> None:
        self.report.missing.append(line)
        self.para(line, "missing")

    def figure(self, name: str, draw: Callable[[], Figure]) -> None:
        try:
            fig = draw()
        except NoData as err:
            self.missing(str(err))
            return
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        data = buffer.getvalue()
        path = self.out / f"{_slug(name)}.png"
        path.write_bytes(data)
        self.report.figures.append(path)
        encoded = base64.b64encode(data).decode("ascii")
        alt = html.escape(fig.get_suptitle().replace("\n", " — ") if hasattr(fig, "get_suptitle") else name)
        self.add(f'<figure><img alt="{alt}" src="data:image/png;base64,{encoded}"></figure>')

    def table(self, frame: pd.DataFrame, columns: Iterable[str] | None = None) -> None:
        self.add(table_html(frame, columns))


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #aaa; margin-top: 2em; }
h3 { font-size: 1em; color: #333; margin-top: 1.5em; }
table.data { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0 1em; }
table.data th, table.data td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }
table.data th { background: #f0f0f0; }
figure { margin: 0.5em 0; } figure img { max-width: 100%; }
p.missing { color: #8a4b00; background: #fff4e0; padding: 4px 8px; border-left: 3px solid #e0a040; }
p.note { background: #eef4ff; padding: 4px 8px; border-left: 3px solid #5080c0; }
ul.headline li { margin: 0.3em 0; }
nav a { margin-right: 1em; }
"""

_SECTIONS = (
    ("headline", "Headline: channel shuffle, layout conversions and depthwise convs"),
    ("latency", "Latency vs MACs"),
    ("residuals", "Residual ranking: where FLOPs underestimate latency"),
    ("ops", "Op breakdown: share of FLOPs vs share of time"),
    ("roofline", "Roofline"),
    ("guidelines", "ShuffleNetV2 guideline experiments"),
    ("predictor", "Latency predictor: held-out families"),
)


def _context_heading(page: _Page, context: Context, frame: pd.DataFrame) -> None:
    page.heading(3, plots.caption(context, frame))


def _overview(page: _Page, results: Results) -> None:
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
            f"'{row.name}': {describe(_facts(row.facts_json))}, seen {str(row.first_seen)[:10]} to "
            f"{str(row.last_seen)[:10]}"
            for row in group.sort_values("first_seen").itertuples()
        )
        notes.append(
            f"Device '{name}' was {len(group)} different machines (their fingerprints differ); each one's results "
            f"are kept apart under its own name: {machines}."
        )
    return notes


def _facts(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def version_note(fit: pd.DataFrame) -> str | None:
    """A warning when a fit line goes through points of more than one runtime version."""
    mixed = sorted({str(v) for v in fit.get("runtime_version", pd.Series(dtype=str)) if ", " in str(v)})
    if not mixed:
        return None
    return (
        f"This fit mixes runtime versions ({'; '.join(mixed)}): its points were measured with different versions "
        "of the runtime, so the line is not one runtime's; rerun the older points or read the table per version."
    )


def _headline(page: _Page, results: Results, breakdown: pd.DataFrame) -> None:
    if results.op_profiles.empty:
        page.missing(f"headline numbers need op profiles — {HOW_TO['op_profiles']}")
        return
    heads = analysis.headlines(results, breakdown)
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


def _missing_profiles(page: _Page, results: Results) -> None:
    missing = analysis.missing_profiles(results)
    for context in contexts_in(missing):
        sel = missing[context.mask(missing)]
        labels = sel["model_label"].astype(str).tolist()
        names = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")
        first = sel.iloc[0]
        command = analysis.profile_command(context, str(first["model"]), first["params"])
        page.missing(f"{len(labels)} model(s) on {context} have no op profile ({names}): run e.g. '{command}'")


def _latency(page: _Page, results: Results, frame: pd.DataFrame, fit_frame: pd.DataFrame) -> None:
    if frame.empty:
        page.missing(
            HOW_TO["points"] if results.points.empty else f"no measured point has MACs recorded; {HOW_TO['points']}"
        )
        return
    for context in contexts_in(frame):
        sel = frame[context.mask(frame)]
        _context_heading(page, context, sel)
        page.figure(
            f"latency_vs_macs-{context}",
            partial(plots.latency_vs_macs, results, context, frame=frame, fit_frame=fit_frame),
        )
        fit = fit_frame[context.mask(fit_frame)]
        if fit.empty or fit["slope"].isna().all():
            page.missing(f"{HOW_TO['fit']} (only {len(sel)} model(s) in {context})")
        else:
            page.table(fit)
            note = version_note(fit)
            if note is not None:
                page.para(note, "note")
        page.table(
            sel,
            (
                "model_label",
                "family",
                "input_shape",
                "runtime_version",
                "macs",
                "median_ms",
                "ci_low_ms",
                "ci_high_ms",
                "noisy",
            ),
        )


def _residuals(page: _Page, results: Results, frame: pd.DataFrame, gaps: pd.DataFrame) -> None:
    if frame.empty:
        page.missing(HOW_TO["fit"])
    for context in contexts_in(frame):
        sel = frame[context.mask(frame)]
        _context_heading(page, context, sel)
        page.figure(f"residuals-{context}", partial(plots.residuals, results, context, frame=frame))
        page.table(
            sel,
            (
                "rank",
                "model_label",
                "family",
                "input_shape",
                "runtime_version",
                "macs",
                "median_ms",
                "predicted_ms",
                "residual",
            ),
        )
    page.heading(3, "Op categories the FLOP proxy underestimates most (mean over profiled models)")
    if gaps.empty:
        page.missing(HOW_TO["op_profiles"] if results.op_profiles.empty else HOW_TO["accounts"])
        return
    for context in contexts_in(gaps):
        sel = gaps[context.mask(gaps)]
        shapes = results.points[context.mask(results.points)]
        page.para(f"{plots.caption(context, shapes)} — gap = share of time − share of FLOPs; residual = their ratio")
        page.table(sel, ("category", "models", "flops_share", "time_share", "gap", "residual"))


def _ops(page: _Page, results: Results, breakdown: pd.DataFrame, blocks: pd.DataFrame) -> None:
    if breakdown.empty and blocks.empty:
        page.missing(HOW_TO["op_profiles"])
        return
    if not breakdown.empty or not blocks.empty:
        page.para(
            f"time_share: {analysis.TIME_SHARE_BASIS} (profiled_us); time_share_of_median: of the whole-model median "
            f"(median_us); {analysis.OVERHEAD_NOTE}. Guideline blocks are not models and are left out."
        )
    for context in contexts_in(breakdown):
        sel = breakdown[context.mask(breakdown)]
        _context_heading(page, context, sel)
        page.figure(f"op_share-{context}", partial(plots.op_share, results, context, breakdown=breakdown))
        page.table(
            sel,
            (
                "model_label",
                "input_shape",
                "runtime_version",
                "category",
                "flops",
                "flops_share",
                "time_us",
                "time_share",
                "time_share_of_median",
                "profiled_us",
                "median_us",
                "profiler_overhead",
                "n_ops",
                "n_profiled",
            ),
        )
    if not blocks.empty:
        page.heading(3, "Per-block profiles (TFLite: blocks timed as sub-models, no per-op times)")
    for context in contexts_in(blocks):
        sel = blocks[context.mask(blocks)]
        page.para(plots.caption(context, sel))
        page.table(
            sel,
            (
                "model_label",
                "input_shape",
                "block",
                "op_type",
                "flops",
                "flops_share",
                "time_us",
                "time_share",
                "time_share_of_median",
                "profiler_overhead",
            ),
        )
    by_op = analysis.op_type_breakdown(results)
    if not by_op.empty:
        page.heading(3, "Profiles grouped by op type (graphs that name no torch modules)")
        page.para(
            "These models' graphs were exported by another tool: their node names carry no torch module path, so "
            "their time is grouped by op type instead of by block."
        )
        page.table(by_op, ("model_label", "runtime", "input_shape", "op_type", "nodes", "time_us", "time_share"))
    _missing_profiles(page, results)


def _roofline(page: _Page, results: Results, frame: pd.DataFrame, movement: pd.DataFrame) -> None:
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
    for context in contexts_in(frame):
        sel = frame[context.mask(frame)]
        _context_heading(page, context, sel)
        page.figure(f"roofline-{context}", partial(plots.roofline, results, context, frame=frame, movement=movement))
        if sel["peak_gflops"].isna().all():
            page.missing(
                f"no roofline calibration for {context.device}/{context.runtime} at {context.threads} threads: "
                f"run '{analysis.calibrate_command(context)}'"
            )
        page.table(summary[context.mask(summary)], ROOFLINE_SUMMARY_COLUMNS[len(CONTEXT) :])


def _guidelines(page: _Page, results: Results, frame: pd.DataFrame) -> None:
    if frame.empty:
        page.missing(HOW_TO["guidelines"])
        return
    verdicts = analysis.guideline_verdicts(results, frame)
    for context in contexts_in(frame):
        sel = frame[context.mask(frame)]
        _context_heading(page, context, sel)
        page.figure(f"guidelines-{context}", partial(plots.guidelines, results, context, frame=frame))
        page.table(
            verdicts[context.mask(verdicts)], ("experiment", "setup", "variants", "fastest", "expected", "agrees")
        )
        page.table(
            sel,
            (
                "experiment",
                "setup",
                "variant",
                "input_shape",
                "macs",
                "median_ms",
                "ci_low_ms",
                "ci_high_ms",
                "relative",
                "agrees",
            ),
        )


def render(results: Results, out: Path) -> Report:
    """Write the PNGs and the HTML page of ``results`` into ``out`` (created if needed)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FlopgapError(f"cannot create report directory {out} ({err.strerror}); choose another --out") from None
    report = Report(out / REPORT_NAME)
    page = _Page(out, report)
    breakdown = analysis.op_breakdown(results)
    latency = analysis.latency_vs_macs(results)
    fit_frame = analysis.fits(results)
    body: dict[str, Callable[[], None]] = {
        "headline": lambda: _headline(page, results, breakdown),
        "latency": lambda: _latency(page, results, latency, fit_frame),
        "residuals": lambda: _residuals(
            page, results, analysis.residuals(results, fit_frame), analysis.category_gaps(results, breakdown)
        ),
        "ops": lambda: _ops(page, results, breakdown, analysis.block_breakdown(results)),
        "roofline": lambda: _roofline(page, results, analysis.roofline(results), analysis.data_movement(results)),
        "guidelines": lambda: _guidelines(page, results, analysis.guidelines(results)),
        "predictor": lambda: predictor_section(page, results.source),
    }
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page.add("<h1>flopgap report: where FLOP counts lie</h1>")
    page.para(f"Results database {results.source or '(in memory)'} · generated {stamp} by flopgap {__version__}")
    page.add("<nav>" + "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title in _SECTIONS) + "</nav>")
    page.heading(2, "Measurement contexts", "contexts")
    _overview(page, results)
    for key, title in _SECTIONS:
        page.heading(2, title, key)
        body[key]()
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>flopgap report</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(page.parts)
        + "\n</body></html>\n"
    )
    try:
        report.html_path.write_text(document, encoding="utf-8")
    except OSError as err:
        raise FlopgapError(f"cannot write {report.html_path} ({err.strerror}); choose another --out") from None
    return report


def write_report(db: Any = None, out: str | Path = Path("results") / "report") -> Report:
    """Load a results database (path, ``None`` for the default, or a Store) and render its report into ``out``."""
    return render(analysis.load(db), Path(out))
