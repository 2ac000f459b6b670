"""Every notebook in notebooks/ runs top to bottom on a real results database without a cell erroring.

The database is ``results/sample.db`` when the repository has one (a real sweep), else one written here from
:mod:`tests.analysis_data` with a real ONNX file behind its profiled ShuffleNetV2 artifact, so the graph account,
the op shares and the roofline are computed as they would be on a sweep's artifacts. Either way the notebooks
read it through ``$FLOPGAP_DB``, exactly as a user points them at their own database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbclient
import nbformat
import numpy as np
import onnx
import pytest
from matplotlib.figure import Figure
from onnx import TensorProto, helper, numpy_helper

from devices.vocabulary import Format
from harness.analysis import HOW_TO, Context
from harness.report import plots
from harness.report.notebook import Notebook, find_database
from harness.store import Store
from tests import analysis_data as data

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SAMPLE_DB = ROOT / "results" / "sample.db"
TIMEOUT_S = 60  # per cell; a whole notebook runs in a few seconds


def _fixture_graph(path: Path) -> None:
    """A small ONNX graph whose node names are those of the fixture's ShuffleNetV2 op profile: a dense 3×3 stem,
    a pointwise conv, ReLU, a depthwise conv and a channel shuffle (reshape, transpose, reshape)."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w_stem"),
        numpy_helper.from_array(rng.standard_normal((8, 8, 1, 1)).astype(np.float32), "w_pw"),
        numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w_dw"),
        numpy_helper.from_array(np.array([1, 2, 4, 16, 16], np.int64), "split_shape"),
        numpy_helper.from_array(np.array([1, 8, 16, 16], np.int64), "merge_shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w_stem"], ["stem"], name="/stem/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["stem", "w_pw"], ["pw"], name="/s2/pw/Conv"),
        helper.make_node("Relu", ["pw"], ["act"], name="/s2/Relu"),
        helper.make_node("Conv", ["act", "w_dw"], ["dw"], name="/s2/dw/Conv", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["dw", "split_shape"], ["split"], name="/s2/shuffle/Reshape"),
        helper.make_node("Transpose", ["split"], ["swapped"], name="/s2/shuffle/Transpose", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["swapped", "merge_shape"], ["y"], name="/s2/shuffle/Reshape_1"),
    ]
    graph = helper.make_graph(nodes, "fixture_shufflenet", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _fixture_db(tmp: Path) -> Path:
    db = tmp / "fixture.db"
    with Store(db) as store:
        data.populate(store, tmp)
    shufflenet = data.artifact(tmp, "shufflenet_v2", (("scale", 0.5),), Format.ONNX, (1, 3, 224, 224))
    _fixture_graph(shufflenet.path)
    return db


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("notebook-db")
    if SAMPLE_DB.is_file():  # a copy: even a read-only SQLite reader leaves -wal/-shm files beside a WAL database
        return Path(shutil.copy(SAMPLE_DB, d / SAMPLE_DB.name))
    return _fixture_db(d)


def test_the_notebooks_are_there() -> None:
    names = {p.name for p in NOTEBOOKS}
    expected = {"latency_vs_flops.ipynb", "op_breakdown.ipynb", "roofline.ipynb", "guidelines.ipynb", "runtimes.ipynb"}
    assert expected <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None and cell.outputs == [], f"{path.name}: clear the outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOPGAP_DB", str(database))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=TIMEOUT_S, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell errors
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert images, f"{path.name} drew no figure from {database}"


def test_find_database_from_the_notebooks_directory_or_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOPGAP_DB", raising=False)
    sample = tmp_path / "results" / "sample.db"
    sample.parent.mkdir()
    sample.write_bytes(b"")
    (tmp_path / "notebooks").mkdir()
    assert find_database(cwd=tmp_path / "notebooks") == sample  # Jupyter starts in notebooks/
    assert find_database(cwd=tmp_path) == sample  # or from the repository root
    mine = tmp_path / "mine.db"
    mine.write_bytes(b"")
    monkeypatch.setenv("FLOPGAP_DB", str(mine))
    assert find_database(cwd=tmp_path / "notebooks") == mine
    monkeypatch.setenv("FLOPGAP_DB", "mine.db")  # relative: tried from the working directory and its parent
    assert find_database(cwd=tmp_path / "notebooks") == mine
    assert find_database(tmp_path / "results" / "sample.db") == sample  # an explicit path wins
    with pytest.raises(
        FileNotFoundError, match=r"no results database at .*/notebooks/other\.db or .*/other\.db: set FLOPGAP_DB"
    ):
        find_database("other.db", cwd=tmp_path / "notebooks")


def test_notebook_shows_the_chosen_contexts_and_says_what_is_missing(tmp_path: Path) -> None:
    db = _fixture_db(tmp_path)
    nb = Notebook.open(db, show=False)
    local = Context("local", "onnxruntime", "fp32", 4)
    pi4 = Context("pi4", "litert", "fp32", 1)
    assert nb.contexts == [local, pi4]
    assert nb.contexts_in(nb.results.points) == [local, pi4]
    nb.contexts = [pi4]  # narrowed by the user
    assert nb.contexts_in(nb.results.points) == [pi4]
    assert nb.contexts_in(nb.results.points.iloc[0:0]) == []
    drawn = nb.figure(plots.latency_vs_macs, pi4)
    assert isinstance(drawn, Figure) and "device pi4 · litert 2.16.1" in drawn.get_suptitle()
    said = nb.figure(plots.guidelines, pi4)  # no guideline blocks were measured on the pi4
    assert said == f"{HOW_TO['guidelines']} (nothing for {pi4})"
