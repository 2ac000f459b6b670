"""ARM core names and clusters, on /proc/cpuinfo and cpufreq captured from real boards and phones (tests/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import arm_cores, runner
from devices.arm_cores import Cluster, Core, cluster_cpus, clusters, core_name, format_cpus, parse_cpuinfo

DATA = Path(__file__).parent / "data"


def _text(name: str) -> str:
    return (DATA / name).read_text()


def _max_khz(name: str) -> dict[int, int]:
    rows = (line.split() for line in _text(name).splitlines() if line.strip())
    return {int(cpu.removeprefix("cpu")): int(khz) for cpu, khz in rows}


def test_raspberry_pi_4_is_four_cortex_a72_in_one_cluster() -> None:
    cores = parse_cpuinfo(_text("cpuinfo_rpi4_aarch64.txt"))  # pasted with spaces, not tabs
    assert cores == [Core(cpu, 0x41, 0xD08, 0, 3) for cpu in range(4)]
    assert {core.name for core in cores} == {"Cortex-A72"}
    assert clusters(cores) == [Cluster("all", "Cortex-A72", (0, 1, 2, 3), None)]


def test_raspberry_pi_5_is_four_cortex_a76_r4p1() -> None:
    cores = parse_cpuinfo(_text("cpuinfo_rpi5.txt"))
    assert [(c.cpu, c.name, c.variant, c.revision) for c in cores] == [(i, "Cortex-A76", 4, 1) for i in range(4)]
    found = clusters(cores, {i: 2_400_000 for i in range(4)})
    assert found == [Cluster("all", "Cortex-A76", (0, 1, 2, 3), 2_400_000)]
    assert found[0].summary() == "all: 4x Cortex-A76 (cpus 0-3) @ 2.40 GHz"


def test_snapdragon_845_kryo_silver_is_little_and_gold_is_big() -> None:
    cores = parse_cpuinfo(_text("cpuinfo_galaxy_s9_us_sdm845.txt"))
    # The leading "Processor : AArch64 Processor rev 12 (aarch64)" is a model string, not a CPU.
    assert [c.cpu for c in cores] == list(range(8))
    assert [c.name for c in cores] == ["Kryo 3xx Silver"] * 4 + ["Kryo 3xx Gold"] * 4
    assert {(c.implementer, c.part) for c in cores} == {(0x51, 0x803), (0x51, 0x802)}
    expected = [
        Cluster("LITTLE", "Kryo 3xx Silver", (0, 1, 2, 3), 1_766_400),
        Cluster("big", "Kryo 3xx Gold", (4, 5, 6, 7), 2_803_200),
    ]
    assert clusters(cores, _max_khz("cpufreq_max_galaxy_s9_us_sdm845.txt")) == expected
    # Without cpufreq the parts' usual roles give the same split.
    assert [(c.name, c.cpus) for c in clusters(cores)] == [("LITTLE", (0, 1, 2, 3)), ("big", (4, 5, 6, 7))]


def test_tensor_g3_has_little_big_and_prime_clusters() -> None:
    cores = parse_cpuinfo(_text("cpuinfo_pixel8_tensor_g3.txt"))
    found = clusters(cores, _max_khz("cpufreq_max_pixel8_tensor_g3.txt"))
    assert found == [
        Cluster("LITTLE", "Cortex-A510", (0, 1, 2, 3), 1_704_000),
        Cluster("big", "Cortex-A715", (4, 5, 6, 7), 2_367_000),
        Cluster("prime", "Cortex-X3", (8,), 2_914_000),
    ]
    assert [c.summary() for c in found][2] == "prime: 1x Cortex-X3 (cpus 8) @ 2.91 GHz"
    assert cluster_cpus(found, "big") == [4, 5, 6, 7] and cluster_cpus(found, "medium") == []


def test_two_parts_at_one_frequency_are_two_big_clusters() -> None:
    # Snapdragon 8 Gen 2 style: A715 and A710 share the middle frequency; both are "big".
    cores = [Core(0, 0x41, 0xD46), Core(1, 0x41, 0xD4D), Core(2, 0x41, 0xD47), Core(3, 0x41, 0xD4E)]
    found = clusters(cores, {0: 2_016_000, 1: 2_803_200, 2: 2_803_200, 3: 3_187_200})
    assert [(c.name, c.core, c.cpus) for c in found] == [
        ("LITTLE", "Cortex-A510", (0,)),
        ("big", "Cortex-A715", (1,)),
        ("big", "Cortex-A710", (2,)),
        ("prime", "Cortex-X3", (3,)),
    ]
    assert cluster_cpus(found, "big") == [1, 2]


# Names and codes as Linux's arch/arm64/include/asm/cputype.h defines them (ARM_CPU_PART_*, QCOM_CPU_PART_*).
CPUTYPE_H = {
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD05): "Cortex-A55",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD09): "Cortex-A73",
    (0x41, 0xD0A): "Cortex-A75",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0D): "Cortex-A77",
    (0x41, 0xD41): "Cortex-A78",
    (0x41, 0xD46): "Cortex-A510",
    (0x41, 0xD47): "Cortex-A710",
    (0x41, 0xD4D): "Cortex-A715",
    (0x41, 0xD81): "Cortex-A720",
    (0x41, 0xD44): "Cortex-X1",
    (0x41, 0xD48): "Cortex-X2",
    (0x41, 0xD4E): "Cortex-X3",
    (0x41, 0xD82): "Cortex-X4",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD4F): "Neoverse-V2",
    (0x51, 0x800): "Kryo 2xx Gold",
    (0x51, 0x801): "Kryo 2xx Silver",
    (0x51, 0x804): "Kryo 4xx Gold",
    (0x51, 0x805): "Kryo 4xx Silver",
}


@pytest.mark.parametrize(("code", "name"), CPUTYPE_H.items(), ids=CPUTYPE_H.values())
def test_core_names_match_linux_cputype_h(code: tuple[int, int], name: str) -> None:
    assert core_name(*code) == name


def test_unknown_parts_are_named_by_their_codes() -> None:
    assert core_name(0x41, 0xD99) == "Arm part 0xd99"
    assert core_name(0x99, 0x1) == "implementer 0x99 part 0x001"
    assert core_name(None, None) == "unknown core"


def test_format_cpus() -> None:
    assert format_cpus([6, 0, 1, 2, 3]) == "0-3,6"
    assert format_cpus([5]) == "5" and format_cpus([]) == ""


@pytest.mark.parametrize(
    ("cpuinfo", "cpufreq", "expected"),
    [
        ("cpuinfo_pixel8_tensor_g3.txt", "cpufreq_max_pixel8_tensor_g3.txt", ["LITTLE", "big", "prime"]),
        ("cpuinfo_galaxy_s9_us_sdm845.txt", "cpufreq_max_galaxy_s9_us_sdm845.txt", ["LITTLE", "big"]),
    ],
)
def test_runner_facts_carry_what_the_parser_needs(
    cpuinfo: str, cpufreq: str, expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The on-device runner reads a captured cpuinfo and cpufreq tree; its facts give the same cores and clusters."""
    for cpu, khz in _max_khz(cpufreq).items():
        freq = tmp_path / f"cpu{cpu}" / "cpufreq"
        freq.mkdir(parents=True)
        (freq / "cpuinfo_max_freq").write_text(f"{khz}\n")
    monkeypatch.setattr(runner, "PROC_CPUINFO", str(DATA / cpuinfo))
    monkeypatch.setattr(runner, "SYS_CPU", str(tmp_path))
    facts = runner.device_facts()
    cores = arm_cores.cores_from_facts(facts)
    assert cores == parse_cpuinfo(_text(cpuinfo))
    assert arm_cores.max_khz_from_facts(facts) == _max_khz(cpufreq)
    found = clusters(cores, arm_cores.max_khz_from_facts(facts))
    assert [c.name for c in found] == expected
    assert found == clusters(parse_cpuinfo(_text(cpuinfo)), _max_khz(cpufreq))


