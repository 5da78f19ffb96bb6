"""Pydantic models of the VNTANA payloads the reconciler reads, and the client's typed results.

Why models at all: the rest of the program works with typed objects, not dicts, and a payload
that does not fit is reported once, here, as an API error rather than as a KeyError deep in the
executor. Names follow Python (``entity_type``); the wire's camelCase is the alias.

Invariants: every model ignores unknown fields (the platform adds fields over time) and is
frozen; only the fields the reconciler uses are declared, each optional unless the reconciler
cannot work without it (``uuid``). Secrets (the webhook secret) are ``SecretStr``.
Source of truth for shapes: /work/shared/reference/vntana-admin-api-subset.yaml.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.alias_generators import to_camel

T = TypeVar("T")


def _utc(moment: datetime) -> datetime:
    # The platform sends ``created``/``updated`` without a zone ("2023-08-28T19:03:53.198",
    # upload-attachments.md); its clock is UTC. Read that way, a zone-less time compares
    # correctly with the ``Date`` header of the trigger; a time with a zone keeps its own.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""A platform timestamp, always timezone-aware (zone-less means UTC)."""


def error_code(entry: Any) -> str | None:
    """The code of one error entry: ``"PRODUCT_NOT_FOUND"`` or ``{"code": "PRODUCT_NOT_FOUND", ...}``.

    VNTANA's pages disagree on the shape (error-codes.md: strings; common-workflows.md: objects),
    so both are read; an object without a recognisable code field gives None.
    """
    if isinstance(entry, str):
        return entry.strip() or None
    if isinstance(entry, int) and not isinstance(entry, bool):
        return str(entry)
    if isinstance(entry, dict):
        for key in ("code", "errorCode", "error", "name", "type"):
            value = entry.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def error_codes(errors: Any) -> list[str]:
    """Every code in an envelope's ``errors``: a list, an object of entries, one entry, or absent."""
    if isinstance(errors, list):
        entries: list[Any] = errors
    elif isinstance(errors, dict):
        entries = [errors] if error_code(errors) and "message" in errors else list(errors.values())
    elif errors is None:
        entries = []
    else:
        entries = [errors]
    codes = []
    for entry in entries:
        if isinstance(entry, list):
            codes += error_codes(entry)
        elif (code := error_code(entry)) is not None:
            codes.append(code)
    return codes


def per_product_errors(errors: Any) -> dict[str, str]:
    """``response.errors`` of the render trigger as {product uuid: code}.

    The YAML says a map of uuid to code; entries may be objects (as elsewhere), a list of
    codes for one product, or a list of objects that name their product.
    """
    out: dict[str, str] = {}
    if isinstance(errors, dict):
        for uuid, entry in errors.items():
            codes = error_codes(entry if isinstance(entry, list) else [entry])
            out[str(uuid)] = ", ".join(codes) or "UNKNOWN_ERROR"
    elif isinstance(errors, list):
        for entry in errors:
            if not isinstance(entry, dict):
                continue
            uuid = entry.get("productUuid") or entry.get("uuid") or entry.get("entityUuid")
            if isinstance(uuid, str) and uuid:
                out[uuid] = error_code(entry) or "UNKNOWN_ERROR"
    return out


