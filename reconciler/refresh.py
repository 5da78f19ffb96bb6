"""Ask the platform what each recorded product holds now (``plan --refresh``, ``apply --refresh``).

``observe`` returns an ``Observed`` snapshot for the pure planner: every attachment of each
product, with the entityType the platform gave it (one unfiltered search per product serves
RENDER and TURNTABLE, and shows what else is there). Searches and verification downloads run
in a bounded thread pool over one client, so the client's limiter paces them together: one
request per product (more only past 100 attachments, a page each). On a terminal, a line on
stderr counts the products done (bench/refresh_scale.py: 10,000 products take a minute at
20 ms a request).

Accepting what it finds into the state (``--refresh-only``) is reconciler.accepting.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from reconciler.errors import ApiError, AuthenticationError, PermanentApiError
from reconciler.observed import Observed, ObservedAttachment, ObservedProduct, is_render
from reconciler.state.model import State, Status
from reconciler.views.refresh import refresh_progress_text

if TYPE_CHECKING:  # types only: the client loads httpx and its models (start-up time)
    from reconciler.client_protocols import AttachmentReader


def observe(
    client: AttachmentReader,
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


PROGRESS_EVERY = 0.1
"""Seconds between two redraws of the progress line (10,000 products would be 10,000 writes)."""


@contextmanager
def _progress(total: int, stream: TextIO | None = None) -> Iterator[Callable[[], None]]:
    """A progress line on stderr while it is a terminal, redrawn in place and erased at the end;
    nothing otherwise (CI logs, pipes, JSON on stdout stay as they are). Yields the thread-safe
    call that counts one product done."""
    out = stream or sys.stderr
    if total == 0 or not out.isatty():
        yield lambda: None
        return
    lock = threading.Lock()
    done, drawn = 0, 0.0

    def advance() -> None:
        nonlocal done, drawn
        with lock:
            done += 1
            now = time.monotonic()
            if now - drawn >= PROGRESS_EVERY or done == total:
                drawn = now
                out.write("\r" + refresh_progress_text(done, total))
                out.flush()

    try:
        yield advance
    finally:
        with lock:
            if drawn:
                out.write("\r\x1b[K")  # erase the line: the plan is what stays on screen
                out.flush()
