"""Cluster-aware placement: cluster names resolved to CPU ids from a device's facts (real captured cpuinfo dumps, the
fake adb phone's cpuinfo and cpufreq), in the inventory's ``affinity``, as a sweep dimension, and the one-line error
for a cluster a device does not have."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devices import runner
from devices.agent import AgentBackend
from devices.arm_cores import ClusterName
from devices.base import Device
from devices.inventory import InventoryError, open_device, parse_inventory
from devices.placement import ClusterMissing, Placement, cluster_name, device_clusters, place
from harness.analysis import load
from harness.cli.main import app
from harness.cli.sweep import open_devices
from harness.measure.placement import place_points
from harness.measure.spec import SpecError, expand_points, parse_spec
from harness.measure.sweep import run_sweep
from harness.measure.trial import trial_request
from harness.store import Store
from tests.adb_endpoint import AdbEndpoint, FakePhone
from tests.conftest import cached_exporter
from tests.sweep_files import sweep_spec
from tests.test_devices_sweep import _arm64_elf

DATA = Path(__file__).parent / "data"
X86 = {"cpu_model": "AMD EPYC 7B13", "cpu_count": 2, "machine": "x86_64"}


def _captured_facts(cpuinfo: str, cpufreq: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The runner's facts on a device whose /proc/cpuinfo and cpufreq are a real captured dump."""
    if cpufreq:
        for line in (DATA / cpufreq).read_text().split("\n"):
            if line.strip():
                cpu, khz = line.split()
                freq = tmp_path / cpu / "cpufreq"
                freq.mkdir(parents=True)
                (freq / "cpuinfo_max_freq").write_text(f"{khz}\n")
    monkeypatch.setattr(runner, "PROC_CPUINFO", str(DATA / cpuinfo))
    monkeypatch.setattr(runner, "SYS_CPU", str(tmp_path))
    return runner.device_facts()


def test_tensor_g3_clusters_resolve_to_their_cpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = _captured_facts("cpuinfo_pixel8_tensor_g3.txt", "cpufreq_max_pixel8_tensor_g3.txt", tmp_path, monkeypatch)
    assert place("pixel8", facts, "little") == Placement(ClusterName.LITTLE, (0, 1, 2, 3))
    assert place("pixel8", facts, "big") == Placement(ClusterName.BIG, (4, 5, 6, 7))
    assert place("pixel8", facts, "prime") == Placement(ClusterName.PRIME, (8,))
    assert place("pixel8", facts, "all").cpus == tuple(range(9))
    assert place("pixel8", facts, "big").label == "big (cpus 4-7)"


def test_snapdragon_845_has_no_prime_cluster_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = _captured_facts(
        "cpuinfo_galaxy_s9_us_sdm845.txt", "cpufreq_max_galaxy_s9_us_sdm845.txt", tmp_path, monkeypatch
    )
    assert place("s9", facts, "big").cpus == (4, 5, 6, 7) and place("s9", facts, "LITTLE").cpus == (0, 1, 2, 3)
    with pytest.raises(ClusterMissing) as err:
        place("s9", facts, "prime")
    assert str(err.value) == (
        "device 's9' has no 'prime' cluster (it has LITTLE: 4x Kryo 3xx Silver (cpus 0-3) @ 1.77 GHz; "
        "big: 4x Kryo 3xx Gold (cpus 4-7) @ 2.80 GHz); ask for one of: all, big, LITTLE, or give CPU ids in the "
        "inventory's 'affinity'"
    )


def test_raspberry_pi_4_cores_are_all_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = _captured_facts("cpuinfo_rpi4_aarch64.txt", None, tmp_path, monkeypatch)
    assert place("rpi4", facts, "all") == Placement(ClusterName.ALL, (0, 1, 2, 3))
    with pytest.raises(ClusterMissing, match=r"^device 'rpi4' has no 'big' cluster \(it has all: 4x Cortex-A72"):
        place("rpi4", facts, "big")


def test_a_device_without_arm_cores_has_one_cluster_of_every_cpu() -> None:
    assert [(c.name, c.cpus) for c in device_clusters(X86)] == [(ClusterName.ALL, (0, 1))]
    assert place("local", X86, "all").cpus == (0, 1)
    with pytest.raises(ClusterMissing) as err:
        place("local", X86, "little")
    message = str(err.value)
    assert message.startswith("device 'local' has no 'LITTLE' cluster (it has all: 2x AMD EPYC 7B13 (cpus 0-1))")
    assert "ask for one of: all," in message and "\n" not in message
    with pytest.raises(ClusterMissing, match="its facts name no CPUs"):
        place("ghost", {}, "all")


