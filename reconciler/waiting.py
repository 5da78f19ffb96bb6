"""How long apply waits for a render that may never come, judged from what the run has seen.

What the platform lets a poller see (vntana-docs-facts.md §4, §5, §7) is attachments, and
nothing else: no endpoint reports a render job's status, a failed job replaces nothing and
leaves no trace, the trigger's answer names no job, and the webhook payload names no trigger.
So without webhooks a failed render is known only by the absence of its files, and a trigger
answered 500 (or cut off) is known to have been accepted only when its files appear. The
question is how long an absence must last.

One flat ``--timeout`` sized for the slowest render makes every failure cost that long (with
20% of the requests failing, 40 products took 373 s instead of 11 s: issue 13). Instead, per
job a product still lacks (the still; the turntable, i.e. the MP4 and the GIF, which one job
makes), apply gives it up when both hold:

  * it has waited as long as the longest job of that kind this run has seen succeed (scaled
    up when its spec is heavier: pixels for a still, frames x pixels for a turntable, x1.5
    with a GIF), and
  * the platform has delivered nothing (of any kind: stills and turntables share its queue)
    for QUIET times the longer of the fastest job of this run and the longest pause between
    two deliveries seen so far, plus a slack: it has stopped working, at least for us.

Job times are read from the platform's own clock where it gives one (the trigger's ``Date``
to the file's ``created``), so how often apply happens to look does not stretch them. A
platform working through a queue, in waves or one by one, keeps delivering, so a render still
queued is not given up while others finish around it (a pause between two waves is shorter
than a job); once it has drained, a missing result is given up about two job lengths later,
whatever ``--timeout`` says. Until this run has seen a job of a kind succeed,
only ``--timeout`` bounds the wait for it: no time can be judged without one. A product given
up is recorded failed, saying why; if its files come late after all, the next apply finds
them before it triggers anything and records them without paying again (executor.py).

Nothing is learnt across runs: an earlier run's times say little about the platform's queue
now, and a guess that is too short would be paid for twice.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

QUIET = 2.0
"""The platform is taken to have stopped when it has delivered nothing for this many times its
pace (the fastest job, or the longest pause between deliveries, whichever is longer)."""

MIN_SLACK = 5.0
"""Seconds added to every quiet period: listing lags, a poll interval, a clock tick."""

JOBS = ("still", "turntable")
"""The platform's jobs per trigger (sandbox and renders.md): the still, and the turntable (MP4 and,
when asked, the GIF, which appear together)."""


A = TypeVar("A")
"""An attachment as the caller lists it (the client's wire model)."""


def job_of(kind: str) -> str:
    """The job a result kind comes from: ``gif`` and ``turntable`` are one turntable job."""
    return "still" if kind == "still" else "turntable"


def work(job: str, spec: dict[str, Any]) -> float:
    """A rough size of the rendering work of one job, for scaling observed times."""
    if job == "still":
        return float(spec.get("imageWidth", 1) * spec.get("imageHeight", 1))
    tt = spec.get("turntable", {})
    frames = float(tt.get("imageCount", 1) * tt.get("width", 1) * tt.get("height", 1))
    return frames * (1.5 if tt.get("includeGif") else 1.0)


@dataclass
class PendingRender:
    """A product whose results apply is waiting for (triggered this run, or resumed)."""

    product: str
    name: str | None
    started: float
    """``time.monotonic()`` of the trigger (for a resumed one: its write-ahead time, mapped)."""
    waiting_since: float
    """``time.monotonic()`` when this run began waiting for it (``--timeout`` counts from here)."""
    since: datetime
    """Files created at or after this (platform clock, less a slack) may be its results."""
    old: set[str]
    """Files that were there before the trigger: never taken for results."""
    spec: dict[str, Any]
    resumed: bool = False
    unknown: str | None = None
    """The trigger's outcome is unknown (500/502/504, read timeout, dropped connection): why."""
    seen: dict[str, float] = field(default_factory=dict)
    """job → ``time.monotonic()`` when its results were first listed."""
    accepted: datetime | None = None
    """When the platform accepted the trigger (its ``Date``), to time jobs on the platform's clock."""
    due: float = 0.0
    last_poll: float = -1.0
    polls: int = 0

    @property
    def want_gif(self) -> bool:
        return bool(self.spec.get("turntable", {}).get("includeGif"))


class Expectations:
    """Observed render times of this run, per job, and the deadlines they give. Thread-safe."""

    def __init__(self, timeout: float, poll_interval: float) -> None:
        self.timeout = timeout
        self.slack = max(MIN_SLACK, 3 * poll_interval)
        self._lock = threading.Lock()
        # job -> {work of a spec: the longest it took}: a few entries per distinct spec, so a
        # deadline costs the same with 40 products in flight or 100,000.
        self._seen: dict[str, dict[float, float]] = {job: {} for job in JOBS}
        self._last: float | None = None  # time.monotonic() of the latest delivery noticed
        self._pause = 0.0  # the longest pause between two deliveries noticed
        self._fastest: float | None = None

    def observe(self, job: str, seconds: float, spec: dict[str, Any], at: float | None = None) -> None:
        """A result of ``job`` took ``seconds`` from its trigger; noticed at ``time.monotonic()`` ``at``."""
        at = time.monotonic() if at is None else at
        seconds = max(seconds, 0.0)
        with self._lock:
            done = max(work(job, spec), 1.0)
            self._seen[job][done] = max(self._seen[job].get(done, 0.0), seconds)
            if self._last is not None:
                self._pause = max(self._pause, at - self._last)
            self._last = at if self._last is None else max(self._last, at)
            self._fastest = seconds if self._fastest is None else min(self._fastest, seconds)

    def expected(self, job: str, spec: dict[str, Any]) -> float | None:
        """The longest time ``job`` took in this run, scaled to ``spec``; None before any."""
        size = max(work(job, spec), 1.0)
        with self._lock:
            observed = list(self._seen[job].items())
        if not observed:
            return None
        return max(seconds * max(1.0, size / done) for done, seconds in observed)

    def quiet(self) -> float | None:
        """How long the platform must deliver nothing before a missing result is given up."""
        with self._lock:
            if self._fastest is None:
                return None
            return QUIET * max(self._fastest, self._pause) + self.slack

    def deadline(self, pending: PendingRender) -> tuple[float, str]:
        """(``time.monotonic()`` at which ``pending`` is given up, why it would be)."""
        hard = pending.waiting_since + self.timeout
        best, why = hard, f"no results within {self.timeout:g} s"
        quiet = self.quiet()
        with self._lock:
            last = self._last
        for job in (j for j in JOBS if j not in pending.seen):
            expected = self.expected(job, pending.spec)
            if expected is None or quiet is None or last is None:
                continue  # nothing to compare this job with yet: only the timeout bounds it
            soft = max(pending.started + expected, last + quiet)
            if soft < best:
                best = soft
                why = (
                    f"no {job} within {soft - pending.started:.0f} s: the longest {job} of this run took "
                    f"{expected:.1f} s (scaled to its spec), and the platform delivered nothing for {quiet:.0f} s; "
                    "the platform shows a poller no failed renders, only missing files"
                )
        return best, why


class Scheduler:
    """Polls the pending renders in turn, at most ``parallelism`` per poll interval.

    Waiting holds no worker: a product between polls is an entry in a heap, so a render that
    never comes does not hold up the others (issue 13). The poll budget is what apply spent
    when each of ``parallelism`` workers waited for one product (``parallelism`` polls per
    interval): polling every pending product that often would multiply the API requests by
    the number of products in flight. Within the budget the product looked at longest ago goes
    first (new ones in trigger order), so a render that never comes takes its turn and no more;
    a product named by ``nudge`` (a webhook delivery about it) goes before any.

    ``poll(pending)`` returns True once the product is settled (recorded, failed or left for
    the next run); otherwise it is due again one interval later, never later than
    its deadline. ``run`` calls ``more()`` for the products of the next trigger until it returns
    None, and returns when nothing is pending or, after ``stop()``, when the running polls are
    done."""

    def __init__(
        self,
        poll: Callable[[PendingRender], bool],
        expectations: Expectations,
        *,
        parallelism: int,
        interval: float,
    ) -> None:
        self._poll = poll
        self._expect = expectations
        self._parallelism = parallelism
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: dict[str, PendingRender] = {}
        self._rank: dict[str, int] = {}  # trigger order: lower polls first
        self._later: list[tuple[float, int, str]] = []  # (due, rank, product), lazily invalidated
        self._ready: list[
            tuple[int, float, int, str]
        ] = []  # (0 if nudged else 1, last polled, rank, product)
        self._order = itertools.count()
        self._nudged: set[str] = set()
        self._tokens = float(parallelism)
        self._refilled = time.monotonic()
        self._wake = threading.Event()
        self.stopped = False

    def add(self, pending: PendingRender) -> None:
        with self._lock:
            self._rank[pending.product] = next(self._order)
            self._pending[pending.product] = pending
            # A resumed render may be done already: look at once; a fresh trigger after an interval.
            self._later_at(pending, time.monotonic() + (0.0 if pending.resumed else self._interval))
        self._wake.set()

    def nudge(self, product: str) -> None:
        """Poll ``product`` next (any thread)."""
        with self._lock:
            pending = self._pending.get(product)
            if pending is None:
                return
            self._nudged.add(product)
            if pending.due != math.inf:
                self._later_at(pending, time.monotonic())
        self._wake.set()

    def stop(self) -> None:
        """No further polls; ``run`` returns once the running ones are done."""
        with self._lock:
            self.stopped = True
        self._wake.set()

    def waiting(self) -> list[str]:
        with self._lock:
            return sorted(self._pending)

    def run(self, pool: Executor, more: Callable[[], list[PendingRender] | None]) -> None:
        running: dict[Future[bool], PendingRender] = {}
        feeding = True
        while True:
            if feeding and not self.stopped:
                batch = more()
                if batch is None:
                    feeding = False
                else:
                    for pending in batch:
                        self.add(pending)
            else:
                feeding = False
            self._reap(running)
            wait = self._submit(pool, running)
            with self._lock:
                done = not running and (not self._pending or self.stopped)
            if done and not feeding:
                return
            if feeding:
                continue  # the next trigger at once; the polls submitted run meanwhile
            self._wake.wait(min(1.0, wait))
            self._wake.clear()

    def _later_at(self, pending: PendingRender, due: float) -> None:
        pending.due = due
        heapq.heappush(self._later, (due, self._rank[pending.product], pending.product))

    def _reap(self, running: dict[Future[bool], PendingRender]) -> None:
        for future in [f for f in running if f.done()]:
            pending = running.pop(future)
            settled = future.result()  # poll catches what it expects; anything else is a bug
            now = time.monotonic()
            with self._lock:
                if settled:
                    self._pending.pop(pending.product, None)
                    self._nudged.discard(pending.product)
                    continue
                if self.stopped:
                    continue
                due = now if pending.product in self._nudged else now + self._interval
                deadline, _ = self._expect.deadline(pending)
                self._later_at(pending, min(due, max(deadline, now)))

    def _submit(self, pool: Executor, running: dict[Future[bool], PendingRender]) -> float:
        """Start the polls due and within budget; the seconds until the next may be."""
        now = time.monotonic()
        with self._lock:
            while self._later and self._later[0][0] <= now:
                due, rank, product = heapq.heappop(self._later)
                pending = self._pending.get(product)
                if pending is not None and pending.due == due:
                    pending.due = -1.0  # ready: in ``_ready`` until polled
                    heapq.heappush(
                        self._ready, (0 if product in self._nudged else 1, pending.last_poll, rank, product)
                    )
            rate = self._parallelism / self._interval
            self._tokens = min(float(self._parallelism), self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            while self._ready and len(running) < self._parallelism and not self.stopped:
                routine, _, _, product = self._ready[0]
                if self._tokens < 1.0 and routine:  # a nudged product goes whatever the budget
                    break
                heapq.heappop(self._ready)
                pending = self._pending.get(product)
                if pending is None or pending.due != -1.0:
                    continue
                self._nudged.discard(product)
                self._tokens -= 1.0
                pending.due = math.inf
                pending.last_poll = now
                future = pool.submit(self._poll, pending)
                future.add_done_callback(lambda _: self._wake.set())
                running[future] = pending
            waits = [1.0]
            if self._ready and len(running) < self._parallelism:
                waits.append(max(0.0, (1.0 - self._tokens) / rate))
            if self._later:
                waits.append(max(0.0, self._later[0][0] - now))
            return min(waits)


def complete(new: list[A], kind_of: Callable[[A], str], want_gif: bool) -> list[tuple[str, A]] | None:
    """The results to download (store type, attachment) when the still, the MP4 (and the GIF if
    asked) are all among ``new``, the newest of each kind; else None."""
    stills = [a for a in new if kind_of(a) == "still"]
    mp4 = [a for a in new if kind_of(a) == "turntable"]
    gif = [a for a in new if kind_of(a) == "gif"]
    if not (stills and mp4 and (gif or not want_gif)):
        return None
    found = [("RENDER", stills[-1]), ("TURNTABLE", mp4[-1])]
    if want_gif:
        found.append(("TURNTABLE", gif[-1]))
    return found
