"""What ``flopgap run --sustained`` prints after measuring: each sustained trial's minute-1 and last-minute
medians, their ratio and the throttling verdict, and where its timeline figure went."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.store import Store


def report_sustained(console: Console, db: Path, point_ids: list[int], figures: Path) -> list[Path]:
    """Print the sustained summaries of ``point_ids`` and write one timeline PNG per sustained trial."""
    from harness.report.timeline import point_caption, timeline_figure

    with Store(db, readonly=True) as store:
        summary = store.sustained_frame(point_ids)
        windows = store.timelines_frame(point_ids)
        points = store.points_frame().set_index("point_id")
    written = []
    for _, row in summary.iterrows():
        point = points.loc[row["point_id"]]
        span = f"{row['span_s']:g}s"
        verdict = f"[red]throttled from {row['throttle_start_s']:g}s[/]" if row["throttled"] else "not throttled"
        console.print(
            f"{escape(str(point['model_label']))} trial {row['trial_index'] + 1}: first {span} {row['first_ms']:.3f} "
            f"ms, last {span} {row['last_ms']:.3f} ms (last/first {row['ratio']:.3f}); {verdict}: "
            f"{escape(str(row['reason']))}",
            highlight=False,
        )
        figures.mkdir(parents=True, exist_ok=True)
        trial = windows[windows["trial_id"] == row["trial_id"]]
        fig = timeline_figure(trial, row, point_caption(point))
        path = figures / f"timeline_point{row['point_id']}_trial{row['trial_index'] + 1}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
        console.print(f"timeline figure: {path}", highlight=False)
    return written
