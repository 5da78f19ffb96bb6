"""``reconciler import``: adopt renders that already exist on the platform instead of paying again.

Large catalogues arrive with renders made by hand or by older scripts. For each product the
command finds its newest still, MP4 and GIF (RENDER and TURNTABLE attachments), downloads
and hashes them, infers from the files what spec made them (reconciler.renderfiles) and compares
that with the manifests:

  in sync     every knowable field matches → recorded ``rendered`` with the manifest's spec:
              the next plan has nothing to do for it
  mismatch    recorded ``rendered`` with the manifest's spec, the inferred fields substituted:
              its spec hash differs, so the next plan re-renders it and its field diff is
              exactly the mismatch
  incomplete  some files, but no still or no MP4: nothing recorded, the plan renders it
  no renders  nothing on the platform: nothing recorded, the plan renders it

Invariants: import never triggers a render and never changes anything on the platform.
Fields files cannot reveal (backgrounds) take the manifest's value and are listed as unknown,
so they can never show up as a difference. A product already in the state is left alone
unless ``--force``. Workers only read the platform; the calling thread holds the state lock
and checkpoints each product, in uuid order, as soon as its result is in.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.connection import Connection, Note, open_client
from reconciler.downloads import fetch
from reconciler.errors import ReconcilerError
from reconciler.loader import load_desired
from reconciler.renderfiles import (
    CONTENT_TYPES,
    UNKNOWABLE,
    InferredSpec,
    InspectError,
    Mismatch,
    infer_spec,
    sniff_file,
)
from reconciler.spec import ProductSpec, fingerprint
from reconciler.state import (
    Attachment,
    ProductRecord,
    State,
    StateStore,
    Status,
    open_store,
    utcnow,
)
from reconciler.state.model import attachment_kind

if TYPE_CHECKING:  # types only: the client loads httpx and its models (start-up time)
    from reconciler.client.wire import Attachment as WireAttachment
    from reconciler.client_protocols import AttachmentReader


class Outcome(StrEnum):
    IN_SYNC = "in_sync"
    """Recorded with the manifest's spec: the platform's files match it."""
    MISMATCH = "mismatch"
    """Recorded with the spec the files show: the next plan re-renders it."""
    INCOMPLETE = "incomplete"
    """No still or no MP4 on the platform: nothing recorded, the plan renders it."""
    NO_RENDERS = "no_renders"
    """Nothing on the platform: nothing recorded, the plan renders it."""
    SKIPPED = "skipped"
    """Already in the state and ``--force`` not given."""
    FAILED = "failed"
    """The platform or the files could not be read; ``error`` says why."""


class ImportFailedError(ReconcilerError):
    """Import finished, but some products could not be examined (exit 1)."""


@dataclass
class ImportRequest:
    """What ``reconciler import`` was asked: which products, from which platform, into which state."""

    products: tuple[str, ...]
    all_products: bool
    manifests: list[Path]
    state_path: Path | str
    lock_timeout: float = 0.0
    force: bool = False
    parallelism: int = 4
    download_dir: Path | None = None
    connection: Connection = field(default_factory=Connection)


@dataclass
class ProductImport:
    """What import found for one product and did about it."""

    uuid: str
    name: str | None
    outcome: Outcome
    inferred: InferredSpec | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None
    record: ProductRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.uuid,
            "name": self.name,
            "outcome": self.outcome.value,
            "recorded": self.record is not None,
            "spec_hash": self.record.spec_hash if self.record else None,
            "inferred": self.inferred.known if self.inferred else {},
            "unknown": self.inferred.unknown if self.inferred else [],
            "mismatches": [m.to_json() for m in self.mismatches],
            "missing": self.missing,
            "attachments": [a.model_dump(mode="json") for a in self.attachments],
            "error": self.error,
        }


@dataclass
class ImportReport:
    """Every product asked for, in uuid order, and the state they were recorded in."""

    results: list[ProductImport]
    location: str
    lineage: str
    serial: int
    unknowable: tuple[str, ...] = tuple(UNKNOWABLE)
    """The spec fields files cannot reveal (taken from the manifests)."""

    @property
    def failed(self) -> list[ProductImport]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    def error(self) -> ImportFailedError | None:
        """The error the run ends with when some products could not be examined."""
        if not self.failed:
            return None
        return ImportFailedError(
            f"{len(self.failed)} product(s) could not be imported: " + ", ".join(r.uuid for r in self.failed),
            hint="fix the cause and run import again",
        )


def run_import(req: ImportRequest, note: Note | None = None) -> ImportReport:
    """Examine and record the requested products. Products that could not be examined are in the
    report (``report.error()`` is the error to end with); ``note`` hears what was started."""
    desired = load_desired(req.manifests)
    wanted = sorted(desired.products) if req.all_products else sorted({u.lower() for u in req.products})
    unknown = [u for u in wanted if u not in desired.products]
    if unknown:
        raise ReconcilerError(
            "not in the manifests: " + ", ".join(unknown),
            hint="import compares the platform's renders with the manifests' spec: "
            "declare the products first, then import them",
        )
    store = open_store(req.state_path)
    results: list[ProductImport] = []
    with ExitStack() as stack, store.lock("import", timeout=req.lock_timeout):
        state = store.fold()
        todo = []
        for uuid in wanted:
            if uuid in state.products and not req.force:
                results.append(ProductImport(uuid, desired.products[uuid].name, Outcome.SKIPPED))
            else:
                todo.append(desired.products[uuid])
        if todo:
            client = open_client(req.connection, stack, note)
            results += _examine_all(req, client, todo, store, state)
    results.sort(key=lambda r: r.uuid)
    return ImportReport(results, store.location, state.lineage, state.serial)


def _examine_all(
    req: ImportRequest, client: AttachmentReader, todo: list[ProductSpec], store: StateStore, state: State
) -> list[ProductImport]:
    out = []
    recorded = False
    with ThreadPoolExecutor(max_workers=req.parallelism, thread_name_prefix="import") as pool:
        futures = [pool.submit(examine, client, want, req.download_dir) for want in todo]
        for want, future in zip(todo, futures, strict=True):
            result = future.result()
            if result.record is not None:
                previous = state.products.get(want.uuid)
                result.record.history = _history(previous, result.record)
                store.checkpoint(state, want.uuid, result.record)
                recorded = True
            out.append(result)
    if recorded:
        store.write(state, bump=False)  # fold the journal: every product already counted
    return out


def examine(client: AttachmentReader, want: ProductSpec, download_dir: Path | None = None) -> ProductImport:
    """Find, download and inspect one product's renders; never raises for a per-product problem."""
    try:
        return _examine(client, want, download_dir)
    except ReconcilerError as exc:
        return ProductImport(want.uuid, want.name, Outcome.FAILED, error=exc.message)


