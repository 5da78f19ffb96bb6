"""Signed webhook deliveries of ``renders.*`` and ``turntable.*`` events, with retries.

Each delivery is an HTTP POST of the JSON payload (Renders page) with two headers:
``X-TIMESTAMP`` (UTC ISO 8601) and ``X-VNTANA-SIGNATURE`` = hex HMAC-SHA256 keyed with the
webhook's secret over ``X-TIMESTAMP + "#" + raw body``.

Invariants:
- The body of a delivery is fixed when the event happens; every retry sends the same bytes
  (receivers can deduplicate on them) with a fresh timestamp and signature, so a retry is
  never refused as a replay. The secret is read at send time: after a rotation, pending
  retries are signed with the new secret.
- A receiver "fails" on a connection error, a timeout or a non-2xx answer; the delivery is
  retried after ``backoff * 2**attempt`` seconds, at most ``max_attempts`` sends in all.
- A webhook whose deliveries keep failing is disabled (webhooks.md: "a few retries, an e-mail
  to the creator, and eventually the webhook is disabled"): after ``disable_after`` deliveries
  in a row were given up. A delivered one resets the count. The e-mail is a log line.
- Bodies are UTF-8 JSON without escapes. Under the reading ``webhook_body: compact`` they have
  no spaces (as Jackson writes them), so re-serialising the parsed body the way webhooks.md's
  Node example does gives the same bytes; under ``spaced`` only the raw bytes verify.
- Deliveries live in memory: a restart forgets queued retries (jobs and webhooks persist).
- Fault injection may drop a delivery (never sent) or duplicate it (sent twice).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from reconciler.sandbox.catalog import webhook_product
from reconciler.sandbox.duequeue import DueQueue
from reconciler.sandbox.faults import FaultInjector
from reconciler.sandbox.readings import Readings
from reconciler.sandbox.store import Store

log = logging.getLogger(__name__)

_EVENT_NS = uuidlib.UUID("0b6a3c1e-2f4d-4b7a-8e1f-9c2d3e4f5a6b")
_PHASES = {
    "pending": "job queued",
    "processing": "job in progress",
    "completed": "job finished successfully",
    "failed": "job failed",
}
# The event catalogue of GET /v1/webhooks/events/: category -> [(name, description, uuid)].
EVENT_CATEGORIES: dict[str, list[dict[str, str]]] = {
    category: [
        {
            "name": f"{category}.{phase}",
            "description": f"{label} {text}",
            "uuid": str(uuidlib.uuid5(_EVENT_NS, f"{category}.{phase}")),
        }
        for phase, text in _PHASES.items()
    ]
    for category, label in (("renders", "Render"), ("turntable", "Turntable"))
}
EVENTS_BY_NAME = {e["name"]: e for events in EVENT_CATEGORIES.values() for e in events}
EVENTS_BY_UUID = {e["uuid"]: e for e in EVENTS_BY_NAME.values()}


def timestamp_now() -> str:
    """The ``X-TIMESTAMP`` value: UTC ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``timestamp + "#" + body`` keyed with ``secret``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"#" + body, hashlib.sha256).hexdigest()


@dataclass
class _Delivery:
    webhook_uuid: str
    event: str
    body: bytes
    attempt: int = 0


