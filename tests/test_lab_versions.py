"""A lab whose Ray or Python differs from this host's, and a host without Ray: every lab command says so in one line,
exit code 2, before it starts a node or writes a store.

The other version is faked at its protocol boundary: the head of a real Ray cluster stores the versions it started
with in its GCS key-value store, where Ray's own check (a driver's ``ray.init``, ``ray start --address``) reads them;
the test rewrites that record. No second Ray install is needed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from tests.environment import Need, needs
from tests.lab_cluster import LabCluster, lab_cluster
from tests.sweep_files import sweep_spec, write_inventory

# Ray's loopback mode, as in test_lab.py: set before Ray is imported; the commands' processes inherit it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
NEEDS_RAY = needs(
    Need.RAY, None if importlib.util.find_spec("ray") else "no Ray: pip install -c constraints.txt -e '.[lab]'"
)

OTHER_RAY, OTHER_PYTHON = "2.59.0", "3.10.14"
HERE_PYTHON = ".".join(map(str, sys.version_info[:3]))


@pytest.fixture(scope="module")
def other_versions_lab() -> Iterator[LabCluster]:
    """A one-node lab whose head claims Ray 2.59.0 on Python 3.10.14 in its cluster metadata."""
    from ray._raylet import GcsClient

    with lab_cluster(["head"]) as lab:
        gcs = GcsClient(address=lab.address)
        key, namespace = b"CLUSTER_METADATA", b"cluster"  # ray._common.usage.usage_lib's record
        metadata = json.loads(gcs.internal_kv_get(key, namespace=namespace))
        claimed = metadata | {"ray_version": OTHER_RAY, "python_version": OTHER_PYTHON}
        gcs.internal_kv_put(key, json.dumps(claimed).encode(), overwrite=True, namespace=namespace)
        yield lab


def _flopgap(argv: list[str], prelude: str = "pass") -> subprocess.CompletedProcess[str]:
    """``flopgap ARGV`` in a fresh process (a fresh driver, as on another host), after ``prelude``."""
    code = f"{prelude}; import sys; sys.argv = {['flopgap', *argv]!r}; from harness.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _raylets(address: str) -> list[int]:
    """The raylets (one per node) of the cluster at ``address``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and cmdline[0].endswith("raylet") and f"--gcs-address={address}" in cmdline:
            found.append(proc.info["pid"])
    return found


@NEEDS_RAY
@pytest.mark.parametrize("command", ["sweep", "lab status", "lab join", "sweep, Ray's own check"])
def test_a_lab_claiming_another_ray_and_python_in_its_gcs_metadata_is_one_line_naming_both_exit_2(
    other_versions_lab: LabCluster, command: str, tmp_path: Path
) -> None:
    import ray

    address = other_versions_lab.address
    spec = tmp_path / "sweep.toml"
    spec.write_text(sweep_spec("versions", ["onnxruntime"], ["here"], channels=8))
    inventory = write_inventory(tmp_path / "devices.toml", {"here": {"transport": "local"}})
    argv = {
        "sweep": ["sweep", str(spec), "--db", str(tmp_path / "lab.db"), "--lab", address],
        "lab status": ["lab", "status", address],
        "lab join": ["lab", "join", address, "--devices", str(inventory), "--host", "other-host"],
    }[command.split(",")[0]]
    # Ray's own refusal, where the head's record changed after ours was read: ray.init's check, its text parsed.
    prelude = (
        "import harness.lab.ray_session as s; s.check_versions = lambda address: None"
        if command.endswith("own check")
        else "pass"
    )
    nodes_before = _raylets(address)

    done = _flopgap(argv, prelude)

    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: the lab at {address} runs Ray {OTHER_RAY} on Python {OTHER_PYTHON} but this host has Ray "
        f"{ray.__version__} on Python {HERE_PYTHON}; every host and driver of a lab needs the same Ray and Python: "
        "install the lab's Python, then pip install -c constraints.txt -e '.[lab]'"
    ]
    assert _raylets(address) == nodes_before  # `lab join` started no node of its own
    assert not (tmp_path / "lab.db").exists()


@pytest.mark.parametrize("command", ["start", "join", "status", "stop", "leave"])
def test_every_lab_command_without_ray_faked_by_blocking_its_import_is_one_line_exit_2(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    inventory = write_inventory(tmp_path / "devices.toml", {"here": {"transport": "local"}})
    argv = {
        "start": ["lab", "start", "--ip", "127.0.0.1"],
        "join": ["lab", "join", "127.0.0.1:6379", "--devices", str(inventory)],
        "status": ["lab", "status", "127.0.0.1:6379"],
        "stop": ["lab", "stop", "127.0.0.1:6379"],
        "leave": ["lab", "leave", "127.0.0.1:6379"],
    }[command]

    result = CliRunner().invoke(app, argv)

    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: a lab needs Ray, which is not installed: pip install -e '.[lab]'"
    ]
