"""Persistence of the sandbox: one SQLite database plus result files in a data directory.

Layout of ``data_dir``:
  ``sandbox.sqlite3``  organizations, workspaces ("clients"), products, tokens, jobs,
                       attachments, webhooks and a ``meta`` table (schema version, server secret)
  ``blobs/<blobId>``   the bytes of every attachment and product model; blob ids are flat
                       ``<uuid>.<ext>``, as on the platform (upload-attachments.md)

Why SQLite: a restart must keep everything, several threads (HTTP handlers, render workers,
webhook senders) touch the same records, and "replace a product's attachments" has to be
one atomic step. One connection guarded by one lock is simple and fast enough here.

Versions: ``meta.schema_version`` names the layout. A data directory without it was made by
the first sandbox (version 1: blob ids ``<product>/<uuid>.<ext>``, no users, no product
lifecycle); it is migrated in place on open, file moves first and rows after, so a migration
cut short by a crash simply runs again. A directory written by a newer sandbox, or a file that
is not a SQLite database, is refused with a message that names it and says what to do.

Invariants:
- Tokens are stored as SHA-256 digests, never in clear.
- A product's attachments of one entity type change only inside ``commit_job``, which checks
  that no newer job of the same product and kind exists (a newer trigger supersedes).
- Blob files are written before the row that names them and removed after the row is gone,
  so a row never points at a missing file (an orphan file at worst, after a crash).
- Render results are the attachments whose ``entity_uuid`` is the uuid of one of the
  product's jobs; files uploaded by hand carry the product's uuid there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError

# Version 1: the layout of the first sandbox, kept verbatim so old directories open unchanged.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS organizations (
  uuid TEXT PRIMARY KEY, name TEXT NOT NULL, slug TEXT NOT NULL, role TEXT,
  position INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
  uuid TEXT PRIMARY KEY, organization_uuid TEXT NOT NULL, name TEXT NOT NULL, slug TEXT NOT NULL,
  position INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS products (
  uuid TEXT PRIMARY KEY, organization_uuid TEXT NOT NULL, client_uuid TEXT NOT NULL,
  name TEXT NOT NULL, description TEXT NOT NULL, status TEXT NOT NULL, shape TEXT NOT NULL,
  model_blob_id TEXT, model_size INTEGER, position INTEGER NOT NULL,
  created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  digest TEXT PRIMARY KEY, kind TEXT NOT NULL, organization_uuid TEXT, client_uuid TEXT,
  created REAL NOT NULL, expires REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT UNIQUE NOT NULL, trigger_uuid TEXT NOT NULL,
  product_uuid TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, spec TEXT NOT NULL,
  error TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_product ON jobs (product_uuid, kind, seq);
CREATE TABLE IF NOT EXISTS attachments (
  uuid TEXT PRIMARY KEY, product_uuid TEXT NOT NULL, entity_type TEXT NOT NULL,
  entity_uuid TEXT NOT NULL, blob_id TEXT NOT NULL, name TEXT NOT NULL,
  content_type TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS attachments_product ON attachments (product_uuid, entity_type);
CREATE TABLE IF NOT EXISTS webhooks (
  uuid TEXT PRIMARY KEY, organization_uuid TEXT NOT NULL, data TEXT NOT NULL, secret TEXT NOT NULL,
  created REAL NOT NULL, updated REAL NOT NULL);
"""

# Version 2: users own tokens; products have a lifecycle (create, asset upload, conversion,
# status, delete); blob ids are flat.
SCHEMA_V2_COLUMNS = (
    "ALTER TABLE tokens ADD COLUMN user_email TEXT",
    "ALTER TABLE products ADD COLUMN conversion_status TEXT NOT NULL DEFAULT 'COMPLETED'",
    "ALTER TABLE products ADD COLUMN pipeline_uuid TEXT",
    "ALTER TABLE products ADD COLUMN auto_publish INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE products ADD COLUMN publish_to_status TEXT",
    "ALTER TABLE products ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE products ADD COLUMN asset_name TEXT",
    "CREATE INDEX IF NOT EXISTS attachments_blob ON attachments (blob_id)",
)
SCHEMA_VERSION = 2

