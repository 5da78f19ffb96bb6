"""apply through the CLI against the sandbox: render, idempotency, re-render, GIF removal, plans."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.e2e.conftest import PRODUCTS, UNKNOWN_PRODUCT, Project, manifest


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_first_apply_records_hashes_that_match_the_files_and_second_apply_has_nothing_to_do(
    project: Project,
) -> None:
    project.write_manifest(manifest(PRODUCTS))
    first = project.apply("--download-dir", "downloads")
    assert first.returncode == 0, first.stderr
    state = project.state()
    assert sorted(state["products"]) == sorted(PRODUCTS.values())
    for uuid, record in state["products"].items():
        assert record["status"] == "rendered"
        kinds = sorted(a["kind"] for a in record["attachments"])
        assert kinds == ["gif", "still", "turntable"]
        for att in record["attachments"]:
            path = project.root / "downloads" / uuid / att["name"]
            assert _sha(path) == att["sha256"]
            assert path.stat().st_size == att["size"]
    assert not (project.root / "state" / "renders.state.json.journal").exists()

    second = project.apply()
    assert second.returncode == 0, second.stderr
    assert "No changes" in second.stdout
    assert "Nothing to apply" in second.stdout
    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert all(project.triggers(u) == 1 for u in PRODUCTS.values())


def test_changing_one_spec_rerenders_only_that_product(project: Project) -> None:
    project.write_manifest(manifest(PRODUCTS))
    assert project.apply().returncode == 0
    before = project.state()["products"]
    chair = PRODUCTS["chair"]
    project.write_manifest(manifest(PRODUCTS, overrides={chair: "imageFormat: WEBP"}))

    plan = project.cli("plan")
    assert "1 to re-render" in plan.stdout
    assert "imageFormat PNG → WEBP" in plan.stdout
    assert "replaces still PNG→WEBP, the MP4 turntable and the GIF" in plan.stdout

    result = project.apply()
    assert result.returncode == 0, result.stderr
    after = project.state()["products"]
    assert project.triggers(chair) == 2
    assert [a["content_type"] for a in after[chair]["attachments"] if a["kind"] == "still"] == ["image/webp"]
    for uuid in PRODUCTS.values():
        if uuid != chair:
            assert after[uuid] == before[uuid]
            assert project.triggers(uuid) == 1


def test_turning_the_gif_off_warns_and_removes_the_gif_from_state(project: Project) -> None:
    project.write_manifest(manifest([PRODUCTS["court"]], gif=True))
    assert project.apply().returncode == 0
    project.write_manifest(manifest([PRODUCTS["court"]], gif=False))
    plan = project.cli("plan")
    assert "deletes the GIF" in plan.stdout
    assert project.apply().returncode == 0
    kinds = sorted(a["kind"] for a in project.state()["products"][PRODUCTS["court"]]["attachments"])
    assert kinds == ["still", "turntable"]


def test_saved_plan_applies_and_a_stale_one_is_refused_naming_what_moved(project: Project) -> None:
    project.write_manifest(manifest([PRODUCTS["trail"]]))
    assert project.cli("plan", "--out", "first.plan").returncode == 0
    assert project.cli("plan", "--out", "before-state.plan").returncode == 0
    applied = project.cli("apply", "first.plan", "--poll-interval", "0.05")
    assert applied.returncode == 0, applied.stderr
    assert project.state()["products"][PRODUCTS["trail"]]["status"] == "rendered"
    refused = project.cli("apply", "before-state.plan")
    assert refused.returncode == 1
    assert "the state was created (lineage" in refused.stderr

    project.write_manifest(manifest([PRODUCTS["trail"], PRODUCTS["court"]]))
    serial = project.state()["serial"]
    assert project.cli("plan", "--out", "second.plan").returncode == 0
    assert project.cli("plan", "--out", "stale.plan").returncode == 0
    assert project.cli("apply", "second.plan", "--poll-interval", "0.05").returncode == 0
    refused = project.cli("apply", "stale.plan")
    assert refused.returncode == 1
    assert "saved plan is stale" in refused.stderr
    assert f"serial moved from {serial} to {project.state()['serial']}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert project.triggers(PRODUCTS["trail"]) == 1
    assert project.triggers(PRODUCTS["court"]) == 1


def test_unknown_product_is_recorded_failed_while_the_rest_proceed_and_is_retried(project: Project) -> None:
    project.write_manifest(manifest([PRODUCTS["tote"], UNKNOWN_PRODUCT]))
    result = project.apply()
    assert result.returncode == 1
    assert "PRODUCT_NOT_FOUND" in result.stderr
    products = project.state()["products"]
    assert products[PRODUCTS["tote"]]["status"] == "rendered"
    assert products[UNKNOWN_PRODUCT]["status"] == "failed"
    assert products[UNKNOWN_PRODUCT]["error"] == "PRODUCT_NOT_FOUND"

    plan = project.cli("plan", "--format", "json")
    actions = {a["product"]: a for a in json.loads(plan.stdout)["actions"]}
    assert actions[UNKNOWN_PRODUCT]["kind"] == "retry"
    assert actions[UNKNOWN_PRODUCT]["reason"] == "failed_before"
    assert actions[PRODUCTS["tote"]]["kind"] == "noop"


def test_apply_without_a_terminal_and_without_auto_approve_refuses(project: Project) -> None:
    project.write_manifest(manifest([PRODUCTS["trail"]]))
    result = project.cli("apply")
    assert result.returncode == 1
    assert "no terminal" in result.stderr
    assert project.triggers(PRODUCTS["trail"]) == 0
    assert not project.state_path.exists() or not project.state()["products"]


def test_the_token_never_reaches_state_plans_or_verbose_logs(project: Project) -> None:
    project.write_manifest(manifest([PRODUCTS["trail"]]))
    plan = project.cli("plan", "--out", "p.plan", "--format", "json")
    result = project.apply("--verbose")
    assert result.returncode == 0, result.stderr
    token = project.sandbox.access_token
    for text in (
        plan.stdout,
        plan.stderr,
        result.stdout,
        result.stderr,
        project.state_path.read_text(),
        (project.root / "p.plan").read_text(),
    ):
        assert token not in text
    assert "POST /v1/products/renders" in result.stderr  # verbose really logged the calls


def test_json_format_prints_the_plan_then_one_event_per_line(project: Project) -> None:
    project.write_manifest(manifest([PRODUCTS["trail"], UNKNOWN_PRODUCT]))
    result = project.apply("--format", "json")
    assert result.returncode == 1
    decoder = json.JSONDecoder()
    plan, end = decoder.raw_decode(result.stdout)
    assert plan["kind"] == "reconciler-plan" and plan["summary"]["render"] == 2
    events = [json.loads(line) for line in result.stdout[end:].splitlines() if line.strip()]
    names = [e["event"] for e in events]
    assert names[0] == "RunStarted" and names[-1] == "RunFinished"
    assert {"Triggered", "Downloaded", "Recorded", "Failed"} <= set(names)
    finished = events[-1]
    assert finished["rendered"] == 1 and finished["failed"] == 1
    assert finished["failures"] == {UNKNOWN_PRODUCT: "PRODUCT_NOT_FOUND"}
    assert finished["bytes_downloaded"] == sum(
        a["size"] for a in project.state()["products"][PRODUCTS["trail"]]["attachments"]
    )
