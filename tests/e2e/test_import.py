"""import through the CLI: products rendered straight through the sandbox's API are adopted
from what their files show, and the plan that follows agrees."""

from __future__ import annotations

import hashlib
import json

from tests.e2e.conftest import (
    PRODUCTS,
    UNKNOWN_PRODUCT,
    Project,
    manifest,
    render_behind_our_back,
    tiny_spec,
)

TRAIL, COURT, CHAIR, LOAFER, TOTE = (PRODUCTS[k] for k in ("trail", "court", "chair", "loafer", "tote"))
UNKNOWABLE = "imageBackground, transparentBackground, turntable.background, turntable.transparentBackground"

# court's manifest entry: a WEBP still and a longer, faster turntable without a GIF.
COURT_LINES = (
    "imageFormat: WEBP\nimageWidth: 40\nimageHeight: 30\nturntable:\n  includeGif: false\n"
    "  imageCount: 7\n  frameRate: 9\n  width: 48\n  height: 16"
)
COURT_SPEC = tiny_spec(
    imageFormat="WEBP",
    imageWidth=40,
    imageHeight=30,
    turntable={"includeGif": False, "imageCount": 7, "frameRate": 9, "width": 48, "height": 16},
)


def _actions(project: Project) -> dict[str, dict]:
    plan = project.cli("plan", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    return {a["product"]: a for a in json.loads(plan.stdout)["actions"]}


def test_matching_renders_are_adopted_without_a_render_and_the_next_plan_has_no_changes(
    project: Project,
) -> None:
    render_behind_our_back(project.sandbox, [TRAIL], tiny_spec())
    render_behind_our_back(project.sandbox, [COURT], COURT_SPEC)
    project.write_manifest(manifest([TRAIL, COURT], overrides={COURT: COURT_LINES}))

    result = project.cli("import", TRAIL, COURT, "--download-dir", "adopted")
    assert result.returncode == 0, result.stderr
    assert f"= {TRAIL}" in result.stdout and f"= {COURT}" in result.stdout
    assert "in sync, no render triggered (still PNG 32x24, MP4 4 frames @ 4 fps 32x32, GIF)" in result.stdout
    assert "in sync, no render triggered (still WEBP 40x30, MP4 7 frames @ 9 fps 48x16)" in result.stdout
    assert "Imported 2 of 2 product(s): 2 in sync, 0 mismatched" in result.stdout
    assert f"Files cannot reveal {UNKNOWABLE}: those were taken from the manifests." in result.stdout

    state = project.state()
    for uuid, kinds in ((TRAIL, ["gif", "still", "turntable"]), (COURT, ["still", "turntable"])):
        record = state["products"][uuid]
        assert record["status"] == "rendered" and record["request"] is None
        assert sorted(a["kind"] for a in record["attachments"]) == kinds
        for att in record["attachments"]:  # the recorded hashes are those of the files themselves
            data = (project.root / "adopted" / uuid / att["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == att["sha256"] and len(data) == att["size"]
    court = state["products"][COURT]
    assert court["spec"] == COURT_SPEC
    assert {a["content_type"] for a in court["attachments"]} == {"image/webp", "video/mp4"}

    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes. 2 products up to date" in plan.stdout
    assert project.triggers(TRAIL) == 1 and project.triggers(COURT) == 1  # import paid for nothing


def test_a_mismatch_is_shown_field_by_field_and_planned_as_a_rerender_of_exactly_that(
    project: Project,
) -> None:
    render_behind_our_back(
        project.sandbox,
        [CHAIR],
        tiny_spec(imageWidth=48, imageFormat="JPG", turntable={"imageCount": 6, "frameRate": 12}),
    )
    project.write_manifest(manifest([CHAIR]))

    result = project.cli("import", CHAIR)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index(f"~ {CHAIR}  {CHAIR[:8]}")
    assert lines[start + 1 : start + 7] == [
        "    does not match the manifest; recorded as the platform has it, the plan re-renders it:",
        "      imageFormat: platform JPG, manifest PNG",
        "      imageWidth: platform 48, manifest 32",
        "      turntable.imageCount: platform 6, manifest 4",
        "      turntable.frameRate: platform 12, manifest 4",
        f"      unknown from the files (taken from the manifest): {UNKNOWABLE}",
    ]
    record = project.state()["products"][CHAIR]
    assert record["spec"] == tiny_spec(
        imageWidth=48, imageFormat="JPG", turntable={"imageCount": 6, "frameRate": 12}
    )

    action = _actions(project)[CHAIR]
    assert (action["kind"], action["reason"]) == ("rerender", "spec_changed")
    assert [(c["field"], c["old"], c["new"]) for c in action["changes"]] == [
        ("imageFormat", "JPG", "PNG"),
        ("imageWidth", 48, 32),
        ("turntable.frameRate", 12, 4),
        ("turntable.imageCount", 6, 4),
    ]
    assert action["effect"] == "replaces still JPG→PNG, the MP4 turntable and the GIF"
    plan = project.cli("plan")
    assert "imageFormat JPG → PNG, imageWidth 48 → 32" in plan.stdout
    assert project.triggers(CHAIR) == 1


def test_a_gif_on_the_platform_that_the_manifest_turned_off_is_a_mismatch_that_deletes_it(
    project: Project,
) -> None:
    render_behind_our_back(project.sandbox, [TOTE], tiny_spec())
    project.write_manifest(manifest([TOTE], gif=False))
    result = project.cli("import", TOTE, "--format", "json")
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)["products"]
    assert report["outcome"] == "mismatch" and report["recorded"] is True
    assert report["mismatches"] == [{"field": "turntable.includeGif", "platform": True, "manifest": False}]
    assert report["inferred"]["turntable.imageCount"] == 4 and report["inferred"]["turntable.frameRate"] == 4
    assert report["unknown"] == UNKNOWABLE.split(", ")
    action = _actions(project)[TOTE]
    assert action["kind"] == "rerender"
    assert action["deletes"] == ["the GIF"]


def test_all_skips_recorded_products_leaves_unrendered_ones_to_the_plan_and_force_reimports(
    project: Project,
) -> None:
    project.write_manifest(manifest([TRAIL]))
    assert project.apply().returncode == 0
    render_behind_our_back(project.sandbox, [TOTE], tiny_spec())
    project.write_manifest(manifest([TRAIL, TOTE, LOAFER]))
    serial = project.state()["serial"]

    result = project.cli("import", "--all")
    assert result.returncode == 0, result.stderr
    assert (
        f"  {TRAIL}  {TRAIL[:8]}\n    already in the state; skipped (--force imports it again)"
        in result.stdout
    )
    assert (
        f"+ {LOAFER}  {LOAFER[:8]}\n    no renders on the platform; nothing recorded, the plan renders it"
        in result.stdout
    )
    assert f"= {TOTE}" in result.stdout
    assert (
        "Imported 1 of 3 product(s): 1 in sync, 0 mismatched, 0 incomplete, 1 without renders, 1 skipped"
        in result.stdout
    )
    state = project.state()
    assert sorted(state["products"]) == sorted([TRAIL, TOTE])
    assert state["serial"] == serial + 1
    actions = _actions(project)
    assert {u: a["kind"] for u, a in actions.items()} == {TRAIL: "noop", TOTE: "noop", LOAFER: "render"}

    before = state["products"][TRAIL]
    forced = project.cli("import", TRAIL, "--force")
    assert forced.returncode == 0, forced.stderr
    after = project.state()["products"][TRAIL]
    assert after["attachments"] == before["attachments"]  # the same files: adopted as they are
    assert after["request"] is None and after["history"] == before["history"]
    assert project.triggers(TRAIL) == 1 and project.triggers(TOTE) == 1 and project.triggers(LOAFER) == 0


def test_a_product_missing_its_mp4_is_incomplete_and_left_to_the_plan(project: Project) -> None:
    from reconciler.client import VntanaClient
    from reconciler.settings import ClientSettings

    render_behind_our_back(project.sandbox, [COURT], tiny_spec(imageWidth=48))
    sb = project.sandbox
    with VntanaClient(
        ClientSettings(api_url=sb.url, token=sb.access_token, organization_uuid=sb.organization_uuid)
    ) as client:
        (mp4,) = [a for a in client.search_attachments(COURT, "TURNTABLE") if a.name.endswith(".mp4")]
        client.delete_attachment(COURT, mp4.uuid)
    project.write_manifest(manifest([COURT]))
    result = project.cli("import", COURT)
    assert result.returncode == 0, result.stderr
    assert (
        "    incomplete: no MP4 turntable on the platform; nothing recorded, the plan renders it\n"
        "      imageWidth: platform 48, manifest 32\n"
    ) in result.stdout
    assert not project.state_path.exists() or COURT not in project.state()["products"]
    assert _actions(project)[COURT]["kind"] == "render"


def test_products_outside_the_manifests_are_refused_and_platform_failures_exit_1(project: Project) -> None:
    project.write_manifest(manifest([TRAIL, UNKNOWN_PRODUCT]))
    refused = project.cli("import", CHAIR, TRAIL, COURT)
    assert refused.returncode == 1
    assert f"Error: not in the manifests: {COURT}, {CHAIR}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not project.state_path.exists()

    neither = project.cli("import")
    assert neither.returncode == 1
    assert "name the products to import, or pass --all" in neither.stderr

    failed = project.cli("import", UNKNOWN_PRODUCT, TRAIL)
    assert failed.returncode == 1
    assert f"x {UNKNOWN_PRODUCT}" in failed.stdout and "PRODUCT_NOT_FOUND" in failed.stdout
    assert f"Error: 1 product(s) could not be imported: {UNKNOWN_PRODUCT}" in failed.stderr
    assert project.sandbox.access_token not in failed.stdout + failed.stderr
