"""``reconciler doctor`` through the CLI against the sandbox: every reading in ``MATRIX`` passes
and is seen for what it is; problems exit 1 naming them; it never triggers and never writes,
except ``--save``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.server import MATRIX, EmbeddedSandbox, Readings
from tests.e2e.conftest import (
    PRODUCTS,
    Project,
    fast_config,
    manifest,
    platform_client,
    render_behind_our_back,
    tiny_spec,
)
from tests.e2e.uploads import PNG, upload

TRAIL = PRODUCTS["trail"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One sandbox for the module: TRAIL rendered, with a QR code beside its renders."""
    with EmbeddedSandbox(data_dir=tmp_path_factory.mktemp("platform"), config=fast_config()) as sandbox:
        render_behind_our_back(sandbox, [TRAIL], tiny_spec())
        upload(sandbox, TRAIL, f"qrCode_{TRAIL}.png", PNG)
        yield sandbox


@pytest.fixture
def doctor_project(rendered: EmbeddedSandbox, tmp_path: Path) -> Project:
    root = tmp_path / "project"
    (root / "manifests").mkdir(parents=True)
    project = Project(root, rendered)
    project.write_manifest(manifest([TRAIL]))
    yield project
    rendered.set_readings(Readings())


def _doctor(project: Project, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = project.cli("doctor", "--format", "json", *args, env=env)
    return result.returncode, json.loads(result.stdout)


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


@pytest.mark.parametrize("readings", MATRIX, ids=[r.label for r in MATRIX])
def test_doctor_passes_and_sees_each_reading(doctor_project: Project, readings: Readings) -> None:
    doctor_project.sandbox.set_readings(readings)
    code, report = _doctor(doctor_project, env={"VNTANA_CLIENT_UUID": doctor_project.sandbox.client_uuid})
    assert code == 0, report["problems"]
    assert report["ok"] and all(c["status"] == "ok" for c in report["checks"]), report["checks"]
    assert _check(report, "login")["detail"]["workspace_step"] == "skipped"  # an Owner
    assert _check(report, "entity type")["detail"]["filter"] == readings.entity_type_filter
    served = {"both": "comments", "comments": "comments"}.get(readings.download, "signed-url")
    assert report["settings"]["download_route"] == served
    assert report["settings"]["webhook_paths"] == readings.webhook_paths
    assert _check(report, "pages")["detail"] == {"first_page": 0, "compared": True}


def test_doctor_never_triggers_and_never_writes(doctor_project: Project) -> None:
    before = {p.name for p in doctor_project.root.iterdir()}
    with platform_client(doctor_project.sandbox) as client:
        hooks = len(client.list_webhooks())
    code, _ = _doctor(doctor_project)
    assert code == 0
    assert {p.name for p in doctor_project.root.iterdir()} == before  # no state, no config, no downloads
    assert doctor_project.triggers(TRAIL) == 1  # only the render made when the fixture set up
    with platform_client(doctor_project.sandbox) as client:
        assert len(client.list_webhooks()) == hooks


def test_save_writes_the_detected_settings_keeping_comments_and_never_the_token(
    doctor_project: Project,
) -> None:
    doctor_project.sandbox.set_readings(Readings(download="signed-url", webhook_paths="yaml"))
    config = doctor_project.root / "reconciler.yaml"
    config.write_text("# shared by the team\nmax_concurrency: 4  # the platform's advice\n")
    result = doctor_project.cli("doctor", "--save")
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    assert text.startswith("# shared by the team\nmax_concurrency: 4  # the platform's advice\n")
    assert "download_route: signed-url\n" in text and "webhook_paths: yaml\n" in text
    assert f"organization_uuid: {doctor_project.sandbox.organization_uuid}\n" in text
    assert doctor_project.sandbox.access_token not in text and "token" not in text
    assert "Saved to the config file: " in result.stdout
    # The saved settings are what the next run uses: a fixed route, and it works.
    code, report = _doctor(doctor_project)
    assert code == 0 and _check(report, "download")["action"] == "download_route: signed-url"


def test_a_route_that_does_not_work_here_exits_1_naming_the_problem(doctor_project: Project) -> None:
    doctor_project.sandbox.set_readings(Readings(download="signed-url"))
    result = doctor_project.cli("doctor", "--download-route", "comments")
    assert result.returncode == 1
    assert "fail  download" in result.stdout
    assert (
        "1 problem(s) the client cannot work around:\n  - download: download_route is comments"
        in result.stdout
    )
    assert "Error: 1 problem(s) the client cannot work around: download" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_refused_key_exits_1_and_checks_nothing_else(doctor_project: Project) -> None:
    code, report = _doctor(doctor_project, env={"VNTANA_API_TOKEN": "not-a-key"})
    assert code == 1
    assert [c["status"] for c in report["checks"]] == ["fail"] + ["skip"] * 6
    assert report["problems"][0].startswith(
        "login: POST /v1/auth/login/token: the API refused the personal access"
    )
    assert "not-a-key" not in json.dumps(report)


def test_an_unknown_product_exits_1(doctor_project: Project) -> None:
    code, report = _doctor(doctor_project, "--product", "00000000-0000-4000-8000-00000000dead")
    assert code == 1 and report["problems"] == [
        "product: 00000000-0000-4000-8000-00000000dead: GET /v1/products/00000000-0000-4000-8000-00000000dead: "
        "HTTP 404 Not Found: PRODUCT_NOT_FOUND"
    ]


def test_a_workspace_level_user_is_told_it_uses_a_workspace_token(doctor_project: Project) -> None:
    sandbox = doctor_project.sandbox
    code, report = _doctor(
        doctor_project,
        env={
            "VNTANA_API_TOKEN": sandbox.access_token_for("CLIENT_ORGANIZATION_CONTENT_MANAGER"),
            "VNTANA_CLIENT_UUID": sandbox.client_uuid,
        },
    )
    assert code == 0, report["problems"]
    login = _check(report, "login")
    assert login["detail"]["workspace_step"] == "used"
    assert [w["role"] for w in login["detail"]["workspaces"]] == ["CLIENT_ORGANIZATION_CONTENT_MANAGER"]
    assert login["action"] == "uses a workspace token (workspace-level role)"


def test_doctor_runs_against_the_embedded_sandbox(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "doctor",
            "--sandbox",
            "--sandbox-dir",
            str(tmp_path / "sb"),
            "--product",
            TRAIL,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            k: v for k, v in __import__("os").environ.items() if not k.startswith(("VNTANA_", "RECONCILER_"))
        }
        | {"NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    login" in result.stdout and "No problems found." in result.stdout
    # A never-rendered product has no render to try the routes on: a warning, not a problem.
    assert "warn  download" in result.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "reconciler", "doctor", "--sandbox", "--save"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "--save with --sandbox" in refused.stderr
