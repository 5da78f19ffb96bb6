"""``VntanaClient``: typed methods over the VNTANA Admin API, for the reconciler's needs.

Why a class over an injected ``httpx.Client``: tests and the embedded sandbox swap the
transport, never our code (httpx's own design). One instance is shared by all worker threads:
one connection pool, one login, one limiter, one set of counters.

Where VNTANA's own documents disagree (vntana-docs-facts.md), the client works with every
reading rather than betting on one:
* attachment search pages from 0, product search from 1 (each as its guide says);
* ``entityType`` is sent to the attachment search but never trusted: results are filtered
  here by the ``entityType`` each entry carries (``list_attachments`` without a type serves
  RENDER and TURNTABLE in one search);
* renders download by ``comments/images/{blobId}`` or by a signed URL sent with ``Origin``
  (``download_route``; ``auto`` keeps the first that works for the run);
* webhook routes in the guide's or the YAML's spelling (the other on a 404); events sent as
  the catalogue's objects; workspaces by slug, by uuid if the slug is refused.

Invariants:
* Every method returns pydantic models from ``wire.py`` or raises from the project's error
  tree (``ApiError`` subclasses, ``DownloadError``, ``ConfigError``); no httpx exception leaves.
* ``organizationUuid``/``clientUuid`` are added from the settings (or the discovered
  organization), so callers pass only what varies.
* ``repr(client)`` shows the URL and scope, never a token.

Re-sending ``trigger_renders`` may pay for renders twice; see its docstring for when it is
retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from reconciler.errors import ApiError, ConfigError, DownloadError, PermanentApiError
from reconciler.settings import ClientSettings

from . import download as _download
from .bodies import BodyPool
from .download import CommentsSource, RouteUnavailable, SignedUrlSource
from .errors import describe_status, error_for_response, json_or_none, unexpected_payload
from .limiter import ClientStats, Limiter
from .redact import install_log_filters
from .retry import Idempotency, RetryPolicy
from .session import LoginInfo, Session, SharedSession
from .wire import (
    Attachment,
    DownloadResult,
    Grid,
    Organization,
    Product,
    RenderResponse,
    SignedUrl,
    TriggerResult,
    Webhook,
    WebhookEvent,
    WebhookEventCategory,
    Workspace,
    per_product_errors,
)

log = logging.getLogger("reconciler.client")

RENDER_TYPES = ("RENDER", "TURNTABLE")
"""The attachment ``entityType`` values of render results: the still, and the MP4 or GIF."""

ROUTES = ("comments", "signed-url")
"""Download routes in the order ``auto`` tries them: the comments route is what the renders
guide and VNTANA's own client use, and costs one request instead of two."""

# Webhook routes as the guide spells them and as the OpenAPI does (vntana-docs-facts.md §7).
WEBHOOK_PATHS = {
    "guide": {
        "create": "/v1/webhooks",
        "list": "/v1/webhooks/organizations/{org}",
        "events": "/v1/webhooks/events",
    },
    "yaml": {
        "create": "/v1/webhooks/",
        "list": "/v1/webhooks/organization/{org}",
        "events": "/v1/webhooks/events/",
    },
}


_REDIRECTS = (301, 302, 307, 308)


@dataclass(frozen=True)
class ProbeResult:
    """What ``probe_download`` found for one route: whether it serves the file, and how."""

    route: str
    ok: bool
    detail: str
    status: int | None = None
    head: bytes = b""
    content_type: str | None = None


M = TypeVar("M", bound=BaseModel)

install_log_filters()


def _seg(value: str) -> str:
    """A path segment, percent-encoded (uuids come from manifests, i.e. from users)."""
    return quote(str(value), safe="")


