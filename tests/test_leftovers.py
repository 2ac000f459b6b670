"""The leftover check fires on what a session leaves behind, found by lineage: a planted orphan, and a command the
loopback sshd ran after that sshd is gone; a session that ends its processes in its fixtures' teardown passes.

Each case is a pytester session in a subprocess with this suite's session hooks (tests/conftest.py); the test then
kills what that session left, by the pid the report names.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

HOOKS = """
import sys
sys.path.insert(0, {repo!r})
from tests.conftest import pytest_sessionfinish, pytest_sessionstart, pytest_terminal_summary  # noqa: F401
"""

PLANTED = """
import subprocess

def test_plants_an_orphan():
    # sh starts sleep in the background and exits: the sleep's parent is gone, so it is an orphan
    subprocess.run(["sh", "-c", "sleep {tag} </dev/null >/dev/null 2>&1 &"], check=True)
"""

UNDER_SSHD = """
import os, pwd, subprocess
from tests.conftest import running_sshd

def test_an_ssh_command_outlives_its_session(tmp_path):
    with running_sshd(tmp_path / "sshd") as sshd:
        user = pwd.getpwuid(os.getuid()).pw_name
        subprocess.run(["ssh", "-i", str(sshd.client_key), "-p", str(sshd.port), "-o", "BatchMode=yes",
                        "-o", f"UserKnownHostsFile={{sshd.known_hosts}}", f"{{user}}@127.0.0.1",
                        "sleep {tag} </dev/null >/dev/null 2>&1 &"], check=True, timeout=60)
    # the sshd and its session processes are gone; the sleep they started is not
"""

TIDY = """
import subprocess
import pytest

@pytest.fixture(scope="session")
def server():
    proc = subprocess.Popen(["sleep", "{tag}"])
    yield proc
    proc.kill()
    proc.wait()

def test_uses_a_session_fixture(server):
    assert server.poll() is None
"""


def _run(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, tests: str, n: int
) -> tuple[pytest.RunResult, list[int]]:
    """Runs ``tests`` in a planted session with a sleep only this test starts; returns the result and the pids the
    report names for that sleep, killed here so that no test leaves them."""
    tag = f"30{n}.{os.getpid() % 1000:03d}1"
    pytester.makeconftest(HOOKS.format(repo=str(request.config.rootpath)))
    pytester.makepyfile(test_planted=tests.format(tag=tag))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    pids = [int(m.group(1)) for m in re.finditer(rf"^\s+(\d+): sleep {re.escape(tag)}$", result.stdout.str(), re.M)]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return result, pids


def test_a_planted_orphan_fails_the_session_and_is_named(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    result, left = _run(pytester, request, PLANTED, 1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED and len(left) == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["the test suite left processes running (it must leave none):", "*1 passed*"])


def test_a_command_the_sshd_ran_is_seen_after_the_sshd_is_gone(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    result, left = _run(pytester, request, UNDER_SSHD, 2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED and len(left) == 1, result.stdout.str()


def test_processes_ended_in_a_session_fixtures_teardown_are_not_leftovers(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    result, left = _run(pytester, request, TIDY, 3)
    assert left == [] and result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "left processes running" not in result.stdout.str()
