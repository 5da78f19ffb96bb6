"""The planner, table-driven: the world as data (manifests + recorded state) → the expected actions.

Every case is pure data: ``desired`` maps a product to its overrides of ``BASE``; ``state`` maps
a product to a recorded render (its spec's overrides, status, the files it has on the platform,
and the spec of a pending request). Nothing here touches disk, network or clock.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from reconciler.diagnostics import SourceLocation
from reconciler.errors import PlanFileError
from reconciler.observed import Observed, ObservedAttachment, ObservedProduct
from reconciler.plan import Action, ActionKind, Budget, FieldChange, Plan, Reason
from reconciler.planner import PlanOptions, PlanOptionsError, build_plan, recheck_budget, tighter
from reconciler.spec import Desired, ProductSpec, RenderSpec
from reconciler.state import Attachment, ProductRecord, RenderRequest, State, Status

BASE: dict[str, Any] = {
    "imageWidth": 1200,
    "imageHeight": 1200,
    "imageFormat": "PNG",
    "turntable": {"includeGif": True, "imageCount": 36, "frameRate": 12, "width": 720, "height": 720},
}
P1 = "11111111-1111-4111-8111-111111111111"
P2 = "22222222-2222-4222-8222-222222222222"
P3 = "33333333-3333-4333-8333-333333333333"
P4 = "44444444-4444-4444-8444-444444444444"


def merged(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    for k, v in (overrides or {}).items():
        if k == "turntable":
            out["turntable"].update(v)
        else:
            out[k] = v
    return out


def spec(overrides: dict[str, Any] | None = None) -> RenderSpec:
    return RenderSpec.model_validate(merged(overrides))


def want(uuid: str, overrides: dict[str, Any] | None = None, name: str | None = None) -> ProductSpec:
    s = spec(overrides)
    return ProductSpec(
        uuid=uuid, name=name, spec=s, spec_hash=s.fingerprint(), source=SourceLocation("m.yaml")
    )


def desired(products: dict[str, dict[str, Any]], names: dict[str, str] | None = None) -> Desired:
    return Desired({u: want(u, o, (names or {}).get(u)) for u, o in products.items()}, files=("m.yaml",))


def record(
    overrides: dict[str, Any] | None = None,
    status: str = "rendered",
    files: tuple[str, ...] | None = None,
    pending: dict[str, Any] | None = None,
    error: str | None = None,
    name: str | None = None,
) -> ProductRecord:
    """A recorded render. ``files`` defaults to what the spec produces; ``pending`` is the spec of a
    request not yet finished (requested / in flight / failed attempt) when it differs from ``overrides``."""
    s = spec(overrides)
    if files is None:
        files = ("still", "turntable", "gif") if s.turntable.includeGif else ("still", "turntable")
    request_hash = spec(pending).fingerprint() if pending is not None else s.fingerprint()
    return ProductRecord(
        name=name,
        spec=s.canonical(),
        spec_hash=s.fingerprint(),
        status=Status(status),
        request=RenderRequest(
            request_id="req-1", spec_hash=request_hash, requested_at="2026-01-01T00:00:00Z"
        ),
        attachments=[
            Attachment(
                kind=k,
                uuid=f"att-{k}",
                name=f"{k}.bin",
                sha256="0" * 64,
                size=1,  # type: ignore[arg-type]
                content_type="application/octet-stream",
            )
            for k in files
        ],
        error=error,
        updated_at="2026-01-01T00:00:00Z",
    )


def state(records: dict[str, ProductRecord], serial: int = 7) -> State:
    return State(lineage="lineage-1", serial=serial, products=records)


@dataclass
class Case:
    id: str
    desired: dict[str, dict[str, Any]]
    state: dict[str, ProductRecord]
    expect: dict[str, tuple[ActionKind, Reason]]
    replace: tuple[str, ...] = ()
    effect: dict[str, str] = field(default_factory=dict)
    changes: dict[str, list[tuple[str, Any, Any]]] = field(default_factory=dict)
    detail: dict[str, str | None] = field(default_factory=dict)


R, RR, RT, RS, O, N = (
    ActionKind.RENDER,
    ActionKind.RERENDER,
    ActionKind.RETRY,
    ActionKind.RESUME,
    ActionKind.ORPHAN,
    ActionKind.NOOP,
)
WEBP_NO_GIF = {"imageFormat": "WEBP", "turntable": {"includeGif": False}}

CASES = [
    Case("should_render_when_not_in_state", {P1: {}}, {}, {P1: (R, Reason.NEW)}, effect={P1: ""}),
    Case("should_do_nothing_when_state_matches", {P1: {}}, {P1: record()}, {P1: (N, Reason.UNCHANGED)}),
    Case(
        "should_do_nothing_when_spelt_out_default_equals_inherited",
        {P1: {"transparentBackground": False, "turntable": {"background": None}}},
        {P1: record()},
        {P1: (N, Reason.UNCHANGED)},
    ),
    Case(
        "should_rerender_and_warn_when_gif_removed",
        {P1: WEBP_NO_GIF},
        {P1: record()},
        {P1: (RR, Reason.SPEC_CHANGED)},
        effect={P1: "replaces still PNG→WEBP and the MP4 turntable; deletes the GIF"},
        changes={P1: [("imageFormat", "PNG", "WEBP"), ("turntable.includeGif", True, False)]},
    ),
    Case(
        "should_rerender_and_say_the_new_size_when_still_resized",
        {P1: {"imageWidth": 1600}},
        {P1: record()},
        {P1: (RR, Reason.SPEC_CHANGED)},
        effect={P1: "replaces still PNG 1200x1200→1600x1200, the MP4 turntable and the GIF"},
        changes={P1: [("imageWidth", 1200, 1600)]},
    ),
    Case(
        "should_rerender_and_replace_every_file_when_only_turntable_changed",
        {P1: {"turntable": {"frameRate": 24}}},
        {P1: record()},
        {P1: (RR, Reason.SPEC_CHANGED)},
        effect={P1: "replaces the PNG still, the MP4 turntable and the GIF"},
        changes={P1: [("turntable.frameRate", 12, 24)]},
    ),
    Case(
        "should_not_mention_a_gif_that_never_existed",
        {P1: {"imageHeight": 900}},
        {P1: record({"turntable": {"includeGif": False}}, files=("still", "turntable"))},
        {P1: (RR, Reason.SPEC_CHANGED)},
        effect={P1: "replaces still PNG 1200x1200→1200x900 and the MP4 turntable"},
        changes={P1: [("imageHeight", 1200, 900), ("turntable.includeGif", False, True)]},
    ),
    Case(
        "should_trust_the_recorded_files_over_the_old_spec_for_deletions",
        {P1: WEBP_NO_GIF},
        {P1: record(files=("still", "turntable"))},
        {P1: (RR, Reason.SPEC_CHANGED)},
        effect={P1: "replaces still PNG→WEBP and the MP4 turntable"},
    ),
    Case(
        "should_list_colour_changes_field_by_field",
        {
            P1: {
                "imageBackground": "ffffff",
                "turntable": {"background": "#000000", "transparentBackground": True},
            }
        },
        {P1: record()},
        {P1: (RR, Reason.SPEC_CHANGED)},
        changes={
            P1: [
                ("imageBackground", None, "#FFFFFF"),
                ("turntable.background", None, "#000000"),
                ("turntable.transparentBackground", False, True),
            ]
        },
    ),
    Case(
        "should_claim_no_replacement_when_nothing_was_ever_rendered",
        {P1: WEBP_NO_GIF},
        {P1: record(status="failed", files=())},
        {P1: (RR, Reason.SPEC_CHANGED)},
        effect={P1: ""},
    ),
    Case(
        "should_retry_when_last_render_failed",
        {P1: {}},
        {P1: record(status="failed", error="timed out")},
        {P1: (RT, Reason.FAILED_BEFORE)},
        detail={P1: "timed out"},
    ),
    Case(
        "should_retry_a_failed_rerender_at_the_spec_it_attempted",
        {P1: WEBP_NO_GIF},
        {P1: record(status="failed", pending=WEBP_NO_GIF, error="boom")},
        {P1: (RT, Reason.FAILED_BEFORE)},
        effect={P1: "replaces still PNG→WEBP and the MP4 turntable; deletes the GIF"},
    ),
    Case(
        "should_rerender_when_failed_attempt_is_no_longer_wanted",
        {P1: {"imageWidth": 800}},
        {P1: record(status="failed", pending=WEBP_NO_GIF)},
        {P1: (RR, Reason.SPEC_CHANGED)},
        changes={P1: [("imageWidth", 1200, 800)]},
    ),
    Case(
        "should_resume_and_not_pay_again_when_requested",
        {P1: {}},
        {P1: record(status="requested", files=())},
        {P1: (RS, Reason.IN_FLIGHT)},
        effect={P1: ""},
        detail={P1: "triggered earlier; results will be waited for, not paid again"},
    ),
    Case(
        "should_resume_when_in_flight",
        {P1: {}},
        {P1: record(status="in_flight", files=())},
        {P1: (RS, Reason.IN_FLIGHT)},
    ),
    Case(
        "should_resume_an_in_flight_rerender_at_its_new_spec",
        {P1: WEBP_NO_GIF},
        {P1: record(status="in_flight", pending=WEBP_NO_GIF)},
        {P1: (RS, Reason.IN_FLIGHT)},
    ),
    Case(
        "should_rerender_when_spec_changed_while_in_flight",
        {P1: {"imageWidth": 2000}},
        {P1: record(status="in_flight", pending=WEBP_NO_GIF)},
        {P1: (RR, Reason.SPEC_CHANGED)},
        detail={P1: "supersedes the render still in flight"},
    ),
    Case(
        "should_rerender_when_spec_changed_while_requested",
        {P1: {"imageWidth": 2000}},
        {P1: record(status="requested", files=())},
        {P1: (RR, Reason.SPEC_CHANGED)},
        detail={P1: "supersedes the render still in flight"},
    ),
    Case(
        "should_report_orphan_and_delete_nothing",
        {},
        {P1: record(name="Old chair")},
        {P1: (O, Reason.NOT_IN_MANIFESTS)},
        effect={P1: ""},
        detail={P1: "not in the manifests; its renders are kept"},
    ),
    Case(
        "should_force_rerender_of_an_unchanged_product_when_replaced",
        {P1: {}, P2: {}},
        {P1: record(), P2: record()},
        {P1: (RR, Reason.FORCED), P2: (N, Reason.UNCHANGED)},
        replace=(P1,),
        effect={P1: "replaces the PNG still, the MP4 turntable and the GIF"},
        changes={P1: []},
    ),
    Case(
        "should_accept_replace_in_any_case",
        {P1: {}},
        {P1: record()},
        {P1: (RR, Reason.FORCED)},
        replace=(P1.upper(),),
    ),
    Case(
        "should_force_rerender_instead_of_retry_when_replaced",
        {P1: {}},
        {P1: record(status="failed")},
        {P1: (RR, Reason.FORCED)},
        replace=(P1,),
    ),
    Case(
        "should_force_rerender_instead_of_resume_when_replaced",
        {P1: {}},
        {P1: record(status="in_flight")},
        {P1: (RR, Reason.FORCED)},
        replace=(P1,),
    ),
    Case(
        "should_render_a_new_product_even_when_replaced", {P1: {}}, {}, {P1: (R, Reason.NEW)}, replace=(P1,)
    ),
    Case(
        "should_prefer_spec_change_over_forced_when_both",
        {P1: {"imageWidth": 640}},
        {P1: record()},
        {P1: (RR, Reason.SPEC_CHANGED)},
        replace=(P1,),
    ),
    Case(
        "should_plan_every_kind_at_once",
        {P1: {}, P2: {"imageWidth": 640}, P3: {}, P4: {}},
        {
            P2: record(),
            P3: record(status="failed"),
            P4: record(status="requested"),
            "55555555-5555-4555-8555-555555555555": record(),
        },
        {
            P1: (R, Reason.NEW),
            P2: (RR, Reason.SPEC_CHANGED),
            P3: (RT, Reason.FAILED_BEFORE),
            P4: (RS, Reason.IN_FLIGHT),
            "55555555-5555-4555-8555-555555555555": (O, Reason.NOT_IN_MANIFESTS),
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case) -> None:
    plan = build_plan(
        desired(case.desired), state(case.state), PlanOptions(replace=case.replace), location="s.json"
    )
    got = {a.product: (a.kind, a.reason) for a in plan.actions}
    assert got == case.expect
    by_product = {a.product: a for a in plan.actions}
    for uuid, effect in case.effect.items():
        assert by_product[uuid].effect() == effect
    for uuid, changes in case.changes.items():
        assert [(c.field, c.old, c.new) for c in by_product[uuid].changes] == changes
    for uuid, detail in case.detail.items():
        assert by_product[uuid].detail == detail


# Named after the issue's own example: the warning must be exact, it is what a reviewer reads.
def test_plan_should_rerender_and_warn_when_gif_removed() -> None:
    plan = build_plan(desired({P1: WEBP_NO_GIF}), state({P1: record()}))
    [action] = plan.actions
    assert action.replaces == ["still PNG→WEBP", "the MP4 turntable"]
    assert action.deletes == ["the GIF"]
    assert action.effect() == "replaces still PNG→WEBP and the MP4 turntable; deletes the GIF"
    assert action.previous_hash == spec().fingerprint()
    assert action.spec_hash == spec(WEBP_NO_GIF).fingerprint()
    assert action.spec == spec(WEBP_NO_GIF).canonical()


def test_plan_should_refuse_replace_of_a_product_not_in_the_manifests() -> None:
    with pytest.raises(PlanOptionsError) as info:
        build_plan(desired({P1: {}}), state({P2: record()}), PlanOptions(replace=(P2, P3)))
    assert str(info.value) == f"--replace names products that are not in the manifests: {P2}, {P3}"


def test_plan_should_refuse_a_batch_size_below_one() -> None:
    with pytest.raises(PlanOptionsError, match="at least 1"):
        build_plan(desired({P1: {}}), state({}), PlanOptions(max_batch_size=0))


def _uuid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


def test_plan_should_batch_by_identical_spec_and_split_at_max_batch_size() -> None:
    small = {"imageWidth": 640, "imageHeight": 480}
    world = {_uuid(i): (small if i % 2 else {}) for i in range(14)}  # 7 at BASE, 7 at `small`
    plan = build_plan(desired(world), state({}), PlanOptions(max_batch_size=3))
    assert [len(b.products) for b in plan.batches] == [3, 3, 1, 3, 3, 1]
    assert [b.index for b in plan.batches] == list(range(6))
    for b in plan.batches:
        assert {world[p] == small for p in b.products} in ({True}, {False})  # one spec per batch
        assert b.products == sorted(b.products)
        assert b.spec == spec(world[b.products[0]]).canonical()
        assert b.spec_hash == spec(world[b.products[0]]).fingerprint()
    assert [b.spec_hash for b in plan.batches] == sorted(b.spec_hash for b in plan.batches)
    for a in plan.actions:
        assert a.product in plan.batches[a.batch].products  # type: ignore[index]


def test_plan_should_batch_only_what_it_pays_for() -> None:
    plan = build_plan(
        desired({P1: {}, P2: {}, P3: {}, P4: {}}),
        state({P2: record(), P3: record(status="in_flight"), P4: record(status="failed")}),
    )
    assert [b.products for b in plan.batches] == [[P1, P4]]
    assert {a.product: a.batch for a in plan.actions} == {P1: 0, P2: None, P3: None, P4: 0}


def test_plan_should_count_the_cost_of_what_it_triggers() -> None:
    world = {
        P1: {},  # 36 frames @ 12, GIF
        P2: {},
        P3: {"turntable": {"imageCount": 24, "frameRate": 8, "includeGif": False}},  # 24 frames @ 8
        P4: {},  # unchanged: free
    }
    plan = build_plan(desired(world), state({P4: record()}), PlanOptions(max_batch_size=1))
    k = plan.cost
    assert (k.requests, k.products, k.stills, k.turntable_frames, k.frames) == (3, 3, 3, 96, 99)
    assert k.video_seconds == 3.0 + 3.0 + 3.0
    assert k.gifs == 2
    assert plan.to_json()["cost"] == {
        "requests": 3,
        "products": 3,
        "stills": 3,
        "turntable_frames": 96,
        "video_seconds": 9.0,
        "gifs": 2,
        "frames": 99,
        "presets": [],
    }


def test_plan_should_cost_nothing_when_nothing_changes() -> None:
    plan = build_plan(desired({P1: {}}), state({P1: record(), P2: record()}))
    assert plan.cost.requests == plan.cost.frames == 0
    assert not plan.has_changes  # an orphan alone is not a change: nothing would be done
    counts = plan.counts()
    assert {k: counts[k] for k in ("render", "rerender", "retry", "resume", "orphan", "noop")} == {
        "render": 0,
        "rerender": 0,
        "retry": 0,
        "resume": 0,
        "orphan": 1,
        "noop": 1,
    }


def test_plan_should_be_ordered_by_uuid_whatever_the_input_order() -> None:
    uuids = [_uuid(i) for i in (5, 3, 9, 1, 7)]
    forward = build_plan(desired({u: {} for u in uuids}), state({_uuid(4): record(), _uuid(2): record()}))
    backward = build_plan(
        desired({u: {} for u in reversed(uuids)}), state({_uuid(2): record(), _uuid(4): record()})
    )
    assert [a.product for a in forward.actions] == sorted(uuids + [_uuid(2), _uuid(4)])
    assert json.dumps(forward.to_json()) == json.dumps(backward.to_json())


def test_plan_should_carry_the_state_token_it_was_made_from() -> None:
    plan = build_plan(desired({P1: {}}), state({}, serial=41), location="state/x.json")
    assert (plan.state.lineage, plan.state.serial, plan.state.location) == ("lineage-1", 41, "state/x.json")


def test_plan_should_not_change_its_inputs() -> None:
    world, recorded = desired({P1: WEBP_NO_GIF, P2: {}}), state({P1: record(), P3: record()})
    before = recorded.model_dump_json()
    build_plan(world, recorded, PlanOptions(replace=(P2,)))
    assert recorded.model_dump_json() == before
    assert sorted(world.products) == [P1, P2]


def test_plan_json_round_trip_is_lossless() -> None:
    plan = build_plan(
        desired({P1: WEBP_NO_GIF, P2: {}, P3: {}}, names={P1: "Chair | 1"}),
        state({P1: record(), P3: record(status="failed", error="x"), P4: record()}),
        location="s.json",
    )
    data = plan.to_json()
    again = Plan.from_json(json.loads(json.dumps(data)), "plan.json")
    assert again.to_json() == data
    assert again.actions[0].kind is ActionKind.RERENDER
    assert again.actions[0].changes[0] == FieldChange("imageFormat", "PNG", "WEBP")


def test_plan_json_documents_each_action() -> None:
    plan = build_plan(desired({P1: WEBP_NO_GIF}), state({P1: record()}))
    [action] = plan.to_json()["actions"]
    assert action["kind"] == "rerender" and action["reason"] == "spec_changed"
    assert action["effect"] == "replaces still PNG→WEBP and the MP4 turntable; deletes the GIF"
    assert action["changes"][1] == {"field": "turntable.includeGif", "old": True, "new": False}
    assert action["batch"] == 0 and action["source"] == "m.yaml"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "something-else"}, "plan.json is not a saved reconciler plan"),
        ({"kind": "reconciler-plan", "format_version": 99}, "plan.json has plan format_version 99"),
        ({"kind": "reconciler-plan", "format_version": 1, "state": {}}, "plan.json is damaged"),
    ],
)
def test_plan_from_json_refuses_what_it_cannot_read(data: dict[str, Any], message: str) -> None:
    from reconciler.errors import PlanFileError

    with pytest.raises(PlanFileError, match=message):
        Plan.from_json(data, "plan.json")


def test_action_effect_joins_in_plain_english() -> None:
    a = Action(ActionKind.RERENDER, Reason.FORCED, P1, replaces=["a"], deletes=["b", "c", "d"])
    assert a.effect() == "replaces a; deletes b, c and d"


# -- the large-change breaker: it guards the renders users would lose (issue 13) -------------------


def _catalogue(n: int) -> list[str]:
    return [_uuid(i) for i in range(n)]


NEW_SPEC = {"imageWidth": 640}


@dataclass
class BreakerCase:
    id: str
    record: ProductRecord | None
    """What the state holds for each of the 11 products that change (None: nothing)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Their manifest overrides (the other 29 products are unchanged)."""
    replace: bool = False
    kind: ActionKind = ActionKind.RETRY
    trips: bool = False


BREAKER_CASES = [
    BreakerCase(
        "should_not_trip_on_retries_of_products_that_never_rendered",
        record(status="failed", files=(), error="platform reported renders.failed"),
    ),
    BreakerCase(
        "should_not_trip_on_retries_of_failed_rerenders_already_approved",
        record(status="failed", pending=NEW_SPEC, error="no results"),
        overrides=NEW_SPEC,
    ),
    BreakerCase("should_not_trip_on_first_renders", None, kind=ActionKind.RENDER),
    BreakerCase("should_not_trip_on_resumes", record(status="in_flight", files=()), kind=ActionKind.RESUME),
    BreakerCase(
        "should_not_trip_on_a_new_spec_for_products_that_never_rendered",
        record(status="failed", files=()),
        overrides=NEW_SPEC,
        kind=ActionKind.RERENDER,
    ),
    BreakerCase(
        "should_not_trip_on_a_new_spec_superseding_a_trigger_that_never_finished",
        record(status="requested", files=()),
        overrides=NEW_SPEC,
        kind=ActionKind.RERENDER,
    ),
    BreakerCase(
        "should_trip_on_spec_changes_that_replace_existing_renders",
        record(),
        overrides=NEW_SPEC,
        kind=ActionKind.RERENDER,
        trips=True,
    ),
    BreakerCase(
        "should_trip_on_a_new_spec_over_the_renders_a_failed_attempt_left",
        record(status="failed", error="x"),
        overrides=NEW_SPEC,
        kind=ActionKind.RERENDER,
        trips=True,
    ),
    BreakerCase(
        "should_trip_on_forced_rerenders_of_existing_renders",
        record(),
        replace=True,
        kind=ActionKind.RERENDER,
        trips=True,
    ),
    BreakerCase(
        "should_trip_on_drift_rerenders_over_the_files_left",
        record(files=("still",)),
        kind=ActionKind.RERENDER,
        trips=True,
    ),
]


@pytest.mark.parametrize("case", BREAKER_CASES, ids=[c.id for c in BREAKER_CASES])
def test_breaker(case: BreakerCase) -> None:
    from reconciler.planner import Limits

    products = _catalogue(40)
    changing = products[:11]
    world = {u: (case.overrides if u in changing else {}) for u in products}
    records = {u: record() for u in products[11:]}
    if case.record is not None:
        records.update(dict.fromkeys(changing, case.record))
    plan = build_plan(
        desired(world),
        state(records),
        PlanOptions(
            replace=changing if case.replace else (), limits=Limits(rerender_share=0.25, rerender_floor=0)
        ),
    )
    assert {a.kind for a in plan.actions if a.product in changing} == {case.kind}
    if case.trips:
        assert plan.limits_tripped == [
            "re-renders 11 of 40 products, replacing their renders, more than the limit "
            "of 10 (25% of the catalogue, at least 0)"
        ]
        assert plan.refused
    else:
        assert plan.limits_tripped == [] and not plan.refused


# -- --target / --exclude ---------------------------------------------------------------------------


def test_plan_should_refuse_a_target_that_matches_nothing_and_suggest_close_names() -> None:
    from reconciler.planner import SelectionError

    world = desired({P1: {}, P2: {}}, names={P1: "Court Classic", P2: "Trail Runner"})
    with pytest.raises(SelectionError) as info:
        build_plan(world, state({}), PlanOptions(targets=("Cort*", "nosuch*", P1)))
    assert info.value.message == (
        "the selection --target 'Cort*', --target 'nosuch*': patterns match no product in "
        "the manifests or the state"
    )
    assert info.value.hint is not None and info.value.hint.startswith(
        "for 'Cort*' did you mean 'Court Classic'?; "
    )


def test_plan_should_refuse_an_exclude_that_matches_nothing() -> None:
    from reconciler.planner import SelectionError

    with pytest.raises(SelectionError, match="--exclude 'Chiar': pattern matches no product"):
        build_plan(desired({P1: {}}, names={P1: "Chair"}), state({}), PlanOptions(excludes=("Chiar",)))


def test_plan_should_accept_a_target_that_matches_only_an_unchanged_or_recorded_product() -> None:
    plan = build_plan(
        desired({P1: {}}), state({P1: record(), P2: record(name="Old")}), PlanOptions(targets=(P1, "Old"))
    )
    assert {a.product: a.kind for a in plan.actions} == {P1: ActionKind.NOOP, P2: ActionKind.ORPHAN}


# -- cost by preset, and budgets -----------------------------------------------------------------


def desired_with_presets(products: dict[str, tuple[str | None, dict[str, Any]]]) -> Desired:
    """``products`` maps a uuid to (its preset, its overrides of BASE)."""
    out = {}
    for uuid, (preset, overrides) in products.items():
        s = spec(overrides)
        out[uuid] = ProductSpec(
            uuid=uuid,
            name=None,
            spec=s,
            spec_hash=s.fingerprint(),
            source=SourceLocation("m.yaml"),
            preset=preset,
        )
    return Desired(out, files=("m.yaml",), presets=tuple(sorted({p for p, _ in products.values() if p})))


def test_plan_should_count_products_frames_and_video_by_preset() -> None:
    world = desired_with_presets(
        {
            P1: ("hero", {}),  # 37 frames, 3 s
            P2: ("hero", {"turntable": {"imageCount": 24, "frameRate": 8}}),  # 25 frames, 3 s
            P3: (None, {}),
            P4: ("basic", {}),  # unchanged: not counted
        }
    )
    plan = build_plan(world, state({P4: record()}))
    assert [(c.preset, c.products, c.frames, c.video_seconds) for c in plan.cost.presets] == [
        ("hero", 2, 62, 6.0),
        (None, 1, 37, 3.0),
    ]
    assert sum(c.frames for c in plan.cost.presets) == plan.cost.frames
    assert plan.to_json()["cost"]["presets"] == [
        {"preset": "hero", "products": 2, "frames": 62, "video_seconds": 6.0},
        {"preset": None, "products": 1, "frames": 37, "video_seconds": 3.0},
    ]
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())), "plan.json")
    assert again.cost == plan.cost


def test_plan_should_not_split_the_cost_when_no_preset_is_defined() -> None:
    plan = build_plan(desired({P1: {}}), state({}))
    assert plan.cost.presets == ()


BUDGET_WORLD = {P1: {}, P2: {}, P3: {"imageWidth": 1000}}  # 2 requests, 3 x 37 = 111 frames, 9 s of video


@pytest.mark.parametrize(
    ("budget", "over"),
    [
        (Budget(), []),
        (Budget(max_frames=111, max_requests=2, max_video_seconds=9), []),  # equal is within budget
        (Budget(max_frames=110), ["111 frames, more than the budget of 110 (--max-frames)"]),
        (
            Budget(max_requests=1, sources={"max_requests": "budget.max_requests in reconciler.yaml:3"}),
            ["2 render requests, more than the budget of 1 (budget.max_requests in reconciler.yaml:3)"],
        ),
        (
            Budget(max_video_seconds=8.5),
            ["9 s of video, more than the budget of 8.5 s (--max-video-seconds)"],
        ),
        (
            Budget(max_frames=0, max_requests=0, max_video_seconds=0),
            [
                "111 frames, more than the budget of 0 (--max-frames)",
                "2 render requests, more than the budget of 0 (--max-requests)",
                "9 s of video, more than the budget of 0 s (--max-video-seconds)",
            ],
        ),
    ],
)
def test_plan_should_be_over_budget_when_it_triggers_more_than_a_limit(
    budget: Budget, over: list[str]
) -> None:
    plan = build_plan(desired(BUDGET_WORLD), state({}), PlanOptions(budget=budget))
    assert plan.over_budget == over
    assert plan.budget_refused is bool(over)
    assert (
        build_plan(
            desired(BUDGET_WORLD), state({}), PlanOptions(budget=budget, allow_over_budget=True)
        ).budget_refused
        is False
    )


def test_plan_should_count_only_what_it_pays_for_against_the_budget() -> None:
    # Resumes, unchanged and blocked products cost nothing; retries pay again.
    world = desired({P1: {}, P2: {}, P3: {}, P4: {}})
    records = {P1: record(), P2: record(status="in_flight"), P3: record(status="failed")}
    plan = build_plan(
        world, state(records), PlanOptions(budget=Budget(max_frames=74))
    )  # P3 retried, P4 new: 2 x 37
    assert plan.over_budget == []
    assert build_plan(world, state(records), PlanOptions(budget=Budget(max_frames=73))).over_budget != []


def test_plan_should_record_its_budget_in_the_saved_plan() -> None:
    plan = build_plan(
        desired(BUDGET_WORLD),
        state({}),
        PlanOptions(
            allow_over_budget=True, budget=Budget(max_frames=100, sources={"max_frames": "--max-frames"})
        ),
    )
    data = json.loads(json.dumps(plan.to_json()))
    assert data["budget"] == {
        "max_frames": 100,
        "max_requests": None,
        "max_video_seconds": None,
        "sources": {"max_frames": "--max-frames"},
    }
    assert data["over_budget"] == ["111 frames, more than the budget of 100 (--max-frames)"]
    assert data["allow_over_budget"] is True
    again = Plan.from_json(data, "plan.json")
    assert (again.budget, again.over_budget, again.allow_over_budget) == (plan.budget, plan.over_budget, True)
    del data["budget"], data["over_budget"], data["allow_over_budget"]  # a plan saved before budgets existed
    older = Plan.from_json(data, "plan.json")
    assert (older.budget, older.over_budget, older.allow_over_budget) == (Budget(), [], False)


@pytest.mark.parametrize(
    "budget",
    [
        {"max_frames": -1},
        {"max_frames": True},
        {"max_requests": 1.5},
        {"max_video_seconds": "9"},
        [],
        {"sources": []},
    ],
)
def test_a_saved_plan_with_a_damaged_budget_is_refused(budget: Any) -> None:
    data = build_plan(desired(BUDGET_WORLD), state({})).to_json()
    data["budget"] = budget
    with pytest.raises(PlanFileError, match=r"plan\.json is damaged"):
        Plan.from_json(json.loads(json.dumps(data)), "plan.json")


def test_a_saved_plan_is_checked_again_from_its_batches_against_the_tighter_budget() -> None:
    plan = build_plan(
        desired(BUDGET_WORLD), state({}), PlanOptions(budget=Budget(max_frames=500, max_requests=5))
    )
    saved = Plan.from_json(json.loads(json.dumps(plan.to_json())), "plan.json")
    recheck_budget(saved, Budget())  # nothing in force now: the recorded budget still holds
    assert saved.over_budget == [] and saved.budget.max_frames == 500
    recheck_budget(saved, Budget(max_frames=100, sources={"max_frames": "--max-frames"}))
    assert saved.over_budget == ["111 frames, more than the budget of 100 (--max-frames)"]
    assert saved.budget.max_requests == 5 and saved.budget_refused

    # A hand-edited plan that claims to be within budget and cheap is counted again from its batches.
    tampered = plan.to_json()
    tampered["budget"]["max_frames"] = 50
    tampered["over_budget"] = []
    tampered["cost"].update(frames=1, stills=1, turntable_frames=0)
    forged = Plan.from_json(json.loads(json.dumps(tampered)), "plan.json")
    recheck_budget(forged, Budget())
    assert forged.over_budget == ["111 frames, more than the budget of 50 (--max-frames)"]
    recheck_budget(forged, Budget(), allow=True)
    assert not forged.budget_refused


def test_the_tighter_budget_keeps_each_lower_limit_and_where_it_was_set() -> None:
    a = Budget(max_frames=10, max_requests=5, sources={"max_frames": "a", "max_requests": "a"})
    b = Budget(
        max_frames=20,
        max_requests=2,
        max_video_seconds=1.5,
        sources={"max_requests": "b", "max_video_seconds": "b"},
    )
    t = tighter(a, b)
    assert (t.max_frames, t.max_requests, t.max_video_seconds) == (10, 2, 1.5)
    assert t.sources == {"max_frames": "a", "max_requests": "b", "max_video_seconds": "b"}


# -- drift, protect and prune: the world as data (state + what the platform holds) → actions ------

B, F, D = ActionKind.BLOCKED, ActionKind.FORGET, ActionKind.DELETE


def _ours(*kinds: str, sha: str = "0" * 64) -> tuple[ObservedAttachment, ...]:
    """The platform's view of the files ``record()`` recorded (same uuids), with the bytes' hash."""
    types = {"still": "RENDER", "turntable": "TURNTABLE", "gif": "TURNTABLE"}
    return tuple(
        ObservedAttachment(f"att-{k}", types[k], f"{k}.bin", "2026-01-01T00:00:00", sha256=sha) for k in kinds
    )


def _protected(rec: ProductRecord) -> ProductRecord:
    return rec.model_copy(update={"protect": True})


ALL_FILES = ("still", "turntable", "gif")


def _plan(wanted: Desired, have: State, *, observed: Observed | None = None, **options: Any) -> Plan:
    """``build_plan`` with plan-shaping options by name (the one place that knows how they are passed)."""
    return build_plan(wanted, have, PlanOptions(**options), observed=observed)


@dataclass
class WorldCase:
    id: str
    want: dict[str, dict[str, Any]]
    have: dict[str, ProductRecord]
    expect: dict[str, tuple[ActionKind, Reason]]
    platform: dict[str, ObservedProduct] | None = None
    """None: planned offline (no refresh)."""
    verified: bool = False
    protect: tuple[str, ...] = ()
    """Products the manifests mark ``protect: true``."""
    replace: tuple[str, ...] = ()
    prune: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
    deletes: dict[str, list[str]] = field(default_factory=dict)


WORLD_CASES = [
    # drift
    WorldCase(
        "should_rerender_when_a_recorded_file_is_gone_from_the_platform",
        {P1: {}},
        {P1: record()},
        {P1: (RR, Reason.REMOTE_MISSING)},
        platform={P1: ObservedProduct(_ours("still", "turntable"))},
        detail={P1: "gone from the platform: gif gif.bin"},
    ),
    WorldCase(
        "should_rerender_when_the_platform_no_longer_knows_the_product",
        {P1: {}},
        {P1: record()},
        {P1: (RR, Reason.REMOTE_MISSING)},
        platform={P1: ObservedProduct(product_missing=True)},
        detail={P1: "the platform no longer knows this product (PRODUCT_NOT_FOUND)"},
    ),
    WorldCase(
        "should_rerender_offline_when_the_state_records_fewer_files_than_the_spec_makes",
        {P1: {}},
        {P1: record(files=("still", "turntable"))},
        {P1: (RR, Reason.REMOTE_MISSING)},
        detail={P1: "the state records no gif"},
    ),
    WorldCase(
        "should_rerender_when_verified_bytes_no_longer_match_the_record",
        {P1: {}},
        {P1: record()},
        {P1: (RR, Reason.CONTENT_CHANGED)},
        platform={P1: ObservedProduct(_ours("still", sha="f" * 64) + _ours("turntable", "gif"))},
        verified=True,
        detail={P1: "bytes no longer match the recorded sha256: still.bin"},
    ),
    WorldCase(
        "should_do_nothing_when_verified_bytes_match_the_record",
        {P1: {}},
        {P1: record()},
        {P1: (N, Reason.UNCHANGED)},
        platform={P1: ObservedProduct(_ours(*ALL_FILES))},
        verified=True,
    ),
    WorldCase(
        "should_not_compare_bytes_that_were_not_verified",
        {P1: {}},
        {P1: record()},
        {P1: (N, Reason.UNCHANGED)},
        platform={P1: ObservedProduct(_ours(*ALL_FILES, sha="f" * 64))},
    ),
    WorldCase(
        "should_not_call_it_drift_when_the_refresh_did_not_look_at_the_product",
        {P1: {}, P2: {}},
        {P1: record(), P2: record()},
        {P1: (N, Reason.UNCHANGED), P2: (RR, Reason.REMOTE_MISSING)},
        platform={P2: ObservedProduct(_ours("still"))},
    ),
    # protect
    WorldCase(
        "should_block_a_spec_change_of_a_protected_product",
        {P1: {"imageWidth": 640}},
        {P1: record()},
        {P1: (B, Reason.SPEC_CHANGED)},
        protect=(P1,),
        detail={P1: "protected: would rerender (spec_changed); remove 'protect: true' to allow it"},
    ),
    WorldCase(
        "should_block_a_forced_rerender_of_a_protected_product",
        {P1: {}},
        {P1: record()},
        {P1: (B, Reason.FORCED)},
        protect=(P1,),
        replace=(P1,),
    ),
    WorldCase(
        "should_block_a_drift_rerender_of_a_protected_product",
        {P1: {}},
        {P1: record()},
        {P1: (B, Reason.REMOTE_MISSING)},
        platform={P1: ObservedProduct(_ours("still", "turntable"))},
        protect=(P1,),
    ),
    WorldCase(
        "should_render_a_protected_product_that_has_no_renders_yet",
        {P1: {}},
        {},
        {P1: (R, Reason.NEW)},
        protect=(P1,),
    ),
    WorldCase(
        "should_retry_a_protected_product_whose_first_render_failed",
        {P1: {}},
        {P1: record(status="failed", files=(), error="boom")},
        {P1: (RT, Reason.FAILED_BEFORE)},
        protect=(P1,),
    ),
    WorldCase(
        "should_leave_an_unchanged_protected_product_alone",
        {P1: {}},
        {P1: _protected(record())},
        {P1: (N, Reason.UNCHANGED)},
        protect=(P1,),
    ),
    WorldCase(
        "should_let_the_manifest_unprotect_a_product_the_state_records_as_protected",
        {P1: {"imageWidth": 640}},
        {P1: _protected(record())},
        {P1: (RR, Reason.SPEC_CHANGED)},
    ),
    # prune
    WorldCase(
        "should_keep_an_orphan_in_the_state_without_prune",
        {P1: {}},
        {P1: record(), P2: record()},
        {P1: (N, Reason.UNCHANGED), P2: (O, Reason.NOT_IN_MANIFESTS)},
        detail={P2: "not in the manifests; its renders are kept"},
    ),
    WorldCase(
        "should_forget_an_orphan_and_delete_nothing_with_prune_forget",
        {P1: {}},
        {P1: record(), P2: record()},
        {P1: (N, Reason.UNCHANGED), P2: (F, Reason.NOT_IN_MANIFESTS)},
        prune="forget",
        detail={P2: "not in the manifests; dropped from the state, its renders stay on the platform"},
        deletes={P2: []},
    ),
    WorldCase(
        "should_delete_only_the_orphans_recorded_renders_offline",
        {P1: {}},
        {P1: record(), P2: record({"turntable": {"includeGif": False}})},
        {P1: (N, Reason.UNCHANGED), P2: (D, Reason.NOT_IN_MANIFESTS)},
        prune="delete",
        deletes={P2: ["the PNG still", "the MP4 turntable"]},
    ),
    WorldCase(
        "should_delete_only_what_the_platform_still_holds_of_an_orphan",
        {},
        {P2: record()},
        {P2: (D, Reason.NOT_IN_MANIFESTS)},
        platform={P2: ObservedProduct(_ours("still"))},
        prune="delete",
        deletes={P2: ["the PNG still"]},
    ),
    WorldCase(
        "should_never_prune_a_protected_orphan",
        {},
        {P1: _protected(record()), P2: _protected(record())},
        {P1: (B, Reason.NOT_IN_MANIFESTS), P2: (B, Reason.NOT_IN_MANIFESTS)},
        prune="delete",
        detail={P1: "protected: would delete (not_in_manifests); remove 'protect: true' to allow it"},
    ),
    WorldCase(
        "should_never_forget_a_protected_orphan",
        {},
        {P1: _protected(record())},
        {P1: (B, Reason.NOT_IN_MANIFESTS)},
        prune="forget",
    ),
]


@pytest.mark.parametrize("case", WORLD_CASES, ids=[c.id for c in WORLD_CASES])
def test_drift_protect_prune(case: WorldCase) -> None:
    wanted = desired(case.want)
    for uuid in case.protect:
        wanted.products[uuid] = dataclasses.replace(wanted.products[uuid], protect=True)
    observed = None if case.platform is None else Observed(case.platform, verified=case.verified)
    plan = _plan(wanted, state(case.have), observed=observed, replace=case.replace, prune=case.prune)
    by_product = {a.product: a for a in plan.actions}
    assert {u: (a.kind, a.reason) for u, a in by_product.items()} == case.expect
    for uuid, detail in case.detail.items():
        assert by_product[uuid].detail == detail
    for uuid, deletes in case.deletes.items():
        assert by_product[uuid].deletes == deletes
    blocked = {a.product for a in plan.actions if a.kind is B}
    assert not any(blocked & set(b.products) for b in plan.batches)  # a blocked product is never sent


# -- the breaker on deletions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orphans", "prune", "protected", "allow_large", "tripped", "refused"),
    [
        (10, "delete", 0, False, False, False),  # at the limit
        (11, "delete", 0, False, True, True),  # one over
        (11, "delete", 0, True, True, False),  # over, and allowed: listed, not refused
        (11, "delete", 1, False, False, False),  # a protected orphan is blocked, not counted
        (30, "forget", 0, False, False, False),  # forgetting deletes nothing on the platform
        (30, None, 0, False, False, False),  # orphans are only reported
    ],
    ids=[
        "should_not_trip_at_the_delete_limit",
        "should_trip_one_over_the_delete_limit",
        "should_list_but_not_refuse_with_allow_large",
        "should_not_count_protected_orphans",
        "should_not_trip_on_forgetting",
        "should_not_trip_on_orphans_without_prune",
    ],
)
def test_breaker_on_deletions(
    orphans: int, prune: str | None, protected: int, allow_large: bool, tripped: bool, refused: bool
) -> None:
    from reconciler.planner import Limits

    gone = _catalogue(orphans)
    records = {u: (_protected(record()) if i < protected else record()) for i, u in enumerate(gone)}
    plan = _plan(
        desired({P1: {}}),
        state({**records, P1: record()}),
        prune=prune,
        limits=Limits(max_deletes=10),
        allow_large=allow_large,
    )
    deleting = orphans - protected
    assert plan.limits_tripped == (
        [f"deletes renders of {deleting} products, more than the limit of 10"] if tripped else []
    )
    assert plan.refused is refused