def test_x86_facts_have_no_arm_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n")
    monkeypatch.setattr(runner, "PROC_CPUINFO", str(tmp_path / "cpuinfo"))
    assert "cpu_cores" not in runner._cpuinfo()
    assert arm_cores.cores_from_facts({"cpu_model": "AMD EPYC"}) == []


@pytest.mark.parametrize(("cpus", "expected"), [(1, ["all"]), (2, ["LITTLE", "big"]), (8, ["LITTLE", "big"])])
def test_the_emulated_boards_fake_topology_reads_as_big_little(
    cpus: int, expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What tests/arm64_board.py bind-mounts over /proc/cpuinfo and /sys/devices/system/cpu, read by the runner."""
    from tests.arm64_board import fake_cores, write_topology

    write_topology(tmp_path, fake_cores(cpus))
    monkeypatch.setattr(runner, "PROC_CPUINFO", str(tmp_path / "cpuinfo"))
    monkeypatch.setattr(runner, "SYS_CPU", str(tmp_path / "cpu"))
    facts = runner.device_facts()
    found = clusters(arm_cores.cores_from_facts(facts), arm_cores.max_khz_from_facts(facts))
    assert [c.name for c in found] == expected
    assert found[-1] == Cluster(expected[-1], "Cortex-A76", tuple(range(cpus // 2, cpus)), 2_400_000)
    if cpus > 1:
        assert found[0] == Cluster("LITTLE", "Cortex-A55", tuple(range(cpus // 2)), 1_800_000)
    assert [row["governor"] for row in facts["state"]["cpus"]] == ["schedutil"] * cpus
