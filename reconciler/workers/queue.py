"""The job queue of ``apply --workers``: procrastinate, in the state's own database.

Why procrastinate (issue 10): a maintained PostgreSQL job engine with what a run spread over
machines needs and we would otherwise hand-write: queueing locks, locks per key, worker
heartbeats and the stalled-job query that recovers a killed worker's job, LISTEN/NOTIFY so an
idle worker starts at once, and an in-memory connector for unit tests.

Its schema (tables ``procrastinate_*`` in the database's default schema) is procrastinate's,
applied by our code and versioned by us: ``ensure_schema`` applies procrastinate's own
``schema.sql`` to a database that has none, applies procrastinate's own migration files
between the version recorded in ``reconciler.queue_schema`` and the installed one when the
library was upgraded, and refuses a schema recorded by a newer procrastinate, as the state
schema refuses a newer reconciler. It runs under the state migrations' advisory lock, so
racing first workers apply it once. Not copied into our migrations: the schema would then
fork from procrastinate's upgrade path, which only its own files follow.

One queue per state workspace (``reconciler.<workspace>``); one job per render batch (and per
chunk of resumed products). A job's queueing lock and lock are its products' key: the same
products cannot be queued twice while one waits, and their jobs never run at once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager

from reconciler.errors import StateError
from reconciler.state.pgschema import LOCK_CLASS, SCHEMA
from reconciler.state.pgstore import PgLocation

TASK = "reconciler.apply_batch"
Connection = psycopg.Connection[tuple[Any, ...]]


def queue_name(workspace: str) -> str:
    return f"reconciler.{workspace}"


def products_key(workspace: str, products: list[str]) -> str:
    """The queueing lock and lock of a job over ``products`` (one per workspace and product set)."""
    digest = hashlib.sha256("\n".join(sorted(products)).encode()).hexdigest()[:24]
    return f"reconciler:{workspace}:{digest}"


@dataclass
class JobAction:
    """What the plan said for one product of a job."""

    kind: str
    reason: str
    name: str | None = None
    protect: bool | None = None
    force: bool = False
    spec_hash: str | None = None
    spec: dict[str, Any] | None = None


@dataclass
class BatchJob:
    """One job's arguments: a batch to trigger (or products to resume), and how to tell what an
    earlier attempt of the same job already did (``planned``: each product's record digest when
    the run was planned; a product whose record moved since was touched by this run)."""

    run: str
    """The run's state lock id: the worker writes under it (``PgStateStore.join``)."""
    lineage: str
    index: int
    spec_hash: str
    spec: dict[str, Any]
    products: list[str]
    actions: dict[str, JobAction]
    planned: dict[str, str | None]
    product_timeout: float = 900.0
    poll_interval: float = 2.0
    parallelism: int = 4
    resumes: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchJob:
        actions = {p: JobAction(**a) for p, a in data["actions"].items()}
        return cls(**{**data, "actions": actions})


def make_app(where: PgLocation, *, max_size: int = 4) -> procrastinate.App:
    """A procrastinate app on the state's database (its connections are libpq's, like the store's)."""
    connector = procrastinate.PsycopgConnector(
        conninfo=where.conninfo,
        min_size=1,
        max_size=max_size,
        kwargs={"application_name": "reconciler worker queue"},
    )
    return procrastinate.App(connector=connector)


# -- the schema ----------------------------------------------------------------------------------
def installed_version() -> str:
    return importlib.metadata.version("procrastinate")


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def ensure_schema(conn: Connection, location: str) -> str:
    """Make the queue schema current for the installed procrastinate; the version it is at.

    Needs the state schema (``reconciler.queue_schema``) to exist: call after ``pgschema.check``."""
    mine = installed_version()
    recorded = _recorded(conn)
    if recorded == mine:
        return mine
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))  # the migrators' lock
        recorded = _recorded(conn)
        if recorded is not None and _key(recorded) > _key(mine):
            raise StateError(
                f"the job queue in {location} was made by procrastinate {recorded}, newer than this "
                f"reconciler's ({mine})",
                hint="upgrade reconciler (and procrastinate) on this machine; the database was not modified",
            )
        exists = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        if recorded is None and not (exists and exists[0]):
            conn.execute(SchemaManager.get_schema().encode())
        elif recorded is not None and _key(recorded) < _key(mine):
            for path in _migrations_between(recorded, mine):
                conn.execute(path.read_text(encoding="utf-8").encode())
        # recorded None with the tables present: applied by hand ('procrastinate schema --apply')
        conn.execute(
            f"INSERT INTO {SCHEMA}.queue_schema (id, version) VALUES (true, %s) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version, applied_at = now()",
            (mine,),
        )
    return mine


def _recorded(conn: Connection) -> str | None:
    row = conn.execute(f"SELECT version FROM {SCHEMA}.queue_schema").fetchone()
    return None if row is None else str(row[0])


def _migrations_between(old: str, new: str) -> list[Path]:
    """procrastinate's own migration files after ``old`` up to ``new``, in order."""
    found = []
    for path in Path(SchemaManager.get_migrations_path()).glob("*.sql"):
        version = _key(path.name.split("_", 1)[0])
        if _key(old) < version <= _key(new):
            found.append(path)
    return sorted(found, key=lambda p: p.name)
