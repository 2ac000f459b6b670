"""`flopgap predictor eval --random N` and `--models DIR` end to end: small random nets and model files measured on
the local device with a short protocol, predicted by a tiny stored predictor, baselines fitted on two zoo points."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from devices.vocabulary import Format, Precision, Runtime
from exporters.export import export
from harness.cli.main import app
from harness.predict.dataset import PredictContext, load_dataset
from harness.predict.extract import extract_kernels
from harness.predict.held_out import random_models
from harness.predict.predictor import KernelPredictor
from harness.predict.random_nets import TARGET, Size
from harness.sources import source_artifact
from harness.store import Store
from harness.zoo.counting import count
from harness.zoo.registry import resolve
from tests.stored_predictor import store_linear_predictor, store_measured

runner = CliRunner()
SHORT = ["--trials", "2", "--runs", "5", "--min-seconds", "0"]
ZOO = ((resolve("mobilenet_v1", alpha=0.25, resolution=128), 0.5), (resolve("mobilenet_v1", alpha=0.5), 2.0))


def _setup(db: Path) -> KernelPredictor:
    """A predictor fitted on the kernels of seed 99's small nets (1 µs per 10 kFLOP + 1 µs per kB: never the nets
    the tests evaluate), and two zoo models measured at 0.5 and 2 ms."""
    arts = [source_artifact(ref, Format.ONNX, Precision.FP32) for ref in random_models(2, 99, Size.SMALL)]
    kernels = [k for art in arts for k in extract_kernels(art.path, Runtime.ONNXRUNTIME)]
    measured = []
    for spec, ms in ZOO:
        art = export(spec, Format.ONNX, Precision.FP32)
        macs = count(spec.build(), spec.example_input()).macs
        measured.append((art, ms, {"macs": macs, "params_count": None, "family": spec.family, "label": spec.label}))
    with Store(db) as store:
        predictor = store_linear_predictor(store, kernels)
        store_measured(store, "zoo", measured)
    return predictor


def _row(output: str, needle: str) -> list[str]:
    line = next(line for line in output.splitlines() if needle in line and "│" in line)  # the table's, not progress
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_eval_random_measures_predicts_and_scores_nets_no_build_ever_trains_on(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    predictor = _setup(db)
    args = ["predictor", "eval", "--random", "3", "--seed", "5", "--net-size", "small", *SHORT, "--per-model",
            "--db", str(db)]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 random small nets of seed 5, none in predictor 1's training data" in out
    assert "baselines fitted on the context's 2 zoo models" in out and "noise floor: median 95% CI" in out
    with Store(db, readonly=True) as store:
        points = store.points_frame()
        random = points[points["model_label"].str.startswith(TARGET)]
        assert len(random) == 3 and set(random["status"]) == {"done"}
        assert (random["n_trials"] == 2).all() and (random["median_ms"] > 0).all()
        zoo = points[~points["model_label"].str.startswith(TARGET)]
        # a later build's dataset holds the zoo models only: the random nets never reach training
        assert {m.label for m in load_dataset(store, PredictContext("local", Runtime.ONNXRUNTIME)).models} == set(
            zoo["model_label"]
        )
        paths = store.artifacts_frame().set_index("sha256")["path"]
        for r in random.itertuples():
            cells = _row(out, re.sub(r"\(.*", "", str(r.model_label)))
            predicted = predictor.predict(extract_kernels(Path(paths[r.artifact_sha]), Runtime.ONNXRUNTIME)).total_ms
            # judged against the p10 of the pooled samples, what a predictor is fitted to, never the median
            assert r.p10_ms < r.median_ms
            assert cells[1] == "random" and cells[2] == f"{r.p10_ms:.3f}" and cells[5] == f"{predicted:.3f}"
            assert cells[6] == f"{predicted / r.p10_ms - 1:+.1%}"
            # MACs-linear through two zoo points is the line through them, whatever the weighting
            (m0, m1), (t0, t1) = zoo["macs"], zoo["median_ms"]
            b = (t1 - t0) / (m1 - m0)
            a = t0 - b * m0
            assert cells[7] == f"{(a + b * r.macs) / r.p10_ms - 1:+.1%}"
        trials = len(store.trials_frame())
    again = runner.invoke(app, args, env={"COLUMNS": "250"})  # resumes: nothing measured twice
    assert again.exit_code == 0, again.output
    with Store(db, readonly=True) as store:
        assert len(store.trials_frame()) == trials


def test_eval_models_predicts_a_folder_of_files_and_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _setup(db)
    mine = tmp_path / "mine"
    mine.mkdir()
    for i, ref in enumerate(random_models(2, 7, Size.SMALL)):
        (mine / f"net{i}.onnx").write_bytes(source_artifact(ref, Format.ONNX, Precision.FP32).path.read_bytes())
    (mine / "notes.txt").write_text("not a model")
    result = runner.invoke(app, ["predictor", "eval", "--models", str(mine), *SHORT, "--per-model", "--db", str(db)],
                           env={"COLUMNS": "250"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"2 model files of {mine}" in result.output
    for name in ("net0.onnx", "net1.onnx"):
        cells = _row(result.output, name)
        assert cells[1] == "file" and float(cells[2]) > 0 and float(cells[5]) > 0
    assert sorted(p.name for p in mine.iterdir()) == ["net0.onnx", "net1.onnx", "notes.txt"]  # nothing written
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad, says in (
        (["--models", str(empty)], "nothing onnxruntime runs (no .onnx or .tflite file)"),
        (["--models", str(tmp_path / "nowhere")], "no such directory"),
        (["--models", str(mine), "--random", "2"], "give --random N or --models DIR, not both"),
        (["--random", "2", "--threads", "3"], "no predictor for local onnxruntime t3 fp32"),
    ):
        failed = runner.invoke(app, ["predictor", "eval", *bad, "--db", str(db)])
        assert failed.exit_code == 2 and says in failed.output and "Traceback" not in failed.output, failed.output
