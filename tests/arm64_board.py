"""An emulated aarch64 board for tests and CI: Debian's arm64 Python under qemu-user, with aarch64 wheels of numpy,
onnxruntime and ai-edge-litert, and a fake big.LITTLE topology. No ARM hardware needed.

    python -m tests.arm64_board            # build (or reuse) it and print its board pythons

What it builds, once, under ``~/.cache/flopgap-arm64`` (``$FLOPGAP_ARM64_CACHE``), reused while the inputs are
the same:

- ``sysroot-*``: Debian bookworm's arm64 ``python3.11`` and the libraries it and the wheels need, fetched with
  ``apt-get download`` and unpacked with ``dpkg -x`` (needs ``dpkg --add-architecture arm64 && apt-get update``);
- ``site-full-*`` and ``site-onnxruntime-only-*``: the aarch64 wheels (pip, ``--platform manylinux_*_aarch64``) at
  the versions ``constraints.txt`` pins for this machine, one folder per board;
- ``topology-N``: an ARM ``/proc/cpuinfo`` and ``/sys/devices/system/cpu`` tree for this host's N CPUs, half
  "LITTLE" Cortex-A55 (1.8 GHz), the rest "big" Cortex-A76 (2.4 GHz), with per-core cpufreq and topology files;
- ``bin/python-full`` and ``bin/python-onnxruntime-only``: the board pythons (shell wrappers);
- on demand (:func:`ensure_executor_runner`), ``bin/executor_runner``: ``tests/executor_runner_min.cpp`` compiled
  with Debian's aarch64 g++ (``cross-*``, unpacked like the sysroot, never installed) against the runtime libraries
  of the aarch64 ``executorch`` wheel (``site-executorch-*``: no torch, no Python), run under qemu by a wrapper. It
  stands for ExecuTorch's ``executor_runner`` on a board: ExecuTorch's Python runtime needs torch, and PyPI's
  aarch64 torch is the CUDA build, which does not import without the CUDA libraries.

Why the mount namespace: onnxruntime and LiteRT read ``/proc/cpuinfo`` to pick kernels, and both crash (SIGSEGV)
on an x86 host's. Each board python enters a private mount namespace (``unshare --mount``, root only), bind-mounts
the fake files over ``/proc/cpuinfo`` and ``/sys/devices/system/cpu`` and execs qemu; the namespace, and so the
mounts, end with that process. Nothing is left mounted or running.

Emulated latencies mean nothing (qemu translates every instruction); what this proves is the software path: the
same runner.py on aarch64 builds of the runtimes, reached over SSH like a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("FLOPGAP_ARM64_CACHE", "~/.cache/flopgap-arm64")).expanduser()
QEMU = "qemu-aarch64-static"
QEMU_CPU = "cortex-a76"  # no SVE: the kernels the runtimes pick match the fake topology's cores
PYTHON = "usr/bin/python3.11"

# Debian bookworm arm64: python3.11 and what it links (readline, sqlite, dbm, nis left out: the runner needs none),
# plus libstdc++/libgcc for the runtimes' native libraries.
DEBS = (
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libssl3",
    "libbz2-1.0",
    "liblzma5",
    "libcrypt1",
    "libuuid1",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
)
# pip takes --platform literally (no older manylinux implied); bookworm's glibc 2.36 runs all of these.
PLATFORMS = tuple(f"{tag}_aarch64" for tag in ("manylinux_2_36", "manylinux_2_28", "manylinux_2_27", "manylinux_2_17"))
# Each board is one folder of wheels: one with both runtimes, one that proves a single runtime is enough.
BOARDS = {"full": ("numpy", "onnxruntime", "ai-edge-litert"), "onnxruntime-only": ("numpy", "onnxruntime")}


# Debian bookworm's aarch64 cross g++ 12 and the arm64 libc/libstdc++ it links against (amd64 packages).
CROSS_DEBS = (
    "g++-12-aarch64-linux-gnu",
    "gcc-12-aarch64-linux-gnu",
    "cpp-12-aarch64-linux-gnu",
    "binutils-aarch64-linux-gnu",
    "libstdc++-12-dev-arm64-cross",
    "libgcc-12-dev-arm64-cross",
    "libc6-dev-arm64-cross",
    "linux-libc-dev-arm64-cross",
    "libc6-arm64-cross",
    "libgcc-s1-arm64-cross",
    "libstdc++6-arm64-cross",
    "libasan8-arm64-cross",
    "libatomic1-arm64-cross",
    "libgomp1-arm64-cross",
    "libhwasan0-arm64-cross",
    "libitm1-arm64-cross",
    "liblsan0-arm64-cross",
    "libtsan2-arm64-cross",
    "libubsan1-arm64-cross",
)
EXECUTOR_RUNNER_SOURCE = ROOT / "tests" / "executor_runner_min.cpp"
# The wheel's libraries, XNNPACK's first: it registers its backend from a static initializer, so it must stay linked.
EXECUTORCH_LIBS = ("executorch_backend_xnnpack", "executorch_kernels_optimized", "executorch_etdump",
                   "executorch_threadpool", "executorch")  # fmt: skip


class BoardUnavailable(Exception):
    """This machine cannot build or run the emulated board; the message says what is missing, in one line."""


@dataclass(frozen=True)
class FakeCore:
    """One CPU of the fake topology, as its cpuinfo block and cpufreq files describe it."""

    cpu: int
    name: str
    part: int
    variant: int
    revision: int
    max_khz: int
    cluster: int


LITTLE = ("Cortex-A55", 0xD05, 0x2, 0, 1_800_000)
BIG = ("Cortex-A76", 0xD0B, 0x4, 1, 2_400_000)


def fake_cores(count: int) -> list[FakeCore]:
    """``count // 2`` LITTLE cores first (as on phones), the rest big; one core is a big one."""
    little = count // 2
    return [FakeCore(cpu, *(LITTLE if cpu < little else BIG), cluster=0 if cpu < little else 1) for cpu in range(count)]


