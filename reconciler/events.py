"""What the executor reports while it works. It never prints; hooks turn events into output.

Terminal progress, plain log lines and the ``--format json`` event stream are all hooks
over these same events (Terraform's Hook), so the engine has one code path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Event:
    def to_json(self) -> dict[str, Any]:
        return {"event": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    triggers: int
    resumes: int
    batches: int


@dataclass(frozen=True)
class Triggered(Event):
    batch: int
    request_id: str
    accepted: list[str]
    rejected: dict[str, str]


@dataclass(frozen=True)
class Unknown(Event):
    """A render request failed in a way that leaves its outcome unknown (500/502/504, a read
    timeout, a dropped connection): never re-sent; its products' files will tell."""

    batch: int
    request_id: str
    products: list[str]
    reason: str


@dataclass(frozen=True)
class FoundLate(Event):
    """A retry found the results of the attempt given up earlier: recorded, not paid again."""

    product: str
    name: str | None


@dataclass(frozen=True)
class Waiting(Event):
    product: str
    name: str | None
    resumed: bool = False


@dataclass(frozen=True)
class Downloaded(Event):
    product: str
    kind: str
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Recorded(Event):
    product: str
    name: str | None
    attachments: int


@dataclass(frozen=True)
class Failed(Event):
    product: str
    name: str | None
    reason: str


@dataclass(frozen=True)
class Pruned(Event):
    product: str
    name: str | None
    deleted: bool
    deleted_files: list[str] = field(default_factory=list)
    """With ``--prune=delete``: the files deleted (the reconciler's own renders only)."""
    left_alone: list[str] = field(default_factory=list)
    """With ``--prune=delete``: every other file on the product, which was not touched."""


@dataclass(frozen=True)
class RunFinished(Event):
    rendered: int
    failed: int
    skipped: int
    bytes_downloaded: int
    seconds: float
    requests: int
    retries: int
    throttled_seconds: float
    failures: dict[str, str] = field(default_factory=dict)
    in_flight: int = 0
    """Products triggered and not yet recorded when the run ended (``--no-wait``, a signal)."""


class Hooks(Protocol):
    def on_event(self, event: Event) -> None: ...


class HookList:
    """Fan one event out to several hooks."""

    def __init__(self, *hooks: Hooks) -> None:
        self.hooks = hooks

    def on_event(self, event: Event) -> None:
        for hook in self.hooks:
            hook.on_event(event)
