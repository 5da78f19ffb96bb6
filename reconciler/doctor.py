"""``reconciler doctor``: check, with real credentials and before paying, how this platform reads.

VNTANA's own documents disagree on several points (vntana-docs-facts.md). The client copes with
every reading, but some points decide settings (the download route) and some cannot be coped
with at all (a page base other than the documented one, no working download route). Doctor
asks the platform, read-only, and reports for each point what it found and what the client
will do about it:

  login          logs in; organization, role, workspaces, whether the workspace step is used
  product        ``--product UUID`` or the first product of the manifests
  pages          whether the attachment search's first page is 0 (page 1 must hold the second)
  entity type    whether the server honours the entityType filter (the client filters anyway)
  download       which route serves the product's render, reading 16 bytes of it (Range)
  webhooks       which spelling of the webhook routes answers, and the event catalogue
  clock          the skew between this machine and the API's ``Date``

Invariants: doctor never triggers a render and never writes anything, on the platform or on
disk, except ``--save``, which writes the detected settings into ``reconciler.yaml`` (never the
token; comments and other keys kept). It exits 1 naming every problem the client cannot work
around; warnings (nothing to check with, webhooks unusable while polling works) exit 0.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from reconciler.client import VntanaClient
from reconciler.client.api import ROUTES, ProbeResult
from reconciler.client.wire import Attachment, Grid, Product, Webhook, WebhookEvent
from reconciler.client_protocols import RenderClient
from reconciler.connection import Connection, Note, client_settings, verbose_logging
from reconciler.errors import ApiError, ConfigError, ReconcilerError
from reconciler.loader import load_desired
from reconciler.settings import DEFAULT_CONFIG_NAME, ClientSettings, save_settings

RENDER_EVENTS = ("renders.completed", "renders.failed", "turntable.completed", "turntable.failed")
SKEW_WARN_SECONDS = 2.0
"""Above this, a run killed between its write-ahead and the trigger's answer judges "new" files
by this machine's clock (the state's ``requested_at``) and may miss them."""
SKEW_FAIL_SECONDS = 300.0
"""Above this, webhook deliveries look stale (5-minute replay window) and timestamps mislead."""

# Magic numbers of the files a render produces, to say what the probed bytes are.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"))


class Status(StrEnum):
    OK = "ok"
    """Found as expected, or a disagreement the client works around."""
    WARN = "warn"
    """Could not check, or a limitation that does not stop apply."""
    FAIL = "fail"
    """A problem the client cannot work around: fix it before paying for renders."""
    SKIP = "skip"
    """Not checked because an earlier check failed."""


@dataclass
class Check:
    """One point: what was found and what the client will do about it."""

    name: str
    status: Status
    found: str
    action: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class DoctorReport:
    api_url: str
    checks: list[Check] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    """What ``--save`` would write: the settings this platform calls for."""
    saved: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def to_json(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "ok": not self.problems,
            "checks": [{**asdict(c), "status": c.status.value} for c in self.checks],
            "settings": self.settings,
            "saved": self.saved,
            "problems": [f"{c.name}: {c.found}" for c in self.problems],
        }

    def error(self) -> DoctorProblems | None:
        """The error doctor ends with when a check failed (after the report is shown)."""
        if not self.problems:
            return None
        return DoctorProblems(
            f"{len(self.problems)} problem(s) the client cannot work around: "
            + "; ".join(c.name for c in self.problems),
            hint="see each one above; nothing was triggered",
        )


class DoctorClient(RenderClient, Protocol):
    """The client as doctor asks it: the executor's calls, plus the raw reads that tell readings apart."""

    def get_product(self, uuid: str) -> Product: ...

    def attachment_page(
        self, product_uuid: str, page: int, size: int, entity_type: str | None = None
    ) -> Grid[Attachment]: ...

    def probe_download(
        self, attachment: Attachment, route: str, store_type: str | None = None
    ) -> ProbeResult: ...

    def list_webhooks(self, *, spelling: str | None = None) -> list[Webhook]: ...

    def webhook_events(self, *, spelling: str | None = None) -> list[WebhookEvent]: ...

    def server_clock(self) -> tuple[datetime | None, datetime]: ...


class DoctorProblems(ReconcilerError):
    """Doctor found problems the client cannot work around (exit 1)."""


