"""The PostgreSQL state schema: versioned migrations shipped in the package, applied by us.

Migrations are ``migrations/NNNN_name.sql``, applied in order, each once, in one transaction
with the record of it in ``reconciler.schema_migrations``. Writers (anything that locks)
upgrade an older schema; readers only upgrade a schema that exists but is behind, so a
read-only role can ``plan`` against a current schema and an empty database stays empty. A
schema newer than this reconciler's is refused, as the file store refuses a newer format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from reconciler.errors import StateError, StateVersionError

if TYPE_CHECKING:
    import psycopg

SCHEMA = "reconciler"
LOCK_CLASS = 0x5243_4E31
"""First key of every advisory lock we take ("RCN1"): (LOCK_CLASS, 0) serialises migrations,
(LOCK_CLASS, key) is a workspace's writer lock (keys come from a sequence starting at 1)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _migrations() -> list[Migration]:
    found = []
    for entry in resources.files("reconciler.state").joinpath("migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n: {[m.version for m in found]}")
    return found


MIGRATIONS = _migrations()
SCHEMA_VERSION = MIGRATIONS[-1].version


class StateSchemaError(StateVersionError):
    """The database's state schema was made by a newer reconciler."""

    def __init__(self, location: str, found: int, supported: int) -> None:
        StateError.__init__(
            self,
            f"state database {location} has schema version {found}, newer than this reconciler "
            f"understands ({supported})",
            hint="upgrade reconciler; the database was not modified",
        )


def installed_version(conn: psycopg.Connection[tuple[Any, ...]]) -> int | None:
    """The schema version in this database, or None if the schema was never created."""
    row = conn.execute(f"SELECT to_regclass('{SCHEMA}.schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_migrations").fetchone()
    return int(row[0]) if row else 0


def check(conn: psycopg.Connection[tuple[Any, ...]], location: str, *, create: bool) -> int | None:
    """Make the schema current (creating it only if ``create``); the version it is at after."""
    version = installed_version(conn)
    if version is not None and version > SCHEMA_VERSION:
        raise StateSchemaError(location, version, SCHEMA_VERSION)
    if version == SCHEMA_VERSION or (version is None and not create):
        return version
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))  # one migrator at a time
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
                             version    integer PRIMARY KEY,
                             name       text NOT NULL,
                             applied_at timestamptz NOT NULL DEFAULT now(),
                             applied_by text NOT NULL DEFAULT current_user)""")
        version = installed_version(conn) or 0  # another process may have migrated while we waited
        if version > SCHEMA_VERSION:
            raise StateSchemaError(location, version, SCHEMA_VERSION)
        for migration in MIGRATIONS:
            if migration.version > version:
                conn.execute(migration.sql.encode())  # no parameters: several statements are allowed
                conn.execute(
                    f"INSERT INTO {SCHEMA}.schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
    return SCHEMA_VERSION
