"""Attachments (search, delete), signed download URLs and the download endpoint itself.

A signed URL is ``<base>/sandbox-storage/<blobId>?expires=<unix ms>&signature=<hex>``, where
the signature is HMAC-SHA256 over ``blobId + "\\n" + expires`` with the sandbox's persisted
URL secret. The download endpoint stands in for the storage bucket of the real platform: it
needs no token, answers 403 when the signature is wrong or the URL has expired, serves the
file's Content-Type and Content-Length, and honours a single HTTP Range (206 with
Content-Range; 416 when unsatisfiable; several ranges are ignored and the whole file sent,
which RFC 9110 allows). API fault injection never applies here (it is not an /v1/ route).

Attachment records follow ``AttachmentResponseModel``. The byte size is not part of that
schema, so it is exposed only by the download (Content-Length, Content-Range).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from reconciler.sandbox.envelope import ApiError, authenticate, ctx_of, ok, paging, read_json, visible_product
from reconciler.sandbox.store import iso

ENTITY_TYPES = ("COMMENT", "ANNOTATION", "PRODUCT", "ANNOTATION_COMMENT", "VARIANT_GROUP", "RENDER", "TURNTABLE")
STORE_TYPES = ("RENDER", "TURNTABLE")
# sign-url ``format`` values that name each stored content type (JPEG and JPG are one format).
FORMATS_BY_TYPE = {
    "image/png": {"PNG"}, "image/jpeg": {"JPG", "JPEG"}, "image/webp": {"WEBP"},
    "video/mp4": {"MP4", "VIDEO"}, "image/gif": {"GIF"},
}


def attachment_view(row: dict[str, Any]) -> dict[str, Any]:
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
        "created": iso(row["created"]),
        "updated": iso(row["updated"]),
    }


async def search_attachments(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request)
    product_uuid = body.get("productUuid")
    # Statuses follow the YAML: its 422 enum holds the MISSING_* codes of this operation;
    # invalid values have no documented status, so they are plain 400s.
    if not product_uuid:
        raise ApiError(422, "MISSING_PRODUCT_UUID")
    offset, limit = paging(body.get("page"), body.get("size"), default_size=None, max_size=100, invalid_status=400)
    entity_type = body.get("entityType")
    if entity_type is not None and entity_type not in ENTITY_TYPES:
        raise ApiError(400, "NOT_SUPPORTED_FOR_ENTITY_TYPE")
    direction = body.get("sortDirection") or "ASC"
    if direction not in ("ASC", "DESC", "UNSORTED"):
        raise ApiError(400, "INVALID_SORT_ORDER")
    product = visible_product(ctx, principal, product_uuid)
    rows, total = ctx.store.search_attachments(
        product["uuid"], entity_type, body.get("entityUuid"), offset=offset, limit=limit, descending=direction == "DESC",
    )
    return ok({"totalCount": total, "grid": [attachment_view(r) for r in rows]})


async def delete_attachment(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    product = visible_product(ctx, principal, request.path_params["productUuid"])
    attachment = ctx.store.attachment(request.path_params["uuid"])
    if attachment is None or attachment["product_uuid"] != product["uuid"]:
        raise ApiError(404, "ATTACHMENT_NOT_FOUND")
    ctx.store.delete_attachment(attachment["uuid"])
    ctx.store.remove_blobs([attachment["blob_id"]])
    return ok({"uuid": attachment["uuid"]})


def url_signature(secret: bytes, blob_id: str, expires_ms: int) -> str:
    return hmac.new(secret, f"{blob_id}\n{expires_ms}".encode(), hashlib.sha256).hexdigest()


async def sign_url(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request)
    entity_uuid, store_type, fmt = body.get("entityUuid"), body.get("storeType"), body.get("format")
    if not entity_uuid:
        raise ApiError(400, "MISSING_ENTITY_UUID")
    if not store_type:
        raise ApiError(400, "MISSING_STORE_TYPE")
    if store_type not in STORE_TYPES:
        raise ApiError(400, "NOT_SUPPORTED_STORE_TYPE")
    attachment = ctx.store.attachment(str(entity_uuid))
    if attachment is None:
        raise ApiError(404, "BLOB_NOT_FOUND")
    # An attachment of a product this token cannot see does not exist for it either.
    visible_product(ctx, principal, attachment["product_uuid"])
    if attachment["entity_type"] != store_type:
        raise ApiError(400, "INVALID_STORE_TYPE")
    if fmt is not None and str(fmt).upper() not in FORMATS_BY_TYPE.get(attachment["content_type"], set()):
        raise ApiError(400, "INVALID_RESOURCE_FORMAT")
    faults = ctx.faults.config
    ttl = faults.signed_url_ttl_override if faults.signed_url_ttl_override is not None else ctx.config.signed_url_ttl_seconds
    expires_ms = int((time.time() + ttl) * 1000)
    blob_id = attachment["blob_id"]
    signature = url_signature(ctx.url_secret, blob_id, expires_ms)
    base = str(request.base_url).rstrip("/")
    location = f"{base}/sandbox-storage/{quote(blob_id)}?expires={expires_ms}&signature={signature}"
    return ok({"requestUuid": str(uuidlib.uuid4()), "location": location, "blobId": blob_id})


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) of a single byte range, None to send everything, "416" if unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_s, _, last_s = header[len("bytes="):].strip().partition("-")
    try:
        if first_s == "":  # suffix range: the last N bytes
            n = int(last_s)
            if n <= 0:
                return "416"
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None  # malformed: ignore the header, as RFC 9110 permits
    if first >= size:
        return "416"
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)


def _storage_error(status: int, code: str) -> Response:
    return Response(f'{{"success":false,"errors":["{code}"],"response":{{}}}}', status_code=status,
                    media_type="application/json")


async def download(request: Request) -> Response:
    """The signed URL target: check signature and expiry, then serve (a range of) the file."""
    ctx = ctx_of(request)
    blob_id = request.path_params["blob_id"]
    try:
        expires_ms = int(request.query_params.get("expires", ""))
    except ValueError:
        return _storage_error(403, "INVALID_SIGNATURE")
    given = request.query_params.get("signature", "")
    if not hmac.compare_digest(given, url_signature(ctx.url_secret, blob_id, expires_ms)):
        return _storage_error(403, "INVALID_SIGNATURE")
    if time.time() * 1000 > expires_ms:
        return _storage_error(403, "EXPIRED_SIGNED_URL")
    row = ctx.store.attachment_by_blob(blob_id)
    path = ctx.store.blob_path(blob_id)
    if row is None or not path.is_file():
        return _storage_error(404, "BLOB_NOT_FOUND")
    size = path.stat().st_size
    # Blobs never change once written, so their id is a strong ETag; streaming from disk keeps
    # the first byte prompt and memory flat for large files.
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{blob_id}"'}
    span = _parse_range(request.headers.get("range"), size)
    if span == "416":
        headers["Content-Range"] = f"bytes */{size}"
        return Response(b"", status_code=416, headers=headers)
    first, last, status = 0, size - 1, 200
    if isinstance(span, tuple):
        first, last = span
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(_read_span(path, first, last), status_code=status, headers=headers,
                             media_type=row["content_type"])


_CHUNK = 1 << 20


def _read_span(path: Path, first: int, last: int) -> Iterator[bytes]:
    """Bytes first..last of a file, in 1 MiB chunks (starlette runs a sync iterator in a thread)."""
    with path.open("rb") as fh:
        fh.seek(first)
        left = last - first + 1
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


ROUTES = [
    Route("/v1/attachments/search", search_attachments, methods=["POST"]),
    Route("/v1/attachments/{productUuid}/{uuid}", delete_attachment, methods=["DELETE"]),
    Route("/v1/storage/download/clients/sign-url", sign_url, methods=["POST"]),
    Route("/sandbox-storage/{blob_id:path}", download, methods=["GET", "HEAD"]),
]
