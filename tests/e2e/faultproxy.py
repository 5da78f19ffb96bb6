"""A fault-injecting HTTP proxy in front of the real sandbox, for failures the sandbox's own
switches cannot aim: a 500 to one render request *after* the platform accepted it, a 403 to
the second trigger of a run, a token revoked mid-run.

The sandbox's ``rate_500`` refuses a share of all requests before they reach a route; these
tests need one answer changed, on one route, at one moment. The proxy forwards every request
unchanged to the sandbox over HTTP (no code of the reconciler is involved) and applies the first
matching ``Rule``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@dataclass
class Rule:
    """Answer ``status`` with ``codes`` to requests ``method path`` (path prefix), from the
    ``after``-th matching request on (0: the first), ``times`` times (None: always).
    ``forward``: send the request to the sandbox first (it is processed), then answer the fault."""

    method: str
    path: str
    status: int
    codes: tuple[str, ...] = ("INTERNAL_SERVER_ERROR",)
    forward: bool = False
    after: int = 0
    times: int | None = None
    seen: int = 0
    fired: int = 0

    def applies(self, method: str, path: str) -> bool:
        if method != self.method or not path.startswith(self.path):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


class FaultProxy:
    def __init__(self, upstream: str, rules: list[Rule]) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules = rules
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.handle(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            rule = next((r for r in self.rules if r.applies(handler.command, path)), None)
        if rule is None or rule.forward:
            headers = {
                k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")
            }
            upstream = self._http.request(
                handler.command, self.upstream + handler.path, content=body, headers=headers
            )
            if rule is None:
                self._send(
                    handler,
                    upstream.status_code,
                    upstream.content,
                    [
                        (k, v)
                        for k, v in upstream.headers.items()
                        if k.lower()
                        not in ("content-length", "transfer-encoding", "connection", "content-encoding")
                    ],
                )
                return
        assert rule is not None
        data = json.dumps({"success": False, "errors": list(rule.codes), "response": None}).encode()
        self._send(handler, rule.status, data, [("content-type", "application/json")])

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: list[tuple[str, str]]
    ) -> None:
        handler.send_response(status)
        for k, v in headers:
            handler.send_header(k, v)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._http.close()


@contextmanager
def fault_proxy(upstream: str, *rules: Rule) -> Iterator[FaultProxy]:
    with FaultProxy(upstream, list(rules)) as proxy:
        yield proxy
