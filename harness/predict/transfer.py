"""A predictor as a file: built once on a device, exported, imported by the rest of a team.

The file is JSON (the predictor's own JSON, whose regressors are LightGBM's text format): nothing in it is executed
on import. It is tagged with what makes it valid: the device's name and identity (fingerprint and description of
the machine it was built on), the runtime, threads and precision, and the library and runtime versions. An import
checks the document, loads every regressor once, and refuses a file whose device name already stands for another
machine in the database (``--as`` stores it under another name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.core.errors import FlopgapError
from devices.facts import DeviceFacts
from harness.predict.predictor import KernelPredictor
from harness.store import Store
from harness.store.devices import stored_facts
from harness.store.identity import describe, fingerprint
from harness.store.predictor_tables import PredictorRow

FILE_KIND = "flopgap-predictor"
FILE_VERSION = 1
_CONTEXT_KEYS = ("device", "runtime", "threads", "precision", "library")


@dataclass(frozen=True)
class Imported:
    predictor_id: int
    device: str
    runtime: str
    threads: int
    precision: str
    built_on: str  # the description of the machine it was built on


def _device_facts(store: Store, name: str) -> DeviceFacts:
    frame = store.devices_frame()
    hit = frame[frame["name"] == name]
    return stored_facts(hit["facts_json"].iloc[-1]) if not hit.empty else {}


def predictor_document(store: Store, row: PredictorRow) -> dict[str, Any]:
    """The exported form of a stored predictor, with its device's identity from the same database."""
    facts = _device_facts(store, row.device)
    return {
        "kind": FILE_KIND,
        "file_version": FILE_VERSION,
        "device": row.device,
        "runtime": row.runtime,
        "threads": row.threads,
        "precision": row.precision,
        "library": row.library,
        "versions": row.versions,
        "created_at": row.created_at,
        "device_identity": {
            "fingerprint": fingerprint(facts),
            "description": describe(facts) if facts else None,
            "facts": facts,
        },
        "summary": row.summary,
        "predictor": row.model,
    }


def export_predictor(store: Store, predictor_id: int, path: Path) -> dict[str, Any]:
    """Write predictor ``predictor_id`` of ``store`` to ``path``; returns the document written."""
    row = store.predictor(predictor_id)
    if row is None:
        raise FlopgapError(f"no predictor {predictor_id} in {store.path}; 'flopgap predictor list' shows the ids")
    document = predictor_document(store, row)
    try:
        path.write_text(json.dumps(document, indent=1) + "\n")
    except OSError as exc:
        raise FlopgapError(f"cannot write {path}: {exc.strerror or exc}; choose another path") from None
    return document


def read_predictor_file(path: Path) -> dict[str, Any]:
    """The checked document of a predictor file: its kind and version, its context, and a predictor whose every
    regressor loads."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise FlopgapError(f"no file {path}; give the path 'flopgap predictor export' wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlopgapError(f"{path} is not a flopgap predictor file ({exc}); export one with 'flopgap predictor "
                           "export ID FILE'") from None  # fmt: skip
    if not isinstance(document, Mapping) or document.get("kind") != FILE_KIND:
        raise FlopgapError(f"{path} is not a flopgap predictor file; write one with 'flopgap predictor export ID FILE'")
    if document.get("file_version") != FILE_VERSION:
        raise FlopgapError(
            f"{path} is a predictor file of version {document.get('file_version')}, this flopgap reads version "
            f"{FILE_VERSION}; export it again with this version"
        )
    missing = [k for k in (*_CONTEXT_KEYS, "predictor") if document.get(k) is None]
    if missing:
        raise FlopgapError(f"{path} lacks {', '.join(missing)}; export it again with 'flopgap predictor export'")
    predictor = KernelPredictor.from_json(document["predictor"])  # refuses another version's features, in one line
    for model in [*predictor.models.values(), *predictor.groups.values(), *predictor.variants.values(),
                  predictor.fallback]:  # fmt: skip
        if model.booster_text is not None:
            try:
                model.booster()
            except Exception as exc:  # LightGBM raises its own LightGBMError on a damaged model text
                raise FlopgapError(f"{path}: a regressor of type {model.type} does not load ({exc}); export the "
                                   "predictor again") from None  # fmt: skip
    return dict(document)


def import_predictor(store: Store, path: Path, device: str | None = None) -> Imported:
    """Store the predictor of ``path`` (under ``device``, else its own device name); returns what was stored."""
    document = read_predictor_file(path)
    name = device or str(document["device"])
    identity = document.get("device_identity") or {}
    theirs = identity.get("fingerprint")
    ours = fingerprint(_device_facts(store, name))
    if theirs and ours and theirs != ours:
        raise FlopgapError(
            f"device '{name}' in {store.path} is another machine (fingerprint {ours}) than the predictor was built on "
            f"({theirs}: {identity.get('description')}); import it under another name with --as"
        )
    predictor_id = store.add_predictor(
        name,
        str(document["runtime"]),
        int(document["threads"]),
        str(document["precision"]),
        str(document["library"]),
        dict(document.get("versions") or {}),
        document["predictor"],
        {**dict(document.get("summary") or {}), "imported_from": str(path), "built_on": identity},
    )
    return Imported(predictor_id, name, str(document["runtime"]), int(document["threads"]),
                    str(document["precision"]), str(identity.get("description") or "unknown machine"))  # fmt: skip
