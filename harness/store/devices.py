"""Writes of devices: the facts of the machine behind each inventory name, kept apart per machine.

A device row is one machine. Its inventory name (``local``, ``rpi5``) and the fingerprint of its facts
(:mod:`harness.store.identity`) pick the row: the first machine seen under a name is stored under that name, a
further one as ``name@<fingerprint>``, so points of two machines never share a device and never a fit. A device
that cannot be reached keeps its last good facts; the error is recorded beside them (``last_error``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.facts import DeviceFacts, parse_facts
from harness.store.connection import StoreConnection
from harness.store.identity import fingerprint, identity_facts, identity_name, same_machine
from harness.store.rows import DeviceRecord
from harness.store.timestamps import now

ERROR_KEY = "error"  # facts of the form {"error": message} are an unreachable device, not its facts


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class DeviceWrites(StoreConnection):
    """Recording devices (part of :class:`harness.store.Store`)."""

    def record_device(self, name: str, transport: str, facts: Mapping[str, Any]) -> DeviceRecord:
        """Store the facts a device just gave under the row of its machine; returns where they went."""
        facts = parse_facts(facts)  # the store is a boundary too: a caller may hand in raw JSON
        fp = fingerprint(facts)
        stamp = now()
        with self._transaction("recording a device") as conn:
            rows = _rows(conn, name)
            row = _machine(rows, name, fp, facts)
            replaced = None
            if row is None:
                taken = {r.name for r in rows} | _names(conn, name)
                stored = identity_name(name, fp) if name in taken and fp is not None else name
                replaced = rows[0].name if rows else None
                conn.execute(
                    "INSERT INTO devices (name, inventory_name, transport, facts_json, fingerprint, first_seen, "
                    "last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (stored, name, transport, _json(dict(facts)), fp, stamp, stamp),
                )
            else:
                stored = row.name
                conn.execute(
                    "UPDATE devices SET transport = ?, facts_json = ?, fingerprint = coalesce(?, fingerprint), "
                    "last_seen = ?, inventory_name = ?, last_error = NULL, last_error_at = NULL WHERE name = ?",
                    (transport, _json(dict(facts)), fp, stamp, name, stored),
                )
            return DeviceRecord(stored, name, fp, replaced)

    def record_device_error(self, name: str, transport: str, error: str) -> DeviceRecord:
        """Note that a device could not be reached, keeping its last good facts; returns the row it went to (the
        machine last seen under that name, or a new row with no facts)."""
        stamp = now()
        with self._transaction("recording a device error") as conn:
            rows = _rows(conn, name)
            if rows:
                stored, fp = rows[0].name, rows[0].fingerprint
                conn.execute(
                    "UPDATE devices SET last_error = ?, last_error_at = ? WHERE name = ?", (error, stamp, stored)
                )
            else:
                stored, fp = name, None
                conn.execute(
                    "INSERT INTO devices (name, inventory_name, transport, facts_json, first_seen, last_seen, "
                    "last_error, last_error_at) VALUES (?, ?, ?, '{}', ?, ?, ?, ?)",
                    (name, name, transport, stamp, stamp, error, stamp),
                )
            return DeviceRecord(stored, name, fp)

    def upsert_device(self, name: str, transport: str, facts: Mapping[str, Any]) -> int:
        """Record a device's facts (:meth:`record_device`), or with ``{"error": message}`` its error
        (:meth:`record_device_error`); returns the row id."""
        if set(facts) == {ERROR_KEY}:
            record = self.record_device_error(name, transport, str(facts[ERROR_KEY]))
        else:
            record = self.record_device(name, transport, facts)
        with self._errors("reading devices"):
            return int(self._conn.execute("SELECT id FROM devices WHERE name = ?", (record.name,)).fetchone()[0])


@dataclass(frozen=True)
class _Row:
    name: str
    fingerprint: str | None
    facts: DeviceFacts


def _machine(rows: list[_Row], name: str, fp: str | None, facts: DeviceFacts) -> _Row | None:
    """The stored row of the machine these facts describe, or None for a machine not seen under this name.

    A row stored before fingerprints is never taken for a fingerprinted machine: its facts (CPU model name and
    core count) cannot tell two machines apart, so its results stay under the plain name, apart from new ones."""
    if fp is None:  # facts that identify nothing: the machine last seen under the name
        return rows[0] if rows else None
    same = next((r for r in rows if r.fingerprint == fp), None)
    if same is not None:
        return same
    # The same machine reporting one more identifying fact (a newer runner) keeps its row; so does a row that never
    # held identifying facts (first recorded while unreachable): nothing in it says it was another machine.
    return next(
        (
            r
            for r in rows
            if (r.fingerprint is not None and same_machine(r.facts, facts))
            or (r.fingerprint is None and not identity_facts(r.facts))
        ),
        None,
    )


def stored_facts(text: str | None) -> DeviceFacts:
    """The facts of a stored device row (``devices.facts_json``), typed; unreadable JSON reads as none."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return parse_facts(value) if isinstance(value, dict) else {}


def _rows(conn: sqlite3.Connection, inventory_name: str) -> list[_Row]:
    """The machines stored under an inventory name, most recently seen first."""
    rows = conn.execute(
        "SELECT name, fingerprint, facts_json FROM devices WHERE coalesce(inventory_name, name) = ? "
        "ORDER BY last_seen DESC, id DESC",
        (inventory_name,),
    ).fetchall()
    return [_Row(n, fp, stored_facts(facts)) for n, fp, facts in rows]


def _names(conn: sqlite3.Connection, name: str) -> set[str]:
    """Stored names equal to ``name`` whatever their inventory name (a row name is unique)."""
    return {r[0] for r in conn.execute("SELECT name FROM devices WHERE name = ?", (name,))}
