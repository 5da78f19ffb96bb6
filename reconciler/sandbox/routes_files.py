"""Attachments (search, delete) and the two documented ways to download them.

- ``POST /v1/attachments/search`` pages from **0** (upload-attachments.md; VNTANA's client sends
  ``page: 0``): ``INVALID_PAGE`` below 0. Under the reading ``entity_type_filter: ignored`` (the
  default: the guide's render recipe and VNTANA's client filter on their side) the server
  returns every attachment of the product whatever ``entityType`` says; under ``honoured`` it
  filters.
- ``GET /v1/comments/images/{blobId}?clientUuid=`` answers the bytes directly (the route
  upload-attachments.md and VNTANA's client use for renders), while the reading ``download`` is
  ``both`` or ``comments``; otherwise it does not exist (404 ``NOT_FOUND``).
- ``POST /v1/storage/download/clients/sign-url`` answers a signed URL (download-model.md's
  recommended route): ``<base>/sandbox-storage/<blobId>?expires=<unix ms>&signature=<hex>``.
  Under ``both`` and ``signed-url-origin`` it needs an ``Origin`` header (400
  ``MISSING_ORIGIN``); under ``comments`` it refuses RENDER and TURNTABLE (400
  ``NOT_SUPPORTED_STORE_TYPE``). ``entityUuid`` is the attachment's ``uuid``.
- The signed URL target stands in for the storage bucket: no token, 403 when the signature is
  wrong or the URL has expired, and ``Content-Type: application/octet-stream`` is mandatory on
  the request (Y:3833), else 403 ``MISSING_CONTENT_TYPE``. It serves the file's Content-Type and
  Content-Length and honours a single HTTP Range. API fault injection never applies here.

Attachment records follow ``AttachmentResponseModel``. The byte size is not part of that
schema, so it is exposed only by the download (Content-Length, Content-Range).
"""

from __future__ import annotations

import hmac
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox.envelope import (
    ApiError,
    authenticate,
    ctx_of,
    ok,
    paging,
    read_json,
    visible_product,
)
from reconciler.sandbox.error_answers import error_body
from reconciler.sandbox.readings import Readings
from reconciler.sandbox.storage import FORMATS_BY_TYPE, serve_file, signature

ENTITY_TYPES = (
    "COMMENT",
    "ANNOTATION",
    "PRODUCT",
    "ANNOTATION_COMMENT",
    "VARIANT_GROUP",
    "RENDER",
    "TURNTABLE",
)
RENDER_STORE_TYPES = ("RENDER", "TURNTABLE")
# sign-url store types the sandbox serves: the render kinds, and ATTACHMENT for everything else.
STORE_TYPES = (*RENDER_STORE_TYPES, "ATTACHMENT")
OCTET_STREAM = "application/octet-stream"


def attachment_view(row: dict[str, Any], readings: Readings) -> dict[str, Any]:
    """``AttachmentResponseModel`` of a stored attachment."""
    return {
        "uuid": row["uuid"],
        "name": row["name"],
        "type": "PRODUCT",
        "entityType": row["entity_type"],
        "entityUuid": row["entity_uuid"],
        "blobId": row["blob_id"],
        "productUuid": row["product_uuid"],
        "malwareProcessingStatus": "SUCCEEDED",
        "created": readings.time(row["created"]),
        "updated": readings.time(row["updated"]),
    }


async def search_attachments(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request)
    readings = ctx.readings
    product_uuid = body.get("productUuid")
    # Statuses follow the YAML: its 422 enum holds the MISSING_* codes of this operation;
    # invalid values have no documented status, so they are plain 400s.
    if not product_uuid:
        raise ApiError(422, "MISSING_PRODUCT_UUID")
    offset, limit = paging(
        body.get("page"), body.get("size"), base=0, default_size=None, max_size=100, invalid_status=400
    )
    entity_type = body.get("entityType") if readings.entity_type_filter == "honoured" else None
    if entity_type is not None and entity_type not in ENTITY_TYPES:
        raise ApiError(400, "NOT_SUPPORTED_FOR_ENTITY_TYPE")
    direction = body.get("sortDirection") or "ASC"
    if direction not in ("ASC", "DESC", "UNSORTED"):
        raise ApiError(400, "INVALID_SORT_ORDER")
    product = visible_product(ctx, principal, product_uuid)
    rows, total = ctx.store.search_attachments(
        product["uuid"],
        entity_type,
        body.get("entityUuid"),
        offset=offset,
        limit=limit,
        descending=direction == "DESC",
    )
    return ok({"totalCount": total, "grid": [attachment_view(r, readings) for r in rows]})