def diagnose(client: DoctorClient, settings: ClientSettings, product: str | None) -> DoctorReport:
    """Run every check against ``client`` (read-only); ``product`` is the uuid to look at, if any."""
    report = DoctorReport(api_url=settings.api_url)
    add = report.checks.append
    login = _login(client, settings)
    add(login)
    if login.status is Status.FAIL:
        for name in ("product", "pages", "entity type", "download", "webhooks", "clock"):
            add(Check(name, Status.SKIP, "not checked: cannot log in"))
        return report
    report.settings["organization_uuid"] = client.organization_uuid
    if settings.client_uuid:
        report.settings["client_uuid"] = settings.client_uuid
    if _product(client, product, add) and product is not None:
        pages = _pages(client, product)
        add(pages)
        files = None
        if pages.status is not Status.FAIL:
            try:
                files = client.list_attachments(product)
            except ApiError as exc:
                add(
                    Check(
                        "entity type",
                        Status.FAIL,
                        f"listing the product's attachments failed: {exc.message}",
                        "none possible",
                    )
                )
        if files is None:
            for name in ("entity type", "download")[1 if pages.status is not Status.FAIL else 0 :]:
                add(Check(name, Status.SKIP, "not checked: the attachments cannot be listed"))
        else:
            add(_entity_filter(client, product, files))
            add(_download(client, settings, files, report.settings))
    add(_webhooks(client, settings, report.settings))
    add(_clock(client))
    return report


# -- the checks ------------------------------------------------------------------------------


def _login(client: DoctorClient, settings: ClientSettings) -> Check:
    try:
        info = client.login_info
        workspaces = client.workspaces()
    except (ApiError, ConfigError) as exc:
        return Check("login", Status.FAIL, exc.message, exc.hint or "check the token and the organization")
    org = client.organization_uuid
    entry: dict[str, Any] = next((o for o in info.organizations if o.get("uuid") == org), {})
    who = f"organization {org}" + (f" ({entry['name']})" if entry.get("name") else "")
    found = f"{who} as {info.role or 'an unknown role'}; {len(workspaces)} workspace(s) visible"
    if workspaces:
        found += (
            ": "
            + ", ".join(
                (w.slug or w.uuid) + (f" ({w.role})" if w.role and w.role != info.role else "")
                for w in workspaces[:5]
            )
            + (" ..." if len(workspaces) > 5 else "")
        )
    detail = {
        "organization_uuid": org,
        "role": info.role,
        "workspace_step": info.workspace_step,
        "workspaces": [{"uuid": w.uuid, "slug": w.slug, "name": w.name, "role": w.role} for w in workspaces],
    }
    if not settings.client_uuid:
        return Check(
            "login", Status.OK, found, "uses the organization token (no workspace configured)", detail
        )
    if settings.client_uuid not in {w.uuid for w in workspaces}:
        return Check(
            "login",
            Status.FAIL,
            f"{found}; the configured workspace {settings.client_uuid} is not among them",
            "check client_uuid / VNTANA_CLIENT_UUID",
            detail,
        )
    action = {
        "used": "uses a workspace token (workspace-level role)",
        "skipped": "skips the workspace step (Owners and Admins get BAD_CREDENTIALS there) and uses the "
        "organization token, naming the workspace in each call",
        "refused": "the workspace step answered BAD_CREDENTIALS: uses the organization token",
    }.get(info.workspace_step, info.workspace_step)
    return Check("login", Status.OK, found, action, detail)


def _product(client: DoctorClient, product: str | None, add: Callable[[Check], None]) -> bool:
    """The product check; whether the checks that need a product can run."""
    later = ("pages", "entity type", "download")
    if product is None:
        add(
            Check(
                "product",
                Status.WARN,
                "no product to look at: pass --product UUID or run in a directory with manifests",
                "pages, entityType filtering and downloads are not checked",
            )
        )
        for name in later:
            add(Check(name, Status.SKIP, "not checked: no product"))
        return False
    try:
        found = client.get_product(product)
    except ApiError as exc:
        add(
            Check(
                "product",
                Status.FAIL,
                f"{product}: {exc.message}",
                exc.hint or "check the uuid and the workspace",
            )
        )
        for name in later:
            add(Check(name, Status.SKIP, "not checked: the product cannot be read"))
        return False
    add(
        Check(
            "product",
            Status.OK,
            f"{product} ({found.name or 'no name'}, {found.status or 'status unknown'})",
            detail={
                "uuid": product,
                "name": found.name,
                "status": found.status,
                "workspace": found.client_uuid,
            },
        )
    )
    return True


