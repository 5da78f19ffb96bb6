"""Receive the platform's signed render events so apply can stop polling blind.

A delivery is trusted only if ``X-VNTANA-SIGNATURE`` equals hex HMAC-SHA256(secret,
``X-TIMESTAMP`` + "#" + raw body), compared in constant time, and its timestamp is within
``max_age`` of now. The order of the checks is chosen so that nothing unauthenticated costs
memory (issue 13):

1. headers: both present, the timestamp readable and fresh, a declared ``Content-Length``
   no larger than ``MAX_BODY_BYTES``: otherwise refused before a byte of the body is read;
2. the body, read as a stream and refused (413) as soon as it passes ``MAX_BODY_BYTES``
   (the platform's payloads are a few hundred bytes; renders.md);
3. the signature; then a **replay cache**: a signature seen within the window is a repeat
   (a replay, or the platform sending one delivery twice) and is answered 200 and ignored.

An authentic delivery is still only a hint about *which* render it speaks of: the payload
names a product, never a trigger (webhooks.md, renders.md). ``EventBoard`` keeps an event only
for a product apply is waiting for, and only if it was sent at or after that product's trigger
(an older delivery, replayed or retried late, belongs to an earlier render); the executor then
confirms a ``*.failed`` against the product's files before it records a failure (a failure
whose result is there is not this render's). Polling stays the source of truth for results.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reconciler.errors import ConfigError

EVENTS = (
    "renders.pending",
    "renders.processing",
    "renders.completed",
    "renders.failed",
    "turntable.pending",
    "turntable.processing",
    "turntable.completed",
    "turntable.failed",
)
MAX_AGE_SECONDS = 300.0
MAX_BODY_BYTES = 64 * 1024
"""Largest delivery read: the documented payload (renders.md) is well under 1 KiB; 64 KiB leaves
room for long product names and descriptions, and caps what an unsigned POST can cost."""
REPLAY_CACHE_SIZE = 100_000
"""Signatures remembered (each for ``max_age``): far more deliveries than one apply receives in
five minutes; past it the oldest are forgotten first."""
EVENT_SLACK = timedelta(seconds=2)
"""A delivery stamped this much before a trigger still counts as its (clocks and whole seconds)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"#" + body, hashlib.sha256).hexdigest()


def parse_timestamp(timestamp: str) -> datetime | None:
    """``X-TIMESTAMP`` (UTC, ISO 8601) as an aware time, or None if unreadable."""
    try:
        sent = datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return sent if sent.tzinfo else sent.replace(tzinfo=UTC)


def check_headers(
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
    max_age: float = MAX_AGE_SECONDS,
) -> str | None:
    """Why a delivery is refused from its headers alone, or None."""
    if not timestamp or not signature:
        return "missing X-TIMESTAMP or X-VNTANA-SIGNATURE"
    sent = parse_timestamp(timestamp)
    if sent is None:
        return "unreadable timestamp"
    age = (now if now is not None else time.time()) - sent.timestamp()
    if abs(age) > max_age:
        return f"stale timestamp ({age:.0f} s old)"
    return None


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
    max_age: float = MAX_AGE_SECONDS,
) -> str | None:
    """None when the delivery is authentic and fresh, else why it is refused."""
    why = check_headers(timestamp, signature, now=now, max_age=max_age)
    if why is not None:
        return why
    assert timestamp is not None and signature is not None
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip().lower()):
        return "bad signature"
    return None


class ReplayCache:
    """Signatures seen within the window: a second delivery with the same one is a repeat."""

    def __init__(self, window: float = MAX_AGE_SECONDS, size: int = REPLAY_CACHE_SIZE) -> None:
        self.window = window
        self.size = size
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, signature: str, now: float | None = None) -> bool:
        """Remember ``signature``; False if it was already seen within the window."""
        now = time.monotonic() if now is None else now
        key = signature.strip().lower()
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now or len(self._seen) >= self.size):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            # Beyond the window the timestamp check refuses the delivery anyway.
            self._seen[key] = now + 2 * self.window
            return True


