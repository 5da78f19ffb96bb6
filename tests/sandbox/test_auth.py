"""Authentication: keys, the organization and workspace steps, roles, expiry, revocation, logout."""

from __future__ import annotations

import time

import pytest

from reconciler.sandbox.readings import Readings

from .helpers import SHOE, Api

CATALOGUE = "146866e1-6190-50c7-8bd1-85432273b3b1"
ARCHIVE = "a983026e-cb31-58d8-8ec4-6753670e6cfd"
ARCHIVE_PRODUCT = "a642eb81-4f2e-5d86-9d03-3a2e46e7a7b2"


def _key_login(api: Api, key: str) -> str:
    answer = api.post("/v1/auth/login/token", token="", json={"personal-access-token": key})
    assert answer.status_code == 200, answer.text
    return str(answer.headers["X-AUTH-TOKEN"])


def _refresh(api: Api, token: str, org: str | None, client: str | None = None):
    headers = {k: v for k, v in (("organizationUuid", org), ("clientUuid", client)) if v}
    return api.post("/v1/auth/refresh-token", token=token, headers=headers)


def test_login_with_access_token_returns_token_in_header(api: Api, validate) -> None:
    answer = api.post(
        "/v1/auth/login/token", token="", json={"personal-access-token": api.sandbox.access_token}
    )
    assert answer.status_code == 200
    assert answer.headers["X-AUTH-TOKEN"]
    validate("LoginUserResultResponseOk", answer.json())
    assert answer.json()["success"] is True
    assert answer.json()["response"]["email"] == api.sandbox.user["email"]


def test_wrong_credentials_are_403_bad_credentials(api: Api) -> None:
    # Login and refresh document 403 "BAD_CREDENTIALS" (api-authentication.md; Y:6344, Y:6382),
    # although the enum of the 403 schema lacks the code (the contract checker allows it).
    wrong_key = api.post("/v1/auth/login/token", token="", json={"personal-access-token": "wrong"})
    user = api.sandbox.user
    wrong_password = api.post("/v1/auth/login", token="", json={"email": user["email"], "password": "nope"})
    unknown_user = api.post("/v1/auth/login", token="", json={"email": "nobody@x", "password": "nope"})
    for answer in (wrong_key, wrong_password, unknown_user):
        assert (answer.status_code, answer.json()["errors"]) == (403, ["BAD_CREDENTIALS"])
        assert "X-AUTH-TOKEN" not in answer.headers
        assert answer.json()["response"] is None


@pytest.mark.parametrize("body", [{}, {"personal-access-token": ""}, {"token": "x"}])
def test_login_without_access_token_is_400(api: Api, body) -> None:
    answer = api.post("/v1/auth/login/token", token="", json=body)
    assert answer.status_code == 400
    assert answer.json()["errors"] == ["BAD_REQUEST"]


def test_login_with_email_and_password(api: Api, validate) -> None:
    for user in (api.sandbox.user, api.sandbox.user_for("ORGANIZATION_ADMIN")):
        answer = api.post(
            "/v1/auth/login", token="", json={"email": user["email"], "password": user["password"]}
        )
        assert answer.status_code == 200
        validate("LoginUserResultResponseOk", answer.json())
        assert answer.json()["response"]["email"] == user["email"]


def test_login_token_is_not_organization_scoped(api: Api) -> None:
    token = _key_login(api, api.sandbox.access_token)
    assert api.get("/v1/organizations", token=token).status_code == 200
    answer = api.get(f"/v1/products/{SHOE}", token=token)
    assert (answer.status_code, answer.json()["errors"]) == (403, ["MISSING_ORGANIZATION_UUID"])


def test_refresh_token_errors(api: Api, sandbox) -> None:
    token = _key_login(api, sandbox.access_token)
    missing = _refresh(api, token, None)
    assert (missing.status_code, missing.json()["errors"]) == (403, ["MISSING_ORGANIZATION_UUID"])
    other_org = _refresh(api, token, "not-mine")
    assert (other_org.status_code, other_org.json()["errors"]) == (403, ["FORBIDDEN"])
    no_token = api.post(
        "/v1/auth/refresh-token", token="", headers={"organizationUuid": sandbox.organization_uuid}
    )
    assert no_token.status_code == 403  # the default reading of revoked_token_status


