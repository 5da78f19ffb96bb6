"""Attachments search and delete; the comments route and signed URLs (Origin, signature, expiry, ranges)."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from reconciler.sandbox.readings import Readings
from reconciler.sandbox.server import EmbeddedSandbox

from .helpers import CHAIR, ORIGIN, SHOE, Api


@pytest.fixture(scope="module")
def rendered_once(sandbox: EmbeddedSandbox) -> str:
    """SHOE rendered once on the module's shared sandbox (tests below only read it)."""
    api = Api(sandbox)
    api.login()
    api.rendered(SHOE)
    api.close()
    return SHOE


@pytest.fixture
def rendered(api: Api, rendered_once: str) -> Api:
    return api


def test_search_attachments(rendered: Api, validate, response_schema) -> None:
    answer = rendered.post("/v1/attachments/search", json={"productUuid": SHOE, "page": 0, "size": 10})
    assert answer.status_code == 200
    validate(response_schema("/v1/attachments/search", "post", 200), answer.json())
    validate("AttachmentGridResponseModel", answer.json()["response"])  # the grid the prose documents
    grid = answer.json()["response"]["grid"]
    assert answer.json()["response"]["totalCount"] == 3
    assert sorted(a["entityType"] for a in grid) == ["RENDER", "TURNTABLE", "TURNTABLE"]
    for a in grid:
        assert a["productUuid"] == SHOE and a["type"] == "PRODUCT" and a["entityUuid"]
        # upload-attachments.md: created 2023-08-28T19:03:53.198 (no zone), blobId <uuid>.<ext>
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", a["created"]), a["created"]
        assert re.fullmatch(r"[0-9a-f-]{36}\.(png|mp4|gif)", a["blobId"]), a["blobId"]
    # the MP4 and GIF of one job share the job as their entity
    assert len({a["entityUuid"] for a in grid if a["entityType"] == "TURNTABLE"}) == 1


def test_entity_type_is_ignored_by_default_and_honoured_on_demand(sandbox, rendered: Api) -> None:
    body = {"productUuid": SHOE, "entityType": "TURNTABLE", "page": 0, "size": 10}
    ignored = rendered.post("/v1/attachments/search", json=body).json()["response"]
    assert ignored["totalCount"] == 3  # VNTANA's client: the API does not filter by entityType
    assert rendered.post("/v1/attachments/search", json={**body, "entityType": "PHOTO"}).status_code == 200
    sandbox.set_readings(Readings(entity_type_filter="honoured"))
    try:
        honoured = rendered.post("/v1/attachments/search", json=body).json()["response"]
        assert honoured["totalCount"] == 2 and {a["entityType"] for a in honoured["grid"]} == {"TURNTABLE"}
        bad = rendered.post("/v1/attachments/search", json={**body, "entityType": "PHOTO"})
        assert (bad.status_code, bad.json()["errors"]) == (400, ["NOT_SUPPORTED_FOR_ENTITY_TYPE"])
    finally:
        sandbox.set_readings(Readings())


def test_search_attachments_pages_from_zero(rendered: Api) -> None:
    seen = []
    for page in (0, 1, 2, 3):
        answer = rendered.post("/v1/attachments/search", json={"productUuid": SHOE, "page": page, "size": 1})
        assert answer.json()["response"]["totalCount"] == 3
        seen += [a["uuid"] for a in answer.json()["response"]["grid"]]
    assert len(seen) == len(set(seen)) == 3
    # the first page is 0: asking for page 1 with a size that holds everything gets nothing
    assert (
        rendered.post("/v1/attachments/search", json={"productUuid": SHOE, "page": 1, "size": 10}).json()[
            "response"
        ]["grid"]
        == []
    )
    desc = rendered.post(
        "/v1/attachments/search", json={"productUuid": SHOE, "page": 0, "size": 10, "sortDirection": "DESC"}
    )
    asc = rendered.post(
        "/v1/attachments/search", json={"productUuid": SHOE, "page": 0, "size": 10, "sortDirection": "ASC"}
    )
    assert [a["uuid"] for a in desc.json()["response"]["grid"]] == [
        a["uuid"] for a in asc.json()["response"]["grid"]
    ][::-1]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"page": 0, "size": 10}, 422, "MISSING_PRODUCT_UUID"),
        ({"productUuid": SHOE, "size": 10}, 422, "MISSING_PAGE"),
        ({"productUuid": SHOE, "page": 0}, 422, "MISSING_SIZE"),
        ({"productUuid": SHOE, "page": -1, "size": 10}, 400, "INVALID_PAGE"),
        ({"productUuid": SHOE, "page": 0, "size": 101}, 400, "INVALID_SIZE"),
        ({"productUuid": SHOE, "page": 0, "size": 0}, 400, "INVALID_SIZE"),
        ({"productUuid": SHOE, "page": 0, "size": 10, "sortDirection": "UP"}, 400, "INVALID_SORT_ORDER"),
        ({"productUuid": "nope", "page": 0, "size": 10}, 404, "PRODUCT_NOT_FOUND"),
    ],
)
def test_search_attachments_errors(api: Api, validate, response_schema, body, status, code) -> None:
    answer = api.post("/v1/attachments/search", json=body)
    assert (answer.status_code, answer.json()["errors"]) == (status, [code])
    if status != 400:  # the YAML documents no 400 for this operation
        validate(response_schema("/v1/attachments/search", "post", status), answer.json())


