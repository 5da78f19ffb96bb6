"""A plan's actions as JSON: the fast path for plain actions gives exactly the general one's dict,
key order included (the JSON plan and the saved plan file are made from it)."""

from __future__ import annotations

import pytest

from reconciler.plan import Action, ActionKind, FieldChange, Reason, _action_json, _action_json_general

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