class VntanaClient:
    """Thread-safe client of the VNTANA Admin API. Use as a context manager or call ``close()``."""

    stats: ClientStats
    _limiter: Limiter
    _session: Session
    _bodies: BodyPool | None

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        shared: SharedSession | None = None,
        _parent: VntanaClient | None = None,
    ) -> None:
        """``transport`` or a ready ``http_client`` may be injected (not both); the client
        closes only an ``httpx.Client`` it created itself. ``shared``: one login and one
        throttle with other processes (``apply --workers``), instead of this client's own.
        ``_parent``: see ``for_workspace``."""
        if transport is not None and http_client is not None:
            raise ValueError("pass either transport or http_client, not both")
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
            # Unbounded pool: API concurrency is capped by the limiter, downloads by the
            # executor's --parallelism; a second cap here would only add PoolTimeouts.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        # File GETs over http.client into a reused buffer (bodies.py: httpx's body path costs more
        # CPU than hashing); not when a transport or an httpx client is injected (tests fake the far end).
        self._bodies = (
            _parent._bodies
            if _parent
            else BodyPool(timeout=settings.timeout, connect_timeout=min(settings.timeout, 10.0))
            if self._owns_http and transport is None
            else None
        )
        self.stats = _parent.stats if _parent else ClientStats()
        """Counters for the run summary; ``client.stats.snapshot()`` reads them."""
        policy = retry_policy or RetryPolicy(
            max_attempts=settings.max_attempts, max_elapsed=settings.max_elapsed
        )
        limiter = (
            _parent._limiter
            if _parent
            else Limiter(
                max_concurrency=settings.max_concurrency,
                requests_per_second=settings.requests_per_second,
                stats=self.stats,
                sleep=sleep,
            )
        )
        self._limiter, self._policy, self._sleep = limiter, policy, sleep
        self._session = Session(
            settings,
            self._http,
            limiter=limiter,
            stats=self.stats,
            policy=policy,
            sleep=sleep,
            shared=shared,
            parent=_parent._session if _parent else None,
        )
        self._workspace_clients: dict[str, VntanaClient] = {}
        self.settings = settings
        self._lock = threading.Lock()
        self._route: str | None = None if settings.download_route == "auto" else settings.download_route
        self._webhook_spelling: str | None = (
            None if settings.webhook_paths == "auto" else settings.webhook_paths
        )
        self._product_workspaces: dict[str, str | None] = {}
        self._workspace_slugs: dict[str, str | None] | None = None
        self._events: list[tuple[str | None, WebhookEvent]] | None = None

    # -- lifecycle and introspection --------------------------------------------------------

    def __enter__(self) -> VntanaClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        if self._bodies is not None:
            self._bodies.close()

    def __repr__(self) -> str:
        scope = self._session.organization_uuid or "?"
        if self.settings.client_uuid:
            scope += f"/{self.settings.client_uuid}"
        return f"VntanaClient(api_url={self.settings.api_url!r}, scope={scope!r})"

    @property
    def organization_uuid(self) -> str:
        """The organization in use (configured, or discovered at login)."""
        if self._session.organization_uuid is None:
            self.login()
        assert self._session.organization_uuid is not None
        return self._session.organization_uuid

    def for_workspace(self, workspace: str | None) -> VntanaClient:
        """A client of workspace ``workspace`` (uuid; None: the organization, no workspace step) of
        the same organization, for manifests that name one: its requests go with a token of that workspace, its triggers name it. It
        shares this client's connections, rate limit and counters, and its login: the
        organization token is taken from this one for the workspace step (skipped for Owners and
        Admins), so no second login with the personal access token revokes this one's token."""
        if workspace == self.settings.client_uuid:
            return self
        key = workspace or ""
        with self._lock:
            found = self._workspace_clients.get(key)
            if found is None:
                settings = self.settings.model_copy(update={"client_uuid": workspace})
                found = VntanaClient(
                    settings,
                    http_client=self._http,
                    retry_policy=self._policy,
                    sleep=self._sleep,
                    _parent=self,
                )
                if self._route is not None:
                    found._route = self._route
                self._workspace_clients[key] = found
            return found

    def login(self) -> None:
        """Log in now rather than on the first call (to fail early on a bad token)."""
        self._session.current_token()

    @property
    def login_info(self) -> LoginInfo:
        """The role, organizations and workspace step of the current login (logs in if needed)."""
        self.login()
        return self._session.login_info

    @property
    def download_route(self) -> str | None:
        """The route downloads use: configured, or the one ``auto`` found (None: none yet)."""
        return self._route

    @property
    def webhook_spelling(self) -> str | None:
        """``guide`` or ``yaml``: the webhook routes configured or found to work (None: not yet)."""
        return self._webhook_spelling

    def server_clock(self) -> tuple[datetime | None, datetime]:
        """(the API's ``Date``, the local time it was received at): for clock-skew checks."""
        path = "/v1/organizations"
        sent = time.time()
        response = self._session.request("GET", path, endpoint=f"GET {path}")
        local = datetime.fromtimestamp((sent + time.time()) / 2, UTC)
        return _server_date(response), local

    # -- organizations, workspaces, products ------------------------------------------------

    def organizations(self) -> list[Organization]:
        """The organizations the token's user belongs to."""
        return self._get_grid("/v1/organizations", "GET /v1/organizations", Organization)

    def workspaces(self) -> list[Workspace]:
        """The workspaces ("clients") of the current organization."""
        path = "/v1/clients/client-organizations"
        return self._get_grid(path, f"GET {path}", Workspace)

    def get_product(self, uuid: str) -> Product:
        """One product; PermanentApiError (404, PRODUCT_NOT_FOUND) when unknown."""
        path = f"/v1/products/{_seg(uuid)}"
        response = self._session.request("GET", path, endpoint="GET /v1/products/{uuid}")
        return self._parse(Product, self._session.body(response, method="GET", path=path), "GET", path)

    def search_products(
        self,
        *,
        search_term: str | None = None,
        product_uuids: Sequence[str] | None = None,
        page_size: int = 100,
    ) -> list[Product]:
        """All products matching the filters, in the configured workspace if any (all pages)."""
        org = self.organization_uuid
        if self.settings.client_uuid:
            path = f"/v1/products/clients/{_seg(self.settings.client_uuid)}/search"
            endpoint = "POST /v1/products/clients/{clientUuid}/search"
        else:
            path, endpoint = "/v1/products/clients/search", "POST /v1/products/clients/search"
        # The organization-wide route wants the workspaces named (``clientUuid`` is required
        # there), so without a configured workspace, search all of the organization's.
        workspaces = (
            [self.settings.client_uuid] if self.settings.client_uuid else [w.uuid for w in self.workspaces()]
        )
        body: dict[str, Any] = {"organizationUuid": org, "clientUuids": workspaces}
        if search_term:
            body["searchTerm"] = search_term
        if product_uuids:
            body["productsUuids"] = list(product_uuids)
        # Y:4765 makes a clientUuid query parameter required on the multi-workspace route
        # (VNTANA's client sends one); product search pages from 1 (searching-products.md).
        params = {"clientUuid": workspaces[0]} if workspaces and not self.settings.client_uuid else None
        found = self._search_all(path, endpoint, body, Product, page_size, first_page=1, params=params)
        # Drafts never appear in the platform's results (product-creation.md): nor here.
        return [p for p in found if (p.status or "").upper() != "DRAFT"]

    # -- renders ----------------------------------------------------------------------------

    def trigger_renders(
        self, product_uuids: Iterable[str], spec: Mapping[str, Any], *, idempotent_retry: bool = False
    ) -> TriggerResult:
        """Trigger one render batch: the same ``spec`` for every product in ``product_uuids``.

        ``spec`` holds the body fields except ``productUuids`` (imageWidth, imageHeight,
        imageFormat, imageBackground, transparentBackground, turntable{...}); the client adds
        the products and the organization/workspace. Per-product rejections come back in
        ``TriggerResult.errors`` ({uuid: code}); the rest are in ``accepted``.

        Retries: each trigger costs money and replaces the product's renders, so by default it
        is re-sent only when the platform certainly did not process it: a 429 or a 503 (refused
        before any work, RFC 9110), or a failure before the request left (connect error /
        timeout). After a 500/502/504, a read timeout or a dropped connection the request may
        have been accepted, so ``TransientApiError`` goes
        to the caller, which can look at the product's attachments before deciding.
        ``idempotent_retry=True`` retries those too, for callers that accept a possible
        double render.
        """
        products = list(dict.fromkeys(product_uuids))
        if not products:
            raise ValueError("trigger_renders needs at least one product uuid")
        body = {k: v for k, v in spec.items() if k != "productUuids"}
        body["productUuids"] = products
        body.setdefault("organizationUuid", self.organization_uuid)
        if self.settings.client_uuid:
            body.setdefault("clientUuid", self.settings.client_uuid)
        path = "/v1/products/renders"
        sent_at = datetime.now(UTC)
        response = self._session.request(
            "POST",
            path,
            endpoint=f"POST {path}",
            json=body,
            idempotency=Idempotency.SAFE if idempotent_retry else Idempotency.UNSAFE,
            # When no product at all is accepted the platform answers 404, still with the
            # per-product codes in response.errors: that is a result, not a failure.
            pass_statuses=(404,),
        )
        if response.is_error and not _per_product_errors(response):
            raise error_for_response(response, method="POST", path=path)
        data = self._session.body(response, method="POST", path=path, allow_failure=True)
        result = self._parse(RenderResponse, data or {}, "POST", path)
        if not result.uuids and not result.errors:
            self._session.body(response, method="POST", path=path)  # success: false, no detail: raise
        return TriggerResult(
            accepted=tuple(result.uuids),
            errors=dict(result.errors),
            triggered_at=_server_date(response) or sent_at.replace(microsecond=0),
            sent_at=sent_at,
        )

    # -- attachments and downloads ----------------------------------------------------------

    def list_attachments(
        self, product_uuid: str, entity_type: str | None = None, *, page_size: int = 100
    ) -> list[Attachment]:
        """Every attachment of a product (all pages), or only those of ``entity_type``.

        The type is sent as a filter but not trusted (VNTANA's own client says the server
        ignores it, upload-attachments.md filters in the client): entries are kept by the
        ``entityType`` they carry. Without a type, one search serves RENDER and TURNTABLE
        (and shows everything else on the product, for what is left alone).
        """
        body: dict[str, Any] = {"productUuid": product_uuid, "sortDirection": "ASC"}
        wanted = entity_type.upper() if entity_type else None
        if wanted:
            body["entityType"] = wanted
        path = "/v1/attachments/search"
        # Attachment search pages from 0 (upload-attachments.md; VNTANA's client sends page 0).
        found = self._search_all(path, f"POST {path}", body, Attachment, page_size, first_page=0)
        if wanted is None:
            return found
        return [a for a in found if (a.entity_type or "").upper() == wanted]

    def search_attachments(
        self, product_uuid: str, entity_type: str, page_size: int = 100
    ) -> list[Attachment]:
        """The attachments of ``entity_type`` (RENDER, TURNTABLE, ...) of a product, filtered here."""
        return self.list_attachments(product_uuid, entity_type, page_size=page_size)

    def attachment_page(
        self, product_uuid: str, page: int, size: int, entity_type: str | None = None
    ) -> Grid[Attachment]:
        """One raw page of the attachment search, unfiltered here (for ``reconciler doctor``)."""
        body: dict[str, Any] = {
            "productUuid": product_uuid,
            "sortDirection": "ASC",
            "page": page,
            "size": size,
        }
        if entity_type:
            body["entityType"] = entity_type
        path = "/v1/attachments/search"
        response = self._session.request("POST", path, endpoint=f"POST {path}", json=body)
        data = self._session.body(response, method="POST", path=path) or {}
        return self._parse(Grid[Attachment], data, "POST", path)

    def sign_download_url(self, attachment_uuid: str, store_type: str, format: str | None = None) -> str:
        """A short-lived URL for the attachment's bytes (``store_type``: RENDER or TURNTABLE).

        Sent with an ``Origin`` header (the ``origin`` setting): download-model.md sends one, and
        ``MISSING_ORIGIN`` is among this operation's documented refusals (Y:18171)."""
        path = "/v1/storage/download/clients/sign-url"
        body: dict[str, Any] = {"entityUuid": attachment_uuid, "storeType": store_type}
        if format:
            body["format"] = format
        response = self._session.request(
            "POST", path, endpoint=f"POST {path}", json=body, headers={"Origin": self.settings.origin}
        )
        data = self._session.body(response, method="POST", path=path)
        return self._parse(SignedUrl, data, "POST", path).location

    def download(
        self,
        attachment: Attachment,
        store_type: str | None = None,
        sink: BinaryIO | None = None,
        *,
        format: str | None = None,
        max_resigns: int = 3,
    ) -> DownloadResult:
        """Stream an attachment into ``sink`` (or just hash it) and return sha256, size, type.

        The route is the ``download_route`` setting; with ``auto``, the route found to work
        earlier in this run, else each route in ``ROUTES`` order until one serves the file
        (then it is kept). Renewed access (a re-signed URL, a fresh login) and dropped
        connections are handled inside a route. ``store_type`` defaults to the attachment's
        entityType. Raises DownloadError when no route delivers the bytes intact.
        """
        kind = (store_type or attachment.entity_type or "RENDER").upper()
        name = f"{kind.lower()} {attachment.name or attachment.uuid}"
        passed_over: list[str] = []
        for route in self._route_order():
            try:
                source = self._source(route, attachment, kind, format, name, max_resigns)
                result = _download.download(self._session, source, name=name, sink=sink, bodies=self._bodies)
            except RouteUnavailable as exc:
                log.info("%s: the %s route does not serve it (%s)", name, route, exc.reason)
                passed_over.append(f"{route}: {exc.reason}")
                continue
            with self._lock:
                if self._route is None:
                    self._route = route
                    log.info("downloads use the %s route for this run", route)
            return result
        raise DownloadError(
            f"{name}: no download route serves it ({'; '.join(passed_over)})",
            hint="run 'reconciler doctor' to see which routes work, then set download_route",
        )

    def probe_download(
        self, attachment: Attachment, route: str, store_type: str | None = None
    ) -> ProbeResult:
        """Whether ``route`` serves this attachment, reading its first 16 bytes only (``Range``)."""
        kind = (store_type or attachment.entity_type or "RENDER").upper()
        name = f"{kind.lower()} {attachment.name or attachment.uuid}"
        try:
            source = self._source(route, attachment, kind, None, name, 1)
            status, head, content_type = _download.probe(self._session, source)
        except RouteUnavailable as exc:
            return ProbeResult(route, False, exc.reason)
        except (ApiError, DownloadError) as exc:
            return ProbeResult(route, False, exc.message)
        ranged = "honours Range" if status == 206 else "ignores Range (sent the whole file; 16 bytes read)"
        return ProbeResult(
            route,
            True,
            f"HTTP {status}, {content_type or 'no content type'}, {ranged}",
            status=status,
            head=head,
            content_type=content_type,
        )

    def product_workspace(self, product_uuid: str) -> str | None:
        """The workspace ("client") uuid a product lives in (``GET /v1/products/{uuid}``, cached)."""
        with self._lock:
            if product_uuid in self._product_workspaces:
                return self._product_workspaces[product_uuid]
        found = self.get_product(product_uuid).client_uuid
        with self._lock:
            self._product_workspaces[product_uuid] = found
        return found

    def delete_attachment(self, product_uuid: str, uuid: str) -> None:
        """Remove one attachment of a product."""
        path = f"/v1/attachments/{_seg(product_uuid)}/{_seg(uuid)}"
        response = self._session.request(
            "DELETE", path, endpoint="DELETE /v1/attachments/{productUuid}/{uuid}"
        )
        self._session.body(response, method="DELETE", path=path)

    def _route_order(self) -> list[str]:
        if self.settings.download_route != "auto":
            return [self.settings.download_route]
        with self._lock:
            chosen = self._route
        return [chosen, *(r for r in ROUTES if r != chosen)] if chosen else list(ROUTES)

    def _source(
        self, route: str, attachment: Attachment, kind: str, format: str | None, name: str, max_resigns: int
    ) -> SignedUrlSource | CommentsSource:
        if route == "signed-url":
            return SignedUrlSource(
                lambda: self.sign_download_url(attachment.uuid, kind, format),
                self._session,
                name,
                max_resigns,
            )
        if not attachment.blob_id:
            raise RouteUnavailable(route, "the attachment has no blobId")
        workspace = self.settings.client_uuid
        if not workspace and attachment.product_uuid:
            try:
                workspace = self.product_workspace(attachment.product_uuid)
            except ApiError as exc:
                raise RouteUnavailable(route, f"cannot tell the product's workspace ({exc.message})") from exc
        if not workspace:
            raise RouteUnavailable(route, "the product's workspace (clientUuid) is unknown")
        return CommentsSource(self._session, attachment.blob_id, workspace, name, max_resigns)

    # -- webhooks ---------------------------------------------------------------------------

    def webhook_events(self, *, spelling: str | None = None) -> list[WebhookEvent]:
        """The platform's event catalogue (``GET /v1/webhooks/events``), flattened; cached.

        With ``spelling``, read afresh on that route spelling only (for doctor)."""
        if spelling is not None:
            response, path = self._webhook_request("events", "GET", spelling=spelling)
            data = self._session.body(response, method="GET", path=path) or {}
            return [
                e for c in self._parse(Grid[WebhookEventCategory], data, "GET", path).grid for e in c.events
            ]
        return [event for _, event in self._catalogue()]

    def create_webhook(
        self,
        url: str,
        events: Iterable[str],
        *,
        name: str | None = None,
        description: str | None = None,
        clients: Sequence[str] | None = None,
        disable: bool = False,
    ) -> Webhook:
        """Register a webhook for ``events`` (e.g. "renders.completed"); the answer has its secret.

        Events go as the catalogue's objects ``{name, description, uuid, category}``
        (webhooks.md copies them from ``GET /v1/webhooks/events``). ``clients`` default to the
        configured workspace, by slug as in the guide's example, by uuid if the slug is
        refused; none means the whole organization. Not retried after an ambiguous failure (it
        would register the webhook twice).
        """
        wanted = list(dict.fromkeys(events))
        catalogue = {event.name: (category, event) for category, event in self._catalogue()}
        missing = [e for e in wanted if catalogue and e not in catalogue]
        if missing:
            raise ConfigError(
                f"the platform's webhook event catalogue has no {', '.join(missing)}",
                hint="it offers: " + ", ".join(sorted(catalogue)),
            )
        objects = []
        for event_name in wanted:
            if event_name not in catalogue:  # no catalogue could be read: the name alone
                objects.append({"name": event_name})
                continue
            category, event = catalogue[event_name]
            entry = {
                "name": event.name,
                "description": event.description,
                "uuid": event.uuid,
                "category": category,
            }
            objects.append({k: v for k, v in entry.items() if v is not None})
        body: dict[str, Any] = {
            "url": url,
            "events": objects,
            "organizationUuid": self.organization_uuid,
            "disable": disable,
            "name": name or "reconciler",
        }
        if description is not None:
            body["description"] = description
        for attempt, workspaces in enumerate(choices := self._webhook_clients(clients)):
            if workspaces is not None:
                body["clients"] = workspaces
            try:
                response, path = self._webhook_request(
                    "create", "POST", json=body, idempotency=Idempotency.UNSAFE
                )
            except PermanentApiError as exc:
                if attempt + 1 < len(choices) and exc.status in (400, 404, 409, 422):
                    log.info(
                        "webhook workspaces by slug refused (%s); sending uuids",
                        describe_status(exc.status, exc.codes),
                    )
                    continue
                raise
            return self._parse(Webhook, self._session.body(response, method="POST", path=path), "POST", path)
        raise AssertionError("unreachable: the last choice re-raises")  # pragma: no cover

    def list_webhooks(self, *, spelling: str | None = None) -> list[Webhook]:
        """The organization's webhooks (``spelling``: only that route spelling, for doctor)."""
        response, path = self._webhook_request("list", "GET", spelling=spelling)
        grid = self._parse(
            Grid[Webhook], self._session.body(response, method="GET", path=path) or {}, "GET", path
        )
        return list(grid.grid)

    def delete_webhook(self, uuid: str) -> None:
        path = f"/v1/webhooks/{_seg(uuid)}"
        response = self._session.request("DELETE", path, endpoint="DELETE /v1/webhooks/{uuid}")
        self._session.body(response, method="DELETE", path=path)

    def rotate_webhook_secret(self, uuid: str) -> Webhook:
        """Give the webhook a new secret; the answer carries it (old deliveries stop verifying)."""
        path = f"/v1/webhooks/{_seg(uuid)}/secret"
        response = self._session.request("PATCH", path, endpoint="PATCH /v1/webhooks/{uuid}/secret")
        return self._parse(Webhook, self._session.body(response, method="PATCH", path=path), "PATCH", path)

    def _webhook_clients(self, clients: Sequence[str] | None) -> list[list[str] | None]:
        """The ``clients`` values to try in turn."""
        if clients is not None:
            return [list(clients)]
        workspace = self.settings.client_uuid
        if not workspace:
            return [None]
        slug = self._workspace_slug(workspace)
        return [[slug], [workspace]] if slug and slug != workspace else [[workspace]]

    def _workspace_slug(self, workspace: str) -> str | None:
        with self._lock:
            known = self._workspace_slugs
        if known is None:
            try:
                known = {w.uuid: w.slug for w in self.workspaces()}
            except ApiError as exc:
                log.info("cannot list the workspaces for their slugs (%s); using uuids", exc.message)
                known = {}
            with self._lock:
                self._workspace_slugs = known
        return known.get(workspace)

    def _catalogue(self) -> list[tuple[str | None, WebhookEvent]]:
        with self._lock:
            if self._events is not None:
                return self._events
        try:
            response, path = self._webhook_request("events", "GET")
            data = self._session.body(response, method="GET", path=path) or {}
            grid = self._parse(Grid[WebhookEventCategory], data, "GET", path)
            events = [(c.category, e) for c in grid.grid for e in c.events]
        except PermanentApiError as exc:
            if exc.status != 404:
                raise
            log.warning(
                "the webhook event catalogue is not available (%s); sending event names only",
                describe_status(exc.status, exc.codes),
            )
            events = []
        with self._lock:
            self._events = events
        return events

    def _webhook_request(
        self, operation: str, method: str, *, spelling: str | None = None, **kw: Any
    ) -> tuple[httpx.Response, str]:
        """``operation`` on the route spelling that works: the remembered one, else each in turn.

        A 404 whose only code is NOT_FOUND (or none) means "no such route" and tries the other
        spelling, as does a redirect (a framework redirecting the slash; redirects are not
        followed with the token); any other answer is the operation's own."""
        with self._lock:
            first = self._webhook_spelling or "guide"
        probing = spelling is not None
        if spelling is not None:
            order = [spelling]
        elif self.settings.webhook_paths != "auto":
            order = [self.settings.webhook_paths]
        else:
            order = [first, *(s for s in ("guide", "yaml") if s != first)]
        for index, name in enumerate(order):
            template = WEBHOOK_PATHS[name][operation]
            path = template.replace("{org}", _seg(self.organization_uuid))
            endpoint = f"{method} {template.replace('{org}', '{organizationUuid}')}"
            try:
                response = self._session.request(method, path, endpoint=endpoint, **kw)
            except PermanentApiError as exc:
                no_route = (exc.status == 404 and set(exc.codes) <= {"NOT_FOUND"}) or exc.status in _REDIRECTS
                if index + 1 < len(order) and no_route:
                    continue
                raise
            if not probing:
                with self._lock:
                    if self._webhook_spelling is None:
                        self._webhook_spelling = name
            return response, path
        raise AssertionError("unreachable: the last spelling re-raises")  # pragma: no cover

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _parse(model: type[M], data: Any, method: str, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problem = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3]
            )
            raise unexpected_payload(problem, method=method, path=path) from exc

    def _get_grid(self, path: str, endpoint: str, item: type[M]) -> list[M]:
        response = self._session.request("GET", path, endpoint=endpoint)
        grid = self._parse(
            _grid_of(item), self._session.body(response, method="GET", path=path) or {}, "GET", path
        )
        return list(grid.grid)

    def _search_all(
        self,
        path: str,
        endpoint: str,
        body: Mapping[str, Any],
        item: type[M],
        page_size: int,
        *,
        first_page: int,
        params: Mapping[str, Any] | None = None,
    ) -> list[M]:
        """Follow the pages of a POST search, from ``first_page``, until ``totalCount`` items are in.

        Each endpoint says where its pages start (attachments 0, products 1). Items are kept
        once by uuid; a page that brings nothing new before ``totalCount`` is reached means the
        server is not paging as asked, which is an error rather than a silent short list.
        """
        if page_size < 1:
            raise ValueError("page_size must be positive")
        items: list[M] = []
        seen: set[object] = set()
        page = first_page
        while True:
            response = self._session.request(
                "POST", path, endpoint=endpoint, params=params, json={**body, "page": page, "size": page_size}
            )
            data = self._session.body(response, method="POST", path=path) or {}
            grid = self._parse(_grid_of(item), data, "POST", path)
            fresh = [i for i in grid.grid if _identity(i) not in seen]
            seen.update(_identity(i) for i in fresh)
            items.extend(fresh)
            if not grid.grid or len(items) >= grid.total_count:
                return items
            if not fresh:
                raise PermanentApiError(
                    f"page {page} repeated earlier results ({len(items)} of totalCount {grid.total_count} "
                    f"collected): the server is not paging as expected",
                    method="POST",
                    path=path,
                    hint="run 'reconciler doctor' to check the page base",
                )
            if (page - first_page) * page_size > grid.total_count + page_size:  # a server that never ends
                raise PermanentApiError(
                    f"paging did not end after {page - first_page + 1} pages of {page_size} "
                    f"(totalCount {grid.total_count})",
                    method="POST",
                    path=path,
                )
            page += 1


def _per_product_errors(response: httpx.Response) -> bool:
    data = json_or_none(response)
    detail = data.get("response") if isinstance(data, dict) else None
    return isinstance(detail, dict) and bool(per_product_errors(detail.get("errors")))


def _server_date(response: httpx.Response) -> datetime | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _grid_of(item: type[M]) -> type[Grid[M]]:
    """The page model for ``item``: pydantic builds the generic at run time, which mypy cannot follow."""
    return Grid[item]  # type: ignore[valid-type]


def _identity(item: object) -> object:
    """What makes a search result the same item on another page: its uuid, else the object itself."""
    uuid = getattr(item, "uuid", None)
    return id(item) if uuid is None else uuid
