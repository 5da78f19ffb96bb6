"""Suite-wide settings, and the real PostgreSQL server the state-backend tests use."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.pgserver import INSTALL_HINT, URL_ENV, PgServer, find_bindir
from tests.reaper import Reaper
from tests.smalldisk import SmallDisk, small_disk

# The suite shares two cores with sandboxes, renders and subprocesses: a property test that is
# slow because the machine is busy is not a failing property. Examples stay bounded per test.
settings.register_profile("reconciler", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("reconciler")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's parse and state-index caches (reconciler/cache.py) live in its own temp dir,
    never in the user's ~/.cache; CLI subprocesses inherit it."""
    before = os.environ.get("RECONCILER_CACHE_DIR")
    os.environ["RECONCILER_CACHE_DIR"] = str(tmp_path_factory.mktemp("reconciler-cache"))
    yield
    if before is None:
        os.environ.pop("RECONCILER_CACHE_DIR", None)
    else:
        os.environ["RECONCILER_CACHE_DIR"] = before


@pytest.fixture(scope="session", autouse=True)
def _compiled_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI subprocesses (some 800 a run) load the project's bytecode, compiled once per session.

    With PYTHONDONTWRITEBYTECODE set (as on the CI machine), every ``python -m reconciler``
    compiled each reconciler module again: 0.06 s a plan, 0.13 s an ``apply --sandbox``. The
    bytecode goes to the session's temp dir (PYTHONPYCACHEPREFIX), never into the source tree,
    and Python checks it against each source file, so a changed file is compiled afresh."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        yield  # bytecode is written next to the sources already, or where the user asked
        return
    before = os.environ.pop("PYTHONDONTWRITEBYTECODE")
    os.environ["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    yield
    os.environ["PYTHONDONTWRITEBYTECODE"] = before
    os.environ.pop("PYTHONPYCACHEPREFIX", None)


@pytest.fixture(scope="session")
def reaper() -> Iterator[Reaper]:
    """Stops the servers of finished tests in the background (tests/reaper.py); all are stopped,
    and any failure to stop fails the session, before it ends."""
    stopping = Reaper()
    yield stopping
    stopping.join()


# -- a real PostgreSQL server for the state-backend tests (tests/pgserver.py) -------------------
PG_TEST_DATABASE = "reconciler_tests"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The server ``RECONCILER_TEST_PG_URL`` names, or one started for this session (initdb + pg_ctl).

    Without PostgreSQL the tests that need it are skipped, except under CI, where they fail."""
    if os.environ.get(URL_ENV):
        yield PgServer.from_url(os.environ[URL_ENV])
        return
    if find_bindir() is None:
        message = (
            f"PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin): "
            f"install it with '{INSTALL_HINT}', or point the tests at a server with "
            f"{URL_ENV}=postgresql://USER:PASSWORD@HOST:PORT/postgres"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{message}. CI runs every PostgreSQL test: .ci/run installs and starts the server")
        pytest.skip(message)
    try:
        server = PgServer.start()
    except Exception as exc:  # whatever stops the server is the finding
        output = getattr(exc, "output", b"") or b""
        pytest.fail(f"could not start PostgreSQL: {exc}\n{output.decode(errors='replace')}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_database(pg_server: PgServer) -> str:
    """A URL (password included) of one database shared by the session's PostgreSQL tests."""
    return pg_server.create_database(PG_TEST_DATABASE)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A state URL of a workspace no other test uses (``…/reconciler_tests#t…``)."""
    return f"{pg_database}#t{uuid.uuid4().hex[:16]}"


# -- a small real file system that can be filled or made read-only (tests/smalldisk.py) ---------
@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 256 KiB tmpfs at ``tmp_path/disk``, unmounted after the test."""
    with small_disk(tmp_path / "disk") as mounted:
        yield mounted
