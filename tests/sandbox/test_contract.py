"""The sandbox against VNTANA's own OpenAPI document: every documented answer validates.

Each call below is made over HTTP and its JSON answer is validated against the schema the
YAML documents for that path, method and status, so the sandbox cannot drift from the
contract. Also checked: every ``/v1`` route exists in the YAML, and the sandbox does not
import the client or the planner (it is an independent reading of the reference).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from .conftest import _spec
from .helpers import CHAIR, SHOE, TINY, Api, Receiver

SANDBOX_DIR = Path(__file__).resolve().parents[2] / "reconciler" / "sandbox"


@pytest.fixture
def prepared(fresh_api: Api, receiver: Receiver) -> dict[str, Any]:
    """A sandbox with rendered products and a webhook, and the names the calls refer to."""
    fresh_api.rendered(SHOE, CHAIR)
    hook = fresh_api.post("/v1/webhooks/", json={"url": receiver.url, "events": [{"name": "renders.completed"}]})
    return {
        "org": fresh_api.sandbox.organization_uuid, "client": fresh_api.sandbox.client_uuid,
        "hook": hook.json()["response"]["uuid"],
        "render": fresh_api.attachments(SHOE, "RENDER")[0]["uuid"],
        "gif": next(a["uuid"] for a in fresh_api.attachments(CHAIR) if a["name"].endswith(".gif")),
    }


def _calls(n: dict[str, Any]) -> list[tuple[str, str, str, int, dict[str, Any]]]:
    """(method, documented path, concrete path, expected status, request options)."""
    hook = {"url": "http://127.0.0.1:9/contract", "events": [{"name": "turntable.completed"}]}
    return [
        ("GET", "/v1/organizations", "/v1/organizations", 200, {}),
        ("GET", "/v1/clients/client-organizations", "/v1/clients/client-organizations", 200, {}),
        ("GET", "/v1/products/{uuid}", f"/v1/products/{SHOE}", 200, {}),
        ("GET", "/v1/products/{uuid}", "/v1/products/unknown", 404, {}),
        ("POST", "/v1/products/clients/search", f"/v1/products/clients/search?clientUuid={n['client']}", 200,
         {"json": {"page": 1, "size": 5}}),
        ("POST", "/v1/products/clients/search", "/v1/products/clients/search", 422, {"json": {"page": -1, "size": 5}}),
        ("POST", "/v1/products/clients/{clientUuid}/search", f"/v1/products/clients/{n['client']}/search", 200,
         {"json": {"page": 2, "size": 5}}),
        ("POST", "/v1/products/clients/{clientUuid}/search", f"/v1/products/clients/{n['client']}/search", 422,
         {"json": {"page": 1, "size": 0}}),
        ("POST", "/v1/products/renders", "/v1/products/renders", 200, {"json": {**TINY, "productUuids": [SHOE, "x"]}}),
        ("POST", "/v1/attachments/search", "/v1/attachments/search", 200,
         {"json": {"productUuid": SHOE, "entityType": "RENDER", "page": 1, "size": 5}}),
        ("POST", "/v1/attachments/search", "/v1/attachments/search", 404,
         {"json": {"productUuid": "unknown", "page": 1, "size": 5}}),
        ("POST", "/v1/attachments/search", "/v1/attachments/search", 422, {"json": {"page": 1, "size": 5}}),
        ("DELETE", "/v1/attachments/{productUuid}/{uuid}", f"/v1/attachments/{CHAIR}/{n['gif']}", 200, {}),
        ("DELETE", "/v1/attachments/{productUuid}/{uuid}", f"/v1/attachments/{CHAIR}/{n['gif']}", 404, {}),
        ("POST", "/v1/storage/download/clients/sign-url", "/v1/storage/download/clients/sign-url", 200,
         {"json": {"entityUuid": n["render"], "storeType": "RENDER", "format": "PNG"}}),
        ("POST", "/v1/webhooks/", "/v1/webhooks/", 200, {"json": hook}),
        ("GET", "/v1/webhooks/events/", "/v1/webhooks/events/", 200, {}),
        ("GET", "/v1/webhooks/organization/{organizationUuid}", f"/v1/webhooks/organization/{n['org']}", 200, {}),
        ("GET", "/v1/webhooks/{uuid}", f"/v1/webhooks/{n['hook']}", 200, {}),
        ("PUT", "/v1/webhooks/{uuid}", f"/v1/webhooks/{n['hook']}", 200, {"json": {**hook, "url": "http://127.0.0.1:9/b"}}),
        ("PATCH", "/v1/webhooks/{webhookUuid}/secret", f"/v1/webhooks/{n['hook']}/secret", 200, {}),
        ("DELETE", "/v1/webhooks/{uuid}", f"/v1/webhooks/{n['hook']}", 200, {}),
        ("POST", "/v1/auth/logout", "/v1/auth/logout", 200, {}),
    ]


def _schema_for(documented: str, method: str, status: int) -> dict[str, Any] | None:
    answer = _spec()["paths"][documented][method.lower()]["responses"][str(status)]
    content = answer.get("content") or {}
    return next(iter(content.values()))["schema"] if content else None


def test_every_documented_answer_validates(prepared: dict[str, Any], fresh_api: Api, validate) -> None:
    checked = 0
    for method, documented, path, status, options in _calls(prepared):
        answer = fresh_api.request(method, path, **options)
        assert answer.status_code == status, (method, path, answer.text)
        body = answer.json()
        assert set(body) == {"success", "errors", "response"}, (method, path)
        assert body["success"] is (status == 200)
        schema = _schema_for(documented, method, status)
        assert schema is not None and "$ref" in schema, (method, documented, status)
        validate(schema["$ref"].rsplit("/", 1)[1], body)
        checked += 1
    assert checked == len(_calls(prepared))


def test_login_answers_validate(fresh_api: Api, validate) -> None:
    sb = fresh_api.sandbox
    calls = [
        ("/v1/auth/login/token", {"json": {"personal-access-token": sb.access_token}}, {}, 200),
        ("/v1/auth/login/token", {"json": {"personal-access-token": "nope"}}, {}, 403),
        ("/v1/auth/login", {"json": {"email": sb.user["email"], "password": sb.user["password"]}}, {}, 200),
        ("/v1/auth/login", {"json": {"email": sb.user["email"], "password": "nope"}}, {}, 403),
        ("/v1/auth/refresh-token", {}, {"organizationUuid": sb.organization_uuid}, 200),
        ("/v1/auth/refresh-token", {}, {"organizationUuid": "not-mine"}, 403),
    ]
    for path, options, headers, status in calls:
        if path.endswith("refresh-token"):  # a new refresh revokes the old one: start from a login token
            login = fresh_api.http.post("/v1/auth/login/token", json={"personal-access-token": sb.access_token})
            options = {"token": login.headers["X-AUTH-TOKEN"]}
        answer = fresh_api.post(path, headers=headers, **options)
        assert answer.status_code == status, (path, answer.text)
        validate(_schema_for(path, "POST", status)["$ref"].rsplit("/", 1)[1], answer.json())  # type: ignore[index]
        assert ("X-AUTH-TOKEN" in answer.headers) is (status == 200)


def test_unauthorized_answers_are_objects(api: Api) -> None:
    for method, path in (("GET", "/v1/organizations"), ("POST", "/v1/products/renders"), ("GET", "/v1/webhooks/events/"),
                         ("POST", "/v1/attachments/search"), ("POST", "/v1/storage/download/clients/sign-url")):
        answer = api.http.request(method, path, json={})
        assert answer.status_code == 401
        assert isinstance(answer.json(), dict) and answer.json()["success"] is False


def test_every_api_route_is_documented(sandbox) -> None:
    documented = _spec()["paths"]
    routes = [r for r in sandbox.app.app.routes if isinstance(r, Route) and r.path.startswith("/v1/")]
    assert len(routes) >= 20
    for route in routes:
        assert route.path in documented, f"{route.path} is not in the YAML"
        for method in route.methods or ():
            assert method == "HEAD" or method.lower() in documented[route.path], f"{method} {route.path}"


def test_sandbox_does_not_import_the_client_or_the_planner() -> None:
    forbidden = ("reconciler.client", "reconciler.spec", "reconciler.plan", "reconciler.planner", "reconciler.executor")
    for module in SANDBOX_DIR.glob("*.py"):
        tree = ast.parse(module.read_text(), filename=str(module))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{module.name} imports {name}"
