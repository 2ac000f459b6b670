"""``flopgap compare`` on real databases: the same spec measured twice (interleaved) shows no significant change;
the same database with every sample made 50% slower shows each point as a regression and fails a 5% gate."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from devices.local import local_device
from harness.analysis.compare import Change, CompareError, change_of, compare, parse_fraction, parse_side, ratio_ci
from harness.cli.main import app
from harness.measure.spec import parse_spec
from harness.measure.stats import combine_trials
from harness.measure.sweep import run_sweep
from harness.store import Store
from tests.conftest import cached_exporter
from tests.sweep_files import sweep_spec

SPEC = sweep_spec(
    "compare", ["onnxruntime", "litert"], threads=[1], channels=96, depthwise_channels=192, size=56,
    trials=3, warmup_runs=20, warmup_seconds=0.1, runs=300, min_seconds=0.3,
)  # fmt: skip


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def _recompute(db: Path) -> None:
    with Store(db) as store:  # every point's statistics recomputed from the samples the file now holds
        for pid in store.points_frame()["point_id"]:
            trials = [np.asarray(t, dtype=np.int64) for t in store.trial_samples(int(pid))]
            store.complete_point(int(pid), combine_trials(trials))


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The spec measured twice into two databases, and a copy of the first with every sample 50% slower (20% was
    not always outside the CI of a point whose trials drifted by ±15% here).

    The two measurements are interleaved trial by trial (one sweep of twelve trials, split into the even and the
    odd ones, six each: each runner process lands a few percent apart), as the protocol interleaves points:
    measured one after the other, a shared host's drift between them (several percent within seconds here) would be
    a real difference, and a test of "no change" would be flaky. The kernels take ~0.1-0.3 ms, not ~0.02 ms: on
    kernels that small one runner process's trial differed from the next by up to 35% here, and the halves by 8%.
    """
    root = tmp_path_factory.mktemp("compare")
    both = root / "both.db"
    spec = parse_spec(SPEC.replace("trials = 3", "trials = 12"))
    with Store(both) as store:
        result = run_sweep(spec, SPEC, store, {"local": local_device()}, cached_exporter(root / "cache"))
        assert result.failed_points == 0 and len(result.point_ids) == 4
    out = {}
    for name, parity in (("a", 0), ("b", 1)):
        out[name] = root / f"{name}.db"
        shutil.copy(both, out[name])
        conn = sqlite3.connect(out[name])
        with conn:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("DELETE FROM trials WHERE trial_index % 2 != ?", (parity,))
        conn.close()
        _recompute(out[name])
    slower = root / "slower.db"
    shutil.copy(out["a"], slower)
    conn = sqlite3.connect(slower)
    with conn:
        conn.execute("UPDATE samples SET latency_ns = CAST(round(latency_ns * 1.5) AS INTEGER)")
    conn.close()
    _recompute(slower)
    out["slower"] = slower
    return out


def test_the_same_spec_measured_twice_shows_no_significant_change(dbs: dict[str, Path]) -> None:
    # 25%: three times what interleaved halves of one sweep differ by on this shared 2-vCPU host (up to ~8% measured
    # idle), so that a burst of load on some trials cannot make a change of it; half the 50% the next test catches.
    result = compare(parse_side(str(dbs["a"])), parse_side(str(dbs["b"])), threshold=0.25)
    rows = result.rows
    assert len(rows) == 4 and (result.only_a, result.only_b) == (0, 0)
    assert set(rows["runtime"]) == {"onnxruntime", "litert"} and rows["has_ci"].all()
    assert set(rows["change"]) == {Change.NONE}, rows[["model_label", "runtime", "ratio", "ci_low", "ci_high"]]
    assert (rows["ci_low"] < rows["ratio"]).all() and (rows["ratio"] < rows["ci_high"]).all()
    res = _invoke("compare", str(dbs["a"]), str(dbs["b"]), "--threshold", "25%", "--fail-above", "25%")
    assert res.exit_code == 0, res.output
    assert "4 point(s) matched: 0 slower, 0 faster, 4 no significant change (threshold 25%)" in res.output


def test_samples_made_50_percent_slower_are_each_a_regression_and_fail_the_gate(
    dbs: dict[str, Path], tmp_path: Path
) -> None:
    plot = tmp_path / "ratios.png"
    res = _invoke("compare", str(dbs["a"]), str(dbs["slower"]), "--fail-above", "5%", "--plot", str(plot))
    assert res.exit_code == 1, res.output
    assert "4 point(s) matched: 4 slower, 0 faster, 0 no significant change" in res.output
    assert "4 point(s) regressed by more than 5%" in res.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = _invoke("compare", str(dbs["a"]), str(dbs["slower"]), "--format", "json")
    assert res.exit_code == 0, res.output  # no gate asked for
    points = json.loads(res.output)["points"]
    assert [p["change"] for p in points] == ["slower"] * 4
    for p in points:
        # The interval's width carries the machine's drift between trials (a shared host widens it); what the
        # verdict needs is that it holds the ratio and excludes 1.
        assert p["ratio"] == pytest.approx(1.5, abs=0.002) and 1.0 < p["ci_low"] < 1.5 < p["ci_high"]
    # the gate is about regressions: the faster direction passes it
    assert _invoke("compare", str(dbs["slower"]), str(dbs["a"]), "--fail-above", "5%").exit_code == 0
    csv = _invoke("compare", f"{dbs['a']}:1", str(dbs["slower"]), "--format", "csv").output.splitlines()
    assert csv[0].startswith("model_label,format,precision,runtime,threads,device,cluster,a_ms,b_ms,ratio,ci_low")
    assert len(csv) == 5


def test_bootstrap_ci_of_a_ratio_resamples_trials_then_samples() -> None:
    rng = np.random.default_rng(1)
    a = [rng.normal(10.0, 0.5, 3000) for _ in range(3)]
    b = [t * 1.5 for t in a]
    low, high = ratio_ci(a, b)
    assert low < 1.5 < high and high - low < 0.05
    # trials that disagree widen the interval: the drift between trials is part of the uncertainty
    drifting = [rng.normal(mu, 0.5, 3000) for mu in (9.0, 10.0, 11.0)]
    wide_low, wide_high = ratio_ci(a, drifting)
    assert wide_high - wide_low > 4 * (high - low) and wide_low < 1 < wide_high
    assert change_of(1.2, (1.1, 1.3), 0.05) is Change.SLOWER
    assert change_of(1.2, (0.95, 1.3), 0.05) is Change.NONE  # the CI holds 1
    assert change_of(1.02, (1.01, 1.03), 0.05) is Change.NONE  # real but under the threshold
    assert change_of(0.8, None, 0.05) is Change.FASTER  # summary-only: the ratio alone


def test_sides_and_percentages_name_what_is_wrong(dbs: dict[str, Path], tmp_path: Path) -> None:
    assert parse_fraction("5%") == pytest.approx(0.05) and parse_fraction("0.1") == 0.1
    with pytest.raises(CompareError, match=re.escape("'five' is not a percentage; write e.g. 5% or 0.05")):
        parse_fraction("five")
    side = parse_side(f"{dbs['a']}:1")
    assert (side.db, side.run_id) == (dbs["a"], 1)
    assert parse_side("1", dbs["a"]).run_id == 1
    with pytest.raises(CompareError, match=r"'nope.db': no results database at nope.db"):
        parse_side("nope.db")
    res = _invoke("compare", f"{dbs['a']}:7", str(dbs["b"]))
    assert res.exit_code == 2 and f"has no run 7; 'flopgap results list --db {dbs['a']}' lists them" in res.output
