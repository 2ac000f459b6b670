"""Device facts are a typed DeviceFacts, parsed once where a transport, a backend or the store reads them; stored
trial documents are read back through TrialResult (pinned CPUs, the cooldown that ran), never as raw dicts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from devices import runner
from devices.facts import DeviceFacts, core_count, cpu_name, parse_facts
from devices.result import TrialResult
from devices.vocabulary import Runtime
from harness.analysis.compare import _cluster
from harness.measure.cooldown import CooldownOutcome, hot_trials
from harness.measure.versions import point_versions
from harness.store import Store
from harness.store.devices import stored_facts
from harness.store.identity import describe, fingerprint, full_identity

REPO = Path(__file__).resolve().parents[1]


def test_this_machines_runner_facts_parse_to_themselves() -> None:
    raw = json.loads(json.dumps(runner.device_facts()))  # as --facts prints them
    facts = parse_facts(raw)
    assert facts == raw  # every fact the runner reports has the declared type: none is dropped
    assert facts.get("cpu_count") == runner.os.cpu_count() and facts.get("runner_version") == runner.RUNNER_VERSION


@pytest.mark.parametrize("db", ["results/sample.db", "tests/data/sample_v1.db"])
def test_every_stored_facts_document_of_the_shipped_databases_parses_to_itself(db: str) -> None:
    with sqlite3.connect(f"file:{REPO / db}?mode=ro", uri=True) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(devices)")}
        fp_column = "fingerprint" if "fingerprint" in columns else "NULL"  # a v1 store predates fingerprints
        rows = conn.execute(f"SELECT facts_json, {fp_column} FROM devices").fetchall()
    assert rows, f"{db} holds no devices"
    for text, fp in rows:
        facts = stored_facts(text)
        assert facts == json.loads(text)
        assert fp is None or fingerprint(facts) == fp  # the same machine it was


def test_a_fact_of_the_wrong_type_is_dropped_and_an_undeclared_one_kept() -> None:
    facts = parse_facts({"cpu_count": "eight", "cpu_model": "Cortex-A76", "cpu_caches": None, "vendor_note": [1]})
    assert facts == {"cpu_model": "Cortex-A76", "cpu_caches": None, "vendor_note": [1]}
    assert stored_facts("not json") == stored_facts("[1, 2]") == stored_facts(None) == {}


def test_a_phone_and_a_bare_board_are_named_by_what_their_facts_hold() -> None:
    phone: DeviceFacts = {"model": "Pixel 7", "soc": "Tensor G2", "cores": 8, "serial": "28121FDH2000ZQ"}
    assert cpu_name(phone) == "Pixel 7" and core_count(phone) == 8
    assert full_identity(phone, "abc123") == "Pixel 7, 8 CPUs; serial 28121FDH2000ZQ, fingerprint abc123"
    board: DeviceFacts = {"machine": "aarch64", "cpu_count": 4, "kernel": "6.6.31", "system": "Linux"}
    assert describe(board) == "aarch64, 4 cores"  # was "unknown CPU": the shell's uname -m names it
    assert full_identity(board) == "aarch64, 4 CPUs, Linux 6.6.31"
    x86: DeviceFacts = {"cpu_model": "AMD EPYC", "cpu_vendor": "AuthenticAMD", "cpu_family": "25",
                        "cpu_model_number": "17", "cpu_stepping": "1", "cpu_count": 2, "cpus_usable": 1}  # fmt: skip
    assert describe(x86) == "AMD EPYC (family 25 model 17 stepping 1), 2 cores"
    assert full_identity(x86) == "AMD EPYC (AuthenticAMD family 25 model 17 stepping 1), 1 CPUs"


def test_the_store_parses_raw_facts_before_it_fingerprints_and_keeps_them(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as store:
        record = store.record_device("board", "ssh", {"machine_id_digest": "9f86d081884c7d65", "cpu_count": "4"})
        row = store.devices_frame().set_index("name").loc[record.name]
    assert json.loads(row["facts_json"]) == {"machine_id_digest": "9f86d081884c7d65"}  # "4" is not a core count
    assert record.fingerprint == fingerprint({"machine_id_digest": "9f86d081884c7d65"})


def test_versions_come_from_the_typed_runtime_and_binary_facts() -> None:
    agent: DeviceFacts = {"runner_version": "7", "runtimes": {"onnxruntime": "1.22.0", "ai_edge_litert": None}}
    assert point_versions(Runtime.ONNXRUNTIME, agent) == point_versions(Runtime.ONNXRUNTIME, parse_facts(agent))
    assert (point_versions(Runtime.ONNXRUNTIME, agent).runtime_version, point_versions(Runtime.LITERT, agent)
            .runtime_version) == ("1.22.0", None)  # fmt: skip
    binary: DeviceFacts = {"runner": "benchmark_model", "runner_sha256": "0123456789abcdef0123"}
    assert point_versions(Runtime.LITERT, binary).runner_version == "benchmark_model@0123456789ab"


def _stored(result: TrialResult) -> str:
    return json.dumps(result.record())


def test_compare_reads_the_pinned_cpus_through_the_typed_trial() -> None:
    asked = TrialResult.from_json({"runtime": "onnxruntime", "affinity": [0, 1, 2, 3, 4, 5, 6, 7],
                                   "protocol": {"affinity": [7, 6, 5, 4], "warmup_runs": 10}})  # fmt: skip
    assert asked.pinned == (7, 6, 5, 4) and _cluster(_stored(asked)) == "4,5,6,7"
    free = TrialResult.from_json({"runtime": "onnxruntime", "affinity": [0, 1], "protocol": {"affinity": None}})
    assert free.pinned is None and _cluster(_stored(free)) == "any"  # its own affinity is every CPU it could use
    tool = TrialResult.from_json({"runtime": "litert", "affinity": [4, 5], "tool": {"name": "benchmark_model"}})
    assert _cluster(_stored(tool)) == "4,5" and _cluster(None) == "any"


def test_a_cooldown_kept_with_a_trial_reads_back_typed_and_flags_the_hot_one() -> None:
    trial = TrialResult("onnxruntime", samples_ns=(1_000_000,))
    hot = CooldownOutcome(90.0, True, {"cpu-thermal": 3.25}).attach(trial)
    cool = CooldownOutcome(4.5, False).attach(trial)
    read = {i: TrialResult.from_json(json.loads(_stored(t))) for i, t in enumerate((cool, hot, trial))}
    assert CooldownOutcome.of(read[0]) == CooldownOutcome(4.5, False, {})
    assert CooldownOutcome.of(read[2]) is None
    assert hot_trials(read) == [
        "trial 2 ran before cooling down (cpu-thermal +3.2 °C over the sweep-start temperature after 90s)"
    ]
