"""The shared VNTANA session and throttle (reconciler/workers/shared.py) on a real PostgreSQL and a
real sandbox: each ``SharedApi`` here stands for one worker process (its own connection, its own
cache), each ``VntanaClient`` for one job."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from reconciler.client import VntanaClient
from reconciler.errors import ApiError
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import EmbeddedSandbox
from reconciler.settings import ClientSettings
from reconciler.state import pgschema
from reconciler.state.pgstore import parse_location
from reconciler.workers.shared import SharedApi
from tests.e2e.conftest import fast_config


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[EmbeddedSandbox]:
    with EmbeddedSandbox(data_dir=tmp_path / "platform", config=fast_config()) as sb:
        yield sb


@pytest.fixture
def db(pg_database: str) -> str:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        pgschema.check(conn, "test", create=True)
        conn.execute("DELETE FROM reconciler.api_sessions")
        conn.execute("DELETE FROM reconciler.api_throttle")
    return pg_database


def settings_for(sandbox: EmbeddedSandbox, **extra: object) -> ClientSettings:
    return ClientSettings(
        api_url=sandbox.url,
        token=SecretStr(sandbox.access_token),
        organization_uuid=sandbox.organization_uuid,
        **extra,  # type: ignore[arg-type]
    )


def logins(sandbox: EmbeddedSandbox) -> int:
    db = sqlite3.connect(f"file:{sandbox.data_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM tokens WHERE kind = 'refresh'").fetchone()[0])
    finally:
        db.close()


def test_workers_racing_to_log_in_make_one_login_and_all_of_them_work(
    sandbox: EmbeddedSandbox, db: str
) -> None:
    settings = settings_for(sandbox)
    workers = [SharedApi(parse_location(db), settings) for _ in range(4)]
    errors: list[BaseException] = []

    def job(shared: SharedApi) -> None:
        try:
            with VntanaClient(settings, shared=shared) as client:
                assert client.organizations()
                assert client.workspaces()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(w,)) for w in workers for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert logins(sandbox) == 1
    assert sum(w.logins for w in workers) == 1
    for w in workers:
        w.close()


def test_a_revoked_token_is_renewed_once_and_the_other_workers_take_the_renewal(
    sandbox: EmbeddedSandbox, db: str
) -> None:
    settings = settings_for(sandbox)
    first, second = SharedApi(parse_location(db), settings), SharedApi(parse_location(db), settings)
    with VntanaClient(settings, shared=first) as a, VntanaClient(settings, shared=second) as b:
        a.organizations()
        b.organizations()
        assert logins(sandbox) == 1
        with VntanaClient(settings) as outsider:  # a login of its own revokes the shared token
            outsider.organizations()
        a.workspaces()  # refused, so it logs in again for everyone
        b.workspaces()  # refused too: it takes a's renewal instead of logging in again
        assert logins(sandbox) == 3
        assert (first.logins, second.logins) == (2, 0)
        assert a.stats.snapshot().relogins == 1 and b.stats.snapshot().relogins == 1
    first.close()
    second.close()


def test_the_stored_session_is_useless_without_the_personal_access_token(
    sandbox: EmbeddedSandbox, db: str
) -> None:
    settings = settings_for(sandbox)
    shared = SharedApi(parse_location(db), settings)
    with VntanaClient(settings, shared=shared) as client:
        client.organizations()
        token = client._session.current_token()[0].get_secret_value()
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT scope, sealed::text, generation FROM reconciler.api_sessions").fetchall()
    assert len(rows) == 1
    scope, sealed, generation = rows[0]
    assert (
        token not in sealed
        and token.encode().hex() not in sealed
        and settings.token.get_secret_value() not in scope
    )
    other = SharedApi(parse_location(db), settings.model_copy(update={"token": SecretStr("another-key")}))
    assert other.scope != shared.scope  # another key finds no session to open
    assert other._open(generation, bytes.fromhex(sealed[2:])) is None
    # A row tampered with (or sealed for another generation) is not opened: a fresh login replaces it.
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE reconciler.api_sessions SET generation = generation + 5")
    fresh = SharedApi(parse_location(db), settings)
    with VntanaClient(settings, shared=fresh) as client:
        client.organizations()
    assert fresh.logins == 1 and logins(sandbox) == 2
    for s in (shared, other, fresh):
        s.close()


def test_a_throttle_seen_by_one_worker_slows_the_others(sandbox: EmbeddedSandbox, db: str) -> None:
    settings = settings_for(sandbox, max_attempts=1)
    seer, other = SharedApi(parse_location(db), settings), SharedApi(parse_location(db), settings)
    with (
        VntanaClient(settings, shared=seer) as a,
        VntanaClient(settings, shared=other) as b,
        VntanaClient(settings) as alone,
    ):
        for client in (a, b, alone):
            client.login()
        sandbox.set_faults(FaultConfig(rate_429=1.0, retry_after_seconds=2))
        with pytest.raises(ApiError):
            a.organizations()  # throttled: Retry-After 2 s, for everyone sharing the scope
        sandbox.set_faults(FaultConfig())
        b.organizations()
        alone.organizations()
        waited, not_shared = b.stats.snapshot(), alone.stats.snapshot()
    print(
        f"\nshared throttle: a worker that saw no 429 waited {waited.throttled_seconds:.2f} s "
        f"(gate closed {waited.gate_closed_seconds:.2f} s) after another's Retry-After of 2 s; "
        f"a client outside the sharing waited {not_shared.throttled_seconds:.2f} s"
    )
    assert waited.statuses.get(429) is None and waited.throttled_seconds > 0
    assert not_shared.throttled_seconds == 0.0
    seer.close()
    other.close()


def test_a_login_that_is_throttled_fails_cleanly_and_tells_the_others(
    sandbox: EmbeddedSandbox, db: str
) -> None:
    settings = settings_for(sandbox, max_attempts=1)
    shared = SharedApi(parse_location(db), settings)
    sandbox.set_faults(FaultConfig(rate_429=1.0, retry_after_seconds=1))
    with VntanaClient(settings, shared=shared) as client, pytest.raises(ApiError):
        client.organizations()  # the login itself is throttled, inside the shared login's transaction
    sandbox.set_faults(FaultConfig())
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM reconciler.api_throttle").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM reconciler.api_sessions").fetchone() == (0,)
    with VntanaClient(settings, shared=shared) as client:
        assert client.organizations()
    shared.close()
