"""Webhook management endpoints and signed, retried deliveries to a real local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from reconciler.sandbox.faults import FaultConfig

from .helpers import CHAIR, SHOE, Api, Receiver

ALL_EVENTS = [f"{c}.{p}" for c in ("renders", "turntable") for p in ("pending", "processing", "completed", "failed")]


def _create(api: Api, url: str, events: list[str] = ALL_EVENTS, **extra) -> dict:
    answer = api.post("/v1/webhooks/", json={"url": url, "events": [{"name": e} for e in events], **extra})
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["response"])


def _verify(secret: str, delivery: dict) -> bool:
    timestamp = delivery["headers"]["X-TIMESTAMP"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"#" + delivery["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, delivery["headers"]["X-VNTANA-SIGNATURE"])


def test_events_catalogue(api: Api, validate, response_schema) -> None:
    answer = api.get("/v1/webhooks/events/")
    assert answer.status_code == 200
    validate(response_schema("/v1/webhooks/events/", "get", 200), answer.json())
    validate("EventGetAllResponse", answer.json())
    grid = answer.json()["response"]["grid"]
    assert {g["category"] for g in grid} == {"renders", "turntable"}
    assert sorted(e["name"] for g in grid for e in g["events"]) == sorted(ALL_EVENTS)
    assert api.http.get("/v1/webhooks/events/").status_code == 401


def test_webhook_lifecycle(fresh_api: Api, validate) -> None:
    api = fresh_api
    org = api.sandbox.organization_uuid
    created = api.post("/v1/webhooks/", json={"url": "http://127.0.0.1:9/a", "name": "ci", "events": [{"name": "renders.completed"}]})
    validate("WebHookResponse", created.json())
    hook = created.json()["response"]
    assert hook["organizationUuid"] == org and len(hook["secret"]) >= 32
    assert [e["name"] for g in hook["events"]["grid"] for e in g["events"]] == ["renders.completed"]
    got = api.get(f"/v1/webhooks/{hook['uuid']}")
    validate("WebHookResponse", got.json())
    assert got.json()["response"] == hook
    updated = api.request("PUT", f"/v1/webhooks/{hook['uuid']}",
                          json={"url": "http://127.0.0.1:9/b", "events": [{"name": "turntable.failed"}], "disable": True})
    validate("WebHookResponse", updated.json())
    assert updated.json()["response"]["url"] == "http://127.0.0.1:9/b"
    assert updated.json()["response"]["disable"] is True
    assert updated.json()["response"]["secret"] == hook["secret"]
    rotated = api.request("PATCH", f"/v1/webhooks/{hook['uuid']}/secret")
    validate("WebHookResponse", rotated.json())
    assert rotated.json()["response"]["secret"] != hook["secret"]
    listed = api.get(f"/v1/webhooks/organization/{org}")
    validate("WebhookGetAllResponse", listed.json())
    assert [w["uuid"] for w in listed.json()["response"]["grid"]] == [hook["uuid"]]
    deleted = api.request("DELETE", f"/v1/webhooks/{hook['uuid']}")
    validate("WebHookResponse", deleted.json())
    assert api.get(f"/v1/webhooks/{hook['uuid']}").status_code == 404
    assert api.get(f"/v1/webhooks/organization/{org}").json()["response"] == {"totalCount": 0, "grid": []}


def test_events_may_be_named_by_uuid(fresh_api: Api) -> None:
    catalogue = fresh_api.get("/v1/webhooks/events/").json()["response"]["grid"]
    event = catalogue[0]["events"][0]
    hook = fresh_api.post("/v1/webhooks/", json={"url": "http://127.0.0.1:9/x", "events": [{"uuid": event["uuid"]}]})
    assert [e["name"] for g in hook.json()["response"]["events"]["grid"] for e in g["events"]] == [event["name"]]


@pytest.mark.parametrize("body, status, code", [
    ({"events": [{"name": "renders.completed"}]}, 400, "MISSING_URL"),
    ({"url": "ftp://x/y", "events": [{"name": "renders.completed"}]}, 400, "INVALID_URL"),
    ({"url": "http://127.0.0.1:9/"}, 400, "MISSING_EVENTS"),
    ({"url": "http://127.0.0.1:9/", "events": []}, 400, "MISSING_EVENTS"),
    ({"url": "http://127.0.0.1:9/", "events": [{"name": "product.completed"}]}, 400, "EVENT_NOT_FOUND"),
    ({"url": "http://127.0.0.1:9/", "events": [{"name": "renders.failed"}], "clients": ["nope"]}, 400, "CLIENT_NOT_FOUND"),
    ({"url": "http://127.0.0.1:9/", "events": [{"name": "renders.failed"}], "organizationUuid": "x"}, 403, "FORBIDDEN"),
])
def test_webhook_validation(api: Api, body, status, code) -> None:
    answer = api.post("/v1/webhooks/", json=body)
    assert (answer.status_code, answer.json()["errors"]) == (status, [code])


def test_webhook_conflicts_and_not_found(fresh_api: Api) -> None:
    _create(fresh_api, "http://127.0.0.1:9/dup")
    again = fresh_api.post("/v1/webhooks/", json={"url": "http://127.0.0.1:9/dup", "events": [{"name": "renders.failed"}]})
    assert (again.status_code, again.json()["errors"]) == (409, ["WEBHOOK_ALREADY_EXISTS"])
    for method, path in (("GET", "/v1/webhooks/nope"), ("PUT", "/v1/webhooks/nope"), ("DELETE", "/v1/webhooks/nope"),
                         ("PATCH", "/v1/webhooks/nope/secret")):
        answer = fresh_api.request(method, path, json={"url": "http://127.0.0.1:9/", "events": [{"name": "renders.failed"}]})
        assert (answer.status_code, answer.json()["errors"]) == (404, ["WEBHOOK_NOT_FOUND"]), (method, path)
    other = fresh_api.get("/v1/webhooks/organization/someone-else")
    assert (other.status_code, other.json()["errors"]) == (403, ["FORBIDDEN"])
    assert fresh_api.post("/v1/webhooks/", token="", json={}).status_code == 401


def test_deliveries_are_signed_and_carry_the_documented_payload(fresh_api: Api, receiver: Receiver) -> None:
    hook = _create(fresh_api, receiver.url)
    fresh_api.rendered(SHOE)
    assert Counter(receiver.events()) == Counter(
        ["renders.pending", "renders.processing", "renders.completed",
         "turntable.pending", "turntable.processing", "turntable.completed"])
    for delivery in receiver.ok():
        assert _verify(hook["secret"], delivery)
        assert not _verify(hook["secret"] + "x", delivery)
        assert not _verify("wrong-secret", delivery)
        sent = datetime.fromisoformat(delivery["headers"]["X-TIMESTAMP"].replace("Z", "+00:00"))
        assert sent.tzinfo is not None and abs((datetime.now(timezone.utc) - sent).total_seconds()) < 30
        payload = json.loads(delivery["body"])
        assert set(payload) == {"event", "organization", "product", "client"}
        assert payload["organization"] == {"uuid": fresh_api.sandbox.organization_uuid}
        assert payload["client"] == {"uuid": fresh_api.sandbox.client_uuid}
        product = payload["product"]
        assert (product["uuid"], product["name"], product["status"]) == (SHOE, "Trail Runner GTX", "LIVE_PUBLIC")
        assert set(product) == {"uuid", "name", "description", "status", "asset"}
        assert set(product["asset"]) == {"assetOriginalName", "assetOriginalSize", "generationRequestUuid"}


def test_only_subscribed_enabled_matching_webhooks_receive(fresh_api: Api, receiver: Receiver) -> None:
    _create(fresh_api, receiver.url + "?completed", events=["renders.completed", "turntable.completed"])
    _create(fresh_api, receiver.url + "?disabled", disable=True)
    archive = fresh_api.get("/v1/clients/client-organizations").json()["response"]["grid"][1]["uuid"]
    _create(fresh_api, receiver.url + "?archive-only", clients=[archive])
    fresh_api.rendered(SHOE)
    assert Counter(receiver.events()) == Counter(["renders.completed", "turntable.completed"])


def test_failed_jobs_send_failed_events(sandbox_factory, api_factory, receiver: Receiver) -> None:
    sb = sandbox_factory(faults=FaultConfig(fail_products=frozenset({SHOE})))
    api = api_factory(sb)
    api.login()
    _create(api, receiver.url)
    api.rendered(SHOE, CHAIR)
    by_product = Counter((json.loads(d["body"])["product"]["uuid"], json.loads(d["body"])["event"]) for d in receiver.ok())
    assert by_product[(SHOE, "renders.failed")] == by_product[(SHOE, "turntable.failed")] == 1
    assert by_product[(CHAIR, "renders.completed")] == by_product[(CHAIR, "turntable.completed")] == 1
    assert not any(event.endswith("completed") for uuid, event in by_product if uuid == SHOE)
    assert api.attachments(SHOE) == []


def test_failing_receiver_gets_retries_with_backoff(sandbox_factory, api_factory, receiver: Receiver) -> None:
    sb = sandbox_factory(webhook_max_attempts=4, webhook_backoff_seconds=0.05)
    api = api_factory(sb)
    api.login()
    hook = _create(api, receiver.url, events=["renders.completed"])
    receiver.fail_next = 2
    api.rendered(SHOE)
    attempts = receiver.deliveries
    assert [d["failed"] for d in attempts] == [True, True, False]
    assert len({d["body"] for d in attempts}) == 1  # every retry sends the same bytes
    assert all(_verify(hook["secret"], d) for d in attempts)
    assert sb.webhooks.stats["failed_attempts"] == 2 and sb.webhooks.stats["delivered"] == 1


def test_retries_are_bounded(sandbox_factory, api_factory, receiver: Receiver) -> None:
    sb = sandbox_factory(webhook_max_attempts=3, webhook_backoff_seconds=0.02)
    api = api_factory(sb)
    api.login()
    _create(api, receiver.url, events=["renders.completed"])
    receiver.fail_next = 100
    api.rendered(SHOE)
    assert len(receiver.deliveries) == 3
    assert sb.webhooks.stats["given_up"] == 1


def test_unreachable_receiver_does_not_block_the_sandbox(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(webhook_max_attempts=2, webhook_backoff_seconds=0.02)
    api = api_factory(sb)
    api.login()
    _create(api, "http://127.0.0.1:9/nobody-listens")
    started = time.monotonic()
    api.rendered(SHOE)
    assert time.monotonic() - started < 10
    assert len(api.attachments(SHOE)) == 3


def test_rotated_secret_signs_later_deliveries(fresh_api: Api, receiver: Receiver) -> None:
    hook = _create(fresh_api, receiver.url, events=["renders.completed"])
    fresh_api.rendered(SHOE)
    new_secret = fresh_api.request("PATCH", f"/v1/webhooks/{hook['uuid']}/secret").json()["response"]["secret"]
    fresh_api.rendered(SHOE)
    first, second = receiver.ok()
    assert _verify(hook["secret"], first) and not _verify(new_secret, first)
    assert _verify(new_secret, second) and not _verify(hook["secret"], second)
