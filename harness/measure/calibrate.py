"""Roofline calibration: peak compute and memory bandwidth of a device, measured through its own runtime.

Both figures come from zoo blocks exported by the same exporters and timed by the same runner as any model, so
the roofline describes what the runtime reaches, not the datasheet:

- peak compute: 1x1 convolutions (``conv1x1``: a GEMM of (H·W × Cin) by (Cin × Cout); BatchNorm folded, ReLU
  fused), ``FLOPs = 2 · H·W·Cin·Cout`` (one multiply-add = 2 FLOPs, bias and ReLU not counted);
- bandwidth: a ReLU over a tensor far larger than the last-level cache (``activation``, 64 MiB and 128 MiB per
  tensor by default), ``bytes = 4 · N read + 4 · N written``. This is STREAM's convention: a write-allocate
  cache also reads the output lines before writing them, so DRAM may move up to 1.5x the bytes counted.

Each kernel is timed in ``protocol.trials`` runner calls (interleaved); its best trial median is kept, and the
device's figure is the best kernel: ``GFLOP/s = flops / median_ns`` and ``GB/s = bytes / median_ns`` (an
operation per nanosecond is a giga-operation per second). Every kernel's raw medians go into ``details_json``
so the stored figures can be recomputed from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from devices.base import Device
from devices.core.errors import FlopgapError, MeasurementFailed
from devices.errors import DeviceError
from devices.facts import DeviceFacts
from devices.vocabulary import Format, Precision, Runtime
from exporters.artifact import Artifact
from harness.measure.spec import Protocol
from harness.measure.trial import trial_request
from harness.store import Store
from harness.zoo.registry import ModelSpec, resolve

FLOAT_BYTES = 4
# (cin, cout, h, w): the weights (256 KiB to 4 MiB) and activations stay in cache; the largest that wins is kept.
COMPUTE_SIZES: tuple[tuple[int, int, int, int], ...] = ((256, 256, 56, 56), (512, 512, 28, 28), (1024, 1024, 14, 14))
# (channels, h, w): 64 MiB and 128 MiB per tensor, 2-4x past a 32 MiB last-level cache (an EPYC CCX, a phone's
# SLC is 4-16 MiB) so the stream runs from DRAM.
BANDWIDTH_SIZES: tuple[tuple[int, int, int], ...] = ((64, 512, 512), (128, 512, 512))
PROTOCOL = Protocol(trials=2, warmup_runs=3, warmup_seconds=0.2, runs=10, min_seconds=0.5)  # type: ignore[call-arg]
COMPUTE, BANDWIDTH = "compute", "bandwidth"


class CalibrationError(FlopgapError):
    """A calibration kernel could not be exported or timed; the message names the kernel and the device."""


class KernelFailed(CalibrationError, MeasurementFailed):
    """A calibration kernel ran on the device and failed (exit code 3, not bad input)."""


@dataclass(frozen=True)
class Kernel:
    """A calibration model with the work it does per inference."""

    name: str
    kind: str  # COMPUTE or BANDWIDTH
    spec: ModelSpec
    flops: int
    bytes: int


def conv1x1_kernel(cin: int, cout: int, h: int, w: int) -> Kernel:
    """A compute kernel: ``2·H·W·Cin·Cout`` FLOPs; bytes are input + output + weights, once each."""
    spec = resolve("conv1x1", cin=cin, cout=cout, h=h, w=w)
    flops = 2 * h * w * cin * cout
    moved = FLOAT_BYTES * (h * w * (cin + cout) + cin * cout)
    return Kernel(f"conv1x1 {cin}->{cout} @{h}x{w}", COMPUTE, spec, flops, moved)


def relu_kernel(channels: int, h: int, w: int) -> Kernel:
    """A bandwidth kernel: one float read and one written per element; one FLOP (a max) per element."""
    spec = resolve("activation", channels=channels, h=h, w=w, fn="relu")
    n = channels * h * w
    mib = FLOAT_BYTES * n / 2**20
    return Kernel(f"relu {channels}x{h}x{w} ({mib:g} MiB)", BANDWIDTH, spec, n, 2 * FLOAT_BYTES * n)


def default_kernels() -> list[Kernel]:
    return [conv1x1_kernel(*s) for s in COMPUTE_SIZES] + [relu_kernel(*s) for s in BANDWIDTH_SIZES]


@dataclass(frozen=True)
class KernelTiming:
    kernel: Kernel
    medians_ns: tuple[float, ...]  # one per trial
    artifact_sha: str

    @property
    def median_ns(self) -> float:
        """The best (lowest) trial median: the kernel's throughput when nothing else got in the way."""
        return min(self.medians_ns)

    @property
    def gflops(self) -> float:
        return self.kernel.flops / self.median_ns

    @property
    def gbs(self) -> float:
        return self.kernel.bytes / self.median_ns

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.kernel.name,
            "kind": self.kernel.kind,
            "model": self.kernel.spec.name,
            "params": dict(self.kernel.spec.params),
            "input_shape": list(self.kernel.spec.input_shape),
            "flops": self.kernel.flops,
            "bytes": self.kernel.bytes,
            "medians_ns": list(self.medians_ns),
            "median_ns": self.median_ns,
            "gflops": self.gflops,
            "gbs": self.gbs,
            "artifact_sha": self.artifact_sha,
        }


