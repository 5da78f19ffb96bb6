"""PostgreSQL state backend: ``--state postgresql://…``, one state that every runner of a team sees.

Layout (schema ``reconciler``, created and migrated by pgschema.py): a database holds any
number of states, "workspaces", chosen by the URL's fragment (``…/db#staging``; none means
``default``). A workspace is a header row (``format_version``, ``lineage``, ``serial``) plus
one row per product holding the record exactly as the JSON file would. History keeps every
serial: a ``versions`` row (operation, who, host, pid, lock, saved plan, database user,
time) and a ``changes`` row per product it changed, so any serial can be rebuilt.

Invariants:
- A checkpoint is one statement, hence one transaction: bump the header's serial, append
  the version and the change, upsert (or delete) the product row. Several sessions may
  checkpoint at once; the header row's lock orders their serials. No journal, no fold.
- Every write is fenced: it commits only while the workspace's lock row still names the
  lock id it writes under (``FOR SHARE`` of that row in the same transaction).
- The writer lock is a session-level advisory lock, so a holder that dies, however it
  dies, releases it with its session; the lock row names the holder for whoever waits.
  ``force_unlock`` moves the lock to a new advisory key and clears the row: the next writer
  gets in at once, and a still-living old holder is refused at its next write. It never
  calls ``pg_terminate_backend`` (that needs the holder's role or pg_signal_backend, and
  the fence already makes the old session harmless).
- Credentials come from the URL, ``PG*`` variables, ``.pgpass`` or a service file (libpq
  resolves them). ``location``, every message and every error show the URL with its
  password replaced by ``***``; text from libpq is scrubbed of the password too, since its
  parse errors quote the connection string.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError

from reconciler._gc import gc_paused
from reconciler.errors import (
    LockNotFoundError,
    StateCorruptError,
    StateError,
    StateLockedError,
    StateVersionError,
)
from reconciler.state import pgschema
from reconciler.state.history import Version
from reconciler.state.model import FORMAT_VERSION, RECORD_ADAPTER, ProductRecord, State
from reconciler.state.pgschema import LOCK_CLASS, SCHEMA
from reconciler.state.store import LockInfo, StateStore

log = logging.getLogger("reconciler.state")

Connection = psycopg.Connection[tuple[Any, ...]]
DEFAULT_WORKSPACE = "default"
_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_SECRET_PARAMS = ("password", "sslpassword")
# Server-side TCP keepalives for the lock session: a holder whose machine vanished (no FIN)
# loses its lock after about idle + interval * count = 60 s instead of the OS default of hours.
_KEEPALIVE = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}
_POLL_SECONDS = 0.2  # lock retry interval while waiting (advisory locks cannot wait on a moving key)
_FETCH_ROWS = 5000  # rows per round trip when reading the products (a server-side cursor)


class LockLostError(StateError):
    """A write under a lock this process no longer holds (force-unlocked, or the session was lost)."""


# -- the URL -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgLocation:
    conninfo: str
    """The URL without our fragment: what libpq gets."""
    workspace: str
    display: str
    """The URL with every password replaced by ``***``."""
    secrets: tuple[str, ...]

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def parse_location(url: str) -> PgLocation:
    """Split ``postgresql://…[#workspace]`` into what libpq gets, the workspace and a redacted form."""
    base, _, fragment = url.partition("#")
    workspace = unquote(fragment) or DEFAULT_WORKSPACE
    secrets: list[str] = []
    parts = urlsplit(base)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        secrets += [password, unquote(password)]
        netloc = f"{user}:***@{hosts}"
    query = parts.query
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _SECRET_PARAMS and value:
            secrets.append(value)
    if query:
        query = "&".join(
            f"{k}=***" if k in _SECRET_PARAMS else piece
            for piece in query.split("&")
            for k in [unquote(piece.partition("=")[0])]
        )
    env_password = os.environ.get("PGPASSWORD")
    if env_password:
        secrets.append(env_password)
    display = (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if query else "")
        + (f"#{fragment}" if fragment else "")
    )
    # Longest first, so a secret that contains another is replaced whole.
    found = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    for secret in found:  # a password that also appears elsewhere in the URL (say, as the user name)
        display = display.replace(secret, "***")
    location = PgLocation(conninfo=base, workspace=workspace, display=display, secrets=found)
    if not _WORKSPACE.match(workspace):
        raise StateError(
            f"state URL {location.display}: workspace {workspace!r} is not a valid name",
            hint="after '#': letters, digits, '_', '.', '-', up to 63 characters",
        )
    return location