def _pages(client: DoctorClient, product: str) -> Check:
    action = "pages attachment searches from 0 and product searches from 1, as VNTANA's guides say"
    try:
        first = client.attachment_page(product, 0, 1)
    except ApiError as exc:
        return Check(
            "pages",
            Status.FAIL,
            f"page 0 of the attachment search is refused: {exc.message}",
            "none possible: VNTANA's guide and client page attachments from 0; report this to VNTANA",
        )
    if first.total_count == 0 and not first.grid:
        return Check(
            "pages",
            Status.WARN,
            "the product has no attachments: the page base cannot be seen",
            action + "; pass --product with a rendered product to check",
        )
    if not first.grid:
        return Check(
            "pages",
            Status.FAIL,
            f"page 0 is empty although totalCount is {first.total_count}: pages start at 1 here",
            "none possible: every search would miss its first page; report this to VNTANA",
        )
    if first.total_count < 2:
        return Check(
            "pages",
            Status.OK,
            "page 0 holds the product's only attachment",
            action,
            {"first_page": 0, "compared": False},
        )
    second = client.attachment_page(product, 1, 1)
    if second.grid and second.grid[0].uuid == first.grid[0].uuid:
        return Check(
            "pages",
            Status.FAIL,
            "pages 0 and 1 hold the same attachment: the server does not page as documented",
            "none possible; report this to VNTANA",
        )
    return Check(
        "pages",
        Status.OK,
        f"page 0 holds the first of {first.total_count} attachments, page 1 the second",
        action,
        {"first_page": 0, "compared": True},
    )


def _entity_filter(client: DoctorClient, product: str, files: list[Attachment]) -> Check:
    action = "filters by the entityType each entry carries, whatever the server does"
    try:
        answer = client.attachment_page(product, 0, 100, entity_type="RENDER")
    except ApiError as exc:
        return Check(
            "entity type",
            Status.WARN,
            f"a RENDER search was refused: {exc.message}",
            "searches without the filter and filters itself",
            {"filter": "refused"},
        )
    renders = sum(1 for a in files if (a.entity_type or "").upper() in ("RENDER", "TURNTABLE"))
    listing = f"{len(files)} attachment(s), {renders} RENDER/TURNTABLE; "
    others = sorted({(a.entity_type or "?").upper() for a in answer.grid} - {"RENDER"})
    if others:
        return Check(
            "entity type",
            Status.OK,
            listing + f"ignored: a RENDER search also returned {', '.join(others)}",
            action,
            {"filter": "ignored"},
        )
    kinds = {(a.entity_type or "?").upper() for a in files}
    if kinds - {"RENDER"}:
        return Check(
            "entity type",
            Status.OK,
            listing + "honoured: a RENDER search returned only RENDER attachments",
            action,
            {"filter": "honoured"},
        )
    return Check(
        "entity type",
        Status.OK,
        listing + "cannot tell: the product has no attachments other than RENDER",
        action,
        {"filter": "unknown"},
    )


def _download(
    client: DoctorClient, settings: ClientSettings, files: list[Attachment], detected: dict[str, Any]
) -> Check:
    render = next(
        (a for t in ("RENDER", "TURNTABLE") for a in files if (a.entity_type or "").upper() == t), None
    )
    if render is None:
        return Check(
            "download",
            Status.WARN,
            "the product has no render to try the download routes on",
            f"download_route {settings.download_route}; pass --product with a rendered product to check",
        )
    results = {route: client.probe_download(render, route) for route in ROUTES}
    working = [r for r in ROUTES if results[r].ok]
    found = "; ".join(
        f"{r}: {'works, ' + _what(results[r].head) + ', ' if results[r].ok else 'no: '}{results[r].detail}"
        for r in ROUTES
    )
    detail = {
        "file": render.name or render.uuid,
        "routes": {r: {"ok": results[r].ok, "detail": results[r].detail} for r in ROUTES},
    }
    if not working:
        return Check(
            "download",
            Status.FAIL,
            f"no route serves {render.name or render.uuid}: {found}",
            "none possible: renders could be triggered but never downloaded",
            detail,
        )
    if settings.download_route != "auto" and settings.download_route not in working:
        detected["download_route"] = working[0]
        return Check(
            "download",
            Status.FAIL,
            f"download_route is {settings.download_route}, which does not work here: {found}",
            f"set download_route: {working[0]} (--save does)",
            detail,
        )
    detected["download_route"] = settings.download_route if settings.download_route != "auto" else working[0]
    return Check("download", Status.OK, found, f"download_route: {detected['download_route']}", detail)


