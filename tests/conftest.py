"""Shared test fixtures: a real OpenSSH server on 127.0.0.1 that the tests start themselves; what a test needs from
the machine (tests/environment.py) checked before it runs; and, after the last teardown, a check that the session
left no process behind."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devices.vocabulary import Format, Precision
from exporters.artifact import Artifact
from harness.zoo.registry import ModelSpec
from tests import environment, leftovers
from tests.arm64_board import Board, BoardUnavailable, ensure_board
from tests.environment import Need, require, unmet

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class Sshd:
    port: int
    dir: Path
    client_key: Path
    known_hosts: Path  # holds the server's real host key


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "flopgap-test", "-f", str(path)], check=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_sshd(d: Path, listen: str = "127.0.0.1", client_key: Path | None = None, extra: str = "") -> Iterator[Sshd]:
    """A real sshd on ``listen`` (a loopback address) and a free port, accepting ``client_key`` (a new one if None)."""
    d.mkdir(parents=True, exist_ok=True)
    host_key = _keygen(d / "host_ed25519")
    client_key = client_key or _keygen(d / "client_ed25519")
    shutil.copy(client_key.with_suffix(".pub"), d / "authorized_keys")
    port = _free_port()
    user = pwd.getpwuid(os.getuid()).pw_name
    cfg = d / "sshd_config"
    cfg.write_text(  # extra first: sshd keeps the first value of a keyword
        f"{extra}Port {port}\nListenAddress {listen}\nHostKey {host_key}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        f"PermitRootLogin {'yes' if user == 'root' else 'no'}\nUsePAM no\nStrictModes no\nPidFile {d / 'sshd.pid'}\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    require(Need.SSHD, None if SSHD.exists() else f"no OpenSSH server at {SSHD} (apt-get install openssh-server)")
    try:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation dir
    except PermissionError:
        require(Need.SSHD, "sshd needs /run/sshd; create it once as root (or run the tests as root, as CI does)")
    log = d / "sshd.log"  # a file, not a pipe nobody reads: a chatty LogLevel must never block sshd
    # dies with this process even when a signal ends it before the finally below runs
    proc = subprocess.Popen([str(SSHD), "-D", "-E", str(log), "-f", str(cfg)], preexec_fn=leftovers.die_with_parent)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection((listen, port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("sshd did not listen within 10 s")
            time.sleep(0.05)
    known_hosts = d / "known_hosts"
    known_hosts.write_text(f"[{listen}]:{port} {host_key.with_suffix('.pub').read_text()}")
    try:
        yield Sshd(port, d, client_key, known_hosts)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real, tiny filesystem (root only), to fill up for full-disk tests."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        why = mounted.stderr.decode(errors="replace").strip()
        require(Need.MOUNT, f"cannot mount a tmpfs here ({why}); needs root with CAP_SYS_ADMIN")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextmanager
def read_only(src: Path, where: Path) -> Iterator[Path]:
    """``src`` bind-mounted read-only at ``where`` (root bypasses chmod, so a real read-only filesystem)."""
    where.mkdir()
    bound = subprocess.run(["mount", "--bind", str(src), str(where)], capture_output=True, text=True)
    if bound.returncode != 0:
        require(Need.MOUNT, f"cannot bind-mount here ({bound.stderr.strip()}); needs root with CAP_SYS_ADMIN")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], capture_output=True, text=True)
        if ro.returncode != 0:
            require(Need.MOUNT, f"cannot remount a bind mount read-only here ({ro.stderr.strip()})")
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def emulated_board() -> Board:
    """The emulated aarch64 board (tests/arm64_board.py), built once; the test is unmet where it cannot be built."""
    try:
        return ensure_board()
    except BoardUnavailable as exc:
        unmet(Need.ARM64, f"the emulated arm64 board cannot be built: {exc}")


def cached_exporter(cache: Path) -> Callable[[ModelSpec, Format, Precision], Artifact]:
    """The real exporter, into a test's own artifact cache."""
    from exporters.export import export

    def _export(model: ModelSpec, fmt: Format, precision: Precision) -> Artifact:
        return export(model, fmt, precision, cache_dir=cache)

    return _export


# --------------------------------------------------------------------------- a hermetic session

# Where the code under test, and the libraries the notebook tests start, would otherwise write into the user's home:
# flopgap's artifact cache and device locks, matplotlib's font cache, IPython's profile, Jupyter's kernel files.
pytest_plugins = ("pytester",)  # tests/test_environment.py runs sessions of its own

