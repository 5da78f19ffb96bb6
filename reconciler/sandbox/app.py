"""The sandbox's ASGI application: routes that mirror the VNTANA Admin API.

Paths, methods, header names, JSON field names, the envelope, error codes and statuses
follow ``../shared/reference/vntana-api.md`` and, where they disagree, VNTANA's OpenAPI
schemas (``vntana-admin-api-subset.yaml``). This module holds the shared context, the auth,
organization and product routes; renders, storage and webhooks live beside it.

The sandbox never imports ``reconciler.client``: it is a second, independent reading of the
API reference, so a misreading shared by client and emulator cannot hide behind shared code.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox import routes_files, routes_renders, routes_webhooks
from reconciler.sandbox.catalog import product_search_view, product_view
from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.envelope import (
    ApiError, Principal, authenticate, ctx_of, error_response, ok, paging, read_json, visible_product,
)
from reconciler.sandbox.faults import FaultInjector, FaultMiddleware
from reconciler.sandbox.jobs import JobEngine
from reconciler.sandbox.store import Store, iso
from reconciler.sandbox.webhooks import WebhookDispatcher


@dataclass
class SandboxContext:
    """Everything a route needs; one per running sandbox (``request.app.state.ctx``)."""

    config: SandboxConfig
    store: Store
    jobs: JobEngine
    webhooks: WebhookDispatcher
    faults: FaultInjector
    user: dict[str, Any]
    url_secret: bytes  # signs download URLs; persisted so URLs survive a restart

    def auto_create(self, principal: Principal, product_uuid: str) -> dict[str, Any] | None:
        """Create an unknown product on the fly in the caller's (first) workspace."""
        if principal.organization_uuid is None:
            return None
        client = principal.client_uuid or next(iter(principal.clients(self)), None)
        if client is None:
            return None
        name = f"Auto Product {product_uuid[:8]}"
        return self.store.create_product(principal.organization_uuid, client, {"uuid": product_uuid, "name": name})


# -- authentication ----------------------------------------------------------------
def _login_answer(ctx: SandboxContext, kind: str, org: str | None, client: str | None) -> JSONResponse:
    token = secrets.token_urlsafe(32)
    now = time.time()
    expires = ctx.store.add_token(token, kind, org, client, ctx.config.token_ttl_seconds)
    session = {"created": iso(now), "status": "ACTIVE", "expiration": iso(expires), "lastAccess": iso(now)}
    # LoginUserResultResponseOk types ``errors`` as an object, unlike every other answer:
    # the YAML wins over the prose, so login answers carry ``"errors": {}``.
    return ok({"email": ctx.user["email"], "session": session}, headers={"X-AUTH-TOKEN": token}, errors={})


async def login_token(request: Request) -> Response:
    ctx = ctx_of(request)
    body = await read_json(request)
    given = body.get("personal-access-token")
    if not isinstance(given, str) or not given:
        raise ApiError(400, "BAD_REQUEST")
    if not hmac.compare_digest(given.encode(), ctx.config.resolved_access_token.encode()):
        raise ApiError(403, "FORBIDDEN")
    return _login_answer(ctx, "login", None, None)


async def login(request: Request) -> Response:
    ctx = ctx_of(request)
    body = await read_json(request)
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        raise ApiError(400, "BAD_REQUEST")
    good = email.lower() == ctx.user["email"].lower()
    good = hmac.compare_digest(password.encode(), ctx.user["password"].encode()) and good
    if not good:
        raise ApiError(403, "FORBIDDEN")
    return _login_answer(ctx, "login", None, None)


async def refresh_token(request: Request) -> Response:
    ctx = ctx_of(request)
    authenticate(request, ctx, org_scoped=False)
    org_uuid = request.headers.get("organizationuuid")
    if not org_uuid:
        raise ApiError(403, "MISSING_ORGANIZATION_UUID")
    org = ctx.store.organization(org_uuid)
    if org is None or org["role"] is None:  # unknown, or the demo user is not a member
        raise ApiError(403, "FORBIDDEN")
    client_uuid = request.headers.get("clientuuid") or None
    if client_uuid is not None:
        client = ctx.store.client(client_uuid)
        if client is None or client["organization_uuid"] != org_uuid:
            raise ApiError(403, "INVALID_CLIENT_UUID")
    return _login_answer(ctx, "refresh", org_uuid, client_uuid)


