"""The client under each reading the sandbox offers (``reconciler.sandbox.readings``), over real HTTP.

Each test switches the one reading it is about; the conftest puts the defaults back.
"""

from __future__ import annotations

import hashlib
import io
import logging

import pytest

from reconciler.client import VntanaClient
from reconciler.errors import DownloadError, PermanentApiError
from reconciler.sandbox.server import EmbeddedSandbox, FaultConfig
from reconciler.settings import ClientSettings
from tests.client.test_client_calls import _FlipFaultsWhen
from tests.e2e.uploads import PDF, PNG, upload

CHAIR = "6079b22e-4327-5d30-ba4c-90855571b56d"
TOTE = "4fbd7c2c-09fe-565f-b3df-8deb6abfbd24"
UNKNOWN = "00000000-0000-4000-8000-000000000000"
SPEC = {
    "imageWidth": 24,
    "imageHeight": 16,
    "imageFormat": "PNG",
    "turntable": {"includeGif": True, "imageCount": 2, "frameRate": 2, "width": 16, "height": 16},
}


@pytest.fixture(scope="module")
def decorated(sandbox: EmbeddedSandbox) -> dict[str, str]:
    """CHAIR rendered, then given a PDF, a QR code and a still uploaded by hand to its Renders tab."""
    with VntanaClient(ClientSettings(api_url=sandbox.url, token=sandbox.access_token)) as client:
        assert client.trigger_renders([CHAIR], SPEC).accepted == (CHAIR,)
    assert sandbox.wait_idle(timeout=20)
    return {
        "pdf": upload(sandbox, CHAIR, "spec-sheet.pdf", PDF)["uuid"],
        "qr": upload(sandbox, CHAIR, f"qrCode_{CHAIR}.png", PNG)["uuid"],
        "hand": upload(sandbox, CHAIR, "hand-made.png", PNG, store_type="RENDER")["uuid"],
    }


@pytest.mark.parametrize("filter_reading", ["ignored", "honoured"])
def test_uploads_keep_their_entity_type_and_a_render_search_holds_only_renders(
    decorated: dict[str, str], make_client, reading, filter_reading: str
) -> None:
    reading(entity_type_filter=filter_reading)
    client = make_client()
    kinds = {a.uuid: a.entity_type for a in client.list_attachments(CHAIR)}
    assert (kinds[decorated["pdf"]], kinds[decorated["qr"]], kinds[decorated["hand"]]) == (
        "PRODUCT",
        "PRODUCT",
        "RENDER",
    )
    renders = client.search_attachments(CHAIR, "RENDER")
    assert {a.entity_type for a in renders} == {"RENDER"} and decorated["hand"] in {a.uuid for a in renders}
    assert decorated["pdf"] not in {a.uuid for a in client.search_attachments(CHAIR, "TURNTABLE")}


@pytest.mark.parametrize(
    ("served", "route"),
    [
        ("both", "comments"),
        ("comments", "comments"),
        ("signed-url", "signed-url"),
        ("signed-url-origin", "signed-url"),
    ],
)
def test_auto_finds_the_route_that_serves_renders(
    decorated: dict[str, str], make_client, reading, served: str, route: str
) -> None:
    reading(download=served)
    client = make_client()
    still = next(a for a in client.search_attachments(CHAIR, "RENDER") if a.uuid != decorated["hand"])
    sink = io.BytesIO()
    result = client.download(still, "RENDER", sink)
    assert result.route == route and client.download_route == route
    assert result.sha256 == hashlib.sha256(sink.getvalue()).hexdigest() and sink.getvalue().startswith(
        b"\x89PNG"
    )
    gif = next(a for a in client.search_attachments(CHAIR, "TURNTABLE") if (a.name or "").endswith(".gif"))
    assert client.download(gif, "TURNTABLE").route == route
    # Remembered: the route that failed is not asked again for the second file.
    tried = client.stats.snapshot().requests
    other = (
        "GET /v1/comments/images/{blobId}"
        if route == "signed-url"
        else "POST /v1/storage/download/clients/sign-url"
    )
    assert tried.get(other, 0) <= 1


@pytest.mark.parametrize(("served", "setting"), [("comments", "signed-url"), ("signed-url", "comments")])
def test_a_configured_route_the_platform_does_not_serve_fails_naming_it(
    decorated: dict[str, str], make_client, reading, served: str, setting: str
) -> None:
    reading(download=served)
    client = make_client(download_route=setting)
    still = client.search_attachments(CHAIR, "RENDER")[0]
    with pytest.raises(DownloadError) as info:
        client.download(still, "RENDER")
    assert f"no download route serves it ({setting}: " in str(info.value)


def test_without_origin_the_signed_url_route_is_refused_where_the_platform_demands_it(
    decorated: dict[str, str], sandbox: EmbeddedSandbox, make_client, reading
) -> None:
    reading(download="signed-url-origin")
    client = make_client(download_route="signed-url")
    still = client.search_attachments(CHAIR, "RENDER")[0]
    assert client.download(still, "RENDER").route == "signed-url"  # the origin setting is sent
    with pytest.raises(PermanentApiError) as info:  # what a client without it would meet
        client._session.request(
            "POST",
            "/v1/storage/download/clients/sign-url",
            endpoint="sign-url",
            json={"entityUuid": still.uuid, "storeType": "RENDER"},
        )
    assert info.value.codes == ["MISSING_ORIGIN"]


@pytest.mark.parametrize("status", [429, 403, 400, 409])
def test_throttling_under_each_status_is_waited_out_and_the_trigger_resent(
    sandbox: EmbeddedSandbox, make_client, reading, status: int
) -> None:
    reading(throttle_status=status)
    client = make_client()
    client.login()
    sandbox.set_faults(FaultConfig(rate_429=1.0, retry_after_seconds=0))
    flip = _FlipFaultsWhen(sandbox, "retry in")  # the platform stops throttling during the backoff
    logger = logging.getLogger("reconciler.client")
    logger.addHandler(flip)
    logger.setLevel(logging.INFO)
    try:
        result = client.trigger_renders([TOTE], SPEC)
    finally:
        logger.removeHandler(flip)
    assert result.accepted == (TOTE,)
    stats = client.stats.snapshot()
    assert stats.statuses[status] == 1 and stats.requests["POST /v1/products/renders"] == 2
    # VNTANA's code comes without Retry-After: everyone pauses 1 s; the 429 here says 0 s.
    assert stats.relogins == 0 and stats.gate_closed_seconds >= (0.0 if status == 429 else 1.0)
    assert sandbox.wait_idle(timeout=20)


@pytest.mark.parametrize("entries", ["strings", "objects"])
def test_error_codes_are_read_as_strings_or_objects(make_client, reading, entries: str) -> None:
    reading(error_entries=entries)
    client = make_client()
    result = client.trigger_renders([UNKNOWN], SPEC)
    assert (result.accepted, result.errors) == ((), {UNKNOWN: "PRODUCT_NOT_FOUND"})
    with pytest.raises(PermanentApiError) as info:
        client.get_product(UNKNOWN)
    assert info.value.codes == ["PRODUCT_NOT_FOUND"]
    with pytest.raises(PermanentApiError) as info:
        client.trigger_renders([TOTE], {**SPEC, "imageFormat": "TIFF"})
    assert info.value.codes == ["NOT_SUPPORTED_IMAGE_FORMAT"]
