"""SIGTERM and SIGINT during ``apply`` and ``collect``: stop cleanly, continue later.

A CI job at its time limit, or cancelled, is sent a signal (GitHub Actions: SIGINT, then
SIGTERM a few seconds later, then SIGKILL; GitLab and most runners: SIGTERM). Both take the
same path, so whichever comes first is enough: the run triggers nothing more, lets the polls
and downloads under way finish and checkpoint, folds the journal, releases the lock and exits
3 naming the command that continues (``RunInterruptedError``). Ctrl-C at a terminal is the
same SIGINT, and deserves the same care.

While the run executes (``attach``ed to it), the handler only records the signal and tells
the run (``Executor.interrupt`` takes no lock), so it can never deadlock or tear a checkpoint.
Before (planning, checking credentials, the confirmation prompt) and after (the summary), no
render is being waited for: SIGTERM raises RunInterruptedError at once and SIGINT raises
KeyboardInterrupt, as Python's own handler would, so Ctrl-C at the prompt still stops it at
once (every write there is an atomic replace, safe to abandon). A second signal gets the
previous handlers back, so it stops the process at once: still safe, as after a crash (every
checkpoint is fsync'd, the next run resumes), only without the summary.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from reconciler.errors import RunInterruptedError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Which stop signal arrived (``received``), and the run to tell (``attach``)."""

    def __init__(self, again: str) -> None:
        self.received: str | None = None
        self._again = again  # the command that starts over, for a stop outside the run
        self._target: Callable[[str], None] | None = None
        self._ran = False
        self._previous: dict[int, Any] = {}

    def attach(self, target: Callable[[str], None]) -> None:
        """From now on, tell ``target`` of a signal instead of raising (at once, if one came)."""
        self._target = target
        if self.received is not None:
            target(self.received)

    def detach(self) -> None:
        """The run is over: a signal raises again."""
        self._target, self._ran = None, True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        self._restore()  # a second signal stops the process at once
        if self._target is not None:
            self._target(self.received)
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        when = "after the run was recorded" if self._ran else "before anything was triggered"
        raise RunInterruptedError(
            f"stopped by {self.received} {when}", in_flight=[], not_triggered=[], hint=self._again
        )

    def _install(self) -> None:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


@contextmanager
def stop_signals(again: str) -> Iterator[StopSignals]:
    """Catch SIGTERM and SIGINT for the block (in the main thread: signals are delivered to it
    alone; elsewhere nothing is installed). ``again``: the hint for a stop outside the run."""
    stops = StopSignals(again)
    main = threading.current_thread() is threading.main_thread()
    if main:
        stops._install()
    try:
        yield stops
    finally:
        if main:
            stops._restore()
