"""apply under crashes, platform faults and a concurrent writer: it converges, never pays twice."""

from __future__ import annotations

import hashlib
import json
import signal

import pytest

from reconciler.sandbox.faults import FaultConfig
from tests.e2e.conftest import PRODUCTS, Project, manifest, wait_for

SOME = [PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"]]


def _assert_all_rendered(project: Project, products: list[str]) -> None:
    state = project.state()
    for uuid in products:
        record = state["products"][uuid]
        assert record["status"] == "rendered", record
        assert sorted(a["kind"] for a in record["attachments"]) == ["gif", "still", "turntable"]


@pytest.mark.parametrize("point", ["after-trigger", "mid-download"])
def test_killed_apply_is_resumed_without_triggering_again(project: Project, point: str) -> None:
    project.write_manifest(manifest(SOME))
    killed = project.apply(env={"RECONCILER_FAILPOINT": point})
    assert killed.returncode == -signal.SIGKILL
    assert (project.root / "state" / "renders.state.json.journal").exists()
    assert all(project.triggers(u) == 1 for u in SOME)

    plan = project.cli("plan", "--format", "json")
    kinds = {a["kind"] for a in json.loads(plan.stdout)["actions"]}
    assert kinds == {"resume"}

    resumed = project.apply()
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    _assert_all_rendered(project, SOME)
    assert all(project.triggers(u) == 1 for u in SOME)
    assert "No changes" in project.cli("plan").stdout


def test_killed_between_write_ahead_and_trigger_is_waited_for_then_retried_once(project: Project) -> None:
    project.write_manifest(manifest(SOME))
    killed = project.apply(env={"RECONCILER_FAILPOINT": "after-write-ahead"})
    assert killed.returncode == -signal.SIGKILL
    assert all(project.triggers(u) == 0 for u in SOME)
    assert {r["status"] for r in project.state_from_journal().values()} == {"requested"}

    # The outcome of that trigger is unknown to the next run: it waits rather than pay again.
    waited = project.cli("apply", "--auto-approve", "--poll-interval", "0.05", "--timeout", "1")
    assert waited.returncode == 1
    assert "outcome is unknown" in waited.stderr
    assert all(project.triggers(u) == 0 for u in SOME)

    retried = project.apply()
    assert retried.returncode == 0, retried.stderr
    _assert_all_rendered(project, SOME)
    assert all(project.triggers(u) == 1 for u in SOME)


def test_apply_converges_through_throttling_unavailability_and_early_url_expiry(project: Project) -> None:
    project.sandbox.set_faults(
        FaultConfig(
            rate_429=0.25,
            retry_after_seconds=0,
            rate_503=0.15,
            signed_url_ttl_override=0.05,
            latency_seconds=0.01,
            seed=7,
        )
    )
    project.write_manifest(manifest(SOME))
    result = project.apply("--download-dir", "files", env={"VNTANA_DOWNLOAD_ROUTE": "signed-url"})
    assert result.returncode == 0, result.stderr
    _assert_all_rendered(project, SOME)
    assert all(project.triggers(u) == 1 for u in SOME)
    summary = [line for line in result.stderr.splitlines() if line.startswith("Apply finished")]
    assert summary and " 0 retries" not in summary[0]
    for uuid in SOME:
        for att in project.state()["products"][uuid]["attachments"]:
            data = (project.root / "files" / uuid / att["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == att["sha256"]


def test_failed_jobs_are_recorded_failed_and_retried_by_the_next_apply(project: Project) -> None:
    bad = PRODUCTS["chair"]
    project.sandbox.set_faults(FaultConfig(fail_products=frozenset({bad})))
    project.write_manifest(manifest(SOME))
    first = project.cli("apply", "--auto-approve", "--poll-interval", "0.05", "--timeout", "2")
    assert first.returncode == 1
    assert bad in first.stderr
    state = project.state()["products"]
    assert state[bad]["status"] == "failed"
    assert all(state[u]["status"] == "rendered" for u in SOME if u != bad)

    project.sandbox.set_faults(FaultConfig())
    plan = json.loads(project.cli("plan", "--format", "json").stdout)
    assert [(a["product"], a["kind"]) for a in plan["actions"] if a["kind"] != "noop"] == [(bad, "retry")]
    assert project.apply().returncode == 0
    _assert_all_rendered(project, SOME)
    assert project.triggers(bad) == 2


def test_webhook_failed_event_fails_fast_and_dropped_deliveries_fall_back_to_polling(
    project: Project,
) -> None:
    bad = PRODUCTS["chair"]
    project.sandbox.set_faults(
        FaultConfig(fail_products=frozenset({bad}), webhook_drop_rate=0.5, webhook_duplicate_rate=0.5, seed=3)
    )
    project.write_manifest(manifest(SOME))
    result = project.cli(
        "apply",
        "--auto-approve",
        "--webhook-listen",
        "127.0.0.1:0",
        "--poll-interval",
        "0.5",
        "--timeout",
        "20",
    )
    assert result.returncode == 1, result.stderr
    state = project.state()["products"]
    assert state[bad]["status"] == "failed"
    assert state[bad]["error"] in ("platform reported renders.failed", "platform reported turntable.failed")
    assert all(state[u]["status"] == "rendered" for u in SOME if u != bad)


def test_a_second_apply_fails_fast_naming_the_lock_holder(project: Project) -> None:
    # Latency on every request keeps the first apply holding the lock while the second starts
    # (a second each: a CLI may take that long to start on a loaded machine); once the second
    # has been refused, it goes, and the first finishes at once.
    project.sandbox.set_faults(FaultConfig(latency_seconds=1.0))
    project.write_manifest(manifest(SOME))
    first = project.popen("apply", "--auto-approve", "--poll-interval", "0.05")
    info = project.root / "state" / "renders.state.json.lock.info"
    try:
        wait_for(info.exists, timeout=30)
        holder = json.loads(info.read_text())
        second = project.cli("apply", "--auto-approve")
        project.sandbox.set_faults(FaultConfig())
        assert second.returncode == 1
        assert "is locked by another process" in second.stderr
        assert f"pid={holder['pid']}" in second.stderr
        assert "operation=apply" in second.stderr
        assert f"reconciler force-unlock --state state/renders.state.json {holder['id']}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert all(project.triggers(u) == 1 for u in SOME)


def test_a_render_that_cannot_be_downloaded_stays_in_flight_and_is_fetched_not_paid_again(
    project: Project,
) -> None:
    project.write_manifest(manifest(SOME))
    project.sandbox.set_faults(FaultConfig(signed_url_ttl_override=0.0))  # every signed URL is already late
    broken = project.apply(env={"VNTANA_DOWNLOAD_ROUTE": "signed-url"})
    assert broken.returncode == 1
    assert "still in flight, the next apply resumes it" in broken.stderr
    assert {r["status"] for r in project.state()["products"].values()} == {"in_flight"}
    assert {a["kind"] for a in json.loads(project.cli("plan", "--format", "json").stdout)["actions"]} == {
        "resume"
    }

    project.sandbox.set_faults(FaultConfig())
    fixed = project.apply()
    assert fixed.returncode == 0, fixed.stderr
    _assert_all_rendered(project, SOME)
    assert all(project.triggers(u) == 1 for u in SOME)