UNFINISHED = ("PENDING", "PROCESSING")
_FLAT = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\.([A-Za-z0-9]+))?$")
_MIGRATION_NS = uuidlib.UUID("3a0d5c8e-6b1f-4c2a-9e7d-8f4b2a1c0d9e")


class SandboxDataError(ReconcilerError):
    """The data directory cannot be used: unreadable, or written by a newer sandbox."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_blob_id(ext: str) -> str:
    """A fresh flat blob id, ``<uuid>.<ext>``."""
    return f"{uuidlib.uuid4()}.{ext.lower().lstrip('.')}"


class Store:
    """Thread-safe access to the sandbox database and blob directory."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.blob_dir = self.data_dir / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        path = self.data_dir / "sandbox.sqlite3"
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        try:
            self._open(path)
        except BaseException:
            self._db.close()
            raise

    def _open(self, path: Path) -> None:
        try:
            version = self._version()
        except sqlite3.DatabaseError as exc:
            raise SandboxDataError(
                f"{path} is not a sandbox database ({exc})",
                hint=f"point --data-dir (or --sandbox-dir) at another directory, or delete {self.data_dir} to start over",
            ) from exc
        if version > SCHEMA_VERSION:
            raise SandboxDataError(
                f"{self.data_dir} holds sandbox data version {version}, newer than this reconciler reads"
                f" (up to {SCHEMA_VERSION})",
                hint="upgrade reconciler, or point --data-dir (or --sandbox-dir) at another directory",
            )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA_V1)
        if version < 2:
            self._migrate_to_v2()

    def _version(self) -> int:
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            return 1
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row["value"]) if row else 1

    def _migrate_to_v2(self) -> None:
        """Version 1 -> 2: new columns, and flat blob ids (files first, rows after; idempotent)."""
        for statement in SCHEMA_V2_COLUMNS:
            added = re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", statement)
            if added and added.group(2) in {
                r["name"] for r in self._db.execute(f"PRAGMA table_info({added.group(1)})")
            }:
                continue  # a migration cut short already added it
            self._db.execute(statement)
        renames: dict[str, str] = {}
        for row in self._db.execute("SELECT blob_id FROM attachments WHERE blob_id LIKE '%/%'"):
            renames[row["blob_id"]] = _flat_id(row["blob_id"])
        for row in self._db.execute("SELECT model_blob_id FROM products WHERE model_blob_id LIKE '%/%'"):
            renames[row["model_blob_id"]] = _flat_id(row["model_blob_id"])
        for old, new in renames.items():
            source, target = self.blob_path(old), self.blob_path(new)
            if source.is_file() and not target.exists():
                os.replace(source, target)
        with self.tx() as db:
            for old, new in renames.items():
                db.execute("UPDATE attachments SET blob_id=? WHERE blob_id=?", (new, old))
                db.execute("UPDATE products SET model_blob_id=? WHERE model_blob_id=?", (new, old))
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        for directory in sorted({self.blob_path(old).parent for old in renames}, reverse=True):
            with contextlib.suppress(OSError):  # the old per-product folders, once empty
                directory.rmdir()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One atomic transaction under the store lock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def _one(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    # -- meta -----------------------------------------------------------------
    def meta(self, key: str, default_factory: Any) -> str:
        """The stored value of ``key``, created from ``default_factory()`` on first use."""
        with self.tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            if row:
                return str(row["value"])
            value = str(default_factory())
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            return value

    # -- seed and catalogue ---------------------------------------------------
    def apply_seed(self, seed: dict[str, Any]) -> None:
        """Insert the seed's organizations, workspaces and products that are not there yet."""
        now = time.time()
        with self.tx() as db:
            for o_pos, org in enumerate(seed.get("organizations", [])):
                db.execute(
                    "INSERT OR IGNORE INTO organizations VALUES (?,?,?,?,?,?)",
                    (
                        org["uuid"],
                        org["name"],
                        org.get("slug") or _slug(org["name"]),
                        org.get("role"),
                        o_pos,
                        now,
                    ),
                )
                for c_pos, client in enumerate(org.get("clients", [])):
                    db.execute(
                        "INSERT OR IGNORE INTO clients VALUES (?,?,?,?,?,?)",
                        (
                            client["uuid"],
                            org["uuid"],
                            client["name"],
                            client.get("slug") or _slug(client["name"]),
                            c_pos,
                            now,
                        ),
                    )
                    for p_pos, product in enumerate(client.get("products", [])):
                        self._insert_product(db, org["uuid"], client["uuid"], product, p_pos, now)

    def _insert_product(
        self, db: sqlite3.Connection, org: str, client: str, p: dict[str, Any], pos: int, now: float
    ) -> None:
        db.execute(
            "INSERT OR IGNORE INTO products (uuid, organization_uuid, client_uuid, name, description, status, shape,"
            " position, created, updated, conversion_status, pipeline_uuid, auto_publish, publish_to_status, attributes)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                p["uuid"],
                org,
                client,
                p["name"],
                p.get("description", ""),
                p.get("status", "LIVE_PUBLIC"),
                p.get("shape", "box"),
                pos,
                now,
                now,
                p.get("conversionStatus", "COMPLETED"),
                p.get("pipelineUuid"),
                1 if p.get("autoPublish") else 0,
                p.get("publishToStatus"),
                json.dumps(p.get("attributes") or {}),
            ),
        )

    def create_product(self, org: str, client: str, product: dict[str, Any]) -> dict[str, Any]:
        """Create a product (the API's create, or ``auto_create_products``); returns the stored row."""
        with self.tx() as db:
            pos = db.execute("SELECT COUNT(*) FROM products WHERE client_uuid=?", (client,)).fetchone()[0]
            self._insert_product(db, org, client, product, pos, time.time())
        row = self.product(product["uuid"])
        assert row is not None
        return row

    def update_product(self, uuid: str, **fields: Any) -> dict[str, Any] | None:
        """Change some columns of a product (``updated`` moves); None when it does not exist."""
        allowed = {
            "name",
            "description",
            "status",
            "conversion_status",
            "pipeline_uuid",
            "auto_publish",
            "publish_to_status",
            "attributes",
            "model_blob_id",
            "model_size",
            "asset_name",
        }
        assert set(fields) <= allowed, set(fields) - allowed
        if fields:
            sets = ", ".join(f"{k}=?" for k in fields)
            with self.tx() as db:
                db.execute(
                    f"UPDATE products SET {sets}, updated=? WHERE uuid=?",
                    (*fields.values(), time.time(), uuid),
                )
        return self.product(uuid)

    def delete_product(self, uuid: str) -> list[str]:
        """Remove a product, its attachments, and stop its unfinished jobs; returns blob ids to remove."""
        now = time.time()
        with self.tx() as db:
            blobs = [
                r["blob_id"]
                for r in db.execute("SELECT blob_id FROM attachments WHERE product_uuid=?", (uuid,))
            ]
            model = db.execute("SELECT model_blob_id FROM products WHERE uuid=?", (uuid,)).fetchone()
            if model is not None and model["model_blob_id"]:
                blobs.append(model["model_blob_id"])
            db.execute("DELETE FROM attachments WHERE product_uuid=?", (uuid,))
            db.execute(
                "UPDATE jobs SET status='SUPERSEDED', updated=? WHERE product_uuid=? AND status IN (?,?)",
                (now, uuid, *UNFINISHED),
            )
            db.execute("DELETE FROM products WHERE uuid=?", (uuid,))
        return blobs

    def organizations(self, member_only: bool = True) -> list[dict[str, Any]]:
        where = "WHERE role IS NOT NULL" if member_only else ""
        return self._all(f"SELECT * FROM organizations {where} ORDER BY position")

    def organization(self, uuid: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM organizations WHERE uuid=?", (uuid,))

    def clients(self, org: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM clients WHERE organization_uuid=? ORDER BY position", (org,))

    def all_clients(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM clients ORDER BY position")

    def client(self, uuid: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM clients WHERE uuid=?", (uuid,))

    def product(self, uuid: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM products WHERE uuid=?", (uuid,))

    def set_product_model(self, uuid: str, blob_id: str, size: int) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE products SET model_blob_id=?, model_size=? WHERE uuid=?", (blob_id, size, uuid)
            )

    def search_products(
        self,
        org: str,
        clients: Sequence[str],
        *,
        term: str | None = None,
        name: str | None = None,
        uuids: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
        conversion_statuses: Sequence[str] | None = None,
        sorts: Sequence[tuple[str, str]] = (),
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """Products of ``org`` in ``clients``, filtered then paged; with the total after the filters.

        Drafts never appear (product-creation.md, download-thumbnails.md: "drafts are never
        returned by search"), whatever ``statuses`` asks for.
        """
        where, args = ["p.organization_uuid=?", "p.status != 'DRAFT'"], [org]
        where.append(f"p.client_uuid IN ({','.join('?' * len(clients))})" if clients else "0")
        args.extend(clients)
        if term:
            where.append("(LOWER(p.name) LIKE ? OR LOWER(p.description) LIKE ?)")
            args.extend([f"%{term.lower()}%"] * 2)
        if name:
            where.append("LOWER(p.name) LIKE ?")
            args.append(f"%{name.lower()}%")
        for column, values in (
            ("p.uuid", uuids),
            ("p.status", statuses),
            ("p.conversion_status", conversion_statuses),
        ):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        clause = " AND ".join(where)
        order = [f"p.{column} {direction}" for column, direction in sorts] + [
            "c.position",
            "p.position",
            "p.uuid",
        ]
        total = self._all(f"SELECT COUNT(*) AS n FROM products p WHERE {clause}", args)[0]["n"]
        rows = self._all(
            f"SELECT p.*, c.slug AS client_slug FROM products p JOIN clients c ON c.uuid=p.client_uuid "
            f"WHERE {clause} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return rows, int(total)

    # -- tokens ---------------------------------------------------------------
    def add_token(
        self,
        token: str,
        kind: str,
        org: str | None,
        client: str | None,
        ttl: float,
        user_email: str | None = None,
    ) -> float:
        """Store a new token; a refresh token revokes the user's earlier ones of the same scope."""
        now = time.time()
        expires = now + ttl
        with self.tx() as db:
            if kind == "refresh":
                db.execute(
                    "UPDATE tokens SET revoked=1 WHERE kind='refresh' AND organization_uuid=? AND client_uuid IS ?"
                    " AND user_email IS ?",
                    (org, client, user_email),
                )
            db.execute(
                "INSERT INTO tokens (digest, kind, organization_uuid, client_uuid, created, expires, user_email)"
                " VALUES (?,?,?,?,?,?,?)",
                (token_digest(token), kind, org, client, now, expires, user_email),
            )
        return expires

    def adopt_tokens(self, user_email: str) -> None:
        """Tokens of a version-1 directory (one user then) belong to the default user."""
        with self.tx() as db:
            db.execute("UPDATE tokens SET user_email=? WHERE user_email IS NULL", (user_email,))

    def token(self, token: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM tokens WHERE digest=?", (token_digest(token),))

    def revoke_token(self, token: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE tokens SET revoked=1 WHERE digest=?", (token_digest(token),))

    # -- jobs -----------------------------------------------------------------
    def create_jobs(
        self, trigger_uuid: str, product_uuids: Sequence[str], specs: dict[str, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Queue one job per product and kind (``specs`` maps kind -> spec); supersede older ones.

        Older unfinished jobs of the same product and kind become SUPERSEDED in the same
        transaction, so their results can never land after the newer trigger was accepted.
        """
        now = time.time()
        created: list[dict[str, Any]] = []
        with self.tx() as db:
            for product in product_uuids:
                for kind, spec in specs.items():
                    db.execute(
                        "UPDATE jobs SET status='SUPERSEDED', updated=? WHERE product_uuid=? AND kind=? AND status IN (?,?)",
                        (now, product, kind, *UNFINISHED),
                    )
                    job_uuid = str(uuidlib.uuid4())
                    db.execute(
                        "INSERT INTO jobs (uuid, trigger_uuid, product_uuid, kind, status, spec, created, updated)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        (job_uuid, trigger_uuid, product, kind, "PENDING", json.dumps(spec), now, now),
                    )
                    created.append(self._job_row(db, job_uuid))
        return created

    @staticmethod
    def _job_row(db: sqlite3.Connection, job_uuid: str) -> dict[str, Any]:
        row = dict(db.execute("SELECT * FROM jobs WHERE uuid=?", (job_uuid,)).fetchone())
        row["spec"] = json.loads(row["spec"])
        return row

    def job(self, job_uuid: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT uuid FROM jobs WHERE uuid=?", (job_uuid,)).fetchone()
            return self._job_row(self._db, job_uuid) if row else None

    def unfinished_jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            uuids = [
                r["uuid"]
                for r in self._db.execute(
                    "SELECT uuid FROM jobs WHERE status IN (?,?) ORDER BY seq", UNFINISHED
                )
            ]
            return [self._job_row(self._db, u) for u in uuids]

    def transition_job(self, job_uuid: str, before: str, after: str, error: str | None = None) -> bool:
        """Move a job from ``before`` to ``after``; False when it is no longer in ``before``."""
        with self.tx() as db:
            cur = db.execute(
                "UPDATE jobs SET status=?, error=?, updated=? WHERE uuid=? AND status=?",
                (after, error, time.time(), job_uuid, before),
            )
            return cur.rowcount == 1

    def commit_job(
        self, job: dict[str, Any], outputs: Sequence[dict[str, Any]], *, replace_uploads: bool = False
    ) -> list[str] | None:
        """Complete a PROCESSING job: replace the product's render results of the job's kind.

        ``outputs`` are attachment rows (blob files already written). Earlier results of the
        same kind are replaced; files uploaded by hand to the Renders tab are replaced too only
        with ``replace_uploads``. Returns the blob ids of the replaced attachments (to delete
        from disk), or None when the job was superseded meanwhile; then nothing changed and the
        caller discards its files.
        """
        now = time.time()
        with self.tx() as db:
            row = db.execute("SELECT status FROM jobs WHERE uuid=?", (job["uuid"],)).fetchone()
            newer = db.execute(
                "SELECT 1 FROM jobs WHERE product_uuid=? AND kind=? AND seq>?",
                (job["product_uuid"], job["kind"], job["seq"]),
            ).fetchone()
            if row is None or row["status"] != "PROCESSING" or newer is not None:
                return None
            which = "product_uuid=? AND entity_type=?"
            args: list[Any] = [job["product_uuid"], job["kind"]]
            if not replace_uploads:
                which += " AND entity_uuid IN (SELECT uuid FROM jobs WHERE product_uuid=?)"
                args.append(job["product_uuid"])
            old = [r["blob_id"] for r in db.execute(f"SELECT blob_id FROM attachments WHERE {which}", args)]
            db.execute(f"DELETE FROM attachments WHERE {which}", args)
            for a in outputs:
                db.execute(
                    "INSERT INTO attachments VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        a["uuid"],
                        job["product_uuid"],
                        job["kind"],
                        job["uuid"],
                        a["blob_id"],
                        a["name"],
                        a["content_type"],
                        a["size"],
                        now,
                        now,
                    ),
                )
            db.execute("UPDATE jobs SET status='COMPLETED', updated=? WHERE uuid=?", (now, job["uuid"]))
            return old

    # -- attachments ----------------------------------------------------------
    def add_attachment(self, row: dict[str, Any]) -> dict[str, Any]:
        """Record an uploaded file (its blob already written); returns the stored row."""
        now = time.time()
        with self.tx() as db:
            db.execute(
                "INSERT INTO attachments VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    row["uuid"],
                    row["product_uuid"],
                    row["entity_type"],
                    row["entity_uuid"],
                    row["blob_id"],
                    row["name"],
                    row["content_type"],
                    row["size"],
                    now,
                    now,
                ),
            )
        stored = self.attachment(row["uuid"])
        assert stored is not None
        return stored

    def search_attachments(
        self,
        product: str,
        entity_type: str | None,
        entity_uuid: str | None,
        *,
        offset: int,
        limit: int,
        descending: bool,
    ) -> tuple[list[dict[str, Any]], int]:
        where, args = ["product_uuid=?"], [product]
        if entity_type:
            where.append("entity_type=?")
            args.append(entity_type)
        if entity_uuid:
            where.append("entity_uuid=?")
            args.append(entity_uuid)
        clause = " AND ".join(where)
        order = "DESC" if descending else "ASC"
        total = self._all(f"SELECT COUNT(*) AS n FROM attachments WHERE {clause}", args)[0]["n"]
        rows = self._all(
            f"SELECT * FROM attachments WHERE {clause} ORDER BY created {order}, name {order}, uuid {order}"
            " LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return rows, int(total)

    def attachment(self, uuid: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM attachments WHERE uuid=?", (uuid,))

    def attachment_by_blob(self, blob_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM attachments WHERE blob_id=?", (blob_id,))

    def is_render_result(self, attachment: dict[str, Any]) -> bool:
        """True when a render job made this attachment (not a hand upload)."""
        return self._one("SELECT 1 AS x FROM jobs WHERE uuid=?", (attachment["entity_uuid"],)) is not None

    def delete_attachment(self, uuid: str) -> dict[str, Any] | None:
        with self.tx() as db:
            row = db.execute("SELECT * FROM attachments WHERE uuid=?", (uuid,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM attachments WHERE uuid=?", (uuid,))
            return dict(row)

    # -- webhooks -------------------------------------------------------------
    def webhooks(self, org: str) -> list[dict[str, Any]]:
        return [
            _webhook(r)
            for r in self._all(
                "SELECT * FROM webhooks WHERE organization_uuid=? ORDER BY created, uuid", (org,)
            )
        ]

    def webhook(self, uuid: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM webhooks WHERE uuid=?", (uuid,))
        return _webhook(row) if row else None

    def save_webhook(self, uuid: str, org: str, data: dict[str, Any], secret: str) -> dict[str, Any]:
        """Insert or update a webhook (``data`` holds the user-settable fields)."""
        now = time.time()
        with self.tx() as db:
            cur = db.execute(
                "UPDATE webhooks SET data=?, secret=?, updated=? WHERE uuid=?",
                (json.dumps(data), secret, now, uuid),
            )
            if cur.rowcount == 0:
                db.execute(
                    "INSERT INTO webhooks VALUES (?,?,?,?,?,?)",
                    (uuid, org, json.dumps(data), secret, now, now),
                )
        row = self.webhook(uuid)
        assert row is not None
        return row

    def record_delivery(self, uuid: str, delivered: bool, disable_after: int) -> bool:
        """Count a delivery that succeeded or was given up; True when this disabled the webhook.

        ``failures`` counts deliveries given up in a row; a success resets it. At
        ``disable_after`` the webhook is disabled (webhooks.md: "eventually the webhook is disabled").
        """
        with self.tx() as db:
            row = db.execute("SELECT data FROM webhooks WHERE uuid=?", (uuid,)).fetchone()
            if row is None:
                return False
            data = json.loads(row["data"])
            failures = 0 if delivered else int(data.get("failures", 0)) + 1
            disabling = (
                not delivered and disable_after > 0 and failures >= disable_after and not data.get("disable")
            )
            data["failures"] = failures
            if disabling:
                data["disable"] = True
                data["disabledBySandbox"] = True
            db.execute(
                "UPDATE webhooks SET data=?, updated=? WHERE uuid=?", (json.dumps(data), time.time(), uuid)
            )
            return disabling

    def delete_webhook(self, uuid: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM webhooks WHERE uuid=?", (uuid,))

    # -- blobs ----------------------------------------------------------------
    def blob_path(self, blob_id: str) -> Path:
        return self.blob_dir / blob_id

    def write_blob(self, blob_id: str, data: bytes) -> None:
        """Write a blob file atomically (temp + rename): a reader never sees half a file."""
        path = self.blob_path(blob_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def remove_blobs(self, blob_ids: Sequence[str]) -> None:
        for blob_id in blob_ids:
            self.blob_path(blob_id).unlink(missing_ok=True)


def _flat_id(old: str) -> str:
    """The flat blob id of a version-1 ``<product>/<uuid>.<ext>`` id (stable, so re-runs agree)."""
    base = old.rsplit("/", 1)[-1]
    ext = base.rsplit(".", 1)[-1] if "." in base else "bin"
    found = _FLAT.search(base)
    uuid = found.group(1) if found else str(uuidlib.uuid5(_MIGRATION_NS, old))
    return f"{uuid}.{ext}"


def _webhook(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(row["data"])
    out.update(
        uuid=row["uuid"],
        organizationUuid=row["organization_uuid"],
        secret=row["secret"],
        created=row["created"],
        updated=row["updated"],
    )
    return out


def _slug(name: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in name)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-") or "item"


slug = _slug