class WireModel(BaseModel):
    """Base: camelCase aliases, unknown fields ignored, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class Envelope(WireModel):
    """``{"success", "errors", "response"}``, the wrapper of every JSON answer."""

    success: bool | None = None
    errors: Any = None  # a list of codes on most operations, an object on the login ones
    response: Any = None


class Grid(WireModel, Generic[T]):
    """A page of a search: ``{"totalCount", "grid"}``."""

    total_count: int = 0
    grid: list[T] = Field(default_factory=list)

    @field_validator("grid", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class Organization(WireModel):
    """An organization the user belongs to (``GET /v1/organizations``)."""

    uuid: str
    name: str | None = None
    slug: str | None = None
    role: str | None = None


class Workspace(WireModel):
    """A workspace, called "client" by the API (``GET /v1/clients/client-organizations``)."""

    uuid: str
    name: str | None = None
    slug: str | None = None
    role: str | None = None


class Product(WireModel):
    """A product, from ``GET /v1/products/{uuid}`` or a product search."""

    uuid: str
    name: str | None = None
    description: str | None = None
    client_uuid: str | None = None
    organization_uuid: str | None = None
    status: str | None = None
    conversion_status: str | None = None
    asset_type: str | None = None
    created: UtcDatetime | None = None
    updated: UtcDatetime | None = None


class Attachment(WireModel):
    """A file attached to a product: renders and turntables live here (``AttachmentResponseModel``).

    ``uuid`` is what the sign-url call wants as ``entityUuid`` (not ``entity_uuid``/``blob_id``).
    """

    uuid: str
    name: str | None = None
    entity_type: str | None = None
    entity_uuid: str | None = None
    blob_id: str | None = None
    product_uuid: str | None = None
    type: str | None = None
    malware_processing_status: str | None = None
    created: UtcDatetime | None = None
    updated: UtcDatetime | None = None


class WebhookEvent(WireModel):
    """One event of the catalogue (``EventObjectModel``); webhook creation sends it back whole."""

    name: str
    description: str | None = None
    uuid: str | None = None


class WebhookEventCategory(WireModel):
    """A category of the catalogue (``EventResponseModel``): ``renders``, ``turntable``, ..."""

    category: str | None = None
    uuid: str | None = None
    events: list[WebhookEvent] = Field(default_factory=list)


class Webhook(WireModel):
    """A registered webhook (``WebhookResponseModel``); ``secret`` keys the HMAC of deliveries."""

    uuid: str
    name: str | None = None
    description: str | None = None
    url: str | None = None
    disable: bool | None = None
    secret: SecretStr | None = None
    organization_uuid: str | None = None
    clients: list[str] = Field(default_factory=list)
    events: Grid[WebhookEventCategory] | None = None
    created: UtcDatetime | None = None
    updated: UtcDatetime | None = None

    @field_validator("events", mode="before")
    @classmethod
    def _events_as_grid(cls, value: Any) -> Any:
        # The YAML says EventGridResponseModel (categories of events); accept a flat list of
        # events or of names as well, so a server that simplifies the shape still parses.
        if isinstance(value, list):
            flat = [{"name": v} if isinstance(v, str) else v for v in value]
            if all(isinstance(v, dict) and "events" not in v for v in flat):
                return {"totalCount": 1, "grid": [{"category": None, "events": flat}]}
            return {"totalCount": len(flat), "grid": flat}
        return value

    @property
    def event_names(self) -> list[str]:
        """All subscribed event names, flattened over categories."""
        if self.events is None:
            return []
        return [e.name for cat in self.events.grid for e in cat.events]


class RenderResponse(WireModel):
    """``RenderGenerateResponseModel``: accepted products and per-product error codes."""

    uuids: list[str] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)

    @field_validator("uuids", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("errors", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return per_product_errors(value)


class SignedUrl(WireModel):
    """``GCloudStorageResourceCreateSignUrlSessionResponseModel``."""

    location: str
    request_uuid: str | None = None
    blob_id: str | None = None


# -- results the client returns (not wire payloads, but typed the same way) ------------------


class TriggerResult(WireModel):
    """What ``POST /v1/products/renders`` did for each product of one batch.

    ``triggered_at`` is the server's ``Date`` header (whole seconds, UTC): attachments created
    at or after it belong to this trigger. ``sent_at`` is the local clock when the request was
    sent, for when the server gives no ``Date``.
    """

    accepted: tuple[str, ...] = ()
    errors: dict[str, str] = Field(default_factory=dict)
    triggered_at: datetime
    sent_at: datetime


class DownloadResult(WireModel):
    """The bytes of one attachment as received: their sha256 (hex), size and content type."""

    sha256: str
    size: int
    content_type: str | None = None
    resigned: int = 0
    """How many times access was renewed (a signed URL signed again, a fresh login)."""
    route: str | None = None
    """The download route that served the bytes: ``comments`` or ``signed-url``."""
