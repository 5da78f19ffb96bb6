"""One VNTANA login and one throttle for every worker, kept in the state database.

Why: ``/v1/auth/refresh-token`` revokes the previous token of the same user and scope, so N
workers that each log in knock each other out (and every re-login knocks out the rest). And a
429 seen by one worker must slow all of them, or the other N-1 keep earning their own.

The login (``reconciler.api_sessions``), one row per scope:
  * ``scope`` is ``HKDF-SHA256(PAT, info="reconciler scope v1|api|org|workspace")``: it names
    the personal access token and the platform scope (the scope revocation works in) without
    revealing either;
  * ``sealed`` is the login (token, organization, role) as JSON, encrypted with AES-256-GCM
    under ``HKDF-SHA256(PAT, info="reconciler session key v1|…")``, a random 96-bit nonce, and
    the scope and generation as associated data (a row cannot be moved to another scope, nor
    an older one replayed as newer). Only a holder of the personal access token can derive
    the key; a database reader (a backup, a read-only plan role) gets bytes it cannot use.
    HKDF and not PBKDF2: a personal access token is a long random secret, not a password, so
    key stretching would cost every worker time and buy nothing;
  * one process logs in at a time: under a transaction-level advisory lock on the scope, it
    reads the row again (someone may have just logged in) and logs in only if there is none,
    if it cannot be opened, or if it is still the generation whose token was refused. A
    process killed mid-login releases the lock with its transaction.

The throttle (``reconciler.api_throttle``): "not before" on the server's clock, pushed later by
``throttled`` and read by ``pause`` at most every ``REFRESH`` seconds (the cache is shared by
the process's threads), so a request costs no database round trip.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from reconciler.client.session import SharedLogin
from reconciler.errors import StateError
from reconciler.settings import ClientSettings
from reconciler.state.pgschema import SCHEMA
from reconciler.state.pgstore import PgLocation

log = logging.getLogger("reconciler.workers")

SESSION_LOCK_CLASS = 0x5243_4E33
"""Advisory lock class ("RCN3") of a scope's login: one process logs in at a time."""
REFRESH = 0.25
"""Seconds between two reads of the shared throttle by one process."""


def _derive(pat: str, info: str, length: int) -> bytes:
    kdf = HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"reconciler shared session", info=info.encode()
    )
    return kdf.derive(pat.encode())


def _who() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


