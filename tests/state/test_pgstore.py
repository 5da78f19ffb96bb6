"""What only the PostgreSQL backend promises: its schema, fencing, workers, history and secrecy.

The contract it shares with the file store is in test_conformance.py. Everything here runs
against a real server (the ``pg_server`` fixture); tests that need a database of their own
(schema versions) create one.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid as uuidlib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler.errors import ConfigError, LockNotFoundError, StateCorruptError, StateError, StateVersionError
from reconciler.state import FileStateStore, State, open_store
from reconciler.state.pgschema import SCHEMA_VERSION, StateSchemaError
from reconciler.state.pgstore import LockLostError, PgStateStore, parse_location
from tests.pgserver import PgServer
from tests.state.test_conformance import rec, state_with, uuid_of

ROOT = Path(__file__).resolve().parents[2]


def sql(url: str, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """Behind the store's back: run one statement on the database of ``url``."""
    with psycopg.connect(url.partition("#")[0], autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def fresh_db(pg_server: PgServer) -> str:
    """A URL of a database of its own, with nothing in it."""
    return pg_server.create_database(f"fresh_{uuidlib.uuid4().hex[:12]}")


def write(store: Any, state: State) -> None:
    with store.lock("test"):
        store.write(state)


# -- choosing the backend, and the URL ---------------------------------------------------------


def test_open_store_picks_the_backend_from_the_location(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "s.json"), FileStateStore)
    assert isinstance(open_store("state/renders.state.json"), FileStateStore)
    assert isinstance(open_store("postgresql://db.example/recon"), PgStateStore)
    assert isinstance(open_store("postgres://db.example/recon#staging"), PgStateStore)
    with pytest.raises(ConfigError, match=r"no state backend for 's3'"):
        open_store("s3://bucket/state.json")
    with pytest.raises(ConfigError, match="lost a slash") as info:
        open_store(Path("postgresql://db.example/recon"))  # pathlib made it postgresql:/db.example/recon
    assert info.value.hint is not None and "postgresql://HOST/DBNAME" in info.value.hint


def test_the_password_never_reaches_the_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "env-secret-123")
    where = parse_location(
        "postgresql://ci:s%40cret-pw@db.example:5432/recon?sslmode=require&password=q-secret#team"
    )
    assert where.display == "postgresql://ci:***@db.example:5432/recon?sslmode=require&password=***#team"
    assert where.workspace == "team"
    assert (
        where.conninfo
        == "postgresql://ci:s%40cret-pw@db.example:5432/recon?sslmode=require&password=q-secret"
    )
    text = "failed: s%40cret-pw s@cret-pw q-secret env-secret-123"
    assert where.scrub(text) == "failed: *** *** *** ***"
    assert parse_location("postgresql://").workspace == "default"
    with pytest.raises(StateError, match="workspace 'bad name!' is not a valid name"):
        parse_location("postgresql://ci:pw-1234@db/recon#bad name!")


def test_connection_errors_name_the_location_and_never_the_password(pg_server: PgServer) -> None:
    password = "wrong-pw-" + uuidlib.uuid4().hex[:8]
    cases = {
        "refused": f"postgresql://u:{password}@127.0.0.1:1/db",
        "wrong password": f"postgresql://{pg_server.user}:{password}@{pg_server.host}:{pg_server.port}/postgres",
        "bad escape": f"postgresql://u:{password}%zz@127.0.0.1:1/db",  # libpq quotes this part back
    }
    for case, url in cases.items():
        store = open_store(url)
        # B023: each lambda is called in the iteration that made it, with that iteration's store.
        for attempt in (store.read, lambda: store.lock("apply").__enter__(), lambda: store.force_unlock("x")):  # noqa: B023
            with pytest.raises(StateError) as info:
                attempt()
            message = f"{info.value} {info.value.hint}"
            assert password not in message and "%zz" not in message, (case, message)
            assert store.location in message, (case, message)
            assert info.value.__cause__ is None  # not chained: libpq's own text may quote the URL
    wrong = cases["wrong password"]
    with pytest.raises(StateError, match="password authentication failed"):
        open_store(wrong).read()


# -- the schema ----------------------------------------------------------------------------------


def test_readers_create_nothing_and_the_first_writer_creates_the_schema(fresh_db: str) -> None:
    assert open_store(fresh_db).read().serial == 0
    assert sql(fresh_db, "SELECT to_regclass('reconciler.schema_migrations')") == [(None,)]
    write(open_store(fresh_db), state_with(1))
    assert sql(fresh_db, "SELECT version, name FROM reconciler.schema_migrations ORDER BY version") == [
        (1, "initial"),
        (2, "workers"),
    ]
    assert SCHEMA_VERSION == 2


