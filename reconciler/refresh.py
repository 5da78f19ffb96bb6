"""Ask the platform what each recorded product holds now (and, with verify, hash it again).

The result is an ``Observed`` snapshot for the pure planner. Searches (two per product) and
verification downloads run in a bounded thread pool over one client, so the client's
limiter paces them together.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.observed import Observed, ObservedAttachment, ObservedProduct
from reconciler.state.model import State, Status

ENTITY_TYPES = ("RENDER", "TURNTABLE")


def observe(client: Any, state: State, products: Iterable[str] | None = None, *, verify: bool = False,
            parallelism: int = 4) -> Observed:
    """Snapshot the platform for ``products`` (default: every rendered product in the state)."""
    wanted = sorted(products if products is not None else
                    (u for u, r in state.products.items() if r.status is Status.RENDERED))
    recorded = {u: {a.uuid for a in state.products[u].attachments} for u in wanted if u in state.products}

    def one(uuid: str) -> tuple[str, ObservedProduct]:
        found = []
        for entity_type in ENTITY_TYPES:
            for att in client.search_attachments(uuid, entity_type):
                sha = None
                if verify and att.uuid in recorded.get(uuid, set()):
                    sha = client.download(att, entity_type, None).sha256
                created = att.created.isoformat() if att.created else None
                found.append(ObservedAttachment(att.uuid, entity_type, att.name, created, sha))
        return uuid, ObservedProduct(tuple(found))

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="refresh") as pool:
        return Observed(products=dict(pool.map(one, wanted)), verified=verify)
