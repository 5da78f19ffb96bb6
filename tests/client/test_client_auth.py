"""Login, re-login, scopes and secrecy, against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest

from reconciler.client import RetryPolicy, VntanaClient
from reconciler.errors import AuthenticationError, PermanentApiError, ReconcilerError, TransientApiError
from reconciler.sandbox.server import EmbeddedSandbox
from reconciler.settings import ClientSettings

TRAIL_RUNNER = "58472097-fec0-516d-8326-f7a5eb192f2c"  # manifests/footwear.yaml


def test_login_discovers_the_only_organization(sandbox: EmbeddedSandbox, make_client) -> None:
    client = make_client()
    assert client.get_product(TRAIL_RUNNER).uuid == TRAIL_RUNNER  # lazy login on first call
    assert client.organization_uuid == sandbox.organization_uuid
    requests = client.stats.snapshot().requests
    assert requests["POST /v1/auth/login/token"] == 1
    assert requests["GET /v1/organizations"] == 1
    assert requests["POST /v1/auth/refresh-token"] == 1


def test_an_owner_with_a_workspace_configured_uses_the_organization_token(
    sandbox: EmbeddedSandbox, make_client
) -> None:
    # refresh-token-usage.md: Owners and Admins asking for a workspace token get BAD_CREDENTIALS.
    client = make_client(organization_uuid=sandbox.organization_uuid, client_uuid=sandbox.client_uuid)
    products = client.search_products(page_size=7)
    assert products and all(p.client_uuid == sandbox.client_uuid for p in products)
    requests = client.stats.snapshot().requests
    assert requests["POST /v1/auth/refresh-token"] == 1  # organization only
    assert requests["GET /v1/organizations"] == 1  # the role is read at login
    assert client.login_info.role == "ORGANIZATION_OWNER" and client.login_info.workspace_step == "skipped"
    assert 401 not in client.stats.snapshot().statuses and 403 not in client.stats.snapshot().statuses


def test_an_organization_admin_skips_the_workspace_step_too(sandbox: EmbeddedSandbox, make_client) -> None:
    client = make_client(role="ORGANIZATION_ADMIN", client_uuid=sandbox.client_uuid)
    assert client.get_product(TRAIL_RUNNER).uuid == TRAIL_RUNNER
    assert client.login_info.workspace_step == "skipped"
    assert client.stats.snapshot().requests["POST /v1/auth/refresh-token"] == 1


@pytest.mark.parametrize("role", ["CLIENT_ORGANIZATION_CONTENT_MANAGER", "CLIENT_ORGANIZATION_ADMIN"])
def test_a_workspace_level_user_logs_in_to_the_workspace(
    sandbox: EmbeddedSandbox, make_client, role: str
) -> None:
    client = make_client(role=role, client_uuid=sandbox.client_uuid)
    assert [w.uuid for w in client.workspaces()] == [sandbox.client_uuid]  # workspace users see their own
    assert client.login_info.workspace_step == "used"
    assert (
        client.stats.snapshot().requests["POST /v1/auth/refresh-token"] == 2
    )  # organization, then workspace
    products = client.search_products(page_size=7)
    assert products and all(p.client_uuid == sandbox.client_uuid for p in products)
    result = client.trigger_renders(
        [TRAIL_RUNNER],
        {
            "imageWidth": 16,
            "imageHeight": 16,
            "imageFormat": "PNG",
            "turntable": {"includeGif": False, "imageCount": 2, "frameRate": 2, "width": 16, "height": 16},
        },
    )
    assert result.accepted == (TRAIL_RUNNER,)
    assert sandbox.wait_idle(timeout=20)


@pytest.mark.parametrize("status", [403, 401])
def test_a_revoked_token_is_replaced_by_one_fresh_login(
    sandbox: EmbeddedSandbox, make_client, reading, status: int
) -> None:
    reading(revoked_token_status=status)
    first, second = make_client(), make_client()
    first.login()
    second.login()  # same key, same scope: the platform revokes the first client's token
    assert first.get_product(TRAIL_RUNNER).uuid == TRAIL_RUNNER
    stats = first.stats.snapshot()
    assert stats.relogins == 1 and stats.statuses[status] >= 1
    assert stats.requests["POST /v1/auth/login/token"] == 2


def test_a_workspace_user_refused_an_organization_route_gets_no_fresh_login(
    sandbox: EmbeddedSandbox, make_client
) -> None:
    client = make_client(role="CLIENT_ORGANIZATION_CONTENT_MANAGER", client_uuid=sandbox.client_uuid)
    client.login()
    with pytest.raises(PermanentApiError) as info:  # searching several workspaces is for Owners and Admins
        client._session.request(
            "POST",
            "/v1/products/clients/search",
            endpoint="POST /v1/products/clients/search",
            params={"clientUuid": sandbox.client_uuid},
            json={
                "page": 1,
                "size": 5,
                "organizationUuid": sandbox.organization_uuid,
                "clientUuids": [sandbox.client_uuid],
            },
        )
    assert info.value.status == 403 and not isinstance(info.value, AuthenticationError)
    assert client.stats.snapshot().relogins == 0
    assert client.stats.snapshot().requests["POST /v1/auth/login/token"] == 1


def test_wrong_token_is_an_authentication_error(make_client) -> None:
    client = make_client(token="not-the-key")
    with pytest.raises(AuthenticationError) as info:
        client.get_product(TRAIL_RUNNER)
    assert str(info.value).startswith(
        "POST /v1/auth/login/token: the API refused the personal access token (HTTP 40"
    )
    assert "VNTANA_API_TOKEN" in (info.value.hint or "")
    assert client.stats.snapshot().requests == {"POST /v1/auth/login/token": 1}  # not retried
    with pytest.raises(AuthenticationError):  # a refused key is not sent again by every worker
        client.workspaces()
    assert client.stats.snapshot().requests == {"POST /v1/auth/login/token": 1}


def test_a_workspace_the_user_is_not_in_is_an_authentication_error(
    sandbox: EmbeddedSandbox, make_client
) -> None:
    client = make_client(
        role="CLIENT_ORGANIZATION_CONTENT_MANAGER", client_uuid="11111111-2222-4333-8444-555555555555"
    )
    with pytest.raises(AuthenticationError, match="cannot log in to workspace 11111111-"):
        client.login()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on exit: nothing listens there


def test_no_httpx_exception_leaves_the_client() -> None:
    settings = ClientSettings(
        api_url=f"http://127.0.0.1:{_closed_port()}", token="pat", organization_uuid="o"
    )
    policy = RetryPolicy(max_attempts=2, max_elapsed=5, backoff_initial=0.01)
    with VntanaClient(settings, retry_policy=policy) as client:
        with pytest.raises(TransientApiError) as info:
            client.get_product(TRAIL_RUNNER)
        assert isinstance(info.value.__cause__, httpx.ConnectError)
        assert str(info.value).startswith("POST /v1/auth/login/token: cannot connect to 127.0.0.1")
        calls = [
            client.organizations,
            client.workspaces,
            client.search_products,
            client.list_webhooks,
            lambda: client.trigger_renders([TRAIL_RUNNER], {"imageWidth": 1}),
            lambda: client.search_attachments(TRAIL_RUNNER, "RENDER"),
            lambda: client.sign_download_url("a", "RENDER"),
            lambda: client.delete_attachment(TRAIL_RUNNER, "a"),
            lambda: client.create_webhook("http://127.0.0.1:1/h", ["renders.completed"]),
            lambda: client.rotate_webhook_secret("w"),
            lambda: client.delete_webhook("w"),
        ]
        for call in calls:
            with pytest.raises(ReconcilerError) as caught:
                call()
            chain: list[BaseException] = []
            cause: BaseException | None = caught.value
            while cause is not None:
                chain.append(cause)
                cause = cause.__cause__
            # Ours on top, chained (directly, or via the login's error) to httpx's.
            assert any(isinstance(e, httpx.ConnectError) for e in chain[1:3]), chain


def test_secrets_never_reach_repr_errors_or_logs(
    sandbox: EmbeddedSandbox, make_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # including httpx's and httpcore's own loggers
    client = make_client()
    other = make_client()
    client.login()
    other.login()  # revokes client's token: the next call goes through a 401 and a re-login
    assert client.get_product(TRAIL_RUNNER).uuid == TRAIL_RUNNER
    result = client.trigger_renders(
        [TRAIL_RUNNER],
        {
            "imageWidth": 16,
            "imageHeight": 16,
            "imageFormat": "PNG",
            "turntable": {"includeGif": False, "imageCount": 2, "frameRate": 2, "width": 16, "height": 16},
        },
    )
    assert result.accepted == (TRAIL_RUNNER,)
    assert sandbox.wait_idle(timeout=20)
    still = client.search_attachments(TRAIL_RUNNER, "RENDER")[0]
    url = client.sign_download_url(still.uuid, "RENDER")
    client.download(still, "RENDER")
    token = client._session.current_token()[0].get_secret_value()  # peek, only to search for it
    errors: list[BaseException] = []
    for bad in (
        lambda: make_client(token="wrong-" + sandbox.access_token).login(),
        lambda: client.get_product("00000000-0000-4000-8000-000000000000"),
    ):
        with pytest.raises(ReconcilerError) as info:
            bad()
        errors.append(info.value)

    secrets = [sandbox.access_token, token, url.partition("?")[2]]
    texts = [repr(client), str(client.settings), repr(client.settings), caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    texts += [f"{e} {e!r} {getattr(e, 'hint', '')}" for e in errors]
    for secret in secrets:
        assert secret and not any(secret in text for text in texts), "a secret leaked"
    assert "[REDACTED]" in caplog.text  # httpx's URL log line and httpcore's headers were scrubbed
    assert any(
        r.name == "reconciler.client" and "GET /v1/products/" in r.getMessage() for r in caplog.records
    )


def test_parallel_first_calls_share_one_login(sandbox: EmbeddedSandbox, make_client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from reconciler.sandbox.server import FaultConfig

    client = make_client(max_concurrency=4)
    sandbox.set_faults(FaultConfig(latency_seconds=0.05))  # widen the window for a second login
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: client.get_product(TRAIL_RUNNER).uuid, range(8)))
    assert found == [TRAIL_RUNNER] * 8
    requests = client.stats.snapshot().requests
    assert requests["POST /v1/auth/login/token"] == 1 and requests["POST /v1/auth/refresh-token"] == 1
    assert client.stats.snapshot().statuses.get(401, 0) == 0  # nobody's token was revoked by a twin login
