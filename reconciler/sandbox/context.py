"""What every route of a running sandbox shares (``request.app.state.ctx``), and what it was sent.

Apart from the app and the envelope on purpose: the envelope and the routes name the context's
type, and the context is made of the store, the job engine, the fault injector and the webhook
dispatcher, none of which knows about answers or routes. So the imports run one way: routes and
envelope above, the context in the middle, the engines below.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.faults import FaultInjector
from reconciler.sandbox.jobs import JobEngine
from reconciler.sandbox.readings import Readings
from reconciler.sandbox.store import Store
from reconciler.sandbox.users import Directory
from reconciler.sandbox.webhooks import WebhookDispatcher


class RequestCounts:
    """Every HTTP request the sandbox was sent, by ``"METHOD /path"``: the platform's own count,
    for benchmarks and tests that must not take the client's word for how many it sent.
    Requests answered with an injected fault count too; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, method: str, path: str) -> None:
        with self._lock:
            self._counts[f"{method} {path}"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


@dataclass
class SandboxContext:
    """Everything a route needs; one per running sandbox (``request.app.state.ctx``)."""

    config: SandboxConfig
    store: Store
    jobs: JobEngine
    webhooks: WebhookDispatcher
    faults: FaultInjector
    users: Directory
    url_secret: bytes  # signs download and upload URLs; persisted so URLs survive a restart
    readings: Readings  # replaced whole (``Sandbox.set_readings``); every request reads it once or more
    storage_port: int | None = None  # the storage listener's port (signed download URLs), once it runs
    requests: RequestCounts = field(default_factory=RequestCounts)  # what the sandbox was sent

    @property
    def user(self) -> dict[str, Any]:
        """The default user's credentials (the Owner)."""
        return {"email": self.users.default.email, "password": self.users.default.password}
