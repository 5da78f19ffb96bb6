"""Budgets end to end: the real CLI against the sandbox. An apply over budget triggers nothing;
a saved plan is counted again from its batches when it is applied; presets re-render nothing."""

from __future__ import annotations

import json

from tests.e2e.conftest import PRODUCTS, TINY_DEFAULTS, Project, manifest

TRAIL, COURT, CHAIR = PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"]
SOME = [TRAIL, COURT, CHAIR]  # tiny renders: 3 x (1 still + 4 frames) = 15 frames, 1 request, 3 s


def test_an_apply_over_budget_triggers_nothing_and_allow_over_budget_renders(project: Project) -> None:
    project.write_manifest(manifest(SOME))
    (project.root / "reconciler.yaml").write_text("budget:\n  max_frames: 10\n")
    refused = project.apply()
    assert refused.returncode == 1
    assert (
        f"Over budget (refused without --allow-over-budget): 15 frames, more than the budget of 10 "
        f"(budget.max_frames in {project.root / 'reconciler.yaml'}:2)" in refused.stdout
    )
    assert "Error: refusing a plan over budget" in refused.stderr
    assert all(project.triggers(u) == 0 for u in SOME)

    assert project.apply("--max-frames", "15").returncode == 0  # a flag over the file: within budget
    assert all(project.triggers(u) == 1 for u in SOME)
    project.write_manifest(manifest(SOME, gif=False))
    assert project.apply().returncode == 1
    allowed = project.apply("--allow-over-budget")
    assert allowed.returncode == 0, allowed.stderr
    assert all(project.triggers(u) == 2 for u in SOME)


def test_a_saved_plan_is_checked_again_when_it_is_applied(project: Project) -> None:
    project.write_manifest(manifest(SOME))
    made = project.cli("plan", "--max-frames", "20", "--out", "plan.json")
    assert made.returncode == 0, made.stderr
    assert "Within budget: 15 of 20 frames." in made.stdout

    # The budget in force now is tighter than the recorded one: the tighter holds.
    tighter = project.apply("plan.json", "--max-requests", "0")
    assert tighter.returncode == 1
    assert "1 render request, more than the budget of 0 (--max-requests)" in tighter.stderr
    (project.root / "reconciler.yaml").write_text("budget:\n  max_video_seconds: 2\n")
    assert "3 s of video, more than the budget of 2 s" in project.apply("plan.json").stderr
    (project.root / "reconciler.yaml").unlink()

    # A plan edited to look cheap and within budget is counted again from its batches.
    saved = json.loads((project.root / "plan.json").read_text())
    saved["budget"]["max_frames"] = 5
    saved["over_budget"] = []
    saved["cost"].update(stills=1, turntable_frames=0)
    (project.root / "plan.json").write_text(json.dumps(saved))
    forged = project.apply("plan.json")
    assert forged.returncode == 1
    assert "15 frames, more than the budget of 5 (--max-frames)" in forged.stderr
    assert all(project.triggers(u) == 0 for u in SOME)

    applied = project.apply("plan.json", "--allow-over-budget")  # allowed at apply time, it runs
    assert applied.returncode == 0, applied.stderr
    assert all(project.triggers(u) == 1 for u in SOME)


def test_a_catalogue_moved_into_presets_re_renders_nothing_and_costs_by_preset(project: Project) -> None:
    project.write_manifest(manifest(SOME, overrides={CHAIR: "imageFormat: WEBP"}))
    assert project.apply().returncode == 0
    presets = "presets:\n  tiny:\n" + "".join(
        "  " + line + "\n" for line in TINY_DEFAULTS.format(gif="true").splitlines()[1:]
    )
    presets += "  tiny-webp:\n    preset: tiny\n    imageFormat: WEBP\n"
    project.write_manifest(presets, "zz/presets.yaml")
    project.write_manifest(
        f'defaults:\n  preset: tiny\nproducts:\n  - uuid: {TRAIL}\n    name: "trail"\n'
        f'  - uuid: {COURT}\n    name: "court"\n  - uuid: {CHAIR}\n    preset: tiny-webp\n'
    )
    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes. 3 products up to date." in plan.stdout

    data = json.loads(project.cli("plan", "--format", "json", "--replace", CHAIR, "--replace", TRAIL).stdout)
    assert data["cost"]["presets"] == [
        {"preset": "tiny", "products": 1, "frames": 5, "video_seconds": 1.0},
        {"preset": "tiny-webp", "products": 1, "frames": 5, "video_seconds": 1.0},
    ]
