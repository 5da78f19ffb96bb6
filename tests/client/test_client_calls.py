"""Products, renders, attachments, downloads, webhooks and throttling against the sandbox."""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.client import VntanaClient
from reconciler.errors import DownloadError, PermanentApiError, TransientApiError
from reconciler.sandbox.server import EmbeddedSandbox, FaultConfig

# From manifests/footwear.yaml, part of the sandbox's default seed.
TRAIL_RUNNER = "58472097-fec0-516d-8326-f7a5eb192f2c"
CITY_SNEAKER = "5779e683-4265-5456-90c0-3c47df181940"
UNKNOWN = "00000000-0000-4000-8000-000000000000"
SPEC = {
    "imageWidth": 48,
    "imageHeight": 32,
    "imageFormat": "PNG",
    "imageBackground": "#F4F4F4",
    "turntable": {"includeGif": True, "imageCount": 4, "frameRate": 4, "width": 32, "height": 32},
}


def wait_for_status(client: VntanaClient, status: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while client.stats.snapshot().statuses.get(status, 0) == 0:
        assert time.monotonic() < deadline, f"no HTTP {status} seen"
        time.sleep(0.005)


def test_404_is_permanent_and_not_retried(make_client) -> None:
    client = make_client()
    with pytest.raises(PermanentApiError) as info:
        client.get_product(UNKNOWN)
    assert (info.value.status, info.value.codes) == (404, ["PRODUCT_NOT_FOUND"])
    assert str(info.value) == f"GET /v1/products/{UNKNOWN}: HTTP 404 Not Found: PRODUCT_NOT_FOUND"
    assert client.stats.snapshot().requests["GET /v1/products/{uuid}"] == 1


def test_5xx_is_retried_until_the_server_recovers(sandbox: EmbeddedSandbox, make_client) -> None:
    client = make_client()
    client.login()
    sandbox.set_faults(FaultConfig(rate_500=1.0))
    found = {}
    worker = threading.Thread(target=lambda: found.update(p=client.get_product(TRAIL_RUNNER)))
    worker.start()
    wait_for_status(client, 500)
    sandbox.set_faults(FaultConfig())
    worker.join(10)
    assert found["p"].uuid == TRAIL_RUNNER
    stats = client.stats.snapshot()
    assert stats.retries >= 1 and stats.requests["GET /v1/products/{uuid}"] == stats.retries + 1


def test_trigger_is_not_resent_after_a_5xx_unless_asked(sandbox: EmbeddedSandbox, make_client) -> None:
    client = make_client()
    client.login()
    sandbox.set_faults(FaultConfig(rate_500=1.0))
    with pytest.raises(TransientApiError) as info:
        client.trigger_renders([TRAIL_RUNNER], SPEC)
    assert info.value.status == 500
    assert client.stats.snapshot().requests["POST /v1/products/renders"] == 1
    with pytest.raises(TransientApiError):
        client.trigger_renders([TRAIL_RUNNER], SPEC, idempotent_retry=True)
    assert (
        client.stats.snapshot().requests["POST /v1/products/renders"]
        == 1 + client._session.policy.max_attempts
    )


def test_a_429_closes_the_gate_for_every_caller(sandbox: EmbeddedSandbox, make_client) -> None:
    client = make_client()
    client.login()
    sandbox.set_faults(FaultConfig(rate_429=1.0, retry_after_seconds=1))
    first = threading.Thread(target=client.get_product, args=(TRAIL_RUNNER,))
    throttled_at = time.monotonic()
    first.start()
    wait_for_status(client, 429)
    sandbox.set_faults(FaultConfig())
    # A caller that was never told "429" still waits for the Retry-After to pass.
    client.get_product(CITY_SNEAKER)
    assert time.monotonic() - throttled_at >= 0.9
    first.join(10)
    stats = client.stats.snapshot()
    assert stats.statuses[429] == 1 and stats.requests["GET /v1/products/{uuid}"] == 3
    assert stats.retries == 1
    assert stats.gate_closed_seconds >= 1.0
    assert stats.throttled_seconds >= 1.7  # both callers' waits are counted


def test_throttling_slows_a_parallel_run_instead_of_failing_it(sandbox: EmbeddedSandbox, make_client) -> None:
    client = make_client(max_concurrency=3)
    client.login()
    sandbox.set_faults(FaultConfig(rate_429=0.2, retry_after_seconds=1, seed=4))
    products = [TRAIL_RUNNER, CITY_SNEAKER] * 4
    errors: list[BaseException] = []

    def work(uuid: str) -> None:
        try:
            client.get_product(uuid)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in products]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    stats = client.stats.snapshot()
    assert stats.statuses[200] >= len(products) and stats.statuses[429] >= 1
    assert stats.throttled_seconds > 0 and stats.gate_closed_seconds >= 1.0


