"""The state-store contract every backend keeps (Terraform's statemgr, in small).

``read`` returns the state with any journal checkpoints applied. ``checkpoint`` appends one
product's new record to a journal at O(1) cost, durable when it returns. ``write`` replaces
the whole state atomically and folds the journal away. ``lock`` excludes other writers and
describes its holder; ``force_unlock`` breaks a lock left by a process that is gone.
``tests/state/test_conformance.py`` runs the whole contract against every backend.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid as uuidlib
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Protocol

from reconciler.state.model import ProductRecord, State


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LockInfo:
    """Who holds the state lock, shown to anyone who has to wait for it."""

    id: str
    operation: str
    who: str
    pid: int
    host: str
    since: str

    @classmethod
    def new(cls, operation: str) -> LockInfo:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            who = str(os.getuid())
        return cls(
            id=str(uuidlib.uuid4()),
            operation=operation,
            who=who,
            pid=os.getpid(),
            host=socket.gethostname(),
            since=utcnow(),
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class StateStore(Protocol):
    """What every caller may use of a store, and all it may use: the backends (``FileStateStore``,
    ``PgStateStore``) each assert that they satisfy it, and ``open_store`` returns it.

    A store that also keeps a history of its writes satisfies ``StateHistory`` (state/history.py)
    as well; callers test that with ``isinstance``."""

    location: str
    """Where the state lives, as shown to users (a path, or a URL without its password)."""

    @property
    def backup_path(self) -> str | os.PathLike[str]:
        """Where the state as it was before the last ``write`` can be found: the file store's
        ``.backup`` file, or the way to PostgreSQL's history; shown after ``state rm``/``mv``."""

    def read(self) -> State:
        """The current state, journal applied; a fresh empty state if none exists yet.

        Raises StateCorruptError / StateVersionError, never returns a partial state."""

    def fold(self) -> State:
        """``read``, then (under the lock) compact any journal into the state, serial kept: what a
        writing command does first."""

    def checkpoint(self, state: State, product: str, record: ProductRecord | None) -> None:
        """Record one product's new record (None: forget it) durably; bumps ``state.serial`` in place."""

    def write(self, state: State, *, bump: bool = True) -> None:
        """Replace the stored state with ``state`` atomically, keep a backup, fold the journal.

        ``bump=False`` keeps ``state.serial`` (folding a journal, or a copy by ``state migrate``)."""

    def lock(self, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]:
        """Hold the writer lock for the block; StateLockedError naming the holder if not free in time."""

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Break the lock whose id is ``lock_id``; LockNotFoundError if that is not the holder."""
