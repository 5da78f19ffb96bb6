"""Wire-level edge cases the sandbox cannot produce, served by ``httpx.MockTransport``.

Only the far end is faked (a handful of canned HTTP answers); the client code under test is
the real one. Everything that the sandbox can produce is tested against it instead
(``test_client_sandbox.py``).
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from reconciler.client import RetryPolicy, VntanaClient
from reconciler.client.errors import parse_retry_after
from reconciler.client.wire import Attachment
from reconciler.errors import AuthenticationError, DownloadError, PermanentApiError, TransientApiError
from reconciler.settings import ClientSettings

FAST = RetryPolicy(max_attempts=4, max_elapsed=10, backoff_initial=0.01, backoff_max=0.05)
SPEC = {
    "imageWidth": 64,
    "imageHeight": 64,
    "imageFormat": "PNG",
    "turntable": {"includeGif": False, "imageCount": 4, "frameRate": 4, "width": 32, "height": 32},
}
Handler = Callable[[httpx.Request], httpx.Response]


def envelope(response: object = None, *, success: bool = True, errors: object = ()) -> dict[str, object]:
    return {
        "success": success,
        "errors": list(errors) if not isinstance(errors, dict) else errors,
        "response": response if response is not None else {},
    }


class FakeApi:
    """Logins always succeed (the user is ``role`` in org-1); every other path goes to ``route``.
    Records every request."""

    def __init__(self, route: Handler, role: str | None = "ORGANIZATION_OWNER") -> None:
        self.route = route
        self.role = role
        self.requests: list[httpx.Request] = []
        self.logins = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v1/auth/login/token":
            self.logins += 1
            return httpx.Response(200, headers={"X-AUTH-TOKEN": f"step1-{self.logins}"}, json=envelope())
        if request.url.path == "/v1/auth/refresh-token":
            return httpx.Response(200, headers={"X-AUTH-TOKEN": f"org-{self.logins}"}, json=envelope())
        if request.url.path == "/v1/organizations" and request.headers.get("x-auth-token", "").startswith(
            "Bearer step1"
        ):
            entry = {
                "uuid": "org-1",
                "name": "Org",
                "slug": "org",
                **({"role": self.role} if self.role else {}),
            }
            return httpx.Response(200, json=envelope({"totalCount": 1, "grid": [entry]}))
        return self.route(request)

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


def make_client(
    route: Handler,
    sleeps: list[float] | None = None,
    *,
    role: str | None = "ORGANIZATION_OWNER",
    **settings: object,
) -> tuple[VntanaClient, FakeApi]:
    api = FakeApi(route, role)

    def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        time.sleep(seconds)

    values: dict[str, object] = {
        "api_url": "http://api.test",
        "token": "pat",
        "organization_uuid": "org-1",
        **settings,
    }
    client = VntanaClient(
        ClientSettings(**values),
        transport=httpx.MockTransport(api),  # type: ignore[arg-type]
        retry_policy=FAST,
        sleep=sleep,
    )
    return client, api


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=5), usegmt=True), now=now.timestamp())
        == 5.0
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now.timestamp())
        == 0.0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_retry_after_as_http_date_is_honoured() -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                headers={
                    "Retry-After": format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
                },
                json=envelope(success=False, errors=["API_RATE_LIMIT_EXCEEDED"]),
            ),
            httpx.Response(200, json=envelope({"uuid": "p1", "name": "Shoe"})),
        ]
    )
    sleeps: list[float] = []
    client, api = make_client(lambda r: next(answers), sleeps)
    started = time.monotonic()
    assert client.get_product("p1").name == "Shoe"
    # The HTTP date has whole-second resolution: the wait is between 1 and 2 seconds.
    assert 1.0 <= time.monotonic() - started < 3.0
    assert len(api.calls("/v1/products/p1")) == 2
    stats = client.stats.snapshot()
    assert stats.retries == 1 and stats.statuses[429] == 1 and stats.throttled_seconds >= 1.0


def test_body_that_is_not_an_envelope_is_a_permanent_error_not_retried() -> None:
    client, api = make_client(lambda r: httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(PermanentApiError) as info:
        client.get_product("p1")
    assert str(info.value) == "GET /v1/products/p1: unexpected answer: not a JSON envelope"
    assert len(api.calls("/v1/products/p1")) == 1


def test_payload_of_the_wrong_shape_is_wrapped() -> None:
    client, _ = make_client(lambda r: httpx.Response(200, json=envelope({"totalCount": 1, "grid": "nope"})))
    with pytest.raises(
        PermanentApiError, match="unexpected answer: grid: Input should be a valid list"
    ) as info:
        client.organizations()
    assert type(info.value.__cause__).__name__ == "ValidationError"  # chained, never leaked bare


def test_second_401_after_a_fresh_login_is_an_authentication_error() -> None:
    client, api = make_client(
        lambda r: httpx.Response(401, json=envelope(success=False, errors=["TOKEN_REVOKED"]))
    )
    with pytest.raises(AuthenticationError) as info:
        client.get_product("p1")
    assert str(info.value) == (
        "GET /v1/products/p1: still refused (HTTP 401 Unauthorized: TOKEN_REVOKED) after a fresh login"
    )
    assert "one process per key" in (info.value.hint or "") and "key per process" not in (
        info.value.hint or ""
    )
    assert api.logins == 2 and len(api.calls("/v1/products/p1")) == 2
    assert client.stats.snapshot().relogins == 1


def test_trigger_is_resent_after_a_connect_failure() -> None:
    attempts = iter([httpx.ConnectError("connection refused"), None])

    def route(request: httpx.Request) -> httpx.Response:
        failure = next(attempts)
        if failure is not None:
            raise failure
        return httpx.Response(
            200,
            json=envelope({"uuids": ["p1"], "errors": None}),
            headers={"Date": "Tue, 01 Dec 2026 10:00:00 GMT"},
        )

    client, api = make_client(route)
    result = client.trigger_renders(["p1"], SPEC)
    assert result.accepted == ("p1",)
    assert result.triggered_at == datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    assert len(api.calls("/v1/products/renders")) == 2


def test_trigger_is_not_resent_after_a_read_timeout() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client, api = make_client(route)
    with pytest.raises(TransientApiError) as info:
        client.trigger_renders(["p1"], SPEC)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert len(api.calls("/v1/products/renders")) == 1
    # The same failure on a read is retried until the attempts run out.
    with pytest.raises(TransientApiError):
        client.get_product("p1")
    assert len(api.calls("/v1/products/p1")) == FAST.max_attempts


def _signed(route_bytes: Handler) -> Handler:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/storage/download/clients/sign-url":
            return httpx.Response(200, json=envelope({"location": "http://storage.test/blob?sig=s3cr3t"}))
        assert "x-auth-token" not in request.headers  # signed URLs are fetched bare
        assert request.headers["content-type"] == "application/octet-stream"
        return route_bytes(request)

    return route


ATTACHMENT = Attachment(uuid="a1", name="still.png", entity_type="RENDER")


def test_download_shorter_than_content_length_is_a_download_error() -> None:
    client, _ = make_client(
        _signed(lambda r: httpx.Response(200, headers={"Content-Length": "100"}, content=b"x" * 50))
    )
    with pytest.raises(DownloadError) as info:
        client.download(ATTACHMENT, "RENDER", io.BytesIO())
    assert str(info.value) == (
        "render still.png: received 50 bytes but Content-Length said 100 "
        "(http://storage.test/blob?[REDACTED])"
    )


class _DroppingStream(httpx.SyncByteStream):
    """Sends ``data[:cut]`` and then fails the way a dropped connection does."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut = data, cut

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: self.cut]
        raise httpx.ReadError("connection reset by peer")


