"""Copying a state between stores (``reconciler state migrate FROM TO``): file ↔ PostgreSQL.

The copy keeps lineage and serial, so a plan saved against FROM applies to TO, and TO's
serials continue FROM's. Both stores are locked for the copy, in one global order (by
location) so two opposite migrations cannot deadlock. A target that already holds a state
is replaced only when forced; FROM is never changed.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from reconciler.errors import StateError
from reconciler.state.model import State
from reconciler.state.store import StateStore


@dataclass(frozen=True)
class Copied:
    state: State
    replaced: State | None
    """What the target held before, if it held anything."""
    unchanged: bool = False
    """The target already held this lineage at this serial: nothing was written."""


def _holds_something(state: State) -> bool:
    return bool(state.lineage or state.products or state.serial)


def copy_state(
    source: StateStore, target: StateStore, *, force: bool = False, lock_timeout: float = 0.0
) -> Copied:
    """Copy ``source``'s state into ``target`` . StateError if there is nothing
    to copy, if they are the same store, or if the target holds a state and not ``force``."""
    if source.location == target.location:
        raise StateError(f"FROM and TO are the same state ({source.location})")
    with ExitStack() as stack:
        for store in sorted((source, target), key=lambda s: str(s.location)):
            stack.enter_context(store.lock("state migrate", timeout=lock_timeout))
        state = source.read()
        if not _holds_something(state):
            raise StateError(
                f"{source.location} holds no state yet; nothing to copy",
                hint="check FROM: it is the state to copy, TO is where it goes",
            )
        existing = target.read()
        if (existing.lineage, existing.serial) == (state.lineage, state.serial):
            return Copied(state, existing, unchanged=True)
        if _holds_something(existing) and not force:
            raise StateError(
                f"{target.location} already holds a state (lineage {existing.lineage or 'not set'}, serial "
                f"{existing.serial}, {len(existing.products)} products); refusing to replace it",
                hint="pass --force to replace it (a file keeps the old one as .backup; PostgreSQL keeps it "
                "in its history)",
            )
        target.write(state, bump=False)
        return Copied(state, existing if _holds_something(existing) else None)
