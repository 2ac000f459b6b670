"""FLOPGAP_REQUIRE: what a test needs from the machine skips where it is missing, and fails where it is required.

The pytester sessions run in subprocesses with this suite's hooks (tests/conftest.py) and a need that is surely
missing, so each verdict is known whatever this machine has.
"""

from __future__ import annotations

import os

import pytest

from tests.environment import ALL, Need, required_names

REPO_HOOKS = """
import sys
sys.path.insert(0, {repo!r})
from tests.conftest import pytest_runtest_makereport, pytest_runtest_setup  # noqa: F401
"""

TESTS = """
import os

import pytest
from tests.conftest import running_sshd
from tests.environment import Need, needs, require

MISSING = "no flux capacitor here (apt-get install flux)"

@needs(Need.BROWSER, MISSING)
def test_marked():
    pass

def test_asked_in_the_test():
    require(Need.MOUNT, MISSING)

def test_met():
    require(Need.MOUNT, None)

@pytest.mark.arm64
def test_arm64_whose_sshd_is_missing():
    require(Need.SSHD, MISSING)  # before the board is ever looked at

def test_stray_skip():
    pytest.skip("skipped by hand")
"""


@pytest.fixture
def session(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    repo = str(request.config.rootpath)
    pytester.makeconftest(REPO_HOOKS.format(repo=repo))
    pytester.makepyfile(test_needs=TESTS)
    for var in ("FLOPGAP_REQUIRE", "FLOPGAP_ARM64", "FLOPGAP_BROWSER"):
        monkeypatch.delenv(var, raising=False)
    return pytester


def test_without_the_switch_a_missing_need_skips_and_says_what_is_missing(session: pytest.Pytester) -> None:
    result = session.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines(["*browser: no flux capacitor here (apt-get install flux)"])


def test_require_all_fails_every_skip_naming_what_is_missing(
    session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOPGAP_REQUIRE", "all")
    result = session.runpytest_subprocess("-rfE")
    result.assert_outcomes(passed=1, failed=3, errors=1, skipped=0)
    result.stdout.fnmatch_lines([
        "*required by FLOPGAP_REQUIRE but missing (browser): no flux capacitor here (apt-get install flux)*",
        "*required by FLOPGAP_REQUIRE but missing (mount): no flux capacitor here*",
        "*required by FLOPGAP_REQUIRE but missing (sshd): no flux capacitor here*",
        "*FLOPGAP_REQUIRE=all, and this test skipped: skipped by hand*",
    ], consecutive=False)  # fmt: skip


def test_requiring_arm64_fails_an_arm64_test_on_its_missing_sshd_and_skips_the_rest(
    session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOPGAP_ARM64", "require")  # the older switch still works
    result = session.runpytest_subprocess("-rfs")
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    result.stdout.fnmatch_lines(["FAILED test_needs.py::test_arm64_whose_sshd_is_missing*"])
    result.stdout.fnmatch_lines(["required by FLOPGAP_REQUIRE but missing (sshd): no flux capacitor here*"])


def test_required_names_read_the_switch_and_the_older_ones() -> None:
    assert required_names({"FLOPGAP_REQUIRE": "sshd, mount"}) == {"sshd", "mount"}
    assert required_names({"FLOPGAP_REQUIRE": "all", "FLOPGAP_BROWSER": "require"}) == {ALL, Need.BROWSER}
    assert required_names({"FLOPGAP_ARM64": "require", "FLOPGAP_BROWSER": "skip"}) == {"arm64"}
    with pytest.raises(pytest.UsageError, match=r"FLOPGAP_REQUIRE: unknown need\(s\) shd; use 'all' or some of sshd, "):
        required_names({"FLOPGAP_REQUIRE": "shd"})


def test_the_session_writes_caches_and_locks_only_under_its_own_temporary_directory() -> None:
    import tempfile
    from pathlib import Path

    import matplotlib

    from devices.lock import LOCK_DIR_ENV
    from exporters.cache import default_cache_dir

    root = Path(os.environ["FLOPGAP_CACHE_DIR"]).parent
    assert root.parent == Path(tempfile.gettempdir()) and root.name.startswith("flopgap-tests-")
    assert default_cache_dir() == root / "artifacts" and Path(os.environ[LOCK_DIR_ENV]) == root / "locks"
    assert Path(matplotlib.get_cachedir()).is_relative_to(root)
    for var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"):
        assert Path(os.environ[var]).parent == root, var


MODULE_NEEDS = """
from tests.environment import Need, require_module

require_module(Need.RAY, "no Ray here (pip install ray)")

def test_never_reached():
    pass
"""


@pytest.mark.parametrize("required", [False, True])
def test_a_module_whose_need_is_missing_skips_whole_or_fails_its_collection_where_required(
    session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: bool
) -> None:
    session.makepyfile(test_module_needs=MODULE_NEEDS)
    if required:
        monkeypatch.setenv("FLOPGAP_REQUIRE", "ray")
    result = session.runpytest_subprocess("-rsfE", "test_module_needs.py")
    if required:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*required by FLOPGAP_REQUIRE but missing (ray): no Ray here*"])
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*ray: no Ray here (pip install ray)*"])
