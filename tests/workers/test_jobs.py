"""What a worker job does with its products (pure), how jobs are queued (procrastinate's
in-memory connector), and the queue's schema versions (a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import procrastinate
import psycopg
import pytest
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.testing import InMemoryConnector

from reconciler.errors import StateError
from reconciler.plan import ActionKind
from reconciler.state import ProductRecord, RenderRequest, State, Status
from reconciler.state.pgschema import check
from reconciler.workers.job import sub_plan
from reconciler.workers.queue import (
    TASK,
    BatchJob,
    JobAction,
    _migrations_between,
    ensure_schema,
    installed_version,
    products_key,
)

SPEC: dict[str, Any] = {"imageWidth": 32, "imageHeight": 24, "imageFormat": "PNG"}
OLD_SPEC: dict[str, Any] = {"imageWidth": 16, "imageHeight": 16, "imageFormat": "PNG"}
P = [f"00000000-0000-4000-8000-{i:012d}" for i in range(6)]


def record(status: Status, *, requested: bool = True) -> ProductRecord:
    return ProductRecord(
        spec=OLD_SPEC,  # type: ignore[arg-type]
        spec_hash="old",
        status=status,
        updated_at="2026-01-01T00:00:00Z",
        request=RenderRequest(request_id="r", spec_hash="new", requested_at="2026-01-01T00:00:00Z")
        if requested
        else None,
    )


def job(planned: dict[str, str | None], kinds: dict[str, str] | None = None) -> BatchJob:
    kinds = kinds or {}
    return BatchJob(
        run="lock",
        lineage="l",
        index=7,
        spec_hash="new",
        spec=SPEC,
        products=list(planned),
        actions={p: JobAction(kind=kinds.get(p, "render"), reason="new", name=p[-2:]) for p in planned},
        planned=planned,
    )


def test_a_retried_job_triggers_only_what_no_earlier_attempt_touched() -> None:
    state = State(lineage="l")
    state.products.update(
        {
            P[1]: record(Status.RENDERED),  # recorded by the attempt that was killed
            P[2]: record(Status.IN_FLIGHT),  # triggered by it: wait, never pay again
            P[3]: record(Status.REQUESTED),  # its outcome unknown: wait too
            P[4]: record(Status.FAILED),  # given up by it: failed for this run
            P[5]: record(Status.FAILED, requested=False),  # failed before the run: a retry, as planned
        }
    )
    planned = {P[0]: None, P[1]: "a", P[2]: "b", P[3]: "c", P[4]: "d", P[5]: "e"}
    now = {P[1]: "a2", P[2]: "b2", P[3]: "c2", P[4]: "d2", P[5]: "e"}
    plan, result = sub_plan(job(planned, {P[5]: "retry"}), state, now)
    kinds = {a.product: a.kind for a in plan.actions}
    assert kinds == {
        P[0]: ActionKind.RENDER,
        P[2]: ActionKind.RESUME,
        P[3]: ActionKind.RESUME,
        P[5]: ActionKind.RETRY,
    }
    assert [b.products for b in plan.batches] == [[P[0], P[5]]] and plan.batches[0].index == 7
    assert (result.triggered, result.resumed, result.done_before) == (2, 2, 2)
    resumed = next(a for a in plan.actions if a.product == P[2])
    assert resumed.spec_hash == "new"  # the hash of the request that was triggered, not the old render's


def test_a_first_attempt_triggers_the_whole_batch() -> None:
    plan, result = sub_plan(job({P[0]: None, P[1]: None}), State(lineage="l"), {})
    assert [b.products for b in plan.batches] == [[P[0], P[1]]]
    assert (result.triggered, result.resumed, result.done_before) == (2, 0, 0)


def test_the_same_products_cannot_be_queued_twice_while_one_job_waits() -> None:
    app = procrastinate.App(connector=InMemoryConnector())
    app.task(name=TASK)(lambda job: None)
    key = products_key("default", [P[1], P[0]])
    assert key == products_key("default", [P[0], P[1]]) != products_key("staging", [P[0], P[1]])

    async def scenario() -> None:
        async with app.open_async():
            deferrer = app.configure_task(name=TASK, queue="reconciler.default", lock=key, queueing_lock=key)
            await deferrer.defer_async(job={"n": 1})
            with pytest.raises(AlreadyEnqueued):
                await deferrer.defer_async(job={"n": 2})
            other = products_key("default", [P[2]])
            await app.configure_task(name=TASK, queueing_lock=other, lock=other).defer_async(job={"n": 3})

    asyncio.run(scenario())


def test_the_queue_schema_is_applied_once_versioned_and_a_newer_one_refused(pg_server: Any) -> None:
    url = pg_server.create_database("reconciler_queue_schema")
    with psycopg.connect(url, autocommit=True) as conn:
        check(conn, "db", create=True)
        assert ensure_schema(conn, "db") == installed_version()
        assert conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone() == (True,)
        assert ensure_schema(conn, "db") == installed_version()  # a second time: nothing to do
        conn.execute("UPDATE reconciler.queue_schema SET version = '99.0.0'")
        with pytest.raises(StateError, match=r"made by procrastinate 99\.0\.0, newer than this reconciler's"):
            ensure_schema(conn, "db")
        conn.execute("UPDATE reconciler.queue_schema SET version = '3.9.0'")  # no schema change since
        assert ensure_schema(conn, "db") == installed_version()
        assert conn.execute("SELECT version FROM reconciler.queue_schema").fetchone() == (
            installed_version(),
        )
    upgrade = [p.name for p in _migrations_between("3.3.0", "3.4.0")]
    assert upgrade and all(name.startswith("03.04.00_") for name in upgrade) and upgrade == sorted(upgrade)


def test_a_job_of_a_run_that_is_over_does_nothing(pg_url: str) -> None:
    from reconciler.state import open_store
    from reconciler.state.pgstore import parse_location
    from reconciler.workers.events import EventSink
    from reconciler.workers.job import run_job

    store = open_store(pg_url)
    with store.lock("apply") as info:
        store.write(State(lineage="l"))
        held = info.id
        sink = EventSink(parse_location(pg_url))

        def no_client() -> Any:
            raise AssertionError("a job of a run that is over must not reach the platform")

        common = {"state_url": pg_url, "conninfo": parse_location(pg_url).conninfo, "sink": sink}
        other = run_job(
            dataclasses.replace(job({P[0]: None}), run=held, lineage="another"),
            client_factory=no_client,
            download_dir=None,
            **common,  # type: ignore[arg-type]
        )
        assert other.gone == "the state's lineage is l, the run's was another"
    gone = run_job(job({P[0]: None}), client_factory=no_client, download_dir=None, **common)  # type: ignore[arg-type]
    assert gone.gone is not None and "no lock with id lock" in gone.gone
    sink.close()
    assert store.read().products == {}


def test_a_workers_share_of_the_state_is_read_as_strictly_as_the_whole(pg_url: str) -> None:
    from reconciler.errors import StateCorruptError
    from reconciler.state import open_store

    store = open_store(pg_url)
    state = State(lineage="l")
    state.products[P[0]] = record(Status.RENDERED)
    state.products[P[1]] = record(Status.IN_FLIGHT)
    with store.lock("apply"):
        store.write(state)
    share, digests = store.read_products([P[1], P[2]])
    assert list(share.products) == [P[1]] and list(digests) == [P[1]] and share.lineage == "l"
    workspace = pg_url.partition("#")[2]
    with psycopg.connect(pg_url.partition("#")[0], autocommit=True) as conn:
        conn.execute(
            "UPDATE reconciler.products SET record = '{\"spec\": 1}' WHERE uuid = %s AND workspace_id = "
            "(SELECT id FROM reconciler.workspaces WHERE name = %s)",
            (P[1], workspace),
        )
    with pytest.raises(StateCorruptError, match=f"product {P[1]}"):
        store.read_products([P[1]])
