"""Logins and throttling through the CLI: a workspace-level user, a token revoked while apply
runs (under both documented statuses), and throttling answered as 429 or as 403
API_RATE_LIMIT_EXCEEDED. (An Owner with a workspace configured runs the whole matrix.)"""

from __future__ import annotations

import pytest

from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import Readings
from tests.e2e.conftest import PRODUCTS, Project, manifest, platform_client, wait_for

SOME = [PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"]]


def _rendered(project: Project) -> None:
    records = project.state()["products"]
    assert {u: r["status"] for u, r in records.items()} == dict.fromkeys(SOME, "rendered")
    assert all(project.triggers(u) == 1 for u in SOME)


def test_a_workspace_level_user_applies_with_a_workspace_token(project: Project) -> None:
    sandbox = project.sandbox
    project.settings = {
        "VNTANA_API_TOKEN": sandbox.access_token_for("CLIENT_ORGANIZATION_CONTENT_MANAGER"),
        "VNTANA_CLIENT_UUID": sandbox.client_uuid,
    }
    project.write_manifest(manifest(SOME))
    result = project.apply("--verbose")
    assert result.returncode == 0, result.stderr
    assert "workspace step: used" in result.stderr
    _rendered(project)


@pytest.mark.parametrize("status", [403, 401])
def test_a_token_revoked_mid_run_costs_one_fresh_login_and_nothing_else(
    project: Project, status: int
) -> None:
    sandbox = project.sandbox
    sandbox.set_readings(Readings(revoked_token_status=status))
    sandbox.set_faults(FaultConfig(latency_seconds=0.05))  # room to act while the run waits
    project.write_manifest(manifest(SOME))
    run = project.popen("apply", "--auto-approve", "--poll-interval", "0.2", "--timeout", "60", "--verbose")
    try:
        wait_for(lambda: project.triggers(SOME[0]) == 1, timeout=60)
        with platform_client(sandbox) as other:
            other.login()  # the same key logs in again: the platform revokes the running apply's token
    finally:
        _out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert f"the API refused the token (HTTP {status}): logging in again" in err
    assert "still refused" not in err
    _rendered(project)


@pytest.mark.parametrize("status", [429, 403])
def test_throttling_slows_apply_down_instead_of_failing_it(project: Project, status: int) -> None:
    project.sandbox.set_readings(Readings(throttle_status=status))
    # Seeded so that the platform's 3rd request is throttled and its 23rd: each throttling
    # answer under a status with no Retry-After pauses every worker for a second, and 0.2 of
    # the requests (9 of ~40) cost 8 s for the same check.
    project.sandbox.set_faults(FaultConfig(rate_429=0.05, retry_after_seconds=0, seed=30))
    project.write_manifest(manifest(SOME))
    result = project.apply()
    assert result.returncode == 0, result.stderr
    summary = next(line for line in result.stderr.splitlines() if line.startswith("Apply finished"))
    assert " 0 retries" not in summary
    if status != 429:  # VNTANA's code has no Retry-After: every worker paused for a second
        assert " 0.0 s throttled" not in summary
    _rendered(project)
