"""The recorded state: what the reconciler knows it rendered, as plain validated data.

Invariants: ``lineage`` is fixed when a state is created and identifies it across copies;
``serial`` grows by one with every write (a journal checkpoint counts as a write), so a
saved plan can tell whether the state moved under it. Products are kept in uuid order so
the JSON diffs small in git. Only the platform's own identifiers and our hashes are kept:
never tokens, signed URLs or secrets.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

FORMAT_VERSION = 1

_MODEL = ConfigDict(extra="forbid")


class Status(str, Enum):
    """Where a product's last render stands."""

    REQUESTED = "requested"
    """Write-ahead: about to trigger. The request may or may not have reached the platform."""
    IN_FLIGHT = "in_flight"
    """The platform accepted the trigger; results not yet recorded. Wait, never re-pay."""
    RENDERED = "rendered"
    """Results downloaded and hashed: the state matches the platform."""
    FAILED = "failed"
    """The last attempt failed; ``error`` says why. The next plan retries it."""


AttachmentKind = Literal["still", "turntable", "gif"]


def attachment_kind(entity_type: str | None, name: str | None, content_type: str | None = None) -> AttachmentKind:
    """RENDER attachments are the still; TURNTABLE ones the MP4, or the GIF by name or type."""
    if (entity_type or "").upper() == "RENDER":
        return "still"
    if (name or "").lower().endswith(".gif") or (content_type or "").startswith("image/gif"):
        return "gif"
    return "turntable"


class Attachment(BaseModel):
    """One result file on the platform, as we downloaded and hashed it."""

    model_config = _MODEL

    kind: AttachmentKind
    uuid: str
    name: str
    sha256: str
    size: int
    content_type: str


class RenderRequest(BaseModel):
    """The trigger that produced (or is producing) a product's renders."""

    model_config = _MODEL

    request_id: str = Field(description="our id for the batch request, shared by its products")
    spec_hash: str
    requested_at: str = Field(description="local UTC time the write-ahead record was made")
    accepted_at: str | None = Field(default=None, description="platform time (Date header) of the accepted trigger")


class PastRender(BaseModel):
    """An earlier render of the product, replaced on the platform since; kept for ``state show``."""

    model_config = _MODEL

    spec_hash: str
    spec: dict[str, Any] = Field(default_factory=dict)
    recorded_at: str
    attachments: list[Attachment] = Field(default_factory=list)


HISTORY_LENGTH = 5


class ProductRecord(BaseModel):
    model_config = _MODEL

    name: str | None = None
    spec: dict[str, Any]
    spec_hash: str
    status: Status
    request: RenderRequest | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    error: str | None = None
    protect: bool = False
    updated_at: str
    history: list[PastRender] = Field(default_factory=list)
    """The last renders before the current one, newest first (at most HISTORY_LENGTH)."""

    def superseded(self) -> list[PastRender]:
        """History with the current render pushed on top: call when recording a new render."""
        if not self.attachments:
            return self.history
        past = PastRender(spec_hash=self.spec_hash, spec=self.spec, recorded_at=self.updated_at,
                          attachments=self.attachments)
        return [past, *self.history][:HISTORY_LENGTH]


class State(BaseModel):
    model_config = _MODEL

    format_version: int = FORMAT_VERSION
    serial: int = 0
    lineage: str
    products: dict[str, ProductRecord] = Field(default_factory=dict)

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        data["products"] = {k: data["products"][k] for k in sorted(data["products"])}
        return json.dumps(data, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


RECORD_ADAPTER: TypeAdapter[ProductRecord] = TypeAdapter(ProductRecord)
