"""Uploads: the signed upload URLs and the upload itself, so tests can put files on a product.

- ``POST /v1/storage/upload/clients/resource/sign-url`` (Y:3686; upload-attachments.md) with
  ``storeType`` ``RENDER`` (a file for the Renders tab: a still becomes entityType ``RENDER``,
  a video or GIF ``TURNTABLE``), ``ATTACHMENT`` (a file on the product, entityType ``PRODUCT``:
  a PDF, a QR code ``qrCode_<uuid>.png``) or ``ASSET`` (the product's model); the parent is a
  product (``parentEntityType: PRODUCT``).
- ``POST /v1/storage/upload/clients/products/asset/sign-url`` (product-creation.md): the model
  of a product, ``{clientUuid, productUuid, resourceSettings}``.

Both answer ``{requestUuid, location, blobId}``; ``blobId`` is flat, ``<uuid>.<ext>``. The file
goes up to ``location``: a ``PUT`` of the bytes, or the resumable protocol's first step
(``POST`` with ``x-goog-resumable: start`` answers 201 with the session URI in ``Location``)
and then the ``PUT``. The URL is the credential (no token), signed and short-lived like the
download URLs; a second ``PUT`` of a finished upload changes nothing. The file appears only
once its last byte arrived: an upload cut short leaves nothing behind.

Limits (upload-attachments.md): Renders-tab files are jpeg, jpg, png, bmp, gif, tiff, svg,
mp4, tif, mov, avi or pdf (no webp), up to 3 GB (``max_upload_bytes``).

Codes: 400 MISSING_STORE_TYPE, NOT_SUPPORTED_STORE_TYPE, MISSING_CLIENT_UUID,
MISSING_PARENT_ENTITY_UUID, MISSING_PARENT_ENTITY_TYPE, INVALID_ENTITY_TYPE (a parent other
than a product), MISSING_RESOURCE_SETTINGS, MISSING_RESOURCE_ORIGINAL_NAME,
MISSING_RESOURCE_ORIGINAL_NAME_EXTENSION, INVALID_RESOURCE_EXTENSION, MISSING_RESOURCE_ORIGINAL_SIZE,
INVALID_RESOURCE_SIZE, MISSING_RESOURCE_CONTENT_TYPE; 403 FORBIDDEN (a workspace the token does
not reach, or a viewer); 404 PRODUCT_NOT_FOUND. The upload target: 403 INVALID_SIGNATURE,
EXPIRED_SIGNED_URL; 400 INVALID_RESOURCE_SIZE (more bytes than allowed); 404 PRODUCT_NOT_FOUND
(deleted meanwhile).
"""

from __future__ import annotations

import hmac
import os
import time
import uuid as uuidlib
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox.envelope import (
    ApiError,
    Principal,
    authenticate,
    ctx_of,
    ok,
    read_json,
    visible_product,
)
from reconciler.sandbox.error_answers import error_body
from reconciler.sandbox.storage import content_type_for, extension, signature
from reconciler.sandbox.store import new_blob_id

RENDER_TAB_EXTENSIONS = frozenset(
    {"jpeg", "jpg", "png", "bmp", "gif", "tiff", "svg", "mp4", "tif", "mov", "avi", "pdf"}
)
TURNTABLE_EXTENSIONS = frozenset({"mp4", "mov", "avi", "gif"})
ASSET_EXTENSIONS = frozenset(
    {"glb", "gltf", "fbx", "obj", "usdz", "zip", "step", "stp", "stl", "blend", "max"}
)
UPLOAD_STORE_TYPES = ("ASSET", "ATTACHMENT", "RENDER")


