"""The report in a real browser: Debian's headless ``chromium`` opens report.html (every section filled: headline,
devices compared, a sustained run, a comparison with a baseline), every image must decode, nothing may be logged
to the console, and a screenshot of the page must show it."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import harness.analysis as analysis
from devices.result import TrialResult
from devices.timeline import SustainedRun, TimelineWindow
from devices.vocabulary import Format
from harness.analysis.compare import compare, parse_side
from harness.measure.sustained import summarize_point
from harness.report import html as report
from harness.report.predictor_section import HOW_TO_PREDICTOR
from harness.report.sections import Sustained
from harness.store import Store
from tests import analysis_data as data
from tests.environment import Need, needs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI sets FLOPGAP_REQUIRE=all: there a missing browser fails these tests instead of skipping them.
needs_chromium = needs(Need.BROWSER, None if CHROMIUM else "no chromium on PATH (apt-get install chromium)")

# Loads report.html in a frame; once it has loaded (images included), writes what it found into the page.
PROBE = """<!DOCTYPE html><html><body><iframe id="r" src="report.html" width="1200" height="900"></iframe>
<pre id="result">pending</pre><script>
const frame = document.getElementById("r");
frame.addEventListener("load", () => {
  const doc = frame.contentDocument;
  const images = Array.from(doc.images);
  document.getElementById("result").textContent = JSON.stringify({
    title: doc.title, images: images.length,
    broken: images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.alt || "(no alt)"),
    widths: images.map(img => img.naturalWidth), sections: Array.from(doc.querySelectorAll("h2"), h => h.id)});
});
</script></body></html>
"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None  # needs_chromium
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--log-level=0",
            "--allow-file-access-from-files", "--virtual-time-budget=10000", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _filled_database(store: Store, tmp: Path) -> dict[str, object]:
    """The analysis test database, plus the same three ONNX models on a second device (3x and 4x slower) and one
    sustained trial whose latency rises with falling clocks from 20 s on."""
    accounts = data.populate(store, tmp)
    run = store.start_run("second device", "")
    store.upsert_device("rpi5", "ssh", {"cpu": "cortex-a76"})
    for (model, params, macs, ms), slower in zip(data.PROPORTIONAL, (3, 3, 4), strict=True):
        art = data.artifact(tmp, model, params, Format.ONNX, (1, 3, 224, 224))
        data._point(store, run, art, macs, ("rpi5", "onnxruntime", "1.20.1", 4), ms * slower)
    point = int(store.points_frame().iloc[0]["point_id"])
    windows = tuple(
        TimelineWindow(i, float(i), i + 1.0, 200, (2.0 if i < 20 else 2.6) * 1e6,
                       {"0": 1_800_000 if i < 20 else 1_100_000}, {"soc": 45.0 + i / 2}, i + 1.0)
        for i in range(40)
    )  # fmt: skip
    result = TrialResult("onnxruntime", "1.20.1", 4, samples_ns=(2_000_000,) * 50, timeline=windows,
                         sustained=SustainedRun(40.0, 1.0, 1.7e9, 8000))  # fmt: skip
    store.add_trial(point, 7, result, run_id=run)
    summarize_point(store, point)
    return accounts


@needs_chromium
def test_the_report_loads_in_chromium_with_every_image_and_no_console_errors(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    with Store(db) as store:
        accounts = _filled_database(store, tmp_path)
        results = analysis.load(store, accounts=accounts)  # type: ignore[arg-type]
        sustained = Sustained(store.sustained_frame(), store.timelines_frame(), store.points_frame())
    baseline = tmp_path / "baseline.db"
    shutil.copy(db, baseline)
    out = tmp_path / "report"
    written = report.render(
        results, out, sustained=sustained, comparison=compare(parse_side(str(baseline)), parse_side(str(db)))
    )
    page = written.html_path.read_text(encoding="utf-8")
    allowed = ("profile", "calibrat", HOW_TO_PREDICTOR)  # data this database lacks; the page still loads
    assert all(any(a in m for a in allowed) for m in written.missing)
    names = {p.name for p in written.figures}
    assert {"devices-onnxruntime-fp32-4.png", "comparison.png"} <= names
    assert any(n.startswith("timeline-point") for n in names)
    assert "throttled from 20s: latency +30% with frequency -39% (1800 → 1100 MHz)" in html.unescape(page)
    assert written.findings[0] == (
        "MACs rank these models in order: on pi4/litert 1 thread fp32, latency ∝ MACs^1.00 with R² 0.990 and "
        "Spearman ρ 1.00 over 4 models; no model with fewer MACs is slower than one with more."
    )
    assert written.findings[2].startswith("Depthwise convs take 2.5× their share of FLOPs in time (median 2.5×")

    (out / "probe.html").write_text(PROBE)
    probe = _chromium("--dump-dom", (out / "probe.html").as_uri())
    found = re.search(r'<pre id="result">(.*?)</pre>', probe.stdout, flags=re.S)
    assert found, probe.stderr[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    assert result["title"] == "flopgap report"
    assert result["images"] == len(written.figures) and result["broken"] == []
    assert min(result["widths"]) >= 400
    assert result["sections"] == [key for key, _ in report._SECTIONS]
    assert _console(probe.stderr) == []

    shot = tmp_path / "report.png"
    loaded = _chromium(f"--screenshot={shot}", "--window-size=1280,3000", written.html_path.as_uri())
    assert _console(loaded.stderr) == [], _console(loaded.stderr)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # text and figures drawn


@needs_chromium
def test_the_probe_sees_a_broken_image_and_a_console_error(tmp_path: Path) -> None:
    """The browser checks above can fail: a missing image and a script error are both caught."""
    (tmp_path / "report.html").write_text(
        '<!DOCTYPE html><html><head><title>flopgap report</title></head><body><h2 id="x">x</h2>'
        '<img alt="gone" src="missing.png"><script>console.error("boom")</script></body></html>'
    )
    (tmp_path / "probe.html").write_text(PROBE)
    probe = _chromium("--dump-dom", (tmp_path / "probe.html").as_uri())
    found = re.search(r'<pre id="result">(.*?)</pre>', probe.stdout, flags=re.S)
    assert found
    assert json.loads(html.unescape(found.group(1)))["broken"] == ["gone"]
    assert any('"boom"' in line for line in _console(probe.stderr))


def test_devices_side_by_side_relative_to_the_smallest_model(tmp_path: Path) -> None:
    from harness.analysis.device_comparison import device_comparison, rank_agreement

    with Store(tmp_path / "results.db") as store:
        results = analysis.load(store, accounts=_filled_database(store, tmp_path))  # type: ignore[arg-type]
    frame = device_comparison(results)
    assert set(frame["device"]) == {"local", "rpi5"}  # pi4 measured other models with another runtime
    rpi5 = frame[frame["device"] == "rpi5"].set_index("model_label")
    # 2, 4, 8 ms on local; 3x, 3x, 4x that on rpi5: MACs 1:2:4, rpi5's latency 1:2:5.33
    assert list(rpi5["mac_ratio"]) == [1.0, 2.0, 4.0]
    assert list(rpi5["latency_ratio"]) == pytest.approx([1.0, 2.0, 32 / 6])
    assert list(rpi5["vs_first_device"]) == pytest.approx([3.0, 3.0, 4.0])
    agreement = rank_agreement(frame).set_index("device")
    assert agreement.loc["rpi5", "rho_with_macs"] == pytest.approx(1.0) and agreement.loc["rpi5", "models"] == 3
