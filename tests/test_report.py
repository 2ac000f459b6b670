"""The HTML report and its PNGs, rendered from a real SQLite store."""

from __future__ import annotations

import base64
import html
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import harness.analysis as analysis
from harness.cli.report import report as report_command
from harness.report import html as report
from harness.store import Store
from tests import analysis_data as data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "results.db") as s:
        yield s


def _png_size(blob: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature."""
    assert blob[:8] == PNG_SIGNATURE
    assert blob[12:16] == b"IHDR"
    width, height = struct.unpack(">II", blob[16:24])
    return width, height


def _links(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page, flags=re.IGNORECASE)


def test_report_is_self_contained_with_headline_sections_and_valid_pngs(store: Store, tmp_path: Path) -> None:
    results = analysis.load(store, accounts=data.populate(store, tmp_path))
    out = tmp_path / "report"
    written = report.render(results, out)
    page = written.html_path.read_text(encoding="utf-8")

    links = _links(page)
    assert links and all(u.startswith(("data:image/png;base64,", "#")) for u in links)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "url(" not in page.lower()

    assert html.escape(data.HEADLINE) in page
    assert written.headlines[0] == data.HEADLINE
    for _, title in report._SECTIONS:
        assert f">{html.escape(title)}</h2>" in page
    # Every figure and table is captioned with device, runtime and version, threads, precision, input size.
    assert "device local · onnxruntime 1.20.1 · 4 threads · fp32 · input 1x3x224x224" in page
    assert "device pi4 · litert 2.16.1 · 1 thread · fp32 · input 1x224x224x3" in page
    assert "device local · onnxruntime 1.20.1 · 4 threads · fp32 · input 1x32x56x56" in page  # guidelines

    names = sorted(p.name for p in written.figures)
    assert names == [
        "guidelines-local-onnxruntime-4-threads-fp32.png",
        "latency_vs_macs-local-onnxruntime-4-threads-fp32.png",
        "latency_vs_macs-pi4-litert-1-thread-fp32.png",
        "op_share-local-onnxruntime-4-threads-fp32.png",
        "residuals-local-onnxruntime-4-threads-fp32.png",
        "residuals-pi4-litert-1-thread-fp32.png",
        "roofline-local-onnxruntime-4-threads-fp32.png",
    ]
    embedded = [base64.b64decode(u.split(",", 1)[1]) for u in links if u.startswith("data:")]
    assert len(embedded) == len(written.figures)
    for path in written.figures:
        blob = path.read_bytes()
        width, height = _png_size(blob)
        assert width >= 400 and height >= 150
        assert blob in embedded  # the page inlines exactly the PNG written beside it

    # Tables carry the numbers: the fit, the residual ranking, the guideline verdicts, the block shares.
    assert "0.9901" in page  # R² of the pi4 fit, 1 - 0.05/5.05
    assert "<th>slope_stderr</th>" in page and "0.07071" in page  # its slope's standard error, sqrt(0.005)
    assert "<th>median_efficiency</th>" in page and "<th>memory_bound</th>" in page  # the roofline summary
    assert "1.413" in page  # shufflenet_v2's residual on pi4, 10^0.15
    assert "disagrees" in page or ">no<" in page  # G2 does not grow with g on this device
    assert "60.0%" in page and "70.0%" in page  # block features.1: 60% of FLOPs, 70% of time
    assert "have no op profile" in page
    # The pi4 model is profiled per block: the roofline says why it has no points instead of "no op profiles".
    assert any("TFLite per-block profiles give no per-op points" in line for line in written.missing)
    # Every breakdown says which denominator its shares use and gives the profiler overhead.
    assert html.escape(analysis.TIME_SHARE_BASIS) in page and "<th>profiler_overhead</th>" in page
    assert "0.025" in page  # shufflenet_v2's summed node times (100 µs) over its 4 ms median
    assert (
        "flopgap profile mobilenet_v2 -p alpha=0.5 --device local --runtime onnxruntime --threads 4 --precision fp32"
        in page
    )


def test_report_of_an_empty_database_says_what_to_run(store: Store, tmp_path: Path) -> None:
    written = report.render(analysis.load(store), tmp_path / "out")
    page = written.html_path.read_text(encoding="utf-8")
    assert written.figures == []
    assert "flopgap sweep" in page and "flopgap profile" in page
    assert html.escape(analysis.HOW_TO["guidelines"]) in page
    for _, title in report._SECTIONS:
        assert html.escape(title) in page


def test_points_without_profiles_or_calibration_still_report(store: Store, tmp_path: Path) -> None:
    accounts = data.populate(store, tmp_path)
    store.connection.execute("DELETE FROM op_profiles")
    store.connection.execute("DELETE FROM calibrations")
    written = report.render(analysis.load(store, accounts=accounts), tmp_path / "out")
    page = written.html_path.read_text(encoding="utf-8")
    assert html.escape(analysis.HOW_TO["op_profiles"]) in page
    assert not any(p.name.startswith(("op_share", "roofline")) for p in written.figures)
    assert any(p.name.startswith("latency_vs_macs") for p in written.figures)
    assert written.headlines == []


def test_report_without_calibration_names_the_command(store: Store, tmp_path: Path) -> None:
    accounts = data.populate(store, tmp_path)
    store.connection.execute("DELETE FROM calibrations")
    written = report.render(analysis.load(store, accounts=accounts), tmp_path / "out")
    assert any(p.name.startswith("roofline") for p in written.figures)  # ops placed, no roof drawn
    assert any("flopgap calibrate" in line for line in written.missing)


def test_report_command_writes_the_page_and_fails_in_one_line(store: Store, tmp_path: Path) -> None:
    data.populate(store, tmp_path)
    store.close()
    app = typer.Typer()
    app.command()(report_command)
    runner = CliRunner()
    out = tmp_path / "site"
    result = runner.invoke(app, ["--db", str(tmp_path / "results.db"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    # The artifact files are absent, so no graph account: FLOP shares are said to be unknown and the roofline,
    # which needs per-op FLOPs, is replaced by what to run.
    assert (out / "report.html").is_file()
    assert not (out / "roofline-local-onnxruntime-4-threads-fp32.png").exists() and len(list(out.glob("*.png"))) == 6
    assert "is gone" in result.output and "flopgap export" in result.output
    missing = runner.invoke(app, ["--db", str(tmp_path / "nope.db"), "--out", str(out)])
    assert missing.exit_code == 2
    assert "no results database" in missing.output and "Traceback" not in missing.output
