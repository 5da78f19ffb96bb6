"""The API's answer envelope, request parsing and token authentication, shared by all routes.

Every JSON answer is ``{"success": bool, "errors": [...], "response": ...}``. An error answer
carries ``"response": null`` (quick-reference/error-codes.md), except where the answer has a
body worth reading (the render trigger's per-product ``response.errors``). Its ``errors``
entries are codes (``"PRODUCT_NOT_FOUND"``) or, under the reading ``error_entries: objects``,
``{"code", "message"}`` objects. Routes raise ``ApiError``; the app turns it into the envelope.

Tokens: ``X-AUTH-TOKEN: Bearer <token>`` on every authenticated call; the token itself is
sent back bare in the ``X-AUTH-TOKEN`` response header of the login calls. A missing,
malformed, unknown, revoked or expired token is 403 ``FORBIDDEN`` or 401 ``UNAUTHORIZED``
(the reading ``revoked_token_status``). A login (step 1) token is not scoped to an
organization: calls that need one answer 403 ``MISSING_ORGANIZATION_UUID``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from reconciler.sandbox.error_answers import error_body
from reconciler.sandbox.readings import Readings
from reconciler.sandbox.users import WRITER_ROLES, User

if TYPE_CHECKING:
    from reconciler.sandbox.context import SandboxContext


class ApiError(Exception):
    """An error answer: HTTP status, error codes and an optional ``response`` body."""

    def __init__(
        self,
        status: int,
        *codes: str,
        response: Any = None,
        headers: dict[str, str] | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(f"{status} {','.join(codes)}")
        self.status = status
        self.codes = list(codes)
        self.response = response
        self.headers = headers or {}
        self.message = message  # detail for the ``objects`` reading (never a secret)


def ok(
    response: Any, *, headers: dict[str, str] | None = None, errors: Any = None, status: int = 200
) -> JSONResponse:
    """A success envelope."""
    body = {"success": True, "errors": [] if errors is None else errors, "response": response}
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(exc: ApiError, readings: Readings) -> JSONResponse:
    return JSONResponse(
        error_body(exc.codes, readings, exc.response, exc.message),
        status_code=exc.status,
        headers=exc.headers,
    )


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


def paging(
    page: Any,
    size: Any,
    *,
    base: int,
    default_size: int | None,
    max_size: int,
    status: int = 422,
    invalid_status: int | None = None,
) -> tuple[int, int]:
    """Validate ``page`` (first page ``base``: 0 or 1) and ``size``; returns (offset, limit).

    ``default_size=None`` makes both fields required (``MISSING_PAGE`` / ``MISSING_SIZE``,
    answered with ``status``); a bad value is ``INVALID_PAGE`` / ``INVALID_SIZE`` with
    ``invalid_status`` (default: ``status``).
    """
    bad = invalid_status or status
    if page is None:
        if default_size is None:
            raise ApiError(status, "MISSING_PAGE")
        page = base
    if size is None:
        if default_size is None:
            raise ApiError(status, "MISSING_SIZE")
        size = default_size
    page_i, size_i = _as_int(page), _as_int(size)
    if page_i is None or page_i < base:
        raise ApiError(bad, "INVALID_PAGE")
    if size_i is None or not 1 <= size_i <= max_size:
        raise ApiError(bad, "INVALID_SIZE")
    return (page_i - base) * size_i, size_i


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
    """Who is calling: the user, the token's kind and scope (organization, optional workspace)."""

    token: str
    kind: str  # "login" (step 1, no organization) or "refresh" (organization- or workspace-scoped)
    organization_uuid: str | None
    client_uuid: str | None
    user: User

    @property
    def org_level(self) -> bool:
        """An Owner or Admin: the organization token reaches every workspace."""
        return self.user.org_level(self.organization_uuid)

    @property
    def role(self) -> str | None:
        """The role that governs this token: the organization role, or the workspace's."""
        if self.org_level or self.client_uuid is None:
            return self.user.org_roles.get(self.organization_uuid or "")
        return self.user.client_roles.get(self.client_uuid)

    def clients(self, ctx: SandboxContext) -> list[str]:
        """The workspaces this token may reach.

        A workspace token reaches its workspace; an Owner's or Admin's organization token
        reaches them all; a workspace-level user's organization token reaches none (it must
        ask for a workspace token first, refresh-token-usage.md).
        """
        if self.client_uuid:
            return [self.client_uuid]
        if self.org_level and self.organization_uuid is not None:
            return [c["uuid"] for c in ctx.store.clients(self.organization_uuid)]
        return []

    def require_writer(self) -> None:
        """Only the roles that may trigger renders (Y:4355) may change products and files."""
        if self.role not in WRITER_ROLES:
            raise ApiError(403, "FORBIDDEN", message=f"role {self.role} may not do this")


def bad_token(ctx: SandboxContext, detail: str) -> ApiError:
    """The answer to a missing, malformed, unknown, revoked or expired token, per the reading."""
    status = ctx.readings.revoked_token_status
    return ApiError(status, "FORBIDDEN" if status == 403 else "UNAUTHORIZED", message=detail)


def authenticate(request: Request, ctx: SandboxContext, *, org_scoped: bool = True) -> Principal:
    """The caller's principal from ``X-AUTH-TOKEN: Bearer <token>``, or an ApiError."""
    header = request.headers.get("x-auth-token")
    if not header:
        raise bad_token(ctx, "missing token")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme != "Bearer" or not token:
        raise bad_token(ctx, "expected 'Bearer <token>'")
    row = ctx.store.token(token)
    if row is None:
        raise bad_token(ctx, "unknown token")
    if row["revoked"]:
        raise bad_token(ctx, "token revoked")
    if row["expires"] <= time.time():
        raise bad_token(ctx, "token expired")
    user = ctx.users.by_email(row["user_email"]) or (ctx.users.default if row["user_email"] is None else None)
    if user is None:
        raise bad_token(ctx, "unknown user")
    principal = Principal(token, row["kind"], row["organization_uuid"], row["client_uuid"], user)
    if org_scoped and principal.organization_uuid is None:
        raise ApiError(403, "MISSING_ORGANIZATION_UUID")
    return principal


def visible_product(
    ctx: SandboxContext, principal: Principal, product_uuid: Any, *, status: int = 404
) -> dict[str, Any]:
    """The product if this principal may see it.

    Another organization's product (or an unknown one) is ``PRODUCT_NOT_FOUND`` (404 by
    default): the platform does not reveal what exists elsewhere. A product of the own
    organization in a workspace the token does not reach is 403 ``FORBIDDEN``.
    """
    row = ctx.store.product(product_uuid) if isinstance(product_uuid, str) and product_uuid else None
    if row is None and ctx.config.auto_create_products and isinstance(product_uuid, str) and product_uuid:
        row = _auto_create(ctx, principal, product_uuid)
    if row is None or row["organization_uuid"] != principal.organization_uuid:
        raise ApiError(status, "PRODUCT_NOT_FOUND")
    if row["client_uuid"] not in principal.clients(ctx):
        raise ApiError(403, "FORBIDDEN")
    return row


def _auto_create(ctx: SandboxContext, principal: Principal, product_uuid: str) -> dict[str, Any] | None:
    """Create an unknown product on the fly in the caller's (first) workspace."""
    if principal.organization_uuid is None:
        return None
    client = principal.client_uuid or next(iter(principal.clients(ctx)), None)
    if client is None:
        return None
    name = f"Auto Product {product_uuid[:8]}"
    return ctx.store.create_product(principal.organization_uuid, client, {"uuid": product_uuid, "name": name})
