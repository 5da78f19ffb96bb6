"""A credentials problem stops the run with one clear error, and the state is left as it was (issue 13)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import PRODUCTS, Project, manifest
from tests.e2e.faultproxy import Rule, fault_proxy

TRAIL, COURT, CHAIR, TOTE = PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"], PRODUCTS["tote"]


def _apply(project: Project, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return project.cli("apply", "--auto-approve", "--poll-interval", "0.05", "--timeout", "600", env=env)


def _nothing_written(project: Project) -> None:
    assert not project.state_path.exists(), "no checkpoint, not even a write-ahead"
    assert not (project.root / "state" / "renders.state.json.journal").exists()
    assert all(project.triggers(u) == 0 for u in (TRAIL, COURT))


def test_a_wrong_token_stops_before_any_checkpoint(project: Project) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    result = _apply(project, env={"VNTANA_API_TOKEN": "not-a-token"})
    assert result.returncode == 1
    assert result.stderr.count("Error: ") == 1
    assert (
        "Error: cannot log in, so nothing was started: POST /v1/auth/login/token: the API refused the personal "
        "access token (HTTP 403 Forbidden: BAD_CREDENTIALS)"
    ) in result.stderr
    assert "Hint: check VNTANA_API_TOKEN" in result.stderr
    assert "FAILED" not in result.stderr and "not-a-token" not in result.stderr
    _nothing_written(project)


def test_a_viewer_is_told_its_role_cannot_render_before_any_checkpoint(project: Project) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    viewer = {
        "VNTANA_API_TOKEN": project.sandbox.access_token_for("CLIENT_ORGANIZATION_VIEWER"),
        "VNTANA_CLIENT_UUID": project.sandbox.client_uuid,
    }
    result = _apply(project, env=viewer)
    assert result.returncode == 1
    assert (
        f"Error: the user's role in workspace {project.sandbox.client_uuid} is CLIENT_ORGANIZATION_VIEWER, which "
        "may not trigger renders or delete files"
    ) in result.stderr
    assert "trigger refused" not in result.stderr
    _nothing_written(project)


def test_a_workspace_user_without_a_workspace_is_told_which_to_set_and_the_hint_works(
    project: Project,
) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    key = {"VNTANA_API_TOKEN": project.sandbox.access_token_for("CLIENT_ORGANIZATION_CONTENT_MANAGER")}
    result = _apply(project, env=key)
    assert result.returncode == 1
    assert "a workspace-level role, and no workspace is configured" in result.stderr
    assert (
        f"Hint: set VNTANA_CLIENT_UUID (or --workspace) to a workspace where the user may render: "
        f"{project.sandbox.client_uuid}" in result.stderr
    )
    _nothing_written(project)
    followed = _apply(project, env={**key, "VNTANA_CLIENT_UUID": project.sandbox.client_uuid})
    assert followed.returncode == 0, followed.stderr
    assert {r["status"] for r in project.state()["products"].values()} == {"rendered"}


@pytest.mark.timeout(90)
def test_a_trigger_refused_for_its_scope_mid_run_stops_the_run_and_leaves_products_as_they_were(
    project: Project,
) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    project.write_manifest(
        manifest([CHAIR, TOTE], overrides={CHAIR: "imageWidth: 40", TOTE: "imageWidth: 40"}),
        name="other.yaml",
    )
    # The platform's role is not in the login (the check passes); the second request is refused 403.
    rule = Rule("POST", "/v1/products/renders", 403, ("FORBIDDEN",), after=1)
    with fault_proxy(project.sandbox.url, rule) as proxy:
        result = _apply(project, env={"VNTANA_API_URL": proxy.url})
    assert result.returncode == 1
    assert (
        "Error: the run stopped: the platform refused the render request (POST /v1/products/renders: HTTP 403 "
        "Forbidden: FORBIDDEN" in result.stderr
    )
    assert "2 product(s) left as they were" in result.stderr
    products = project.state()["products"]
    assert sorted(products) == sorted([TRAIL, COURT]), "the refused products' write-ahead was taken back"
    assert {r["status"] for r in products.values()} == {"rendered"}
    assert (project.triggers(CHAIR), project.triggers(TOTE)) == (0, 0)
    plan = json.loads(project.cli("plan", "--format", "json").stdout)
    assert {a["product"]: a["kind"] for a in plan["actions"] if a["kind"] != "noop"} == {
        CHAIR: "render",
        TOTE: "render",
    }


@pytest.mark.timeout(90)
def test_a_token_revoked_mid_run_stops_the_run_and_the_next_apply_resumes_without_paying_again(
    project: Project,
) -> None:
    """After the trigger every call is refused 401, logins included: the run stops, the products
    stay in flight, and the next apply fetches them."""
    project.write_manifest(manifest([TRAIL, COURT]))
    # The two listings before the trigger pass, every later one is refused; so is every login after
    # the first (its two calls: the key, then the organization token).
    rules = [
        Rule("POST", "/v1/attachments/search", 401, ("UNAUTHORIZED",), after=2),
        Rule("POST", "/v1/auth/", 401, ("UNAUTHORIZED",), after=2),
    ]
    with fault_proxy(project.sandbox.url, *rules) as proxy:
        result = _apply(project, env={"VNTANA_API_URL": proxy.url})
    assert result.returncode == 1, result.stderr
    assert "Error: the run stopped: " in result.stderr
    assert "triggered earlier: the next apply waits for them and does not pay again" in result.stderr
    journal = project.state()["products"]
    assert {r["status"] for r in journal.values()} == {"in_flight"}
    resumed = _apply(project)
    assert resumed.returncode == 0, resumed.stderr
    assert {r["status"] for r in project.state()["products"].values()} == {"rendered"}
    assert project.triggers(TRAIL) == 1 and project.triggers(COURT) == 1
