"""Drift, refresh-only, prune, protect, the large-change breaker and targeting, end to end."""

from __future__ import annotations

import json

from reconciler.client import VntanaClient
from reconciler.sandbox.faults import FaultConfig
from reconciler.settings import ClientSettings
from tests.e2e.conftest import PRODUCTS, Project, manifest

TRAIL, COURT, CHAIR = PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"]
SOME = [TRAIL, COURT, CHAIR]
# What someone else renders behind the reconciler's back: another format, six frames, no GIF.
OTHER_SPEC = {
    "imageWidth": 32,
    "imageHeight": 24,
    "imageFormat": "WEBP",
    "turntable": {"includeGif": False, "imageCount": 6, "frameRate": 4, "width": 32, "height": 32},
}


def _client(project: Project) -> VntanaClient:
    sb = project.sandbox
    return VntanaClient(
        ClientSettings(api_url=sb.url, token=sb.access_token, organization_uuid=sb.organization_uuid)
    )


def _actions(project: Project, *args: str) -> dict[str, dict]:
    result = project.cli("plan", "--format", "json", *args)
    assert result.returncode in (0, 2), result.stderr
    return {a["product"]: a for a in json.loads(result.stdout)["actions"]}


def test_every_cause_of_drift_is_detected_with_its_reason_and_refresh_only_converges(
    project: Project,
) -> None:
    project.write_manifest(manifest(SOME))
    assert project.apply().returncode == 0
    assert all(a["kind"] == "noop" for a in _actions(project, "--refresh").values())
    records = project.state()["products"]
    with _client(project) as client:
        gif = next(a for a in records[TRAIL]["attachments"] if a["kind"] == "gif")
        client.delete_attachment(TRAIL, gif["uuid"])  # remote_missing
        client.trigger_renders([COURT], OTHER_SPEC)  # remote_replaced: re-rendered behind our back
    project.sandbox.wait_idle(timeout=30)
    # content_changed: the recorded hash no longer matches the bytes on the platform.
    state = project.state()
    still = next(a for a in state["products"][CHAIR]["attachments"] if a["kind"] == "still")
    still["sha256"] = "0" * 64
    project.state_path.write_text(json.dumps(state))

    offline = _actions(project)
    assert offline[TRAIL]["kind"] == "noop", "without --refresh the plan makes no network calls"
    refreshed = _actions(project, "--refresh")
    assert (refreshed[TRAIL]["kind"], refreshed[TRAIL]["reason"]) == ("rerender", "remote_missing")
    assert "gif" in refreshed[TRAIL]["detail"]
    # Re-rendered elsewhere: its files are not the reconciler's to replace without being asked.
    assert (refreshed[COURT]["kind"], refreshed[COURT]["reason"]) == ("blocked", "remote_replaced")
    assert "'reconciler refresh' adopts the platform's files" in refreshed[COURT]["detail"]
    assert f"--replace {COURT}" in refreshed[COURT]["detail"] and refreshed[COURT]["keeps"]
    assert _actions(project, "--refresh", "--replace", COURT)[COURT]["kind"] == "rerender"
    assert refreshed[CHAIR]["kind"] == "noop"
    verified = _actions(project, "--refresh", "--verify")
    assert (verified[CHAIR]["reason"], verified[CHAIR]["category"]) == ("content_changed", "drift")
    gated = project.cli("plan", "--refresh", "--detailed-exitcode", "--exit-code-on", "spec")
    assert gated.returncode == 0, "drift is not in the chosen categories"
    gated = project.cli("plan", "--refresh", "--detailed-exitcode", "--exit-code-on", "spec,drift")
    assert gated.returncode == 2

    accepted = project.cli("refresh", "--verify")
    assert accepted.returncode == 0, accepted.stderr
    assert "3 updated" in accepted.stdout
    after = project.state()["products"]
    assert sorted(a["kind"] for a in after[TRAIL]["attachments"]) == ["still", "turntable"]
    assert still["uuid"] in {a["uuid"] for a in after[CHAIR]["attachments"]}
    assert next(a for a in after[CHAIR]["attachments"] if a["kind"] == "still")["sha256"] != "0" * 64
    final = _actions(project, "--refresh", "--verify")
    assert final[CHAIR]["kind"] == "noop"
    # The adopted files were read: the state knows COURT now holds a WEBP, 6 frames, no GIF.
    assert (final[COURT]["kind"], final[COURT]["reason"]) == ("rerender", "spec_changed")
    assert {(c["field"], c["old"], c["new"]) for c in final[COURT]["changes"]} == {
        ("imageFormat", "WEBP", "PNG"),
        ("turntable.imageCount", 6, 4),
        ("turntable.includeGif", False, True),
    }
    # The GIF is really gone on the platform, and the state now says so: a re-render, by plan alone.
    assert (final[TRAIL]["kind"], final[TRAIL]["reason"]) == ("rerender", "remote_missing")
    assert project.triggers(TRAIL) == 1


def test_orphans_are_kept_by_default_forgotten_with_prune_and_deleted_with_prune_delete(
    project: Project,
) -> None:
    project.write_manifest(manifest(SOME))
    assert project.apply().returncode == 0
    project.write_manifest(manifest([TRAIL]))
    actions = _actions(project)
    assert actions[COURT]["kind"] == "orphan" and actions[CHAIR]["kind"] == "orphan"
    assert "Nothing to apply" in project.apply().stdout

    forgot = project.apply("--prune", "--target", COURT)
    assert forgot.returncode == 0, forgot.stderr
    assert COURT not in project.state()["products"]
    with _client(project) as client:
        assert client.search_attachments(COURT, "RENDER"), "--prune keeps the platform's renders"

    deleted = project.apply("--prune=delete")
    assert deleted.returncode == 0, deleted.stderr
    assert CHAIR not in project.state()["products"]
    with _client(project) as client:
        assert client.search_attachments(CHAIR, "RENDER") == []
        assert client.search_attachments(CHAIR, "TURNTABLE") == []
    assert project.state()["products"][TRAIL]["status"] == "rendered"