def _settings(body: dict[str, Any], store_type: str, max_bytes: int) -> tuple[str, str, int]:
    """(original name, content type, size) from ``resourceSettings``; ApiError(400) when unusable."""
    settings = body.get("resourceSettings")
    if not isinstance(settings, dict):
        raise ApiError(400, "MISSING_RESOURCE_SETTINGS")
    name = settings.get("originalName")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "MISSING_RESOURCE_ORIGINAL_NAME")
    name = os.path.basename(name.strip().replace("\\", "/"))
    ext = extension(name)
    if not ext:
        raise ApiError(400, "MISSING_RESOURCE_ORIGINAL_NAME_EXTENSION")
    allowed = {"RENDER": RENDER_TAB_EXTENSIONS, "ASSET": ASSET_EXTENSIONS}.get(store_type)
    if allowed is not None and ext not in allowed:
        raise ApiError(400, "INVALID_RESOURCE_EXTENSION", message=f".{ext} is not accepted for {store_type}")
    size = settings.get("originalSize")
    if size is None:
        raise ApiError(400, "MISSING_RESOURCE_ORIGINAL_SIZE")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= max_bytes:
        raise ApiError(400, "INVALID_RESOURCE_SIZE")
    content_type = settings.get("contentType")
    if not isinstance(content_type, str) or not content_type:
        raise ApiError(400, "MISSING_RESOURCE_CONTENT_TYPE")
    return name, content_type, size


def _sign_upload(request: Request, fields: dict[str, str]) -> str:
    ctx = ctx_of(request)
    fields = {**fields, "expires": str(int((time.time() + ctx.config.upload_url_ttl_seconds) * 1000))}
    fields["signature"] = signature(ctx.url_secret, "upload", *(fields[k] for k in _SIGNED))
    base = str(request.base_url).rstrip("/")
    query = urlencode({k: v for k, v in fields.items() if k != "blob"})
    return f"{base}/sandbox-upload/{quote(fields['blob'])}?{query}"


_SIGNED = ("blob", "product", "store", "name", "ctype", "expires")


async def _session(
    request: Request, principal: Principal, body: dict[str, Any], store_type: str, product_uuid: Any
) -> Response:
    ctx = ctx_of(request)
    client = body.get("clientUuid")
    if not client:
        raise ApiError(400, "MISSING_CLIENT_UUID")
    if client not in principal.clients(ctx):
        raise ApiError(403, "FORBIDDEN")
    principal.require_writer()
    if not product_uuid:
        raise ApiError(400, "MISSING_PARENT_ENTITY_UUID")
    name, content_type, _size = _settings(body, store_type, ctx.config.max_upload_bytes)
    product = visible_product(ctx, principal, product_uuid)
    if product["client_uuid"] != client:
        raise ApiError(404, "PRODUCT_NOT_FOUND")
    blob_id = new_blob_id(extension(name))
    location = _sign_upload(
        request,
        {
            "blob": blob_id,
            "product": product["uuid"],
            "store": store_type,
            "name": name,
            "ctype": content_type,
        },
    )
    return ok({"requestUuid": str(uuidlib.uuid4()), "location": location, "blobId": blob_id})


async def resource_sign_url(request: Request) -> Response:
    principal = authenticate(request, ctx_of(request))
    body = await read_json(request)
    store_type = body.get("storeType")
    if not store_type:
        raise ApiError(400, "MISSING_STORE_TYPE")
    if store_type not in UPLOAD_STORE_TYPES:
        raise ApiError(400, "NOT_SUPPORTED_STORE_TYPE")
    parent = body.get("parentEntityType")
    if store_type == "ATTACHMENT" and not parent:
        raise ApiError(400, "MISSING_PARENT_ENTITY_TYPE")
    if parent not in (None, "PRODUCT"):
        raise ApiError(400, "INVALID_ENTITY_TYPE", message="the sandbox has files on products only")
    product = body.get("parentEntityUuid") or (body.get("entityUuid") if store_type == "ASSET" else None)
    return await _session(request, principal, body, store_type, product)


async def asset_sign_url(request: Request) -> Response:
    principal = authenticate(request, ctx_of(request))
    body = await read_json(request)
    return await _session(request, principal, body, "ASSET", body.get("productUuid"))


def _upload_error(request: Request, status: int, code: str) -> Response:
    return JSONResponse(error_body([code], ctx_of(request).readings), status_code=status)


