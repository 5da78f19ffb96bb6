"""The state file's JSON described for msgspec: a check of 10^5 records in C, not 10^5 pydantic models.

A cold ``plan`` needs of each record only its ``spec_hash``, its ``status`` and whether it
lacks a file its spec renders, but it must still refuse a damaged state exactly as ``read``
does. Building a ``ProductRecord`` per record for that costs seconds and most of a gigabyte
at 10^5 records; msgspec decodes the same JSON into the structs below in C, and each struct
is dropped as soon as its three facts are taken.

These structs mirror ``reconciler.state.model`` field for field (a test compares their
names), and what they accept is a subset of what ``FileStateStore.read`` accepts: msgspec
is strict where pydantic is lax (``"protect": 1``, a 30-digit size, a newer
``format_version``), and a state it refuses is read the usual way, which accepts it or
reports the error of record. Never the other way round: anything accepted here must read.
So: every struct forbids unknown keys; whole numbers are JSON integers (no ``true``, no
``1.0``) held to 64 bits, far inside ``json.loads``'s 4,300 digits; product keys match the
canonical uuid to the end of the text (``\\Z``: ``$`` would let a trailing newline through,
which pydantic's pattern does not); ``format_version`` is one this release writes. msgspec
refuses NaN, lone surrogates and text that is not UTF-8 or not JSON; a key given twice
keeps its last value, as ``json.loads`` does.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType, field

from reconciler.state.model import _UUID, FORMAT_VERSION, AttachmentKind, Status

Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
"""A JSON integer, as the recorded spec's ``int`` (strict in the model: no bool, no float)."""

Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
"""``model.Count``: a whole number, not negative."""

ProductUuid = Annotated[str, Meta(pattern=f"\\A{_UUID}\\Z")]


class RecordedTurntable(Struct, forbid_unknown_fields=True, gc=False):
    """``model._RecordedTurntable`` (total=False, strict): every key optional, none unknown."""

    includeGif: bool | UnsetType = UNSET
    imageCount: Int | UnsetType = UNSET
    frameRate: Int | UnsetType = UNSET
    width: Int | UnsetType = UNSET
    height: Int | UnsetType = UNSET
    background: str | UnsetType | None = UNSET
    transparentBackground: bool | UnsetType = UNSET


class RecordedSpec(Struct, forbid_unknown_fields=True, gc=False):
    """``model._RecordedSpec`` (total=False, strict)."""

    imageWidth: Int | UnsetType = UNSET
    imageHeight: Int | UnsetType = UNSET
    imageFormat: str | UnsetType = UNSET
    imageBackground: str | UnsetType | None = UNSET
    transparentBackground: bool | UnsetType = UNSET
    turntable: RecordedTurntable | UnsetType = UNSET


class Attachment(Struct, forbid_unknown_fields=True, gc=False):
    kind: AttachmentKind
    uuid: str
    name: str
    sha256: str
    size: Count
    content_type: str


class RenderRequest(Struct, forbid_unknown_fields=True, gc=False):
    request_id: str
    spec_hash: str
    requested_at: str
    accepted_at: str | None = None
    spec: RecordedSpec | None = None  # null allowed here, as in the model


class PastRender(Struct, forbid_unknown_fields=True, gc=False):
    spec_hash: str
    recorded_at: str
    spec: RecordedSpec = field(default_factory=RecordedSpec)  # absent means {}; null is refused
    attachments: list[Attachment] = field(default_factory=list)


class ProductRecord(Struct, forbid_unknown_fields=True, gc=False):
    spec: RecordedSpec
    spec_hash: str
    status: Status
    updated_at: str
    name: str | None = None
    request: RenderRequest | None = None
    attachments: list[Attachment] = field(default_factory=list)
    error: str | None = None
    protect: bool = False
    history: list[PastRender] = field(default_factory=list)
    workspace: str | None = None

    def lacking(self) -> bool:
        """``model.ProductRecord.missing_kinds()`` is not empty: a file its spec renders is not recorded."""
        kinds = {a.kind for a in self.attachments}
        turntable = self.spec.turntable
        gif = turntable is not UNSET and turntable.includeGif is True
        return not ({"still", "turntable"} <= kinds and (not gif or "gif" in kinds))


class State(Struct, forbid_unknown_fields=True):
    """``model.State`` with each record left as its raw JSON: the whole text's syntax and the top
    level are checked, and no record is built (``RECORD`` checks them one at a time)."""

    lineage: str
    format_version: Annotated[int, Meta(ge=1, le=FORMAT_VERSION)] = FORMAT_VERSION  # newer: read() says so
    serial: Count = 0
    products: dict[ProductUuid, Raw] = field(default_factory=dict)


STATE = msgspec.json.Decoder(State)
RECORD = msgspec.json.Decoder(ProductRecord)

__all__ = [
    "RECORD",
    "STATE",
    "Attachment",
    "PastRender",
    "ProductRecord",
    "RecordedSpec",
    "RecordedTurntable",
    "RenderRequest",
    "State",
]
