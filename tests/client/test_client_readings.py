"""Where VNTANA's documents disagree, the client works with every reading: wire-level cases.

Served by ``httpx.MockTransport`` where the sandbox cannot produce the answer (a token that is
still valid behind a 403, error objects nested in odd places, a server that repeats a page,
a redirecting webhook route); the sandbox-backed tests cover each reading the sandbox offers.
Only the far end is canned: the client is the real one.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from reconciler.client import RetryPolicy, VntanaClient
from reconciler.client.wire import Attachment
from reconciler.errors import AuthenticationError, DownloadError, PermanentApiError
from reconciler.settings import ClientSettings

FAST = RetryPolicy(max_attempts=4, max_elapsed=10, backoff_initial=0.01, backoff_max=0.05)
SPEC = {
    "imageWidth": 64,
    "imageHeight": 64,
    "imageFormat": "PNG",
    "turntable": {"includeGif": False, "imageCount": 4, "frameRate": 4, "width": 32, "height": 32},
}
ORG, WS = "org-1", "ws-1"
Handler = Callable[[httpx.Request], httpx.Response]


def ok(response: object = None) -> httpx.Response:
    return httpx.Response(
        200, json={"success": True, "errors": [], "response": response if response is not None else {}}
    )


def refused(status: int, *codes: object) -> httpx.Response:
    return httpx.Response(status, json={"success": False, "errors": list(codes), "response": None})


class Platform:
    """A canned platform: the login steps, then ``routes[(method, path)]`` (callables or answers).

    Tokens are numbered per login (``org-N``); ``dead`` holds the tokens the platform refuses,
    with ``dead_status``. Every request is recorded."""

    def __init__(
        self,
        routes: dict[tuple[str, str], Handler],
        *,
        role: str | None = "ORGANIZATION_OWNER",
        workspace_refresh: httpx.Response | None = None,
        dead_status: int = 403,
    ) -> None:
        self.routes = routes
        self.role = role
        self.workspace_refresh = workspace_refresh
        self.dead: set[str] = set()
        self.dead_status = dead_status
        self.logins = 0
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, token = request.url.path, request.headers.get("x-auth-token", "").removeprefix("Bearer ")
        if path == "/v1/auth/login/token":
            self.logins += 1
            return httpx.Response(
                200, headers={"X-AUTH-TOKEN": f"login-{self.logins}"}, json={"success": True}
            )
        if path == "/v1/auth/refresh-token":
            if "clientuuid" in request.headers:
                if self.workspace_refresh is not None:
                    return self.workspace_refresh
                return httpx.Response(
                    200, headers={"X-AUTH-TOKEN": f"ws-{self.logins}"}, json={"success": True}
                )
            return httpx.Response(200, headers={"X-AUTH-TOKEN": f"org-{self.logins}"}, json={"success": True})
        if token in self.dead:
            return refused(self.dead_status, "FORBIDDEN" if self.dead_status == 403 else "UNAUTHORIZED")
        if path == "/v1/organizations":
            entry = {"uuid": ORG, "name": "Org", **({"role": self.role} if self.role else {})}
            return ok({"totalCount": 1, "grid": [entry]})
        handler = self.routes.get((request.method, path))
        if handler is None:
            return refused(404, "NOT_FOUND")
        return handler(request)

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


def client_for(platform: Platform, **settings: object) -> VntanaClient:
    values: dict[str, object] = {
        "api_url": "http://api.test",
        "token": "pat",
        "organization_uuid": ORG,
        **settings,
    }
    return VntanaClient(
        ClientSettings(**values),
        transport=httpx.MockTransport(platform),  # type: ignore[arg-type]
        retry_policy=FAST,
    )


def body(request: httpx.Request) -> dict[str, object]:
    return json.loads(request.content)


# -- login and the workspace step ----------------------------------------------------------------


def test_an_owner_with_a_workspace_configured_skips_the_workspace_step() -> None:
    platform = Platform(
        {("GET", "/v1/products/p1"): lambda r: ok({"uuid": "p1"})},
        workspace_refresh=refused(403, "BAD_CREDENTIALS"),
    )
    client = client_for(platform, client_uuid=WS)
    assert client.get_product("p1").uuid == "p1"
    assert [r.headers.get("clientuuid") for r in platform.calls("/v1/auth/refresh-token")] == [None]
    assert client.login_info.workspace_step == "skipped" and client.login_info.role == "ORGANIZATION_OWNER"


def test_without_a_known_role_bad_credentials_on_the_workspace_step_falls_back_to_the_organization_token() -> (
    None
):
    platform = Platform(
        {("GET", "/v1/products/p1"): lambda r: ok({"uuid": "p1"})},
        role=None,
        workspace_refresh=refused(403, "BAD_CREDENTIALS"),
    )
    client = client_for(platform, client_uuid=WS)
    assert client.get_product("p1").uuid == "p1"
    assert platform.calls("/v1/products/p1")[0].headers["x-auth-token"] == "Bearer org-1"
    assert client.login_info.workspace_step == "refused"


def test_a_workspace_level_user_gets_a_workspace_token() -> None:
    platform = Platform(
        {("GET", "/v1/products/p1"): lambda r: ok({"uuid": "p1"})}, role="CLIENT_ORGANIZATION_CONTENT_MANAGER"
    )
    client = client_for(platform, client_uuid=WS)
    client.get_product("p1")
    assert platform.calls("/v1/products/p1")[0].headers["x-auth-token"] == "Bearer ws-1"
    assert platform.calls("/v1/auth/refresh-token")[1].headers["clientuuid"] == WS
    assert client.login_info.workspace_step == "used"


def test_another_refusal_of_the_workspace_step_is_an_authentication_error() -> None:
    platform = Platform(
        {}, role="CLIENT_ORGANIZATION_ADMIN", workspace_refresh=refused(403, "INVALID_CLIENT_UUID")
    )
    with pytest.raises(AuthenticationError) as info:
        client_for(platform, client_uuid=WS).login()
    assert str(info.value) == (
        f"POST /v1/auth/refresh-token: cannot log in to workspace {WS} of organization "
        f"{ORG} (HTTP 403 Forbidden: INVALID_CLIENT_UUID)"
    )


# -- dead tokens: 401, and the 403 readings ------------------------------------------------------


def _revoking(platform: Platform, answer: httpx.Response) -> Handler:
    """Answers ``answer`` once for the current token, marking it dead; later tokens succeed."""

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.headers["x-auth-token"].removeprefix("Bearer ")
        if token == "org-1":
            platform.dead.add(token)
            return answer
        return ok({"uuid": "p1"})

    return handler


@pytest.mark.parametrize(
    ("answer", "probe"),
    [
        (refused(401, "UNAUTHORIZED"), False),  # 401: log in again at once
        (refused(403, "BAD_CREDENTIALS"), False),  # a token code under 403: at once as well
        (refused(403, "FORBIDDEN"), True),  # ambiguous: the token is checked first
        (httpx.Response(403), True),  # a bare 403, no envelope
    ],
    ids=["401", "403-bad-credentials", "403-forbidden", "403-bare"],
)
def test_a_dead_token_is_replaced_by_one_fresh_login(answer: httpx.Response, probe: bool) -> None:
    platform = Platform({})
    platform.routes[("GET", "/v1/products/p1")] = _revoking(platform, answer)
    client = client_for(platform)
    assert client.get_product("p1").uuid == "p1"
    assert platform.logins == 2 and client.stats.snapshot().relogins == 1
    checks = [r for r in platform.calls("/v1/organizations") if r.headers["x-auth-token"] == "Bearer org-1"]
    assert len(checks) == (1 if probe else 0)


def test_a_403_with_a_valid_token_means_not_allowed_and_costs_no_login() -> None:
    platform = Platform(
        {("POST", "/v1/products/renders"): lambda r: refused(403, "FORBIDDEN")},
        role="CLIENT_ORGANIZATION_CONTENT_MANAGER",
    )
    client = client_for(platform)
    with pytest.raises(PermanentApiError) as info:
        client.trigger_renders(["p1"], SPEC)
    assert not isinstance(info.value, AuthenticationError)
    assert str(info.value) == "POST /v1/products/renders: HTTP 403 Forbidden: FORBIDDEN"
    assert info.value.hint == (
        "the token is valid, so this is a refusal: the user's role "
        "(CLIENT_ORGANIZATION_CONTENT_MANAGER) or scope may not do this"
    )
    assert platform.logins == 1 and len(platform.calls("/v1/products/renders")) == 1


@pytest.mark.parametrize("code", ["UNAUTHORIZED_IP", "SUBSCRIPTION_SUSPENDED", "CLIENT_BLOCKED"])
def test_a_403_that_names_another_cause_is_permanent_without_a_check(code: str) -> None:
    platform = Platform({("GET", "/v1/products/p1"): lambda r: refused(403, code)})
    client = client_for(platform)
    with pytest.raises(PermanentApiError) as info:
        client.get_product("p1")
    assert info.value.codes == [code] and platform.logins == 1
    assert len(platform.calls("/v1/organizations")) == 1  # the login's own, no token check


def test_a_token_refused_again_after_the_fresh_login_is_an_authentication_error() -> None:
    platform = Platform({("GET", "/v1/products/p1"): lambda r: refused(403, "BAD_CREDENTIALS")})
    with pytest.raises(AuthenticationError) as info:
        client_for(platform).get_product("p1")
    assert str(info.value) == (
        "GET /v1/products/p1: still refused (HTTP 403 Forbidden: BAD_CREDENTIALS) after a fresh login"
    )
    assert platform.logins == 2


# -- throttling under any status -----------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 400, 403, 409])
def test_api_rate_limit_exceeded_is_throttling_under_any_status(status: int) -> None:
    answers = iter([refused(status, "API_RATE_LIMIT_EXCEEDED"), ok({"uuids": ["p1"], "errors": None})])
    platform = Platform({("POST", "/v1/products/renders"): lambda r: next(answers)})
    client = client_for(platform)
    result = client.trigger_renders(["p1"], SPEC)  # refused before any work: safe to send again
    assert result.accepted == ("p1",)
    stats = client.stats.snapshot()
    assert stats.retries == 1 and stats.gate_closed_seconds >= 1.0 and stats.relogins == 0
    assert platform.logins == 1


# -- error entries as objects ----------------------------------------------------------------------


def test_error_entries_may_be_objects_in_the_envelope_and_in_the_trigger_answer() -> None:
    def renders(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "success": True,
                "errors": [],
                "response": {
                    "uuids": ["p1"],
                    "errors": {
                        "p2": {"code": "PRODUCT_NOT_FOUND", "message": "no such product"},
                        "p3": [{"code": "INVALID_PRODUCT", "message": "draft"}],
                    },
                },
            },
        )

    platform = Platform(
        {
            ("POST", "/v1/products/renders"): renders,
            ("GET", "/v1/products/p9"): lambda r: refused(
                404, {"code": "PRODUCT_NOT_FOUND", "message": "gone"}
            ),
        }
    )
    client = client_for(platform)
    result = client.trigger_renders(["p1", "p2", "p3"], SPEC)
    assert result.accepted == ("p1",)
    assert result.errors == {"p2": "PRODUCT_NOT_FOUND", "p3": "INVALID_PRODUCT"}
    with pytest.raises(PermanentApiError) as info:
        client.get_product("p9")
    assert info.value.codes == ["PRODUCT_NOT_FOUND"]
    assert str(info.value) == "GET /v1/products/p9: HTTP 404 Not Found: PRODUCT_NOT_FOUND"


# -- paging and entityType ---------------------------------------------------------------------

FILES = [
    {
        "uuid": f"a{i}",
        "name": n,
        "entityType": t,
        "blobId": f"a{i}.bin",
        "productUuid": "p1",
        "created": "2023-08-28T19:03:53.198",
    }
    for i, (n, t) in enumerate(
        [
            ("still.png", "RENDER"),
            ("turn.mp4", "TURNTABLE"),
            ("qrCode_p1.png", "PRODUCT"),
            ("spec.pdf", "PRODUCT"),
            ("turn.gif", "TURNTABLE"),
        ]
    )
]


def _attachments(pages: list[dict[str, object]]) -> Handler:
    """Pages from 0, ``size`` honoured; the entityType filter ignored (VNTANA's client's reading)."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent = body(request)
        pages.append(sent)
        page, size = int(sent["page"]), int(sent["size"])  # type: ignore[call-overload]
        if page < 0:
            return refused(400, "INVALID_PAGE")
        return ok({"totalCount": len(FILES), "grid": FILES[page * size : (page + 1) * size]})

    return handler


