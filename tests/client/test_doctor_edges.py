"""``reconciler doctor`` on platforms the sandbox cannot be: a page base of 1, a server that
repeats pages, a skewed clock, no working download route. ``httpx.MockTransport`` serves the
far end; doctor and the client are the real ones. The sandbox-backed tests (tests/e2e) cover
every reading the sandbox offers and the exit codes through the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from reconciler.doctor import Status, diagnose
from reconciler.views.doctor import render_text
from tests.client.test_client_readings import (
    DATA,
    ORG,
    WS,
    Handler,
    Platform,
    body,
    client_for,
    ok,
    refused,
)

PRODUCT = "p1"
FILES = [
    {"uuid": "a0", "name": "still.png", "entityType": "RENDER", "blobId": "b0.png", "productUuid": PRODUCT},
    {"uuid": "a1", "name": "turn.mp4", "entityType": "TURNTABLE", "blobId": "b1.mp4", "productUuid": PRODUCT},
    {
        "uuid": "a2",
        "name": "qrCode_p1.png",
        "entityType": "PRODUCT",
        "blobId": "b2.png",
        "productUuid": PRODUCT,
    },
]


def attachments(first_page: int = 0, honour_filter: bool = False) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        sent = body(request)
        page, size = int(sent["page"]), int(sent["size"])  # type: ignore[call-overload]
        files = [
            f
            for f in FILES
            if not honour_filter or "entityType" not in sent or f["entityType"] == sent["entityType"]
        ]
        if page < first_page:
            return refused(400, "INVALID_PAGE")
        start = (page - first_page) * size
        return ok({"totalCount": len(files), "grid": files[start : start + size]})

    return handler


class Dated(Platform):
    """Every answer carries a ``Date`` that is ``skew`` seconds off this machine's clock."""

    skew = 0.0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        response.headers["Date"] = format_datetime(
            datetime.now(UTC) + timedelta(seconds=self.skew), usegmt=True
        )
        return response


def platform(**overrides: Handler) -> Dated:
    routes: dict[tuple[str, str], Handler] = {
        ("GET", f"/v1/products/{PRODUCT}"): lambda r: ok(
            {"uuid": PRODUCT, "name": "Shoe", "clientUuid": WS, "status": "LIVE_PUBLIC"}
        ),
        ("GET", "/v1/clients/client-organizations"): lambda r: ok(
            {"totalCount": 1, "grid": [{"uuid": WS, "slug": "s"}]}
        ),
        ("POST", "/v1/attachments/search"): attachments(),
        ("GET", "/v1/comments/images/b0.png"): lambda r: httpx.Response(
            206, content=DATA[:16], headers={"Content-Type": "image/png"}
        ),
        ("GET", f"/v1/webhooks/organizations/{ORG}"): lambda r: ok({"totalCount": 0, "grid": []}),
        ("GET", "/v1/webhooks/events"): lambda r: ok(
            {
                "totalCount": 1,
                "grid": [
                    {
                        "category": "renders",
                        "events": [
                            {"name": n, "uuid": n}
                            for n in (
                                "renders.completed",
                                "renders.failed",
                                "turntable.completed",
                                "turntable.failed",
                            )
                        ],
                    }
                ],
            }
        ),
    }
    for key, handler in overrides.items():
        method, _, path = key.partition(" ")
        routes[(method, path)] = handler
    return Dated(routes)


def statuses(report) -> dict[str, Status]:  # type: ignore[no-untyped-def]
    return {c.name: c.status for c in report.checks}


def test_a_platform_as_documented_has_no_problems() -> None:
    fake = platform()
    client = client_for(fake)
    report = diagnose(client, client.settings, PRODUCT)
    assert all(s is Status.OK for s in statuses(report).values()), render_text(report)
    assert report.settings == {
        "organization_uuid": ORG,
        "download_route": "comments",
        "webhook_paths": "guide",
    }
    by_name = {c.name: c for c in report.checks}
    assert by_name["entity type"].found.endswith("ignored: a RENDER search also returned PRODUCT, TURNTABLE")
    assert by_name["download"].found.startswith("comments: works, PNG bytes, HTTP 206")
    assert all(r.method in ("GET", "POST") for r in fake.requests)
    assert not [
        r
        for r in fake.requests
        if r.url.path in ("/v1/products/renders", "/v1/webhooks") and r.method == "POST"
    ], "doctor never triggers and never creates"


