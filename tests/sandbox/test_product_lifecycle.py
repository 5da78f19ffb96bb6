"""Products made, changed and deleted through the API; model download, thumbnails, pipelines."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from .helpers import SHOE, Api

DRAFT = "8477515d-0e98-5953-8c6b-8dae0cb74e1a"  # Travel Mug, a draft of the seed
GLB = b"glTF\x02\x00\x00\x00" + b"\x00" * 56


def _pipeline(api: Api) -> str:
    answer = api.get("/v1/pipelines")
    assert answer.status_code == 200
    pipelines = answer.json()["response"]["pipelines"]
    assert pipelines and all(set(p) >= {"uuid", "name"} for p in pipelines)
    return str(pipelines[0]["uuid"])


def _create(api: Api, **extra) -> str:
    answer = api.post(
        "/v1/products",
        json={
            "name": "Desk Lamp",
            "clientUuid": api.sandbox.client_uuid,
            "pipelineUuid": _pipeline(api),
            **extra,
        },
    )
    assert answer.status_code == 200, answer.text
    created = answer.json()["response"]
    assert set(created) == {"uuid", "name", "productSessionUuId"} and created["name"] == "Desk Lamp"
    return str(created["uuid"])


def _search(api: Api, **body):
    return api.post(
        f"/v1/products/clients/{api.sandbox.client_uuid}/search",
        json={"page": 1, "size": 100, "organizationUuid": api.sandbox.organization_uuid, **body},
    )


def _upload_model(api: Api, product: str, data: bytes = GLB) -> None:
    answer = api.post(
        "/v1/storage/upload/clients/products/asset/sign-url",
        json={
            "clientUuid": api.sandbox.client_uuid,
            "productUuid": product,
            "resourceSettings": {
                "contentType": "application/octet-stream",
                "originalName": "lamp.glb",
                "originalSize": len(data),
            },
        },
    )
    assert answer.status_code == 200, answer.text
    assert api.http.put(answer.json()["response"]["location"], content=data).status_code == 200


def test_create_upload_publish_render_delete(fresh_api: Api) -> None:
    api = fresh_api
    product = _create(api, autoPublish=True, publishToStatus="LIVE_PUBLIC")
    fresh = api.get(f"/v1/products/{product}").json()["response"]
    assert (fresh["status"], fresh["conversionStatus"], fresh["asset"]["models"]) == ("DRAFT", "NO_ASSET", [])
    assert product not in {
        p["uuid"] for p in _search(api).json()["response"]["grid"]
    }  # drafts are never returned
    refused = api.render(product)
    assert (refused.status_code, refused.json()["response"]["errors"]) == (404, {product: "INVALID_PRODUCT"})
    _upload_model(api, product)
    converted = api.get(f"/v1/products/{product}").json()["response"]
    assert (converted["status"], converted["conversionStatus"]) == ("LIVE_PUBLIC", "COMPLETED")
    assert (converted["asset"]["assetOriginalName"], converted["asset"]["assetOriginalSize"]) == (
        "lamp.glb",
        len(GLB),
    )
    assert product in {p["uuid"] for p in _search(api).json()["response"]["grid"]}
    model = api.get(
        f"/v1/products/{product}/download/model",
        params={"clientUuid": api.sandbox.client_uuid, "conversionFormat": "GLB"},
    )
    assert model.status_code == 200 and model.content == GLB
    api.rendered(product)
    assert len(api.attachments(product)) == 3
    deleted = api.request("DELETE", "/v1/products/delete", json={"uuids": [product, "nope"]})
    assert deleted.status_code == 200
    assert deleted.json()["response"] == {
        "count": 1,
        "uuids": [product],
        "errors": {"nope": "PRODUCT_NOT_FOUND"},
    }
    assert api.get(f"/v1/products/{product}").status_code == 404
    assert (
        api.post("/v1/attachments/search", json={"productUuid": product, "page": 0, "size": 10}).status_code
        == 404
    )


def test_update_and_status(fresh_api: Api) -> None:
    api = fresh_api
    product = _create(api)
    updated = api.request(
        "PUT",
        "/v1/products",
        json={"uuid": product, "name": "Desk Lamp II", "description": "brass", "attributes": {"sku": "DL-2"}},
    )
    assert updated.status_code == 200 and set(updated.json()["response"]) == {"uuid", "productSessionUuId"}
    got = api.get(f"/v1/products/{product}").json()["response"]
    assert (got["name"], got["description"], got["attributes"]) == ("Desk Lamp II", "brass", {"sku": "DL-2"})
    live = api.request(
        "PUT",
        "/v1/products/status",
        params={"clientUuid": api.sandbox.client_uuid},
        json={
            "items": [{"uuid": product, "status": "LIVE_INTERNAL"}, {"uuid": SHOE, "status": "LIVE_PUBLIC"}]
        },
    )
    assert (live.status_code, live.json()["response"]) == (200, {})
    assert api.get(f"/v1/products/{product}").json()["response"]["status"] == "LIVE_INTERNAL"
    # all or nothing: one bad item and nothing changes
    bad = api.request(
        "PUT",
        "/v1/products/status",
        params={"clientUuid": api.sandbox.client_uuid},
        json={"items": [{"uuid": product, "status": "DRAFT"}, {"uuid": "nope", "status": "DRAFT"}]},
    )
    assert (bad.status_code, bad.json()["errors"]) == (404, ["PRODUCT_NOT_FOUND"])
    assert api.get(f"/v1/products/{product}").json()["response"]["status"] == "LIVE_INTERNAL"
    dropped = api.request(
        "PUT", "/v1/products", json={"uuid": product, "name": "Desk Lamp II", "deleteAsset": True}
    )
    assert dropped.status_code == 200


@pytest.mark.parametrize(
    "method, path, kw, status, code",
    [
        (
            "POST",
            "/v1/products",
            {"json": {"clientUuid": "CLIENT", "pipelineUuid": "PIPE"}},
            422,
            "MISSING_NAME",
        ),
        ("POST", "/v1/products", {"json": {"name": "x", "pipelineUuid": "PIPE"}}, 422, "MISSING_CLIENT_UUID"),
        ("POST", "/v1/products", {"json": {"name": "x", "clientUuid": "CLIENT"}}, 422, "MISSING_PIPELINE"),
        (
            "POST",
            "/v1/products",
            {"json": {"name": "x", "clientUuid": "CLIENT", "pipelineUuid": "nope"}},
            422,
            "MISSING_PIPELINE",
        ),
        (
            "POST",
            "/v1/products",
            {"json": {"name": "x", "clientUuid": "elsewhere", "pipelineUuid": "PIPE"}},
            403,
            "FORBIDDEN",
        ),
        (
            "POST",
            "/v1/products",
            {"json": {"name": "x", "clientUuid": "CLIENT", "pipelineUuid": "PIPE", "status": "LIVE"}},
            422,
            "INVALID_PRODUCT_STATUS",
        ),
        ("PUT", "/v1/products", {"json": {"name": "x"}}, 422, "MISSING_UUID"),
        ("PUT", "/v1/products", {"json": {"uuid": SHOE}}, 422, "MISSING_NAME"),
        ("PUT", "/v1/products", {"json": {"uuid": "nope", "name": "x"}}, 404, "PRODUCT_NOT_FOUND"),
        (
            "PUT",
            "/v1/products/status",
            {"json": {"items": [{"uuid": SHOE, "status": "DRAFT"}]}},
            422,
            "MISSING_CLIENT_UUID",
        ),
        (
            "PUT",
            "/v1/products/status",
            {"params": {"clientUuid": "CLIENT"}, "json": {"items": []}},
            422,
            "MISSING_UUIDS",
        ),
        (
            "PUT",
            "/v1/products/status",
            {"params": {"clientUuid": "CLIENT"}, "json": {"items": [{"uuid": SHOE}]}},
            422,
            "MISSING_PRODUCT_STATUS",
        ),
        (
            "PUT",
            "/v1/products/status",
            {"params": {"clientUuid": "CLIENT"}, "json": {"items": [{"uuid": SHOE, "status": "APPROVED"}]}},
            422,
            "INVALID_PRODUCT_STATUS",
        ),
        ("DELETE", "/v1/products/delete", {"json": {"uuids": []}}, 422, "MISSING_UUIDS"),
    ],
)
def test_lifecycle_errors(api: Api, method, path, kw, status, code) -> None:
    pipeline = _pipeline(api)

    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return (
            {"CLIENT": api.sandbox.client_uuid, "PIPE": pipeline}.get(value, value)
            if isinstance(value, str)
            else value
        )

    answer = api.request(method, path, **fill(kw))
    assert (answer.status_code, answer.json()["errors"]) == (status, [code])


def test_viewers_cannot_change_products(api_factory, sandbox) -> None:
    viewer = api_factory(sandbox)
    viewer.login(role="CLIENT_ORGANIZATION_VIEWER")
    for method, path, kw in (
        (
            "POST",
            "/v1/products",
            {"json": {"name": "x", "clientUuid": sandbox.client_uuid, "pipelineUuid": "p"}},
        ),
        ("PUT", "/v1/products", {"json": {"uuid": SHOE, "name": "x"}}),
        (
            "PUT",
            "/v1/products/status",
            {
                "params": {"clientUuid": sandbox.client_uuid},
                "json": {"items": [{"uuid": SHOE, "status": "DRAFT"}]},
            },
        ),
        ("DELETE", "/v1/products/delete", {"json": {"uuids": [SHOE]}}),
    ):
        answer = viewer.request(method, path, **kw)
        assert (answer.status_code, answer.json()["errors"]) == (403, ["FORBIDDEN"]), (method, path)
    assert viewer.get(f"/v1/products/{SHOE}").json()["response"]["name"] == "Trail Runner GTX"


def test_model_download(api: Api) -> None:
    client = api.sandbox.client_uuid
    path = f"/v1/products/{SHOE}/download/model"
    glb = api.get(path, params={"clientUuid": client, "conversionFormat": "GLB"})
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
    assert glb.headers["content-type"] == "model/gltf-binary"
    assert (
        int(glb.headers["content-length"])
        == api.get(f"/v1/products/{SHOE}").json()["response"]["asset"]["assetOriginalSize"]
    )
    for params, status, code in (
        ({"clientUuid": client}, 400, "MISSING_RESOURCE_FORMAT"),
        ({"clientUuid": client, "conversionFormat": "DOCX"}, 400, "INVALID_RESOURCE_FORMAT"),
        ({"clientUuid": client, "conversionFormat": "USDZ"}, 404, "MISSING_MODEL"),
        ({"conversionFormat": "GLB"}, 422, "MISSING_CLIENT_UUID"),
        (
            {"clientUuid": "a983026e-cb31-58d8-8ec4-6753670e6cfd", "conversionFormat": "GLB"},
            404,
            "PRODUCT_NOT_FOUND",
        ),
    ):
        answer = api.get(path, params=params)
        assert (answer.status_code, answer.json()["errors"]) == (status, [code]), params
    draft = api.get(
        f"/v1/products/{DRAFT}/download/model", params={"clientUuid": client, "conversionFormat": "GLB"}
    )
    assert (draft.status_code, draft.json()["errors"]) == (
        403,
        ["FORBIDDEN"],
    )  # download-model.md: Live assets only


def test_thumbnails(api: Api) -> None:
    grid = api.post(
        f"/v1/products/clients/{api.sandbox.client_uuid}/search",
        json={
            "page": 1,
            "size": 100,
            "organizationUuid": api.sandbox.organization_uuid,
            "productsUuids": [SHOE],
        },
    ).json()["response"]["grid"]
    blob = grid[0]["asset"]["thumbnailBlobId"]
    path = f"/v1/products/{SHOE}/clients/{api.sandbox.client_uuid}/thumbnails/{blob}"
    thumb = api.get(path, params={"width": 64, "height": 48})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 48)
    assert "attachment" in api.get(path, params={"download": "true"}).headers["content-disposition"]
    assert api.get(path.replace(blob, "other.png")).status_code == 404
    assert api.get(path, params={"width": 0}).status_code == 400
    draft_blob = api.get(f"/v1/products/{DRAFT}").json()["response"]["asset"]["thumbnailBlobId"]
    draft = api.get(f"/v1/products/{DRAFT}/clients/{api.sandbox.client_uuid}/thumbnails/{draft_blob}")
    assert draft.status_code == 403
