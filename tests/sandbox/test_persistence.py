"""A restart keeps everything; a data directory of the first sandbox opens; a newer one is refused."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.sandbox import sandbox_command
from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig
from reconciler.sandbox.store import SandboxDataError

from .helpers import FAST, SHOE, Api


def test_restart_keeps_everything(tmp_path, api_factory, receiver) -> None:
    data = tmp_path / "data"
    with EmbeddedSandbox(data, SandboxConfig(**FAST)) as first:
        api = api_factory(first)
        token = api.login()
        api.rendered(SHOE)
        before = api.attachments(SHOE)
        url = api.sign(before[0])
        hook = api.create_webhook(receiver.url, ["renders.completed"])
        assert hook.status_code == 200
        org, client = first.organization_uuid, first.client_uuid
        downloaded = api.fetch(url).content
    with EmbeddedSandbox(data, SandboxConfig(**FAST)) as second:
        again = api_factory(second)
        again.token = token  # the old token still works
        assert (second.organization_uuid, second.client_uuid) == (org, client)
        assert again.attachments(SHOE) == before
        # a URL signed before the restart still downloads (the URL secret persists), on the new port
        moved = url.replace(url.split("/sandbox-storage/")[0], second.url)
        assert again.fetch(moved).content == downloaded
        webhooks = again.get(again.webhook_path("list")).json()["response"]["grid"]
        assert [w["uuid"] for w in webhooks] == [hook.json()["response"]["uuid"]]
        assert webhooks[0]["secret"] == hook.json()["response"]["secret"]


def test_unfinished_jobs_resume_after_a_restart(tmp_path, api_factory) -> None:
    data = tmp_path / "data"
    slow = SandboxConfig(**{**FAST, "job_pending_seconds": 30})
    with EmbeddedSandbox(data, slow) as first:
        api = api_factory(first)
        api.login()
        assert api.render(SHOE).status_code == 200
        token = api.token
    with EmbeddedSandbox(data, SandboxConfig(**FAST)) as second:
        assert second.wait_idle(timeout=20)
        again: Api = api_factory(second)
        again.token = token
        assert len(again.attachments(SHOE)) == 3


def test_stopping_joins_every_thread(tmp_path, api_factory) -> None:
    import threading

    before = set(threading.enumerate())
    with EmbeddedSandbox(tmp_path / "data", SandboxConfig(**FAST)) as sb:
        api = api_factory(sb)
        api.login()
        api.rendered(SHOE)
        assert {t.name for t in set(threading.enumerate()) - before} >= {"sandbox-http", "sandbox-jobs"}
        api.close()
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leftover == []


def test_unknown_routes_and_methods_use_the_envelope(api: Api) -> None:
    missing = api.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()) == (
        404,
        {"success": False, "errors": ["NOT_FOUND"], "response": None},
    )
    wrong = api.request("PATCH", "/v1/organizations")
    assert (wrong.status_code, wrong.json()["errors"]) == (405, ["METHOD_NOT_ALLOWED"])


# The layout today's main wrote (version 1, no schema_version), frozen here on purpose: the
# store's own copy may change, a directory on a user's disk does not.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE organizations (uuid TEXT PRIMARY KEY, name TEXT NOT NULL, slug TEXT NOT NULL, role TEXT,
  position INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE clients (uuid TEXT PRIMARY KEY, organization_uuid TEXT NOT NULL, name TEXT NOT NULL, slug TEXT NOT NULL,
  position INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE products (uuid TEXT PRIMARY KEY, organization_uuid TEXT NOT NULL, client_uuid TEXT NOT NULL,
  name TEXT NOT NULL, description TEXT NOT NULL, status TEXT NOT NULL, shape TEXT NOT NULL,
  model_blob_id TEXT, model_size INTEGER, position INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE tokens (digest TEXT PRIMARY KEY, kind TEXT NOT NULL, organization_uuid TEXT, client_uuid TEXT,
  created REAL NOT NULL, expires REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT UNIQUE NOT NULL, trigger_uuid TEXT NOT NULL,
  product_uuid TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, spec TEXT NOT NULL,
  error TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX jobs_product ON jobs (product_uuid, kind, seq);
CREATE TABLE attachments (uuid TEXT PRIMARY KEY, product_uuid TEXT NOT NULL, entity_type TEXT NOT NULL,
  entity_uuid TEXT NOT NULL, blob_id TEXT NOT NULL, name TEXT NOT NULL,
  content_type TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX attachments_product ON attachments (product_uuid, entity_type);
CREATE TABLE webhooks (uuid TEXT PRIMARY KEY, organization_uuid TEXT NOT NULL, data TEXT NOT NULL, secret TEXT NOT NULL,
  created REAL NOT NULL, updated REAL NOT NULL);
"""
ORG = "b19433ef-28b1-5200-b8cd-71921f06e8a6"
CATALOGUE = "146866e1-6190-50c7-8bd1-85432273b3b1"
JOB = "0f0e0d0c-0b0a-4909-8807-060504030201"
STILL = "11111111-2222-4333-8444-555555555555"
MODEL = "66666666-7777-4888-9999-aaaaaaaaaaaa"
TOKEN = "an-old-refresh-token"