def test_dropped_download_resumes_with_range_and_hashes_the_whole_file() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    ranges: list[str | None] = []

    def serve(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("range"))
        if request.headers.get("range") is None:
            headers = {
                "Content-Length": str(len(data)),
                "Accept-Ranges": "bytes",
                "Content-Type": "image/png",
            }
            return httpx.Response(200, headers=headers, stream=_DroppingStream(data, 300_000))
        start = int(request.headers["range"].removeprefix("bytes=").rstrip("-"))
        headers = {
            "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
            "Content-Length": str(len(data) - start),
            "Content-Type": "image/png",
        }
        return httpx.Response(206, headers=headers, content=data[start:])

    client, _ = make_client(_signed(serve))
    sink = io.BytesIO()
    result = client.download(ATTACHMENT, "RENDER", sink)
    assert ranges == [None, "bytes=300000-"]
    assert sink.getvalue() == data
    assert (result.sha256, result.size, result.content_type) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
        "image/png",
    )


def test_dropped_download_without_range_support_restarts_from_scratch() -> None:
    data = b"0123456789" * 1000
    answers = iter([_DroppingStream(data, 4000), None])

    def serve(request: httpx.Request) -> httpx.Response:
        assert request.headers.get("range") is None
        stream = next(answers)
        if stream is not None:
            return httpx.Response(200, headers={"Content-Length": str(len(data))}, stream=stream)
        return httpx.Response(200, content=data)

    client, _ = make_client(_signed(serve))
    sink = io.BytesIO()
    result = client.download(ATTACHMENT, "RENDER", sink)
    assert sink.getvalue() == data and result.sha256 == hashlib.sha256(data).hexdigest()