_SESSION_DIRS = {
    "FLOPGAP_CACHE_DIR": "artifacts",
    "FLOPGAP_LOCK_DIR": "locks",
    "XDG_CACHE_HOME": "xdg-cache",
    "XDG_CONFIG_HOME": "xdg-config",
    "XDG_DATA_HOME": "xdg-data",
    "MPLCONFIGDIR": "matplotlib",
    "IPYTHONDIR": "ipython",
    "JUPYTER_CONFIG_DIR": "jupyter-config",
    "JUPYTER_DATA_DIR": "jupyter-data",
    "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
}
# Kept where the user points it: a built emulated board (tests/arm64_board.py) is worth reusing across sessions.
_KEPT_IF_SET = {"FLOPGAP_ARM64_CACHE": "arm64-board"}


def pytest_configure(config: pytest.Config) -> None:
    environment.required_names()  # a misspelt FLOPGAP_REQUIRE stops the session at once
    shared = getattr(config, "workerinput", {}).get(_ROOT_KEY)  # a pytest-xdist worker: its controller's
    root = Path(shared) if shared else Path(tempfile.mkdtemp(prefix="flopgap-tests-"))
    if not shared:
        config.stash[_SESSION_ROOT] = root  # removed at the end by the process that made it
    dirs = {**_SESSION_DIRS, **{k: v for k, v in _KEPT_IF_SET.items() if k not in os.environ}}
    config.stash[_SESSION_ENV] = {var: str(root / name) for var, name in dirs.items()}
    os.environ.update(config.stash[_SESSION_ENV])  # subprocesses (flopgap, runners, kernels) inherit these


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist (the slow tier's ``-n 2``): every worker uses the controller's session directories, so the
    artifact cache is one and a model two workers' tests export is converted once."""
    node.workerinput[_ROOT_KEY] = str(node.config.stash[_SESSION_ROOT])


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_SESSION_ROOT, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def artifact_cache(pytestconfig: pytest.Config) -> Path:
    """The session's artifact cache (``FLOPGAP_CACHE_DIR``): content-addressed, so every test that only needs an
    export shares it and a model is converted once per session; a test of the cache itself makes its own."""
    return Path(pytestconfig.stash[_SESSION_ENV]["FLOPGAP_CACHE_DIR"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """A test that changes the session's directories (``FLOPGAP_CACHE_DIR`` popped, say) and does not put them back
    would move every later test's cache and locks: it fails, naming the variables."""
    yield
    expected = item.config.stash[_SESSION_ENV]
    changed = sorted(var for var, value in expected.items() if os.environ.get(var) != value)
    os.environ.update(expected)  # the next test starts from the session's own, whatever this one left
    if changed:
        pytest.fail(
            f"{item.nodeid} changed {', '.join(changed)} for the rest of the session; restore it "
            "(pytest's monkeypatch does)",
            pytrace=False,
        )


# --------------------------------------------------------------------------- what a test needs from the machine


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    environment.current_markers = {mark.name for mark in item.iter_markers()}
    for mark in item.iter_markers(name=environment.MARK):
        need, missing = mark.args
        require(need, missing)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """With FLOPGAP_REQUIRE=all no test may skip, whatever skipped it (a stray ``pytest.skip`` included)."""
    report: pytest.TestReport = yield
    if report.skipped and not hasattr(report, "wasxfail") and environment.ALL in environment.required_names():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"FLOPGAP_REQUIRE=all, and this test skipped: {reason}"
    return report


# --------------------------------------------------------------------------- the suite leaves no process behind


def pytest_sessionstart(session: pytest.Session) -> None:
    if Path("/proc/self/stat").exists() and leftovers.become_subreaper():
        session.config.stash[_BEFORE] = leftovers.snapshot()


@pytest.hookimpl(trylast=True)  # after the runner plugin's own, which tears down the session's fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    deadline = time.monotonic() + 5  # killed processes take a moment to end
    leftovers.reap_adopted()
    left = leftovers.leftovers(before, os.getpid())
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        leftovers.reap_adopted()
        left = leftovers.leftovers(before, os.getpid())
    if left:
        session.config.stash[_LEFT] = [p.line() for p in left]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    left = terminalreporter.config.stash.get(_LEFT, None)
    if left:
        terminalreporter.write_line("the test suite left processes running (it must leave none):", red=True)
        for line in left:
            terminalreporter.write_line(f"  {line}", red=True)


_SESSION_ROOT = pytest.StashKey[Path]()
_SESSION_ENV = pytest.StashKey[dict[str, str]]()
_ROOT_KEY = "flopgap_session_root"
_BEFORE = pytest.StashKey[set[tuple[int, int]]]()
_LEFT = pytest.StashKey[list[str]]()