def _examine(client: AttachmentReader, want: ProductSpec, download_dir: Path | None) -> ProductImport:
    result = ProductImport(want.uuid, want.name, Outcome.NO_RENDERS)
    # One search serves stills and turntables: entries are told apart by the entityType they
    # carry (the server may ignore the filter), and anything else on the product is ignored.
    listed = client.list_attachments(want.uuid)
    stills = [a for a in listed if (a.entity_type or "").upper() == "RENDER"]
    turntables = [a for a in listed if (a.entity_type or "").upper() == "TURNTABLE"]
    found = {
        "still": ("RENDER", _newest(stills)),
        "turntable": ("TURNTABLE", _newest([a for a in turntables if not _is_gif(a)])),
        "gif": ("TURNTABLE", _newest([a for a in turntables if _is_gif(a)])),
    }
    if all(att is None for _, att in found.values()):
        return result
    with tempfile.TemporaryDirectory(prefix="reconciler-import-") as tmp:
        files: dict[str, Path] = {}
        for kind, (store_type, att) in found.items():
            if att is not None:
                folder = download_dir / want.uuid if download_dir is not None else Path(tmp)
                files[kind], attachment = _download(client, store_type, att, kind, folder)
                result.attachments.append(attachment)
        if "gif" in files and sniff_file(files["gif"]) != "GIF":
            raise InspectError(f"{files['gif'].name} is listed as the GIF turntable but is not a GIF")
        has_turntable = "turntable" in files or "gif" in files
        result.inferred = infer_spec(
            still=files.get("still"),
            mp4=files.get("turntable"),
            gif=("gif" in files) if has_turntable else None,
        )
    desired = want.spec.canonical()
    result.mismatches = result.inferred.compare(desired)
    result.missing = [
        label for kind, label in (("still", "still"), ("turntable", "MP4 turntable")) if kind not in files
    ]
    if result.missing:
        result.outcome = Outcome.INCOMPLETE
        return result
    result.outcome = Outcome.MISMATCH if result.mismatches else Outcome.IN_SYNC
    spec = result.inferred.substitute(desired) if result.mismatches else desired
    result.record = ProductRecord(
        name=want.name,
        spec=spec,
        spec_hash=fingerprint(spec),
        status=Status.RENDERED,
        request=None,
        attachments=result.attachments,
        protect=want.protect,
        updated_at=utcnow(),
    )
    return result


def _download(
    client: AttachmentReader, store_type: str, att: WireAttachment, kind: str, folder: Path
) -> tuple[Path, Attachment]:
    """Stream one attachment into ``folder`` (hashed while streaming); the file and its record."""
    target, got = fetch(client, att, store_type, folder)
    assert target is not None
    content_type = got.content_type or CONTENT_TYPES.get(sniff_file(target) or "", "application/octet-stream")
    return target, Attachment(
        kind=kind,
        uuid=att.uuid,
        name=target.name,
        sha256=got.sha256,
        size=got.size,
        content_type=content_type,
    )


def _is_gif(att: WireAttachment) -> bool:
    return attachment_kind(att.entity_type or "TURNTABLE", att.name) == "gif"


def _newest(attachments: list[WireAttachment]) -> WireAttachment | None:
    """The most recently created attachment (uuid breaks ties, so the choice is stable)."""
    oldest = datetime.min.replace(tzinfo=UTC)

    def key(a: WireAttachment) -> tuple[datetime, str]:
        created = a.created or oldest
        return (created if created.tzinfo else created.replace(tzinfo=UTC), a.uuid)

    return max(attachments, key=key, default=None)


def _history(previous: ProductRecord | None, new: ProductRecord) -> list[Any]:
    """Keep what a re-import (``--force``) replaces, unless it is the very same files."""
    if previous is None:
        return []
    if {a.uuid for a in previous.attachments} == {a.uuid for a in new.attachments}:
        return previous.history
    return previous.superseded()
