"""Manifests for teams (issue 11): ``workspace:`` on a manifest file, products of several
workspaces in one catalogue, batches and login scopes per workspace, recorded per product.

The real CLI against the real sandbox, whose seed has the workspaces ``catalogue`` and
``archive`` in one organization; a user with a role in both shows the workspace tokens.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.server import EmbeddedSandbox

from .conftest import PRODUCTS, Project, fast_config, manifest, platform_client

SEED = Path(__file__).resolve().parents[2] / "reconciler" / "sandbox" / "seed.json"
CATALOGUE = "146866e1-6190-50c7-8bd1-85432273b3b1"
ARCHIVE = "a983026e-cb31-58d8-8ec4-6753670e6cfd"
ARCHIVED = ["a642eb81-4f2e-5d86-9d03-3a2e46e7a7b2", "80a07984-1191-5047-bd8e-c0cc95dd79fd"]
TEAM_TOKEN = "vntana-sandbox-team-token"
TEAM = {"trail": PRODUCTS["trail"], "court": PRODUCTS["court"]}


def _rows(sandbox: EmbeddedSandbox, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{sandbox.data_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
    try:
        return list(db.execute(sql, args))
    finally:
        db.close()


def test_products_of_two_workspaces_apply_in_one_run_in_batches_of_one_workspace(project: Project) -> None:
    project.write_manifest(manifest(TEAM))
    project.write_manifest("workspace: archive\n" + manifest(ARCHIVED), "archive.yaml")
    plan = json.loads(project.cli("plan", "--format", "json").stdout)
    # One spec, two workspaces: two render requests, never one that mixes them.
    assert {b["workspace"]: sorted(b["products"]) for b in plan["batches"]} == {
        None: sorted(TEAM.values()),
        "archive": sorted(ARCHIVED),
    }
    assert plan["workspaces"] == {"archive": "manifests/archive.yaml:1"}
    text = project.cli("plan").stdout
    assert "in workspace archive" in text

    result = project.apply()
    assert result.returncode == 0, result.stderr
    products = project.state()["products"]
    assert {u: products[u].get("workspace") for u in products} == {
        **dict.fromkeys(TEAM.values(), None),
        **dict.fromkeys(ARCHIVED, ARCHIVE),
    }
    assert all("workspace" not in products[u] for u in TEAM.values())  # old states' shape
    assert f"workspace: {ARCHIVE}" in project.cli("state", "show", ARCHIVED[0]).stdout
    assert [project.triggers(u) for u in [*TEAM.values(), *ARCHIVED]] == [1, 1, 1, 1]
    # The Owner's organization token serves every workspace: no workspace step was asked for.
    scoped = _rows(project.sandbox, "SELECT COUNT(*) FROM tokens WHERE client_uuid IS NOT NULL")
    assert scoped == [(0,)]
    refreshed = project.cli("plan", "--refresh", "--detailed-exitcode")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr


def test_the_workspace_changes_no_spec_hash(project: Project) -> None:
    """Adding ``workspace:`` to a file whose products are rendered re-renders nothing."""
    project.write_manifest(manifest(TEAM))
    assert project.apply().returncode == 0
    project.write_manifest(f"workspace: {CATALOGUE}\n" + manifest(TEAM))
    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout


def test_an_unknown_workspace_names_file_line_and_the_known_workspaces(project: Project) -> None:
    project.write_manifest(manifest(TEAM))
    project.write_manifest("# the archive team\nworkspace: archve\n" + manifest(ARCHIVED), "archive.yaml")
    result = project.apply()
    assert result.returncode == 1
    assert "manifests/archive.yaml:2: workspace 'archve': no such workspace in organization" in result.stderr
    assert "among those this user may see" in result.stderr
    assert f"catalogue ({CATALOGUE})" in result.stderr and f"archive ({ARCHIVE})" in result.stderr
    assert not project.state_path.exists()  # nothing was triggered or recorded
    assert project.triggers(ARCHIVED[0]) == 0


def test_a_workspace_that_is_not_a_uuid_or_slug_is_a_manifest_error(project: Project) -> None:
    project.write_manifest("workspace: [archive]\n" + manifest(ARCHIVED))
    result = project.cli("validate")
    assert result.returncode == 1
    assert "manifests/catalogue.yaml:1:1: workspace: must be a workspace uuid or slug" in result.stderr


@pytest.fixture
def team_sandbox(tmp_path: Path) -> Iterator[EmbeddedSandbox]:
    """The default seed plus a Content Manager of both workspaces, with a key of its own."""
    seed = json.loads(SEED.read_text())
    seed["users"].append(
        {
            "email": "team@sandbox.local",
            "password": "sandbox-team-password",
            "personalAccessToken": TEAM_TOKEN,
            "workspaces": {
                CATALOGUE: "CLIENT_ORGANIZATION_CONTENT_MANAGER",
                ARCHIVE: "CLIENT_ORGANIZATION_CONTENT_MANAGER",
            },
        }
    )
    config = fast_config()
    config.seed = seed
    with EmbeddedSandbox(data_dir=tmp_path / "team-platform", config=config) as sb:
        yield sb


def test_a_workspace_user_gets_a_token_per_workspace_from_one_login_and_collect_follows_them(
    tmp_path: Path, team_sandbox: EmbeddedSandbox
) -> None:
    project = Project(
        tmp_path / "project",
        team_sandbox,
        settings={"VNTANA_API_TOKEN": TEAM_TOKEN, "VNTANA_CLIENT_UUID": CATALOGUE},
    )
    project.write_manifest(manifest(TEAM))
    project.write_manifest("workspace: archive\n" + manifest(ARCHIVED), "archive.yaml")
    result = project.apply("--no-wait")
    assert result.returncode == 0, result.stderr
    assert "4 product(s) in flight" in result.stdout
    status = json.loads(project.cli("status", "--format", "json").stdout)
    assert {p["product"]: p["workspace"] for p in status["products"]} == {
        **dict.fromkeys(TEAM.values(), None),
        **dict.fromkeys(ARCHIVED, ARCHIVE),
    }
    collected = project.cli("collect", "--poll-interval", "0.05", "--timeout", "30")
    assert collected.returncode == 0, collected.stderr
    assert {r["status"] for r in project.state()["products"].values()} == {"rendered"}
    assert [project.triggers(u) for u in [*TEAM.values(), *ARCHIVED]] == [1, 1, 1, 1]
    # Per run, one login with the key; a workspace token for each workspace, from its one
    # organization token; nothing revoked (a second login per workspace would have revoked the
    # first's organization token).
    team = "team@sandbox.local"
    logins = _rows(team_sandbox, "SELECT COUNT(*) FROM tokens WHERE kind='login' AND user_email=?", team)
    assert logins == [(2,)]  # apply --no-wait, then collect
    scopes = _rows(
        team_sandbox,
        "SELECT DISTINCT client_uuid FROM tokens WHERE kind='refresh' AND user_email=? ORDER BY 1",
        team,
    )
    assert {s for (s,) in scopes} == {None, CATALOGUE, ARCHIVE}

    # The archive team leaves: its orphans are deleted in their workspace, which only the state
    # names now (the user's configured workspace is the catalogue).
    (project.root / "manifests" / "archive.yaml").unlink()
    pruned = project.apply("--prune=delete")
    assert pruned.returncode == 0, pruned.stderr
    assert set(project.state()["products"]) == set(TEAM.values())
    with platform_client(team_sandbox) as owner:
        assert [
            a for u in ARCHIVED for a in owner.list_attachments(u) if a.entity_type in ("RENDER", "TURNTABLE")
        ] == []


def test_a_workspace_the_user_has_no_role_in_stops_before_anything_is_triggered(project: Project) -> None:
    """The Content Manager of ``catalogue`` names ``archive`` too (by uuid): the platform lists
    the user's workspaces, ``archive`` is not among them, and that is said before anything is
    triggered, not after half of the batches."""
    project.settings = {
        "VNTANA_API_TOKEN": "vntana-sandbox-content-manager-token",
        "VNTANA_CLIENT_UUID": CATALOGUE,
    }
    project.write_manifest(manifest(TEAM))
    project.write_manifest(f"workspace: {ARCHIVE}\n" + manifest(ARCHIVED), "archive.yaml")
    result = project.apply()
    assert result.returncode == 1
    assert f"manifests/archive.yaml:1: workspace '{ARCHIVE}': no such workspace" in result.stderr, (
        result.stderr
    )
    assert f"catalogue ({CATALOGUE})" in result.stderr
    assert [project.triggers(u) for u in [*TEAM.values(), *ARCHIVED]] == [0, 0, 0, 0]
    assert not project.state_path.exists()


def test_a_saved_plan_with_workspaces_is_resolved_and_applied_exactly(project: Project) -> None:
    project.write_manifest(manifest(TEAM))
    project.write_manifest("workspace: archive\n" + manifest(ARCHIVED), "archive.yaml")
    saved = project.cli("plan", "--out", "plan.json")
    assert saved.returncode == 0, saved.stderr
    result = project.apply("plan.json")
    assert result.returncode == 0, result.stderr
    products = project.state()["products"]
    assert {u: products[u].get("workspace") for u in ARCHIVED} == dict.fromkeys(ARCHIVED, ARCHIVE)
    assert [project.triggers(u) for u in [*TEAM.values(), *ARCHIVED]] == [1, 1, 1, 1]