async def upload(request: Request) -> Response:
    """The signed upload target: ``POST`` starts a resumable session, ``PUT`` sends the bytes."""
    ctx = ctx_of(request)
    query = request.query_params
    fields = {"blob": request.path_params["blob_id"], **{k: query.get(k, "") for k in _SIGNED[1:]}}
    given = query.get("signature", "")
    if not hmac.compare_digest(given, signature(ctx.url_secret, "upload", *(fields[k] for k in _SIGNED))):
        return _upload_error(request, 403, "INVALID_SIGNATURE")
    try:
        expires_ms = int(fields["expires"])
    except ValueError:
        return _upload_error(request, 403, "INVALID_SIGNATURE")
    if time.time() * 1000 > expires_ms:
        return _upload_error(request, 403, "EXPIRED_SIGNED_URL")
    if request.method == "POST":
        if request.headers.get("x-goog-resumable", "").lower() != "start":
            return _upload_error(request, 400, "BAD_REQUEST")
        session = f"{request.url}&upload_id={uuidlib.uuid4().hex}"
        return Response(b"", status_code=201, headers={"Location": session})
    blob_id = fields["blob"]
    product = ctx.store.product(fields["product"])
    if product is None:
        return _upload_error(request, 404, "PRODUCT_NOT_FOUND")
    done = _finished(ctx, blob_id, product)
    if done is not None:
        return JSONResponse(done)
    tmp = ctx.store.blob_path(f".upload-{uuidlib.uuid4().hex}")
    size = 0
    try:
        with tmp.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > ctx.config.max_upload_bytes:
                    return _upload_error(request, 400, "INVALID_RESOURCE_SIZE")
                fh.write(chunk)
        os.replace(tmp, ctx.store.blob_path(blob_id))
    finally:
        tmp.unlink(missing_ok=True)
    _record(ctx, fields, product, size)
    return JSONResponse(
        {"name": blob_id, "size": str(size), "contentType": content_type_for(fields["name"], fields["ctype"])}
    )


def _finished(ctx: Any, blob_id: str, product: dict[str, Any]) -> dict[str, Any] | None:
    """The answer for an upload that already completed (a repeated ``PUT``), else None."""
    row = ctx.store.attachment_by_blob(blob_id)
    if row is not None:
        return {"name": blob_id, "size": str(row["size"]), "contentType": row["content_type"]}
    if product.get("model_blob_id") == blob_id:
        return {
            "name": blob_id,
            "size": str(product["model_size"]),
            "contentType": "application/octet-stream",
        }
    return None


def _record(ctx: Any, fields: dict[str, str], product: dict[str, Any], size: int) -> None:
    """Make the uploaded file what its store type says: an attachment, or the product's model."""
    blob_id, name, store = fields["blob"], fields["name"], fields["store"]
    if store == "ASSET":
        old = product.get("model_blob_id")
        status = product["status"]
        if product.get("auto_publish"):
            status = product.get("publish_to_status") or "LIVE_PUBLIC"
        ctx.store.update_product(
            product["uuid"],
            model_blob_id=blob_id,
            model_size=size,
            asset_name=name,
            conversion_status="COMPLETED",
            status=status,
        )
        if old and old != blob_id:
            ctx.store.remove_blobs([old])
        return
    if store == "RENDER":
        entity_type = "TURNTABLE" if extension(name) in TURNTABLE_EXTENSIONS else "RENDER"
    else:
        entity_type = "PRODUCT"
    ctx.store.add_attachment(
        {
            "uuid": str(uuidlib.uuid4()),
            "product_uuid": product["uuid"],
            "entity_type": entity_type,
            # A hand upload's entity is its product; render results name their job instead.
            "entity_uuid": product["uuid"],
            "blob_id": blob_id,
            "name": name,
            "content_type": content_type_for(name, fields["ctype"]),
            "size": size,
        }
    )


ROUTES = [
    Route("/v1/storage/upload/clients/resource/sign-url", resource_sign_url, methods=["POST"]),
    Route("/v1/storage/upload/clients/products/asset/sign-url", asset_sign_url, methods=["POST"]),
    Route("/sandbox-upload/{blob_id}", upload, methods=["PUT", "POST"]),
]
