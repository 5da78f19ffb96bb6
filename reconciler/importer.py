"""``reconciler import``: adopt renders that already exist on the platform instead of paying again.

Large catalogues arrive with renders made by hand or by older scripts. For each product the
command finds its newest still, MP4 and GIF (RENDER and TURNTABLE attachments), downloads
and hashes them, infers from the files what spec made them (reconciler.inspect) and compares
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

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import click

from reconciler.applying import ApplyRequest, client_settings
from reconciler.cli import (
    DEFAULT_STATE,
    SANDBOX_STATE,
    lock_timeout_option,
    manifests_option,
)
from reconciler.errors import ReconcilerError
from reconciler.fetch import fetch
from reconciler.inspect import (
    CONTENT_TYPES,
    UNKNOWABLE,
    InferredSpec,
    InspectError,
    Mismatch,
    infer_spec,
    sniff_file,
)
from reconciler.loader import load_desired
from reconciler.spec import ProductSpec, fingerprint
from reconciler.state import (
    Attachment,
    FileStateStore,
    ProductRecord,
    State,
    Status,
    open_store,
    utcnow,
)
from reconciler.state.model import attachment_kind


class Outcome(str, Enum):
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
    products: tuple[str, ...]
    all_products: bool
    manifests: list[Path]
    state_path: Path
    lock_timeout: float = 0.0
    force: bool = False
    parallelism: int = 4
    download_dir: Path | None = None
    sandbox_dir: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None
    fmt: str = "text"


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


def run_import(req: ImportRequest) -> list[ProductImport]:
    """Examine and record the requested products; ImportFailedError if any failed."""
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
            results += _examine_all(req, todo, store, state, stack)
    results.sort(key=lambda r: r.uuid)
    _report(results, store, state, req.fmt)
    failed = [r for r in results if r.outcome is Outcome.FAILED]
    if failed:
        raise ImportFailedError(
            f"{len(failed)} product(s) could not be imported: " + ", ".join(r.uuid for r in failed),
            hint="fix the cause and run import again",
        )
    return results


def _examine_all(
    req: ImportRequest, todo: list[ProductSpec], store: FileStateStore, state: State, stack: ExitStack
) -> list[ProductImport]:
    from reconciler.client import VntanaClient

    settings = stack.enter_context(
        client_settings(
            ApplyRequest(
                manifests=req.manifests,
                state_path=req.state_path,
                sandbox_dir=req.sandbox_dir,
                flags=req.flags,
                config_path=req.config_path,
                fmt=req.fmt,
            )
        )
    )
    client = stack.enter_context(VntanaClient(settings))
    out = []
    recorded = False
    with ThreadPoolExecutor(max_workers=req.parallelism, thread_name_prefix="import") as pool:
        futures = [pool.submit(examine, client, want, req.download_dir) for want in todo]
        for want, future in zip(todo, futures):
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


def examine(client: Any, want: ProductSpec, download_dir: Path | None = None) -> ProductImport:
    """Find, download and inspect one product's renders; never raises for a per-product problem."""
    try:
        return _examine(client, want, download_dir)
    except ReconcilerError as exc:
        return ProductImport(want.uuid, want.name, Outcome.FAILED, error=exc.message)


def _examine(client: Any, want: ProductSpec, download_dir: Path | None) -> ProductImport:
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


def _download(client: Any, store_type: str, att: Any, kind: str, folder: Path) -> tuple[Path, Attachment]:
    """Stream one attachment into ``folder`` (hashed while streaming); the file and its record."""
    target, got = fetch(client, att, store_type, folder)
    assert target is not None
    content_type = got.content_type or CONTENT_TYPES.get(sniff_file(target) or "", "application/octet-stream")
    return target, Attachment(
        kind=kind,
        uuid=att.uuid,
        name=target.name,
        sha256=got.sha256,
        size=got.size,  # type: ignore[arg-type]
        content_type=content_type,
    )


def _is_gif(att: Any) -> bool:
    return attachment_kind(att.entity_type or "TURNTABLE", att.name) == "gif"


def _newest(attachments: list[Any]) -> Any | None:
    """The most recently created attachment (uuid breaks ties, so the choice is stable)."""
    oldest = datetime.min.replace(tzinfo=UTC)

    def key(a: Any) -> tuple[datetime, str]:
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


# -- output ------------------------------------------------------------------------------

_SYMBOL = {
    Outcome.IN_SYNC: "=",
    Outcome.MISMATCH: "~",
    Outcome.INCOMPLETE: "!",
    Outcome.NO_RENDERS: "+",
    Outcome.SKIPPED: " ",
    Outcome.FAILED: "x",
}


def _report(results: list[ProductImport], store: FileStateStore, state: State, fmt: str) -> None:
    counts = {o.value: sum(1 for r in results if r.outcome is o) for o in Outcome}
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "state": {"location": store.location, "lineage": state.lineage, "serial": state.serial},
                    "products": [r.to_json() for r in results],
                    "summary": counts,
                },
                indent=2,
            )
        )
        return
    for r in results:
        click.echo(f"{_SYMBOL[r.outcome]} {r.uuid}  {r.name or ''}".rstrip())
        for line in _explain(r):
            click.echo(f"    {line}")
    imported = counts["in_sync"] + counts["mismatch"]
    click.echo(
        f"\nImported {imported} of {len(results)} product(s): {counts['in_sync']} in sync, "
        f"{counts['mismatch']} mismatched, {counts['incomplete']} incomplete, {counts['no_renders']} "
        f"without renders, {counts['skipped']} skipped, {counts['failed']} failed."
    )
    if counts["in_sync"]:
        click.echo(f"Files cannot reveal {', '.join(UNKNOWABLE)}: those were taken from the manifests.")
    click.echo(f"State: {store.location} (serial {state.serial}). Run 'reconciler plan' to see what is left.")