def test_protect_blocks_rerender_and_prune_and_survives_removal_from_the_manifests(project: Project) -> None:
    project.write_manifest(manifest(SOME, overrides={COURT: "protect: true"}))
    assert project.apply().returncode == 0
    assert project.state()["products"][COURT]["protect"] is True

    project.write_manifest(manifest(SOME, gif=False, overrides={COURT: "protect: true"}))
    actions = _actions(project)
    assert actions[COURT]["kind"] == "blocked"
    assert actions[TRAIL]["kind"] == "rerender"
    assert project.apply().returncode == 0
    assert project.triggers(COURT) == 1 and project.triggers(TRAIL) == 2

    project.write_manifest(
        manifest([TRAIL, CHAIR], gif=False)
    )  # the product and its guard leave the manifests
    actions = _actions(project, "--prune=delete")
    assert actions[COURT]["kind"] == "blocked"
    assert project.apply("--prune=delete").returncode == 0
    assert COURT in project.state()["products"]
    with _client(project) as client:
        assert client.search_attachments(COURT, "RENDER")


def test_the_breaker_refuses_a_large_change_naming_the_limit_and_allow_large_passes(project: Project) -> None:
    many = list(PRODUCTS.values())
    project.write_manifest(manifest(many))
    assert project.apply().returncode == 0
    project.write_manifest(manifest(many, overrides=dict.fromkeys(many[:3], "imageFormat: JPG")))
    assert project.cli("plan").returncode == 0, "3 of 5 stays under the default floor of 10 products"

    refused = project.cli("plan", "--max-rerender-share", "0.5", "--out", "big.plan")
    assert refused.returncode == 1
    assert "re-renders 3 of 5 products, replacing their renders, more than the limit of 2" in refused.stdout
    assert "refusing a large change" in refused.stderr and "--allow-large" in refused.stderr
    assert not (project.root / "big.plan").exists()
    blocked = project.apply("--max-rerender-share", "0.5")
    assert blocked.returncode == 1 and "refusing a large change" in blocked.stderr
    assert all(project.triggers(u) == 1 for u in many)

    allowed = project.apply("--max-rerender-share", "0.5", "--allow-large")
    assert allowed.returncode == 0, allowed.stderr
    assert sum(project.triggers(u) for u in many) == 8

    project.write_manifest(manifest(many[:1]))
    deletes = project.cli("plan", "--prune=delete", "--max-deletes", "3")
    assert deletes.returncode == 1
    assert "deletes renders of 4 products, more than the limit of 3" in deletes.stdout


def test_targeting_leaves_other_changes_waiting_and_is_recorded_in_saved_plans(project: Project) -> None:
    project.write_manifest(manifest(SOME))
    planned = project.cli("plan", "--target", TRAIL, "--out", "t.plan")
    assert planned.returncode == 0
    assert "2 other change(s) wait (not targeted)" in planned.stdout
    saved = json.loads((project.root / "t.plan").read_text())
    assert saved["targets"] == [TRAIL] and saved["waiting"] == 2
    assert project.cli("apply", "t.plan", "--poll-interval", "0.05").returncode == 0
    assert sorted(project.state()["products"]) == [TRAIL]
    by_name = _actions(project, "--exclude", CHAIR[:8] + "*")
    assert set(by_name) == {COURT, TRAIL}
    assert by_name[TRAIL]["kind"] == "noop"


def test_protect_is_recorded_by_an_apply_with_nothing_to_render(project: Project) -> None:
    project.write_manifest(manifest(SOME))
    assert project.apply().returncode == 0
    project.write_manifest(manifest(SOME, overrides={COURT: "protect: true"}))
    quiet = project.apply()
    assert quiet.returncode == 0 and "Nothing to apply" in quiet.stdout
    assert project.state()["products"][COURT]["protect"] is True
    project.write_manifest(manifest([TRAIL, CHAIR]))
    assert _actions(project, "--prune=delete")[COURT]["kind"] == "blocked"


def test_prune_delete_removes_every_render_even_when_some_are_already_gone(project: Project) -> None:
    project.write_manifest(manifest(SOME))
    assert project.apply().returncode == 0
    still = next(a for a in project.state()["products"][CHAIR]["attachments"] if a["kind"] == "still")
    with _client(project) as client:
        client.delete_attachment(CHAIR, still["uuid"])
    project.write_manifest(manifest([TRAIL, COURT]))
    result = project.apply("--prune=delete")
    assert result.returncode == 0, result.stderr
    with _client(project) as client:
        assert client.search_attachments(CHAIR, "TURNTABLE") == []
    assert CHAIR not in project.state()["products"]


def test_refresh_leaves_a_record_untouched_when_the_new_files_cannot_be_downloaded(project: Project) -> None:
    project.write_manifest(manifest(SOME))
    assert project.apply().returncode == 0
    with _client(project) as client:
        client.trigger_renders([COURT], OTHER_SPEC)
    project.sandbox.wait_idle(timeout=30)
    before = project.state()["products"][COURT]
    project.sandbox.set_faults(FaultConfig(signed_url_ttl_override=0.0))
    result = project.cli("refresh", env={"VNTANA_DOWNLOAD_ROUTE": "signed-url"})  # the storage is broken
    assert result.returncode == 1
    assert COURT in result.stderr and "left as recorded" in result.stderr
    assert project.state()["products"][COURT]["attachments"] == before["attachments"]
