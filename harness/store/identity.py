"""Which physical machine a device name stood for: a fingerprint of its facts, so results of two machines that
shared one inventory name (``local`` on a laptop and on a CI runner) are never mixed.

The fingerprint covers what identifies hardware and its install: CPU vendor, model name, family/model/stepping,
core count, cache sizes, a digest of the CPU flags, the architecture and a digest of the machine id; for phones
the serial, model, SoC and ABI. The kernel, the OS and the runtime versions are recorded with the facts but are
not identity: an upgrade keeps the device (runtime versions are part of each point's key instead).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from devices.facts import DeviceFacts, core_count, cpu_name

# Facts that identify the machine (runner facts, then adb facts); a missing one is simply left out.
IDENTITY_KEYS: tuple[str, ...] = (
    "cpu_vendor",
    "cpu_model",
    "cpu_family",
    "cpu_model_number",
    "cpu_stepping",
    "cpu_revision",
    "cpu_parts",
    "cpu_count",
    "cpu_caches",
    "cpu_flags_digest",
    "machine",
    "machine_id_digest",
    "serial",
    "model",
    "soc",
    "abi",
)
FINGERPRINT_CHARS = 16


def identity_facts(facts: DeviceFacts) -> dict[str, Any]:
    """The facts that enter the fingerprint (those present and not None)."""
    raw: dict[str, Any] = dict(facts)  # the keys are read by name from a table
    return {k: raw[k] for k in IDENTITY_KEYS if raw.get(k) is not None}


def fingerprint(facts: DeviceFacts) -> str | None:
    """Hex digest of the identifying facts; None when the facts hold none (an unreachable device, old facts)."""
    ident = identity_facts(facts)
    if not ident:
        return None
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]


# Facts that tell one machine from another of the same model; without one, two "AMD EPYC, 2 cores" look alike.
STRONG_KEYS: frozenset[str] = frozenset({"machine_id_digest", "cpu_flags_digest", "serial"})


def same_machine(old_facts: DeviceFacts, new_facts: DeviceFacts) -> bool:
    """Whether two sets of facts whose fingerprints differ still describe one machine: every identifying fact both
    hold agrees, one of them tells machines apart, and only the newer set holds more (a runner that learnt to
    report another fact). Facts stored before identity was recorded never qualify: they cannot tell."""
    old, new = identity_facts(old_facts), identity_facts(new_facts)
    shared = set(old) & set(new)
    return bool(shared & STRONG_KEYS) and set(old) <= set(new) and all(old[k] == new[k] for k in shared)


def identity_name(inventory_name: str, fp: str) -> str:
    """The stored name of a further machine behind one inventory name: ``local@1a2b3c4d``."""
    return f"{inventory_name}@{fp[:8]}"


def describe(facts: DeviceFacts) -> str:
    """A short human description of the machine: ``AMD EPYC (family 25 model 17 stepping 1), 2 cores``."""
    parts = [cpu_name(facts) or "unknown CPU"]
    fms = _family_model_stepping(facts)
    if fms:
        parts[0] += f" ({fms})"
    if facts.get("cpu_count"):
        parts.append(f"{facts['cpu_count']} cores")
    return ", ".join(parts)


def _family_model_stepping(facts: DeviceFacts) -> str:
    """``family 25 model 17 stepping 1``, of what the facts hold."""
    named = (("family", facts.get("cpu_family")), ("model", facts.get("cpu_model_number")),
             ("stepping", facts.get("cpu_stepping")))  # fmt: skip
    return " ".join(f"{name} {value}" for name, value in named if value is not None)


def full_identity(facts: DeviceFacts, fp: str | None = None) -> str:
    """Everything that says which machine made a result, for a page that quotes its numbers: ``AMD EPYC
    (AuthenticAMD family 25 model 17 stepping 1; L1d 32K, L2 1024K, L3 32768K; flags digest …), 2 CPUs,
    23.5 GiB, Linux 6.18.44, Debian GNU/Linux 12; machine-id digest …, fingerprint …``."""
    cpu = cpu_name(facts) or "unknown CPU"
    detail = []
    vendor = " ".join(p for p in (facts.get("cpu_vendor"), _family_model_stepping(facts)) if p)
    if vendor:
        detail.append(vendor)
    caches = facts.get("cpu_caches") or {}
    if caches:
        detail.append(", ".join(f"{level} {size}" for level, size in caches.items()))
    if facts.get("cpu_flags_digest"):
        detail.append(f"flags digest {facts['cpu_flags_digest']}")
    parts = [f"{cpu} ({'; '.join(detail)})" if detail else cpu]
    cores = core_count(facts)
    if cores:
        parts.append(f"{cores} CPUs")
    memory, kernel, pretty = facts.get("mem_total_kib"), facts.get("kernel"), facts.get("os_pretty_name")
    if memory:
        parts.append(f"{memory / 2**20:.1f} GiB")
    if kernel:
        parts.append(f"{facts.get('system') or 'kernel'} {kernel}")
    if pretty:
        parts.append(pretty)
    tail = [f"{name} {value}" for name, value in (("machine-id digest", facts.get("machine_id_digest")),
                                                  ("serial", facts.get("serial"))) if value]  # fmt: skip
    if fp:
        tail.append(f"fingerprint {fp}")
    text = ", ".join(parts)
    return f"{text}; {', '.join(tail)}" if tail else text
