"""Uploads: a hand-made render, a PDF and a QR code on a product, and what a new render does to them."""

from __future__ import annotations

import io
import re
import time
import uuid as uuidlib
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from reconciler.sandbox.readings import Readings

from .helpers import CHAIR, ORIGIN, SHOE, Api

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _png(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, "PNG")
    return out.getvalue()


def _session(api: Api, **changes):
    body = {
        "clientUuid": api.sandbox.client_uuid,
        "parentEntityUuid": SHOE,
        "parentEntityType": "PRODUCT",
        "storeType": "ATTACHMENT",
        "resourceSettings": {
            "contentType": "application/octet-stream",
            "originalName": "spec.pdf",
            "originalSize": len(PDF),
        },
    }
    for key, value in changes.items():
        if key in ("originalName", "originalSize", "contentType"):
            body["resourceSettings"][key] = value  # type: ignore[index]
        elif value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return api.post("/v1/storage/upload/clients/resource/sign-url", json=body)


def test_a_pdf_a_qr_code_and_hand_made_renders_land_on_the_product(fresh_api: Api) -> None:
    api = fresh_api
    qr_name = f"qrCode_{uuidlib.uuid4()}.png"
    pdf = api.upload(SHOE, "spec.pdf", PDF)
    qr = api.upload(SHOE, qr_name, _png((0, 0, 0)))
    still = api.upload(SHOE, "studio-shot.png", _png(), store_type="RENDER")
    video = api.upload(SHOE, "spin.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\0" * 32, store_type="RENDER")
    assert (pdf["entityType"], qr["entityType"], still["entityType"], video["entityType"]) == (
        "PRODUCT",
        "PRODUCT",
        "RENDER",
        "TURNTABLE",
    )
    assert (pdf["name"], qr["name"]) == ("spec.pdf", qr_name)
    for a in (pdf, qr, still, video):
        assert re.fullmatch(r"[0-9a-f-]{36}\.(pdf|png|mp4)", a["blobId"])
        assert a["productUuid"] == SHOE and a["entityUuid"] == SHOE
    got = api.get(f"/v1/comments/images/{pdf['blobId']}", params={"clientUuid": api.sandbox.client_uuid})
    assert (got.content, got.headers["content-type"]) == (PDF, "application/pdf")
    assert api.download(qr).headers["content-type"] == "image/png"
    assert api.download(still).content == _png()


@pytest.mark.parametrize("replaced", [False, True])
def test_a_new_render_and_the_files_a_user_put_there(sandbox_factory, api_factory, replaced: bool) -> None:
    sb = sandbox_factory(readings=Readings(manual_renders_replaced=replaced))
    api = api_factory(sb)
    api.login()
    pdf = api.upload(SHOE, "spec.pdf", PDF)
    qr = api.upload(SHOE, f"qrCode_{uuidlib.uuid4()}.png", _png((0, 0, 0)))
    manual = api.upload(SHOE, "studio-shot.png", _png(), store_type="RENDER")
    api.rendered(SHOE)
    first = {a["uuid"]: a for a in api.attachments(SHOE)}
    api.rendered(SHOE, turntable={"includeGif": False})
    after = {a["uuid"]: a for a in api.attachments(SHOE)}
    assert pdf["uuid"] in after and qr["uuid"] in after  # never touched by a render
    assert (manual["uuid"] in after) is (not replaced)
    rendered_first = {u for u, a in first.items() if a["entityUuid"] != SHOE}
    assert not rendered_first & set(after)  # every earlier render result was replaced
    kinds = sorted(a["entityType"] for a in after.values() if a["entityUuid"] != SHOE)
    assert kinds == ["RENDER", "TURNTABLE"]


def test_entity_type_ignored_returns_every_kind(fresh_api: Api) -> None:
    fresh_api.upload(SHOE, "spec.pdf", PDF)
    fresh_api.rendered(SHOE)
    grid = fresh_api.post(
        "/v1/attachments/search", json={"productUuid": SHOE, "entityType": "RENDER", "page": 0, "size": 100}
    ).json()["response"]["grid"]
    assert sorted(a["entityType"] for a in grid) == ["PRODUCT", "RENDER", "TURNTABLE", "TURNTABLE"]


def test_resumable_start_then_put_and_a_repeated_put(fresh_api: Api) -> None:
    answer = _session(fresh_api)
    assert answer.status_code == 200
    session = answer.json()["response"]
    assert set(session) == {"requestUuid", "location", "blobId"} and session["blobId"].endswith(".pdf")
    start = fresh_api.http.post(session["location"], headers={"x-goog-resumable": "start"})
    assert start.status_code == 201
    uri = start.headers["location"]
    assert fresh_api.http.put(uri, content=PDF).status_code == 200
    again = fresh_api.http.put(uri, content=b"other bytes")
    assert again.status_code == 200  # a finished upload: nothing changes
    pdfs = [a for a in fresh_api.attachments(SHOE) if a["blobId"] == session["blobId"]]
    assert len(pdfs) == 1
    assert fresh_api.download(pdfs[0]).content == PDF
    assert fresh_api.http.post(session["location"]).status_code == 400  # a POST that starts nothing


