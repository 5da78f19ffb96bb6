"""When apply gives a missing render up, table-driven: what the run observed in, a deadline out.

Times are plain numbers on one monotonic clock; nothing here sleeps or talks to a platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.waiting import MIN_SLACK, QUIET, Expectations, PendingRender, Scheduler, work

SMALL = {"imageWidth": 100, "imageHeight": 100, "turntable": {"imageCount": 10, "width": 100, "height": 100}}
BIG = {
    "imageWidth": 200,
    "imageHeight": 200,
    "turntable": {"imageCount": 20, "width": 100, "height": 100, "includeGif": True},
}
TIMEOUT = 900.0


def pending(
    started: float = 0.0,
    spec: dict[str, Any] | None = None,
    seen: dict[str, float] | None = None,
    waiting_since: float | None = None,
) -> PendingRender:
    return PendingRender(
        product="p",
        name=None,
        started=started,
        waiting_since=started if waiting_since is None else waiting_since,
        since=datetime(2026, 1, 1, tzinfo=UTC),
        old=set(),
        spec=spec or SMALL,
        seen=seen or {},
    )


@dataclass
class Case:
    id: str
    observed: list[tuple[str, float, float]] = field(default_factory=list)
    """(job, seconds it took, noticed at) for the run's successes, in order."""
    pending: PendingRender = field(default_factory=pending)
    deadline: float = TIMEOUT
    why: str = "no results within 900 s"


SLACK = MIN_SLACK  # poll interval 1 s: 3 x 1 s is below the minimum slack

CASES = [
    Case("should_wait_for_the_timeout_before_any_render_succeeded"),
    Case(
        "should_wait_for_the_timeout_for_a_job_kind_that_never_succeeded",
        observed=[("still", 10.0, 10.0)],
        pending=pending(seen={"still": 10.0}),
    ),
    Case(
        "should_give_up_on_an_overdue_still_even_when_no_turntable_succeeded_yet",
        observed=[("still", 10.0, 10.0)],
        pending=pending(seen={}),
        deadline=10.0 + QUIET * 10.0 + SLACK,
        why="no still within 35 s",
    ),
    Case(
        "should_give_up_a_still_once_it_took_the_longest_and_the_platform_is_quiet",
        observed=[("still", 10.0, 10.0), ("turntable", 20.0, 20.0)],
        pending=pending(seen={"turntable": 20.0}),
        deadline=max(10.0, 20.0 + QUIET * 10.0 + SLACK),
        why="no still within 45 s",
    ),
    Case(
        "should_scale_the_longest_time_up_to_a_heavier_spec",
        observed=[("still", 100.0, 100.0), ("turntable", 100.0, 100.0)],
        pending=pending(spec=BIG),
        deadline=max(100.0 * 3, 100.0 + QUIET * 100.0 + SLACK),
        why="no turntable within 305 s",
    ),
    Case(
        "should_never_scale_down_for_a_lighter_spec",
        observed=[("still", 50.0, 60.0), ("turntable", 50.0, 60.0)],
        pending=pending(
            started=10.0,
            spec={
                **SMALL,
                "imageWidth": 10,
                "imageHeight": 10,
                "turntable": {"imageCount": 1, "width": 10, "height": 10},
            },
        ),
        deadline=max(10.0 + 50.0, 60.0 + QUIET * 50.0 + SLACK),
        why="no still within 155 s",
    ),
    Case(
        "should_stretch_the_quiet_period_to_the_longest_pause_between_deliveries",
        observed=[
            ("still", 1.0, 1.0),
            ("turntable", 2.0, 2.0),
            ("still", 30.0, 30.0),
            ("turntable", 31.0, 31.0),
        ],
        deadline=max(0.0 + 30.0, 31.0 + QUIET * 28.0 + SLACK),
        why="no still within 92 s",
    ),
    Case(
        "should_never_give_up_later_than_the_timeout",
        observed=[("still", 800.0, 800.0), ("turntable", 800.0, 800.0)],
        deadline=TIMEOUT,
    ),
    Case(
        "should_count_the_timeout_from_when_this_run_began_waiting_for_a_resume",
        observed=[],
        pending=pending(started=-5000.0, waiting_since=100.0),
        deadline=100.0 + TIMEOUT,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_deadline(case: Case) -> None:
    expect = Expectations(TIMEOUT, poll_interval=1.0)
    for job, seconds, at in case.observed:
        expect.observe(job, seconds, SMALL, at)
    deadline, why = expect.deadline(case.pending)
    assert deadline == pytest.approx(case.deadline)
    assert why.startswith(case.why), why


def test_a_queue_that_keeps_delivering_keeps_a_queued_render_waiting() -> None:
    """Waves of 10: the second wave arrives at twice the first; nothing queued is given up between."""
    expect = Expectations(TIMEOUT, poll_interval=1.0)
    waiting = pending()
    for wave in range(1, 6):
        at = 60.0 * wave
        for i in range(10):
            expect.observe("still", at + i * 0.1, SMALL, at + i * 0.1)
            expect.observe("turntable", at + i * 0.1, SMALL, at + i * 0.1)
        next_wave = 60.0 * (wave + 1)
        assert expect.deadline(waiting)[0] > next_wave, f"given up before wave {wave + 1}"


def test_work_counts_pixels_frames_and_the_gif() -> None:
    assert work("still", SMALL) == 100 * 100
    assert work("turntable", SMALL) == 10 * 100 * 100
    assert work("turntable", BIG) == 20 * 100 * 100 * 1.5


def test_the_scheduler_polls_within_its_budget_least_recently_polled_first_and_settles_everything() -> None:
    from concurrent.futures import ThreadPoolExecutor

    polls: list[str] = []
    remaining = {"a": 3, "b": 1, "c": 2}

    def poll(p: PendingRender) -> bool:
        polls.append(p.product)
        remaining[p.product] -= 1
        return remaining[p.product] == 0

    expect = Expectations(TIMEOUT, poll_interval=0.01)
    scheduler = Scheduler(poll, expect, parallelism=1, interval=0.01)
    batches = iter([[_p("a"), _p("b"), _p("c")]])
    with ThreadPoolExecutor(1) as pool:
        scheduler.run(pool, lambda: next(batches, None))
    assert sorted(polls) == ["a", "a", "a", "b", "c", "c"]
    assert polls[:3] == ["a", "b", "c"], "in trigger order first, then in turn"
    assert scheduler.waiting() == []


def test_the_scheduler_stops_polling_when_stopped() -> None:
    from concurrent.futures import ThreadPoolExecutor

    polls: list[str] = []
    scheduler: Scheduler

    def poll(p: PendingRender) -> bool:
        polls.append(p.product)
        scheduler.stop()
        return False

    scheduler = Scheduler(poll, Expectations(TIMEOUT, 0.01), parallelism=2, interval=0.01)
    batches = iter([[_p("a"), _p("b")]])
    with ThreadPoolExecutor(2) as pool:
        scheduler.run(pool, lambda: next(batches, None))
    assert 1 <= len(polls) <= 2 and sorted(scheduler.waiting()) == ["a", "b"]


def _p(product: str) -> PendingRender:
    p = pending()
    p.product = product
    return p