def _utc(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the store -----------------------------------------------------------------------------------

_CHECKPOINT_HEAD = f"""
WITH ws AS (
    UPDATE {SCHEMA}.workspaces SET serial = serial + 1, lineage = %(lineage)s, updated_at = now()
    WHERE id = %(ws)s AND lineage IN ('', %(lineage)s)
      AND EXISTS (SELECT FROM {SCHEMA}.locks WHERE workspace_id = %(ws)s AND id = %(lock)s FOR SHARE)
    RETURNING id, lineage, serial
), v AS (
    INSERT INTO {SCHEMA}.versions (workspace_id, lineage, serial, operation, who, host, pid, lock_id, plan)
    SELECT id, lineage, serial, %(operation)s, %(who)s, %(host)s, %(pid)s, %(lock)s, %(plan)s FROM ws
    RETURNING id, serial
)"""

_CHECKPOINT_UPSERT = (
    _CHECKPOINT_HEAD
    + f""", c AS (
    INSERT INTO {SCHEMA}.changes (version_id, uuid, record) SELECT id, %(uuid)s, %(record)s::json FROM v
    RETURNING record
)
INSERT INTO {SCHEMA}.products AS p (workspace_id, uuid, serial, digest, record)
SELECT %(ws)s, %(uuid)s, v.serial, %(digest)s, c.record FROM v, c
ON CONFLICT (workspace_id, uuid) DO UPDATE
    SET serial = excluded.serial, digest = excluded.digest, record = excluded.record
RETURNING serial"""
)

_CHECKPOINT_DELETE = (
    _CHECKPOINT_HEAD
    + f""", c AS (
    INSERT INTO {SCHEMA}.changes (version_id, uuid, record) SELECT id, %(uuid)s, NULL FROM v
), d AS (
    DELETE FROM {SCHEMA}.products WHERE workspace_id = %(ws)s AND uuid = %(uuid)s AND EXISTS (SELECT FROM v)
)
SELECT serial FROM v"""
)


@dataclass
class _Writer:
    """Who writes and under which lock: the holder itself, or a worker that joined its lock."""

    lock_id: str
    operation: str
    who: str
    host: str
    pid: int
    plan: str | None

    def params(self) -> dict[str, Any]:
        return {
            "lock": self.lock_id,
            "operation": self.operation,
            "who": self.who,
            "host": self.host,
            "pid": self.pid,
            "plan": self.plan,
        }


class PgStateStore:
    """State in a PostgreSQL database, shared by every machine that can reach it."""

    def __init__(self, url: str, *, plan_file: Path | None = None) -> None:
        self._where = parse_location(url)
        self.location = self._where.display
        self.workspace = self._where.workspace
        self._plan_file = plan_file
        self._mutex = threading.RLock()  # the executor's threads share the lock session
        self._conn: Connection | None = None
        self._ws: int | None = None
        self._writer: _Writer | None = None
        self._previous_serial: int | None = None

    @property
    def lock_id(self) -> str | None:
        """The id of the lock this store writes under (held or joined), None when it holds none."""
        with self._mutex:
            return None if self._writer is None else self._writer.lock_id

    @property
    def backup_path(self) -> str:
        """Where the state before the last write can be found (the file store's ``.backup``)."""
        serial = "N" if self._previous_serial is None else str(self._previous_serial)
        return f"the state history ('reconciler state pull --serial {serial} --state {self.location}')"

    # -- connections -------------------------------------------------------------------------
    def _connect(self, doing: str) -> Connection:
        try:
            given = conninfo_to_dict(self._where.conninfo)
            extra: dict[str, Any] = {"autocommit": True, "fallback_application_name": "reconciler"}
            if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
                extra["connect_timeout"] = 10
            # Client-side keepalives: a lost server fails our next call instead of hanging it.
            keepalives = {"keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
            extra.update({key: value for key, value in keepalives.items() if key not in given})
            return psycopg.connect(self._where.conninfo, **extra)
        except psycopg.Error as exc:
            # Not chained: libpq's text may quote the connection string, password included.
            raise StateError(
                f"{doing} {self.location}: {self._reason(exc)}",
                hint="check the URL, the PG* variables and the server; the password comes from "
                "the URL, PGPASSWORD, ~/.pgpass or a service file",
            ) from None

    def _reason(self, exc: BaseException) -> str:
        text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
        return self._where.scrub(text) or type(exc).__name__

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise StateError(f"{doing} {self.location}: {self._reason(exc)}") from exc

    @contextmanager
    def _session(self, doing: str) -> Iterator[Connection]:
        """The lock session while locked (one at a time), else a short-lived connection."""
        with self._mutex:
            if self._conn is not None:
                with self._translated(doing):
                    yield self._conn
                return
        conn = self._connect(doing)
        try:
            with self._translated(doing):
                yield conn
        finally:
            conn.close()

    # -- reading -------------------------------------------------------------------------------
    def read(self) -> State:
        with self._session("cannot read the state from") as conn:
            return self._read(conn)

    def fold(self) -> State:
        """The file store folds its journal here; checkpoints land in place, so this is ``read``."""
        return self.read()

    def _read(self, conn: Connection, *, at_version: int | None = None) -> State:
        if pgschema.check(conn, self.location, create=False) is None:
            return State(lineage="")
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute(
                f"SELECT id, format_version, lineage, serial FROM {SCHEMA}.workspaces WHERE name = %s",
                (self.workspace,),
            ).fetchone()
            if row is None:
                return State(lineage="")
            ws, version, lineage, serial = row
            if version > FORMAT_VERSION:
                raise StateVersionError(self.location, version, FORMAT_VERSION)
            if at_version is not None:
                serial, lineage = self._version_token(conn, ws, at_version)
                query = (
                    f"SELECT uuid, record::text FROM (SELECT DISTINCT ON (c.uuid) c.uuid, c.record "
                    f"FROM {SCHEMA}.changes c JOIN {SCHEMA}.versions v ON v.id = c.version_id "
                    f"WHERE v.workspace_id = %s AND c.version_id <= %s ORDER BY c.uuid, c.version_id DESC) t "
                    "WHERE record IS NOT NULL"
                )
                params: tuple[Any, ...] = (ws, at_version)
            else:
                query = f"SELECT uuid, record::text FROM {SCHEMA}.products WHERE workspace_id = %s"
                params = (ws,)
            state = State(lineage=lineage, serial=serial, format_version=version)
            records = state.products
            with gc_paused(), conn.cursor(name="reconciler_read") as cur:
                cur.itersize = _FETCH_ROWS
                cur.execute(query, params)
                for uuid, text in cur:
                    records[uuid] = _record(self.location, uuid, text, earlier=True)
        return state

    def read_products(self, products: list[str]) -> tuple[State, dict[str, str]]:
        """The state's header with only ``products``' records, and their digests (sha256 of the
        record as stored): a worker's share of a run, without reading the whole state."""
        with self._session("cannot read the state from") as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            head = conn.execute(
                f"SELECT id, lineage, serial, format_version FROM {SCHEMA}.workspaces WHERE name = %s",
                (self.workspace,),
            ).fetchone()
            if head is None:
                return State(lineage=""), {}
            ws, lineage, serial, version = head
            if version > FORMAT_VERSION:
                raise StateVersionError(self.location, version, FORMAT_VERSION)
            state = State(lineage=lineage, serial=serial, format_version=version)
            digests: dict[str, str] = {}
            rows = conn.execute(
                f"SELECT uuid, digest, record::text FROM {SCHEMA}.products WHERE workspace_id = %s "
                "AND uuid = ANY(%s)",
                (ws, list(products)),
            )
            for uuid, digest, text in rows:
                state.products[uuid] = _record(self.location, uuid, text, earlier=False)
                digests[uuid] = digest
        return state, digests

    def _version_token(self, conn: Connection, ws: int, version_id: int) -> tuple[int, str]:
        row = conn.execute(
            f"SELECT serial, lineage FROM {SCHEMA}.versions WHERE workspace_id = %s AND id = %s",
            (ws, version_id),
        ).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    def read_serial(self, serial: int) -> State:
        """The state as it was at ``serial`` (of the current lineage), rebuilt from the history."""
        with self._session("cannot read the history of") as conn:
            found = pgschema.check(conn, self.location, create=False) is not None
            row = (
                found
                and conn.execute(
                    f"SELECT max(v.id) FROM {SCHEMA}.versions v JOIN {SCHEMA}.workspaces w ON w.id = v.workspace_id "
                    "WHERE w.name = %s AND v.lineage = w.lineage AND v.serial = %s",
                    (self.workspace, serial),
                ).fetchone()
            )
            if not row or row[0] is None:
                raise StateError(
                    f"serial {serial} is not in the history of {self.location}",
                    hint="'reconciler state history' (with the same --state) lists the serials it holds",
                )
            return self._read(conn, at_version=int(row[0]))

    def history(self, product: str | None = None, limit: int = 50) -> list[Version]:
        """The newest ``limit`` versions (of ``product``, if given), newest first."""
        with self._session("cannot read the history of") as conn:
            if pgschema.check(conn, self.location, create=False) is None:
                return []
            where, params = "w.name = %s", [self.workspace]
            if product is not None:
                where += (
                    f" AND EXISTS (SELECT FROM {SCHEMA}.changes x WHERE x.version_id = v.id AND x.uuid = %s)"
                )
                params.append(product)
            rows = conn.execute(
                f"""SELECT v.serial, v.lineage, v.at, v.operation, v.who, v.host, v.pid, v.db_user, v.lock_id, v.plan,
                           (SELECT count(*) FROM {SCHEMA}.changes c WHERE c.version_id = v.id),
                           (SELECT array_agg(c.uuid || '=' || coalesce(c.status, 'forgotten') ORDER BY c.uuid)
                              FROM (SELECT * FROM {SCHEMA}.changes c WHERE c.version_id = v.id
                                    AND (%s::text IS NULL OR c.uuid = %s) ORDER BY c.uuid LIMIT 5) c)
                    FROM {SCHEMA}.versions v JOIN {SCHEMA}.workspaces w ON w.id = v.workspace_id
                    WHERE {where} ORDER BY v.id DESC LIMIT %s""",
                [product, product, *params, limit],
            ).fetchall()
        return [
            Version(
                serial=r[0],
                lineage=r[1],
                at=_utc(r[2]),
                operation=r[3],
                who=r[4],
                host=r[5],
                pid=r[6],
                db_user=r[7],
                lock_id=r[8],
                plan=r[9],
                products=r[10],
                changes=dict(item.split("=", 1) for item in (r[11] or [])),
            )
            for r in rows
        ]

    # -- writing -------------------------------------------------------------------------------
    def checkpoint(self, state: State, product: str, record: ProductRecord | None) -> None:
        writer, ws = self._require_lock()
        _ensure_lineage(state)
        params = {"ws": ws, "lineage": state.lineage, "uuid": product, **writer.params()}
        if record is None:
            query = _CHECKPOINT_DELETE
        else:
            text = record.model_dump_json()
            query = _CHECKPOINT_UPSERT
            params.update(record=text, digest=hashlib.sha256(text.encode()).hexdigest())
        with self._session(f"cannot checkpoint {product} to") as conn:
            row = conn.execute(query, params).fetchone()
            if row is None:
                self._refused(conn, ws, writer, state, f"the checkpoint of {product}")
            assert row is not None
        state.serial = int(row[0])
        if record is None:
            state.products.pop(product, None)
        else:
            state.products[product] = record

    def write(self, state: State, *, bump: bool = True) -> None:
        """Replace the stored state, writing only the products that differ, in one transaction.

        ``bump=False`` stores ``state`` at its own serial (the file store's fold, and ``state
        migrate``): when the database already holds that lineage and serial there is nothing
        to fold, since checkpoints land in place."""
        writer, ws = self._require_lock()
        _ensure_lineage(state)
        with self._session("cannot write the state to") as conn, conn.transaction():
            row = conn.execute(
                f"SELECT w.lineage, w.serial, l.id FROM {SCHEMA}.workspaces w JOIN {SCHEMA}.locks l "
                "ON l.workspace_id = w.id WHERE w.id = %s FOR UPDATE OF w FOR SHARE OF l",
                (ws,),
            ).fetchone()
            assert row is not None
            lineage, serial, holder = row
            if holder != writer.lock_id:
                self._refused(conn, ws, writer, state, "the write")
            if bump:
                if lineage not in ("", state.lineage):
                    raise self._other_lineage(lineage, state)
                if serial != state.serial:
                    raise StateError(
                        f"the state {self.location} moved under this write (serial {serial} in the "
                        f"database, {state.serial} read)",
                        hint="run the command again",
                    )
                new_serial = state.serial + 1
            elif (lineage, serial) == (state.lineage, state.serial):
                return
            else:
                new_serial = state.serial
            self._replace(conn, ws, writer, state, new_serial)
        self._previous_serial = serial
        state.serial = new_serial

    def _replace(self, conn: Connection, ws: int, writer: _Writer, state: State, serial: int) -> None:
        rows = conn.execute(
            f"SELECT uuid, digest FROM {SCHEMA}.products WHERE workspace_id = %s", (ws,)
        ).fetchall()
        stored: dict[str, str] = dict(rows)
        changed: list[tuple[str, str, str]] = []
        with gc_paused():
            for uuid, record in state.products.items():
                text = record.model_dump_json()
                digest = hashlib.sha256(text.encode()).hexdigest()
                if stored.get(uuid) != digest:
                    changed.append((uuid, digest, text))
        removed = sorted(stored.keys() - state.products.keys())
        row = conn.execute(
            f"INSERT INTO {SCHEMA}.versions (workspace_id, lineage, serial, operation, who, host, pid, lock_id, plan) "
            "VALUES (%(ws)s, %(lineage)s, %(serial)s, %(operation)s, %(who)s, %(host)s, %(pid)s, %(lock)s, %(plan)s) "
            "RETURNING id",
            {"ws": ws, "lineage": state.lineage, "serial": serial, **writer.params()},
        ).fetchone()
        assert row is not None
        version = row[0]
        with conn.cursor().copy(f"COPY {SCHEMA}.changes (version_id, uuid, record) FROM STDIN") as copy:
            for uuid, _, text in changed:
                copy.write_row((version, uuid, text))
            for uuid in removed:
                copy.write_row((version, uuid, None))
        if changed and not stored:  # a first write or a migrate into an empty workspace: straight in
            with conn.cursor().copy(
                f"COPY {SCHEMA}.products (workspace_id, uuid, serial, digest, record) FROM STDIN"
            ) as copy:
                for uuid, digest, text in changed:
                    copy.write_row((ws, uuid, serial, digest, text))
        elif changed:
            conn.execute(
                "CREATE TEMP TABLE reconciler_incoming (uuid text, digest text, record json) ON COMMIT DROP"
            )
            with conn.cursor().copy("COPY reconciler_incoming (uuid, digest, record) FROM STDIN") as copy:
                for item in changed:
                    copy.write_row(item)
            conn.execute(
                f"""INSERT INTO {SCHEMA}.products (workspace_id, uuid, serial, digest, record)
                             SELECT %s, uuid, %s, digest, record FROM reconciler_incoming
                             ON CONFLICT (workspace_id, uuid) DO UPDATE
                                 SET serial = excluded.serial, digest = excluded.digest, record = excluded.record""",
                (ws, serial),
            )
        if removed:
            conn.execute(
                f"DELETE FROM {SCHEMA}.products WHERE workspace_id = %s AND uuid = ANY(%s)", (ws, removed)
            )
        conn.execute(
            f"UPDATE {SCHEMA}.workspaces SET lineage = %s, serial = %s, format_version = %s, "
            "updated_at = now() WHERE id = %s",
            (state.lineage, serial, state.format_version, ws),
        )

    def _refused(self, conn: Connection, ws: int, writer: _Writer, state: State, what: str) -> None:
        row = conn.execute(
            f"SELECT l.id, w.lineage FROM {SCHEMA}.locks l JOIN {SCHEMA}.workspaces w "
            "ON w.id = l.workspace_id WHERE w.id = %s",
            (ws,),
        ).fetchone()
        holder, lineage = row if row else (None, "")
        if holder != writer.lock_id:
            now = f"it is now held by {holder}" if holder else "it is free now"
            raise LockLostError(
                f"{what} was refused: the lock {writer.lock_id} on {self.location} is no longer this process's "
                f"({now}); it was broken with force-unlock, or the database session was lost",
                hint="everything checkpointed before this was kept; run the command again to resume",
            )
        raise self._other_lineage(lineage, state)

    def _other_lineage(self, lineage: str, state: State) -> StateError:
        return StateError(
            f"the state {self.location} has lineage {lineage}, but this process holds lineage "
            f"{state.lineage} (the state was replaced while it ran)",
            hint="run the command again",
        )

    def _require_lock(self) -> tuple[_Writer, int]:
        with self._mutex:
            if self._writer is None or self._ws is None:
                raise StateError(f"internal error: write to {self.location} without holding its lock")
            return self._writer, self._ws

    # -- locking -------------------------------------------------------------------------------
    @contextmanager
    def lock(self, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        info = LockInfo.new(operation)
        conn = self._connect("cannot lock")
        try:
            with self._translated("cannot lock"):
                self._prepare_session(conn, f"reconciler {operation} {info.id}")
                pgschema.check(conn, self.location, create=True)
                ws = self._ensure_workspace(conn)
                plan = self._plan_identity()
                key = self._acquire(conn, ws, info, plan, timeout)
            writer = _Writer(info.id, operation, info.who, info.host, info.pid, plan)
            with self._mutex:
                self._conn, self._ws, self._writer = conn, ws, writer
            try:
                yield info
            finally:
                with self._mutex:
                    self._conn, self._writer = None, None
                    self._release(conn, ws, info, key)
        finally:
            conn.close()

    @contextmanager
    def join(self, lock_id: str, operation: str | None = None) -> Iterator[LockInfo]:
        """Write under a lock that another live session holds (a worker of the holder's run).

        Checkpoints are fenced by ``lock_id`` exactly as the holder's own are, and stop being
        accepted the moment the holder releases it or it is force-unlocked."""
        conn = self._connect("cannot join the lock of")
        try:
            with self._translated("cannot join the lock of"):
                if pgschema.check(conn, self.location, create=False) is None:
                    raise LockNotFoundError(f"no lock with id {lock_id} on {self.location}: no lock is held")
                holder = self._holder(conn)
                if (
                    holder is None
                    or holder.get("id") != lock_id
                    or not self._held_by_someone(conn, holder["key"])
                ):
                    current = (
                        f"the current holder is {holder['id']}"
                        if holder and holder.get("id")
                        else "no lock is held"
                    )
                    raise LockNotFoundError(f"no lock with id {lock_id} on {self.location}: {current}")
                self._prepare_session(conn, f"reconciler worker of {lock_id}")
            mine = LockInfo.new(operation or str(holder["operation"]))
            writer = _Writer(lock_id, mine.operation, mine.who, mine.host, mine.pid, holder.get("plan"))
            with self._mutex:
                self._conn, self._ws, self._writer = conn, int(holder["workspace_id"]), writer
            try:
                yield mine
            finally:
                with self._mutex:
                    self._conn, self._writer = None, None
        finally:
            conn.close()

    def _prepare_session(self, conn: Connection, name: str) -> None:
        settings = {**_KEEPALIVE, "application_name": name[:63]}
        if conn.info.server_version >= 140000:
            settings["idle_session_timeout"] = 0  # a run waits minutes for renders between checkpoints
        for key, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (key, str(value)))

    def _ensure_workspace(self, conn: Connection) -> int:
        with conn.transaction():
            conn.execute(
                f"INSERT INTO {SCHEMA}.workspaces (name, format_version) VALUES (%s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (self.workspace, FORMAT_VERSION),
            )
            row = conn.execute(
                f"SELECT id FROM {SCHEMA}.workspaces WHERE name = %s", (self.workspace,)
            ).fetchone()
            assert row is not None
            conn.execute(
                f"INSERT INTO {SCHEMA}.locks (workspace_id) VALUES (%s) ON CONFLICT DO NOTHING", (row[0],)
            )
        return int(row[0])

    def _acquire(self, conn: Connection, ws: int, info: LockInfo, plan: str | None, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            (key,) = conn.execute(
                f"SELECT key FROM {SCHEMA}.locks WHERE workspace_id = %s", (ws,)
            ).fetchone() or (0,)
            (got,) = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, key)).fetchone() or (
                False,
            )
            if got:
                with conn.transaction():
                    row = conn.execute(
                        f"SELECT key FROM {SCHEMA}.locks WHERE workspace_id = %s FOR UPDATE", (ws,)
                    ).fetchone()
                    if row is not None and row[0] == key:
                        conn.execute(
                            f"UPDATE {SCHEMA}.locks SET id = %s, operation = %s, who = %s, host = %s, pid = %s, "
                            "backend_pid = pg_backend_pid(), plan = %s, since = %s WHERE workspace_id = %s",
                            (info.id, info.operation, info.who, info.host, info.pid, plan, info.since, ws),
                        )
                        return int(key)
                # force-unlock moved the key between our read and our lock: that one is void, retry
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, key))
                continue
            holder = self._holder(conn)
            if time.monotonic() >= deadline:
                raise StateLockedError(self.location, _public(holder))
            if not announced:
                log.info(
                    "state %s is locked by %s; waiting up to %.0f s", self.location, _public(holder), timeout
                )
                announced = True
            time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def _release(self, conn: Connection, ws: int, info: LockInfo, key: int) -> None:
        try:
            conn.execute(
                f"UPDATE {SCHEMA}.locks SET id = NULL, operation = NULL, who = NULL, host = NULL, "
                "pid = NULL, backend_pid = NULL, plan = NULL, since = NULL "
                "WHERE workspace_id = %s AND id = %s",
                (ws, info.id),
            )
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, key))
        except psycopg.Error as exc:
            # The session is going anyway: closing it releases the advisory lock; a stale row is
            # overwritten by the next holder.
            log.debug("releasing the lock on %s: %s", self.location, self._reason(exc))

    def _holder(self, conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(
            f"SELECT l.workspace_id, l.key, l.id, l.operation, l.who, l.pid, l.host, l.since, l.backend_pid, l.plan "
            f"FROM {SCHEMA}.locks l JOIN {SCHEMA}.workspaces w ON w.id = l.workspace_id WHERE w.name = %s",
            (self.workspace,),
        ).fetchone()
        if row is None:
            return None
        names = (
            "workspace_id",
            "key",
            "id",
            "operation",
            "who",
            "pid",
            "host",
            "since",
            "backend_pid",
            "plan",
        )
        holder = dict(zip(names, row, strict=True))
        holder["since"] = _utc(holder["since"])
        return holder

    def _held_by_someone(self, conn: Connection, key: int) -> bool:
        row = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s AND objsubid = 2)",
            (LOCK_CLASS, key),
        ).fetchone()
        return bool(row and row[0])

    def force_unlock(self, lock_id: str) -> LockInfo:
        conn = self._connect("cannot unlock")
        try:
            with self._translated("cannot unlock"):
                holder = None
                if pgschema.check(conn, self.location, create=False) is not None:
                    with conn.transaction():
                        holder = self._holder(conn)
                        if holder and holder.get("id") == lock_id:
                            ws = holder["workspace_id"]
                            conn.execute(
                                f"SELECT FROM {SCHEMA}.locks WHERE workspace_id = %s FOR UPDATE", (ws,)
                            )
                            holder = self._holder(conn)  # as of our row lock
                        if holder and holder.get("id") == lock_id:
                            conn.execute(
                                f"UPDATE {SCHEMA}.locks SET key = nextval('{SCHEMA}.lock_keys'), id = NULL, "
                                "operation = NULL, who = NULL, host = NULL, pid = NULL, backend_pid = NULL, "
                                "plan = NULL, since = NULL WHERE workspace_id = %s",
                                (ws,),
                            )
                            me = LockInfo.new(f"force-unlock {lock_id}")
                            conn.execute(
                                f"INSERT INTO {SCHEMA}.versions (workspace_id, lineage, serial, operation, who, host, "
                                f"pid) SELECT id, lineage, serial, %s, %s, %s, %s FROM {SCHEMA}.workspaces "
                                "WHERE id = %s",
                                (me.operation, me.who, me.host, me.pid, ws),
                            )
                            return LockInfo(
                                id=lock_id,
                                operation=str(holder["operation"]),
                                who=str(holder["who"]),
                                pid=int(holder["pid"]),
                                host=str(holder["host"]),
                                since=holder["since"],
                            )
                current = (
                    f"the current holder is {holder['id']}"
                    if holder and holder.get("id")
                    else "no lock is held"
                )
                raise LockNotFoundError(f"no lock with id {lock_id} on {self.location}: {current}")
        finally:
            conn.close()

    def _plan_identity(self) -> str | None:
        """The saved plan being applied, as ``name sha256:…`` (None without one, or if unreadable)."""
        if self._plan_file is None:
            return None
        try:
            digest = hashlib.sha256(Path(self._plan_file).read_bytes()).hexdigest()
        except OSError:
            return str(self._plan_file)  # apply reports the unreadable plan itself
        return f"{self._plan_file} sha256:{digest}"


def _record(location: str, uuid: str, text: str, *, earlier: bool) -> ProductRecord:
    """A product's stored record, or StateCorruptError naming it and the first bad field
    (``earlier``: the hint also names the command that reads an earlier version)."""
    try:
        return RECORD_ADAPTER.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        hint = (
            "the database was left untouched; 'reconciler state history' (with the same --state) "
            "shows who wrote it"
        )
        if earlier:
            hint += ", 'reconciler state pull --serial N' an earlier version"
        raise StateCorruptError(location, f"product {uuid}: {where}: {first['msg']}", hint=hint) from exc


def _public(holder: dict[str, Any] | None) -> dict[str, Any] | None:
    """The holder as a waiting process is told about it (None while nobody is named)."""
    if not holder or not holder.get("id"):
        return None
    return {k: holder[k] for k in ("id", "operation", "who", "pid", "host", "since", "backend_pid", "plan")}


def _ensure_lineage(state: State) -> None:
    if not state.lineage:
        state.lineage = str(uuidlib.uuid4())


_CONFORMS: type[StateStore] = PgStateStore  # mypy checks the backend against the contract here