def _webhooks(client: DoctorClient, settings: ClientSettings, detected: dict[str, Any]) -> Check:
    results: dict[str, str | None] = {}
    catalogue: list[str] = []
    for spelling in ("guide", "yaml"):
        try:
            client.list_webhooks(spelling=spelling)
            events = client.webhook_events(spelling=spelling)
        except ApiError as exc:
            results[spelling] = exc.message
            continue
        results[spelling] = None
        catalogue = catalogue or [e.name for e in events]
        detected.setdefault("webhook_paths", spelling)
    working = [s for s in ("guide", "yaml") if results.get(s) is None]
    found = "; ".join(
        f"{s} spelling: " + ("answers" if results[s] is None else f"no ({results[s]})")
        for s in ("guide", "yaml")
    )
    detail = {"working": working, "events": catalogue}
    if not working:
        return Check(
            "webhooks",
            Status.WARN,
            found,
            "apply --webhook-listen cannot register a webhook; waiting polls instead",
            detail,
        )
    missing = [e for e in RENDER_EVENTS if e not in catalogue]
    if missing:
        return Check(
            "webhooks",
            Status.WARN,
            f"{found}; the event catalogue lacks {', '.join(missing)}",
            "apply --webhook-listen would be refused; waiting polls instead",
            detail,
        )
    if settings.webhook_paths != "auto" and settings.webhook_paths not in working:
        return Check(
            "webhooks",
            Status.WARN,
            f"webhook_paths is {settings.webhook_paths}, which does not answer: {found}",
            f"set webhook_paths: {working[0]} (--save does)",
            detail,
        )
    return Check(
        "webhooks",
        Status.OK,
        found,
        f"webhook_paths: {working[0]}; events sent as the catalogue's objects",
        detail,
    )


def _clock(client: DoctorClient) -> Check:
    try:
        server, local = client.server_clock()
    except ApiError as exc:
        return Check("clock", Status.WARN, f"cannot read the API's time: {exc.message}")
    if server is None:
        return Check(
            "clock",
            Status.WARN,
            "the API sends no Date header",
            "judges new files by the trigger's time as this machine sees it",
        )
    skew = (server - local).total_seconds()
    found = f"the API's clock is {abs(skew):.1f} s {'ahead of' if skew >= 0 else 'behind'} this machine's"
    detail = {"skew_seconds": round(skew, 3)}
    if abs(skew) > SKEW_FAIL_SECONDS:
        return Check(
            "clock",
            Status.FAIL,
            found,
            "none possible: webhook deliveries would be refused as stale; set this machine's clock (NTP)",
            detail,
        )
    if abs(skew) > SKEW_WARN_SECONDS + 1:  # the Date header has whole seconds
        return Check(
            "clock",
            Status.WARN,
            found,
            "uses the API's own Date for triggers; a run killed before a "
            "trigger's answer may miss its files: set the clock (NTP)",
            detail,
        )
    return Check("clock", Status.OK, found, detail=detail)


def _what(head: bytes) -> str:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return f"{kind} bytes"
    if head[4:8] == b"ftyp":
        return "MP4 bytes"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP bytes"
    return f"{len(head)} bytes"


# -- the run -------------------------------------------------------------------------------


@dataclass
class DoctorRequest:
    """What ``reconciler doctor`` was asked: the product to check with, and the platform."""

    product: str | None
    manifests: list[Path]
    save: bool = False
    connection: Connection = field(default_factory=Connection)


def run_doctor(req: DoctorRequest, note: Note | None = None) -> DoctorReport:
    """Check the platform and write the settings with ``save``. ``report.error()`` is the error to
    end with when a check failed; ``note`` hears what was started (the embedded sandbox)."""
    if req.save and req.connection.sandbox:
        raise ReconcilerError(
            "--save with --sandbox would write the embedded sandbox's settings",
            hint="run doctor without --sandbox (with your credentials) to save settings",
        )
    product = req.product.lower() if req.product else _first_product(req.manifests)
    if req.connection.verbose:
        verbose_logging()
    with ExitStack() as stack:
        settings = stack.enter_context(client_settings(req.connection, note))
        client = stack.enter_context(VntanaClient(settings))
        report = diagnose(client, settings, product)
    if req.save and report.checks[0].status is not Status.FAIL:
        path = req.connection.config_path or Path.cwd() / DEFAULT_CONFIG_NAME
        report.saved = save_settings(path, report.settings)
    return report


def _first_product(manifests: list[Path]) -> str | None:
    """The first product (in uuid order) of the manifests, if there are manifests to read."""
    if not any(p.exists() for p in manifests):
        return None
    desired = load_desired(manifests)  # broken manifests are an error here too (ManifestError)
    return min(desired.products) if desired.products else None
