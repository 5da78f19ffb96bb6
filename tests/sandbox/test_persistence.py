"""A restart on the same data directory keeps products, tokens, jobs, attachments and webhooks."""

from __future__ import annotations


from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig

from .helpers import FAST, SHOE, Api


def test_restart_keeps_everything(tmp_path, api_factory, receiver) -> None:
    data = tmp_path / "data"
    with EmbeddedSandbox(data, SandboxConfig(**FAST)) as first:
        api = api_factory(first)
        token = api.login()
        api.rendered(SHOE)
        before = api.attachments(SHOE)
        url = api.sign(before[0])
        hook = api.post("/v1/webhooks/", json={"url": receiver.url, "events": [{"name": "renders.completed"}]})
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
        webhooks = again.get(f"/v1/webhooks/organization/{org}").json()["response"]["grid"]
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
    assert (missing.status_code, missing.json()) == (404, {"success": False, "errors": ["NOT_FOUND"], "response": {}})
    wrong = api.request("PATCH", "/v1/organizations")
    assert (wrong.status_code, wrong.json()["errors"]) == (405, ["METHOD_NOT_ALLOWED"])