def test_cluster_names_are_read_in_any_case() -> None:
    assert [cluster_name(n) for n in ("big", "little", "LITTLE", "Prime", "all")] == [
        ClusterName.BIG, ClusterName.LITTLE, ClusterName.LITTLE, ClusterName.PRIME, ClusterName.ALL,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown cluster 'medium'; allowed: big, little, prime, all"):
        cluster_name("medium")


def test_inventory_affinity_takes_a_cluster_name() -> None:
    devices = parse_inventory(
        '[devices.rpi5]\ntransport = "ssh"\nhost = "h"\naffinity = "big"\n'
        '[devices.board]\ntransport = "ssh"\nhost = "h"\naffinity = "LITTLE"\n'
        '[devices.masked]\ntransport = "ssh"\nhost = "h"\naffinity = "f0"\n'
    )
    rpi, board, masked = devices["rpi5"], devices["board"], devices["masked"]
    assert (rpi.affinity, rpi.cluster, rpi.cpu_ids, rpi.affinity_mask) == (ClusterName.BIG, "big", None, None)
    assert board.cluster is ClusterName.LITTLE
    assert (masked.cluster, masked.cpu_ids, masked.affinity_mask) == (None, [4, 5, 6, 7], "f0")
    dev = open_device(rpi)
    assert isinstance(dev.backend, AgentBackend) and dev.backend.affinity is None  # placed from facts when used
    assert dev.cluster is ClusterName.BIG
    with pytest.raises(InventoryError) as err:
        parse_inventory('[devices.x]\ntransport = "ssh"\nhost = "h"\naffinity = "middle"\n')
    assert str(err.value) == (
        "<inventory>: device 'x': key 'affinity': 'middle' is not a hex CPU mask; give a list of CPU ids, a mask "
        "such as 'f0' or a cluster (big, little, prime, all)"
    )


def _spec(clusters: list[str], **protocol: Any) -> str:
    """A sweep of one conv1x1 on the phone 'pixel7' over ``clusters``."""
    return sweep_spec(
        "clusters", ["litert"], ["pixel7"], depthwise=False, clusters=clusters, trials=1, warmup_runs=1, runs=5,
        **protocol,
    )  # fmt: skip


def test_spec_clusters_are_a_dimension_validated_on_load() -> None:
    spec = parse_spec(_spec(["big", "little"]))
    assert spec.clusters == [ClusterName.BIG, ClusterName.LITTLE]
    points = expand_points(spec)
    assert [(p.cluster, p.cpus) for p in points] == [(ClusterName.BIG, None), (ClusterName.LITTLE, None)]
    assert points[0].label.endswith("t1 big @pixel7")
    bad = {
        ("big", "medium"): "key 'clusters': unknown cluster 'medium'; allowed: big, little, prime, all",
        (): "key 'clusters' is empty; give cluster names such as "
        '["big", "little"], or omit the key to leave points unpinned',
        ("big", "BIG"): "key 'clusters': a cluster is listed twice; list each once",
    }
    for clusters, message in bad.items():
        with pytest.raises(SpecError) as err:
            parse_spec(_spec(list(clusters)))
        assert str(err.value) == f"<spec>: {message}"
    with pytest.raises(SpecError, match="give either 'clusters' or 'affinity'"):
        parse_spec(_spec(["big"], affinity=[0]))


def test_placed_points_carry_cluster_and_cpus_in_their_key_and_pin_the_trial() -> None:
    spec = parse_spec(_spec(["big", "little"]))
    facts = {"pixel7": {"cpu_cores": [{"processor": i, "implementer": "0x41", "part": "0xd0b" if i > 1 else "0xd05"}
                                      for i in range(4)], "cpu_max_khz": None}}  # fmt: skip
    big, little = place_points(expand_points(spec), facts, {})
    assert big.options == {"xnnpack": True, "cluster": "big", "cpus": [2, 3]}
    assert little.options == {"xnnpack": True, "cluster": "LITTLE", "cpus": [0, 1]}
    assert trial_request(spec.protocol, 1, big.options).affinity == (2, 3)
    # An unreachable device (no facts) keeps the name; its points fail when measured, with the device's reason.
    assert [p.cpus for p in place_points(expand_points(spec), {"pixel7": {}}, {})] == [None, None]
    with pytest.raises(ClusterMissing, match=r"^device 'pixel7' has no 'prime' cluster"):
        place_points(expand_points(parse_spec(_spec(["prime"]))), facts, {})


# --- the fake phone: its cpuinfo and cpufreq over adb, then a sweep over its clusters ------------------------------


@pytest.fixture()
def phone_inventory(tmp_path: Path) -> Iterator[tuple[Path, FakePhone]]:
    phone = FakePhone(tmp_path / "phone")
    binary = _arm64_elf(tmp_path / "benchmark_model")
    common = 'transport = "adb"\nserial = "FAKE01"\nrunner = "benchmark_model"\n'
    with AdbEndpoint({"FAKE01": phone}) as endpoint:
        inventory = tmp_path / "devices.toml"
        inventory.write_text(
            f'[devices.pixel7]\n{common}server = "127.0.0.1:{endpoint.port}"\nbinary = "{binary}"\n'
            f'[devices.pixel7-big]\n{common}server = "127.0.0.1:{endpoint.port}"\nbinary = "{binary}"\n'
            'affinity = "big"\n'
        )
        yield inventory, phone


def test_devices_check_shows_the_phones_clusters_fake_phone_endpoint(
    phone_inventory: tuple[Path, FakePhone],
) -> None:
    inventory, phone = phone_inventory
    res = CliRunner().invoke(app, ["devices", "check", "pixel7-big", "--devices", str(inventory)],
                             env={"COLUMNS": "250"})  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "cat /proc/cpuinfo" in phone.commands
    assert (
        "LITTLE: 4x Cortex-A55 (cpus 0-3) @ 1.80 GHz; big: 2x Cortex-A78 (cpus 4-5) @ 2.35 GHz; "
        "prime: 2x Cortex-X1 (cpus 6-7) @ 2.85 GHz"
    ) in res.output
    assert "big (cpus 4-5)" in res.output


def test_sweep_over_the_phones_clusters_stores_each_fake_phone_endpoint(
    phone_inventory: tuple[Path, FakePhone], tmp_path: Path
) -> None:
    inventory, phone = phone_inventory
    text = _spec(["little", "big", "prime"])
    spec = parse_spec(text)
    devices: dict[str, Device] = open_devices(spec.devices, inventory)
    with Store(tmp_path / "r.db") as store:
        result = run_sweep(spec, text, store, devices, cached_exporter(tmp_path / "cache"))
        points = store.points_frame()
        trials = store.trials_frame()
    assert result.failed_points == 0 and list(points["status"]) == ["done"] * 3
    assert sorted(points["cluster"]) == ["LITTLE (cpus 0-3)", "big (cpus 4-5)", "prime (cpus 6-7)"]
    options = sorted(json.loads(o)["cpus"] for o in points["options"])
    assert options == [[0, 1, 2, 3], [4, 5], [6, 7]]
    masks = sorted(json.loads(doc)["affinity_mask"] for doc in trials["runner_json"])
    assert masks == ["30", "c0", "f"]
    assert sorted(c.split()[1] for c in phone.commands if c.startswith("taskset ")) == ["30", "c0", "f"]
    # the report's contexts: each cluster is fitted and captioned apart
    contexts = load(tmp_path / "r.db").contexts()
    assert sorted(c.device for c in contexts) == ["pixel7 (LITTLE)", "pixel7 (big)", "pixel7 (prime)"]


def test_inventory_cluster_pins_a_run_and_a_missing_one_is_one_line_fake_phone_endpoint(
    phone_inventory: tuple[Path, FakePhone], tmp_path: Path
) -> None:
    inventory, _phone = phone_inventory
    cache = tmp_path / "cache"
    args = ["run", "conv1x1", "-p", "cin=16", "-p", "cout=16", "-p", "h=8", "-p", "w=8", "--devices", str(inventory),
            "--db", str(tmp_path / "r.db"), "--cache-dir", str(cache), "--trials", "1"]  # fmt: skip
    res = CliRunner().invoke(app, [*args, "--device", "pixel7-big"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    with Store(tmp_path / "r.db") as store:
        point = store.points_frame().iloc[0]
        doc = json.loads(store.trials_frame().iloc[0]["runner_json"])
    assert json.loads(point["options"])["cluster"] == "big" and doc["affinity_mask"] == "30"
    assert "big (cpus 4-5)" in res.output  # the summary's caption
    local = tmp_path / "local.toml"
    local.write_text('[devices.local]\ntransport = "local"\naffinity = "prime"\n')
    args[args.index(str(inventory))] = str(local)
    res = CliRunner().invoke(app, [*args, "--device", "local", "--runtime", "onnxruntime"], env={"COLUMNS": "250"})
    assert res.exit_code == 2, res.output
    [line] = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: device 'local' has no 'prime' cluster (it has all: ")
    assert line.endswith("ask for one of: all, or give CPU ids in the inventory's 'affinity'")