@pytest.mark.parametrize(
    "changes, status, code",
    [
        ({"storeType": None}, 400, "MISSING_STORE_TYPE"),
        ({"storeType": "TURNTABLE"}, 400, "NOT_SUPPORTED_STORE_TYPE"),
        ({"clientUuid": None}, 400, "MISSING_CLIENT_UUID"),
        ({"clientUuid": "someone-elses"}, 403, "FORBIDDEN"),
        ({"parentEntityUuid": None}, 400, "MISSING_PARENT_ENTITY_UUID"),
        ({"parentEntityType": None}, 400, "MISSING_PARENT_ENTITY_TYPE"),
        ({"parentEntityType": "COMMENT"}, 400, "INVALID_ENTITY_TYPE"),
        ({"resourceSettings": "x"}, 400, "MISSING_RESOURCE_SETTINGS"),
        ({"originalName": ""}, 400, "MISSING_RESOURCE_ORIGINAL_NAME"),
        ({"originalName": "README"}, 400, "MISSING_RESOURCE_ORIGINAL_NAME_EXTENSION"),
        ({"originalSize": None}, 400, "MISSING_RESOURCE_ORIGINAL_SIZE"),
        ({"originalSize": 0}, 400, "INVALID_RESOURCE_SIZE"),
        ({"originalSize": 3 * 1024**3 + 1}, 400, "INVALID_RESOURCE_SIZE"),
        ({"contentType": ""}, 400, "MISSING_RESOURCE_CONTENT_TYPE"),
        ({"storeType": "RENDER", "originalName": "shot.webp"}, 400, "INVALID_RESOURCE_EXTENSION"),
        ({"parentEntityUuid": "a0000000-0000-0000-0000-00000000dead"}, 404, "PRODUCT_NOT_FOUND"),
        (
            {"clientUuid": "a983026e-cb31-58d8-8ec4-6753670e6cfd"},
            404,
            "PRODUCT_NOT_FOUND",
        ),  # not the product's workspace
    ],
)
def test_upload_sign_url_errors(api: Api, changes, status, code) -> None:
    answer = _session(api, **changes)
    assert (answer.status_code, answer.json()["errors"]) == (status, [code])


def test_upload_urls_are_signed_short_lived_and_bounded(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(upload_url_ttl_seconds=0.3, max_upload_bytes=100)
    api = api_factory(sb)
    api.login()
    location = _session(api).json()["response"]["location"]
    query = parse_qs(urlsplit(location).query)
    tampered = location.replace(f"store={query['store'][0]}", "store=ASSET")
    assert (
        api.http.put(tampered, content=PDF).status_code,
        api.http.put(tampered, content=PDF).json()["errors"],
    ) == (403, ["INVALID_SIGNATURE"])
    too_big = api.http.put(location, content=b"x" * 101)
    assert (too_big.status_code, too_big.json()["errors"]) == (400, ["INVALID_RESOURCE_SIZE"])
    assert [a for a in api.attachments(SHOE) if a["entityType"] == "PRODUCT"] == []  # nothing half-uploaded
    assert not [p for p in (sb.data_dir / "blobs").iterdir() if p.name.startswith(".upload-")]
    time.sleep(0.35)
    late = api.http.put(location, content=PDF)
    assert (late.status_code, late.json()["errors"]) == (403, ["EXPIRED_SIGNED_URL"])


def test_viewers_cannot_upload(api_factory, sandbox) -> None:
    viewer = api_factory(sandbox)
    viewer.login(role="CLIENT_ORGANIZATION_VIEWER")
    answer = _session(viewer)
    assert (answer.status_code, answer.json()["errors"]) == (403, ["FORBIDDEN"])


def test_a_deleted_attachment_can_be_signed_no_more(fresh_api: Api) -> None:
    pdf = fresh_api.upload(CHAIR, "spec.pdf", PDF)
    assert fresh_api.request("DELETE", f"/v1/attachments/{CHAIR}/{pdf['uuid']}").status_code == 200
    answer = fresh_api.post(
        "/v1/storage/download/clients/sign-url",
        headers={"Origin": ORIGIN},
        json={"entityUuid": pdf["uuid"], "storeType": "ATTACHMENT"},
    )
    assert (answer.status_code, answer.json()["errors"]) == (404, ["BLOB_NOT_FOUND"])
