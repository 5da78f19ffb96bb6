"""What the gallery shows, decided from data alone: no disk, no clock, no network.

Inputs are the state's records, the record of the last apply or a saved plan, and a listing
of the downloads folder as ``{relative path: FileFacts(size, sha256)}`` for the files that
exist. Out come cards (one per product), the media each card needs previews of, and the
pages with their counts. build.py does the I/O around it; pages.py turns it into HTML.

Every file a card names is looked up where the downloads layout (downloads.py) puts it and
compared with the sha256 the state recorded: ``ok``, ``altered`` (a different file is there)
or ``missing``. Nothing here trusts a name from the state as a path: a name that is not a
plain file name is treated as missing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconciler.downloads import LastApply, current_path, previous_path
from reconciler.errors import ReconcilerError
from reconciler.plan import Action, ActionKind, FieldChange, Plan
from reconciler.planner import field_changes
from reconciler.state.model import Attachment, ProductRecord, Status

# "A few hundred cards" a page: a page of 200 cards with lazy images opens at once, and
# 10,000 products make 50 pages.
PAGE_SIZE = 200
KIND_ORDER = {"still": 0, "turntable": 1, "gif": 2}
# Plan actions that touch a product (what --since-plan shows); NOOP, ORPHAN and BLOCKED do not.
TOUCHING = frozenset(
    {
        ActionKind.RENDER,
        ActionKind.RERENDER,
        ActionKind.RETRY,
        ActionKind.RESUME,
        ActionKind.FORGET,
        ActionKind.DELETE,
    }
)
PLANNED = "planned"
"""Status of a card for a product the plan names but the state does not hold."""
STATUS_LABELS = {
    Status.RENDERED.value: "rendered",
    Status.FAILED.value: "failed",
    Status.IN_FLIGHT.value: "in flight",
    Status.REQUESTED.value: "requested",
    PLANNED: "planned",
}


class GalleryError(ReconcilerError):
    """The gallery cannot be built from what it was given."""


@dataclass(frozen=True, slots=True)
class FileFacts:
    """A file that exists in the downloads folder: its size and sha256."""

    size: int
    sha256: str


class Local(str, Enum):
    """How the local copy of a recorded file compares with the state."""

    OK = "ok"
    """The file is there and its sha256 is the one the state recorded."""
    ALTERED = "altered"
    """A file is where it should be, but its sha256 differs from the state's."""
    MISSING = "missing"
    """No file where the downloads layout puts it."""
    NOT_KEPT = "not_kept"
    """No downloads folder was given: there is nothing local to compare."""


@dataclass(frozen=True, slots=True)
class FileView:
    """One recorded file of a product and what the disk holds for it."""

    kind: str
    name: str
    recorded_sha256: str
    size: int
    content_type: str
    local: Local
    source: str | None = None
    """Path of the local file relative to the downloads folder, when one is there."""
    local_sha256: str | None = None

    @property
    def shown(self) -> bool:
        """A local file exists, so the card can show it (with a warning if altered)."""
        return self.source is not None and self.local_sha256 is not None

    @property
    def media(self) -> str | None:
        """Where the site keeps its copy: content-addressed by the local file's hash."""
        return media_path(self.local_sha256, self.name) if self.shown and self.local_sha256 else None


@dataclass(frozen=True, slots=True)
class BeforeAfter:
    """The previous render beside the new one, for a product re-rendered in the last apply."""

    before: FileView | None
    before_spec: str
    before_when: str
    changes: list[FieldChange]


@dataclass(slots=True)
class Card:
    uuid: str
    name: str
    status: str
    spec_words: str
    image_format: str
    gif: bool
    when: str | None
    files: list[FileView] = field(default_factory=list)
    error: str | None = None
    changed: bool = False
    drifted: bool = False
    before_after: BeforeAfter | None = None
    planned: Action | None = None
    page: int = 1

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def flags(self) -> list[str]:
        """Words the page's filter matches on (data-flags)."""
        out = [
            f
            for f, on in (
                ("changed", self.changed),
                ("failed", self.status == Status.FAILED.value),
                ("drifted", self.drifted),
                ("gif", self.gif),
            )
            if on
        ]
        return out

    @property
    def problems(self) -> list[FileView]:
        return [f for f in self.files if f.local in (Local.ALTERED, Local.MISSING)]

    def file(self, kind: str) -> FileView | None:
        return next((f for f in self.files if f.kind == kind), None)


