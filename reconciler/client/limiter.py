"""One limiter shared by every thread that talks to the API, and the counters for the summary.

Why: the executor polls and downloads from a thread pool. When the platform answers 429, every
worker must slow down, not only the one that was told; otherwise the other N-1 workers keep
hammering the API, collect their own 429s and the run fails instead of slowing down.

Three mechanisms, checked in this order for every API request:

1. a concurrency cap (a semaphore of ``max_concurrency`` slots),
2. a shared "not before" gate: a 429 closes it until its Retry-After has passed, and every
   caller waits for it to open again,
3. an optional requests-per-second cap (evenly spaced start times).

Invariants: the gate only ever moves later (``block_for`` never shortens a pause someone else
asked for); a thread never holds a slot while it waits for the login lock (see ``api.py``), so
logging in can always get a slot.

``ClientStats`` collects what the final summary reports. All updates go through one lock;
``snapshot()`` returns an immutable copy.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StatsSnapshot:
    """Counters at one moment; plain data for the summary view."""

    requests: dict[str, int] = field(default_factory=dict)
    """Requests sent, by endpoint template (``"GET /v1/products/{uuid}"``); retries included."""
    statuses: dict[int, int] = field(default_factory=dict)
    """Responses received, by HTTP status."""
    retries: int = 0
    """Attempts repeated after a transient failure (429, 5xx, connection trouble)."""
    relogins: int = 0
    """Fresh logins after a 401."""
    throttled_seconds: float = 0.0
    """Sum over callers of the time spent waiting because the API throttled us (429)."""
    gate_closed_seconds: float = 0.0
    """Wall-clock time during which the shared gate was closed by 429s."""
    resigned_urls: int = 0
    """Signed download URLs that had expired and were signed again."""
    bytes_downloaded: int = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        """Flat summary: ``requests`` is the total, ``requests_by_endpoint`` the breakdown."""
        return {
            "requests": self.total_requests,
            "requests_by_endpoint": dict(self.requests),
            "statuses": dict(self.statuses),
            "retries": self.retries,
            "relogins": self.relogins,
            "throttled_seconds": round(self.throttled_seconds, 3),
            "gate_closed_seconds": round(self.gate_closed_seconds, 3),
            "resigned_urls": self.resigned_urls,
            "bytes_downloaded": self.bytes_downloaded,
        }

    def get(self, key: str, default: Any = None) -> Any:
        """``as_dict().get(key, default)``, so a snapshot reads like the summary mapping."""
        return self.as_dict().get(key, default)


class ClientStats:
    """Thread-safe counters; the client updates them, the summary reads ``snapshot()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._numbers: dict[str, float] = dict.fromkeys(
            (
                "retries",
                "relogins",
                "throttled_seconds",
                "gate_closed_seconds",
                "resigned_urls",
                "bytes_downloaded",
            ),
            0,
        )

    def count_request(self, endpoint: str) -> None:
        with self._lock:
            self._requests[endpoint] += 1

    def count_status(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    def add(self, name: str, amount: float = 1) -> None:
        with self._lock:
            self._numbers[name] += amount

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            n = self._numbers
            return StatsSnapshot(
                requests=dict(self._requests),
                statuses=dict(self._statuses),
                retries=int(n["retries"]),
                relogins=int(n["relogins"]),
                throttled_seconds=n["throttled_seconds"],
                gate_closed_seconds=n["gate_closed_seconds"],
                resigned_urls=int(n["resigned_urls"]),
                bytes_downloaded=int(n["bytes_downloaded"]),
            )


class Limiter:
    """Concurrency cap + shared 429 gate + optional rate cap. Safe to share between threads."""

    def __init__(
        self,
        *,
        max_concurrency: int,
        requests_per_second: float | None = None,
        stats: ClientStats | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._stats = stats or ClientStats()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._gate_open_at = 0.0  # monotonic time before which nobody may send
        self._next_start = 0.0  # rate cap: earliest start of the next request

    # -- the shared gate -------------------------------------------------------------------

    def block_for(self, seconds: float) -> None:
        """Close the gate for everyone for ``seconds`` from now (never shortens a pause)."""
        with self._lock:
            now = self._clock()
            until = now + max(0.0, seconds)
            if until > self._gate_open_at:
                self._stats.add("gate_closed_seconds", until - max(now, self._gate_open_at))
                self._gate_open_at = until

    def gate_remaining(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        with self._lock:
            return max(0.0, self._gate_open_at - self._clock())

    def wait_gate(self) -> float:
        """Block until the gate is open; return the seconds waited (counted as throttled)."""
        waited = 0.0
        while (remaining := self.gate_remaining()) > 0:
            # A little jitter so that the workers released together do not all hit the API in
            # the same millisecond (which tends to earn the next 429 at once).
            pause = remaining + random.uniform(0, min(0.25, remaining * 0.1))
            self._sleep(pause)
            waited += pause
        if waited:
            self._stats.add("throttled_seconds", waited)
        return waited

    # -- slots -----------------------------------------------------------------------------

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one concurrency slot for the duration of one request (after the gate opens)."""
        self._slots.acquire()
        try:
            self.wait_gate()
            self._wait_rate()
            yield
        finally:
            self._slots.release()

    def _wait_rate(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        if start > now:
            self._sleep(start - now)
