"""The recorded state: what the reconciler knows it rendered, as plain validated data.

Invariants: ``lineage`` is fixed when a state is created and identifies it across copies;
``serial`` grows by one with every write (a journal checkpoint counts as a write), so a
saved plan can tell whether the state moved under it. Products are kept in uuid order so
the JSON diffs small in git. Only the platform's own identifiers and our hashes are kept:
never tokens, signed URLs or secrets.

A state file may be damaged or edited by hand, so what it holds is typed all the way down:
product keys are canonical uuids, ``format_version`` and ``serial`` are whole numbers (a
``"1"`` is refused, not read as 1), and a recorded spec has the render spec's shape, two
levels deep. Nothing the planner or the writer walks can be nested deeper or be of a type
they do not expect.

reconciler/state/check.py describes the same JSON for msgspec (the cold plan's check); change
both together (tests/state/test_state_check.py compares their fields).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict

FORMAT_VERSION = 1

_MODEL = ConfigDict(extra="forbid", defer_build=True)

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ProductUuid = Annotated[str, StringConstraints(pattern=f"^{_UUID}$")]
"""A product's key: its VNTANA uuid, in lower case (as the loader normalises manifests)."""

_IS_UUID = re.compile(_UUID)


def is_product_uuid(text: object) -> bool:
    """Whether ``text`` is a canonical product key."""
    return isinstance(text, str) and _IS_UUID.fullmatch(text) is not None


Count = Annotated[int, Field(ge=0, strict=True)]
"""A whole number from JSON: ``true``, ``1.0`` and ``"1"`` are refused, not converted."""

# The shape of a resolved render spec (spec.RenderSpec.canonical()), without its bounds:
# bounds change with releases, and a record made under older ones must stay readable. A
# TypedDict validates in pydantic's core, about as fast as ``dict[str, Any]``; a test
# checks its keys against RenderSpec's fields.
_SPEC_SHAPE = ConfigDict(strict=True, extra="forbid")


@with_config(_SPEC_SHAPE)
class _RecordedTurntable(TypedDict, total=False):
    includeGif: bool
    imageCount: int
    frameRate: int
    width: int
    height: int
    background: str | None
    transparentBackground: bool


@with_config(_SPEC_SHAPE)
class _RecordedSpec(TypedDict, total=False):
    imageWidth: int
    imageHeight: int
    imageFormat: str
    imageBackground: str | None
    transparentBackground: bool
    turntable: _RecordedTurntable


if TYPE_CHECKING:  # callers pass RenderSpec.canonical(): a plain dict
    RecordedSpec = dict[str, Any]
else:
    RecordedSpec = _RecordedSpec


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


def attachment_kind(
    entity_type: str | None, name: str | None, content_type: str | None = None
) -> AttachmentKind:
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
    size: Count
    content_type: str


class RenderRequest(BaseModel):
    """The trigger that produced (or is producing) a product's renders."""

    model_config = _MODEL

    request_id: str = Field(description="our id for the batch request, shared by its products")
    spec_hash: str
    requested_at: str = Field(description="local UTC time the write-ahead record was made")
    accepted_at: str | None = Field(
        default=None, description="platform time (Date header) of the accepted trigger"
    )
    spec: RecordedSpec | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="the spec requested, while in flight (``collect`` needs no manifests); "
        "dropped once recorded, when it is the record's ``spec``",
    )


class PastRender(BaseModel):
    """An earlier render of the product, replaced on the platform since; kept for ``state show``."""

    model_config = _MODEL

    spec_hash: str
    spec: RecordedSpec = Field(default_factory=dict)
    recorded_at: str
    attachments: list[Attachment] = Field(default_factory=list)


HISTORY_LENGTH = 5


class ProductRecord(BaseModel):
    model_config = _MODEL

    name: str | None = None
    spec: RecordedSpec
    spec_hash: str
    status: Status
    request: RenderRequest | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    error: str | None = None
    protect: bool = False
    updated_at: str
    history: list[PastRender] = Field(default_factory=list)
    """The last renders before the current one, newest first (at most HISTORY_LENGTH)."""
    workspace: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """The uuid of the workspace ("client") the product was rendered in, when its manifest names
    one (``workspace:``); absent otherwise, so states without workspaces read and write as before."""

    def missing_kinds(self) -> set[str]:
        """The kinds of file its spec renders that no recorded attachment is (the GIF only if asked)."""
        need = {"still", "turntable"} | (
            {"gif"} if self.spec.get("turntable", {}).get("includeGif") else set()
        )
        return need - {a.kind for a in self.attachments}

    def superseded(self) -> list[PastRender]:
        """History with the current render pushed on top: call when recording a new render."""
        if not self.attachments:
            return self.history
        past = PastRender(
            spec_hash=self.spec_hash,
            spec=self.spec,
            recorded_at=self.updated_at,
            attachments=self.attachments,
        )
        return [past, *self.history][:HISTORY_LENGTH]


class State(BaseModel):
    model_config = _MODEL

    format_version: Annotated[int, Field(ge=1, strict=True)] = FORMAT_VERSION
    serial: Count = 0
    lineage: str
    products: dict[ProductUuid, ProductRecord] = Field(default_factory=dict)

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        data["products"] = {k: data["products"][k] for k in sorted(data["products"])}
        return json.dumps(data, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


class RecordedState(Protocol):
    """What planning reads of a state: a ``State``, or the lazy read of ``reconciler.state.index``."""

    @property
    def lineage(self) -> str: ...
    @property
    def serial(self) -> int: ...
    @property
    def products(self) -> Mapping[str, ProductRecord]: ...


RECORD_ADAPTER: TypeAdapter[ProductRecord] = TypeAdapter(ProductRecord)
RECORDS_ADAPTER: TypeAdapter[dict[str, ProductRecord]] = TypeAdapter(dict[ProductUuid, ProductRecord])