def _version_1_directory(data: Path, receiver_url: str) -> bytes:
    """A data directory as the first sandbox left it: one rendered still, a token, a webhook."""
    png = b"\x89PNG\r\n\x1a\n" + b"old still" * 10
    (data / "blobs" / SHOE).mkdir(parents=True)
    (data / "blobs" / SHOE / f"{STILL}.png").write_bytes(png)
    (data / "blobs" / SHOE / f"model-{MODEL}.glb").write_bytes(b"glTF" + b"\0" * 60)
    now = time.time()
    db = sqlite3.connect(data / "sandbox.sqlite3")
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('url_secret', ?)", ("ab" * 32,))
    db.execute(
        "INSERT INTO organizations VALUES (?,?,?,?,?,?)",
        (ORG, "Demo Org", "demo-org", "ORGANIZATION_OWNER", 0, now),
    )
    db.execute("INSERT INTO clients VALUES (?,?,?,?,?,?)", (CATALOGUE, ORG, "Catalogue", "catalogue", 0, now))
    db.execute(
        "INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            SHOE,
            ORG,
            CATALOGUE,
            "Trail Runner GTX",
            "",
            "LIVE_PUBLIC",
            "shoe",
            f"{SHOE}/model-{MODEL}.glb",
            64,
            10,
            now,
            now,
        ),
    )
    db.execute(
        "INSERT INTO tokens VALUES (?,?,?,?,?,?,0)",
        (hashlib.sha256(TOKEN.encode()).hexdigest(), "refresh", ORG, None, now, now + 3600),
    )
    db.execute(
        "INSERT INTO jobs (uuid, trigger_uuid, product_uuid, kind, status, spec, created, updated)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (JOB, "t", SHOE, "RENDER", "COMPLETED", "{}", now, now),
    )
    db.execute(
        "INSERT INTO attachments VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            STILL,
            SHOE,
            "RENDER",
            JOB,
            f"{SHOE}/{STILL}.png",
            "trail-runner-gtx-render.png",
            "image/png",
            len(png),
            now,
            now,
        ),
    )
    hook = {
        "url": receiver_url,
        "eventNames": ["renders.completed"],
        "clients": [CATALOGUE],
        "name": "",
        "description": "",
        "disable": False,
        "userEmail": "",
    }
    db.execute(
        "INSERT INTO webhooks VALUES (?,?,?,?,?,?)", ("hook-1", ORG, json.dumps(hook), "s" * 64, now, now)
    )
    db.commit()
    db.close()
    return png


def test_a_version_1_directory_opens_and_is_migrated(tmp_path, api_factory, receiver) -> None:
    data = tmp_path / "old"
    png = _version_1_directory(data, receiver.url)
    for _ in range(2):  # the migration runs once; a second start finds nothing to do
        with EmbeddedSandbox(data, SandboxConfig(**FAST)) as sb:
            api = api_factory(sb)
            api.token = TOKEN  # the old token still works, as the default user's
            [still] = api.attachments(SHOE)
            assert (still["uuid"], still["blobId"]) == (STILL, f"{STILL}.png")  # flat now
            assert api.download(still).content == png
            assert (
                api.get(f"/v1/comments/images/{still['blobId']}", params={"clientUuid": CATALOGUE}).content
                == png
            )
            asset = api.get(f"/v1/products/{SHOE}").json()["response"]["asset"]
            assert asset["assetBlobId"] == f"{MODEL}.glb"
            hooks = api.get(api.webhook_path("list")).json()["response"]["grid"]
            assert [(h["uuid"], h["clients"]) for h in hooks] == [("hook-1", [CATALOGUE])]
    assert not (data / "blobs" / SHOE).exists()
    assert sorted(p.name for p in (data / "blobs").iterdir()) == sorted([f"{STILL}.png", f"{MODEL}.glb"])
    with EmbeddedSandbox(data, SandboxConfig(**FAST)) as sb:
        api = api_factory(sb)
        api.login()
        api.rendered(SHOE)  # the old webhook (clients by uuid) still gets its deliveries
        assert [json.loads(d["body"])["event"] for d in receiver.ok()] == ["renders.completed"]
        assert STILL not in {a["uuid"] for a in api.attachments(SHOE)}  # replaced by the new render


def test_a_migration_cut_short_runs_again(tmp_path, api_factory, receiver) -> None:
    data = tmp_path / "old"
    png = _version_1_directory(data, receiver.url)
    # the files were moved, then the process died before the rows changed
    (data / "blobs" / SHOE / f"{STILL}.png").rename(data / "blobs" / f"{STILL}.png")
    with EmbeddedSandbox(data, SandboxConfig(**FAST)) as sb:
        api = api_factory(sb)
        api.token = TOKEN
        [still] = api.attachments(SHOE)
        assert still["blobId"] == f"{STILL}.png" and api.download(still).content == png


def test_a_newer_or_foreign_directory_is_refused_untouched(tmp_path) -> None:
    newer = tmp_path / "newer"
    newer.mkdir()
    db = sqlite3.connect(newer / "sandbox.sqlite3")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    db.commit()
    db.close()
    before = (newer / "sandbox.sqlite3").read_bytes()
    with pytest.raises(SandboxDataError) as refused:
        EmbeddedSandbox(newer, SandboxConfig(**FAST))
    assert "version 99" in refused.value.message and "upgrade" in (refused.value.hint or "")
    assert (newer / "sandbox.sqlite3").read_bytes() == before
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "sandbox.sqlite3").write_text("not a database, just text that is long enough to be a header" * 4)
    with pytest.raises(SandboxDataError) as foreign:
        EmbeddedSandbox(junk, SandboxConfig(**FAST))
    assert "is not a sandbox database" in foreign.value.message and "--data-dir" in (foreign.value.hint or "")
    result = CliRunner().invoke(sandbox_command, ["--port", "0", "--data-dir", str(newer)])
    assert result.exit_code == 1
    assert "version 99" in result.output and "hint: upgrade reconciler" in result.output
    assert "Traceback" not in result.output