def test_pages_from_one_is_a_problem_the_client_cannot_work_around() -> None:
    client = client_for(platform(**{"POST /v1/attachments/search": attachments(first_page=1)}))
    report = diagnose(client, client.settings, PRODUCT)
    assert statuses(report)["pages"] is Status.FAIL
    assert [c.name for c in report.problems] == ["pages"]
    assert statuses(report)["download"] is Status.SKIP
    assert "page 0 of the attachment search is refused" in report.problems[0].found


def test_a_server_that_ignores_the_page_number_is_a_problem() -> None:
    repeat: Handler = lambda r: ok({"totalCount": 3, "grid": FILES[:1]})  # noqa: E731
    client = client_for(platform(**{"POST /v1/attachments/search": repeat}))
    report = diagnose(client, client.settings, PRODUCT)
    assert report.problems[0].found == (
        "pages 0 and 1 hold the same attachment: the server does not page as documented"
    )


def test_an_honoured_filter_is_reported_and_changes_nothing() -> None:
    client = client_for(platform(**{"POST /v1/attachments/search": attachments(honour_filter=True)}))
    check = next(c for c in diagnose(client, client.settings, PRODUCT).checks if c.name == "entity type")
    assert (check.status, check.detail) == (Status.OK, {"filter": "honoured"})


def test_no_download_route_is_a_problem_naming_both_answers() -> None:
    fake = platform(
        **{
            "GET /v1/comments/images/b0.png": lambda r: refused(404, "NOT_FOUND"),
            "POST /v1/storage/download/clients/sign-url": lambda r: refused(400, "MISSING_ORIGIN"),
        }
    )
    client = client_for(fake)
    report = diagnose(client, client.settings, PRODUCT)
    [problem] = report.problems
    assert problem.name == "download"
    assert problem.found == (
        "no route serves still.png: comments: no: HTTP 404 Not Found: NOT_FOUND; signed-url: "
        "no: sign-url refused (HTTP 400 Bad Request: MISSING_ORIGIN)"
    )
    assert "download_route" not in report.settings


def test_a_configured_route_that_does_not_work_is_a_problem_and_the_working_one_is_offered() -> None:
    fake = platform(
        **{
            "GET /v1/comments/images/b0.png": lambda r: refused(404, "NOT_FOUND"),
            "POST /v1/storage/download/clients/sign-url": lambda r: ok({"location": "http://s.test/b0"}),
            "GET /b0": lambda r: httpx.Response(200, content=DATA),
        }
    )
    client = client_for(fake, download_route="comments")
    report = diagnose(client, client.settings, PRODUCT)
    [problem] = report.problems
    assert problem.action == "set download_route: signed-url (--save does)"
    assert report.settings["download_route"] == "signed-url"


def test_clock_skew_is_measured_from_the_date_header() -> None:
    fake = platform()
    client = client_for(fake)
    for skew, expected in ((0, Status.OK), (30, Status.WARN), (-600, Status.FAIL)):
        fake.skew = skew
        check = next(c for c in diagnose(client, client.settings, None).checks if c.name == "clock")
        assert check.status is expected, (skew, check)
    assert "behind this machine's" in check.found


def test_without_a_product_the_product_checks_are_warnings_not_problems() -> None:
    client = client_for(platform())
    report = diagnose(client, client.settings, None)
    assert statuses(report)["product"] is Status.WARN and not report.problems


def test_a_refused_login_fails_and_skips_the_rest() -> None:
    class Refusing(Platform):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/auth/login/token":
                return refused(403, "BAD_CREDENTIALS")
            return super().__call__(request)

    client = client_for(Refusing({}))
    report = diagnose(client, client.settings, PRODUCT)
    assert [c.status for c in report.checks] == [Status.FAIL] + [Status.SKIP] * 6
    assert report.problems[0].found == (
        "POST /v1/auth/login/token: the API refused the personal access token "
        "(HTTP 403 Forbidden: BAD_CREDENTIALS)"
    )
