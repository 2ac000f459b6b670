"""The leftover check fires on what a session leaves behind, found by lineage: a planted orphan, and a command the
loopback sshd ran after that sshd is gone; a session that ends its processes in its fixtures' teardown passes.

Each case is a pytester session in a subprocess with this suite's session hooks (tests/conftest.py); the test then
kills what that session left, by the pid the report names.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

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


KILLED_HOLDING_SSHD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.conftest import running_sshd
with running_sshd(Path({d!r})) as sshd:
    print(sshd.port, flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_loopback_sshd_ends_when_the_process_holding_it_is_killed(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGKILL runs no teardown; the sshd must still go (it used to stay, listening, until someone killed it)."""
    d = tmp_path / "sshd"
    code = KILLED_HOLDING_SSHD.format(repo=str(request.config.rootpath), d=str(d))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip().isdigit()
        sshd_pid = int((d / "sshd.pid").read_text())
        assert _alive(sshd_pid)
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while _alive(sshd_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    still = _alive(sshd_pid)
    if still:
        os.kill(sshd_pid, signal.SIGKILL)
    assert not still, f"sshd {sshd_pid} outlived the process that started it"
