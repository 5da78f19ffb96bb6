"""Servers of finished tests, stopped on background threads.

Stopping a sandbox waits out its servers' shutdown polls (uvicorn's 0.1 s tick, the storage
listener's 0.2 s poll): 0.2 to 0.4 s of every test that starts one, spent doing nothing. A
fixture hands its server's ``stop`` here instead, so that wait overlaps the next test. Each
server still stops completely: the session waits for every stop at its end, and a stop that
fails or hangs fails the session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Reaper:
    """Runs ``stop`` callables on threads of their own; ``join`` waits for all and reports failures."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def stop(self, stop: Callable[[], object], what: str) -> None:
        """Call ``stop()`` (stopping ``what``) on a background thread."""

        def run() -> None:
            try:
                stop()
            except BaseException as exc:  # reported by join, at the end of the session
                with self._lock:
                    self._errors.append(f"stopping {what}: {exc!r}")

        thread = threading.Thread(target=run, name=f"stop {what}", daemon=True)
        thread.start()
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def join(self, timeout: float = 60.0) -> None:
        """Wait for every stop; raise AssertionError naming those that failed or did not end."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        hung = [t.name for t in threads if t.is_alive()]
        problems = self._errors + [f"{name}: still running after {timeout:g} s" for name in hung]
        assert not problems, "servers of finished tests did not stop cleanly:\n" + "\n".join(problems)