@dataclass(frozen=True)
class Focus:
    """Which products the gallery shows, and which count as changed."""

    products: list[str] | None
    """None: every product in the state."""
    changed: frozenset[str]
    description: str
    planned: Mapping[str, Action] = field(default_factory=dict)
    drift: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PageInfo:
    number: int
    filename: str
    first: str
    last: str
    count: int


@dataclass(frozen=True)
class Counts:
    products: int
    by_status: dict[str, int]
    by_format: dict[str, int]
    gif: int
    changed: int
    failed: int
    drifted: int
    files: int
    missing: int
    altered: int
    recorded_bytes: int


@dataclass(frozen=True)
class Site:
    title: str
    cards: list[Card]
    pages: list[PageInfo]
    counts: Counts
    focus: Focus
    source: str
    """What it was built from, in words (state file, downloads folder)."""
    built_at: str
    kept: bool
    """Whether a downloads folder was given."""


@dataclass(frozen=True, slots=True)
class Preview:
    """A derived image the edge made: a still's thumbnail, an MP4's poster, a GIF's size."""

    width: int
    height: int
    path: str | None = None
    """Site path of the thumbnail or poster; None for a GIF (shown itself)."""


PreviewKey = tuple[str, str]
"""(role, sha256 of the local file); role is "thumb", "poster" or "probe"."""
ROLE = {"still": "thumb", "turntable": "poster", "gif": "probe"}


# Site files are named by the content they show: the first 20 hex digits (80 bits) of its
# sha256 keep names short on pages of hundreds of cards; the cards print the full hash.
def media_path(sha256: str, name: str) -> str:
    return f"media/{sha256[:2]}/{sha256[2:20]}/{name}"


def thumb_path(sha256: str) -> str:
    return f"thumbs/{sha256[:2]}/{sha256[2:20]}.webp"


def poster_path(sha256: str) -> str:
    return f"posters/{sha256[:2]}/{sha256[2:20]}.webp"


def page_filename(number: int) -> str:
    return f"page-{number}.html"


# -- what to show ----------------------------------------------------------------------------
def focus(
    records: Mapping[str, ProductRecord],
    *,
    lineage: str,
    last_apply: LastApply | None = None,
    plan: Plan | None = None,
    changed_only: bool = False,
    plan_name: str = "the plan",
) -> Focus:
    """Decide the products to show: those a plan touches, those the last apply touched
    (``changed_only``), or all; and which are "changed". Raises GalleryError when
    ``changed_only`` has no usable record of the last apply."""
    if plan is not None:
        touched = [a for a in plan.actions.built if a.kind in TOUCHING]  # no unchanged one touches
        products = [a.product for a in touched]
        drift = frozenset(a.product for a in touched if a.reason.category == "drift")
        return Focus(
            products=products,
            changed=frozenset(products),
            planned={a.product: a for a in touched},
            drift=drift,
            description=f"the {_n(len(products), 'product')} {plan_name} touches",
        )
    usable = last_apply if last_apply is not None and last_apply.lineage == lineage else None
    if changed_only:
        if last_apply is None:
            raise GalleryError(
                "--changed: no record of the last apply in the downloads folder",
                hint="apply writes it when it keeps files (--download-dir, or downloads: in "
                "reconciler.yaml); or use --since-plan PLANFILE",
            )
        if usable is None:
            raise GalleryError(
                f"--changed: the record of the last apply belongs to another state "
                f"(lineage {last_apply.lineage}, this state is {lineage or 'new'})",
                hint="point --state and --download-dir at the same project",
            )
        products = sorted(set(usable.rendered) | set(usable.failed))
        return Focus(
            products=products,
            changed=frozenset(usable.rendered),
            description=f"the {_n(len(products), 'product')} the last apply touched "
            f"(finished {human_time(usable.finished_at)})",
        )
    changed = frozenset(usable.rendered) if usable else frozenset()
    return Focus(
        products=None, changed=changed, description=f"all {_n(len(records), 'product')} in the state"
    )


def wanted_paths(records: Mapping[str, ProductRecord], products: Iterable[str]) -> set[str]:
    """Every path (relative to the downloads folder) a card may look at: the edge stats and
    hashes those that exist, and nothing else."""
    out: set[str] = set()
    for uuid in products:
        rec = records.get(uuid)
        if rec is None:
            continue
        past = rec.history[0].attachments if rec.history else []
        for att in [*rec.attachments, *past]:
            if _safe(uuid, att):
                out.add(current_path(uuid, att.name))
                out.add(previous_path(uuid, att.sha256, att.name))
    return out