async def delete_attachment(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    product = visible_product(ctx, principal, request.path_params["productUuid"])
    principal.require_writer()
    attachment = ctx.store.attachment(request.path_params["uuid"])
    if attachment is None or attachment["product_uuid"] != product["uuid"]:
        raise ApiError(404, "ATTACHMENT_NOT_FOUND")
    ctx.store.delete_attachment(attachment["uuid"])
    ctx.store.remove_blobs([attachment["blob_id"]])
    return ok({"uuid": attachment["uuid"]})


def _store_type_of(attachment: dict[str, Any]) -> str:
    kind = attachment["entity_type"]
    return kind if kind in RENDER_STORE_TYPES else "ATTACHMENT"


async def sign_url(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    readings = ctx.readings
    if readings.sign_url_needs_origin and not request.headers.get("origin"):
        raise ApiError(400, "MISSING_ORIGIN")
    body = await read_json(request)
    entity_uuid, store_type, fmt = body.get("entityUuid"), body.get("storeType"), body.get("format")
    if not entity_uuid:
        raise ApiError(400, "MISSING_ENTITY_UUID")
    if not store_type:
        raise ApiError(400, "MISSING_STORE_TYPE")
    if store_type not in STORE_TYPES or (
        store_type in RENDER_STORE_TYPES and not readings.sign_url_for_renders
    ):
        raise ApiError(400, "NOT_SUPPORTED_STORE_TYPE")
    attachment = ctx.store.attachment(str(entity_uuid))
    if attachment is None:
        raise ApiError(404, "BLOB_NOT_FOUND")
    # An attachment of a product this token cannot see does not exist for it either.
    visible_product(ctx, principal, attachment["product_uuid"])
    if _store_type_of(attachment) != store_type:
        raise ApiError(400, "INVALID_STORE_TYPE")
    if fmt is not None and str(fmt).upper() not in FORMATS_BY_TYPE.get(attachment["content_type"], set()):
        raise ApiError(400, "INVALID_RESOURCE_FORMAT")
    faults = ctx.faults.config
    ttl = (
        faults.signed_url_ttl_override
        if faults.signed_url_ttl_override is not None
        else ctx.config.signed_url_ttl_seconds
    )
    expires_ms = int((time.time() + ttl) * 1000)
    blob_id = attachment["blob_id"]
    sig = signature(ctx.url_secret, blob_id, str(expires_ms))
    # The storage listener (sendfile) when the sandbox runs one, on the host the caller used.
    base = str(request.base_url).rstrip("/")
    if ctx.storage_port is not None:
        host = request.url.hostname or "127.0.0.1"
        base = f"{request.url.scheme}://{f'[{host}]' if ':' in host else host}:{ctx.storage_port}"
    location = f"{base}/sandbox-storage/{quote(blob_id)}?expires={expires_ms}&signature={sig}"
    return ok({"requestUuid": str(uuidlib.uuid4()), "location": location, "blobId": blob_id})


def _storage_error(request: Request, status: int, code: str) -> Response:
    return JSONResponse(error_body([code], ctx_of(request).readings), status_code=status)


def signed_download(
    ctx: Any, blob_id: str, expires: str, given: str, content_type: str
) -> tuple[int, str] | tuple[Path, dict[str, Any]]:
    """Whether a signed download URL grants its blob: (status, error code), or (file, attachment).

    Shared by this route and the storage listener (``storage_server.py``)."""
    try:
        expires_ms = int(expires)
    except ValueError:
        return 403, "INVALID_SIGNATURE"
    if not hmac.compare_digest(given, signature(ctx.url_secret, blob_id, str(expires_ms))):
        return 403, "INVALID_SIGNATURE"
    if time.time() * 1000 > expires_ms:
        return 403, "EXPIRED_SIGNED_URL"
    if content_type.split(";")[0].strip().lower() != OCTET_STREAM:
        return 403, "MISSING_CONTENT_TYPE"
    row = ctx.store.attachment_by_blob(blob_id)
    path = ctx.store.blob_path(blob_id)
    if row is None or not path.is_file():
        return 404, "BLOB_NOT_FOUND"
    return path, row


async def download(request: Request) -> Response:
    """The signed URL target: check signature, expiry and content type, then serve (a range of) the file."""
    found = signed_download(
        ctx_of(request),
        request.path_params["blob_id"],
        request.query_params.get("expires", ""),
        request.query_params.get("signature", ""),
        request.headers.get("content-type", ""),
    )
    if isinstance(found[0], int):
        return _storage_error(request, found[0], str(found[1]))
    path, row = found
    assert isinstance(path, Path) and isinstance(row, dict)
    return serve_file(request, path, row["content_type"], request.path_params["blob_id"])


async def comment_image(request: Request) -> Response:
    """``GET /v1/comments/images/{blobId}?clientUuid=``: the attachment's bytes, for a token of its workspace."""
    ctx = ctx_of(request)
    if not ctx.readings.comments_route:
        raise ApiError(404, "NOT_FOUND")
    principal = authenticate(request, ctx)
    client = request.query_params.get("clientUuid")
    if not client:
        raise ApiError(422, "MISSING_CLIENT_UUID")
    if client not in principal.clients(ctx):
        raise ApiError(403, "FORBIDDEN")
    blob_id = request.path_params["blobId"]
    row = ctx.store.attachment_by_blob(blob_id)
    product = ctx.store.product(row["product_uuid"]) if row else None
    path = ctx.store.blob_path(blob_id)
    if row is None or product is None or product["client_uuid"] != client or not path.is_file():
        raise ApiError(404, "BLOB_NOT_FOUND")
    return serve_file(request, path, row["content_type"], blob_id)


ROUTES = [
    Route("/v1/attachments/search", search_attachments, methods=["POST"]),
    Route("/v1/attachments/{productUuid}/{uuid}", delete_attachment, methods=["DELETE"]),
    Route("/v1/storage/download/clients/sign-url", sign_url, methods=["POST"]),
    Route("/v1/comments/images/{blobId:path}", comment_image, methods=["GET"]),
    Route("/sandbox-storage/{blob_id:path}", download, methods=["GET", "HEAD"]),
]