def test_first_writers_racing_migrate_the_schema_once(fresh_db: str) -> None:
    errors: list[BaseException] = []

    def first_write(workspace: str) -> None:
        try:
            write(open_store(f"{fresh_db}#{workspace}"), state_with(2))
        except BaseException as exc:  # any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=first_write, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sql(fresh_db, "SELECT count(*) FROM reconciler.schema_migrations") == [(SCHEMA_VERSION,)]
    assert sql(fresh_db, "SELECT count(*) FROM reconciler.workspaces") == [(4,)]


def test_a_newer_schema_is_refused_and_the_database_left_alone(fresh_db: str) -> None:
    write(open_store(fresh_db), state_with(2))
    sql(
        fresh_db,
        "INSERT INTO reconciler.schema_migrations (version, name) VALUES (%s, 'from_the_future')",
        (SCHEMA_VERSION + 1,),
    )
    before = sql(fresh_db, "SELECT uuid, record::text FROM reconciler.products ORDER BY uuid")
    store = open_store(fresh_db)
    for attempt in (store.read, lambda: store.lock("apply").__enter__()):
        with pytest.raises(StateSchemaError) as info:
            attempt()
        assert isinstance(info.value, StateVersionError)  # the same kind of error as the file store's
        assert str(info.value) == (
            f"state database {store.location} has schema version {SCHEMA_VERSION + 1}, "
            f"newer than this reconciler understands ({SCHEMA_VERSION})"
        )
        assert info.value.hint == "upgrade reconciler; the database was not modified"
    assert sql(fresh_db, "SELECT uuid, record::text FROM reconciler.products ORDER BY uuid") == before


def test_a_damaged_record_is_reported_naming_the_product(pg_url: str) -> None:
    write(open_store(pg_url), state_with(2))
    sql(
        pg_url,
        """UPDATE reconciler.products SET record = '{"status": "bogus"}' WHERE uuid = %s""",
        (uuid_of(1),),
    )
    with pytest.raises(StateCorruptError, match=f"product {uuid_of(1)}: ") as info:
        open_store(pg_url).read()
    assert info.value.hint is not None and "state history" in info.value.hint


# -- workspaces ------------------------------------------------------------------------------------


def test_workspaces_are_separate_states_in_one_database(pg_url: str) -> None:
    other = pg_url + "-other"
    write(open_store(pg_url), state_with(1))
    write(open_store(other), state_with(3))
    with (
        open_store(pg_url).lock("apply"),
        open_store(other).lock("apply"),
    ):  # one lock does not block the other
        pass
    one, three = open_store(pg_url).read(), open_store(other).read()
    assert (len(one.products), len(three.products)) == (1, 3)
    assert one.lineage != three.lineage


# -- fencing and lost sessions -------------------------------------------------------------------


def test_a_force_unlocked_holder_that_still_runs_can_no_longer_write(pg_url: str) -> None:
    old = open_store(pg_url)
    with old.lock("apply") as held:
        state = old.fold()
        old.checkpoint(state, uuid_of(1), rec(1))
        open_store(pg_url).force_unlock(held.id)  # from another machine, say
        new = open_store(pg_url)
        with new.lock("apply"):  # at once: the old session's advisory lock no longer counts
            fresh = new.fold()
            new.checkpoint(fresh, uuid_of(2), rec(2))
        with pytest.raises(LockLostError, match=f"lock {held.id} on .* is no longer this process's") as info:
            old.checkpoint(state, uuid_of(3), rec(3))
        assert (
            info.value.hint == "everything checkpointed before this was kept; run the command again to resume"
        )
        with pytest.raises(LockLostError):
            old.write(state)
    assert sorted(open_store(pg_url).read().products) == [uuid_of(1), uuid_of(2)]
    ops = [v.operation for v in open_store(pg_url).history()]
    assert ops[:2] == ["apply", f"force-unlock {held.id}"]  # who broke the lock is on record


