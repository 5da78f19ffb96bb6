"""``VntanaClient``: typed methods over the VNTANA Admin API, for the reconciler's needs.

Why a class over an injected ``httpx.Client``: tests and the embedded sandbox swap the
transport, never our code (httpx's own design). One instance is shared by all worker threads:
one connection pool, one login, one limiter, one set of counters.

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

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from reconciler.errors import PermanentApiError
from reconciler.settings import ClientSettings

from . import download as _download
from .errors import error_for_response, json_or_none, unexpected_payload
from .limiter import ClientStats, Limiter
from .redact import install_log_filters
from .retry import Idempotency, RetryPolicy
from .session import Session
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
    Workspace,
)

M = TypeVar("M", bound=BaseModel)

install_log_filters()


def _seg(value: str) -> str:
    """A path segment, percent-encoded (uuids come from manifests, i.e. from users)."""
    return quote(str(value), safe="")


class VntanaClient:
    """Thread-safe client of the VNTANA Admin API. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``transport`` or a ready ``http_client`` may be injected (not both); the client
        closes only an ``httpx.Client`` it created itself."""
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
        self.stats = ClientStats()
        """Counters for the run summary; ``client.stats.snapshot()`` reads them."""
        policy = retry_policy or RetryPolicy(max_attempts=settings.max_attempts, max_elapsed=settings.max_elapsed)
        limiter = Limiter(
            max_concurrency=settings.max_concurrency,
            requests_per_second=settings.requests_per_second,
            stats=self.stats,
            sleep=sleep,
        )
        self._session = Session(settings, self._http, limiter=limiter, stats=self.stats, policy=policy, sleep=sleep)
        self.settings = settings

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

    def login(self) -> None:
        """Log in now rather than on the first call (to fail early on a bad token)."""
        self._session.current_token()

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
        workspaces = [self.settings.client_uuid] if self.settings.client_uuid else [w.uuid for w in self.workspaces()]
        body: dict[str, Any] = {"organizationUuid": org, "clientUuids": workspaces}
        if search_term:
            body["searchTerm"] = search_term
        if product_uuids:
            body["productsUuids"] = list(product_uuids)
        return self._search_all(path, endpoint, body, Product, page_size)

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
            "POST", path, endpoint=f"POST {path}", json=body,
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

    def search_attachments(self, product_uuid: str, entity_type: str, page_size: int = 100) -> list[Attachment]:
        """Every attachment of ``entity_type`` (RENDER, TURNTABLE, ...) of a product (all pages)."""
        body = {"productUuid": product_uuid, "entityType": entity_type}
        path = "/v1/attachments/search"
        return self._search_all(path, f"POST {path}", body, Attachment, page_size)

    def sign_download_url(self, attachment_uuid: str, store_type: str, format: str | None = None) -> str:
        """A short-lived URL for the attachment's bytes (``store_type``: RENDER or TURNTABLE)."""
        path = "/v1/storage/download/clients/sign-url"
        body: dict[str, Any] = {"entityUuid": attachment_uuid, "storeType": store_type}
        if format:
            body["format"] = format
        response = self._session.request("POST", path, endpoint=f"POST {path}", json=body)
        data = self._session.body(response, method="POST", path=path)
        return self._parse(SignedUrl, data, "POST", path).location

    def download(
        self,
        attachment: Attachment,
        store_type: str,
        sink: BinaryIO | None = None,
        *,
        format: str | None = None,
        max_resigns: int = 3,
    ) -> DownloadResult:
        """Stream an attachment into ``sink`` (or just hash it) and return sha256, size, type.

        An expired signed URL is signed again (``max_resigns`` times); dropped connections
        resume or restart. Raises DownloadError when the bytes cannot be fetched intact.
        """
        name = f"{store_type.lower()} {attachment.name or attachment.uuid}"
        return _download.download(
            self._session,
            lambda: self.sign_download_url(attachment.uuid, store_type, format),
            name=name, sink=sink, max_resigns=max_resigns,
        )

    def delete_attachment(self, product_uuid: str, uuid: str) -> None:
        """Remove one attachment of a product."""
        path = f"/v1/attachments/{_seg(product_uuid)}/{_seg(uuid)}"
        response = self._session.request("DELETE", path, endpoint="DELETE /v1/attachments/{productUuid}/{uuid}")
        self._session.body(response, method="DELETE", path=path)

    # -- webhooks ---------------------------------------------------------------------------

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

        Not retried after an ambiguous failure (it would register the webhook twice).
        """
        body: dict[str, Any] = {
            "url": url,
            "events": [{"name": e} for e in events],
            "organizationUuid": self.organization_uuid,
            "disable": disable,
            "name": name or "reconciler",
        }
        if description is not None:
            body["description"] = description
        if clients is not None or self.settings.client_uuid:
            body["clients"] = list(clients) if clients is not None else [self.settings.client_uuid]
        path = "/v1/webhooks/"
        response = self._session.request(
            "POST", path, endpoint=f"POST {path}", json=body, idempotency=Idempotency.UNSAFE
        )
        return self._parse(Webhook, self._session.body(response, method="POST", path=path), "POST", path)

    def list_webhooks(self) -> list[Webhook]:
        """The organization's webhooks."""
        path = f"/v1/webhooks/organization/{_seg(self.organization_uuid)}"
        return self._get_grid(path, "GET /v1/webhooks/organization/{organizationUuid}", Webhook)

    def delete_webhook(self, uuid: str) -> None:
        path = f"/v1/webhooks/{_seg(uuid)}"
        response = self._session.request("DELETE", path, endpoint="DELETE /v1/webhooks/{uuid}")
        self._session.body(response, method="DELETE", path=path)

    def rotate_webhook_secret(self, uuid: str) -> Webhook:
        """Give the webhook a new secret; the answer carries it (old deliveries stop verifying)."""
        path = f"/v1/webhooks/{_seg(uuid)}/secret"
        response = self._session.request("PATCH", path, endpoint="PATCH /v1/webhooks/{uuid}/secret")
        return self._parse(Webhook, self._session.body(response, method="PATCH", path=path), "PATCH", path)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _parse(model: type[M], data: Any, method: str, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3])
            raise unexpected_payload(problem, method=method, path=path) from exc

    def _get_grid(self, path: str, endpoint: str, item: type[M]) -> list[M]:
        response = self._session.request("GET", path, endpoint=endpoint)
        grid = self._parse(Grid[item], self._session.body(response, method="GET", path=path) or {}, "GET", path)  # type: ignore[valid-type]
        return list(grid.grid)

    def _search_all(self, path: str, endpoint: str, body: Mapping[str, Any], item: type[M], page_size: int) -> list[M]:
        """Follow the pages (1-based) of a POST search until ``totalCount`` items are collected."""
        if page_size < 1:
            raise ValueError("page_size must be positive")
        items: list[M] = []
        page = 1
        while True:
            response = self._session.request("POST", path, endpoint=endpoint, json={**body, "page": page, "size": page_size})
            data = self._session.body(response, method="POST", path=path) or {}
            grid = self._parse(Grid[item], data, "POST", path)  # type: ignore[valid-type]
            items.extend(grid.grid)
            if not grid.grid or len(items) >= grid.total_count:
                return items
            if page * page_size > grid.total_count + page_size:  # a server that never ends
                raise PermanentApiError(
                    f"paging did not end after {page} pages of {page_size} (totalCount {grid.total_count})",
                    method="POST", path=path,
                )
            page += 1


def _per_product_errors(response: httpx.Response) -> bool:
    data = json_or_none(response)
    detail = data.get("response") if isinstance(data, dict) else None
    return isinstance(detail, dict) and isinstance(detail.get("errors"), dict) and bool(detail["errors"])


def _server_date(response: httpx.Response) -> datetime | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
