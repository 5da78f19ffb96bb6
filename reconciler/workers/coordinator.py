"""``apply --workers``: the run's own process enqueues its batches and follows the workers.

It holds the state lock for the whole run, as a local apply does, so a second apply waits or
fails naming it; the workers write under that lock (``PgStateStore.join``), and the moment
this process ends, however it ends, their writes are refused. What it does itself: prune and
labels (cheap, and the same code as a local run), then one job per render batch and per chunk
of resumed products, then it shows the workers' events as a local run shows its own, until no
job of the run is waiting or running. The summary comes from the state, not from the events
(an event can be lost with a killed worker; a checkpoint cannot).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import psycopg
from procrastinate.exceptions import AlreadyEnqueued

from reconciler.errors import CredentialsError, StateError
from reconciler.events import Downloaded, Event, Failed, Hooks, Recorded, RunFinished, RunStarted
from reconciler.executor import ApplyOptions, ApplyReport, Executor
from reconciler.plan import ActionKind, Actions, Plan
from reconciler.state import State, Status
from reconciler.state.pgschema import SCHEMA
from reconciler.state.pgstore import PgLocation, PgStateStore
from reconciler.workers.events import rebuild
from reconciler.workers.queue import TASK, BatchJob, JobAction, make_app, products_key, queue_name

FOLLOW_INTERVAL = 0.2
"""Seconds between two looks at the run's events and jobs."""
NO_WORKER_NOTICE = 10.0
"""Seconds with no event and no job of the run taken before the run says how to start a worker."""
_SETTLED = ("succeeded", "failed", "cancelled", "aborted")


class _NoRunStarted:
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    def on_event(self, event: Event) -> None:
        if not isinstance(event, RunStarted):
            self.hooks.on_event(event)


@dataclasses.dataclass
class RunOutcome:
    """What the workers did for one run (the local executor's report, plus the API counters)."""

    report: ApplyReport
    requests: int = 0
    retries: int = 0
    throttled_seconds: float = 0.0
    halted: CredentialsError | None = None


def jobs_for(
    plan: Plan, run: str, state: State, digests: dict[str, str], options: ApplyOptions
) -> list[BatchJob]:
    """One job per batch, and one per ``max_batch_size`` products to resume."""
    by_product = {a.product: a for a in plan.actions}
    common: dict[str, Any] = {
        "run": run,
        "lineage": state.lineage,
        "product_timeout": options.product_timeout,
        "poll_interval": options.poll_interval,
        "parallelism": options.parallelism,
    }

    def action(product: str) -> JobAction:
        a = by_product[product]
        return JobAction(
            kind=a.kind.value,
            reason=a.reason.value,
            name=a.name,
            protect=a.protect,
            force=a.force,
            spec_hash=a.spec_hash,
            spec=a.spec if a.kind is ActionKind.RESUME else None,
        )

    jobs = [
        BatchJob(
            index=b.index,
            spec_hash=b.spec_hash,
            spec=b.spec,
            products=list(b.products),
            actions={p: action(p) for p in b.products},
            planned={p: digests.get(p) for p in b.products},
            **common,
        )
        for b in plan.batches
    ]
    resumes = [a.product for a in plan.actions if a.kind is ActionKind.RESUME]
    size = max(1, plan.max_batch_size)
    for k in range(0, len(resumes), size):
        chunk = resumes[k : k + size]
        jobs.append(
            BatchJob(
                index=len(plan.batches) + k // size,
                spec_hash="",
                spec={},
                products=chunk,
                actions={p: action(p) for p in chunk},
                planned={p: digests.get(p) for p in chunk},
                resumes=True,
                **common,
            )
        )
    return jobs


def apply_on_workers(
    plan: Plan,
    store: PgStateStore,
    state: State,
    client: Any,
    hooks: Hooks,
    options: ApplyOptions,
    where: PgLocation,
    say: Callable[[str], None],
) -> RunOutcome:
    """Run ``plan`` on the workers; returns when none of its jobs waits or runs any more."""
    run = store.lock_id
    if run is None:
        raise StateError(f"internal error: apply --workers on {store.location} without its lock")
    started = time.monotonic()
    hooks.on_event(
        RunStarted(
            triggers=sum(len(b.products) for b in plan.batches),
            resumes=sum(1 for a in plan.actions if a.kind is ActionKind.RESUME),
            batches=len(plan.batches),
        )
    )
    # Prune and labels here: the local executor's own code, with no batch and nothing to resume.
    local = dataclasses.replace(
        plan,
        batches=[],
        actions=Actions(a for a in plan.actions if not a.kind.triggers and a.kind is not ActionKind.RESUME),
    )
    report = Executor(client, store, state, _NoRunStarted(hooks), options).run(local)
    products = [p for b in plan.batches for p in b.products]
    products += [a.product for a in plan.actions if a.kind is ActionKind.RESUME]
    _, digests = store.read_products(products)
    jobs = jobs_for(plan, run, state, digests, options)
    result = RunOutcome(report=report)
    with psycopg.connect(where.conninfo, autocommit=True, application_name=f"reconciler apply {run}") as conn:
        try:
            ids = _enqueue(jobs, store.workspace, where, conn, say)
            _follow(run, ids, conn, hooks, result, say, store)
        finally:
            conn.execute(f"DELETE FROM {SCHEMA}.run_events WHERE run_id = %s", (run,))
    _settle(result, store, state, products, digests)
    report.seconds = time.monotonic() - started
    return result


