"""Report sections beyond the FLOP-gap analysis proper: the headline (one table and three findings), building
blocks, devices side by side, sustained runs and a comparison with a baseline. Each writes into a
:class:`~harness.report.page.Page` and, where its data is missing, says which command produces it."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from functools import partial

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.analysis import HOW_TO, Context, Results, contexts_in
from harness.analysis.compare import Comparison
from harness.analysis.device_comparison import GROUP, HOW_TO_DEVICES, device_comparison, rank_agreement
from harness.analysis.findings import HEADLINE_CATEGORIES, PROFILER_CAVEAT, headline_table
from harness.analysis.runtimes import GROUPS, layout_costs, runtime_comparison
from harness.report import plots
from harness.report.comparison import ratio_figure
from harness.report.page import Page
from harness.report.timeline import point_caption, timeline_figure

HOW_TO_SUSTAINED = (
    "no sustained runs: run 'flopgap run MODEL --sustained 10m' (or sustained = \"10m\" in a spec's [protocol])"
)
HOW_TO_COMPARISON = (
    "no comparison: 'flopgap report --baseline OTHER.db' compares this database with another run "
    "(or run 'flopgap compare A B')"
)
HOW_TO_BLOCKS = (
    "no building blocks measured: sweep some ('flopgap models --kind block' lists them; e.g. "
    "'flopgap run conv1x1 -p cin=128 -p cout=128')"
)


@dataclass(frozen=True)
class Sustained:
    """A database's sustained trials: their summaries, their windows, and the points they belong to."""

    summary: pd.DataFrame
    windows: pd.DataFrame
    points: pd.DataFrame


def headline(page: Page, results: Results, breakdown: pd.DataFrame) -> None:
    table = headline_table(results, breakdown)
    findings = analysis_findings(results, table)
    page.report.findings.extend(findings)
    page.add('<ol class="findings">' + "".join(f"<li>{html.escape(f)}</li>" for f in findings) + "</ol>")
    if table.empty:
        page.missing(f"the headline table needs op profiles — {HOW_TO['op_profiles']}")
        return
    page.para(
        "Share of FLOPs and share of measured time per model, for the op categories FLOP counts misjudge most "
        "(channel shuffle, layout conversions, depthwise conv, grouped conv, element-wise):"
    )
    page.table(_headline_cells(table))
    page.para(PROFILER_CAVEAT, "caveat")


def _headline_cells(table: pd.DataFrame) -> pd.DataFrame:
    """One compact row per model: its context, and per category "share of FLOPs → share of time"."""

    def pair(flops: object, time: object) -> str:
        left = "?" if flops is None or _nan(flops) else f"{100 * float(flops):.1f}%"  # type: ignore[arg-type]
        return f"{left} → {100 * float(time):.1f}%"  # type: ignore[arg-type]

    out = pd.DataFrame(
        {
            "model": table["model_label"],
            "context": [f"{Context.of(r)} ({r['runtime']} {r['runtime_version']})" for _, r in table.iterrows()],
        }
    )
    for name, _ in HEADLINE_CATEGORIES:
        out[f"{name} FLOPs → time"] = [
            pair(f, t) for f, t in zip(table[f"{name}_flops_share"], table[f"{name}_time_share"], strict=True)
        ]
    out["profiler overhead"] = table["profiler_overhead"]
    return out


def analysis_findings(results: Results, table: pd.DataFrame) -> list[str]:
    from harness.analysis.findings import findings

    return findings(results, table)


def blocks(page: Page, results: Results, block_breakdown: pd.DataFrame) -> None:
    from harness.zoo.registry import EntryKind, list_models

    names = {n for n in list_models(kind=EntryKind.BLOCK) if not n.startswith("guideline_")}
    points = results.points[results.points["model"].isin(names)]
    if points.empty and block_breakdown.empty:
        page.missing(HOW_TO_BLOCKS)
        return
    for context in contexts_in(points):
        sel = points[context.mask(points)].sort_values(["model", "macs"])
        page.heading(3, plots.caption(context, sel))
        page.table(sel, ("model_label", "input_shape", "macs", "median_ms", "ci_low_ms", "ci_high_ms", "noisy"))
    if not block_breakdown.empty:
        page.heading(3, "Per-block profiles of whole models (TFLite: blocks timed as sub-models, no per-op times)")
    for context in contexts_in(block_breakdown):
        sel = block_breakdown[context.mask(block_breakdown)]
        page.para(plots.caption(context, sel))
        page.table(sel, ("model_label", "input_shape", "block", "op_type", "flops", "flops_share", "time_us",
                         "time_share", "time_share_of_median", "profiler_overhead"))  # fmt: skip


