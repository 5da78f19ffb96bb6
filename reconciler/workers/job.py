"""One worker job: a batch of a run, executed by the local executor under the run's lock.

The write-ahead rules are the executor's own (reconciler/executor.py): it checkpoints each
product ``requested`` before the trigger and ``in_flight`` as soon as the platform accepts,
before the job step that paid returns; a product is recorded by one checkpoint. What this
module adds is what holds them across machines:

  * the job writes under the run's state lock (``PgStateStore.join``): once the run's
    ``apply --workers`` is gone (its session ended, or force-unlock), every checkpoint of the
    job is refused, so a job of a dead run cannot record anything a later run does not expect;
  * a job is held by one worker at a time (a session advisory lock on the job, taken before it
    reads anything): a retried job waits for a worker that is slow rather than dead, and a
    killed worker's session, and so its hold, ends with it;
  * a retried job (its worker was killed: procrastinate's heartbeats tell, and the surviving
    workers retry it) re-derives what is left from the state: a product whose record is still
    the one planned is done as planned; one the earlier attempt moved is, by its status now,
    recorded (nothing to do), requested or in flight (waited for and downloaded, never
    triggered again) or failed (left failed for this run, as a local run would).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from reconciler.errors import CredentialsError, LockNotFoundError, ReconcilerError
from reconciler.events import Event, RunStarted
from reconciler.executor import ApplyOptions, ApplyReport, Executor
from reconciler.plan import Action, ActionKind, Actions, Batch, Cost, Plan, Reason, StateToken
from reconciler.state import ProductRecord, State, Status
from reconciler.state.pgstore import LockLostError, PgStateStore
from reconciler.waiting import Expectations
from reconciler.workers.events import EventSink
from reconciler.workers.queue import BatchJob

log = logging.getLogger("reconciler.workers")

CLAIM_LOCK_CLASS = 0x5243_4E32
"""Advisory lock class ("RCN2") of a job being worked on."""
_CLAIM_POLL = 0.2


@dataclass
class JobResult:
    """What one attempt of a job did (for the worker's log)."""

    triggered: int = 0
    resumed: int = 0
    done_before: int = 0
    rendered: int = 0
    failed: int = 0
    gone: str | None = None
    """Why nothing was done: the run is over."""


class JobStore:
    """The executor's store for a job: checkpoints go to PostgreSQL; ``write`` does nothing.

    The executor ends a run by folding its journal with ``write(state, bump=False)``. A job's
    state holds only its own products, and PostgreSQL checkpoints land in place: writing that
    partial state whole would forget every other product, so there is nothing to write."""

    def __init__(self, store: PgStateStore) -> None:
        self.store = store
        self.location = store.location

    def checkpoint(self, state: State, product: str, record: ProductRecord | None) -> None:
        self.store.checkpoint(state, product, record)

    def write(self, state: State, *, bump: bool = True) -> None:
        return None


class Forward:
    """Executor hooks of a job: every event to the run's event table, but RunStarted (the run's
    own ``apply --workers`` announces the run once)."""

    def __init__(self, sink: EventSink, run: str) -> None:
        self.sink, self.run = sink, run

    def on_event(self, event: Event) -> None:
        if not isinstance(event, RunStarted):
            self.sink.add(self.run, event.to_json())


def claim_key(job: BatchJob) -> int:
    digest = hashlib.sha256(f"{job.run}|{job.index}|{job.resumes}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


@contextmanager
def claimed(conninfo: str, job: BatchJob, stop: threading.Event | None = None) -> Iterator[None]:
    """Hold the job (a session advisory lock) for the block; waits while another worker holds it."""
    conn = psycopg.connect(conninfo, autocommit=True, application_name=f"reconciler job {job.index}")
    try:
        announced = False
        while True:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (CLAIM_LOCK_CLASS, claim_key(job))
            ).fetchone()
            if row and row[0]:
                break
            if not announced:
                log.info("job %s of run %s is still held by another worker: waiting", job.index, job.run)
                announced = True
            if stop is not None and stop.is_set():
                raise LockNotFoundError("the worker is stopping")
            time.sleep(_CLAIM_POLL)
        yield
    finally:
        conn.close()  # ends the session, and with it the hold


def sub_plan(job: BatchJob, state: State, digests: dict[str, str]) -> tuple[Plan, JobResult]:
    """What is left of ``job``, given the state now: the plan the executor runs for it."""
    result = JobResult()
    triggers: list[str] = []
    actions: list[Action] = []
    for product in job.products:
        planned = job.actions[product]
        kind = ActionKind(planned.kind)
        record = state.products.get(product)
        if digests.get(product) != job.planned.get(product):  # an earlier attempt moved it
            if record is None or record.status in (Status.RENDERED, Status.FAILED):
                result.done_before += 1
                continue
            kind = ActionKind.RESUME
        action = Action(
            kind=kind,
            reason=Reason(planned.reason) if kind is not ActionKind.RESUME else Reason.IN_FLIGHT,
            product=product,
            name=planned.name,
            spec=planned.spec if kind is ActionKind.RESUME else job.spec,
            spec_hash=planned.spec_hash if kind is ActionKind.RESUME else job.spec_hash,
            protect=planned.protect,
            force=planned.force,
        )
        if kind is ActionKind.RESUME:
            if record is None or record.request is None:
                result.done_before += 1  # nothing was triggered for it: nothing to wait for
                continue
            action.spec, action.spec_hash = record.spec, record.request.spec_hash
            result.resumed += 1
        else:
            action.batch = 0
            triggers.append(product)
        actions.append(action)
    result.triggered = len(triggers)
    batches = (
        [Batch(index=job.index, spec_hash=job.spec_hash, spec=job.spec, products=triggers)]
        if triggers
        else []
    )
    plan = Plan(
        state=StateToken(lineage=state.lineage, serial=state.serial, location=""),
        actions=Actions(actions),
        batches=batches,
        cost=Cost(),
        max_batch_size=max(1, len(triggers)),
    )
    return plan, result


def run_job(
    job: BatchJob,
    *,
    state_url: str,
    conninfo: str,
    client_factory: Callable[[], Any],
    sink: EventSink,
    download_dir: Path | None,
    stop: threading.Event | None = None,
    expectations: Expectations | None = None,
) -> JobResult:
    """Do what is left of ``job``. The run being over (its lock gone) is not an error: nothing is done."""
    store = PgStateStore(state_url)
    try:
        with store.join(job.run, "apply (worker)"), claimed(conninfo, job, stop):
            state, digests = store.read_products(job.products)
            if state.lineage != job.lineage:
                return JobResult(gone=f"the state's lineage is {state.lineage}, the run's was {job.lineage}")
            plan, result = sub_plan(job, state, digests)
            if not plan.actions:
                return result
            with client_factory() as client:
                options = ApplyOptions(
                    parallelism=job.parallelism,
                    product_timeout=job.product_timeout,
                    poll_interval=job.poll_interval,
                    download_dir=download_dir,
                )
                executor = Executor(
                    client,
                    JobStore(store),  # type: ignore[arg-type]
                    state,
                    Forward(sink, job.run),
                    options,
                    expectations,
                )
                report = ApplyReport()
                try:
                    report = executor.run(plan)
                except CredentialsError as exc:
                    report = executor.report
                    sink.add(job.run, {"event": "Halted", "message": exc.message, "hint": exc.hint})
                finally:
                    stats = client.stats.snapshot()
                    sink.add(
                        job.run,
                        {
                            "event": "JobStats",
                            "requests": stats.total_requests,
                            "retries": stats.retries,
                            "throttled_seconds": stats.throttled_seconds,
                        },
                    )
            result.rendered, result.failed = len(report.rendered), len(report.failed)
            return result
    except (LockNotFoundError, LockLostError) as exc:
        return JobResult(gone=exc.message)
    except ReconcilerError:
        raise
    finally:
        sink.flush()
