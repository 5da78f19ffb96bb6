"""The planner with a refresh: drift, and never touching what the reconciler did not make.

Pure data in, actions out: the platform is an ``Observed`` written by hand. ``ours(...)`` are
the files the state records for a product (uuids ``att-still`` ...); anything else on the
product is someone else's, whatever its entityType.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from reconciler.observed import Observed, ObservedAttachment, ObservedProduct, foreign_renders
from reconciler.plan import ActionKind, Reason
from reconciler.planner import PlanOptions, build_plan
from reconciler.state import Status
from tests.test_planner import P1, P2, WEBP_NO_GIF, desired, record, state

B, RR, R, N, D = (
    ActionKind.BLOCKED,
    ActionKind.RERENDER,
    ActionKind.RENDER,
    ActionKind.NOOP,
    ActionKind.DELETE,
)
QR = ObservedAttachment("qr-1", "PRODUCT", f"qrCode_{P1}.png", "2025-01-01T00:00:00")
PDF = ObservedAttachment("pdf-1", "PRODUCT", "spec-sheet.pdf", "2025-01-01T00:00:00")
HAND = ObservedAttachment("hand-1", "RENDER", "hand-made.png", "2026-02-01T00:00:00")
WEB_STILL = ObservedAttachment("web-1", "RENDER", "web.png", "2026-02-01T00:00:00")
WEB_MP4 = ObservedAttachment("web-2", "TURNTABLE", "web.mp4", "2026-02-01T00:00:00")


def ours(*kinds: str) -> list[ObservedAttachment]:
    types = {"still": "RENDER", "turntable": "TURNTABLE", "gif": "TURNTABLE"}
    return [ObservedAttachment(f"att-{k}", types[k], f"{k}.bin", "2026-01-01T00:00:00") for k in kinds]


ALL = ("still", "turntable", "gif")


def seen(*files: ObservedAttachment) -> ObservedProduct:
    return ObservedProduct(tuple(files))


@dataclass
class Case:
    id: str
    want: dict[str, dict]
    have: dict
    platform: dict[str, ObservedProduct]
    expect: dict[str, tuple[ActionKind, Reason]]
    replace: tuple[str, ...] = ()
    prune: str | None = None
    effect: dict[str, str] = field(default_factory=dict)
    detail: dict[str, str] = field(default_factory=dict)


CASES = [
    Case(
        "should_do_nothing_when_the_platform_holds_exactly_our_files",
        {P1: {}},
        {P1: record()},
        {P1: seen(*ours(*ALL))},
        {P1: (N, Reason.UNCHANGED)},
    ),
    Case(
        "should_ignore_pdfs_and_qr_codes_beside_our_renders",
        {P1: {}},
        {P1: record()},
        {P1: seen(*ours(*ALL), QR, PDF)},
        {P1: (N, Reason.UNCHANGED)},
    ),
    Case(
        "should_name_a_hand_made_render_and_leave_it_alone",
        {P1: {}},
        {P1: record()},
        {P1: seen(*ours(*ALL), HAND)},
        {P1: (N, Reason.FOREIGN_FILES)},
        effect={P1: "leaves alone hand-made.png (RENDER)"},
        detail={
            P1: "its renders are intact; 1 file on its Renders tab the reconciler did not make: "
            "hand-made.png (RENDER); left alone, not adopted"
        },
    ),
    Case(
        "should_block_a_spec_change_over_a_hand_made_render",
        {P1: WEBP_NO_GIF},
        {P1: record()},
        {P1: seen(*ours(*ALL), HAND)},
        {P1: (B, Reason.SPEC_CHANGED)},
        detail={
            P1: "would rerender (spec_changed), but its Renders tab holds 1 file the reconciler did not make, "
            "which a trigger may replace: hand-made.png (RENDER); remove them on the platform, or render "
            f"over them with --replace {P1}"
        },
    ),
    Case(
        "should_rerender_over_a_hand_made_render_when_replaced_and_say_so",
        {P1: WEBP_NO_GIF},
        {P1: record()},
        {P1: seen(*ours(*ALL), HAND)},
        {P1: (RR, Reason.SPEC_CHANGED)},
        replace=(P1,),
        effect={
            P1: "replaces still PNG→WEBP, the MP4 turntable and 1 file the reconciler did not make "
            "(hand-made.png (RENDER)), if the trigger removes them (it does for renders; for hand uploads "
            "the platform does not say); deletes the GIF"
        },
    ),
    Case(
        "should_call_it_replaced_when_our_files_are_gone_and_others_came",
        {P1: {}},
        {P1: record()},
        {P1: seen(WEB_STILL, WEB_MP4, QR)},
        {P1: (B, Reason.REMOTE_REPLACED)},
    ),
    Case(
        "should_rerender_a_product_re_rendered_elsewhere_only_when_replaced",
        {P1: {}},
        {P1: record()},
        {P1: seen(WEB_STILL, WEB_MP4)},
        {P1: (RR, Reason.REMOTE_REPLACED)},
        replace=(P1,),
    ),
    Case(
        "should_rerender_lost_files_when_nothing_foreign_is_there",
        {P1: {}},
        {P1: record()},
        {P1: seen(*ours("still", "turntable"), QR)},
        {P1: (RR, Reason.REMOTE_MISSING)},
        effect={P1: "replaces the PNG still and the MP4 turntable"},
    ),
    Case(
        "should_block_a_first_render_over_renders_made_elsewhere",
        {P1: {}},
        {},
        {P1: seen(WEB_STILL, WEB_MP4, QR)},
        {P1: (B, Reason.NEW)},
        detail={
            P1: "would render (new), but its Renders tab holds 2 files the reconciler did not make, which a "
            f"trigger may replace: web.png (RENDER), web.mp4 (TURNTABLE); 'reconciler import {P1}' adopts "
            f"renders made elsewhere, or render over them with --replace {P1}"
        },
    ),
    Case(
        "should_render_a_new_product_holding_only_uploads",
        {P1: {}},
        {},
        {P1: seen(QR, PDF)},
        {P1: (R, Reason.NEW)},
    ),
    Case(
        "should_delete_only_our_files_and_list_the_rest_as_left_alone",
        {P2: {}},
        {P1: record()},
        {P1: seen(*ours(*ALL), QR, PDF, HAND)},
        {P1: (D, Reason.NOT_IN_MANIFESTS)},
        prune="delete",
        effect={
            P1: "deletes the PNG still, the MP4 turntable and the GIF; leaves alone qrCode_"
            f"{P1}.png (PRODUCT), spec-sheet.pdf (PRODUCT) and hand-made.png (RENDER)"
        },
    ),
    Case(
        "should_say_offline_that_everything_else_is_left_alone",
        {P2: {}},
        {P1: record()},
        {},
        {P1: (D, Reason.NOT_IN_MANIFESTS)},
        prune="delete",
        effect={
            P1: "deletes the PNG still, the MP4 turntable and the GIF; leaves alone every other file on the "
            "product (uploads, QR codes, renders the reconciler did not make)"
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case) -> None:
    observed = Observed(products=case.platform)
    plan = build_plan(
        desired(case.want),
        state(case.have),
        PlanOptions(replace=case.replace, prune=case.prune),
        observed=observed,
    )
    by_product = {a.product: a for a in plan.actions}
    assert {u: (by_product[u].kind, by_product[u].reason) for u in case.expect} == case.expect
    for uuid, effect in case.effect.items():
        assert by_product[uuid].effect() == effect
    for uuid, detail in case.detail.items():
        assert by_product[uuid].detail == detail
    assert all(a.batch is None for a in plan.actions if a.kind is B)


def test_a_blocked_product_is_in_no_batch_and_costs_nothing() -> None:
    plan = build_plan(
        desired({P1: WEBP_NO_GIF, P2: WEBP_NO_GIF}),
        state({P1: record(), P2: record()}),
        observed=Observed(products={P1: seen(*ours(*ALL), HAND), P2: seen(*ours(*ALL))}),
    )
    assert [b.products for b in plan.batches] == [[P2]]
    assert plan.cost.products == 1


def test_files_of_our_own_unfinished_trigger_are_ours() -> None:
    failed = record(status="failed", files=())  # requested at 2026-01-01T00:00:00Z
    early = ObservedAttachment("x1", "RENDER", "x.png", "2025-12-31T23:00:00")
    late = ObservedAttachment("x2", "RENDER", "y.png", "2026-01-01T00:00:05")
    assert foreign_renders([early, late], failed) == [early]
    rendered = record()
    assert rendered.status is Status.RENDERED
    assert foreign_renders([early, late], rendered) == [early, late]  # every file of ours is recorded


def test_the_text_and_markdown_plans_name_what_is_left_alone() -> None:
    from reconciler.views.plan import render_markdown, render_text

    plan = build_plan(
        desired({P1: {}, P2: WEBP_NO_GIF}),
        state({P1: record(), P2: record()}),
        observed=Observed(products={P1: seen(*ours(*ALL), HAND), P2: seen(*ours(*ALL), HAND)}),
    )
    text = render_text(plan)
    assert f"    noop     {P1}\n      foreign files: its renders are intact" in text
    assert "      leaves alone hand-made.png (RENDER)" in text
    assert f"# blocked  {P2}" in text
    assert text.rstrip().endswith(
        "No changes. 1 products up to date, 1 blocked, 1 holding files the reconciler "
        "did not make (left alone)."
    )
    markdown = render_markdown(plan)
    assert "Files the reconciler did not make (left alone) (1)" in markdown
    assert "leaves alone hand-made.png (RENDER)" in markdown