def test_delete_attachment(api: Api, validate, response_schema) -> None:
    rendered = api
    rendered.rendered(CHAIR)  # its own product: the other tests share CHAIR's attachments
    gif = next(a for a in rendered.attachments(CHAIR) if a["name"].endswith(".gif"))
    url = rendered.sign(gif)
    answer = rendered.request("DELETE", f"/v1/attachments/{CHAIR}/{gif['uuid']}")
    assert answer.status_code == 200
    validate(response_schema("/v1/attachments/{productUuid}/{uuid}", "delete", 200), answer.json())
    assert answer.json()["response"] == {"uuid": gif["uuid"]}
    assert gif["uuid"] not in {a["uuid"] for a in rendered.attachments(CHAIR)}
    assert rendered.fetch(url).status_code == 404  # the bytes are gone too
    assert (
        rendered.get(
            f"/v1/comments/images/{gif['blobId']}", params={"clientUuid": rendered.sandbox.client_uuid}
        ).status_code
        == 404
    )
    again = rendered.request("DELETE", f"/v1/attachments/{CHAIR}/{gif['uuid']}")
    assert (again.status_code, again.json()["errors"]) == (404, ["ATTACHMENT_NOT_FOUND"])
    validate(response_schema("/v1/attachments/{productUuid}/{uuid}", "delete", 404), again.json())
    wrong_product = rendered.request("DELETE", f"/v1/attachments/nope/{gif['uuid']}")
    assert (wrong_product.status_code, wrong_product.json()["errors"]) == (404, ["PRODUCT_NOT_FOUND"])


def test_sign_url_and_download(rendered: Api, validate) -> None:
    still = rendered.attachments(SHOE, "RENDER")[0]
    answer = rendered.post(
        "/v1/storage/download/clients/sign-url",
        headers={"Origin": ORIGIN},
        json={"entityUuid": still["uuid"], "storeType": "RENDER", "format": "PNG"},
    )
    assert answer.status_code == 200
    validate("GCloudStorageResourceCreateSignUrlSessionResponse", answer.json())
    location = answer.json()["response"]["location"]
    assert location.startswith(f"{rendered.sandbox.storage_url}/sandbox-storage/")  # the bucket's host
    assert answer.json()["response"]["blobId"] == still["blobId"]
    download = rendered.fetch(location)  # no token: the URL is the credential
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    assert int(download.headers["content-length"]) == len(download.content) > 0
    assert download.headers["accept-ranges"] == "bytes"
    head = rendered.fetch(location, "HEAD")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(download.content)
    assert head.content == b""
    # Y:3833: "sending the content-type = application/octet-stream header is mandatory"
    bare = rendered.fetch(location, octet=False)
    assert (bare.status_code, bare.json()["errors"]) == (403, ["MISSING_CONTENT_TYPE"])


