"""The report's predictor section on a database written through the store's own API: probes, zoo models of three
families with their kernels, a stored predictor. Latencies follow a known law, so the predictor must get them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devices.result import TrialResult
from devices.vocabulary import Precision, Runtime
from exporters.artifact import Artifact
from harness import analysis
from harness.measure.stats import combine_trials
from harness.predict.dataset import PredictContext, load_dataset, predictor_contexts
from harness.predict.evaluate import leave_one_family_out
from harness.predict.extract import extract_kernels
from harness.predict.kernels import Kernel
from harness.predict.predictor import fit_predictor
from harness.predict.probes import FAMILY, probe_artifact, probe_label
from harness.predict.space import sample
from harness.report import html as report
from harness.store import Store

CTX = PredictContext("local", Runtime.LITERT)


def law_us(kernel: Kernel) -> float:
    return 3.0 + kernel.flops / 40e3 + kernel.bytes_moved / 15e3


def _point(store: Store, run: int, art: Artifact, median_us: float, runtime_version: str | None = None) -> int:
    pid = store.ensure_point(run, art.sha256, "local", "litert", 1, {"xnnpack": True}, runtime_version)
    samples = np.full(10, int(median_us * 1e3), dtype=np.int64)
    store.add_trial(pid, 0, TrialResult("litert", samples_ns=tuple(samples.tolist())), run_id=run)
    store.complete_point(pid, combine_trials([samples]))
    return pid


def populate(store: Store, cache: Path, runtime_version: str | None = None) -> list[tuple[Artifact, float]]:
    """Probes, three families of models and a predictor; returns the models' artifacts and medians (µs)."""
    run = store.start_run("fixture", "")
    store.upsert_device("local", "local", {})
    configs = sample(np.random.default_rng(11), Runtime.LITERT, 160)
    kernels: list[Kernel] = []
    for cfg in configs:
        art = probe_artifact(cfg, Runtime.LITERT, cache)
        store.upsert_artifact(art, macs=cfg.macs, params_count=None, family=FAMILY, label=probe_label(cfg))
        (kernel,) = extract_kernels(art.path, Runtime.LITERT)
        store.put_kernels(art.sha256, "litert", [kernel.to_json()])
        pid = _point(store, run, art, law_us(kernel), runtime_version)
        store.mark_kernel_sample(pid, cfg.type.value, cfg.to_json(), "space", 0)
        kernels.append(kernel)
    # Three families of "models", each a run of probe kernels (disjoint slices) timed by the same law.
    models = []
    for f, family in enumerate(["alpha", "beta", "gamma"]):
        for j in range(3):
            own = kernels[40 * f + 8 * j : 40 * f + 8 * j + 12]
            art = Artifact(cache / f"{family}{j}.tflite", Runtime.LITERT.artifact_format, Precision.FP32,
                           f"{family}{j}".ljust(64, "0"), f"{family}_net", (("width", j),), (1, 8, 8, 3), "NHWC", {},
                           None, None, 1)  # fmt: skip
            store.upsert_artifact(art, macs=sum(k.flops for k in own) // 2, params_count=None, family=family,
                                  label=f"{family}_net[width={j}]")  # fmt: skip
            store.put_kernels(art.sha256, "litert", [k.to_json() for k in own])
            _point(store, run, art, sum(law_us(k) for k in own), runtime_version)
            models.append((art, sum(law_us(k) for k in own)))
    dataset = load_dataset(store, CTX)
    predictor = fit_predictor(CTX.to_json(), dataset.rows, [(m.kernels, m.median_ms * 1e3) for m in dataset.models])
    store.add_predictor("local", "litert", 1, "fp32", "lightgbm", predictor.versions, predictor.to_json(), {})
    return models


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predictor-report")
    path = root / "r.db"
    with Store(path) as store:
        populate(store, root / "cache")
    return path


def test_the_dataset_reads_probes_and_models_back(db: Path) -> None:
    with Store(db, readonly=True) as store:
        assert predictor_contexts(store) == [CTX]
        dataset = load_dataset(store, CTX)
    assert len(dataset.rows) == 160 and {r.source for r in dataset.rows} == {"space"}
    assert dataset.families == ["alpha", "beta", "gamma"] and all(len(m.kernels) == 12 for m in dataset.models)
    evaluation = leave_one_family_out(dataset)
    errors = [abs(r.error("predictor") or 1.0) for r in evaluation.results]
    assert np.median(errors) < 0.10  # a family never seen, predicted from probes within 10% (the law is learnable)


def test_the_report_has_a_predictor_section_per_context(db: Path, tmp_path: Path) -> None:
    written = report.render(analysis.load(db), tmp_path / "out")
    page = written.html_path.read_text(encoding="utf-8")
    assert ">Latency predictor: held-out families</h2>" in page
    assert "local litert t1 fp32: 9 zoo models, 160 measured kernels" in page
    names = {p.name for p in written.figures}
    assert {"predictor-local-litert-t1-fp32.png", "kernel-error-local-litert-t1-fp32.png"} <= names
    assert "<td>overall</td>" in page and "predictor ±10%" in page


def test_the_notebook_shows_the_predictor_next_to_the_baselines(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbclient
    import nbformat

    path = Path(__file__).resolve().parents[1] / "notebooks" / "predictor.ipynb"
    monkeypatch.setenv("FLOPGAP_DB", str(db))
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    text = " ".join(str(out.get("data", {}).get("text/markdown", "")) for out in outputs)
    assert len(images) == 2  # predicted vs measured, per-kernel-type error
    assert "predictors for: **local litert t1 fp32**" in text


def test_eval_takes_only_the_points_of_the_runtime_version_the_device_runs_now(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli.main import app
    from harness.measure.versions import PointVersions
    from harness.predict.dataset import latest_versions

    db = tmp_path / "r.db"
    with Store(db) as store:
        models = populate(store, tmp_path / "cache", runtime_version="2.2.0")
        # After an upgrade every model runs 3x slower: measured again, and the old medians must not be mixed in.
        run = store.start_run("after the upgrade", "")
        for art, median_us in models:
            _point(store, run, art, 3 * median_us, "2.3.0")
        assert latest_versions(store, CTX) == PointVersions("2.3.0", None)
        assert len(load_dataset(store, CTX).models) == 18  # both versions, unfiltered
        now = load_dataset(store, CTX, latest_versions(store, CTX))
    assert sorted(m.median_ms for m in now.models) == pytest.approx(sorted(3 * us / 1e3 for _, us in models))
    result = CliRunner().invoke(app, ["predictor", "eval", "--runtime", "litert", "--db", str(db)],
                                env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "9 zoo models and 0 training nets measured with litert 2.3.0" in result.output