@pytest.mark.parametrize("role", ["ORGANIZATION_OWNER", "ORGANIZATION_ADMIN"])
def test_owners_and_admins_get_bad_credentials_for_a_workspace_token(api: Api, sandbox, role: str) -> None:
    # refresh-token-usage.md: Owners and Admins use the organization token; the workspace step is refused.
    login = _key_login(api, sandbox.access_token_for(role))
    org_token = _refresh(api, login, sandbox.organization_uuid).headers["X-AUTH-TOKEN"]
    answer = _refresh(api, org_token, sandbox.organization_uuid, CATALOGUE)
    assert (answer.status_code, answer.json()["errors"]) == (403, ["BAD_CREDENTIALS"])
    assert "X-AUTH-TOKEN" not in answer.headers
    # the organization token reaches every workspace
    assert api.get(f"/v1/products/{SHOE}", token=org_token).status_code == 200
    assert (
        api.post(
            f"/v1/products/clients/{ARCHIVE}/search",
            token=org_token,
            json={"page": 1, "size": 5, "organizationUuid": sandbox.organization_uuid},
        ).status_code
        == 200
    )


def test_workspace_level_users_need_the_workspace_step(api: Api, sandbox) -> None:
    login = _key_login(api, sandbox.access_token_for("CLIENT_ORGANIZATION_CONTENT_MANAGER"))
    org_answer = _refresh(api, login, sandbox.organization_uuid)
    assert org_answer.status_code == 200
    org_token = org_answer.headers["X-AUTH-TOKEN"]
    workspaces = api.get("/v1/clients/client-organizations", token=org_token).json()["response"]["grid"]
    assert [(w["uuid"], w["role"]) for w in workspaces] == [
        (CATALOGUE, "CLIENT_ORGANIZATION_CONTENT_MANAGER")
    ]
    # the organization token of a workspace-level user reaches no workspace's products
    assert api.get(f"/v1/products/{SHOE}", token=org_token).status_code == 403
    not_theirs = _refresh(api, org_token, sandbox.organization_uuid, ARCHIVE)
    assert (not_theirs.status_code, not_theirs.json()["errors"]) == (403, ["INVALID_CLIENT_UUID"])
    unknown = _refresh(api, org_token, sandbox.organization_uuid, "nope")
    assert (unknown.status_code, unknown.json()["errors"]) == (403, ["INVALID_CLIENT_UUID"])
    workspace = _refresh(api, org_token, sandbox.organization_uuid, CATALOGUE)
    assert workspace.status_code == 200
    token = workspace.headers["X-AUTH-TOKEN"]
    assert api.get(f"/v1/products/{SHOE}", token=token).status_code == 200
    orgs = api.get("/v1/organizations", token=token).json()["response"]["grid"]
    assert [(o["uuid"], o["role"]) for o in orgs] == [
        (sandbox.organization_uuid, "ORGANIZATION_CLIENT_MEMBER")
    ]


def test_roles_decide_what_a_token_may_do(api_factory, sandbox) -> None:
    viewer = api_factory(sandbox)
    viewer.login(role="CLIENT_ORGANIZATION_VIEWER")
    assert viewer.get(f"/v1/products/{SHOE}").status_code == 200
    refused = viewer.render(SHOE)
    assert (refused.status_code, refused.json()["errors"]) == (403, ["FORBIDDEN"])
    manager = api_factory(sandbox)
    manager.login(role="CLIENT_ORGANIZATION_CONTENT_MANAGER")
    body = {"page": 1, "size": 5, "organizationUuid": sandbox.organization_uuid}
    # searching-products.md: only Owners and Admins search several workspaces
    many = manager.post("/v1/products/clients/search", params={"clientUuid": CATALOGUE}, json=body)
    assert (many.status_code, many.json()["errors"]) == (403, ["FORBIDDEN"])
    assert manager.post(f"/v1/products/clients/{CATALOGUE}/search", json=body).status_code == 200
    assert manager.get(f"/v1/products/{ARCHIVE_PRODUCT}").status_code == 403
    accepted = manager.render(SHOE)
    assert accepted.status_code == 200
    assert sandbox.wait_idle(timeout=20)


