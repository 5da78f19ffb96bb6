"""Authentication: login with a personal access token or a password, refresh, expiry, revocation."""

from __future__ import annotations

import time

import pytest

from .helpers import SHOE, Api


def test_login_with_access_token_returns_token_in_header(api: Api, validate) -> None:
    answer = api.http.post("/v1/auth/login/token", json={"personal-access-token": api.sandbox.access_token})
    assert answer.status_code == 200
    assert answer.headers["X-AUTH-TOKEN"]
    validate("LoginUserResultResponseOk", answer.json())
    assert answer.json()["success"] is True


def test_login_with_wrong_access_token_is_403(api: Api, validate) -> None:
    answer = api.http.post("/v1/auth/login/token", json={"personal-access-token": "wrong"})
    assert answer.status_code == 403
    assert "X-AUTH-TOKEN" not in answer.headers
    validate("LoginUserResultResponseForbidden", answer.json())
    assert answer.json()["success"] is False


@pytest.mark.parametrize("body", [{}, {"personal-access-token": ""}, {"token": "x"}])
def test_login_without_access_token_is_400(api: Api, body) -> None:
    answer = api.http.post("/v1/auth/login/token", json=body)
    assert answer.status_code == 400
    assert answer.json()["errors"] == ["BAD_REQUEST"]


def test_login_with_email_and_password(api: Api, validate) -> None:
    user = api.sandbox.user
    answer = api.http.post("/v1/auth/login", json={"email": user["email"], "password": user["password"]})
    assert answer.status_code == 200
    validate("LoginUserResultResponseOk", answer.json())
    assert answer.json()["response"]["email"] == user["email"]
    bad = api.http.post("/v1/auth/login", json={"email": user["email"], "password": "nope"})
    assert bad.status_code == 403
    validate("LoginUserResultResponseForbidden", bad.json())


def test_login_token_is_not_organization_scoped(api: Api) -> None:
    first = api.http.post("/v1/auth/login/token", json={"personal-access-token": api.sandbox.access_token})
    token = first.headers["X-AUTH-TOKEN"]
    assert api.get("/v1/organizations", token=token).status_code == 200
    answer = api.get(f"/v1/products/{SHOE}", token=token)
    assert answer.status_code == 403
    assert answer.json()["errors"] == ["MISSING_ORGANIZATION_UUID"]


def test_refresh_token_errors(api: Api, sandbox) -> None:
    first = api.http.post("/v1/auth/login/token", json={"personal-access-token": sandbox.access_token})
    bearer = {"X-AUTH-TOKEN": f"Bearer {first.headers['X-AUTH-TOKEN']}"}
    assert api.http.post("/v1/auth/refresh-token", headers=bearer).json()["errors"] == ["MISSING_ORGANIZATION_UUID"]
    other_org = api.http.post("/v1/auth/refresh-token", headers={**bearer, "organizationUuid": "not-mine"})
    assert (other_org.status_code, other_org.json()["errors"]) == (403, ["FORBIDDEN"])
    bad_client = api.http.post("/v1/auth/refresh-token",
                               headers={**bearer, "organizationUuid": sandbox.organization_uuid, "clientUuid": "nope"})
    assert (bad_client.status_code, bad_client.json()["errors"]) == (403, ["INVALID_CLIENT_UUID"])
    no_token = api.http.post("/v1/auth/refresh-token", headers={"organizationUuid": sandbox.organization_uuid})
    assert no_token.status_code == 401


@pytest.mark.parametrize("header, code", [
    (None, "MISSING_TOKEN"),
    ("Bearer", "INVALID_TOKEN"),
    ("Token abc", "INVALID_TOKEN"),
    ("Bearer not-a-token", "TOKEN_NOT_FOUND"),
])
def test_bad_tokens_are_401(api: Api, header, code) -> None:
    headers = {"X-AUTH-TOKEN": header} if header else {}
    answer = api.http.get(f"/v1/products/{SHOE}", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"success": False, "errors": [code], "response": {}}


def test_new_refresh_revokes_the_previous_one_of_the_same_scope(api: Api, api_factory, sandbox) -> None:
    first = api.token
    assert api.get(f"/v1/products/{SHOE}").status_code == 200
    other = api_factory(sandbox)
    other.login()  # a second process logging in with the same key
    answer = api.get(f"/v1/products/{SHOE}", token=first)
    assert (answer.status_code, answer.json()["errors"]) == (401, ["TOKEN_REVOKED"])
    assert other.get(f"/v1/products/{SHOE}").status_code == 200
    # A workspace-scoped token is another scope: it leaves the organization token alone.
    workspace = api_factory(sandbox)
    workspace.login(client_uuid=sandbox.client_uuid)
    assert other.get(f"/v1/products/{SHOE}").status_code == 200


def test_tokens_expire(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(token_ttl_seconds=0.3)
    api = api_factory(sb)
    api.login()
    assert api.get(f"/v1/products/{SHOE}").status_code == 200
    time.sleep(0.4)
    answer = api.get(f"/v1/products/{SHOE}")
    assert (answer.status_code, answer.json()["errors"]) == (401, ["TOKEN_EXPIRED"])


def test_logout_expires_the_token(api: Api, validate) -> None:
    answer = api.post("/v1/auth/logout")
    assert answer.status_code == 200
    validate("ExpireTokenAuthenticationResultResponse", answer.json())
    assert api.get(f"/v1/products/{SHOE}").status_code == 401


def test_custom_access_token(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(access_token="my-own-key")
    assert sb.access_token == "my-own-key"
    api = api_factory(sb)
    assert api.http.post("/v1/auth/login/token", json={"personal-access-token": "my-own-key"}).status_code == 200
    default = api.http.post("/v1/auth/login/token", json={"personal-access-token": "vntana-sandbox-demo-token"})
    assert default.status_code == 403
