"""Never touch what the reconciler did not make, even from a plan that could not see it.

A plan made offline (or saved earlier) knows nothing of a still uploaded by hand or a render
made in VNTANA's web app; apply lists each product's files just before triggering and leaves
such a product alone unless the plan names it in --replace."""

from __future__ import annotations

import json

from tests.e2e.conftest import PRODUCTS, Project, manifest, platform_client, render_behind_our_back, tiny_spec
from tests.e2e.uploads import PNG, upload

TRAIL, COURT, TOTE = PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["tote"]


def test_apply_from_an_offline_plan_does_not_trigger_over_a_hand_made_render(project: Project) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    assert project.apply().returncode == 0
    hand = upload(project.sandbox, TRAIL, "hand-made.png", PNG, store_type="RENDER")["uuid"]
    before = project.state()["products"][TRAIL]
    project.write_manifest(manifest([TRAIL, COURT], gif=False))  # both need a re-render

    plan = json.loads(project.cli("plan", "--format", "json").stdout)
    assert {a["product"]: a["kind"] for a in plan["actions"]} == {
        TRAIL: "rerender",
        COURT: "rerender",
    }  # offline
    result = project.apply()
    assert result.returncode == 1
    assert (
        f"{TRAIL}: not triggered: its Renders tab holds 1 file(s) the reconciler did not make "
        f"(hand-made.png (RENDER)), which a trigger may replace"
    ) in result.stderr
    assert f"--replace {TRAIL} renders over them" in result.stderr
    assert project.state()["products"][TRAIL] == before, "the refused product's record is untouched"
    assert (project.triggers(TRAIL), project.triggers(COURT)) == (1, 2)

    refreshed = json.loads(project.cli("plan", "--refresh", "--format", "json").stdout)
    trail = next(a for a in refreshed["actions"] if a["product"] == TRAIL)
    assert (trail["kind"], trail["keeps"]) == ("blocked", ["hand-made.png (RENDER)"])

    forced = project.apply("--replace", TRAIL)
    assert forced.returncode == 0, forced.stderr
    assert project.triggers(TRAIL) == 2
    with platform_client(project.sandbox) as client:
        files = {a.uuid for a in client.list_attachments(TRAIL)}
    recorded = {a["uuid"] for a in project.state()["products"][TRAIL]["attachments"]}
    assert recorded <= files and hand not in recorded, "a hand-made file is never taken for a result"


def test_a_new_product_with_renders_made_elsewhere_is_left_for_import(project: Project) -> None:
    render_behind_our_back(project.sandbox, [TOTE], tiny_spec())
    project.write_manifest(manifest([TOTE]))
    result = project.apply()
    assert result.returncode == 1 and "not triggered: its Renders tab holds 3 file(s)" in result.stderr
    assert project.triggers(TOTE) == 1  # only the one made elsewhere
    planned = json.loads(project.cli("plan", "--refresh", "--format", "json").stdout)
    [tote] = planned["actions"]
    assert tote["kind"] == "blocked" and f"'reconciler import {TOTE}' adopts" in tote["detail"]
    assert project.cli("import", TOTE).returncode == 0
    assert "No changes" in project.cli("plan", "--refresh").stdout