def test_access_token_for_names_the_roles_there_are(sandbox) -> None:
    assert sandbox.access_token_for("ORGANIZATION_OWNER") == sandbox.access_token
    tokens = {
        sandbox.access_token_for(r)
        for r in (
            "ORGANIZATION_OWNER",
            "ORGANIZATION_ADMIN",
            "CLIENT_ORGANIZATION_ADMIN",
            "CLIENT_ORGANIZATION_CONTENT_MANAGER",
            "CLIENT_ORGANIZATION_VIEWER",
        )
    }
    assert len(tokens) == 5  # every user has a key of its own
    with pytest.raises(KeyError, match="ORGANIZATION_ADMIN"):
        sandbox.access_token_for("SHOWROOM_SHARELINK_VIEWER")


@pytest.mark.parametrize("status, code", [(403, "FORBIDDEN"), (401, "UNAUTHORIZED")])
@pytest.mark.parametrize("header", [None, "Bearer", "Token abc", "Bearer not-a-token"])
def test_bad_tokens_answer_per_reading(sandbox, api: Api, header, status: int, code: str) -> None:
    sandbox.set_readings(Readings(revoked_token_status=status))
    try:
        headers = {"X-AUTH-TOKEN": header} if header else {}
        answer = api.get(f"/v1/products/{SHOE}", token="", headers=headers)
        assert answer.status_code == status
        assert answer.json() == {"success": False, "errors": [code], "response": None}
    finally:
        sandbox.set_readings(Readings())


@pytest.mark.parametrize("status", [403, 401])
def test_new_refresh_revokes_the_previous_one_of_the_same_user_and_scope(
    sandbox_factory, api_factory, status
) -> None:
    sb = sandbox_factory(readings=Readings(revoked_token_status=status))
    api = api_factory(sb)
    first = api.login()
    assert api.get(f"/v1/products/{SHOE}").status_code == 200
    other = api_factory(sb)
    other.login()  # a second process logging in with the same key
    answer = api.get(f"/v1/products/{SHOE}", token=first)
    assert (answer.status_code, answer.json()["errors"]) == (
        status,
        ["FORBIDDEN" if status == 403 else "UNAUTHORIZED"],
    )
    assert other.get(f"/v1/products/{SHOE}").status_code == 200
    # Another user's login, or a workspace token of another user, leaves it alone.
    api_factory(sb).login(role="ORGANIZATION_ADMIN")
    api_factory(sb).login(role="CLIENT_ORGANIZATION_CONTENT_MANAGER")
    assert other.get(f"/v1/products/{SHOE}").status_code == 200
    # A workspace token is another scope than the same user's organization token.
    manager = api_factory(sb)
    manager.login(role="CLIENT_ORGANIZATION_CONTENT_MANAGER")
    org_token = _refresh(
        manager,
        _key_login(manager, sb.access_token_for("CLIENT_ORGANIZATION_CONTENT_MANAGER")),
        sb.organization_uuid,
    ).headers["X-AUTH-TOKEN"]
    assert manager.get(f"/v1/products/{SHOE}").status_code == 200
    assert manager.get("/v1/clients/client-organizations", token=org_token).status_code == 200


@pytest.mark.parametrize("status", [403, 401])
def test_tokens_expire(sandbox_factory, api_factory, status) -> None:
    sb = sandbox_factory(token_ttl_seconds=0.3, readings=Readings(revoked_token_status=status))
    api = api_factory(sb)
    api.login()
    assert api.get(f"/v1/products/{SHOE}").status_code == 200
    time.sleep(0.4)
    assert api.get(f"/v1/products/{SHOE}").status_code == status


def test_logout_expires_the_token(sandbox_factory, api_factory, validate) -> None:
    sb = sandbox_factory()
    api = api_factory(sb)
    api.login()
    answer = api.post("/v1/auth/logout")
    assert answer.status_code == 200
    validate("ExpireTokenAuthenticationResultResponse", answer.json())
    assert answer.json()["response"] == {}
    assert api.get(f"/v1/products/{SHOE}").status_code == 403  # api-authentication.md: later use gets 403
    sb.set_readings(Readings(revoked_token_status=401))
    assert api.get(f"/v1/products/{SHOE}").status_code == 401


def test_custom_access_token(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(access_token="my-own-key")
    assert sb.access_token == "my-own-key"
    api = api_factory(sb)
    assert (
        api.post("/v1/auth/login/token", token="", json={"personal-access-token": "my-own-key"}).status_code
        == 200
    )
    default = api.post(
        "/v1/auth/login/token", token="", json={"personal-access-token": "vntana-sandbox-demo-token"}
    )
    assert default.status_code == 403