def test_trigger_partial_success_and_server_time(make_client) -> None:
    client = make_client()
    before = datetime.now(UTC).replace(microsecond=0)
    result = client.trigger_renders([TRAIL_RUNNER, UNKNOWN], SPEC)
    assert result.accepted == (TRAIL_RUNNER,)
    assert result.errors == {UNKNOWN: "PRODUCT_NOT_FOUND"}
    assert before - timedelta(seconds=1) <= result.triggered_at <= datetime.now(UTC)
    # Nothing accepted: the platform answers 404, still with the per-product codes.
    nothing = client.trigger_renders([UNKNOWN], SPEC)
    assert (nothing.accepted, nothing.errors) == ((), {UNKNOWN: "PRODUCT_NOT_FOUND"})


def test_invalid_spec_is_permanent(make_client) -> None:
    with pytest.raises(PermanentApiError) as info:
        make_client().trigger_renders([TRAIL_RUNNER], {**SPEC, "imageFormat": "TIFF"})
    assert info.value.status == 400 and info.value.codes == ["NOT_SUPPORTED_IMAGE_FORMAT"]


@pytest.fixture(scope="module")
def rendered_product(sandbox: EmbeddedSandbox) -> str:
    """CITY_SNEAKER rendered with SPEC (a still, an MP4 and a GIF)."""
    from reconciler.settings import ClientSettings

    with VntanaClient(ClientSettings(api_url=sandbox.url, token=sandbox.access_token)) as client:
        assert client.trigger_renders([CITY_SNEAKER], SPEC).accepted == (CITY_SNEAKER,)
    assert sandbox.wait_idle(timeout=20)
    return CITY_SNEAKER


@pytest.mark.parametrize(("filter_reading", "pages"), [("ignored", 3), ("honoured", 2)])
def test_attachment_search_follows_pages_from_zero_and_filters_here(
    rendered_product: str, make_client, reading, filter_reading: str, pages: int
) -> None:
    reading(entity_type_filter=filter_reading)
    client = make_client()
    turntables = client.search_attachments(rendered_product, "TURNTABLE", page_size=1)
    assert len(turntables) == 2 and len({a.uuid for a in turntables}) == 2
    assert client.stats.snapshot().requests["POST /v1/attachments/search"] == pages
    assert {a.entity_type for a in turntables} == {"TURNTABLE"}
    assert all(a.product_uuid == rendered_product and a.created is not None for a in turntables)
    everything = client.list_attachments(rendered_product)
    assert sorted(a.entity_type for a in everything) == ["RENDER", "TURNTABLE", "TURNTABLE"]


@pytest.mark.parametrize("stamps", ["zoneless", "utc"])
def test_created_times_are_utc_with_or_without_a_zone(
    rendered_product: str, make_client, reading, stamps: str
) -> None:
    reading(timestamps=stamps)
    for att in make_client().list_attachments(rendered_product):
        assert att.created is not None and att.created.utcoffset() == timedelta(0)
        assert att.created <= datetime.now(UTC)


def test_download_hashes_exactly_the_bytes_received(rendered_product: str, make_client) -> None:
    client = make_client()
    still = client.search_attachments(rendered_product, "RENDER")[0]
    sink = io.BytesIO()
    result = client.download(still, "RENDER", sink)
    data = sink.getvalue()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.size, result.content_type, result.resigned) == (len(data), "image/png", 0)
    assert data.startswith(b"\x89PNG")
    assert client.download(still, "RENDER").sha256 == result.sha256  # hash-only, no sink


class _FlipFaultsWhen(logging.Handler):
    """Switches the sandbox's faults off when the client logs a given message."""

    def __init__(self, sandbox: EmbeddedSandbox, needle: str) -> None:
        super().__init__()
        self.sandbox, self.needle = sandbox, needle

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.sandbox.set_faults(FaultConfig())