def test_comments_route_serves_the_bytes(rendered: Api) -> None:
    still = rendered.attachments(SHOE, "RENDER")[0]
    path = f"/v1/comments/images/{still['blobId']}"
    answer = rendered.get(path, params={"clientUuid": rendered.sandbox.client_uuid})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert answer.content == rendered.download(still).content
    part = rendered.get(
        path, params={"clientUuid": rendered.sandbox.client_uuid}, headers={"Range": "bytes=0-7"}
    )
    assert part.status_code == 206 and part.content == answer.content[:8]
    missing = rendered.get(path)
    assert (missing.status_code, missing.json()["errors"]) == (422, ["MISSING_CLIENT_UUID"])
    archive = rendered.get("/v1/clients/client-organizations").json()["response"]["grid"][1]["uuid"]
    wrong = rendered.get(path, params={"clientUuid": archive})
    assert (wrong.status_code, wrong.json()["errors"]) == (404, ["BLOB_NOT_FOUND"])
    foreign = rendered.get(path, params={"clientUuid": "someone-elses"})
    assert (foreign.status_code, foreign.json()["errors"]) == (403, ["FORBIDDEN"])
    assert (
        rendered.get(path, token="", params={"clientUuid": rendered.sandbox.client_uuid}).status_code == 403
    )


@pytest.mark.parametrize(
    "reading, comments, signed, needs_origin",
    [
        ("both", True, True, True),
        ("comments", True, False, False),
        ("signed-url", False, True, False),
        ("signed-url-origin", False, True, True),
    ],
)
def test_download_routes_per_reading(sandbox, rendered: Api, reading, comments, signed, needs_origin) -> None:
    still = rendered.attachments(SHOE, "RENDER")[0]
    sandbox.set_readings(Readings(download=reading))
    try:
        route = rendered.get(
            f"/v1/comments/images/{still['blobId']}", params={"clientUuid": sandbox.client_uuid}
        )
        assert route.status_code == (200 if comments else 404)
        if not comments:
            assert route.json()["errors"] == ["NOT_FOUND"]
        body = {"entityUuid": still["uuid"], "storeType": "RENDER"}
        with_origin = rendered.post(
            "/v1/storage/download/clients/sign-url", headers={"Origin": ORIGIN}, json=body
        )
        without = rendered.post("/v1/storage/download/clients/sign-url", json=body)
        if not signed:
            for answer in (with_origin, without):
                assert (answer.status_code, answer.json()["errors"]) == (400, ["NOT_SUPPORTED_STORE_TYPE"])
            return
        assert with_origin.status_code == 200
        assert rendered.fetch(with_origin.json()["response"]["location"]).status_code == 200
        if needs_origin:
            assert (without.status_code, without.json()["errors"]) == (400, ["MISSING_ORIGIN"])
        else:
            assert without.status_code == 200
    finally:
        sandbox.set_readings(Readings())


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"storeType": "RENDER"}, 400, "MISSING_ENTITY_UUID"),
        ({"entityUuid": "x"}, 400, "MISSING_STORE_TYPE"),
        ({"entityUuid": "x", "storeType": "ASSET"}, 400, "NOT_SUPPORTED_STORE_TYPE"),
        ({"entityUuid": "x", "storeType": "RENDER"}, 404, "BLOB_NOT_FOUND"),
    ],
)
def test_sign_url_errors(api: Api, validate, body, status, code) -> None:
    answer = api.post("/v1/storage/download/clients/sign-url", headers={"Origin": ORIGIN}, json=body)
    assert (answer.status_code, answer.json()["errors"]) == (status, [code])
    validate("GCloudStorageResourceCreateSignUrlSessionResponse", answer.json())


def test_sign_url_checks_store_type_and_format(rendered: Api) -> None:
    still = rendered.attachments(SHOE, "RENDER")[0]
    origin = {"Origin": ORIGIN}
    wrong_type = rendered.post(
        "/v1/storage/download/clients/sign-url",
        headers=origin,
        json={"entityUuid": still["uuid"], "storeType": "TURNTABLE"},
    )
    assert (wrong_type.status_code, wrong_type.json()["errors"]) == (400, ["INVALID_STORE_TYPE"])
    as_attachment = rendered.post(
        "/v1/storage/download/clients/sign-url",
        headers=origin,
        json={"entityUuid": still["uuid"], "storeType": "ATTACHMENT"},
    )
    assert (as_attachment.status_code, as_attachment.json()["errors"]) == (400, ["INVALID_STORE_TYPE"])
    wrong_fmt = rendered.post(
        "/v1/storage/download/clients/sign-url",
        headers=origin,
        json={"entityUuid": still["uuid"], "storeType": "RENDER", "format": "MP4"},
    )
    assert (wrong_fmt.status_code, wrong_fmt.json()["errors"]) == (400, ["INVALID_RESOURCE_FORMAT"])
    assert (
        rendered.post(
            "/v1/storage/download/clients/sign-url",
            token="",
            headers=origin,
            json={"entityUuid": still["uuid"], "storeType": "RENDER"},
        ).status_code
        == 403
    )


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())))


