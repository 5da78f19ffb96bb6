"""What the platform holds now, as plain data, and which of it the reconciler made.

Refresh (I/O) builds an ``Observed`` before planning; the planner only reads it. A test
describes the platform by writing one of these by hand.

Ownership is decided here, once, for the planner and the executor alike: a file on a product
was made by the reconciler only if the state records its uuid for that product (current
renders or their history), or, while a trigger of ours is unfinished (requested, in flight,
failed), if it is a render file created at or after that trigger. Everything else, a PDF, a
QR code, a still uploaded by hand to the Renders tab, a render started in VNTANA's web app, is
someone else's: never deleted by prune, never silently adopted, and a trigger that may replace
it needs the user's explicit ``--replace``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from reconciler.state.model import ProductRecord, Status

RENDER_TYPES = ("RENDER", "TURNTABLE")
"""``entityType`` of render results: the still, and the MP4 or GIF (upload-attachments.md)."""

CREATED_SLACK = timedelta(seconds=2)
"""Attachment ``created`` times may be whole seconds, and the API front end and the render
workers may disagree a little: a file created this much before a trigger still counts as its."""


@dataclass(frozen=True, slots=True)
class ObservedAttachment:
    uuid: str
    entity_type: str
    """As the platform returned it (never the filter that was asked for)."""
    name: str | None = None
    created: str | None = None
    sha256: str | None = None
    """Only with ``--verify``: the hash of the bytes downloaded now."""


@dataclass(frozen=True, slots=True)
class ObservedProduct:
    attachments: tuple[ObservedAttachment, ...] = ()
    """Every attachment of the product, renders or not."""
    product_missing: bool = False
    """The platform no longer knows the product at all (PRODUCT_NOT_FOUND)."""

    def uuids(self) -> set[str]:
        return {a.uuid for a in self.attachments}

    def renders(self) -> list[ObservedAttachment]:
        """The attachments whose entityType is RENDER or TURNTABLE."""
        return [a for a in self.attachments if is_render(a.entity_type)]


@dataclass(frozen=True, slots=True)
class Observed:
    products: dict[str, ObservedProduct] = field(default_factory=dict)
    verified: bool = False


class _File(Protocol):
    @property
    def uuid(self) -> str: ...
    @property
    def entity_type(self) -> str | None: ...


F = TypeVar("F", bound=_File)


def is_render(entity_type: str | None) -> bool:
    return (entity_type or "").upper() in RENDER_TYPES


def recorded_uuids(record: ProductRecord | None) -> set[str]:
    """Every file uuid the state records for a product: its renders and their history."""
    if record is None:
        return set()
    uuids = {a.uuid for a in record.attachments}
    for past in record.history:
        uuids.update(a.uuid for a in past.attachments)
    return uuids


def unfinished_since(record: ProductRecord | None) -> datetime | None:
    """When the product's unfinished trigger was sent (its results are ours although not yet
    recorded), or None when every file of ours is recorded."""
    if record is None or record.request is None or record.status is Status.RENDERED:
        return None
    text = record.request.accepted_at or record.request.requested_at
    return parse_time(text) - CREATED_SLACK


def foreign_renders(files: Iterable[F], record: ProductRecord | None) -> list[F]:
    """The render files (RENDER/TURNTABLE) on a product that the reconciler did not make."""
    ours = recorded_uuids(record)
    since = unfinished_since(record)
    out = []
    for f in files:
        if not is_render(f.entity_type) or f.uuid in ours:
            continue
        created = created_at(f)
        if since is not None and created is not None and created >= since:
            continue  # made by our own unfinished trigger
        out.append(f)
    return out


def describe(f: _File) -> str:
    """``qrCode_1.png (PRODUCT)``: a file as a plan or a run lists it."""
    return f"{getattr(f, 'name', None) or f.uuid} ({(f.entity_type or '?').upper()})"


def created_at(f: _File) -> datetime | None:
    value = getattr(f, "created", None)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return parse_time(str(value))
    except ValueError:
        return None


def parse_time(text: str) -> datetime:
    """An ISO time; zone-less means UTC (the platform's clock, upload-attachments.md)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
