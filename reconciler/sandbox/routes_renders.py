"""``POST /v1/products/renders``: validate a ``RenderGenerateRequest`` and queue the jobs.

The request is checked as a whole first (400 with every problem's code at once); then each
product on its own: unknown or foreign products land in ``response.errors`` (uuid -> code)
while the others proceed and are listed in ``response.uuids``. When no product at all is
accepted the answer is 404 (the Renders page: "404 Not Found | Product UUID doesn't exist"),
with the same ``response`` body. Only the roles Y:4355 names may trigger (403 ``FORBIDDEN``
otherwise); a product without an asset is ``INVALID_PRODUCT``.

Codes beyond the operation's documented enum (the YAML lists PRODUCT_NOT_FOUND,
MISSING_PRODUCT_UUID, MISSING_ORGANIZATION_UUID, INVALID_PRODUCT, PRODUCT_CHANGE_IS_UNAVAILABLE,
NOT_SUPPORTED_IMAGE_FORMAT) are the sandbox's own, named after the field, and only ever
appear in 400 answers: MISSING_IMAGE_WIDTH, MISSING_IMAGE_HEIGHT, MISSING_IMAGE_FORMAT,
MISSING_TURNTABLE, MISSING_TURNTABLE_IMAGE_COUNT, MISSING_TURNTABLE_FRAME_RATE,
MISSING_TURNTABLE_WIDTH, MISSING_TURNTABLE_HEIGHT, INVALID_IMAGE_SIZE, INVALID_TURNTABLE_SIZE,
INVALID_IMAGE_COUNT, INVALID_FRAME_RATE, TURNTABLE_TOO_LARGE, INVALID_IMAGE_BACKGROUND,
INVALID_TURNTABLE_BACKGROUND, INVALID_TRANSPARENT_BACKGROUND, INVALID_INCLUDE_GIF.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from reconciler.sandbox import media
from reconciler.sandbox.catalog import has_asset
from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.envelope import (
    ApiError,
    Principal,
    authenticate,
    ctx_of,
    ok,
    read_json,
    visible_product,
)
from reconciler.sandbox.error_answers import error_entry
from reconciler.sandbox.jobs import RENDER, TURNTABLE

if TYPE_CHECKING:
    from reconciler.sandbox.context import SandboxContext

# VNTANA's own sample request sends "png": formats are matched case-insensitively.
IMAGE_FORMATS = ("PNG", "JPG", "WEBP")


def _int_field(
    data: dict[str, Any], key: str, missing: str, invalid: str, low: int, high: int, errors: list[str]
) -> int:
    value = data.get(key)
    if value is None:
        errors.append(missing)
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(invalid)
        return 0
    return value


def _bool_field(data: dict[str, Any], key: str, invalid: str, errors: list[str]) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        errors.append(invalid)
        return False
    return value


def _color_field(data: dict[str, Any], key: str, invalid: str, errors: list[str]) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        media.parse_color(value)  # "#F4F4F4", "F4F4F4" or "#fff", as the media layer reads them
    except ValueError:
        errors.append(invalid)
        return None
    return value


def parse_specs(body: dict[str, Any], config: SandboxConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The RENDER and TURNTABLE job specs of a request; ApiError(400) listing every problem."""
    errors: list[str] = []
    side, video_side = config.max_image_side, config.max_video_side
    width = _int_field(body, "imageWidth", "MISSING_IMAGE_WIDTH", "INVALID_IMAGE_SIZE", 1, side, errors)
    height = _int_field(body, "imageHeight", "MISSING_IMAGE_HEIGHT", "INVALID_IMAGE_SIZE", 1, side, errors)
    fmt = body.get("imageFormat")
    if fmt is None or fmt == "":
        errors.append("MISSING_IMAGE_FORMAT")
    elif not isinstance(fmt, str) or fmt.upper() not in IMAGE_FORMATS:
        errors.append("NOT_SUPPORTED_IMAGE_FORMAT")
    still = {
        "imageWidth": width,
        "imageHeight": height,
        "imageFormat": fmt.upper() if isinstance(fmt, str) else None,
        "imageBackground": _color_field(body, "imageBackground", "INVALID_IMAGE_BACKGROUND", errors),
        "transparentBackground": _bool_field(
            body, "transparentBackground", "INVALID_TRANSPARENT_BACKGROUND", errors
        ),
    }
    tt = body.get("turntable")
    turntable: dict[str, Any] = {}
    if not isinstance(tt, dict):
        errors.append("MISSING_TURNTABLE")
    else:
        turntable = {
            "includeGif": _bool_field(tt, "includeGif", "INVALID_INCLUDE_GIF", errors),
            "imageCount": _int_field(
                tt,
                "imageCount",
                "MISSING_TURNTABLE_IMAGE_COUNT",
                "INVALID_IMAGE_COUNT",
                1,
                config.max_image_count,
                errors,
            ),
            "frameRate": _int_field(
                tt,
                "frameRate",
                "MISSING_TURNTABLE_FRAME_RATE",
                "INVALID_FRAME_RATE",
                1,
                config.max_frame_rate,
                errors,
            ),
            "width": _int_field(
                tt, "width", "MISSING_TURNTABLE_WIDTH", "INVALID_TURNTABLE_SIZE", 1, video_side, errors
            ),
            "height": _int_field(
                tt, "height", "MISSING_TURNTABLE_HEIGHT", "INVALID_TURNTABLE_SIZE", 1, video_side, errors
            ),
            "background": _color_field(tt, "background", "INVALID_TURNTABLE_BACKGROUND", errors),
            "transparentBackground": _bool_field(
                tt, "transparentBackground", "INVALID_TRANSPARENT_BACKGROUND", errors
            ),
        }
        if turntable["imageCount"] * turntable["width"] * turntable["height"] > config.max_turntable_pixels:
            errors.append("TURNTABLE_TOO_LARGE")
    if errors:
        raise ApiError(400, *dict.fromkeys(errors))  # each code once, in order of discovery
    return still, turntable