def test_a_holder_whose_session_is_lost_stops_with_an_error_and_frees_the_lock(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.lock("apply") as held:
        state = store.fold()
        (pid,) = sql(pg_url, "SELECT backend_pid FROM reconciler.locks WHERE id = %s", (held.id,))[0]
        sql(pg_url, "SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StateError, match=r"cannot checkpoint .* to postgresql://") as info:
            store.checkpoint(state, uuid_of(1), rec(1))
        assert not isinstance(info.value.__cause__, type(None))
        with open_store(pg_url).lock("apply"):  # the server released the lock with the session
            pass
    assert open_store(pg_url).read().products == {}


# -- workers: several sessions checkpointing under one holder's lock -----------------------------

WORKER = """
import sys
from reconciler.state import ProductRecord, Status, open_store
location, lock_id, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = open_store(location)
with store.join(lock_id) as me:
    state = store.read()
    for i in range(first, first + count):
        record = ProductRecord(spec={"imageWidth": 100 + i}, spec_hash=f"{i:064x}", status=Status.RENDERED,
                               updated_at="2026-01-01T00:00:00Z")
        store.checkpoint(state, f"{i:08x}-0000-4000-8000-000000000000", record)
print(me.pid)
"""


def test_workers_checkpoint_at_once_under_the_holders_lock(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.lock("apply") as held:
        state = store.fold()
        store.checkpoint(state, uuid_of(999), rec(999))
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(WORKER), pg_url, held.id, str(w * 15), "15"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(4)
        ]
        pids = set()
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            pids.add(int(out))
    final = open_store(pg_url).read()
    assert len(final.products) == 61 and final.serial == 61  # every checkpoint its own serial
    versions = open_store(pg_url).history(limit=100)
    assert {v.lock_id for v in versions} == {held.id}
    assert {v.pid for v in versions} == pids | {os.getpid()}
    assert sorted(v.serial for v in versions) == list(range(1, 62))


def test_a_worker_cannot_join_a_lock_that_is_not_held(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.lock("apply") as held:
        pass
    with pytest.raises(LockNotFoundError, match="no lock is held"), open_store(pg_url).join(held.id):
        pass
    with store.lock("apply") as held:
        worker = open_store(pg_url)
        with worker.join(held.id):
            state = worker.read()
            worker.checkpoint(state, uuid_of(1), rec(1))
            open_store(pg_url).force_unlock(held.id)
            with pytest.raises(LockLostError):
                worker.checkpoint(state, uuid_of(2), rec(2))
    assert sorted(open_store(pg_url).read().products) == [uuid_of(1)]


# -- history -------------------------------------------------------------------------------------


def test_history_says_who_wrote_each_serial_how_and_from_which_plan(
    pg_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"kind": "reconciler-plan"}')
    store = open_store(pg_url, plan_file=plan)
    with store.lock("apply"):
        state = store.fold()
        store.checkpoint(state, uuid_of(1), rec(1))
        store.checkpoint(state, uuid_of(1), None)
    newest, first = store.history()
    assert (newest.serial, newest.changes, first.changes) == (
        2,
        {uuid_of(1): "forgotten"},
        {uuid_of(1): "rendered"},
    )
    assert newest.plan == f"{plan} sha256:{hashlib.sha256(plan.read_bytes()).hexdigest()}"
    assert (newest.operation, newest.who, newest.host, newest.pid) == (
        "apply",
        getpass.getuser(),
        socket.gethostname(),
        os.getpid(),
    )
    assert newest.db_user == pg_server.user and newest.at.endswith("Z")
    assert [v.serial for v in store.history(uuid_of(2))] == []


def test_a_full_write_records_only_what_changed_and_any_serial_can_be_rebuilt(pg_url: str) -> None:
    store = open_store(pg_url)
    write(store, state_with(50))
    before = open_store(pg_url).read()
    with store.lock("state rm"):
        state = store.fold()
        del state.products[uuid_of(7)]
        state.products[uuid_of(4)] = rec(4).model_copy(update={"protect": True})
        store.write(state)
    newest = store.history()[0]
    assert (newest.serial, newest.operation, newest.products) == (2, "state rm", 2)
    assert newest.changes == {uuid_of(4): "rendered", uuid_of(7): "forgotten"}
    assert "pull --serial 1" in store.backup_path
    assert store.read_serial(1).to_json() == before.to_json()
    assert store.read_serial(2).to_json() == open_store(pg_url).read().to_json()
    with pytest.raises(StateError, match="serial 9 is not in the history"):
        store.read_serial(9)


def test_a_checkpoint_writes_one_row_whatever_the_size_of_the_state(pg_url: str) -> None:
    """The database-side twin of the file store's flat journal line: one version, one change, one product."""
    store = open_store(pg_url)
    write(store, state_with(2000))
    mine = (
        "(SELECT v.id FROM reconciler.versions v JOIN reconciler.workspaces w ON w.id = v.workspace_id "
        "WHERE w.name = %(ws)s)"
    )
    counts = (
        f"SELECT (SELECT count(*) FROM {mine} m), "
        f"(SELECT count(*) FROM reconciler.changes WHERE version_id IN {mine})"
    )
    ws = {"ws": pg_url.partition("#")[2]}
    ((versions, changes),) = sql(pg_url, counts, ws)
    with store.lock("apply"):
        state = store.fold()
        store.checkpoint(state, uuid_of(1), rec(1).model_copy(update={"name": "renamed"}))
    assert sql(pg_url, counts, ws) == [(versions + 1, changes + 1)]
    assert sql(
        pg_url,
        "SELECT count(*) FROM reconciler.products p JOIN reconciler.workspaces w "
        "ON w.id = p.workspace_id WHERE w.name = %s AND p.serial = %s",
        (pg_url.partition("#")[2], state.serial),
    ) == [(1,)]
