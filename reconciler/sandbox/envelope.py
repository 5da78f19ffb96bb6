"""The API's answer envelope, request parsing and token authentication, shared by all routes.

Every JSON answer is ``{"success": bool, "errors": [...codes...], "response": {...}}``.
Error answers carry ``"response": {}`` (an empty object validates against every response
schema of the YAML, where ``null`` would not). Routes raise ``ApiError``; the app turns it
into the envelope.

Tokens: ``X-AUTH-TOKEN: Bearer <token>`` on every authenticated call; the token itself is
sent back bare in the ``X-AUTH-TOKEN`` response header of the login calls. A missing,
malformed, unknown, revoked or expired token is a 401. A login (step 1) token is not scoped
to an organization: calls that need one answer 403 ``MISSING_ORGANIZATION_UUID``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from reconciler.sandbox.app import SandboxContext


class ApiError(Exception):
    """An error answer: HTTP status, error codes and an optional ``response`` object."""

    def __init__(self, status: int, *codes: str, response: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {','.join(codes)}")
        self.status = status
        self.codes = list(codes)
        self.response = response if response is not None else {}
        self.headers = headers or {}


def ok(response: Any, *, headers: dict[str, str] | None = None, errors: Any = None, status: int = 200) -> JSONResponse:
    """A success envelope."""
    body = {"success": True, "errors": [] if errors is None else errors, "response": response}
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(exc: ApiError) -> JSONResponse:
    body = {"success": False, "errors": exc.codes, "response": exc.response}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def read_json(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; 400 ``BAD_REQUEST`` when it is not one."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(400, "BAD_REQUEST")
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "BAD_REQUEST") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "BAD_REQUEST")
    return data


def paging(page: Any, size: Any, *, default_size: int | None, max_size: int, status: int = 422,
           invalid_status: int | None = None) -> tuple[int, int]:
    """Validate 1-based ``page`` and ``size``; returns (offset, limit).

    ``default_size=None`` makes both fields required (``MISSING_PAGE`` / ``MISSING_SIZE``,
    answered with ``status``); a bad value is ``INVALID_PAGE`` / ``INVALID_SIZE`` with
    ``invalid_status`` (default: ``status``).
    """
    bad = invalid_status or status
    if page is None:
        if default_size is None:
            raise ApiError(status, "MISSING_PAGE")
        page = 1
    if size is None:
        if default_size is None:
            raise ApiError(status, "MISSING_SIZE")
        size = default_size
    page_i, size_i = _as_int(page), _as_int(size)
    if page_i is None or page_i < 1:
        raise ApiError(bad, "INVALID_PAGE")
    if size_i is None or not 1 <= size_i <= max_size:
        raise ApiError(bad, "INVALID_SIZE")
    return (page_i - 1) * size_i, size_i


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def ctx_of(request: Request) -> SandboxContext:
    """The sandbox context of the app serving ``request``."""
    ctx: SandboxContext = request.app.state.ctx
    return ctx


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's kind and scope (organization, optional workspace)."""

    token: str
    kind: str  # "login" (step 1, no organization) or "refresh" (organization-scoped)
    organization_uuid: str | None
    client_uuid: str | None

    def clients(self, ctx: SandboxContext) -> list[str]:
        """The workspaces this token may see: its own, or all of its organization."""
        if self.client_uuid:
            return [self.client_uuid]
        assert self.organization_uuid is not None
        return [c["uuid"] for c in ctx.store.clients(self.organization_uuid)]


def authenticate(request: Request, ctx: SandboxContext, *, org_scoped: bool = True) -> Principal:
    """The caller's principal from ``X-AUTH-TOKEN: Bearer <token>``, or an ApiError."""
    header = request.headers.get("x-auth-token")
    if not header:
        raise ApiError(401, "MISSING_TOKEN")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme != "Bearer" or not token:
        raise ApiError(401, "INVALID_TOKEN")
    row = ctx.store.token(token)
    if row is None:
        raise ApiError(401, "TOKEN_NOT_FOUND")
    if row["revoked"]:
        raise ApiError(401, "TOKEN_REVOKED")
    if row["expires"] <= time.time():
        raise ApiError(401, "TOKEN_EXPIRED")
    principal = Principal(token, row["kind"], row["organization_uuid"], row["client_uuid"])
    if org_scoped and principal.organization_uuid is None:
        raise ApiError(403, "MISSING_ORGANIZATION_UUID")
    return principal


def visible_product(ctx: SandboxContext, principal: Principal, product_uuid: Any, *, status: int = 404) -> dict[str, Any]:
    """The product if this principal may see it.

    Another organization's product (or an unknown one) is ``PRODUCT_NOT_FOUND`` (404 by
    default): the platform does not reveal what exists elsewhere. A product of the own
    organization outside a workspace-scoped token's workspace is 403 ``FORBIDDEN``.
    """
    row = ctx.store.product(product_uuid) if isinstance(product_uuid, str) and product_uuid else None
    if row is None and ctx.config.auto_create_products and isinstance(product_uuid, str) and product_uuid:
        row = ctx.auto_create(principal, product_uuid)
    if row is None or row["organization_uuid"] != principal.organization_uuid:
        raise ApiError(status, "PRODUCT_NOT_FOUND")
    if principal.client_uuid and row["client_uuid"] != principal.client_uuid:
        raise ApiError(403, "FORBIDDEN")
    return row
