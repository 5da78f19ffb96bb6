"""Helpers of the sandbox tests: an API client that logs in like a real one, a webhook receiver.

``Api`` follows VNTANA's documents the way a careful client would (attachments page from 0,
``entityType`` filtered locally, ``Origin`` on sign-url, the octet-stream content type on the
signed GET, the webhook paths and workspace references of the readings in force), and checks
every answer it gets against the OpenAPI document (``contract.check_answer``).
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

import httpx

from reconciler.sandbox.server import EmbeddedSandbox
from reconciler.sandbox.users import ORG_LEVEL_ROLES

from .contract import SCHEMA_FILE, check_answer

__all__ = ["CHAIR", "FAST", "ORIGIN", "SCHEMA_FILE", "SHOE", "TINY", "Api", "Receiver"]

FAST: dict[str, Any] = {
    "job_pending_seconds": 0.02,
    "job_processing_seconds": 0.03,
    "webhook_backoff_seconds": 0.05,
    "webhook_timeout_seconds": 2.0,
}
SHOE = "58472097-fec0-516d-8326-f7a5eb192f2c"  # Trail Runner GTX (footwear.yaml)
CHAIR = "6079b22e-4327-5d30-ba4c-90855571b56d"  # Lounge Chair, Oak (furniture/seating.yaml)
TINY: dict[str, Any] = {
    "imageWidth": 32,
    "imageHeight": 24,
    "imageFormat": "PNG",
    "turntable": {"includeGif": True, "imageCount": 4, "frameRate": 2, "width": 32, "height": 16},
}
ORIGIN = "https://platform.vntana.com"
OCTET = {"Content-Type": "application/octet-stream"}


class Api:
    """A thin httpx wrapper that logs in like a client would and remembers the token."""

    def __init__(self, sandbox: EmbeddedSandbox, *, check: bool = True) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(base_url=sandbox.url, timeout=15)
        self.token: str | None = None
        self.check = check  # validate every answer against the YAML

    def close(self) -> None:
        self.http.close()

    def login(
        self,
        client_uuid: str | None = None,
        organization_uuid: str | None = None,
        *,
        role: str | None = None,
        access_token: str | None = None,
    ) -> str:
        """The documented login: key, organization token, and the workspace token for workspace-level users.

        ``role`` logs in as the seed user with that role; ``client_uuid`` (default: the
        user's first workspace, for a workspace-level user) asks for a workspace token.
        """
        key = access_token or (self.sandbox.access_token_for(role) if role else self.sandbox.access_token)
        first = self.post("/v1/auth/login/token", token="", json={"personal-access-token": key})
        assert first.status_code == 200, first.text
        org = organization_uuid or self.sandbox.organization_uuid
        second = self.post(
            "/v1/auth/refresh-token", token=first.headers["X-AUTH-TOKEN"], headers={"organizationUuid": org}
        )
        assert second.status_code == 200, second.text
        self.token = second.headers["X-AUTH-TOKEN"]
        user = self.sandbox.users.by_token(key)
        assert user is not None
        if client_uuid is None and user.org_roles.get(org) not in ORG_LEVEL_ROLES and user.client_roles:
            client_uuid = next(iter(user.client_roles))
        if client_uuid:
            third = self.post(
                "/v1/auth/refresh-token", headers={"organizationUuid": org, "clientUuid": client_uuid}
            )
            assert third.status_code == 200, third.text
            self.token = third.headers["X-AUTH-TOKEN"]
        return self.token

    def request(self, method: str, path: str, *, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        use = token if token is not None else self.token
        if use:  # token="" sends no token at all
            headers.setdefault("X-AUTH-TOKEN", f"Bearer {use}")
        answer = self.http.request(method, path, headers=headers, **kw)
        if self.check:
            check_answer(method, answer.request.url.path, answer, self.sandbox.readings)
        return answer

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
        """Every attachment of ``product`` (all pages, from page 0), filtered locally by ``entity_type``."""
        found: list[dict[str, Any]] = []
        page = 0
        while True:
            body: dict[str, Any] = {"productUuid": product, "page": page, "size": 100}
            if entity_type:
                body["entityType"] = entity_type
            answer = self.post("/v1/attachments/search", json=body)
            assert answer.status_code == 200, answer.text
            grid = answer.json()["response"]["grid"]
            found.extend(grid)
            if not grid or len(found) >= answer.json()["response"]["totalCount"]:
                break
            page += 1
        return [a for a in found if entity_type is None or a["entityType"] == entity_type]

    def sign(self, attachment: dict[str, Any]) -> str:
        kind = attachment["entityType"]
        store = kind if kind in ("RENDER", "TURNTABLE") else "ATTACHMENT"
        answer = self.post(
            "/v1/storage/download/clients/sign-url",
            headers={"Origin": ORIGIN},
            json={"entityUuid": attachment["uuid"], "storeType": store},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["response"]["location"])

    def download(self, attachment: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.fetch(self.sign(attachment), **kw)

    def fetch(self, url: str, method: str = "GET", *, octet: bool = True, **kw: Any) -> httpx.Response:
        """A tokenless request to an absolute URL (a signed URL), with the mandatory content type (Y:3833)."""
        headers = {**(OCTET if octet else {}), **dict(kw.pop("headers", {}) or {})}
        return self.http.request(method, url, headers=headers, **kw)

    def rendered(self, *products: str, **overrides: Any) -> None:
        """Trigger and wait until the jobs are done."""
        answer = self.render(*products, **overrides)
        assert answer.status_code == 200, answer.text
        assert self.sandbox.wait_idle(timeout=20)

    # -- webhooks, as the readings in force spell them --------------------------------
    def webhook_path(self, which: str) -> str:
        """``create``, ``events`` or ``list`` under the reading ``webhook_paths``."""
        guide = self.sandbox.readings.webhook_paths == "guide"
        org = self.sandbox.organization_uuid
        return {
            "create": "/v1/webhooks" if guide else "/v1/webhooks/",
            "events": "/v1/webhooks/events" if guide else "/v1/webhooks/events/",
            "list": f"/v1/webhooks/organizations/{org}" if guide else f"/v1/webhooks/organization/{org}",
        }[which]

    def events(self, *names: str) -> list[dict[str, Any]]:
        """Catalogue event objects ``{name, description, uuid}`` (webhooks.md), by name."""
        answer = self.get(self.webhook_path("events"))
        assert answer.status_code == 200, answer.text
        catalogue = {e["name"]: e for g in answer.json()["response"]["grid"] for e in g["events"]}
        return [catalogue[n] for n in names]

    def workspace_ref(self, client_uuid: str) -> str:
        """How ``clients`` of a webhook names a workspace under the reading ``webhook_clients``."""
        if self.sandbox.readings.webhook_clients == "uuids":
            return client_uuid
        client = self.sandbox.store.client(client_uuid)
        assert client is not None
        return str(client["slug"])

    def create_webhook(self, url: str, events: list[str], **extra: Any) -> httpx.Response:
        if "clients" in extra:
            extra["clients"] = [self.workspace_ref(c) for c in extra["clients"]]
        return self.post(
            self.webhook_path("create"), json={"url": url, "events": self.events(*events), **extra}
        )

    # -- uploads ------------------------------------------------------------------------
    def upload(
        self,
        product: str,
        name: str,
        data: bytes,
        store_type: str = "ATTACHMENT",
        client_uuid: str | None = None,
    ) -> dict[str, Any]:
        """Put a file on a product through the resource sign-url and the signed PUT; its attachment."""
        client = client_uuid or str(self.get(f"/v1/products/{product}").json()["response"]["clientUuid"])
        answer = self.post(
            "/v1/storage/upload/clients/resource/sign-url",
            json={
                "clientUuid": client,
                "parentEntityUuid": product,
                "parentEntityType": "PRODUCT",
                "storeType": store_type,
                "resourceSettings": {
                    "contentType": "application/octet-stream",
                    "originalName": name,
                    "originalSize": len(data),
                },
            },
        )
        assert answer.status_code == 200, answer.text
        session = answer.json()["response"]
        put = self.http.put(session["location"], content=data)
        assert put.status_code == 200, put.text
        return next(a for a in self.attachments(product) if a["blobId"] == session["blobId"])


class Receiver:
    """A tiny real webhook receiver (stdlib http.server in a thread) that records deliveries."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.fail_next = 0  # answer this many deliveries with 500 first
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
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
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="test-receiver",
            daemon=True,
        )
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
