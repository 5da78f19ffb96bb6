"""``apply --refresh-only`` and ``refresh``: make the state say what the platform holds for drifted
products (as ``refresh.observe`` saw it), without rendering.

A product re-rendered behind our back (its recorded files gone, others in their place) is
adopted as ``import`` adopts it (downloaded, hashed, spec read from the files, unknown fields
kept from the record) and said so; lost files leave the record, so the next plan re-renders.
Files the reconciler did not make beside its own intact renders are not drift: they are
neither adopted nor recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.diagnostics import SourceLocation
from reconciler.importing import examine
from reconciler.observed import Observed, ObservedProduct
from reconciler.plan import Reason
from reconciler.planner import drift_of
from reconciler.spec import ProductSpec, RenderSpec
from reconciler.state import StateStore
from reconciler.state.model import ProductRecord, State, Status
from reconciler.state.store import utcnow

if TYPE_CHECKING:  # types only: the client loads httpx and its models (start-up time)
    from reconciler.client_protocols import AttachmentReader


def accept(
    client: AttachmentReader,
    store: StateStore,
    state: State,
    observed: Observed,
    download_dir: Path | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Record what the platform holds for each drifted product.

    Returns ({uuid: what changed}, {uuid: why it could not be accepted}); a product that
    could not be read is left exactly as recorded."""
    accepted: dict[str, str] = {}
    failed: dict[str, str] = {}
    for uuid, seen in sorted(observed.products.items()):
        rec = state.products.get(uuid)
        if rec is None or rec.status is not Status.RENDERED:
            continue
        drift = drift_of(rec, seen, observed.verified)
        if drift is None:
            continue
        if drift[0] is Reason.REMOTE_REPLACED:
            updated, problem = _adopt(client, uuid, rec, download_dir)
            if problem:
                failed[uuid] = problem
                continue
        else:
            updated = _prune_record(rec, seen)
        store.checkpoint(state, uuid, updated)
        accepted[uuid] = f"{drift[0].value}: {drift[1]}"
    store.write(state, bump=False)
    return accepted, failed


def _adopt(
    client: AttachmentReader, uuid: str, rec: ProductRecord, download_dir: Path | None
) -> tuple[ProductRecord, str | None]:
    spec = RenderSpec.model_validate(rec.spec)
    known = ProductSpec(
        uuid=uuid,
        name=rec.name,
        spec=spec,
        spec_hash=rec.spec_hash,
        source=SourceLocation(f"state record of {uuid}"),
        protect=rec.protect,
    )
    found = examine(client, known, download_dir)
    if found.error:
        return rec, found.error
    if found.record is None:  # incomplete on the platform: record what is really there
        return rec.model_copy(
            update={"attachments": found.attachments, "updated_at": utcnow(), "history": rec.superseded()}
        ), None
    return found.record.model_copy(update={"history": rec.superseded()}), None


def _prune_record(rec: ProductRecord, seen: ObservedProduct) -> ProductRecord:
    """Drop files gone from the platform; take re-downloaded hashes (``--verify``)."""
    now = {a.uuid: a for a in seen.attachments}
    kept = [
        a.model_copy(update={"sha256": now[a.uuid].sha256 or a.sha256})
        for a in rec.attachments
        if a.uuid in now
    ]
    return rec.model_copy(update={"attachments": kept, "updated_at": utcnow()})
