"""What the analysis notebooks share: finding the results database, loading it once, and showing each context's
figures and tables the way the report does (same captions, same number formats, same "what to run" lines).

In a notebook::

    from harness.report.notebook import Notebook
    nb = Notebook.open()  # $FLOPGAP_DB, else results/sample.db; shows the database, its contexts and devices
    for context in nb.contexts_in(frame):
        nb.heading(context, frame)
        nb.figure(plots.latency_vs_macs, context)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML, Markdown, display
from matplotlib.figure import Figure

import harness.analysis as analysis
from harness.analysis import Context, Results
from harness.report import plots
from harness.report.html import table_html
from harness.report.plots import NoData
from harness.store import DB_ENV

SAMPLE_DB = Path("results") / "sample.db"


def find_database(path: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Path:
    """The results database a notebook reads: ``path``, else ``$FLOPGAP_DB``, else the sample database.

    A relative path is tried from the working directory and from its parent, so a notebook runs from
    ``notebooks/`` (Jupyter's default) or from the repository root alike.
    """
    given = Path(path) if path else Path(os.environ.get(DB_ENV) or SAMPLE_DB)
    here = cwd or Path.cwd()
    candidates = [given] if given.is_absolute() else [here / given, here.parent / given]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        tried = " or ".join(str(p) for p in candidates)
        raise FileNotFoundError(f"no results database at {tried}: set {DB_ENV}, or run 'flopgap sweep' first")
    return found.resolve()


@dataclass
class Notebook:
    """One results database loaded for a notebook, and the contexts it shows (narrow ``contexts`` to the ones
    you want, e.g. ``nb.contexts = [c for c in nb.contexts if c.device == "pi4"]``)."""

    results: Results
    contexts: list[Context] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, show: bool = True) -> Notebook:
        """Load the database :func:`find_database` finds; ``show`` displays where it is, its measurement contexts
        (with their runtime versions, input sizes and point counts) and its devices."""
        results = analysis.load(find_database(path))
        nb = cls(results, results.contexts())
        if show:
            nb.markdown(f"results database: `{results.source}`, **{len(nb.contexts)} measurement context(s)**")
            if nb.contexts:
                nb.table(analysis.context_overview(results), analysis.OVERVIEW_COLUMNS)
            else:
                nb.note(analysis.HOW_TO["points"])
            nb.table(results.devices, ["name", "transport", "facts_json"])
        return nb

    def contexts_in(self, frame: pd.DataFrame) -> list[Context]:
        """The shown contexts that have rows in ``frame``."""
        return [c for c in self.contexts if not frame.empty and c.mask(frame).any()]

    def heading(self, context: Context, frame: pd.DataFrame) -> None:
        """The context's caption: device, runtime and version, threads, precision, input size."""
        self.markdown(f"### {context}\n{plots.caption(context, frame[context.mask(frame)])}")

    def figure(self, draw: Callable[..., Figure], context: Context, **kwargs: Any) -> Figure | str:
        """One figure of :mod:`harness.report.plots` for one context, or the line saying what to run when its
        data is absent; returns what it displayed."""
        try:
            fig = draw(self.results, context, **kwargs)
        except NoData as err:
            self.note(str(err))
            return str(err)
        display(fig)
        return fig

    def table(self, frame: pd.DataFrame, columns: Iterable[str] | None = None) -> None:
        """A table with shares as percentages and floats to 4 significant digits (the report's formatting)."""
        display(HTML(table_html(frame, columns)))

    def markdown(self, text: str) -> None:
        display(Markdown(text))

    def note(self, text: str) -> None:
        """A line in italics: what is missing and what to run."""
        self.markdown(f"_{text}_")
