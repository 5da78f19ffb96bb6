"""Helpers of the sandbox tests: an API client that logs in like a real one, a webhook receiver."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import httpx

from reconciler.sandbox.server import EmbeddedSandbox

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "contract" / "vntana-admin-api-subset.yaml"
FAST: dict[str, Any] = {
    "job_pending_seconds": 0.02,
    "job_processing_seconds": 0.03,
    "webhook_backoff_seconds": 0.05,
    "webhook_timeout_seconds": 2.0,
}
SHOE = "58472097-fec0-516d-8326-f7a5eb192f2c"  # Trail Runner GTX (footwear.yaml)
CHAIR = "6079b22e-4327-5d30-ba4c-90855571b56d"  # Lounge Chair, Oak (furniture/seating.yaml)
TINY: dict[str, Any] = {
    "imageWidth": 32, "imageHeight": 24, "imageFormat": "PNG",
    "turntable": {"includeGif": True, "imageCount": 4, "frameRate": 2, "width": 32, "height": 16},
}


class Api:
    """A thin httpx wrapper that logs in like a client would and remembers the token."""

    def __init__(self, sandbox: EmbeddedSandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(base_url=sandbox.url, timeout=15)
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def login(self, client_uuid: str | None = None, organization_uuid: str | None = None) -> str:
        """The two-step login; returns (and keeps) the organization/workspace token."""
        first = self.http.post("/v1/auth/login/token", json={"personal-access-token": self.sandbox.access_token})
        assert first.status_code == 200, first.text
        headers = {"X-AUTH-TOKEN": f"Bearer {first.headers['X-AUTH-TOKEN']}",
                   "organizationUuid": organization_uuid or self.sandbox.organization_uuid}
        if client_uuid:
            headers["clientUuid"] = client_uuid
        second = self.http.post("/v1/auth/refresh-token", headers=headers)
        assert second.status_code == 200, second.text
        self.token = second.headers["X-AUTH-TOKEN"]
        return self.token

    def request(self, method: str, path: str, *, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        use = token if token is not None else self.token
        if use:  # token="" sends no token at all
            headers.setdefault("X-AUTH-TOKEN", f"Bearer {use}")
        return self.http.request(method, path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def render(self, *products: str, **overrides: Any) -> httpx.Response:
        body = json.loads(json.dumps(TINY))
        turntable = overrides.pop("turntable", None)
        if turntable:
            body["turntable"].update(turntable)
        body.update(overrides)
        body["productUuids"] = list(products)
        return self.post("/v1/products/renders", json=body)

    def attachments(self, product: str, entity_type: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"productUuid": product, "page": 1, "size": 100}
        if entity_type:
            body["entityType"] = entity_type
        answer = self.post("/v1/attachments/search", json=body)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["response"]["grid"])

    def sign(self, attachment: dict[str, Any]) -> str:
        answer = self.post("/v1/storage/download/clients/sign-url",
                           json={"entityUuid": attachment["uuid"], "storeType": attachment["entityType"]})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["response"]["location"])

    def download(self, attachment: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.http.get(self.sign(attachment), **kw)

    def fetch(self, url: str, method: str = "GET", **kw: Any) -> httpx.Response:
        """A tokenless request to an absolute URL (a signed download URL)."""
        return self.http.request(method, url, **kw)

    def rendered(self, *products: str, **overrides: Any) -> None:
        """Trigger and wait until the jobs are done."""
        answer = self.render(*products, **overrides)
        assert answer.status_code == 200, answer.text
        assert self.sandbox.wait_idle(timeout=20)


class Receiver:
    """A tiny real webhook receiver (stdlib http.server in a thread) that records deliveries."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.fail_next = 0  # answer this many deliveries with 500 first
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    failing = outer.fail_next > 0
                    if failing:
                        outer.fail_next -= 1
                    outer.deliveries.append({"headers": dict(self.headers), "body": body, "failed": failing})
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       name="test-receiver", daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def ok(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.deliveries if not d["failed"]]

    def events(self) -> list[str]:
        return [json.loads(d["body"])["event"] for d in self.ok()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
