"""A state that matches the manifests, as a successful apply leaves it, without rendering."""

from __future__ import annotations

from pathlib import Path

from reconciler.loader import load_desired
from reconciler.state import Attachment, FileStateStore, ProductRecord, State, Status


def record_all_as_rendered(manifests: Path, state_path: Path) -> None:
    """Write to ``state_path`` every product of ``manifests`` as rendered with its spec."""
    products = {}
    for uuid, want in load_desired([manifests]).products.items():
        kinds = ["still", "turntable"] + (["gif"] if want.spec.turntable.includeGif else [])
        products[uuid] = ProductRecord(
            name=want.name,
            spec=want.spec.canonical(),
            spec_hash=want.spec_hash,
            status=Status.RENDERED,
            attachments=[
                Attachment(
                    kind=k,
                    uuid=f"{uuid[:8]}-{k}",
                    name=k,
                    sha256="0" * 64,  # type: ignore[arg-type]
                    size=1,
                    content_type="application/octet-stream",
                )
                for k in kinds
            ],
            updated_at="2026-01-01T00:00:00Z",
        )
    store = FileStateStore(state_path)
    with store.lock("test"):
        store.write(State(lineage="", products=products))
