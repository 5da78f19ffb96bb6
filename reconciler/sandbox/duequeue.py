"""Items that fall due at a monotonic time, for the sandbox's job and webhook threads.

Both the job scheduler and the webhook senders need the same thing: a min-heap of
(due time, item) that consumer threads block on until the earliest item is due, woken early
when something sooner is added or the queue closes. The queue shares its owner's
``Condition`` (an RLock), so an owner can pop an item and update its own counters in one
critical section, and its ``wait_idle`` sees both consistently.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class DueQueue(Generic[T]):
    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self._heap: list[tuple[float, int, T]] = []
        self._counter = itertools.count()  # ties keep insertion order; items are never compared
        self.closed = False

    def put(self, due: float, item: T) -> bool:
        """Add ``item`` due at ``due`` (time.monotonic()); False once the queue is closed."""
        with self._cond:
            if self.closed:
                return False
            heapq.heappush(self._heap, (due, next(self._counter), item))
            self._cond.notify_all()
            return True

    def take(self) -> T | None:
        """Block until the earliest item is due and return it; None once the queue is closed."""
        with self._cond:
            while not self.closed:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                self._cond.wait(None if not self._heap else self._heap[0][0] - now)
            return None

    def close(self, *, forget: bool = False) -> None:
        """Wake every consumer with None; ``forget`` drops the items still queued."""
        with self._cond:
            self.closed = True
            if forget:
                self._heap.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)