def test_expired_signed_url_is_signed_again(
    rendered_product: str, sandbox: EmbeddedSandbox, make_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reconciler.client")
    client = make_client(download_route="signed-url")
    still = client.search_attachments(rendered_product, "RENDER")[0]
    sandbox.set_faults(FaultConfig(signed_url_ttl_override=0))  # every URL is born expired
    flip = _FlipFaultsWhen(sandbox, "signing again")
    logger = logging.getLogger("reconciler.client")
    logger.addHandler(flip)
    try:
        result = client.download(still, "RENDER")
    finally:
        logger.removeHandler(flip)
    assert result.resigned == 1
    stats = client.stats.snapshot()
    assert stats.resigned_urls == 1 and stats.requests["POST /v1/storage/download/clients/sign-url"] == 2


def test_url_that_keeps_expiring_is_a_download_error(
    rendered_product: str, sandbox: EmbeddedSandbox, make_client
) -> None:
    client = make_client(download_route="signed-url")
    still = client.search_attachments(rendered_product, "RENDER")[0]
    sandbox.set_faults(FaultConfig(signed_url_ttl_override=0))
    with pytest.raises(DownloadError) as info:
        client.download(still, "RENDER", max_resigns=2)
    assert str(info.value) == (
        f"render {still.name}: the signed URL was refused 3 times (HTTP 403 Forbidden), even freshly signed"
    )


def test_delete_attachment(sandbox: EmbeddedSandbox, make_client) -> None:
    client = make_client()
    assert client.trigger_renders([TRAIL_RUNNER], SPEC).accepted == (TRAIL_RUNNER,)
    assert sandbox.wait_idle(timeout=20)
    gif = next(
        a for a in client.search_attachments(TRAIL_RUNNER, "TURNTABLE") if a.name and a.name.endswith(".gif")
    )
    client.delete_attachment(TRAIL_RUNNER, gif.uuid)
    assert gif.uuid not in {a.uuid for a in client.search_attachments(TRAIL_RUNNER, "TURNTABLE")}
    with pytest.raises(PermanentApiError) as info:
        client.delete_attachment(TRAIL_RUNNER, gif.uuid)
    assert info.value.codes == ["ATTACHMENT_NOT_FOUND"]


@pytest.mark.parametrize(
    ("paths", "clients"), [("guide", "slugs"), ("yaml", "uuids"), ("guide", "uuids"), ("yaml", "slugs")]
)
def test_webhook_lifecycle_under_each_spelling_and_workspace_reference(
    sandbox: EmbeddedSandbox, make_client, reading, paths: str, clients: str
) -> None:
    reading(webhook_paths=paths, webhook_clients=clients)
    client = make_client(client_uuid=sandbox.client_uuid)
    hook = client.create_webhook("http://127.0.0.1:9/hooks/vntana", ["renders.completed", "turntable.failed"])
    assert hook.secret is not None and hook.secret.get_secret_value()
    assert hook.secret.get_secret_value() not in repr(hook)
    assert sorted(hook.event_names) == ["renders.completed", "turntable.failed"]
    assert hook.uuid in {h.uuid for h in client.list_webhooks()}
    assert client.webhook_spelling == paths
    rotated = client.rotate_webhook_secret(hook.uuid)
    assert rotated.secret is not None and rotated.secret.get_secret_value() != hook.secret.get_secret_value()
    client.delete_webhook(hook.uuid)
    assert hook.uuid not in {h.uuid for h in client.list_webhooks()}
    requests = client.stats.snapshot().requests
    create = "POST /v1/webhooks" if paths == "guide" else "POST /v1/webhooks/"
    # One create per workspace reference tried: the slug first, the uuid if the slug is refused.
    assert requests[create] == (1 if clients == "slugs" else 2)


def test_requests_per_second_cap_spaces_the_calls(make_client) -> None:
    client = make_client(requests_per_second=20)
    client.login()
    started = time.monotonic()
    for _ in range(6):
        client.get_product(TRAIL_RUNNER)
    assert time.monotonic() - started >= 0.2  # 6 starts, 50 ms apart after the login's


def test_trigger_is_resent_after_a_503(
    sandbox: EmbeddedSandbox, make_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reconciler.client")
    client = make_client()
    client.login()
    sandbox.set_faults(FaultConfig(rate_503=1.0, retry_after_seconds=0))
    flip = _FlipFaultsWhen(sandbox, "retry in")  # the platform recovers during the backoff
    logger = logging.getLogger("reconciler.client")
    logger.addHandler(flip)
    try:
        result = client.trigger_renders([TRAIL_RUNNER], SPEC)
    finally:
        logger.removeHandler(flip)
    assert result.accepted == (TRAIL_RUNNER,)
    stats = client.stats.snapshot()
    assert stats.statuses[503] == 1 and stats.requests["POST /v1/products/renders"] == 2
