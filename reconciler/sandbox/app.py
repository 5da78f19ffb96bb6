"""The sandbox's ASGI application: routes that mirror the VNTANA Admin API.

Paths, methods, header names, JSON field names, the envelope, error codes and statuses follow
VNTANA's own documents (``../shared/reference/vntana-docs-facts.md``: the help-center guides,
the OpenAPI document ``vntana-admin-api-subset.yaml`` and VNTANA's published client). Where
those contradict each other the behaviour is a reading (``readings.py``), switchable at run
time. This module holds the auth and organization routes (the shared context is ``context.py``); products,
renders, files, uploads and webhooks live beside it.

The sandbox never imports ``reconciler.client``: it is a second, independent reading of
VNTANA's documents, so a misreading shared by client and emulator cannot hide behind shared code.
"""

from __future__ import annotations

import hmac
import secrets
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox import routes_files, routes_products, routes_renders, routes_uploads, routes_webhooks
from reconciler.sandbox.context import SandboxContext
from reconciler.sandbox.envelope import (
    ApiError,
    authenticate,
    ctx_of,
    error_response,
    ok,
    read_json,
)
from reconciler.sandbox.faults import FaultMiddleware
from reconciler.sandbox.users import User


# -- authentication ----------------------------------------------------------------
def _login_answer(
    ctx: SandboxContext, user: User, kind: str, org: str | None, client: str | None
) -> JSONResponse:
    token = secrets.token_urlsafe(32)
    now = time.time()
    expires = ctx.store.add_token(token, kind, org, client, ctx.config.token_ttl_seconds, user.email)
    r = ctx.readings
    session = {
        "created": r.time(now),
        "status": "ACTIVE",
        "expiration": r.time(expires),
        "lastAccess": r.time(now),
    }
    # LoginUserResultResponseOk types ``errors`` as an object, unlike every other answer:
    # the YAML wins over the prose, so login answers carry ``"errors": {}``.
    return ok({"email": user.email, "session": session}, headers={"X-AUTH-TOKEN": token}, errors={})


async def login_token(request: Request) -> Response:
    ctx = ctx_of(request)
    body = await read_json(request)
    given = body.get("personal-access-token")
    if not isinstance(given, str) or not given:
        raise ApiError(400, "BAD_REQUEST")
    user = ctx.users.by_token(given)
    if user is None:
        raise ApiError(403, "BAD_CREDENTIALS")
    return _login_answer(ctx, user, "login", None, None)


async def login(request: Request) -> Response:
    ctx = ctx_of(request)
    body = await read_json(request)
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        raise ApiError(400, "BAD_REQUEST")
    user = ctx.users.by_email(email)
    good = (
        user is not None
        and user.password != ""
        and hmac.compare_digest(password.encode(), user.password.encode())
    )
    if not good or user is None:
        raise ApiError(403, "BAD_CREDENTIALS")
    return _login_answer(ctx, user, "login", None, None)


async def refresh_token(request: Request) -> Response:
    """Step 2 (organization token) and step 3 (workspace token, workspace-level users only)."""
    ctx = ctx_of(request)
    principal = authenticate(request, ctx, org_scoped=False)
    user = principal.user
    org_uuid = request.headers.get("organizationuuid")
    if not org_uuid:
        raise ApiError(403, "MISSING_ORGANIZATION_UUID")
    if ctx.store.organization(org_uuid) is None or org_uuid not in user.org_roles:
        raise ApiError(403, "FORBIDDEN")
    if principal.organization_uuid not in (None, org_uuid):
        raise ApiError(403, "FORBIDDEN")
    client_uuid = request.headers.get("clientuuid") or None
    if client_uuid is not None:
        if user.org_level(org_uuid):  # refresh-token-usage.md: Owners and Admins get BAD_CREDENTIALS
            raise ApiError(403, "BAD_CREDENTIALS", message="Owners and Admins use the organization token")
        client = ctx.store.client(client_uuid)
        if client is None or client["organization_uuid"] != org_uuid or client_uuid not in user.client_roles:
            raise ApiError(403, "INVALID_CLIENT_UUID")
    return _login_answer(ctx, user, "refresh", org_uuid, client_uuid)


async def logout(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx, org_scoped=False)
    ctx.store.revoke_token(principal.token)
    return ok({})


# -- organizations and workspaces ----------------------------------------------------
async def organizations(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx, org_scoped=False)
    roles = principal.user.org_roles
    r = ctx.readings
    grid = [
        # organizations-clients.md's example: ``created`` with microseconds and no zone.
        {
            "uuid": o["uuid"],
            "slug": o["slug"],
            "name": o["name"],
            "role": roles[o["uuid"]],
            "created": r.time(o["created"], precision="microseconds"),
            "shareLinks": [],
        }
        for o in ctx.store.organizations(member_only=False)
        if o["uuid"] in roles
    ]
    return ok({"totalCount": len(grid), "grid": grid})


async def client_organizations(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    assert principal.organization_uuid is not None
    user = principal.user
    org_level = principal.org_level
    r = ctx.readings
    grid = [
        {
            "uuid": c["uuid"],
            "slug": c["slug"],
            "name": c["name"],
            "role": user.org_roles.get(principal.organization_uuid)
            if org_level
            else user.client_roles[c["uuid"]],
            "created": r.time(c["created"], precision="microseconds"),
        }
        for c in ctx.store.clients(principal.organization_uuid)
        # Owners and Admins see every workspace; workspace-level users only their own.
        if (org_level or c["uuid"] in user.client_roles) and principal.client_uuid in (None, c["uuid"])
    ]
    return ok({"totalCount": len(grid), "grid": grid})


# -- health -----------------------------------------------------------------------------
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "activeJobs": ctx_of(request).jobs.active})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc, ctx_of(request).readings)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    code = "NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED"
    return error_response(ApiError(status, code), ctx_of(request).readings)


def create_app(ctx: SandboxContext) -> FaultMiddleware:
    """The ASGI app for one sandbox context, wrapped in fault injection (which counts requests)."""
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/auth/login/token", login_token, methods=["POST"]),
        Route("/v1/auth/login", login, methods=["POST"]),
        Route("/v1/auth/refresh-token", refresh_token, methods=["POST"]),
        Route("/v1/auth/logout", logout, methods=["POST"]),
        Route("/v1/organizations", organizations, methods=["GET"]),
        Route("/v1/clients/client-organizations", client_organizations, methods=["GET"]),
        Route("/v1/products/renders", routes_renders.trigger_renders, methods=["POST"]),
        *routes_products.ROUTES,
        *routes_files.ROUTES,
        *routes_uploads.ROUTES,
        *routes_webhooks.ROUTES,
    ]
    app = Starlette(
        routes=routes, exception_handlers={ApiError: _api_error, 404: _not_found, 405: _not_found}
    )
    # ``/v1/webhooks`` and ``/v1/webhooks/`` are different routes (the reading ``webhook_paths``):
    # never redirect one to the other.
    app.router.redirect_slashes = False
    app.state.ctx = ctx
    return FaultMiddleware(app, ctx.faults, lambda: ctx.readings, counts=ctx.requests.add)
