"""The machine flopgap runs on, as a :class:`~devices.base.Device`.

Each command runs in its own subprocess (and process group), so a runtime that crashes or hangs fails one
point, not the sweep: on timeout the whole group is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devices.base import ShellReturn
from devices.errors import DeviceError, DeviceTimeout, PullFailed, PushFailed

RUNNER_PATH = Path(__file__).with_name("runner.py")


class LocalDevice:
    transport = "local"

    def __init__(
        self,
        name: str = "local",
        python: str = sys.executable,
        work_dir: Path | None = None,
        facts_timeout: float = 60,
        affinity: list[int] | None = None,
    ) -> None:
        self.name = name
        self.affinity = affinity
        self.python = python
        self.facts_timeout = facts_timeout
        self._work_dir = work_dir
        self._owned_dir: Path | None = None

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            self._owned_dir = Path(tempfile.mkdtemp(prefix="flopgap-local-"))
            self._work_dir = self._owned_dir
        return self._work_dir

    def runner_argv(self) -> list[str]:
        """How to start flopgap's runner here: the same interpreter that runs flopgap (pinned if configured)."""
        pin = ["--affinity", ",".join(str(c) for c in self.affinity)] if self.affinity else []
        return [self.python, str(RUNNER_PATH), *pin]

    def facts(self) -> dict[str, Any]:
        res = self.run([*self.runner_argv(), "--facts"], timeout=self.facts_timeout)
        if not res.ok:
            raise DeviceError(f"device '{self.name}': runner --facts failed: {_last_line(res)}")
        facts: dict[str, Any] = json.loads(res.stdout)
        return facts

    def push(self, local: Path) -> str:
        # Local files need no copy; the runner reads them where they are.
        if not local.exists():
            raise PushFailed(f"device '{self.name}': {local} does not exist")
        return str(local.resolve())

    def run(self, argv: list[str], timeout: float) -> ShellReturn:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
        except OSError as exc:
            raise DeviceError(f"device '{self.name}': cannot start {argv[0]}: {exc.strerror}") from None
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise DeviceTimeout(
                f"device '{self.name}': '{' '.join(argv[:3])} ...' ran past {timeout:.0f}s and was killed; "
                "raise the point timeout or check the runtime"
            ) from None
        except KeyboardInterrupt:
            _kill_group(proc)
            raise
        return ShellReturn(tuple(argv), proc.returncode, out, err, time.perf_counter() - start)

    def pull(self, remote: str, local: Path) -> Path:
        try:
            shutil.copyfile(remote, local)
        except OSError as exc:
            raise PullFailed(f"device '{self.name}': cannot copy {remote} to {local}: {exc.strerror}") from None
        return local

    def cleanup(self) -> None:
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None
            self._work_dir = None


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _last_line(res: ShellReturn) -> str:
    lines = (res.stderr or res.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {res.returncode}"
