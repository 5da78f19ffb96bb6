"""The state-store contract every backend keeps (Terraform's statemgr, in small).

``read`` returns the state with any journal checkpoints applied. ``checkpoint`` appends one
product's new record to a journal at O(1) cost, durable when it returns. ``write`` replaces
the whole state atomically and folds the journal away. ``lock`` excludes other writers and
describes its holder; ``force_unlock`` breaks a lock left by a process that is gone.
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
    location: str

    def read(self) -> State:
        """The current state, journal applied; a fresh empty state if none exists yet.

        Raises StateCorruptError / StateVersionError, never returns a partial state."""

    def checkpoint(self, state: State, product: str, record: ProductRecord | None) -> None:
        """Record one product's new record (None: forget it) durably; bumps ``state.serial`` in place."""

    def write(self, state: State) -> None:
        """Replace the stored state with ``state`` atomically, keep a backup, fold the journal."""

    def lock(self, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]:
        """Hold the writer lock for the block; StateLockedError naming the holder if not free in time."""

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Break the lock whose id is ``lock_id``; LockNotFoundError if that is not the holder."""
