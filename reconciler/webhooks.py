"""Receive the platform's signed render events so apply can stop polling blind.

A delivery is trusted only if ``X-VNTANA-SIGNATURE`` equals hex HMAC-SHA256(secret,
``X-TIMESTAMP`` + "#" + raw body), compared in constant time, and its timestamp is within
``max_age`` of now (replays of old deliveries are refused). Duplicate deliveries are
harmless: an event only wakes the poller early or records a failure, both idempotent.
Polling stays the source of truth for results; webhooks only make it prompt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reconciler.errors import ConfigError

EVENTS = ("renders.pending", "renders.processing", "renders.completed", "renders.failed",
          "turntable.pending", "turntable.processing", "turntable.completed", "turntable.failed")
MAX_AGE_SECONDS = 300.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"#" + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, *,
           now: float | None = None, max_age: float = MAX_AGE_SECONDS) -> str | None:
    """None when the delivery is authentic and fresh, else why it is refused."""
    if not timestamp or not signature:
        return "missing X-TIMESTAMP or X-VNTANA-SIGNATURE"
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip().lower()):
        return "bad signature"
    try:
        sent = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "unreadable timestamp"
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=timezone.utc)
    age = (now if now is not None else time.time()) - sent.timestamp()
    if abs(age) > max_age:
        return f"stale timestamp ({age:.0f} s old)"
    return None


class EventBoard:
    """What deliveries said, per product: wakes waiting pollers and remembers failures."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen: dict[str, int] = {}
        self._failed: dict[str, str] = {}
        self.accepted = 0
        self.refused = 0

    def post(self, product: str, event: str) -> None:
        with self._cond:
            self.accepted += 1
            self._seen[product] = self._seen.get(product, 0) + 1
            if event.endswith(".failed"):
                self._failed.setdefault(product, f"platform reported {event}")
            self._cond.notify_all()

    def failure(self, product: str) -> str | None:
        with self._cond:
            return self._failed.get(product)

    def clear(self, product: str) -> None:
        """Forget a product's old failure before it is triggered again."""
        with self._cond:
            self._failed.pop(product, None)

    def seen(self, product: str) -> int:
        """How many events for ``product`` have arrived so far (a mark for ``wait``)."""
        with self._cond:
            return self._seen.get(product, 0)

    def wait(self, product: str, timeout: float, since: int | None = None) -> None:
        """Sleep up to ``timeout``, waking early if an event for ``product`` arrives.

        ``since`` is a mark taken with ``seen`` before the caller last looked: an event that
        came in between counts, and the wait returns at once."""
        with self._cond:
            start = self._seen.get(product, 0) if since is None else since
            self._cond.wait_for(lambda: self._seen.get(product, 0) != start, timeout=timeout)


class WebhookReceiver:
    """A small ASGI endpoint on HOST:PORT that verifies deliveries and posts them to a board."""

    def __init__(self, host: str, port: int, secret: Callable[[], str | None], board: EventBoard,
                 max_age: float = MAX_AGE_SECONDS) -> None:
        self.board = board
        self._secret = secret
        self._max_age = max_age
        app = Starlette(routes=[Route("/", self._receive, methods=["POST"]),
                                Route("/webhook", self._receive, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                     lifespan="off", access_log=False))
        self._thread = threading.Thread(target=self._server.run, name="webhook-receiver", daemon=True)

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        secret = self._secret()
        why = "no webhook secret yet" if secret is None else verify(
            secret, request.headers.get("x-timestamp"), request.headers.get("x-vntana-signature"), body,
            max_age=self._max_age)
        if why is not None:
            self.board.refused += 1
            return JSONResponse({"accepted": False, "reason": why}, status_code=401)
        try:
            payload: Any = json.loads(body)
            product = payload["product"]["uuid"]
            event = payload["event"]
        except (ValueError, KeyError, TypeError):
            self.board.refused += 1
            return JSONResponse({"accepted": False, "reason": "not a render event"}, status_code=400)
        self.board.post(str(product), str(event))
        return JSONResponse({"accepted": True})

    @property
    def url(self) -> str:
        sockets = self._server.servers[0].sockets if self._server.servers else []
        host, port = sockets[0].getsockname()[:2] if sockets else ("?", 0)
        return f"http://{host}:{port}/webhook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("cannot listen for webhooks on the given address (in use or not allowed)")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--webhook-listen expects HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)
