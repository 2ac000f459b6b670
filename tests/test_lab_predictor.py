"""`flopgap predictor build --device a,b,c --lab`: each device's build on a real Ray cluster (three nodes on
127.0.0.1), its probes measured by its own actor on its own node, the builds in parallel, stored by the driver.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from devices.inventory import parse_inventory
from devices.vocabulary import Precision, Runtime
from harness.cli.main import app
from harness.cli.predictor_builds import DEVICES_FILE_MIXUP, BuildEvents, run_builds
from harness.cli.sweep import make_exporter, open_named_devices
from harness.lab.membership import device_actor, join_devices, leave
from harness.lab.ray_session import connect
from harness.measure.spec import Protocol
from harness.predict.adapt import AdaptPlan
from harness.predict.build import BuildPlan
from harness.predict.dataset import PredictContext
from harness.store import Store
from harness.zoo import resolve
from tests.environment import Need, require_module
from tests.lab_cluster import LabCluster, lab_cluster

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's loopback mode, as in tests/test_lab.py
NO_RAY = "no Ray: pip install -c constraints.txt -e '.[lab]'"
require_module(Need.RAY, None if importlib.util.find_spec("ray") else NO_RAY)

FAST = Protocol(trials=1, warmup_runs=2, warmup_seconds=0.0, runs=5, min_seconds=0.01, parity=False)
TINY = resolve("mobilenet_v1", alpha=0.25, resolution=128)
PLACED = {"dev-b": "host-b", "dev-c": "host-c"}


@pytest.fixture(scope="module")
def lab() -> Iterator[LabCluster]:
    with lab_cluster(["host-a", "host-b", "host-c"]) as cluster:
        yield cluster


def test_devices_on_two_nodes_build_in_parallel_on_their_own_actors_one_failing_alone_and_from_adapts(
    lab: LabCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOPGAP_CACHE_DIR", str(tmp_path / "cache"))
    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    toml = "".join(f'[devices.{n}]\ntransport = "local"\n' for n in [*PLACED, "dev-x"])
    cfg = parse_inventory(toml, base=tmp_path)
    for name, host in [*PLACED.items(), ("dev-x", "host-a")]:
        join_devices(ray, [cfg[name]], host, lab.node_id(host), tmp_path / host)
    db = tmp_path / "lab.db"
    out = io.StringIO()
    events = BuildEvents()

    def plan_for(name: str) -> BuildPlan:
        # dev-x asks for what a build refuses (int8): its build alone fails, in one line
        precision = Precision.INT8 if name == "dev-x" else Precision.FP32
        ctx = PredictContext(name, Runtime.ONNXRUNTIME, 1, precision)
        return BuildPlan(ctx, budget_s=3600, seed=0, models=(), train_nets=0, probe_protocol=FAST, max_probes=2)

    try:
        devices = open_named_devices([*PLACED, "dev-x"], None, lab.address)
        export = make_exporter(tmp_path / "cache", False)
        console = Console(file=out, width=200)
        builds = run_builds(devices, plan_for, db, export, console, parallel=True, events=events)
        by_name = {b.device: b for b in builds}
        assert by_name["dev-x"].result is None and "precision int8 is not supported" in str(by_name["dev-x"].error)
        # Both predictors are in the driver's database under their device names, each from its 2 probes.
        with Store(db, readonly=True) as store:
            frame = store.predictors_frame()
        assert sorted(frame["device"]) == sorted(PLACED)
        for name in PLACED:
            result = by_name[name].result
            assert result is not None and result.context.device == name and result.probes_total == 2
        # Every probe trial ran on its device's actor, on that device's own node (the driver ran none).
        for name, host in PLACED.items():
            actor = device_actor(ray, name)
            assert ray.get(actor.node_id.remote()) == lab.node_id(host)
            assert ray.get(actor.status.remote()).trials_done >= 2
        assert ray.get(device_actor(ray, "dev-x").status.remote()).trials_done == 0
        # The builds overlapped: both had started before either was done (one after another, one is done first).
        first_done = next(i for i, (_, event) in enumerate(events.order) if event == "done")
        assert {d for d, event in events.order[:first_done] if event == "start"} >= set(PLACED)
        assert [e for e in events.order if e[1] == "probe"].count(("dev-b", "probe")) == 2
        # Progress lines carry the device's name; one summary line per device, the failure named.
        text = out.getvalue()
        assert re.search(r"^dev-b fitting the predictor$", text, re.M) and re.search(r"^dev-c fitting", text, re.M)
        for name in PLACED:
            pid = by_name[name].result.predictor_id  # type: ignore[union-attr]
            assert re.search(rf"^{name}: predictor {pid}, 2 probes \(2 measured now\), 0 zoo models", text, re.M)
        assert re.search(r"^dev-x: failed: predictor build: precision int8", text, re.M)
        assert "2 of 3 predictors built" in text and "failed: dev-x" in text
        # --from through the lab: dev-b's predictor adapted to dev-c at 2 threads, its probes on dev-c's actor.
        source = by_name["dev-b"].result.predictor_id  # type: ignore[union-attr]
        before = ray.get(device_actor(ray, "dev-c").status.remote()).trials_done
        ctx = PredictContext("dev-c", Runtime.ONNXRUNTIME, 2)
        adapt = AdaptPlan(ctx, 3600, 0, models=(TINY,), probe_protocol=FAST, model_protocol=FAST, max_probes=2,
                          source_id=source)  # fmt: skip
        (adapted,) = run_builds({"dev-c": devices["dev-c"]}, lambda _: adapt, db, export, console, parallel=True)
        assert adapted.result is not None and adapted.result.predictor.summary["adapted_from"] == source
        assert adapted.result.models == 1
        assert ray.get(device_actor(ray, "dev-c").status.remote()).trials_done > before
        with Store(db, readonly=True) as store:
            assert store.latest_predictor("dev-c", "onnxruntime", 2, "fp32") is not None
        # The command line: $FLOPGAP_LAB names the lab; a device the lab lacks, or a refused build, is one line.
        env = {"FLOPGAP_LAB": lab.address, "COLUMNS": "200"}
        for args, said in (
            (["--device", "dev-b,nope"], "the lab has no device 'nope'"),
            (["--device", "dev-b", "--precision", "int8"], "precision int8 is not supported"),
        ):
            shown = CliRunner().invoke(app, ["predictor", "build", *args, "--db", str(db)], env=env)
            assert shown.exit_code == 2 and said in shown.output and "Traceback" not in shown.output, shown.output
    finally:
        leave(ray)


def test_devices_written_as_a_list_of_names_is_told_apart_from_the_inventory_file_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["predictor", "build", "--devices", "a,b,c", "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].endswith(DEVICES_FILE_MIXUP)
    assert "Traceback" not in result.output and not (tmp_path / "r.db").exists()


def test_several_devices_without_a_lab_build_one_after_another_and_a_failure_exits_non_zero(tmp_path: Path) -> None:
    inventory = tmp_path / "devices.toml"
    inventory.write_text('[devices.local2]\ntransport = "local"\n')
    db = tmp_path / "r.db"
    args = ["predictor", "build", "--device", "local,local2", "--precision", "int8", "--devices", str(inventory),
            "--db", str(db), "--budget", "1m"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 3, result.output
    for name in ("local", "local2"):
        assert re.search(rf"^{name}: failed: predictor build: precision int8 is not supported", result.output, re.M)
    assert "0 of 2 predictors built" in result.output and "failed: local, local2" in result.output


def test_a_device_whose_host_died_fails_only_its_own_build_naming_the_host_and_stores_nothing_for_it(
    lab: LabCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOPGAP_CACHE_DIR", str(tmp_path / "cache"))
    ray = connect(lab.address, _node_ip_address="127.0.0.1")
    cfg = parse_inventory('[devices.dev-b]\ntransport = "local"\n[devices.dev-d]\ntransport = "local"\n', base=tmp_path)
    join_devices(ray, [cfg["dev-b"]], "host-b", lab.node_id("host-b"), tmp_path / "host-b")
    join_devices(ray, [cfg["dev-d"]], "host-d", lab.add_host("host-d"), tmp_path / "host-d")
    db = tmp_path / "lab.db"
    out = io.StringIO()

    def plan_for(name: str) -> BuildPlan:
        ctx = PredictContext(name, Runtime.ONNXRUNTIME)
        return BuildPlan(ctx, budget_s=3600, seed=0, models=(), train_nets=0, probe_protocol=FAST, max_probes=2)

    try:
        devices = open_named_devices(["dev-b", "dev-d"], None, lab.address)
        # Killed after the driver found the device. Its worker may still answer the build's first call (facts) or
        # not: either way the probes meet a dead host, and the build must fail rather than store a predictor of none.
        lab.kill_host("host-d")
        export = make_exporter(tmp_path / "cache", False)
        builds = run_builds(devices, plan_for, db, export, Console(file=out, width=200), parallel=True)
        by_name = {b.device: b for b in builds}
        assert by_name["dev-b"].result is not None and by_name["dev-b"].result.probes_total == 2
        assert by_name["dev-d"].result is None and "host 'host-d'" in str(by_name["dev-d"].error)
        with Store(db, readonly=True) as store:
            assert list(store.predictors_frame()["device"]) == ["dev-b"]
        assert re.search(r"^dev-d: failed: .*host 'host-d'", out.getvalue(), re.M), out.getvalue()
    finally:
        leave(ray)
