"""The history a state backend keeps of its writes, for ``state history``, ``state show`` and audits.

Only backends that keep one implement ``StateHistory`` (PostgreSQL does; the JSON file's
history is its git log).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from reconciler.state.model import State


@dataclass(frozen=True)
class Version:
    """One serial of a state: who wrote it, how, and which products it changed."""

    serial: int
    lineage: str
    at: str
    operation: str
    who: str
    host: str
    pid: int
    db_user: str
    lock_id: str | None
    plan: str | None
    """The saved plan applied, as ``FILE sha256:HEX``; None for a plan made in the same run."""
    products: int
    """How many products this serial changed."""
    changes: dict[str, str] = field(default_factory=dict)
    """Some of them (or the one asked about): uuid → status written, or ``forgotten``."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class StateHistory(Protocol):
    def history(self, product: str | None = None, limit: int = 50) -> list[Version]:
        """The newest ``limit`` versions, newest first; only those that changed ``product`` if given."""

    def read_serial(self, serial: int) -> State:
        """The state as it was at ``serial`` of its current lineage; StateError if not in the history."""