class EventBoard:
    """What authentic deliveries said about the products apply waits for. Thread-safe.

    ``expect(product, since)`` opens a product's page when its trigger is sent; events for
    other products, or sent before ``since`` (less ``EVENT_SLACK``), are counted and ignored.
    A ``*.failed`` is kept per job (``renders`` is the still, ``turntable`` the MP4 and GIF)
    for the executor to confirm; ``subscribe`` wakes the executor when a product's page changes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[str, datetime] = {}
        self._failed: dict[str, dict[str, str]] = {}
        self._listeners: list[Callable[[str], None]] = []
        self.accepted = 0
        self.refused = 0
        self.duplicates = 0
        self.ignored = 0

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(product)`` after each kept event (from the receiver's thread)."""
        with self._lock:
            self._listeners.append(listener)

    def expect(self, product: str, since: datetime) -> None:
        """A trigger of ours for ``product`` was sent at ``since``: forget what came before."""
        with self._lock:
            self._since[product] = since
            self._failed.pop(product, None)

    def forget(self, product: str) -> None:
        with self._lock:
            self._since.pop(product, None)
            self._failed.pop(product, None)

    def post(self, product: str, event: str, sent: datetime | None = None) -> bool:
        """Record an authentic event; whether it was kept (it is about a render we wait for)."""
        with self._lock:
            since = self._since.get(product)
            if since is None or (sent is not None and sent < since - EVENT_SLACK):
                self.ignored += 1
                return False
            self.accepted += 1
            if event.endswith(".failed"):
                job = "still" if event.startswith("renders.") else "turntable"
                self._failed.setdefault(product, {}).setdefault(job, f"platform reported {event}")
            listeners = list(self._listeners)
        for listener in listeners:
            listener(product)
        return True

    def failures(self, product: str) -> dict[str, str]:
        """job → why, for the ``*.failed`` events kept for ``product``."""
        with self._lock:
            return dict(self._failed.get(product, {}))

    def dismiss(self, product: str, job: str) -> None:
        """The product's files show ``job`` done: the failure was not this render's."""
        with self._lock:
            self._failed.get(product, {}).pop(job, None)


class WebhookReceiver:
    """A small ASGI endpoint on HOST:PORT that verifies deliveries and posts them to a board."""

    def __init__(
        self,
        host: str,
        port: int,
        secret: Callable[[], str | None],
        board: EventBoard,
        max_age: float = MAX_AGE_SECONDS,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.board = board
        self._secret = secret
        self._max_age = max_age
        self._max_body = max_body
        self._replays = ReplayCache(max_age)
        app = Starlette(
            routes=[
                Route("/", self._receive, methods=["POST"]),
                Route("/webhook", self._receive, methods=["POST"]),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
        )
        self._thread = threading.Thread(target=self._server.run, name="webhook-receiver", daemon=True)

    def _refuse(self, why: str, status: int) -> JSONResponse:
        self.board.refused += 1
        # Connection: close: a client still sending a body we will not read is cut off.
        return JSONResponse(
            {"accepted": False, "reason": why}, status_code=status, headers={"Connection": "close"}
        )

    async def _receive(self, request: Request) -> JSONResponse:
        timestamp = request.headers.get("x-timestamp")
        signature = request.headers.get("x-vntana-signature")
        secret = self._secret()
        why = (
            "no webhook secret yet"
            if secret is None
            else check_headers(timestamp, signature, max_age=self._max_age)
        )
        if why is not None:
            return self._refuse(why, 401)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self._max_body):
            return self._refuse(f"body larger than {self._max_body} bytes", 413)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > self._max_body:
                    return self._refuse(f"body larger than {self._max_body} bytes", 413)
        except ClientDisconnect:
            return self._refuse("the sender went away", 400)
        assert secret is not None and timestamp is not None and signature is not None
        why = verify(secret, timestamp, signature, bytes(body), max_age=self._max_age)
        if why is not None:
            return self._refuse(why, 401)
        if not self._replays.first_time(signature):
            self.board.duplicates += 1
            return JSONResponse({"accepted": False, "reason": "duplicate delivery: ignored"})
        try:
            payload: Any = json.loads(body)
            product = payload["product"]["uuid"]
            event = payload["event"]
        except (ValueError, KeyError, TypeError):
            return self._refuse("not a render event", 400)
        kept = self.board.post(str(product), str(event), parse_timestamp(timestamp))
        return JSONResponse(
            {"accepted": kept} if kept else {"accepted": False, "reason": "not a render we wait for"}
        )

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
                raise ConfigError(
                    "cannot listen for webhooks on the given address (in use or not allowed)",
                    hint="choose another port with --webhook-listen HOST:PORT (port 0 takes any free one)",
                )
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(
            f"--webhook-listen expects HOST:PORT, got {value!r}",
            hint="for example --webhook-listen 127.0.0.1:8765 (port 0 takes any free one)",
        )
    return host or "127.0.0.1", int(port)