def build_cards(
    records: Mapping[str, ProductRecord], chosen: Focus, listing: Mapping[str, FileFacts], *, kept: bool
) -> list[Card]:
    """One card per product in focus, changed ones first, then by name."""
    uuids = list(records) if chosen.products is None else list(dict.fromkeys(chosen.products))
    cards = [_card(uuid, records.get(uuid), chosen, listing, kept) for uuid in uuids]
    cards.sort(key=lambda c: (not c.changed, c.name.casefold(), c.uuid))
    return cards


def _card(
    uuid: str, rec: ProductRecord | None, chosen: Focus, listing: Mapping[str, FileFacts], kept: bool
) -> Card:
    action = chosen.planned.get(uuid)
    if rec is None:
        spec = action.spec if action and action.spec else {}
        return Card(
            uuid=uuid,
            name=(action.name if action else None) or uuid,
            status=PLANNED,
            spec_words=spec_in_words(spec) if spec else "",
            image_format=str(spec.get("imageFormat", "")),
            gif=_gif(spec),
            when=None,
            changed=uuid in chosen.changed,
            drifted=uuid in chosen.drift,
            planned=action,
        )
    files = sorted(
        (locate(uuid, a, listing, kept=kept) for a in rec.attachments),
        key=lambda f: (KIND_ORDER.get(f.kind, 9), f.name),
    )
    card = Card(
        uuid=uuid,
        name=rec.name or uuid,
        status=rec.status.value,
        spec_words=spec_in_words(rec.spec),
        image_format=str(rec.spec.get("imageFormat", "")),
        gif=any(f.kind == "gif" for f in files),
        when=rec.updated_at,
        files=files,
        error=rec.error if rec.status is Status.FAILED else None,
        changed=uuid in chosen.changed,
    )
    card.drifted = uuid in chosen.drift or bool(card.problems)
    applied = action is None or rec.spec_hash == action.spec_hash
    if action is not None and action.kind.triggers and not applied:
        card.planned = action
    elif card.changed and rec.status is Status.RENDERED and rec.history:
        prev = rec.history[0]
        still = next((a for a in prev.attachments if a.kind == "still"), None)
        card.before_after = BeforeAfter(
            before=locate(uuid, still, listing, kept=kept, past=True) if still else None,
            before_spec=spec_in_words(prev.spec),
            before_when=prev.recorded_at,
            changes=field_changes(prev.spec, rec.spec),
        )
    return card


def locate(
    product: str, att: Attachment, listing: Mapping[str, FileFacts], *, kept: bool, past: bool = False
) -> FileView:
    """Find a recorded file where the layout puts it and compare its hash with the record's.

    A current file lives at ``<uuid>/<name>``; a replaced one at ``.previous/<sha256>/<name>``, or
    still at ``<uuid>/<name>`` if no later download of that name replaced it. Only the first
    place can make a file "altered": a later render's file of the same name is not a damaged
    copy of the old one."""
    view = FileView(
        kind=att.kind,
        name=att.name,
        recorded_sha256=att.sha256,
        size=att.size,
        content_type=att.content_type,
        local=Local.NOT_KEPT if not kept else Local.MISSING,
    )
    if not kept or not _safe(product, att):
        return view
    here, kept_aside = current_path(product, att.name), previous_path(product, att.sha256, att.name)
    primary, secondary = (kept_aside, here) if past else (here, kept_aside)
    for path in (primary, secondary):
        facts = listing.get(path)
        if facts is not None and facts.sha256 == att.sha256:
            return _with(view, Local.OK, path, facts)
    facts = listing.get(primary)
    if facts is not None:
        return _with(view, Local.ALTERED, primary, facts)
    return view


def _with(view: FileView, local: Local, path: str, facts: FileFacts) -> FileView:
    return FileView(
        kind=view.kind,
        name=view.name,
        recorded_sha256=view.recorded_sha256,
        size=view.size,
        content_type=view.content_type,
        local=local,
        source=path,
        local_sha256=facts.sha256,
    )


