"""Faults cost seconds, not timeouts, and recovery needs no override (issue 13).

Every run here is given ``--timeout 600``: a run bounded by it would blow the test's own
pytest timeout, far below it. What is asserted is behaviour: nothing paid twice (the sandbox's
own trigger records), failed products recorded failed with their reason, a plain rerun
converging without ``--allow-large``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.loader import load_desired
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig
from tests.e2e.conftest import PRODUCTS, ROOT, Project, manifest
from tests.e2e.faultproxy import Rule, fault_proxy

LONG = ("--timeout", "600")
TRAIL, COURT, CHAIR, TOTE = PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"], PRODUCTS["tote"]
CATALOGUE = sorted(load_desired([ROOT / "manifests"]).products)  # the 40 products of the sandbox's seed


def two_batches(project: Project) -> None:
    """TRAIL and COURT in one spec, CHAIR and TOTE in another: two render requests, in that order."""
    project.write_manifest(manifest([TRAIL, COURT]))
    project.write_manifest(
        manifest([CHAIR, TOTE], overrides={CHAIR: "imageWidth: 40", TOTE: "imageWidth: 40"}),
        name="other.yaml",
    )


def apply(project: Project, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return project.cli("apply", "--auto-approve", "--poll-interval", "0.05", *LONG, *args, env=env)


def statuses(project: Project) -> dict[str, str]:
    return {u: r["status"] for u, r in project.state()["products"].items()}


@pytest.mark.timeout(90)
def test_a_render_request_answered_500_is_never_sent_again_and_does_not_wait_out_the_timeout(
    project: Project,
) -> None:
    two_batches(project)
    # The second request is refused with a 500 before the platform sees it: its outcome is
    # unknown to the reconciler, which must not re-send it (it might have been accepted).
    with fault_proxy(project.sandbox.url, Rule("POST", "/v1/products/renders", 500, after=1)) as proxy:
        first = apply(project, env={"VNTANA_API_URL": proxy.url})
    assert first.returncode == 1, first.stderr
    assert "outcome unknown (POST /v1/products/renders: HTTP 500" in first.stderr
    assert statuses(project) == {TRAIL: "rendered", COURT: "rendered", CHAIR: "failed", TOTE: "failed"}
    error = project.state()["products"][CHAIR]["error"]
    assert error.startswith("no still within ") or error.startswith("no turntable within "), error
    assert "after a trigger whose outcome is unknown" in error and "most likely it was not accepted" in error
    assert [project.triggers(u) for u in (TRAIL, COURT, CHAIR, TOTE)] == [1, 1, 0, 0]

    rerun = apply(project)
    assert rerun.returncode == 0, rerun.stderr
    assert set(statuses(project).values()) == {"rendered"}
    assert [project.triggers(u) for u in (TRAIL, COURT, CHAIR, TOTE)] == [1, 1, 1, 1]


@pytest.mark.timeout(90)
def test_a_render_request_accepted_then_answered_500_is_recorded_from_its_files_without_paying_again(
    project: Project,
) -> None:
    two_batches(project)
    with fault_proxy(
        project.sandbox.url,
        Rule("POST", "/v1/products/renders", 502, ("BAD_GATEWAY",), forward=True, times=1),
    ) as proxy:
        result = apply(project, env={"VNTANA_API_URL": proxy.url})
    assert result.returncode == 0, result.stderr
    assert "outcome unknown" in result.stderr
    assert set(statuses(project).values()) == {"rendered"}
    assert all(project.triggers(u) == 1 for u in (TRAIL, COURT, CHAIR, TOTE))
    assert "No changes" in project.cli("plan").stdout


@pytest.mark.timeout(90)
def test_a_failed_render_is_given_up_from_what_the_run_saw_not_after_the_timeout(project: Project) -> None:
    project.sandbox.set_faults(FaultConfig(fail_products=frozenset({CHAIR})))
    project.write_manifest(manifest([TRAIL, COURT, CHAIR, TOTE]))
    first = apply(project)
    assert first.returncode == 1
    state = project.state()["products"]
    assert {u: r["status"] for u, r in state.items()} == {
        TRAIL: "rendered",
        COURT: "rendered",
        CHAIR: "failed",
        TOTE: "rendered",
    }
    assert "the platform shows a poller no failed renders, only missing files" in state[CHAIR]["error"]

    project.sandbox.set_faults(FaultConfig())
    retry = apply(project)
    assert retry.returncode == 0, retry.stderr
    assert project.triggers(CHAIR) == 2 and project.triggers(TRAIL) == 1


@pytest.mark.timeout(240)
def test_after_a_quarter_of_the_catalogue_failed_a_plain_rerun_converges_without_allow_large(
    project: Project,
) -> None:
    failing = frozenset(CATALOGUE[:11])  # 11 of 40: over the breaker's 25%
    project.write_manifest(manifest(CATALOGUE, gif=False))
    project.sandbox.set_faults(FaultConfig(fail_products=failing))
    first = apply(project, "--parallelism", "8")
    assert first.returncode == 1
    assert sorted(u for u, s in statuses(project).items() if s == "failed") == sorted(failing)

    project.sandbox.set_faults(FaultConfig())
    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stderr  # changes, and no refusal
    assert "Large change" not in plan.stdout
    rerun = apply(project, "--parallelism", "8")
    assert rerun.returncode == 0, rerun.stderr
    assert "refusing a large change" not in rerun.stderr
    assert set(statuses(project).values()) == {"rendered"}
    assert project.cli("plan", "--detailed-exitcode").returncode == 0


@pytest.mark.timeout(90)
def test_a_retry_whose_given_up_render_arrived_late_is_recorded_not_paid_again(tmp_path: Path) -> None:
    """The render was only slow: it was given up, its files came afterwards; the retry finds them."""
    slow = SandboxConfig(job_pending_seconds=0.02, job_processing_seconds=2.0, workers=2)
    with EmbeddedSandbox(data_dir=tmp_path / "platform", config=slow) as sb:
        project = Project(tmp_path / "project", sb)
        project.write_manifest(manifest([TRAIL, COURT]))
        given_up = project.cli("apply", "--auto-approve", "--poll-interval", "0.05", "--timeout", "1")
        assert given_up.returncode == 1
        assert set(statuses(project).values()) == {"failed"}
        assert sb.wait_idle(30)  # the renders finish after all

        retry = apply(project)
        assert retry.returncode == 0, retry.stderr
        assert "the results of its earlier attempt arrived after it was given up" in retry.stderr
        assert set(statuses(project).values()) == {"rendered"}
        assert project.triggers(TRAIL) == 1 and project.triggers(COURT) == 1, "nothing paid twice"
        kinds = sorted(a["kind"] for a in project.state()["products"][TRAIL]["attachments"])
        assert kinds == ["gif", "still", "turntable"]
        assert "No changes" in project.cli("plan").stdout