def cpuinfo_text(cores: list[FakeCore]) -> str:
    """``/proc/cpuinfo`` as an arm64 Linux kernel writes it."""
    features = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
    blocks = [
        f"processor\t: {c.cpu}\nBogoMIPS\t: 38.40\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: 0x{c.variant:x}\nCPU part\t: 0x{c.part:03x}\n"
        f"CPU revision\t: {c.revision}\n"
        for c in cores
    ]
    return "\n".join(blocks) + "\n"


def write_topology(dest: Path, cores: list[FakeCore]) -> None:
    """``dest/cpuinfo`` and ``dest/cpu`` (a ``/sys/devices/system/cpu`` tree: cpufreq, topology, online lists)."""
    (dest / "cpuinfo").write_text(cpuinfo_text(cores))
    tree = dest / "cpu"
    tree.mkdir(parents=True)
    every = f"0-{len(cores) - 1}" if len(cores) > 1 else "0"
    for name, value in (("possible", every), ("present", every), ("online", every), ("offline", "")):
        (tree / name).write_text(value + "\n")
    (tree / "kernel_max").write_text(f"{len(cores) - 1}\n")
    for core in cores:
        mates = ",".join(str(c.cpu) for c in cores if c.cluster == core.cluster)
        freq = {
            "cpuinfo_max_freq": core.max_khz,
            "cpuinfo_min_freq": core.max_khz // 4,
            "scaling_max_freq": core.max_khz,
            "scaling_min_freq": core.max_khz // 4,
            "scaling_cur_freq": core.max_khz,
            "scaling_governor": "schedutil",
            "related_cpus": mates.replace(",", " "),
            "affected_cpus": mates.replace(",", " "),
        }
        topology = {
            "physical_package_id": 0,
            "cluster_id": core.cluster,
            "core_id": core.cpu,
            "thread_siblings_list": core.cpu,
            "core_cpus_list": core.cpu,
            "cluster_cpus_list": mates,
            "core_siblings_list": every,
            "package_cpus_list": every,
        }
        for folder, files in (("cpufreq", freq), ("topology", topology)):
            (tree / f"cpu{core.cpu}" / folder).mkdir(parents=True)
            for name, value in files.items():
                (tree / f"cpu{core.cpu}" / folder / name).write_text(f"{value}\n")
        (tree / f"cpu{core.cpu}" / "online").write_text("1\n")


@dataclass(frozen=True)
class Board:
    """A built board: its python wrappers by board name (``full``, ``onnxruntime-only``) and its fake cores."""

    pythons: dict[str, Path]
    cores: tuple[FakeCore, ...]
    cache: Path


