"""The gallery's decisions as data in, cards out: no disk, no browser."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.downloads import LastApply
from reconciler.gallery.model import (
    PLANNED,
    FileFacts,
    Focus,
    GalleryError,
    Local,
    build_cards,
    focus,
    layout,
    locate,
    media_needed,
    previews_needed,
    search_index,
    spec_in_words,
    wanted_paths,
)
from reconciler.plan import Action, ActionKind, Cost, FieldChange, Plan, Reason, StateToken
from reconciler.spec import RenderSpec, fingerprint
from reconciler.state import Attachment, PastRender, ProductRecord, Status

U1, U2, U3 = (
    "11111111-1111-4111-8111-111111111111",
    "22222222-2222-4222-8222-222222222222",
    "33333333-3333-4333-8333-333333333333",
)
SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def spec(**over: Any) -> dict[str, Any]:
    turntable = {
        "includeGif": False,
        "imageCount": 36,
        "frameRate": 12,
        "width": 720,
        "height": 720,
        **over.pop("turntable", {}),
    }
    return RenderSpec.model_validate(
        {
            "imageWidth": 1200,
            "imageHeight": 1200,
            "imageFormat": "WEBP",
            "imageBackground": "#F4F4F4",
            "turntable": turntable,
            **over,
        }
    ).canonical()


def att(kind: str, name: str, sha: str, size: int = 10) -> Attachment:
    return Attachment(
        kind=kind,
        uuid=f"att-{name}-{sha[:4]}",
        name=name,
        sha256=sha,
        size=size,  # type: ignore[arg-type]
        content_type="image/webp",
    )


def record(
    attachments: list[Attachment],
    *,
    name: str | None = "Chair",
    status: Status = Status.RENDERED,
    history: list[PastRender] | None = None,
    the_spec: dict[str, Any] | None = None,
) -> ProductRecord:
    s = the_spec or spec()
    return ProductRecord(
        name=name,
        spec=s,
        spec_hash=fingerprint(s),
        status=status,
        attachments=attachments,
        updated_at="2026-12-01T08:30:12Z",
        history=history or [],
        error="RENDER_ERROR: no" if status is Status.FAILED else None,
    )


ALL = Focus(products=None, changed=frozenset(), description="all")


@pytest.mark.parametrize(
    ("listing", "past", "expected", "source"),
    [
        ({f"{U1}/s.webp": FileFacts(10, SHA_A)}, False, Local.OK, f"{U1}/s.webp"),
        ({f"{U1}/s.webp": FileFacts(10, SHA_B)}, False, Local.ALTERED, f"{U1}/s.webp"),
        ({}, False, Local.MISSING, None),
        # a current file found only under .previous (a later render of the same name was undone by hand)
        (
            {f"{U1}/.previous/{SHA_A}/s.webp": FileFacts(10, SHA_A)},
            False,
            Local.OK,
            f"{U1}/.previous/{SHA_A}/s.webp",
        ),
        # a past file is looked for under .previous first, then where it was downloaded
        (
            {f"{U1}/.previous/{SHA_A}/s.webp": FileFacts(10, SHA_A)},
            True,
            Local.OK,
            f"{U1}/.previous/{SHA_A}/s.webp",
        ),
        ({f"{U1}/s.webp": FileFacts(10, SHA_A)}, True, Local.OK, f"{U1}/s.webp"),
        # the newer render's file of the same name does not make the old one "altered": it is missing
        ({f"{U1}/s.webp": FileFacts(10, SHA_B)}, True, Local.MISSING, None),
        (
            {f"{U1}/.previous/{SHA_A}/s.webp": FileFacts(10, SHA_C)},
            True,
            Local.ALTERED,
            f"{U1}/.previous/{SHA_A}/s.webp",
        ),
    ],
)
def test_locate_compares_the_local_file_with_the_recorded_hash(
    listing: dict[str, FileFacts], past: bool, expected: Local, source: str | None
) -> None:
    view = locate(U1, att("still", "s.webp", SHA_A), listing, kept=True, past=past)
    assert (view.local, view.source) == (expected, source)


@pytest.mark.parametrize("name", ["../escape.png", "a/b.png", "..", "", "x\\y.png"])
def test_a_name_that_is_not_a_plain_file_name_is_never_a_path(name: str) -> None:
    bad = att("still", name, SHA_A)
    rec = record([bad])
    assert wanted_paths({U1: rec}, [U1]) == set()
    assert locate(U1, bad, {f"{U1}/{name}": FileFacts(1, SHA_A)}, kept=True).local is Local.MISSING


def test_without_a_downloads_folder_files_are_not_kept_not_missing() -> None:
    [card] = build_cards({U1: record([att("still", "s.webp", SHA_A)])}, ALL, {}, kept=False)
    assert [f.local for f in card.files] == [Local.NOT_KEPT]
    assert not card.drifted and card.problems == []


@pytest.mark.parametrize(
    ("the_spec", "words"),
    [
        (spec(), "WEBP 1200×1200 on #F4F4F4, 36 frames @ 12 fps at 720×720"),
        (
            spec(turntable={"includeGif": True}),
            "WEBP 1200×1200 on #F4F4F4, 36 frames @ 12 fps at 720×720, GIF",
        ),
        (
            spec(imageFormat="PNG", transparentBackground=True, imageBackground=None),
            "PNG 1200×1200 transparent, 36 frames @ 12 fps at 720×720",
        ),
        ({"imageFormat": "JPG"}, "JPG ?×?"),  # a hand-edited state never breaks the page
    ],
)
def test_spec_in_words(the_spec: dict[str, Any], words: str) -> None:
    assert spec_in_words(the_spec) == words


def test_a_product_rerendered_in_the_last_apply_gets_before_after_with_the_field_changes() -> None:
    old = spec()
    new = spec(imageFormat="PNG", turntable={"includeGif": True})
    past = PastRender(
        spec_hash=fingerprint(old),
        spec=old,
        recorded_at="2026-11-30T10:00:00Z",
        attachments=[att("still", "s.webp", SHA_A), att("turntable", "t.mp4", SHA_C)],
    )
    rec = record([att("still", "s.png", SHA_B)], history=[past], the_spec=new)
    listing = {f"{U1}/.previous/{SHA_A}/s.webp": FileFacts(10, SHA_A), f"{U1}/s.png": FileFacts(10, SHA_B)}
    chosen = focus({U1: rec}, lineage="L", last_apply=LastApply("L", "2026-12-01T08:31:00Z", rendered=[U1]))
    [card] = build_cards({U1: rec}, chosen, listing, kept=True)
    assert card.changed and card.before_after is not None
    assert card.before_after.before is not None and card.before_after.before.local is Local.OK
    assert card.before_after.changes == [
        FieldChange("imageFormat", "WEBP", "PNG"),
        FieldChange("turntable.includeGif", False, True),
    ]
    assert {k[0] for k in previews_needed([card])} == {"thumb"}
    assert set(media_needed([card]).values()) == {f"{U1}/.previous/{SHA_A}/s.webp", f"{U1}/s.png"}


def test_unchanged_products_and_a_record_of_another_state_give_no_before_after() -> None:
    past = PastRender(
        spec_hash="x", spec=spec(), recorded_at="t", attachments=[att("still", "s.webp", SHA_A)]
    )
    rec = record([att("still", "s.webp", SHA_B)], history=[past])
    for last in (None, LastApply("OTHER", "t", rendered=[U1]), LastApply("L", "t", rendered=[U2])):
        [card] = build_cards({U1: rec}, focus({U1: rec}, lineage="L", last_apply=last), {}, kept=True)
        assert not card.changed and card.before_after is None


def test_changed_only_shows_what_the_last_apply_touched() -> None:
    records = {u: record([]) for u in (U1, U2, U3)}
    chosen = focus(
        records, lineage="L", last_apply=LastApply("L", "2026-12-01T08:31:00Z", [U2], [U3]), changed_only=True
    )
    assert chosen.products == [U2, U3] and chosen.changed == {U2}
    assert chosen.description == "the 2 products the last apply touched (finished 2026-12-01 08:31 UTC)"
    with pytest.raises(GalleryError, match="no record of the last apply"):
        focus(records, lineage="L", last_apply=None, changed_only=True)
    with pytest.raises(GalleryError, match="belongs to another state"):
        focus(records, lineage="L", last_apply=LastApply("M", "t", [U2]), changed_only=True)


def _plan(*actions: Action) -> Plan:
    return Plan(
        actions=list(actions),
        batches=[],
        state=StateToken("L", 1, "state.json"),
        cost=Cost(),
        max_batch_size=100,
    )


def test_since_plan_shows_touched_products_with_their_planned_change_until_applied() -> None:
    new_spec = spec(imageFormat="PNG")
    rerender = Action(
        kind=ActionKind.RERENDER,
        reason=Reason.SPEC_CHANGED,
        product=U1,
        name="Chair",
        spec=new_spec,
        spec_hash=fingerprint(new_spec),
        changes=[FieldChange("imageFormat", "WEBP", "PNG")],
    )
    render = Action(
        kind=ActionKind.RENDER,
        reason=Reason.NEW,
        product=U2,
        name="<b>New</b>",
        spec=spec(),
        spec_hash=fingerprint(spec()),
    )
    drift = Action(
        kind=ActionKind.RERENDER,
        reason=Reason.REMOTE_MISSING,
        product=U3,
        spec=spec(),
        spec_hash=fingerprint(spec()),
    )
    noop = Action(
        kind=ActionKind.NOOP, reason=Reason.UNCHANGED, product="44444444-4444-4444-8444-444444444444"
    )
    records = {U1: record([att("still", "s.webp", SHA_A)]), U3: record([att("still", "s.webp", SHA_A)])}
    chosen = focus(records, lineage="L", plan=_plan(rerender, render, drift, noop), plan_name="plan p.json")
    assert chosen.products == [U1, U2, U3] and chosen.drift == {U3}
    assert chosen.description == "the 3 products plan p.json touches"
    cards = {c.uuid: c for c in build_cards(records, chosen, {}, kept=True)}
    assert cards[U1].planned is rerender and cards[U1].before_after is None
    assert cards[U2].status == PLANNED and cards[U2].name == "<b>New</b>" and cards[U2].files == []
    assert cards[U3].drifted


def test_layout_pages_counts_and_search_rows() -> None:
    records = {
        f"{i:08d}-0000-4000-8000-000000000000": record(
            [att("still", "s.webp", SHA_A)],
            name=f"P{i:03d}",
            status=Status.FAILED if i == 3 else Status.RENDERED,
        )
        for i in range(7)
    }
    listing = {f"{u}/s.webp": FileFacts(10, SHA_A) for u in list(records)[1:]}
    cards = build_cards(records, ALL, listing, kept=True)
    site = layout(cards, ALL, title="T", source="s", built_at="b", kept=True, page_size=3)
    assert [(p.filename, p.first, p.last, p.count) for p in site.pages] == [
        ("page-1.html", "P000", "P002", 3),
        ("page-2.html", "P003", "P005", 3),
        ("page-3.html", "P006", "P006", 1),
    ]
    assert site.counts.by_status == {"rendered": 6, "failed": 1}
    assert (site.counts.missing, site.counts.drifted, site.counts.failed, site.counts.files) == (1, 1, 1, 7)
    assert search_index(site)[3] == [
        "00000003-0000-4000-8000-000000000000",
        "P003",
        2,
        "failed",
        "WEBP",
        "failed",
    ]
    with pytest.raises(GalleryError):
        layout(cards, ALL, title="T", source="s", built_at="b", kept=True, page_size=0)


def test_changed_cards_come_first_then_by_name() -> None:
    records = {U1: record([], name="b"), U2: record([], name="A"), U3: record([], name="c")}
    chosen = Focus(products=None, changed=frozenset({U3}), description="")
    assert [c.name for c in build_cards(records, chosen, {}, kept=False)] == ["c", "A", "b"]
