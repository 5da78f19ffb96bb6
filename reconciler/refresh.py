"""Ask the platform what each recorded product holds now; with ``--refresh-only``, accept it.

``observe`` returns an ``Observed`` snapshot for the pure planner: every attachment of each
product, with the entityType the platform gave it (one unfiltered search per product serves
RENDER and TURNTABLE, and shows what else is there). Searches and verification downloads run
in a bounded thread pool over one client, so the client's limiter paces them together: one
request per product (more only past 100 attachments, a page each). On a terminal, a progress
bar on stderr counts the products done (bench/refresh_scale.py: 10,000 products).

``accept`` makes the state say what the platform holds for drifted products, without
rendering: a product re-rendered behind our back (its recorded files gone, others in their
place) is adopted as ``import`` adopts it (downloaded, hashed, spec read from the files,
unknown fields kept from the record) and said so; lost files leave the record, so the next
plan re-renders. Files the reconciler did not make beside its own intact renders are not
drift: they are neither adopted nor recorded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from reconciler.diagnostics import SourceLocation
from reconciler.errors import ApiError, AuthenticationError, PermanentApiError
from reconciler.importer import examine
from reconciler.observed import Observed, ObservedAttachment, ObservedProduct, is_render
from reconciler.plan import Reason
from reconciler.planner import drift_of
from reconciler.spec import ProductSpec, RenderSpec
from reconciler.state.filestore import FileStateStore
from reconciler.state.model import ProductRecord, State, Status
from reconciler.state.store import utcnow


def observe(
    client: Any,
    state: State,
    products: Iterable[str] | None = None,
    *,
    verify: bool = False,
    parallelism: int = 4,
    also: Iterable[str] = (),
) -> Observed:
    """Snapshot the platform for ``products`` (default: every rendered product in the state),
    plus ``also`` (products about to be rendered for the first time: do they hold renders
    made elsewhere?)."""
    base = (
        products
        if products is not None
        else (u for u, r in state.products.items() if r.status is Status.RENDERED)
    )
    wanted = sorted(set(base) | set(also))
    recorded = {u: {a.uuid for a in state.products[u].attachments} for u in wanted if u in state.products}

    def one(uuid: str) -> tuple[str, ObservedProduct]:
        try:
            listed = client.list_attachments(uuid)
        except AuthenticationError:
            raise  # about the credentials, not this product
        except PermanentApiError as exc:
            if exc.status == 404 and "PRODUCT_NOT_FOUND" in exc.codes:
                return uuid, ObservedProduct(product_missing=True)  # every recorded file is gone
            raise ApiError(
                f"refreshing product {uuid}: {exc.message}", status=exc.status, codes=exc.codes, hint=exc.hint
            ) from exc
        found = []
        for att in listed:
            entity_type = (att.entity_type or "").upper()
            sha = None
            if verify and att.uuid in recorded.get(uuid, set()) and is_render(entity_type):
                sha = client.download(att, entity_type, None).sha256
            created = att.created.isoformat() if att.created else None
            found.append(ObservedAttachment(att.uuid, entity_type, att.name, created, sha))
        return uuid, ObservedProduct(tuple(found))

    with (
        _progress(len(wanted)) as advance,
        ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="refresh") as pool,
    ):

        def counted(uuid: str) -> tuple[str, ObservedProduct]:
            found = one(uuid)
            advance()
            return found

        return Observed(products=dict(pool.map(counted, wanted)), verified=verify)


@contextmanager
def _progress(total: int, stream: TextIO | None = None) -> Iterator[Callable[[], None]]:
    """A bar of products refreshed on stderr when it is a terminal (gone once done); else nothing.

    Yields the thread-safe call that counts one product done."""
    stream = stream or sys.stderr
    if total == 0 or not stream.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("Refreshing products"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream),
        transient=True,
    ) as bar:
        task = bar.add_task("refresh", total=total)
        yield lambda: bar.advance(task)


def accept(
    client: Any, store: FileStateStore, state: State, observed: Observed, download_dir: Path | None = None
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
    client: Any, uuid: str, rec: ProductRecord, download_dir: Path | None
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
