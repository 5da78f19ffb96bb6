"""Webhook management endpoints and signed, retried deliveries to a real local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.readings import Readings

from .helpers import CHAIR, SHOE, Api, Receiver

ALL_EVENTS = [
    f"{c}.{p}" for c in ("renders", "turntable") for p in ("pending", "processing", "completed", "failed")
]


def _create(api: Api, url: str, events: list[str] = ALL_EVENTS, **extra) -> dict:
    answer = api.create_webhook(url, events, **extra)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["response"])


def _verify(secret: str, delivery: dict) -> bool:
    timestamp = delivery["headers"]["X-TIMESTAMP"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"#" + delivery["body"], hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, delivery["headers"]["X-VNTANA-SIGNATURE"])


def test_events_catalogue(api: Api, validate, response_schema) -> None:
    answer = api.get("/v1/webhooks/events")  # the guide's path, the default reading
    assert answer.status_code == 200
    validate(response_schema("/v1/webhooks/events/", "get", 200), answer.json())
    validate("EventGetAllResponse", answer.json())
    grid = answer.json()["response"]["grid"]
    assert {g["category"] for g in grid} == {"renders", "turntable"}
    assert sorted(e["name"] for g in grid for e in g["events"]) == sorted(ALL_EVENTS)
    assert all(
        set(e) == {"name", "description", "uuid"} and e["description"] for g in grid for e in g["events"]
    )
    assert api.get("/v1/webhooks/events", token="").status_code == 403


@pytest.mark.parametrize("reading", ["guide", "yaml"])
def test_webhook_paths_per_reading(sandbox_factory, api_factory, reading: str) -> None:
    sb = sandbox_factory(readings=Readings(webhook_paths=reading))
    api = api_factory(sb)
    api.login()
    org = sb.organization_uuid
    guide = {
        "create": "/v1/webhooks",
        "events": "/v1/webhooks/events",
        "list": f"/v1/webhooks/organizations/{org}",
    }
    yaml = {
        "create": "/v1/webhooks/",
        "events": "/v1/webhooks/events/",
        "list": f"/v1/webhooks/organization/{org}",
    }
    works, other = (guide, yaml) if reading == "guide" else (yaml, guide)
    body = {"url": "http://127.0.0.1:9/p", "events": api.events("renders.completed")}
    for spelling, status in ((other, 404), (works, 200)):
        answers = [
            api.post(spelling["create"], json=body),
            api.get(spelling["events"]),
            api.get(spelling["list"]),
        ]
        assert [a.status_code for a in answers] == [status] * 3, (spelling, [a.text for a in answers])
        if status == 404:
            assert all(a.json()["errors"] == ["NOT_FOUND"] for a in answers)
    assert [w["url"] for w in api.get(works["list"]).json()["response"]["grid"]] == ["http://127.0.0.1:9/p"]


def test_webhook_lifecycle(fresh_api: Api, validate) -> None:
    api = fresh_api
    org = api.sandbox.organization_uuid
    created = api.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/a", "name": "ci", "events": api.events("renders.completed")},
    )
    validate("WebHookResponse", created.json())
    hook = created.json()["response"]
    assert hook["organizationUuid"] == org and len(hook["secret"]) >= 32
    assert hook["userEmail"] == api.sandbox.user["email"]
    assert [e["name"] for g in hook["events"]["grid"] for e in g["events"]] == ["renders.completed"]
    got = api.get(f"/v1/webhooks/{hook['uuid']}")
    validate("WebHookResponse", got.json())
    assert got.json()["response"] == hook
    updated = api.request(
        "PUT",
        f"/v1/webhooks/{hook['uuid']}",
        json={"url": "http://127.0.0.1:9/b", "events": api.events("turntable.failed"), "disable": True},
    )
    validate("WebHookResponse", updated.json())
    assert updated.json()["response"]["url"] == "http://127.0.0.1:9/b"
    assert updated.json()["response"]["disable"] is True
    assert updated.json()["response"]["secret"] == hook["secret"]
    rotated = api.request("PATCH", f"/v1/webhooks/{hook['uuid']}/secret")
    validate("WebHookResponse", rotated.json())
    assert rotated.json()["response"]["secret"] != hook["secret"]
    listed = api.get(f"/v1/webhooks/organizations/{org}")
    validate("WebhookGetAllResponse", listed.json())
    assert [w["uuid"] for w in listed.json()["response"]["grid"]] == [hook["uuid"]]
    deleted = api.request("DELETE", f"/v1/webhooks/{hook['uuid']}")
    validate("WebHookResponse", deleted.json())
    assert api.get(f"/v1/webhooks/{hook['uuid']}").status_code == 404
    assert api.get(f"/v1/webhooks/organizations/{org}").json()["response"] == {"totalCount": 0, "grid": []}


def test_events_must_be_catalogue_objects(fresh_api: Api) -> None:
    [event] = fresh_api.events("renders.completed")
    url = "http://127.0.0.1:9/x"
    for events, code in (
        ([{"name": "renders.completed"}], "INVALID_EVENT"),
        (["renders.completed"], "INVALID_EVENT"),
        ([{"uuid": event["uuid"]}], "INVALID_EVENT"),
        ([{**event, "name": "renders.failed"}], "INVALID_EVENT"),
        ([{**event, "uuid": "00000000-0000-0000-0000-000000000000"}], "EVENT_NOT_FOUND"),
    ):
        answer = fresh_api.post("/v1/webhooks", json={"url": url, "events": events})
        assert (answer.status_code, answer.json()["errors"]) == (400, [code]), events
    with_category = fresh_api.post(
        "/v1/webhooks", json={"url": url, "events": [{**event, "category": "renders"}]}
    )
    assert [e["name"] for g in with_category.json()["response"]["events"]["grid"] for e in g["events"]] == [
        event["name"]
    ]


@pytest.mark.parametrize("reading", ["slugs", "uuids"])
def test_webhook_clients_per_reading(sandbox_factory, api_factory, reading: str) -> None:
    sb = sandbox_factory(readings=Readings(webhook_clients=reading))
    api = api_factory(sb)
    api.login()
    events = api.events("renders.completed")
    slug, uuid = "catalogue", sb.client_uuid
    right, wrong = (slug, uuid) if reading == "slugs" else (uuid, slug)
    refused = api.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/w", "events": events, "clients": [wrong]}
    )
    assert (refused.status_code, refused.json()["errors"]) == (400, ["INVALID_CLIENT_UUID"])
    accepted = api.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/w", "events": events, "clients": [right]}
    )
    assert accepted.status_code == 200 and accepted.json()["response"]["clients"] == [right]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"events": "EVENTS"}, 400, "MISSING_URL"),
        ({"url": "ftp://x/y", "events": "EVENTS"}, 400, "INVALID_URL"),
        ({"url": "http://127.0.0.1:9/"}, 400, "MISSING_EVENTS"),
        ({"url": "http://127.0.0.1:9/", "events": []}, 400, "MISSING_EVENTS"),
        ({"url": "http://127.0.0.1:9/", "events": "EVENTS", "clients": ["nope"]}, 400, "INVALID_CLIENT_UUID"),
        (
            {"url": "http://127.0.0.1:9/", "events": "EVENTS", "clients": "catalogue"},
            400,
            "INVALID_CLIENT_UUID",
        ),
        ({"url": "http://127.0.0.1:9/", "events": "EVENTS", "organizationUuid": "x"}, 403, "FORBIDDEN"),
    ],
)
def test_webhook_validation(api: Api, body, status, code) -> None:
    if body.get("events") == "EVENTS":
        body = {**body, "events": api.events("renders.failed")}
    answer = api.post("/v1/webhooks", json=body)
    assert (answer.status_code, answer.json()["errors"]) == (status, [code])


def test_webhook_conflicts_and_not_found(fresh_api: Api) -> None:
    _create(fresh_api, "http://127.0.0.1:9/dup")
    events = fresh_api.events("renders.failed")
    again = fresh_api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/dup", "events": events})
    assert (again.status_code, again.json()["errors"]) == (409, ["WEBHOOK_ALREADY_EXISTS"])
    for method, path in (
        ("GET", "/v1/webhooks/nope"),
        ("PUT", "/v1/webhooks/nope"),
        ("DELETE", "/v1/webhooks/nope"),
        ("PATCH", "/v1/webhooks/nope/secret"),
    ):
        answer = fresh_api.request(method, path, json={"url": "http://127.0.0.1:9/", "events": events})
        assert (answer.status_code, answer.json()["errors"]) == (404, ["WEBHOOK_NOT_FOUND"]), (method, path)
    other = fresh_api.get("/v1/webhooks/organizations/someone-else")
    assert (other.status_code, other.json()["errors"]) == (403, ["FORBIDDEN"])
    assert fresh_api.post("/v1/webhooks", token="", json={}).status_code == 403


def test_viewers_cannot_manage_webhooks(api_factory, sandbox) -> None:
    viewer = api_factory(sandbox)
    viewer.login(role="CLIENT_ORGANIZATION_VIEWER")
    answer = viewer.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/v", "events": viewer.events("renders.failed")}
    )
    assert (answer.status_code, answer.json()["errors"]) == (403, ["FORBIDDEN"])


def test_deliveries_are_signed_and_carry_the_documented_payload(fresh_api: Api, receiver: Receiver) -> None:
    hook = _create(fresh_api, receiver.url)
    fresh_api.rendered(SHOE)
    assert Counter(receiver.events()) == Counter(
        [
            "renders.pending",
            "renders.processing",
            "renders.completed",
            "turntable.pending",
            "turntable.processing",
            "turntable.completed",
        ]
    )
    for delivery in receiver.ok():
        assert _verify(hook["secret"], delivery)
        assert not _verify(hook["secret"] + "x", delivery)
        assert not _verify("wrong-secret", delivery)
        sent = datetime.fromisoformat(delivery["headers"]["X-TIMESTAMP"].replace("Z", "+00:00"))
        assert sent.tzinfo is not None and abs((datetime.now(UTC) - sent).total_seconds()) < 30
        payload = json.loads(delivery["body"])
        assert set(payload) == {"event", "organization", "product", "client"}
        assert payload["organization"] == {"uuid": fresh_api.sandbox.organization_uuid}
        assert payload["client"] == {"uuid": fresh_api.sandbox.client_uuid}
        product = payload["product"]
        assert (product["uuid"], product["name"], product["status"]) == (
            SHOE,
            "Trail Runner GTX",
            "LIVE_PUBLIC",
        )
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
    by_product = Counter(
        (json.loads(d["body"])["product"]["uuid"], json.loads(d["body"])["event"]) for d in receiver.ok()
    )
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
    new_secret = fresh_api.request("PATCH", f"/v1/webhooks/{hook['uuid']}/secret").json()["response"][
        "secret"
    ]
    fresh_api.rendered(SHOE)
    first, second = receiver.ok()
    assert _verify(hook["secret"], first) and not _verify(new_secret, first)
    assert _verify(new_secret, second) and not _verify(hook["secret"], second)


def test_a_webhook_that_keeps_failing_is_disabled(sandbox_factory, api_factory, receiver: Receiver) -> None:
    sb = sandbox_factory(webhook_max_attempts=2, webhook_backoff_seconds=0.01, webhook_disable_after=2)
    api = api_factory(sb)
    api.login()
    hook = _create(api, receiver.url, events=["renders.completed"])
    receiver.fail_next = 1
    api.rendered(SHOE)  # fails once, then delivered: the count starts again
    receiver.fail_next = 100
    api.rendered(SHOE)  # one delivery given up
    assert api.get(f"/v1/webhooks/{hook['uuid']}").json()["response"]["disable"] is False
    api.rendered(SHOE)  # the second in a row: disabled
    assert api.get(f"/v1/webhooks/{hook['uuid']}").json()["response"]["disable"] is True
    assert sb.webhooks.stats["disabled"] == 1
    sent = len(receiver.deliveries)
    api.rendered(SHOE)
    assert len(receiver.deliveries) == sent  # a disabled webhook gets nothing
    # enabling it again (PUT with disable false) restores deliveries
    receiver.fail_next = 0
    api.request(
        "PUT",
        f"/v1/webhooks/{hook['uuid']}",
        json={"url": receiver.url, "events": api.events("renders.completed"), "disable": False},
    )
    api.rendered(SHOE)
    assert len(receiver.ok()) == 2


@pytest.mark.parametrize("reading", ["compact", "spaced"])
def test_webhook_bodies_per_reading(sandbox_factory, api_factory, receiver: Receiver, reading: str) -> None:
    sb = sandbox_factory(readings=Readings(webhook_body=reading))
    api = api_factory(sb)
    api.login()
    hook = _create(api, receiver.url, events=["renders.completed"])
    api.rendered(SHOE)
    [delivery] = receiver.ok()
    assert _verify(hook["secret"], delivery)  # over the raw bytes: always
    # webhooks.md's Node example signs JSON.stringify(parsed body): that matches compact bodies only
    reserialised = json.dumps(
        json.loads(delivery["body"]), separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert (reserialised == delivery["body"]) is (reading == "compact")
