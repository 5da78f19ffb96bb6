"""What the platform holds now, as plain data: the input a refresh gives the planner.

Refresh (I/O) builds it before planning; the planner only reads it. A test describes the
platform by writing one of these by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ObservedAttachment:
    uuid: str
    entity_type: str
    name: str | None = None
    created: str | None = None
    sha256: str | None = None
    """Only with ``--verify``: the hash of the bytes downloaded now."""


@dataclass(frozen=True, slots=True)
class ObservedProduct:
    attachments: tuple[ObservedAttachment, ...] = ()
    product_missing: bool = False
    """The platform no longer knows the product at all (PRODUCT_NOT_FOUND)."""

    def uuids(self) -> set[str]:
        return {a.uuid for a in self.attachments}


@dataclass(frozen=True, slots=True)
class Observed:
    products: dict[str, ObservedProduct] = field(default_factory=dict)
    verified: bool = False