def test_download_refuses_a_tampered_url(rendered: Api) -> None:
    url = rendered.sign(rendered.attachments(SHOE, "RENDER")[0])
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    for bad in (
        _with_query(url, signature="0" * 64),
        _with_query(url, expires=str(int(expires) + 100000)),
        _with_query(url, expires="soon"),
    ):
        answer = rendered.fetch(bad)
        assert answer.status_code == 403
        assert answer.json()["errors"] == ["INVALID_SIGNATURE"]


def test_download_refuses_an_expired_url(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(signed_url_ttl_seconds=0.2)
    api = api_factory(sb)
    api.login()
    api.rendered(SHOE)
    url = api.sign(api.attachments(SHOE, "RENDER")[0])
    assert api.fetch(url).status_code == 200
    time.sleep(0.3)
    late = api.fetch(url)
    assert (late.status_code, late.json()["errors"]) == (403, ["EXPIRED_SIGNED_URL"])


@pytest.mark.parametrize("listener", [True, False])
def test_signed_urls_point_at_the_storage_listener_or_the_api_and_serve_the_same_bytes(
    sandbox_factory, api_factory, listener: bool
) -> None:
    sb = sandbox_factory(storage_listener=listener)
    api = api_factory(sb)
    api.login()
    api.rendered(SHOE)
    url = api.sign(api.attachments(SHOE, "RENDER")[0])
    assert url.startswith(f"{sb.storage_url}/sandbox-storage/")
    assert (sb.storage_url != sb.url) is listener
    whole = api.fetch(url)
    assert whole.status_code == 200 and whole.content[:8] == b"\x89PNG\r\n\x1a\n"
    part = api.fetch(url, headers={"Range": "bytes=1-3"})
    assert (part.status_code, part.content) == (206, b"PNG")
    head = api.fetch(url, "HEAD")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(whole.content))
    counts = sb.request_counts()
    assert counts.get("GET /sandbox-storage/" + url.split("/sandbox-storage/")[1].split("?")[0]) == 2
    elsewhere = api.fetch(f"{sb.storage_url}/not-storage")
    assert (elsewhere.status_code, elsewhere.json()["errors"]) == (404, ["NOT_FOUND"])
    still = api.attachments(SHOE, "RENDER")[0]
    assert api.request("DELETE", f"/v1/attachments/{SHOE}/{still['uuid']}").status_code == 200
    gone = api.fetch(url)
    assert (gone.status_code, gone.json()["errors"]) == (404, ["BLOB_NOT_FOUND"])


def test_range_requests(rendered: Api) -> None:
    mp4 = next(a for a in rendered.attachments(SHOE, "TURNTABLE") if a["name"].endswith(".mp4"))
    url = rendered.sign(mp4)
    whole = rendered.fetch(url).content
    size = len(whole)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=10-": (10, size - 1),
        "bytes=-5": (size - 5, size - 1),
        f"bytes=5-{size + 100}": (5, size - 1),
    }
    for header, (first, last) in cases.items():
        part = rendered.fetch(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == whole[first : last + 1]
        assert int(part.headers["content-length"]) == last - first + 1
        assert part.headers["content-type"] == "video/mp4"
    chunks = b"".join(
        rendered.fetch(url, headers={"Range": f"bytes={i}-{i + 99}"}).content for i in range(0, size, 100)
    )
    assert chunks == whole
    for unsatisfiable in (f"bytes={size}-", "bytes=-0"):
        answer = rendered.fetch(url, headers={"Range": unsatisfiable})
        assert answer.status_code == 416
        assert answer.headers["content-range"] == f"bytes */{size}"
    for ignored in ("bytes=0-1,4-5", "items=0-1", "bytes=9-3"):
        answer = rendered.fetch(url, headers={"Range": ignored})
        assert answer.status_code == 200 and answer.content == whole