def pins(constraints: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """The versions this repository locks (``numpy==2.4.6`` ...), so the board runs what the host runs."""
    found = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            found[name.strip().lower()] = version.strip()
    return found


def check_host() -> None:
    """Raise :class:`BoardUnavailable` naming the first thing this machine lacks."""
    if sys.platform != "linux":
        raise BoardUnavailable("the emulated arm64 board needs Linux (qemu-user and mount namespaces)")
    if os.geteuid() != 0:
        raise BoardUnavailable("the emulated arm64 board needs root (a private mount namespace over /proc/cpuinfo)")
    for tool, package in ((QEMU, "qemu-user-static"), ("unshare", "util-linux"), ("dpkg", "dpkg")):
        if shutil.which(tool) is None:
            raise BoardUnavailable(f"{tool} not found; install it: apt-get install {package}")
    arches = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout.split()
    if "arm64" not in arches:
        raise BoardUnavailable("dpkg has no arm64 architecture; run: dpkg --add-architecture arm64 && apt-get update")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        why = probe.stderr.strip().splitlines()[-1:] or [f"exit code {probe.returncode}"]
        raise BoardUnavailable(f"cannot create a mount namespace here ({why[0]}); run as root with CAP_SYS_ADMIN")


def _run(argv: list[str], cwd: Path | None = None) -> None:
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        lines = [ln for ln in (res.stderr or res.stdout).splitlines() if ln.strip() and "is ignored" not in ln]
        raise BoardUnavailable(f"'{' '.join(argv[:4])} ...' failed: {lines[-1] if lines else res.returncode}")


def _once(path: Path, build: Callable[[Path], None]) -> Path:
    """``path``, built by ``build(tmp)`` into a temporary sibling and renamed, so a half build is never reused."""
    if path.is_dir():
        return path
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".part-", dir=path.parent))
    try:
        build(tmp)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def _build_sysroot(dest: Path) -> None:
    debs = dest / ".debs"
    debs.mkdir()
    _run(["apt-get", "download", "-q", *(f"{name}:arm64" for name in DEBS)], cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(dest)])
    shutil.rmtree(debs)
    if sys.version_info[:2] == (3, 11):  # same bytecode magic as the board's 3.11: spare qemu compiling the stdlib
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(dest / "usr/lib/python3.11")])


def _build_site(requirements: list[str]) -> Callable[[Path], None]:
    def build(dest: Path) -> None:
        platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-warn-conflicts"]
        wheels = ["--only-binary=:all:", *platforms, "--python-version", "3.11", "--implementation", "cp"]
        _run([*pip, *wheels, "--abi", "cp311", "--target", str(dest), *requirements])

    return build


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions building at once wait for each other
        yield


def _wrapper(cpuinfo: Path, tree: Path, sysroot: Path, site: Path) -> str:
    # The inner script gets every path as a positional parameter: nothing is interpolated into shell code.
    inner = (
        'mount --bind "$1" /proc/cpuinfo && mount --bind "$2" /sys/devices/system/cpu || exit 126\n'
        f'export QEMU_LD_PREFIX="$3" QEMU_CPU={QEMU_CPU} PYTHONPATH="$4" PYTHONNOUSERSITE=1\n'
        f'shift 4\nexec {QEMU} "$QEMU_LD_PREFIX/{PYTHON}" "$@"'
    )
    args = " ".join(shlex.quote(str(p)) for p in (cpuinfo, tree, sysroot, site))
    return (
        "#!/bin/sh\n"
        "# flopgap's emulated aarch64 board python (written by tests/arm64_board.py): Debian arm64 python3.11 under\n"
        "# qemu-user, in a private mount namespace whose /proc/cpuinfo and /sys/devices/system/cpu are a fake ARM\n"
        "# topology. unshare execs (no fork), so this pid is qemu's and a kill of its process group reaches it.\n"
        f'exec unshare --mount --propagation private -- /bin/sh -c {shlex.quote(inner)} sh {args} "$@"\n'
    )


def ensure_board(cache: Path = CACHE, cpus: int | None = None) -> Board:
    """Build what is missing (downloads: ~10 MB of .debs, ~60 MB of wheels) and return the board."""
    check_host()
    versions = pins()
    cores = fake_cores(cpus or os.cpu_count() or 1)
    with _locked(cache):
        sysroot = _once(cache / f"sysroot-{_key(DEBS)}", _build_sysroot)
        topology = _once(cache / f"topology-{len(cores)}-{_key(cores)}", lambda d: write_topology(d, cores))
        pythons = {}
        (cache / "bin").mkdir(exist_ok=True)
        for board, packages in BOARDS.items():
            reqs = [f"{p}=={versions[p]}" if p in versions else p for p in packages]
            site = _once(cache / f"site-{board}-{_key(reqs, PLATFORMS)}", _build_site(reqs))
            wrapper = cache / "bin" / f"python-{board}"
            text = _wrapper(topology / "cpuinfo", topology / "cpu", sysroot, site)
            if not wrapper.is_file() or wrapper.read_text() != text:
                part = wrapper.with_suffix(".part")
                part.write_text(text)
                part.chmod(0o755)
                part.replace(wrapper)
            pythons[board] = wrapper
    return Board(pythons, tuple(cores), cache)


