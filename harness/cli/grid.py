"""``flopgap predict --grid``: every configuration of a grid ranked by predicted latency, MACs beside."""

from __future__ import annotations

import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from devices.core.errors import FlopgapError
from devices.vocabulary import Precision, Runtime
from harness.cli.output import OutputFormat, human, notes_console, write_records
from harness.cli.predict import load_predictor
from harness.cli.sweep import make_exporter
from harness.store import Store

GRID_COLUMNS = ("rank", "model", "predicted_ms", "macs", "kernels", "within_budget")


def predict_grid(
    name: str,
    param: list[str] | None,
    input_shape: list[str] | None,
    grid_items: list[str],
    budget_ms: float | None,
    device: str,
    runtime: Runtime | None,
    threads: int,
    precision: Precision | None,
    db: Path | None,
    cache_dir: Path | None,
    fmt: OutputFormat,
) -> None:
    from harness.cli.model_args import cli_model, pick_precision, pick_runtime
    from harness.predict.device_graph import check_arch
    from harness.predict.extract import extract_kernels
    from harness.predict.search import configurations, parse_grid, rank
    from harness.sources import FileSource
    from harness.sources.export import source_counts

    grid = parse_grid(grid_items)
    fixed = {p.partition("=")[0].strip() for p in param or []}
    both = sorted(fixed & set(grid))
    if both:
        raise FlopgapError(f"'{both[0]}' is both a --param and a --grid key; give it in one of them")
    first = cli_model(name, param, input_shape)
    if isinstance(first, FileSource):
        raise FlopgapError(f"--grid needs a zoo model or a torch factory, and {name} is a file; predict it alone")
    chosen = pick_runtime(first, runtime, Runtime.ONNXRUNTIME)
    level = pick_precision(first, precision)
    with Store(db, readonly=True) as store:
        _, predictor = load_predictor(store, device, chosen, threads, level)
    check_arch(predictor.summary, device, chosen)  # the grid's models are optimized here, for this machine's CPU
    exporter = make_exporter(cache_dir, True)

    def predict_one(config: dict[str, str]) -> tuple[str, float, int | None, int]:
        spec = cli_model(name, [*(param or []), *(f"{k}={v}" for k, v in config.items())], input_shape)
        art = exporter(spec, chosen.artifact_format, level)
        kernels = extract_kernels(art.path, chosen)
        counts = source_counts(spec, art)
        return spec.label, predictor.predict(kernels).total_ms, counts.macs if counts else None, len(kernels)

    configs = configurations(grid)
    started = time.monotonic()
    notes = notes_console(fmt)
    with notes.status(f"predicting {len(configs)} configurations...") as status:
        ranked = rank(configs, predict_one, budget_ms,
                      lambda i, n: status.update(f"predicting configuration {i + 1} of {n}..."))  # fmt: skip
    records = [
        {"rank": i, "model": c.label, **c.config, "predicted_ms": c.predicted_ms, "macs": c.macs,
         "kernels": c.kernels, "within_budget": c.within_budget}
        for i, c in enumerate(ranked, start=1)
    ]  # fmt: skip
    context = f"{device} ({chosen}, {threads} thread(s), {level})"
    if fmt is not OutputFormat.TABLE:
        columns = ("rank", "model", *grid, *GRID_COLUMNS[2:])
        document = {"device": device, "runtime": chosen.value, "threads": threads, "precision": level.value,
                    "budget_ms": budget_ms}  # fmt: skip
        write_records(records, columns, fmt, document, key="configurations")
    else:
        table = Table(title=f"{name}: {len(ranked)} configurations on {context}, fastest first")
        for col in ("rank", "model", *grid, "predicted ms", "MACs", "kernels", *(["budget"] if budget_ms else [])):
            table.add_column(col, justify="left" if col == "model" else "right")
        for r, c in zip(records, ranked, strict=True):
            fits = [] if c.within_budget is None else ["[green]within[/]" if c.within_budget else "over"]
            table.add_row(str(r["rank"]), escape(c.label), *(escape(c.config[k]) for k in grid),
                          f"{c.predicted_ms:.3f}", human(c.macs), str(c.kernels), *fits)  # fmt: skip
        notes.print(table)
    within = sum(1 for c in ranked if c.within_budget)
    budget = f"; {within} within {budget_ms:g} ms" if budget_ms is not None else ""
    notes.print(f"{len(ranked)} configurations predicted in {time.monotonic() - started:.1f}s{budget}", highlight=False)
