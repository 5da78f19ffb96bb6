"""Products: get, search, create, update, status, delete, model download, thumbnails; pipelines.

Search (guides/products/searching-products.md, Y:4688, Y:4765, Y:21077):
- ``POST /v1/products/clients/search`` searches several workspaces (``clientUuids`` in the body)
  and requires the ``clientUuid`` query parameter (Y:4765); only Owners and Admins may use it.
- ``POST /v1/products/clients/{clientUuid}/search`` searches one workspace; workspace-level
  users may use it for their own.
- ``page`` starts at **1** ("1..infinity"), ``size`` 1–100; ``page``, ``size`` and
  ``organizationUuid`` are required (422 ``MISSING_PAGE``, ``MISSING_SIZE``,
  ``MISSING_ORGANIZATION_UUID``). Filters (``name``, ``searchTerm``, ``productsUuids``,
  ``status``, ``conversionStatuses``) apply before paging and ``totalCount`` counts what they
  leave; ``sorts`` orders by ``name``, ``created``, ``updated`` or ``status``. Drafts are never
  returned (product-creation.md, download-thumbnails.md, upload-attachments.md).

Lifecycle (product-creation.md, Y:1466, Y:12594): ``POST /v1/products`` creates a product with
no asset (``conversionStatus: NO_ASSET``, status ``DRAFT`` unless given); its model arrives
through the asset upload (``routes_uploads``), which completes the conversion at once and, with
``autoPublish``, sets ``publishToStatus``. ``PUT /v1/products`` updates, ``PUT
/v1/products/status?clientUuid=`` moves products between ``DRAFT``, ``LIVE_INTERNAL`` and
``LIVE_PUBLIC`` (all or nothing), ``DELETE /v1/products/delete`` deletes (per product:
``response.errors`` maps a uuid it could not delete to its code). Only the roles that may
trigger renders may change products.

Downloads of a Draft's model or thumbnail answer 403 (download-model.md, download-thumbnails.md).
"""

from __future__ import annotations

import json
import uuid as uuidlib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.sandbox import media
from reconciler.sandbox.catalog import (
    derived_uuid,
    ensure_model,
    has_asset,
    product_search_view,
    product_view,
    thumbnail_blob_id,
)
from reconciler.sandbox.envelope import (
    ApiError,
    Principal,
    authenticate,
    ctx_of,
    ok,
    paging,
    read_json,
    visible_product,
)
from reconciler.sandbox.error_answers import error_entry
from reconciler.sandbox.storage import serve_file
from reconciler.sandbox.store import slug

_PIPELINE_NS = uuidlib.UUID("9d1b7c40-52e3-4f0a-8b6e-1c2d3e4f5061")
# ``GET /v1/pipelines``: the optimization pipelines a product is created with.
PIPELINES = [
    {"uuid": str(uuidlib.uuid5(_PIPELINE_NS, name)), "name": name, "description": description}
    for name, description in (
        ("Default", "Optimize for the web viewer"),
        ("High Fidelity", "Keep full geometry and textures"),
        ("Draco Compression", "Optimize and compress geometry"),
    )
]
PIPELINE_UUIDS = {p["uuid"] for p in PIPELINES}
SETTABLE_STATUSES = ("DRAFT", "LIVE_INTERNAL", "LIVE_PUBLIC")
SORT_FIELDS = {"name": "name", "created": "created", "updated": "updated", "status": "status"}
MODEL_FORMATS = ("GLB", "USDZ", "FBX", "OBJ", "STEP")