def _enqueue(
    jobs: list[BatchJob],
    workspace: str,
    where: PgLocation,
    conn: psycopg.Connection[Any],
    say: Callable[[str], None],
) -> list[int]:
    app = make_app(where, max_size=2)
    queue = queue_name(workspace)
    ids = []
    with app.open():
        for job in jobs:
            key = products_key(workspace, job.products)
            deferrer = app.configure_task(name=TASK, queue=queue, lock=key, queueing_lock=key)
            try:
                ids.append(deferrer.defer(job=job.to_json()))
            except AlreadyEnqueued:
                # A job for these very products waits from a run that is gone (this one holds the
                # state lock): it could do nothing (its lock is gone), so it is cancelled.
                stale = conn.execute(
                    "SELECT id FROM procrastinate_jobs WHERE queueing_lock = %s AND status = 'todo'", (key,)
                ).fetchall()
                for (job_id,) in stale:
                    app.job_manager.cancel_job_by_id(job_id)
                say(f"Cancelled {len(stale)} job(s) of an earlier run that had ended before they ran.")
                ids.append(deferrer.defer(job=job.to_json()))
    return ids


def _follow(
    run: str,
    ids: list[int],
    conn: psycopg.Connection[Any],
    hooks: Hooks,
    result: RunOutcome,
    say: Callable[[str], None],
    store: PgStateStore,
) -> None:
    last = 0
    quiet_since = time.monotonic()
    noticed = False
    cancelled = False
    while True:
        statuses = dict(
            conn.execute(
                "SELECT id, status::text FROM procrastinate_jobs WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        )
        pending = {job_id for job_id, status in statuses.items() if status not in _SETTLED}
        for event_id, data in conn.execute(
            f"SELECT id, event FROM {SCHEMA}.run_events WHERE run_id = %s AND id > %s ORDER BY id",
            (run, last),
        ).fetchall():
            last = event_id
            quiet_since = time.monotonic()
            _take(data, hooks, result)
        if not pending:
            return
        if result.halted is not None and not cancelled:
            todo = conn.execute(
                "SELECT id FROM procrastinate_jobs WHERE id = ANY(%s) AND status = 'todo'", (ids,)
            ).fetchall()
            for (job_id,) in todo:
                conn.execute("SELECT procrastinate_cancel_job_v1(%s, false, false)", (job_id,))
            cancelled = True
        taken = any(statuses[job_id] == "doing" for job_id in pending)
        if not noticed and not taken and time.monotonic() - quiet_since > NO_WORKER_NOTICE:
            say(
                f"Waiting for workers: no worker has taken a job of this run for {NO_WORKER_NOTICE:.0f} s "
                f"({len(pending)} queued); start 'reconciler worker --state {store.location}' anywhere that "
                "reaches the database and the API."
            )
            noticed = True
        time.sleep(FOLLOW_INTERVAL)


def _take(data: dict[str, Any], hooks: Hooks, result: RunOutcome) -> None:
    kind = data.get("event")
    if kind == "JobStats":
        result.requests += int(data.get("requests", 0))
        result.retries += int(data.get("retries", 0))
        result.throttled_seconds += float(data.get("throttled_seconds", 0.0))
        return
    if kind == "Halted":
        if result.halted is None:
            result.halted = CredentialsError(str(data.get("message")), hint=data.get("hint"))
        return
    event = rebuild(data)
    if event is None:
        return
    report = result.report
    if isinstance(event, Downloaded):
        report.bytes_downloaded += event.size
    elif isinstance(event, Failed):
        report.failed[event.product] = event.reason
    elif isinstance(event, Recorded):
        report.failed.pop(event.product, None)
    hooks.on_event(event)


def _settle(
    result: RunOutcome, store: PgStateStore, state: State, products: list[str], planned: dict[str, str]
) -> None:
    """The run's outcome, from the state: recorded, failed, or left as it was (and why)."""
    final, digests = store.read_products(products)
    report = result.report
    failed = dict(report.failed)
    report.rendered, report.failed = [], {k: v for k, v in failed.items() if k not in products}
    for product in products:
        record = final.products.get(product)
        moved = digests.get(product) != planned.get(product)
        if record is not None:
            state.products[product] = record
        if record is not None and moved and record.status is Status.RENDERED:
            report.rendered.append(product)
        elif record is not None and moved and record.status is Status.FAILED:
            report.failed[product] = failed.get(product) or record.error or "failed"
        elif product in failed:
            report.failed[product] = failed[product]
        elif result.halted is not None:
            report.failed[product] = "not done: the run stopped (credentials); the next apply does it"
        else:
            status = record.status.value if record is not None else "absent"
            report.failed[product] = (
                f"not finished by the workers (its record is {status}); the next apply "
                + ("resumes it" if status in ("requested", "in_flight") else "does it")
            )
    state.serial = final.serial


def finished(result: RunOutcome, client_stats: dict[str, Any]) -> RunFinished:
    """The run's summary event, counting the API requests of every worker and of this process."""
    r = result.report
    return RunFinished(
        rendered=len(r.rendered),
        failed=len(r.failed),
        skipped=r.skipped,
        bytes_downloaded=r.bytes_downloaded,
        seconds=round(r.seconds, 3),
        requests=int(client_stats.get("requests", 0)) + result.requests,
        retries=int(client_stats.get("retries", 0)) + result.retries,
        throttled_seconds=round(
            float(client_stats.get("throttled_seconds", 0.0)) + result.throttled_seconds, 3
        ),
        failures=dict(r.failed),
    )