class WebhookDispatcher:
    """Queues deliveries for the webhooks subscribed to an event and sends them."""

    def __init__(
        self,
        store: Store,
        faults: FaultInjector,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        timeout_seconds: float = 5.0,
        senders: int = 2,
        disable_after: int = 3,
        readings: Callable[[], Readings] = Readings,
    ) -> None:
        self.store = store
        self.faults = faults
        self.disable_after = disable_after
        self.readings = readings
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self._cond = threading.Condition()
        self._due: DueQueue[_Delivery] = DueQueue(self._cond)
        self._in_flight = 0
        self._client = httpx.Client(timeout=timeout_seconds, follow_redirects=False)
        self._threads = [
            threading.Thread(target=self._loop, name=f"sandbox-webhooks-{i}", daemon=True)
            for i in range(max(1, senders))
        ]
        # Counters for tests and the operator: what happened to deliveries so far.
        self.stats = {
            "queued": 0,
            "sent": 0,
            "delivered": 0,
            "failed_attempts": 0,
            "given_up": 0,
            "dropped": 0,
            "duplicated": 0,
            "disabled": 0,
        }

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop sending (queued retries are forgotten) and join the sender threads."""
        self._due.close(forget=True)
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        self._client.close()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or being sent; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not len(self._due) and self._in_flight == 0, timeout)

    def publish(self, event: str, job: dict[str, Any]) -> None:
        """Queue ``event`` about ``job``'s product for every subscribed, enabled webhook."""
        product = self.store.product(job["product_uuid"])
        if product is None:
            return
        org, client = product["organization_uuid"], product["client_uuid"]
        hooks = [h for h in self.store.webhooks(org) if _subscribed(h, event, client)]
        if not hooks:
            return
        payload = {
            "event": event,
            "organization": {"uuid": org},
            "product": webhook_product(self.store, product),
            "client": {"uuid": client},
        }
        spaced = self.readings().webhook_body == "spaced"
        body = json.dumps(
            payload, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=False
        ).encode()
        faults = self.faults.config
        for hook in hooks:
            if self.faults.roll(faults.webhook_drop_rate):
                self._count("dropped")
                continue
            copies = 2 if self.faults.roll(faults.webhook_duplicate_rate) else 1
            if copies == 2:
                self._count("duplicated")
            for _ in range(copies):
                self._push(time.monotonic(), _Delivery(hook["uuid"], event, body))

    def _count(self, key: str, n: int = 1) -> None:
        with self._cond:
            self.stats[key] += n

    def _push(self, due: float, delivery: _Delivery) -> None:
        with self._cond:
            if self._due.put(due, delivery) and delivery.attempt == 0:
                self.stats["queued"] += 1

    def _loop(self) -> None:
        while True:
            with self._cond:  # take and count in one critical section, so wait_idle never sees a gap
                delivery = self._due.take()
                if delivery is None:
                    return
                self._in_flight += 1
            try:
                self._send(delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _send(self, delivery: _Delivery) -> None:
        hook = self.store.webhook(delivery.webhook_uuid)
        if hook is None or hook.get("disable"):
            return  # deleted or disabled since the event: nothing to deliver
        timestamp = timestamp_now()
        headers = {
            "Content-Type": "application/json",
            "X-TIMESTAMP": timestamp,
            "X-VNTANA-SIGNATURE": sign(hook["secret"], timestamp, delivery.body),
        }
        self._count("sent")
        try:
            answer = self._client.post(hook["url"], content=delivery.body, headers=headers)
            ok = 200 <= answer.status_code < 300
        except httpx.HTTPError:
            ok = False
        if ok:
            self._count("delivered")
            self.store.record_delivery(hook["uuid"], True, self.disable_after)
            return
        self._count("failed_attempts")
        delivery.attempt += 1
        if delivery.attempt >= self.max_attempts:
            self._count("given_up")
            log.warning(
                "webhook %s: giving up on %s after %d attempts",
                delivery.webhook_uuid,
                delivery.event,
                delivery.attempt,
            )
            if self.store.record_delivery(hook["uuid"], False, self.disable_after):
                self._count("disabled")
                log.warning(
                    "webhook %s: disabled after %d failed deliveries in a row (the platform would e-mail %s)",
                    hook["uuid"],
                    self.disable_after,
                    hook.get("userEmail") or "its creator",
                )
            return
        self._push(time.monotonic() + self.backoff_seconds * 2 ** (delivery.attempt - 1), delivery)


def _subscribed(hook: dict[str, Any], event: str, client: str) -> bool:
    if hook.get("disable"):
        return False
    if event not in hook.get("eventNames", []):
        return False
    # The workspaces ``clients`` named, resolved to uuids (a version-1 webhook holds uuids in ``clients``).
    clients = hook.get("clientUuids", hook.get("clients")) or []
    return not clients or client in clients