async def get_product(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    product = visible_product(ctx, principal, request.path_params["uuid"])
    return ok(product_view(ctx.store, product, ctx.readings))


def _list(value: Any, code: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(422, code)
    return [str(v) for v in value]


async def search_products(request: Request) -> Response:
    """Both search routes: ``/clients/search`` (``clientUuid`` query) and ``/clients/{clientUuid}/search``."""
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request, required=False)
    query = request.query_params
    org_uuid = principal.organization_uuid
    assert org_uuid is not None
    offset, limit = paging(
        body.get("page", query.get("page")),
        body.get("size", query.get("size")),
        base=1,
        default_size=None,
        max_size=100,
    )
    given_org = body.get("organizationUuid")
    if not given_org:
        raise ApiError(422, "MISSING_ORGANIZATION_UUID")
    if given_org != org_uuid:
        raise ApiError(403, "FORBIDDEN")
    if "clientUuid" in request.path_params:
        wanted = [request.path_params["clientUuid"]]
    else:
        if not principal.org_level:  # searching-products.md: only Owners and Admins
            raise ApiError(
                403, "FORBIDDEN", message="only organization Owners and Admins search several workspaces"
            )
        if not query.get("clientUuid"):
            raise ApiError(422, "MISSING_CLIENT_UUID")
        wanted = list(
            dict.fromkeys([query["clientUuid"], *_list(body.get("clientUuids"), "MISSING_CLIENT_UUID")])
        )
    allowed = principal.clients(ctx)
    if any(c not in allowed for c in wanted):
        raise ApiError(403, "FORBIDDEN")
    sorts = []
    raw_sorts = body.get("sorts") or {}
    if not isinstance(raw_sorts, dict):
        raise ApiError(422, "INVALID_SORT_FIELD")
    for field, direction in raw_sorts.items():
        if field not in SORT_FIELDS:
            raise ApiError(422, "INVALID_SORT_FIELD")
        if str(direction).upper() not in ("ASC", "DESC"):
            raise ApiError(422, "INVALID_SORT_ORDER")
        sorts.append((SORT_FIELDS[field], str(direction).upper()))
    term = body.get("searchTerm") or query.get("searchTerm")
    rows, total = ctx.store.search_products(
        org_uuid,
        wanted,
        term=str(term) if term else None,
        name=str(body["name"]) if body.get("name") else None,
        uuids=_list(body.get("productsUuids"), "INVALID_SEARCH_FIELD"),
        statuses=_list(body.get("status"), "INVALID_SEARCH_FIELD"),
        conversion_statuses=_list(body.get("conversionStatuses"), "INVALID_SEARCH_FIELD"),
        sorts=sorts,
        offset=offset,
        limit=limit,
    )
    grid = [product_search_view(ctx.store, r, ctx.readings) for r in rows]
    return ok({"totalCount": total, "grid": grid})


# -- lifecycle ---------------------------------------------------------------------------
def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(422, "INVALID_ATTRIBUTE_KEY")
    return {str(k): str(v) for k, v in value.items()}


def _pipeline(value: Any) -> str:
    if not value:
        raise ApiError(422, "MISSING_PIPELINE")
    if value not in PIPELINE_UUIDS:
        raise ApiError(422, "MISSING_PIPELINE", message=f"no pipeline {value} (see GET /v1/pipelines)")
    return str(value)


def _publish_to(value: Any) -> str | None:
    if value is None:
        return None
    if value not in SETTABLE_STATUSES:
        raise ApiError(422, "MISSING_PRODUCT_PUBLISH_TO_STATUS_OPTION")
    return str(value)


def _field(body: dict[str, Any], query: Any, name: str) -> Any:
    """A field of the body, or of the query string (the YAML lists both for these operations)."""
    return body.get(name) if body.get(name) is not None else query.get(name)


async def create_product(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request)
    query = request.query_params
    name = _field(body, query, "name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(422, "MISSING_NAME")
    client = _field(body, query, "clientUuid")
    if not client:
        raise ApiError(422, "MISSING_CLIENT_UUID")
    if client not in principal.clients(ctx):
        raise ApiError(403, "FORBIDDEN")
    principal.require_writer()
    status = body.get("status") or "DRAFT"
    if status not in SETTABLE_STATUSES:
        raise ApiError(422, "INVALID_PRODUCT_STATUS")
    product = {
        "uuid": str(uuidlib.uuid4()),
        "name": name.strip(),
        "description": str(body.get("description") or ""),
        "status": status,
        "shape": "box",
        "conversionStatus": "NO_ASSET",
        "pipelineUuid": _pipeline(body.get("pipelineUuid")),
        "autoPublish": bool(body.get("autoPublish")),
        "publishToStatus": _publish_to(body.get("publishToStatus")),
        "attributes": _attributes(body.get("attributes")),
    }
    row = ctx.store.create_product(str(principal.organization_uuid), str(client), product)
    return ok({"uuid": row["uuid"], "name": row["name"], "productSessionUuId": str(uuidlib.uuid4())})


async def update_product(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request)
    query = request.query_params
    uuid = _field(body, query, "uuid")
    if not uuid:
        raise ApiError(422, "MISSING_UUID")
    name = _field(body, query, "name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(422, "MISSING_NAME")
    product = visible_product(ctx, principal, uuid)
    principal.require_writer()
    changes: dict[str, Any] = {"name": name.strip()}
    if body.get("description") is not None:
        changes["description"] = str(body["description"])
    if body.get("attributes") is not None:
        changes["attributes"] = json.dumps(_attributes(body["attributes"]))
    if body.get("pipelineUuid") is not None:
        changes["pipeline_uuid"] = _pipeline(body["pipelineUuid"])
    if body.get("autoPublish") is not None:
        changes["auto_publish"] = 1 if body["autoPublish"] else 0
    if body.get("publishToStatus") is not None:
        changes["publish_to_status"] = _publish_to(body["publishToStatus"])
    if body.get("deleteAsset") is True and has_asset(product):
        if product.get("model_blob_id"):
            ctx.store.remove_blobs([product["model_blob_id"]])
        changes.update(model_blob_id=None, model_size=None, asset_name=None, conversion_status="NO_ASSET")
    ctx.store.update_product(product["uuid"], **changes)
    return ok({"uuid": product["uuid"], "productSessionUuId": str(uuidlib.uuid4())})


async def update_status(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request)
    client = request.query_params.get("clientUuid") or body.get("clientUuid")
    if not client:
        raise ApiError(422, "MISSING_CLIENT_UUID")
    if client not in principal.clients(ctx):
        raise ApiError(403, "FORBIDDEN")
    principal.require_writer()
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise ApiError(422, "MISSING_UUIDS")
    changes = []
    for item in items:
        if not isinstance(item, dict) or not item.get("uuid"):
            raise ApiError(422, "MISSING_UUID")
        if not item.get("status"):
            raise ApiError(422, "MISSING_PRODUCT_STATUS")
        if item["status"] not in SETTABLE_STATUSES:
            raise ApiError(422, "INVALID_PRODUCT_STATUS")
        product = visible_product(ctx, principal, item["uuid"])
        if product["client_uuid"] != client:
            raise ApiError(404, "PRODUCT_NOT_FOUND")
        changes.append((product["uuid"], item["status"]))
    for uuid, status in changes:  # every item checked first: all or nothing
        ctx.store.update_product(uuid, status=status)
    return ok({})


async def delete_products(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request, required=False)
    uuids = body.get("uuids")
    if uuids is None:
        raw = request.query_params.getlist("uuids")
        uuids = [u for value in raw for u in value.split(",") if u]
    if not isinstance(uuids, list) or not uuids:
        raise ApiError(422, "MISSING_UUIDS")
    principal.require_writer()
    deleted: list[str] = []
    errors: dict[str, Any] = {}
    for uuid in dict.fromkeys(str(u) for u in uuids):
        try:
            product = visible_product(ctx, principal, uuid)
        except ApiError:
            errors[uuid] = error_entry("PRODUCT_NOT_FOUND", ctx.readings)
            continue
        ctx.store.remove_blobs(ctx.store.delete_product(product["uuid"]))
        deleted.append(uuid)
    return ok({"count": len(deleted), "uuids": deleted, "errors": errors})


async def pipelines(request: Request) -> Response:
    ctx = ctx_of(request)
    authenticate(request, ctx)
    return ok({"pipelines": [dict(p) for p in PIPELINES]})


# -- files of a product --------------------------------------------------------------------
def _downloadable(ctx: Any, principal: Principal, product_uuid: str, client: str | None) -> dict[str, Any]:
    if not client:
        raise ApiError(422, "MISSING_CLIENT_UUID")
    product = visible_product(ctx, principal, product_uuid)
    if product["client_uuid"] != client:
        raise ApiError(404, "PRODUCT_NOT_FOUND")
    if product["status"] == "DRAFT":
        raise ApiError(403, "FORBIDDEN", message="the asset must be Live")
    if not has_asset(product):
        raise ApiError(404, "MISSING_ASSET")
    return product


async def download_model(request: Request) -> Response:
    """``GET /v1/products/{productUuid}/download/model?clientUuid=&conversionFormat=``: the converted model."""
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    fmt = request.query_params.get("conversionFormat")
    if not fmt:
        raise ApiError(400, "MISSING_RESOURCE_FORMAT")
    if fmt.upper() not in MODEL_FORMATS:
        raise ApiError(400, "INVALID_RESOURCE_FORMAT")
    product = _downloadable(
        ctx, principal, request.path_params["productUuid"], request.query_params.get("clientUuid")
    )
    if fmt.upper() != "GLB":  # every sandbox product converts to GLB only (asset.conversionFormats)
        raise ApiError(404, "MISSING_MODEL")
    product = ensure_model(ctx.store, product)
    path = ctx.store.blob_path(product["model_blob_id"])
    name = f"{slug(product['name'])}.glb"
    return serve_file(
        request,
        path,
        "model/gltf-binary",
        product["model_blob_id"],
        {"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _size(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= 2048:
        raise ApiError(400, "INVALID_SIZE")
    return int(value)


async def thumbnail(request: Request) -> Response:
    """``GET /v1/products/{productUuid}/clients/{clientUuid}/thumbnails/{thumbnailBlobId}``: a poster PNG."""
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    params = request.path_params
    product = _downloadable(ctx, principal, params["productUuid"], params["clientUuid"])
    if params["thumbnailBlobId"] != thumbnail_blob_id(product["uuid"]):
        raise ApiError(404, "THUMBNAIL_NOT_FOUND")
    width = _size(request.query_params.get("width"), 512)
    height = _size(request.query_params.get("height"), width)
    blob_id = f"{derived_uuid(product['uuid'], f'thumbnail-{width}x{height}')}.png"
    path = ctx.store.blob_path(blob_id)
    if not path.is_file():
        data = await run_in_threadpool(
            media.render_still, product["shape"], product["uuid"], width=width, height=height, fmt="PNG"
        )
        ctx.store.write_blob(blob_id, data)
    headers = {}
    if request.query_params.get("download", "").lower() == "true":
        headers["Content-Disposition"] = f'attachment; filename="{slug(product["name"])}.png"'
    return serve_file(request, path, "image/png", blob_id, headers)


ROUTES = [
    Route("/v1/products", create_product, methods=["POST"]),
    Route("/v1/products", update_product, methods=["PUT"]),
    Route("/v1/products/status", update_status, methods=["PUT"]),
    Route("/v1/products/delete", delete_products, methods=["DELETE"]),
    Route("/v1/products/clients/search", search_products, methods=["POST"]),
    Route("/v1/products/clients/{clientUuid}/search", search_products, methods=["POST"]),
    Route("/v1/products/{productUuid}/download/model", download_model, methods=["GET"]),
    Route(
        "/v1/products/{productUuid}/clients/{clientUuid}/thumbnails/{thumbnailBlobId}",
        thumbnail,
        methods=["GET"],
    ),
    Route("/v1/products/{uuid}", get_product, methods=["GET"]),
    Route("/v1/pipelines", pipelines, methods=["GET"]),
]
