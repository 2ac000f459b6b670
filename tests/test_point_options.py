"""A point's options are a typed PointOptions: written by the sweep, stored as JSON, parsed once when read back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from devices.vocabulary import PointOptions, Runtime, parse_point_options
from harness.measure.recording import ort_key
from harness.measure.spec import Protocol
from harness.store.frames import _cluster
from harness.store.keys import canonical_json

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("db", ["results/sample.db", "tests/data/sample_v1.db"])
def test_every_stored_options_document_of_the_shipped_databases_parses_to_what_it_holds(db: str) -> None:
    with sqlite3.connect(f"file:{REPO / db}?mode=ro", uri=True) as conn:
        stored = [r[0] for r in conn.execute("SELECT options_json FROM points")]
    assert stored, f"{db} holds no points"
    assert {canonical_json(parse_point_options(text)) for text in stored} == {"{}", '{"xnnpack":true}'}
    assert all(parse_point_options(text) == json.loads(text) for text in stored)


def test_options_written_by_a_placed_onnx_point_read_back_unchanged() -> None:
    protocol = Protocol(ort_allow_spinning=False, ort_execution_mode="parallel")
    written: PointOptions = Runtime.ONNXRUNTIME.options | {"cluster": "big", "cpus": [4, 5, 6, 7]} | ort_key(protocol)
    assert written == {"cluster": "big", "cpus": [4, 5, 6, 7], "ort_allow_spinning": False,
                       "ort_execution_mode": "parallel"}  # fmt: skip
    assert parse_point_options(canonical_json(written)) == written
    assert _cluster(canonical_json(written)) == "big (cpus 4-7)"
    assert Runtime.LITERT_BUILTIN.options == {"xnnpack": False} and ort_key(Protocol()) == {}


def test_what_is_not_an_options_document_parses_to_no_options() -> None:
    assert parse_point_options(None) == parse_point_options("null") == parse_point_options("[1]") == {}
    # A key of the wrong type, or one this version does not know, is left out rather than passed on untyped.
    assert parse_point_options('{"xnnpack": "yes", "cluster": 7, "future": 1, "cpus": [0, 1]}') == {"cpus": [0, 1]}
    assert parse_point_options('{"ort_graph_optimization": "max"}') == {}