class SharedApi:
    """``SharedSession`` on PostgreSQL: pass it to every ``VntanaClient`` of every worker."""

    def __init__(self, where: PgLocation, settings: ClientSettings) -> None:
        self._where = where
        pat = settings.token.get_secret_value()
        context = f"{settings.api_url}|{settings.organization_uuid or ''}|{settings.client_uuid or ''}"
        self.scope = _derive(pat, "reconciler scope v1|" + context, 16).hex()
        self._aead = AESGCM(_derive(pat, "reconciler session key v1|" + context, 32))
        # Two connections, each with its lock: a login's own requests read (and, when throttled,
        # write) the throttle while the login's transaction is open.
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._throttle_lock = threading.Lock()
        self._throttle_conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._cached: SharedLogin | None = None
        self._not_before = 0.0  # time.monotonic() before which nobody may call the API
        self._read_at = -REFRESH
        self.logins = 0
        """Logins this process made itself (the rest were shared)."""

    # -- the connection ------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return psycopg.connect(
                self._where.conninfo, autocommit=True, application_name="reconciler shared session"
            )
        except psycopg.Error as exc:
            raise StateError(
                f"cannot reach {self._where.display} for the shared VNTANA session: "
                f"{self._where.scrub(str(exc).strip())}"
            ) from None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _throttle_connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._throttle_conn is None or self._throttle_conn.closed:
            self._throttle_conn = self._connect()
        return self._throttle_conn

    def close(self) -> None:
        with self._lock, self._throttle_lock:
            for conn in (self._conn, self._throttle_conn):
                if conn is not None:
                    conn.close()
            self._conn = self._throttle_conn = None

    # -- the login -----------------------------------------------------------------------------
    def login(self, fresh: Callable[[], SharedLogin], stale: int | None) -> SharedLogin:
        with self._lock:
            cached = self._cached
            if cached is not None and cached.generation != stale:
                return cached  # this process already holds the newest login it knows of
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (SESSION_LOCK_CLASS, self.scope)
                    )
                    row = conn.execute(
                        f"SELECT generation, sealed FROM {SCHEMA}.api_sessions WHERE scope = %s",
                        (self.scope,),
                    ).fetchone()
                    found = self._open(int(row[0]), bytes(row[1])) if row else None
                    if found is not None and found.generation != stale:
                        self._cached = found
                        return found
                    generation = (int(row[0]) if row else 0) + 1
                    made = fresh()
                    self.logins += 1
                    shared = SharedLogin(
                        made.token, made.organization_uuid, made.role, made.workspace_step, generation
                    )
                    conn.execute(
                        f"INSERT INTO {SCHEMA}.api_sessions (scope, generation, sealed, updated_by) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (scope) DO UPDATE SET generation = excluded.generation, "
                        "sealed = excluded.sealed, updated_at = now(), updated_by = excluded.updated_by",
                        (self.scope, generation, self._seal(shared), _who()),
                    )
            except psycopg.Error as exc:
                self._conn = None
                raise StateError(
                    f"the shared VNTANA session in {self._where.display} failed: "
                    f"{self._where.scrub(str(exc).strip())}"
                ) from None
            self._cached = shared
            return shared

    def _aad(self, generation: int) -> bytes:
        return f"{self.scope}|{generation}".encode()

    def _seal(self, login: SharedLogin) -> bytes:
        plain = json.dumps(
            {
                "token": login.token.get_secret_value(),
                "organization_uuid": login.organization_uuid,
                "role": login.role,
                "workspace_step": login.workspace_step,
            }
        ).encode()
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plain, self._aad(login.generation))

    def _open(self, generation: int, sealed: bytes) -> SharedLogin | None:
        """The login in a row, or None if it cannot be opened (tampered with, or another key)."""
        try:
            plain = self._aead.decrypt(sealed[:12], sealed[12:], self._aad(generation))
        except (InvalidTag, ValueError):
            log.warning("the shared VNTANA session could not be opened; logging in again")
            return None
        data = json.loads(plain)
        return SharedLogin(
            SecretStr(data["token"]),
            data.get("organization_uuid"),
            data.get("role"),
            data.get("workspace_step", "not configured"),
            generation,
        )

    # -- the throttle --------------------------------------------------------------------------
    def pause(self) -> float:
        now = time.monotonic()
        if now - self._read_at >= REFRESH and self._throttle_lock.acquire(blocking=False):
            try:
                self._read_at = now
                row = (
                    self._throttle_connection()
                    .execute(
                        "SELECT extract(epoch FROM not_before - clock_timestamp())::float8 "
                        f"FROM {SCHEMA}.api_throttle WHERE scope = %s",
                        (self.scope,),
                    )
                    .fetchone()
                )
                if row is not None and row[0] > 0:
                    self._not_before = max(self._not_before, time.monotonic() + float(row[0]))
            except psycopg.Error as exc:  # the throttle is advice: a lost read must not stop the run
                log.debug("reading the shared throttle: %s", self._where.scrub(str(exc)))
                self._throttle_conn = None
            except StateError as exc:
                log.debug("reading the shared throttle: %s", exc.message)
            finally:
                self._throttle_lock.release()
        return max(0.0, self._not_before - time.monotonic())

    def throttled(self, seconds: float) -> None:
        self._not_before = max(self._not_before, time.monotonic() + seconds)
        with self._throttle_lock:
            try:
                self._throttle_connection().execute(
                    f"INSERT INTO {SCHEMA}.api_throttle AS t (scope, not_before) "
                    "VALUES (%s, clock_timestamp() + make_interval(secs => %s)) ON CONFLICT (scope) DO UPDATE "
                    "SET not_before = greatest(t.not_before, excluded.not_before)",
                    (self.scope, seconds),
                )
            except psycopg.Error as exc:
                log.debug("writing the shared throttle: %s", self._where.scrub(str(exc)))
                self._throttle_conn = None
            except StateError as exc:
                log.debug("writing the shared throttle: %s", exc.message)