def test_attachments_page_from_zero_and_the_entity_type_is_filtered_here() -> None:
    sent: list[dict[str, object]] = []
    client = client_for(Platform({("POST", "/v1/attachments/search"): _attachments(sent)}))
    renders = client.search_attachments("p1", "RENDER", page_size=2)
    assert [a.uuid for a in renders] == ["a0"]
    assert [(s["page"], s["entityType"]) for s in sent] == [(0, "RENDER"), (1, "RENDER"), (2, "RENDER")]
    everything = client.list_attachments("p1", page_size=10)
    assert [a.entity_type for a in everything] == ["RENDER", "TURNTABLE", "PRODUCT", "PRODUCT", "TURNTABLE"]
    assert "entityType" not in sent[-1] and sent[-1]["page"] == 0


def test_zoneless_timestamps_are_read_as_utc() -> None:
    client = client_for(Platform({("POST", "/v1/attachments/search"): _attachments([])}))
    created = client.list_attachments("p1")[0].created
    assert created == datetime(2023, 8, 28, 19, 3, 53, 198000, tzinfo=UTC)


def test_a_server_that_repeats_a_page_is_an_error_not_a_short_list() -> None:
    platform = Platform(
        {("POST", "/v1/attachments/search"): lambda r: ok({"totalCount": 5, "grid": FILES[:2]})}
    )
    with pytest.raises(PermanentApiError) as info:
        client_for(platform).list_attachments("p1", page_size=2)
    assert "page 1 repeated earlier results (2 of totalCount 5 collected)" in str(info.value)