async def trigger_renders(request: Request) -> Response:
    """Queue one render job and one turntable job per accepted product."""
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    principal.require_writer()  # Y:4355: Owners, Admins, workspace Admins and Content Managers
    body = await read_json(request)
    # A trigger for a thousand products takes a good fraction of a second of database
    # work: keep it off the event loop so polls and downloads stay responsive meanwhile.
    return await run_in_threadpool(_trigger, ctx, principal, body)


def _trigger(ctx: SandboxContext, principal: Principal, body: dict[str, Any]) -> Response:
    org = body.get("organizationUuid")
    if org is not None and org != principal.organization_uuid:
        raise ApiError(403, "FORBIDDEN")
    client = body.get("clientUuid")
    if client is not None and client not in principal.clients(ctx):
        raise ApiError(403, "FORBIDDEN")
    uuids = body.get("productUuids")
    if not isinstance(uuids, list) or not uuids:
        missing = ["MISSING_PRODUCT_UUID"]
        try:
            parse_specs(body, ctx.config)
        except ApiError as exc:
            missing += exc.codes
        raise ApiError(400, *missing)
    still, turntable = parse_specs(body, ctx.config)

    accepted: list[str] = []
    rejected: dict[str, str] = {}
    for item in uuids:
        raw = item if isinstance(item, str) else repr(item)
        if raw in rejected or raw in accepted:
            continue  # a product listed twice is rendered once
        if not isinstance(item, str):
            rejected[raw] = "INVALID_PRODUCT"
            continue
        if not raw:
            rejected[raw] = "MISSING_PRODUCT_UUID"
            continue
        try:
            product = visible_product(ctx, principal, raw)
        except ApiError as exc:
            rejected[raw] = "PRODUCT_NOT_FOUND" if exc.status in (403, 404) else exc.codes[0]
            continue
        if client is not None and product["client_uuid"] != client:
            rejected[raw] = "PRODUCT_NOT_FOUND"
            continue
        if not has_asset(product):  # nothing to render until a model is uploaded
            rejected[raw] = "INVALID_PRODUCT"
            continue
        accepted.append(raw)

    readings = ctx.readings
    errors = {uuid: error_entry(code, readings) for uuid, code in rejected.items()}
    response = {"uuids": accepted, "errors": errors or None}
    if not accepted:
        raise ApiError(404, *dict.fromkeys(rejected.values()), response=response)
    jobs = ctx.store.create_jobs(str(uuidlib.uuid4()), accepted, {RENDER: still, TURNTABLE: turntable})
    ctx.jobs.submit(jobs)
    return ok(response)