@dataclass(frozen=True)
class Calibration:
    device: str
    runtime: str
    threads: int
    runtime_version: str | None
    timings: tuple[KernelTiming, ...]
    protocol: Protocol

    def _best(self, kind: str, key: Callable[[KernelTiming], float]) -> KernelTiming | None:
        found = [t for t in self.timings if t.kernel.kind == kind]
        return max(found, key=key) if found else None

    @property
    def peak_gflops(self) -> float | None:
        best = self._best(COMPUTE, lambda t: t.gflops)
        return best.gflops if best else None

    @property
    def bandwidth_gbs(self) -> float | None:
        best = self._best(BANDWIDTH, lambda t: t.gbs)
        return best.gbs if best else None

    @property
    def ridge_flops_per_byte(self) -> float | None:
        """Arithmetic intensity where the roofline bends: below it an op is memory bound."""
        if self.peak_gflops is None or not self.bandwidth_gbs:
            return None
        return self.peak_gflops / self.bandwidth_gbs

    def details(self) -> dict[str, Any]:
        peak = self._best(COMPUTE, lambda t: t.gflops)
        bandwidth = self._best(BANDWIDTH, lambda t: t.gbs)
        return {
            "convention": "gflops = flops / median_ns (flops = 2*MACs); gbs = bytes / median_ns (bytes read + "
            "written, STREAM); median_ns = best trial median",
            "runtime_version": self.runtime_version,
            "kernels": [t.to_json() for t in self.timings],
            "peak_from": peak.kernel.name if peak else None,
            "bandwidth_from": bandwidth.kernel.name if bandwidth else None,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
            "protocol": self.protocol.model_dump(),
        }


Exporter = Callable[[ModelSpec, Format, Precision], Artifact]


def calibrate(
    dev: Device,
    runtime: Runtime,
    threads: int,
    exporter: Exporter,
    kernels: Sequence[Kernel] | None = None,
    protocol: Protocol = PROTOCOL,
) -> Calibration:
    """Time every kernel on ``dev`` with ``runtime`` at ``threads``, ``protocol.trials`` times, interleaved."""
    fmt = runtime.artifact_format
    if not dev.can_run(fmt):
        raise CalibrationError(
            f"device '{dev.name}' runs {dev.runner}, which cannot time {fmt.value} models; calibrate another runtime"
        )
    kernels = list(kernels) if kernels is not None else default_kernels()
    artifacts = {k.name: exporter(k.spec, fmt, Precision.FP32) for k in kernels}
    request = trial_request(protocol, threads, runtime.options)
    medians: dict[str, list[float]] = {k.name: [] for k in kernels}
    version: str | None = None
    for _ in range(protocol.trials):
        for k in kernels:
            try:
                # The export's sha256 is checked where the kernel runs (on a lab device: on its own host).
                result = dev.measure(artifacts[k.name].path, request, sha256=artifacts[k.name].sha256)
            except DeviceError as exc:
                raise KernelFailed(f"calibration kernel {k.name} ({runtime}) failed: {exc}") from exc
            median_ns = result.centre_ns
            if not median_ns:
                raise KernelFailed(f"calibration kernel {k.name} on '{dev.name}': the runner gave no timing")
            medians[k.name].append(median_ns)
            version = version or result.runtime_version
    timings = tuple(KernelTiming(k, tuple(medians[k.name]), artifacts[k.name].sha256) for k in kernels)
    return Calibration(dev.name, runtime, threads, version, timings, protocol)


def store_calibration(store: Store, dev: Device, cal: Calibration, facts: DeviceFacts | None = None) -> int:
    """Record the device (facts refreshed) and the calibration; returns the calibration's id. The calibration
    goes to the machine the facts identify (``local@…`` when another machine was stored as ``local`` before)."""
    if facts is None:
        try:
            facts = dev.facts()
        except DeviceError as exc:
            device = store.record_device_error(dev.name, dev.transport.kind, str(exc)).name
        else:
            device = store.record_device(dev.name, dev.transport.kind, facts).name
    else:
        device = store.record_device(dev.name, dev.transport.kind, facts).name
    details = cal.details()
    return store.add_calibration(device, cal.runtime, cal.threads, cal.peak_gflops, cal.bandwidth_gbs, details)
