"""The few edits of the recorded state people make by hand (``reconciler state``), and the reads
they are checked against. They change the state and never the platform.

``forget`` and ``move`` take the writer lock, check every uuid before changing anything (an
unknown uuid fails the whole edit), and write the state once: the store keeps the previous
state as its backup and bumps the serial, so a plan saved before the edit is refused as stale
instead of acting on records that moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from reconciler.errors import ReconcilerError, StateError
from reconciler.loader import load_desired
from reconciler.locations import state_flag
from reconciler.planner import build_plan
from reconciler.state import ProductRecord, State, StateStore
from reconciler.state.history import StateHistory

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class NotInStateError(StateError):
    """Products named on the command line that the state does not record."""

    def __init__(self, location: str, uuids: list[str]) -> None:
        super().__init__(
            f"not in the state {location}: {', '.join(uuids)}",
            hint=f"'reconciler state list{state_flag(location)}' shows the recorded products",
        )
        self.uuids = uuids


def require(location: str, state: State, uuids: list[str]) -> None:
    """NotInStateError naming every uuid of ``uuids`` the state does not record."""
    unknown = [u for u in uuids if u not in state.products]
    if unknown:
        raise NotInStateError(location, unknown)


def uuids_of(values: tuple[str, ...]) -> list[str]:
    """Uuids as typed, normalised (trimmed, lower case), each once, in the order given."""
    return list(dict.fromkeys(v.strip().lower() for v in values))


@dataclass
class Listing:
    """The records ``state list`` selected (uuid order), with the planned action when asked."""

    state: State
    products: list[tuple[str, ProductRecord, str | None]]


def select(
    state: State,
    location: str,
    *,
    statuses: tuple[str, ...] = (),
    actions: tuple[str, ...] = (),
    manifests: list[Path] | None = None,
    pattern: str | None = None,
) -> Listing:
    """The recorded products with one of ``statuses``, one of the planned ``actions`` (planned from
    ``manifests``) and a uuid or name matching the glob ``pattern``; each filter only if given."""
    planned: dict[str, str] = {}
    if actions:
        plan = build_plan(load_desired(manifests or [Path("manifests")]), state, location=location)
        planned = {a.product: a.kind.value for a in plan.actions}
    chosen = []
    for uuid, rec in sorted(state.products.items()):
        if statuses and rec.status.value not in statuses:
            continue
        if actions and planned.get(uuid) not in actions:
            continue
        if pattern and not (
            fnmatchcase(uuid, pattern.lower()) or (rec.name and fnmatchcase(rec.name, pattern))
        ):
            continue
        chosen.append((uuid, rec, planned.get(uuid) if actions else None))
    return Listing(state, chosen)


@dataclass
class Edit:
    """What an edit did: the records it took, the serials before and after, where the old state is."""

    records: dict[str, ProductRecord]
    before: int
    after: int
    backup: str


def forget(store: StateStore, uuids: list[str], *, lock_timeout: float = 0.0) -> Edit:
    """Drop the records of ``uuids`` from the state; their renders stay on the platform."""
    with store.lock("state rm", timeout=lock_timeout):
        state = store.fold()
        require(store.location, state, uuids)
        before = state.serial
        forgotten = {uuid: state.products.pop(uuid) for uuid in uuids}
        store.write(state)
    return Edit(forgotten, before, state.serial, str(store.backup_path))


def move(store: StateStore, old: str, new: str, *, lock_timeout: float = 0.0) -> Edit:
    """Move the record of ``old`` to ``new`` (the product's uuid changed on the platform)."""
    if not _UUID.match(new):
        raise ReconcilerError(
            f"{new!r} is not a product uuid", hint="expected the form 3f2b8c1e-0000-4000-8000-000000000000"
        )
    if old == new:
        raise ReconcilerError(f"{old} is both the old and the new uuid; nothing to move")
    with store.lock("state mv", timeout=lock_timeout):
        state = store.fold()
        require(store.location, state, [old])
        if new in state.products:
            raise StateError(
                f"{new} is already in the state {store.location}; refusing to overwrite its record",
                hint=f"run 'reconciler state rm{state_flag(store.location)} {new}' first if that "
                "record is obsolete",
            )
        before = state.serial
        rec = state.products.pop(old)
        state.products[new] = rec
        store.write(state)
    return Edit({old: rec}, before, state.serial, str(store.backup_path))


def history_of(store: StateStore) -> StateHistory:
    """The store's history; StateError for a backend that keeps none (the JSON file)."""
    if not isinstance(store, StateHistory):
        raise StateError(
            f"{store.location} is a JSON file: it keeps no history of its own (only its previous "
            "version, as .backup)",
            hint=f"a postgresql:// state keeps every serial: 'reconciler state migrate {store.location} "
            "postgresql://HOST/DBNAME' copies it there; then pass that URL as --state",
        )
    return store