async def logout(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx, org_scoped=False)
    ctx.store.revoke_token(principal.token)
    return ok({})


# -- organizations and workspaces ----------------------------------------------------
async def organizations(request: Request) -> Response:
    ctx = ctx_of(request)
    authenticate(request, ctx, org_scoped=False)
    grid = [
        {"uuid": o["uuid"], "slug": o["slug"], "name": o["name"], "role": o["role"], "created": iso(o["created"]), "shareLinks": []}
        for o in ctx.store.organizations()
    ]
    return ok({"totalCount": len(grid), "grid": grid})


async def client_organizations(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    assert principal.organization_uuid is not None
    org = ctx.store.organization(principal.organization_uuid)
    role = org["role"] if org else None
    grid = [
        {"uuid": c["uuid"], "slug": c["slug"], "name": c["name"], "role": role, "created": iso(c["created"])}
        for c in ctx.store.clients(principal.organization_uuid)
        if principal.client_uuid in (None, c["uuid"])
    ]
    return ok({"totalCount": len(grid), "grid": grid})


# -- products --------------------------------------------------------------------------
async def get_product(request: Request) -> Response:
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    product = visible_product(ctx, principal, request.path_params["uuid"])
    return ok(product_view(ctx.store, product))


async def search_products(request: Request) -> Response:
    """Both search routes: ``/clients/search`` (``clientUuid`` query) and ``/clients/{uuid}/search``."""
    ctx = ctx_of(request)
    principal = authenticate(request, ctx)
    body = await read_json(request, required=False)
    query = request.query_params
    org_uuid = principal.organization_uuid
    assert org_uuid is not None
    if body.get("organizationUuid") not in (None, org_uuid):
        raise ApiError(403, "FORBIDDEN")
    offset, limit = paging(body.get("page", query.get("page")), body.get("size", query.get("size")), default_size=20, max_size=100)
    wanted: list[str] = []
    if "clientUuid" in request.path_params:
        wanted = [request.path_params["clientUuid"]]
    else:
        if query.get("clientUuid"):
            wanted.append(query["clientUuid"])
        extra = body.get("clientUuids") or []
        if not isinstance(extra, list):
            raise ApiError(422, "MISSING_CLIENT_UUID")
        wanted.extend(str(c) for c in extra)
    allowed = principal.clients(ctx)
    if any(c not in allowed for c in wanted):
        raise ApiError(403, "FORBIDDEN")
    clients = wanted or allowed
    term = body.get("searchTerm") or body.get("name") or query.get("searchTerm")
    uuids = body.get("productsUuids") or None
    rows, total = ctx.store.search_products(
        org_uuid, clients, term=str(term) if term else None, uuids=uuids, offset=offset, limit=limit
    )
    statuses = body.get("status") or []
    grid = [product_search_view(ctx.store, r) for r in rows if not statuses or r["status"] in statuses]
    return ok({"totalCount": total, "grid": grid})


# -- health -----------------------------------------------------------------------------
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "activeJobs": ctx_of(request).jobs.active})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return error_response(ApiError(status, "NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED"))


def create_app(ctx: SandboxContext) -> FaultMiddleware:
    """The ASGI app for one sandbox context, wrapped in fault injection."""
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/auth/login/token", login_token, methods=["POST"]),
        Route("/v1/auth/login", login, methods=["POST"]),
        Route("/v1/auth/refresh-token", refresh_token, methods=["POST"]),
        Route("/v1/auth/logout", logout, methods=["POST"]),
        Route("/v1/organizations", organizations, methods=["GET"]),
        Route("/v1/clients/client-organizations", client_organizations, methods=["GET"]),
        Route("/v1/products/renders", routes_renders.trigger_renders, methods=["POST"]),
        Route("/v1/products/clients/search", search_products, methods=["POST"]),
        Route("/v1/products/clients/{clientUuid}/search", search_products, methods=["POST"]),
        Route("/v1/products/{uuid}", get_product, methods=["GET"]),
        *routes_files.ROUTES,
        *routes_webhooks.ROUTES,
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: _api_error, 404: _not_found, 405: _not_found})
    app.state.ctx = ctx
    return FaultMiddleware(app, ctx.faults)