def devices(page: Page, results: Results) -> None:
    frame = device_comparison(results)
    if frame.empty:
        page.missing(HOW_TO_DEVICES)
        return
    page.para(
        "The same models on several devices. latency_ratio and mac_ratio are relative to the smallest model of the "
        "group: if MACs predicted latency, every point would sit on the diagonal on every device. vs_first_device is "
        "each model's latency over the first device's."
    )
    agreement = rank_agreement(frame)
    for key, group in frame.groupby(list(GROUP), sort=True):
        runtime, precision, threads = key
        title = f"{runtime} · {precision} · {threads} thread{'s' if threads != 1 else ''}"
        page.heading(3, title)
        page.figure(f"devices-{runtime}-{precision}-{threads}", partial(_devices_figure, group, title))
        page.table(group, ("device", "runtime_version", "model_label", "macs", "median_ms", "mac_ratio",
                           "latency_ratio", "vs_first_device"))  # fmt: skip
        mask = (agreement["runtime"] == runtime) & (agreement["precision"] == precision)
        page.table(agreement[mask & (agreement["threads"] == threads)], ("device", "models", "rho_with_macs",
                                                                         "rho_with_first_device"))  # fmt: skip


def _devices_figure(group: pd.DataFrame, title: str) -> Figure:
    fig = Figure(figsize=(7, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for device, sel in group.groupby("device", sort=True):
        ax.plot(sel["mac_ratio"], sel["latency_ratio"], "o-", lw=0.8, label=str(device))
        for label, x, y in zip(sel["model_label"], sel["mac_ratio"], sel["latency_ratio"], strict=True):
            ax.annotate(str(label), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    top = float(max(group["mac_ratio"].max(), group["latency_ratio"].max()))
    ax.plot([1, top], [1, top], "k--", lw=1, label="latency ∝ MACs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MACs relative to the smallest model")
    ax.set_ylabel("latency relative to the smallest model")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    inputs = ", ".join(sorted({str(s) for s in group.get("input_shape", pd.Series(dtype=str)).dropna()}))
    versions = ", ".join(sorted({f"{d} {v}" for d, v in zip(group["device"], group["runtime_version"], strict=True)}))
    fig.suptitle(f"Devices compared: {title}\n{versions}" + (f" · input {inputs}" if inputs else ""), fontsize=9)
    return fig


def sustained(page: Page, data: Sustained | None) -> None:
    if data is None or data.summary.empty:
        page.missing(HOW_TO_SUSTAINED)
        return
    page.para(
        "Each sustained trial ran one point continuously. first_ms and last_ms are the medians of its first and last "
        "span_s seconds (a minute, or a third of a shorter run); a trial is throttled when its latency rises together "
        "with falling CPU frequency or rising temperature, from throttle_start_s on."
    )
    rows = data.summary.merge(data.points[["point_id", "model_label", "device", "runtime"]], on="point_id")
    page.table(rows, ("model_label", "device", "runtime", "trial_index", "seconds", "window_s", "span_s", "first_ms",
                      "last_ms", "ratio", "throttled", "throttle_start_s", "reason"))  # fmt: skip
    points = data.points.set_index("point_id")
    for _, row in data.summary.iterrows():
        point = points.loc[row["point_id"]]
        windows = data.windows[data.windows["trial_id"] == row["trial_id"]]
        caption = point_caption(point)
        page.heading(3, f"{caption} · trial {int(row['trial_index']) + 1}")
        name = f"timeline-point{row['point_id']}-trial{int(row['trial_index']) + 1}"
        page.figure(name, partial(timeline_figure, windows, row, caption))


def comparison(page: Page, result: Comparison | None) -> None:
    if result is None:
        page.missing(HOW_TO_COMPARISON)
        return
    rows = result.rows
    page.para(
        f"B = this database ({result.b}) over A = the baseline ({result.a}): the ratio of medians per matching point "
        f"with a bootstrap 95% CI (trials, then samples within them, resampled); a change is marked when its CI "
        f"excludes 1 and it exceeds {result.threshold:.0%}. Points only in A: {result.only_a}, only in B: "
        f"{result.only_b}."
    )
    if rows.empty:
        page.missing(f"no point of {result.b} matches one of {result.a} (same artifact, runtime, precision, threads, "
                     "device and cluster); measure the same spec in both")  # fmt: skip
        return
    page.figure("comparison", lambda: ratio_figure(rows, f"B = {result.b} over A = {result.a}", result.threshold))
    shown = rows.assign(ci=[f"{lo:.3f}–{hi:.3f}" if ok else "no CI (summary only)" for lo, hi, ok in
                            zip(rows["ci_low"], rows["ci_high"], rows["has_ci"], strict=True)])  # fmt: skip
    page.table(shown, ("model_label", "runtime", "precision", "threads", "device", "cluster", "a_ms", "b_ms", "ratio",
                       "ci", "change"))  # fmt: skip


def _nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def runtimes(page: Page, results: Results) -> None:
    """The same models on every runtime: median, time shares per op group, and where layout handling costs."""
    frame = runtime_comparison(results)
    if frame.empty:
        page.missing(HOW_TO["runtimes"])
        return
    page.para(
        "Each model measured on two runtimes or more, side by side: the median, and where the runtime's profile is per "
        "op (ONNX Runtime's nodes, ExecuTorch's ETDump events), the share of the summed profiled time in convs "
        "(dense, pointwise, grouped, fully connected), depthwise convs, channel shuffles, layout conversions and "
        "element-wise ops (activations included). layout_ms = layout share × median: XNNPACK's NHWC transposes "
        "in ExecuTorch, ORT's NCHWc reorders. LiteRT's shares come from its operators where the device's LiteRT "
        "profiles them (ai-edge-litert 2.3, read by flopgap's runner), empty where it was profiled per block; "
        "layout_ops counts the transposes the TFLite converter added. ExecuTorch rows XNNPACK reports without a graph "
        "node (layout transposes, reshapes, copies) are categorised by their op name; by_op_name_share is their share "
        "of the profiled time."
    )
    costs = layout_costs(frame)
    if costs:
        page.add("<ul>" + "".join(f"<li>{html.escape(c.sentence)}</li>" for c in costs) + "</ul>")
    for key, group in frame.groupby(["device", "precision", "threads"], sort=True):
        device, precision, threads = key
        title = f"{device} · {precision} · {threads} thread{'s' if threads != 1 else ''}"
        page.heading(3, title)
        page.figure(f"runtimes-{device}-{precision}-{threads}", partial(runtimes_figure, group, title))
        page.table(group, ("model_label", "runtime", "runtime_version", "median_ms", *(f"{g}_share" for g in GROUPS),
                           "other_share", "layout_ms", "layout_ops", "by_op_name_share"))  # fmt: skip


def runtimes_figure(group: pd.DataFrame, title: str) -> Figure:
    """Per model, one bar per runtime: its median split by op group (a runtime without per-op times: one grey bar)."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    models = list(dict.fromkeys(group["model_label"]))
    runtimes_ = sorted(set(group["runtime"]))
    width = 0.8 / len(runtimes_)
    colours = dict(zip((*GROUPS, "other"), ("C0", "C1", "C3", "C4", "C2", "C7"), strict=True))
    for j, runtime in enumerate(runtimes_):
        sel = group[group["runtime"] == runtime].set_index("model_label")
        xs = [i + (j - (len(runtimes_) - 1) / 2) * width for i in range(len(models))]
        bottom = [0.0] * len(models)
        for name in (*GROUPS, "other"):
            heights = [
                float(sel.at[m, "median_ms"] * sel.at[m, f"{name}_share"])
                if m in sel.index and not math.isnan(sel.at[m, f"{name}_share"])
                else 0.0
                for m in models
            ]
            ax.bar(xs, heights, width, bottom=bottom, color=colours[name], label=name if j == 0 else None)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        untimed = [
            float(sel.at[m, "median_ms"]) if m in sel.index and b == 0 else 0.0
            for m, b in zip(models, bottom, strict=True)
        ]
        ax.bar(xs, untimed, width, color="0.8", edgecolor="0.5", label="no per-op times" if any(untimed) else None)
        for x, m in zip(xs, models, strict=True):
            if m in sel.index:
                ax.annotate(runtime[:4], (x, float(sel.at[m, "median_ms"])), fontsize=6, ha="center",
                            xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("median latency (ms), split by op group's share of profiled time")
    ax.legend(fontsize=7)
    fig.suptitle(f"Runtimes side by side: {title}", fontsize=9)
    return fig