def previews_needed(cards: Iterable[Card]) -> dict[PreviewKey, tuple[str, str]]:
    """{(role, local sha256): (kind, source path)} for every local file a card shows."""
    out: dict[PreviewKey, tuple[str, str]] = {}
    for card in cards:
        shown = list(card.files)
        if card.before_after and card.before_after.before:
            shown.append(card.before_after.before)
        for f in shown:
            if f.shown and f.kind in ROLE:
                assert f.local_sha256 is not None and f.source is not None
                out.setdefault((ROLE[f.kind], f.local_sha256), (f.kind, f.source))
    return out


def media_needed(cards: Iterable[Card]) -> dict[str, str]:
    """{site media path: source path in the downloads folder} for every file a card links."""
    out: dict[str, str] = {}
    for card in cards:
        files = list(card.files)
        if card.before_after and card.before_after.before:
            files.append(card.before_after.before)
        for f in files:
            if f.media and f.source:
                out.setdefault(f.media, f.source)
    return out


# -- pages and counts ------------------------------------------------------------------------
def layout(
    cards: list[Card],
    chosen: Focus,
    *,
    title: str,
    source: str,
    built_at: str,
    kept: bool,
    page_size: int = PAGE_SIZE,
) -> Site:
    """Number the cards into pages and count them for the index."""
    if page_size < 1:
        raise GalleryError("page size must be at least 1")
    pages = []
    for number in range(1, max(1, math.ceil(len(cards) / page_size)) + 1):
        chunk = cards[(number - 1) * page_size : number * page_size]
        for card in chunk:
            card.page = number
        pages.append(
            PageInfo(
                number,
                page_filename(number),
                chunk[0].name if chunk else "",
                chunk[-1].name if chunk else "",
                len(chunk),
            )
        )
    files = [f for c in cards for f in c.files]
    counts = Counts(
        products=len(cards),
        by_status=dict(Counter(c.status_label for c in cards).most_common()),
        by_format=dict(sorted(Counter(c.image_format for c in cards if c.image_format).items())),
        gif=sum(c.gif for c in cards),
        changed=sum(c.changed for c in cards),
        failed=sum(c.status == Status.FAILED.value for c in cards),
        drifted=sum(c.drifted for c in cards),
        files=len(files),
        missing=sum(f.local is Local.MISSING for f in files),
        altered=sum(f.local is Local.ALTERED for f in files),
        recorded_bytes=sum(f.size for f in files),
    )
    return Site(
        title=title,
        cards=cards,
        pages=pages,
        counts=counts,
        focus=chosen,
        source=source,
        built_at=built_at,
        kept=kept,
    )


def search_index(site: Site) -> list[list[Any]]:
    """Compact rows for the index page's search over every page: [uuid, name, page, status, format, flags]."""
    return [[c.uuid, c.name, c.page, c.status, c.image_format, " ".join(c.flags)] for c in site.cards]


# -- words -----------------------------------------------------------------------------------
def spec_in_words(spec: Mapping[str, Any]) -> str:
    """ "WEBP 1200×1200 on #F4F4F4, 36 frames @ 12 fps at 720×720, GIF" from a canonical spec."""
    parts = [f"{spec.get('imageFormat', '?')} {spec.get('imageWidth', '?')}×{spec.get('imageHeight', '?')}"]
    if spec.get("transparentBackground"):
        parts[0] += " transparent"
    elif spec.get("imageBackground"):
        parts[0] += f" on {spec['imageBackground']}"
    turntable = spec.get("turntable")
    if isinstance(turntable, Mapping):
        words = f"{turntable.get('imageCount', '?')} frames @ {turntable.get('frameRate', '?')} fps"
        if turntable.get("width") and turntable.get("height"):
            words += f" at {turntable['width']}×{turntable['height']}"
        parts.append(words)
        if turntable.get("includeGif"):
            parts.append("GIF")
    return ", ".join(parts)


def human_time(stamp: str | None) -> str:
    """ "2026-12-01 08:30 UTC" from the state's ISO UTC stamps; other text unchanged."""
    if not stamp:
        return ""
    text = stamp.replace("T", " ")
    if text.endswith("Z") and len(text) >= 17:
        return text[:16] + " UTC"
    return text


def _gif(spec: Mapping[str, Any]) -> bool:
    turntable = spec.get("turntable")
    return bool(isinstance(turntable, Mapping) and turntable.get("includeGif"))


def _safe(product: str, att: Attachment) -> bool:
    """Uuid, name and hash are plain names, so the paths built from them stay in the folder."""
    return _plain_name(product) and _plain_name(att.name) and _plain_name(att.sha256)


def _plain_name(name: str) -> bool:
    return (
        bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name
    )


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"
