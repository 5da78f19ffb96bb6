"""``reconciler worker``: take batches of ``apply --workers`` runs from the queue and execute them.

A worker serves one state workspace (its ``--state`` URL). Every job it runs gets a client of
its own (its counters are the job's), all sharing the process's one ``SharedApi``: one VNTANA
login for every worker of the database, and one throttle.

Heartbeats are procrastinate's (``--heartbeat`` seconds). A worker whose heartbeat is
``STALL_FACTOR`` heartbeats old is taken for dead: any live worker of the queue retries its
jobs (procrastinate's stalled-job query and ``retry_job``), and the job itself (job.py) makes
sure nothing is paid or recorded twice. Give every worker of a queue the same ``--heartbeat``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procrastinate
import psycopg

from reconciler.errors import ConfigError, StateError
from reconciler.settings import find_config_file, resolve_settings
from reconciler.state import open_store, pgschema
from reconciler.state.pgstore import PgLocation, PgStateStore, parse_location
from reconciler.waiting import Expectations
from reconciler.workers.events import EventSink
from reconciler.workers.job import run_job
from reconciler.workers.queue import TASK, BatchJob, ensure_schema, make_app, queue_name
from reconciler.workers.shared import SharedApi

log = logging.getLogger("reconciler.workers")

STALL_FACTOR = 3.0
"""A worker is taken for dead after this many heartbeats without one."""


@dataclass
class WorkerRequest:
    state_url: str
    flags: dict[str, Any]
    config_path: Path | None = None
    concurrency: int = 2
    heartbeat: float = 5.0
    download_dir: Path | None = None
    once: bool = False


def require_pg(location: str, what: str) -> PgStateStore:
    """The PostgreSQL store at ``location``; ConfigError naming ``what`` for any other state."""
    store = open_store(location)
    if not isinstance(store, PgStateStore):
        raise ConfigError(
            f"{what} needs the state in PostgreSQL (--state postgresql://…), not {store.location}",
            hint="every worker and the apply that feeds them must reach one database; "
            "'reconciler state migrate FILE URL' moves a file state there",
        )
    return store


def prepare(where: PgLocation) -> None:
    """The state schema and the queue schema, current (created on a fresh database)."""
    try:
        with psycopg.connect(where.conninfo, autocommit=True) as conn:
            pgschema.check(conn, where.display, create=True)
            ensure_schema(conn, where.display)
    except psycopg.Error as exc:
        raise StateError(
            f"cannot prepare the job queue in {where.display}: {where.scrub(str(exc).strip())}"
        ) from None


def run_worker(req: WorkerRequest, say: Callable[[str], None]) -> None:
    store = require_pg(req.state_url, "reconciler worker")
    where = parse_location(req.state_url)
    prepare(where)
    settings = resolve_settings(req.flags, os.environ, req.config_path or find_config_file(Path.cwd()))
    shared = SharedApi(where, settings)
    sink = EventSink(where)
    stop = threading.Event()

    def client() -> Any:
        from reconciler.client import VntanaClient

        return VntanaClient(settings, shared=shared)

    app = make_app(where, max_size=max(2, req.concurrency + 1))

    # Render times seen by this worker's jobs, per run: a job resumed after a kill has triggered
    # nothing itself, and would otherwise have only --timeout to give up a trigger that never left.
    seen: dict[str, Expectations] = {}
    seen_lock = threading.Lock()

    def expectations(batch: BatchJob) -> Expectations:
        with seen_lock:
            if batch.run not in seen:
                while len(seen) >= 8:  # runs end; keep the few latest
                    seen.pop(next(iter(seen)))
                seen[batch.run] = Expectations(batch.product_timeout, batch.poll_interval)
            return seen[batch.run]

    @app.task(name=TASK, pass_context=True, retry=procrastinate.RetryStrategy(max_attempts=3, wait=1))
    def apply_batch(context: procrastinate.JobContext, job: dict[str, Any]) -> None:
        batch = BatchJob.from_json(job)
        result = run_job(
            batch,
            state_url=req.state_url,
            conninfo=where.conninfo,
            client_factory=client,
            sink=sink,
            download_dir=req.download_dir,
            stop=stop,
            expectations=expectations(batch),
        )
        if result.gone:
            say(f"job {batch.index} of run {batch.run}: nothing done ({result.gone})")
        else:
            say(
                f"job {batch.index} of run {batch.run}: {result.triggered} triggered, {result.resumed} resumed, "
                f"{result.done_before} done before; {result.rendered} recorded, {result.failed} failed"
            )

    queue = queue_name(store.workspace)

    async def recover() -> None:
        """Retry the jobs of workers whose heartbeat stopped (killed, or their machine gone)."""
        while True:
            await asyncio.sleep(req.heartbeat)
            try:
                stalled = await app.job_manager.get_stalled_jobs(
                    queue=queue, seconds_since_heartbeat=STALL_FACTOR * req.heartbeat
                )
                for job in stalled:
                    await app.job_manager.retry_job(job)
                    say(f"retrying job {job.id}: its worker stopped sending heartbeats")
            except Exception as exc:  # another worker retried it first, or a lost connection
                log.debug("stalled-job recovery: %s", where.scrub(str(exc)))

    async def main() -> None:
        async with app.open_async():
            side = asyncio.create_task(recover())
            try:
                await app.run_worker_async(
                    queues=[queue],
                    concurrency=req.concurrency,
                    wait=not req.once,
                    update_heartbeat_interval=req.heartbeat,
                    stalled_worker_timeout=STALL_FACTOR * req.heartbeat,
                    delete_jobs="successful",
                    fetch_job_polling_interval=1.0,
                )
            finally:
                stop.set()
                side.cancel()

    say(
        f"Worker for {store.location} (queue {queue}, {req.concurrency} job(s) at once); "
        "waiting for 'reconciler apply --workers'."
    )
    try:
        asyncio.run(main())
    finally:
        sink.close()
        shared.close()