def _build_cross(dest: Path) -> None:
    debs = dest / ".debs"
    debs.mkdir()
    _run(["apt-get", "download", "-q", *CROSS_DEBS], cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(dest)])
    shutil.rmtree(debs)


def _compile_runner(cross: Path, site: Path) -> Callable[[Path], None]:
    def build(dest: Path) -> None:
        gcc = cross / "usr/lib/gcc-cross/aarch64-linux-gnu/12"
        include = site / "executorch/include"
        lib = site / "executorch/lib"
        argv = [str(cross / "usr/bin/aarch64-linux-gnu-g++-12"), f"-B{gcc}", f"-B{cross}/usr/bin/aarch64-linux-gnu-",
                f"--sysroot={cross}", "-std=c++17", "-O2", "-DC10_USING_CUSTOM_GENERATED_MACROS",
                f"-I{include}", f"-I{include}/executorch/runtime/core/portable_type/c10",
                "-isystem", f"{cross}/usr/aarch64-linux-gnu/include/c++/12",
                "-isystem", f"{cross}/usr/aarch64-linux-gnu/include/c++/12/aarch64-linux-gnu",
                "-isystem", f"{cross}/usr/aarch64-linux-gnu/include",
                str(EXECUTOR_RUNNER_SOURCE), f"-L{lib}", f"-Wl,-rpath,{lib}", "-Wl,--no-as-needed",
                *(f"-l{name}" for name in EXECUTORCH_LIBS), "-o", str(dest / "executor_runner")]  # fmt: skip
        # The unpacked binutils find their own shared libraries only through LD_LIBRARY_PATH.
        env = {**os.environ, "LD_LIBRARY_PATH": str(cross / "usr/lib/x86_64-linux-gnu")}
        res = subprocess.run(argv, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            errors = [ln for ln in res.stderr.splitlines() if "error" in ln] or res.stderr.splitlines()[-1:]
            raise BoardUnavailable(f"compiling {EXECUTOR_RUNNER_SOURCE.name} failed: {errors[0] if errors else '?'}")

    return build


def ensure_executor_runner(board: Board) -> Path:
    """Build (once) the board's ``executor_runner`` and return its wrapper: an aarch64 ELF run under qemu. Downloads
    ~55 MB of cross-compiler .debs and the aarch64 executorch wheel."""
    check_host()
    cache = board.cache
    version = pins()["executorch"]
    with _locked(cache):
        sysroot = _once(cache / f"sysroot-{_key(DEBS)}", _build_sysroot)
        cross = _once(cache / f"cross-{_key(CROSS_DEBS)}", _build_cross)
        site = _once(cache / f"site-executorch-{_key(version, PLATFORMS)}",
                     _build_site([f"executorch=={version}", "--no-deps"]))  # fmt: skip
        source = EXECUTOR_RUNNER_SOURCE.read_text()
        built = _once(cache / f"executor-runner-{_key(source, cross.name, site.name)}", _compile_runner(cross, site))
        wrapper = cache / "bin" / "executor_runner"
        text = (
            "#!/bin/sh\n"
            "# flopgap's emulated aarch64 board's executor_runner (written by tests/arm64_board.py): an aarch64 build\n"
            "# of tests/executor_runner_min.cpp on the executorch wheel's runtime, under qemu-user.\n"
            f"export QEMU_LD_PREFIX={shlex.quote(str(sysroot))} QEMU_CPU={QEMU_CPU}\n"
            f'exec {QEMU} {shlex.quote(str(built / "executor_runner"))} "$@"\n'
        )
        (cache / "bin").mkdir(exist_ok=True)
        if not wrapper.is_file() or wrapper.read_text() != text:
            part = wrapper.with_suffix(".part")
            part.write_text(text)
            part.chmod(0o755)
            part.replace(wrapper)
    return wrapper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.arm64_board", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"where to build it (default {CACHE})")
    args = parser.parse_args(argv)
    try:
        board = ensure_board(args.cache)
    except BoardUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cores = ", ".join(f"cpu{c.cpu} {c.name} @ {c.max_khz / 1e6:.1f} GHz" for c in board.cores)
    print(f"emulated aarch64 board in {board.cache} ({cores})")
    for name, python in board.pythons.items():
        print(f"  {name:>16}: {python}")
    print('use one as `python = "..."` of an SSH device in the inventory (e.g. host 127.0.0.1 with a local sshd)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
