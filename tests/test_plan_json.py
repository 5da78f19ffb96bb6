"""A plan's actions as JSON: the fast path for plain actions gives exactly the general one's dict,
key order included (the JSON plan and the saved plan file are made from it); an unchanged product
kept compact (``plan.Actions``) is the action, and the JSON line, it always was."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from reconciler.diagnostics import SourceLocation
from reconciler.plan import (
    Action,
    ActionKind,
    Actions,
    Cost,
    FieldChange,
    Plan,
    Reason,
    StateToken,
    Unchanged,
    _action_json,
    _action_json_general,
    unchanged_action,
)
from reconciler.views.plan import render_json

ACTIONS = [
    Action(
        ActionKind.NOOP,
        Reason.UNCHANGED,
        "p1",
        name="Boot",
        spec_hash="a",
        previous_hash="a",
        source="m.yaml",
    ),
    Action(ActionKind.NOOP, Reason.UNCHANGED, "p2", protect=True, source="m.yaml"),
    Action(
        ActionKind.ORPHAN, Reason.NOT_IN_MANIFESTS, "p3", previous_hash="b", detail="not in the manifests"
    ),
    Action(ActionKind.RETRY, Reason.FAILED_BEFORE, "p4", batch=3, force=True, detail="boom"),
    Action(ActionKind.NOOP, Reason.FOREIGN_FILES, "p5", keeps=["a hand upload"]),
    Action(
        ActionKind.RERENDER,
        Reason.SPEC_CHANGED,
        "p6",
        spec={"imageWidth": 1200, "turntable": {"includeGif": True}},
        changes=[FieldChange("imageWidth", 1000, 1200)],
        replaces=["the PNG still"],
        deletes=["the GIF"],
    ),
]


@pytest.mark.parametrize("action", ACTIONS, ids=[a.product for a in ACTIONS])
def test_the_fast_path_gives_the_general_dict(action: Action) -> None:
    fast, general = _action_json(action), _action_json_general(action)
    assert list(fast.items()) == list(general.items())


def test_the_dict_shares_no_list_with_the_action() -> None:
    action = ACTIONS[0]
    out = _action_json(action)
    out["replaces"].append("x")
    assert action.replaces == []


# -- unchanged products kept compact (plan.Actions) -------------------------------------------------


@dataclass(frozen=True)
class _Want:
    """The fields of a ProductSpec an unchanged product is kept as."""

    uuid: str
    name: str | None
    spec_hash: str
    source: SourceLocation
    protect: bool = False


WANTS = [
    _Want("p0", "Boot", "h1", SourceLocation("manifests/a.yaml", 3, 5)),
    _Want("p7", None, "h2", SourceLocation("manifests/a.yaml", 9), protect=True),
    _Want("p8", 'He said "hi"\\ \t\n\u2028 é 靴 \x7f', "h3", SourceLocation("m/ü.yaml")),
    _Want("p9", "", 'h"4', SourceLocation("m.yaml", 1, 1)),
]


def _mixed() -> Actions:
    rows: list[Action | Unchanged] = [*WANTS[:1], ACTIONS[2], *WANTS[1:3], ACTIONS[5], WANTS[3]]
    return Actions(rows)


def test_an_unchanged_product_is_the_action_the_planner_made_before() -> None:
    made = unchanged_action(WANTS[0])
    assert made == Action(
        ActionKind.NOOP,
        Reason.UNCHANGED,
        "p0",
        name="Boot",
        spec_hash="h1",
        previous_hash="h1",
        source="manifests/a.yaml:3:5",
        protect=False,
    )


def test_compact_rows_iterate_count_and_index_as_a_list_of_actions() -> None:
    actions = _mixed()
    whole = [unchanged_action(r) if isinstance(r, _Want) else r for r in _mixed()._rows]
    assert list(actions) == whole
    assert len(actions) == 6 and actions.unchanged == 4
    assert actions.built == [ACTIONS[2], ACTIONS[5]]
    assert actions[0] == whole[0] and actions[-1] == whole[-1] and actions[1:4] == whole[1:4]
    assert actions == whole and actions == Actions(whole)
    assert Actions(whole).unchanged == 0  # built actions stay built, no-ops included


def test_counts_and_changes_read_the_compact_rows_too() -> None:
    compact = Plan(StateToken("l", 1, "s.json"), _mixed(), [], Cost(), 50)
    built = Plan(StateToken("l", 1, "s.json"), list(compact.actions), [], Cost(), 50)  # type: ignore[arg-type]
    assert compact.counts() == built.counts() and compact.counts()["noop"] == 4
    assert compact.has_changes == built.has_changes
    assert compact.changed() == built.changed()
    assert compact.has_changes_in({"spec"}) and not compact.has_changes_in({"new"})


def test_the_json_line_of_a_compact_row_is_the_general_one() -> None:
    encode = json.JSONEncoder(ensure_ascii=False).encode
    actions = _mixed()
    assert list(actions.json_lines()) == [encode(_action_json_general(a)) for a in actions]


def test_a_plan_document_is_the_same_compact_or_built() -> None:
    compact = Plan(StateToken("l", 1, "s.json"), _mixed(), [], Cost(), 50)
    built = Plan(StateToken("l", 1, "s.json"), list(compact.actions), [], Cost(), 50)  # type: ignore[arg-type]
    assert render_json(compact) == render_json(built)
    assert json.loads(render_json(compact)) == compact.to_json()
    again = Plan.from_json(json.loads(render_json(compact)), "plan.json")
    assert list(again.actions) == list(compact.actions)