def test_product_search_pages_from_one_names_a_workspace_and_never_returns_drafts() -> None:
    sent: list[httpx.Request] = []

    def search(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        page = body(request)["page"]
        grid = {
            1: [{"uuid": "p1", "status": "LIVE_PUBLIC"}, {"uuid": "p2", "status": "DRAFT"}],
            2: [{"uuid": "p3", "status": "LIVE_INTERNAL"}],
        }.get(page, [])  # type: ignore[call-overload]
        return ok({"totalCount": 3, "grid": grid})

    platform = Platform(
        {
            ("POST", "/v1/products/clients/search"): search,
            ("GET", "/v1/clients/client-organizations"): lambda r: ok(
                {"totalCount": 1, "grid": [{"uuid": WS, "slug": "main"}]}
            ),
        }
    )
    found = client_for(platform).search_products(page_size=2)
    assert [p.uuid for p in found] == ["p1", "p3"]
    assert [body(r)["page"] for r in sent] == [1, 2]
    assert all(r.url.params["clientUuid"] == WS for r in sent)


# -- webhooks ------------------------------------------------------------------------------------

CATALOGUE = {
    "totalCount": 2,
    "grid": [
        {
            "category": "renders",
            "uuid": "c1",
            "events": [
                {"name": "renders.completed", "description": "Render completed", "uuid": "e1"},
                {"name": "renders.failed", "description": "Render failed", "uuid": "e2"},
            ],
        },
        {
            "category": "turntable",
            "uuid": "c2",
            "events": [{"name": "turntable.completed", "description": "Turntable completed", "uuid": "e3"}],
        },
    ],
}
WORKSPACES = {"totalCount": 1, "grid": [{"uuid": WS, "slug": "main-shop", "name": "Main"}]}


def _hook(request: httpx.Request) -> httpx.Response:
    return ok({"uuid": "w1", "secret": "s3cr3t", "url": body(request)["url"]})


def test_webhooks_send_catalogue_objects_and_workspace_slugs_on_the_guides_paths() -> None:
    platform = Platform(
        {
            ("GET", "/v1/webhooks/events"): lambda r: ok(CATALOGUE),
            ("GET", "/v1/clients/client-organizations"): lambda r: ok(WORKSPACES),
            ("POST", "/v1/webhooks"): _hook,
            ("GET", f"/v1/webhooks/organizations/{ORG}"): lambda r: ok({"totalCount": 0, "grid": []}),
        }
    )
    client = client_for(platform, client_uuid=WS)
    hook = client.create_webhook("http://hooks.test/h", ["renders.completed", "turntable.completed"])
    assert hook.uuid == "w1"
    sent = body(platform.calls("/v1/webhooks")[0])
    assert sent["events"] == [
        {"name": "renders.completed", "description": "Render completed", "uuid": "e1", "category": "renders"},
        {
            "name": "turntable.completed",
            "description": "Turntable completed",
            "uuid": "e3",
            "category": "turntable",
        },
    ]
    assert sent["clients"] == ["main-shop"]
    assert client.list_webhooks() == [] and client.webhook_spelling == "guide"


def test_webhooks_fall_back_to_the_yaml_paths_and_to_workspace_uuids() -> None:
    def create(request: httpx.Request) -> httpx.Response:
        clients = body(request)["clients"]
        return _hook(request) if clients == [WS] else refused(400, "INVALID_CLIENT_UUID")

    platform = Platform(
        {
            ("GET", "/v1/webhooks/events/"): lambda r: ok(CATALOGUE),
            ("GET", "/v1/clients/client-organizations"): lambda r: ok(WORKSPACES),
            ("POST", "/v1/webhooks"): lambda r: httpx.Response(307, headers={"Location": "/v1/webhooks/"}),
            ("POST", "/v1/webhooks/"): create,
            ("GET", f"/v1/webhooks/organization/{ORG}"): lambda r: ok({"totalCount": 0, "grid": []}),
        }
    )
    client = client_for(platform, client_uuid=WS)
    assert client.create_webhook("http://hooks.test/h", ["renders.failed"]).uuid == "w1"
    assert [body(r)["clients"] for r in platform.calls("/v1/webhooks/")] == [["main-shop"], [WS]]
    assert client.list_webhooks() == []
    assert client.webhook_spelling == "yaml"
    # Remembered: the guide's list path is not asked again.
    assert platform.calls(f"/v1/webhooks/organizations/{ORG}") == []


def test_an_event_missing_from_the_catalogue_is_refused_naming_what_is_offered() -> None:
    from reconciler.errors import ConfigError

    platform = Platform({("GET", "/v1/webhooks/events"): lambda r: ok(CATALOGUE)})
    with pytest.raises(ConfigError) as info:
        client_for(platform).create_webhook("http://hooks.test/h", ["product.completed"])
    assert str(info.value) == "the platform's webhook event catalogue has no product.completed"
    assert platform.calls("/v1/webhooks") == []


# -- downloads: two routes -----------------------------------------------------------------------

DATA = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
STILL = Attachment(uuid="a0", name="still.png", entity_type="RENDER", blob_id="b0.png", product_uuid="p1")


def _comments(request: httpx.Request) -> httpx.Response:
    assert request.url.params["clientUuid"] == WS and request.headers["x-auth-token"] == "Bearer org-1"
    if request.headers.get("range"):
        return httpx.Response(
            206,
            content=DATA[:16],
            headers={"Content-Range": f"bytes 0-15/{len(DATA)}", "Content-Type": "image/png"},
        )
    return httpx.Response(200, content=DATA, headers={"Content-Type": "image/png"})


def _signing(request: httpx.Request) -> httpx.Response:
    sent = body(request)
    assert request.headers["origin"] == "https://platform.vntana.com"
    assert sent == {"entityUuid": "a0", "storeType": "RENDER"}
    return ok({"location": "http://storage.test/b0?sig=x"})


def _storage(request: httpx.Request) -> httpx.Response:
    assert "x-auth-token" not in request.headers
    return httpx.Response(200, content=DATA, headers={"Content-Type": "image/png"})


def _routes(comments: Handler | None, signing: Handler | None) -> dict[tuple[str, str], Handler]:
    routes: dict[tuple[str, str], Handler] = {
        ("GET", "/v1/products/p1"): lambda r: ok({"uuid": "p1", "clientUuid": WS}),
        ("GET", "/b0"): _storage,
    }
    if comments:
        routes[("GET", "/v1/comments/images/b0.png")] = comments
    if signing:
        routes[("POST", "/v1/storage/download/clients/sign-url")] = signing
    return routes


def test_auto_downloads_by_the_comments_route_when_it_works() -> None:
    platform = Platform(_routes(_comments, _signing))
    client = client_for(platform)
    sink = io.BytesIO()
    result = client.download(STILL, "RENDER", sink)
    assert (result.route, result.sha256, sink.getvalue()) == (
        "comments",
        hashlib.sha256(DATA).hexdigest(),
        DATA,
    )
    assert platform.calls("/v1/storage/download/clients/sign-url") == []
    assert client.download_route == "comments"


def test_auto_falls_back_to_the_signed_url_and_remembers_it_for_the_run() -> None:
    platform = Platform(_routes(None, _signing))  # the comments route answers 404 NOT_FOUND
    client = client_for(platform)
    assert client.download(STILL).route == "signed-url"
    assert client.download(STILL).route == "signed-url"
    assert len(platform.calls("/v1/comments/images/b0.png")) == 1  # tried once, then remembered
    assert client.download_route == "signed-url"


def test_a_comments_route_that_answers_json_is_not_taken_for_the_file() -> None:
    platform = Platform(_routes(lambda r: ok({"totalCount": 0, "grid": []}), _signing))
    assert client_for(platform).download(STILL).route == "signed-url"


def test_a_configured_route_that_does_not_work_is_a_download_error_naming_it() -> None:
    platform = Platform(_routes(None, _signing))
    with pytest.raises(DownloadError) as info:
        client_for(platform, download_route="comments").download(STILL)
    assert (
        str(info.value)
        == "render still.png: no download route serves it (comments: HTTP 404 Not Found: NOT_FOUND)"
    )
    assert "reconciler doctor" in (info.value.hint or "")
    assert platform.calls("/v1/storage/download/clients/sign-url") == []


def test_no_route_at_all_names_both_answers() -> None:
    platform = Platform(_routes(None, lambda r: refused(400, "NOT_SUPPORTED_STORE_TYPE")))
    with pytest.raises(DownloadError) as info:
        client_for(platform).download(STILL)
    assert str(info.value) == (
        "render still.png: no download route serves it (comments: HTTP 404 Not Found: "
        "NOT_FOUND; signed-url: sign-url refused (HTTP 400 Bad Request: "
        "NOT_SUPPORTED_STORE_TYPE))"
    )


def test_the_origin_setting_is_sent_with_sign_url() -> None:
    def signing(request: httpx.Request) -> httpx.Response:
        return (
            ok({"location": "http://storage.test/b0?sig=x"})
            if request.headers.get("origin") == "https://studio.example"
            else refused(400, "MISSING_ORIGIN")
        )

    platform = Platform(_routes(None, signing))
    client = client_for(platform, origin="https://studio.example", download_route="signed-url")
    assert client.download(STILL).sha256 == hashlib.sha256(DATA).hexdigest()


def test_a_probe_reads_a_few_bytes_with_range_on_each_route() -> None:
    platform = Platform(_routes(_comments, _signing))
    client = client_for(platform)
    probe = client.probe_download(STILL, "comments")
    assert probe.ok and probe.status == 206 and probe.head == DATA[:16]
    assert platform.calls("/v1/comments/images/b0.png")[0].headers["range"] == "bytes=0-15"
    signed = client.probe_download(STILL, "signed-url")
    assert signed.ok and signed.head == DATA[:16] and "ignores Range" in signed.detail
    assert client.stats.snapshot().bytes_downloaded == 0


@pytest.mark.parametrize("dead_status", [403, 401])
def test_a_token_revoked_during_a_comments_download_gets_one_fresh_login(dead_status: int) -> None:
    platform = Platform({}, dead_status=dead_status)

    def comments(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=DATA, headers={"Content-Type": "image/png"})

    platform.routes.update(_routes(comments, None))
    platform.routes[("GET", "/v1/comments/images/b0.png")] = comments
    client = client_for(platform, client_uuid=WS)
    client.login()
    platform.dead.add("org-1")  # another login with the same key revoked it
    result = client.download(STILL, "RENDER")
    assert (result.route, result.sha256) == ("comments", hashlib.sha256(DATA).hexdigest())
    assert platform.logins == 2 and client.stats.snapshot().relogins == 1
    fetches = platform.calls("/v1/comments/images/b0.png")
    assert [r.headers["x-auth-token"] for r in fetches] == ["Bearer org-1", "Bearer org-2"]