def _explain(r: ProductImport) -> list[str]:
    if r.outcome is Outcome.SKIPPED:
        return ["already in the state; skipped (--force imports it again)"]
    if r.outcome is Outcome.FAILED:
        return [f"failed: {r.error}"]
    if r.outcome is Outcome.NO_RENDERS:
        return ["no renders on the platform; nothing recorded, the plan renders it"]
    assert r.inferred is not None
    files = _files_summary(r.inferred.known)
    if r.outcome is Outcome.IN_SYNC:
        return [f"in sync, no render triggered ({files})"]
    lines = []
    if r.outcome is Outcome.INCOMPLETE:
        lines.append(
            f"incomplete: no {' and no '.join(r.missing)} on the platform; nothing recorded, "
            "the plan renders it"
        )
    else:
        lines.append("does not match the manifest; recorded as the platform has it, the plan re-renders it:")
    lines += [f"  {m.field}: platform {_v(m.platform)}, manifest {_v(m.manifest)}" for m in r.mismatches]
    lines.append("  unknown from the files (taken from the manifest): " + ", ".join(r.inferred.unknown))
    return lines


def _files_summary(known: dict[str, Any]) -> str:
    parts = []
    if "imageFormat" in known:
        parts.append(f"still {known['imageFormat']} {known['imageWidth']}x{known['imageHeight']}")
    if "turntable.imageCount" in known:
        parts.append(
            f"MP4 {known['turntable.imageCount']} frames @ {known['turntable.frameRate']} fps "
            f"{known['turntable.width']}x{known['turntable.height']}"
        )
    if known.get("turntable.includeGif"):
        parts.append("GIF")
    return ", ".join(parts)


def _v(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- command -----------------------------------------------------------------------------


@click.command("import")
@click.argument("products", nargs=-1, metavar="[UUID]...")
@click.option("--all", "all_products", is_flag=True, help="Every product in the manifests.")
@manifests_option
@click.option(
    "--state",
    "state_path",
    type=str,
    metavar="FILE|URL",
    envvar="RECONCILER_STATE",
    help=f"State file, or a postgresql:// URL. Default: {DEFAULT_STATE} ({SANDBOX_STATE} with --sandbox).",
)
@lock_timeout_option
@click.option("--force", is_flag=True, help="Import products already in the state again.")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Products examined at once.",
)
@click.option(
    "--download-dir", type=click.Path(path_type=Path, file_okay=False), help="Keep the files, by product."
)
@click.option("--sandbox", is_flag=True, help="Start the embedded VNTANA sandbox and import from it.")
@click.option(
    "--sandbox-dir",
    type=click.Path(path_type=Path),
    default=Path(".reconciler/sandbox"),
    show_default=True,
    help="Where the embedded sandbox keeps its products, jobs and files.",
)
@click.option("--api-url", help="VNTANA API base URL (env VNTANA_API_URL).")
@click.option("--organization", "organization_uuid", help="Organization uuid (env VNTANA_ORGANIZATION_UUID).")
@click.option("--workspace", "client_uuid", help='Workspace ("client") uuid (env VNTANA_CLIENT_UUID).')
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Config file (default: ./reconciler.yaml if present).",
)
@click.option(
    "--download-route",
    type=click.Choice(["auto", "comments", "signed-url"]),
    default=None,
    help="How renders are downloaded (env VNTANA_DOWNLOAD_ROUTE; default auto).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def import_command(
    products: tuple[str, ...],
    all_products: bool,
    manifests: tuple[Path, ...],
    state_path: Path | None,
    lock_timeout: float,
    force: bool,
    parallelism: int,
    download_dir: Path | None,
    sandbox: bool,
    sandbox_dir: Path,
    api_url: str | None,
    organization_uuid: str | None,
    client_uuid: str | None,
    config_path: Path | None,
    download_route: str | None,
    fmt: str,
) -> None:
    """Adopt renders already on the platform: infer their spec from the files, record them, trigger nothing."""
    if all_products == bool(products):
        flag = " --sandbox" if sandbox else ""
        raise ReconcilerError(
            "name the products to import, or pass --all (not both)",
            hint=f"reconciler import{flag} UUID... | reconciler import{flag} --all",
        )
    run_import(
        ImportRequest(
            products=products,
            all_products=all_products,
            manifests=list(manifests) or [Path("manifests")],
            state_path=state_path or (SANDBOX_STATE if sandbox else DEFAULT_STATE),
            lock_timeout=lock_timeout,
            force=force,
            parallelism=parallelism,
            download_dir=download_dir,
            sandbox_dir=sandbox_dir if sandbox else None,
            flags={
                "api_url": api_url,
                "organization_uuid": organization_uuid,
                "client_uuid": client_uuid,
                "download_route": download_route,
            },
            config_path=config_path,
            fmt=fmt,
        )
    )
