"""The report page being built: HTML parts, PNG figures written beside it and inlined, tables, and the lines that
stand in for missing data. Each section of the report (:mod:`harness.report.html`) writes into one :class:`Page`."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib.figure import Figure

from harness.report.plots import NoData

if TYPE_CHECKING:  # the report a page fills lives beside write_report, which builds pages
    from harness.report.html import Report

REPORT_NAME = "report.html"
DPI = 110


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


class Page:
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


CSS = """
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
ol.findings li { margin: 0.4em 0; font-size: 1.05em; }
p.caveat { color: #555; font-size: 0.85em; }
"""
