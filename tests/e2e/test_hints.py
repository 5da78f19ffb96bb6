"""Every hint, followed, works (issue 13): the hints of commands that talk to the platform, the
state lock, saved plans, webhooks, PostgreSQL and GitHub.

Each test makes the mistake against a real sandbox (or a real PostgreSQL, or the GitHub
stand-in), checks the exact hint the real CLI gives, does what it says, and checks that the
command then succeeds. Hints followed by tests elsewhere are listed in docs/apply.md.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.readings import Readings
from tests.e2e.conftest import PRODUCTS, UNKNOWN_PRODUCT, Project, manifest, wait_for

TRAIL, COURT, CHAIR = PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"]


def hint(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.removeprefix("Hint: ") for line in result.stderr.splitlines() if line.startswith("Hint: ")]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


def ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def apply(
    project: Project, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return project.cli(
        "apply", "--auto-approve", "--poll-interval", "0.05", "--timeout", "60", *args, env=env
    )


# -- logging in ------------------------------------------------------------------------------------


def test_no_token_export_it(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    result = project.cli("plan", "--refresh", env={"VNTANA_API_TOKEN": ""})
    assert hint(result).startswith("export VNTANA_API_TOKEN=<your Authentication Key>")
    ok(project.cli("plan", "--refresh", env={"VNTANA_API_TOKEN": project.sandbox.access_token}))


def test_a_refused_key_check_the_token(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    result = apply(project, env={"VNTANA_API_TOKEN": "wrong"})
    assert (
        hint(result) == "check VNTANA_API_TOKEN (personal access tokens are created in the VNTANA platform)"
    )
    ok(apply(project, env={"VNTANA_API_TOKEN": project.sandbox.access_token}))


def test_an_organization_that_is_not_the_users_check_it(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    result = apply(project, env={"VNTANA_ORGANIZATION_UUID": UNKNOWN_PRODUCT})
    assert hint(result) == "check VNTANA_ORGANIZATION_UUID / organization_uuid"
    ok(apply(project, env={"VNTANA_ORGANIZATION_UUID": project.sandbox.organization_uuid}))


def test_a_workspace_that_is_not_the_users_check_it(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    key = project.sandbox.access_token_for("CLIENT_ORGANIZATION_CONTENT_MANAGER")
    result = apply(project, env={"VNTANA_API_TOKEN": key, "VNTANA_CLIENT_UUID": UNKNOWN_PRODUCT})
    assert hint(result) == "check VNTANA_CLIENT_UUID / client_uuid"
    ok(apply(project, env={"VNTANA_API_TOKEN": key, "VNTANA_CLIENT_UUID": project.sandbox.client_uuid}))


def test_a_role_that_may_not_render_use_another_users_key(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    viewer = {
        "VNTANA_API_TOKEN": project.sandbox.access_token_for("CLIENT_ORGANIZATION_VIEWER"),
        "VNTANA_CLIENT_UUID": project.sandbox.client_uuid,
    }
    result = apply(project, env=viewer)
    assert (
        hint(result) == "use the personal access token of a user with one of those roles (a user has one key)"
    )
    manager = project.sandbox.access_token_for("CLIENT_ORGANIZATION_CONTENT_MANAGER")
    ok(apply(project, env={**viewer, "VNTANA_API_TOKEN": manager}))


def test_a_token_in_the_config_file_remove_it(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    config = project.root / "reconciler.yaml"
    config.write_text(f"api_url: {project.sandbox.url}\ntoken: abc\n")
    result = project.cli("plan", "--refresh")
    assert hint(result) == (
        "remove it and set the environment variable VNTANA_API_TOKEN (or 'token_env: NAME' to "
        "read it from another variable)"
    )
    config.write_text(f"api_url: {project.sandbox.url}\n")
    ok(project.cli("plan", "--refresh"))  # the token comes from VNTANA_API_TOKEN
    config.write_text(f"api_url: {project.sandbox.url}\ntoken_env: MY_KEY\n")
    ok(project.cli("plan", "--refresh", env={"VNTANA_API_TOKEN": "", "MY_KEY": project.sandbox.access_token}))


def test_an_unknown_setting_did_you_mean(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    config = project.root / "reconciler.yaml"
    config.write_text("download_rout: comments\n")
    result = project.cli("plan", "--refresh")
    assert (
        "unknown setting 'download_rout'" in result.stderr
        and hint(result) == "did you mean 'download_route'?"
    )
    config.write_text("download_route: comments\n")
    ok(project.cli("plan", "--refresh"))


# -- apply ---------------------------------------------------------------------------------------


def test_apply_without_a_terminal_pass_auto_approve_or_apply_a_saved_plan(project: Project) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    result = project.cli("apply", "--poll-interval", "0.05", "--target", TRAIL)
    assert hint(result) == "review the plan, then pass --auto-approve (or apply a saved plan file)"
    ok(project.cli("apply", "--auto-approve", "--poll-interval", "0.05", "--target", TRAIL))
    ok(project.cli("plan", "--out", "court.plan"))
    ok(project.cli("apply", "court.plan", "--poll-interval", "0.05"))


def test_a_failed_apply_names_the_plan_that_shows_the_retries(project: Project) -> None:
    project.sandbox.set_faults(FaultConfig(fail_products=frozenset({CHAIR})))
    project.write_manifest(manifest([TRAIL, CHAIR]))
    failed = apply(project, "--state", "state/team.state.json", "--timeout", "2")
    assert failed.returncode == 1
    assert (
        "run 'reconciler plan --state state/team.state.json' to see what the next apply does with them (failed "
        "ones are retried, in-flight ones resumed)"
    ) in failed.stderr
    shown = project.cli("plan", "--state", "state/team.state.json", "--format", "json")
    ok(shown)
    assert {a["product"]: a["kind"] for a in json.loads(shown.stdout)["actions"]}[CHAIR] == "retry"


def test_a_saved_plan_made_for_the_sandbox_names_the_command_that_applies_it(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    made = project.cli("plan", "--sandbox", "--out", "sb.plan")
    ok(made)
    assert "run 'reconciler apply --sandbox sb.plan' to execute exactly this plan" in made.stdout
    result = project.cli("apply", "sb.plan", env={"VNTANA_API_TOKEN": ""})  # no token asked for
    assert (
        "Error: sb.plan was made from the embedded sandbox's state state/sandbox.state.json, not "
        "state/renders.state.json"
    ) in result.stderr
    assert hint(result) == "run 'reconciler apply --sandbox sb.plan'"
    ok(project.cli("apply", "--sandbox", "sb.plan", "--poll-interval", "0.05"))


def test_a_saved_plan_made_for_another_state_file_names_it(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    ok(project.cli("plan", "--state", "state/team.state.json", "--out", "team.plan"))
    result = project.cli("apply", "team.plan")
    assert hint(result) == "run 'reconciler apply --state state/team.state.json team.plan'"
    ok(project.cli("apply", "--state", "state/team.state.json", "team.plan", "--poll-interval", "0.05"))


def test_a_stale_saved_plan_make_it_again(project: Project) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    ok(project.cli("plan", "--sandbox", "--out", "old.plan"))
    ok(project.cli("apply", "--sandbox", "--auto-approve", "--target", TRAIL, "--poll-interval", "0.05"))
    result = project.cli("apply", "--sandbox", "old.plan")
    assert hint(result) == (
        "make the plan again ('reconciler plan --sandbox --out FILE'), review it, then "
        "'reconciler apply --sandbox FILE'"
    )
    ok(project.cli("plan", "--sandbox", "--out", "new.plan"))
    ok(project.cli("apply", "--sandbox", "new.plan", "--poll-interval", "0.05"))


def test_a_large_change_allow_it(project: Project) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    ok(apply(project))
    project.write_manifest(manifest([TRAIL, COURT], gif=False))
    refused = project.cli("plan", "--max-rerender-share", "0.5", "--out", "big.plan")
    assert hint(refused) == "check the plan; if it is what you want, run again with --allow-large"
    ok(project.cli("plan", "--max-rerender-share", "0.5", "--out", "big.plan", "--allow-large"))
    ok(project.cli("apply", "big.plan", "--poll-interval", "0.05"))


def asleep(pid: int) -> bool:
    """Whether the process's main thread sleeps in ``time.sleep`` (the lock's poll between tries)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() in ("hrtimer_nanosleep", "do_nanosleep")
    except OSError:
        return False


@pytest.mark.timeout(120)
def test_a_locked_state_retry_with_lock_timeout(project: Project) -> None:
    # A second of latency on every request keeps the first apply holding the lock for tens of
    # seconds, longer than a CLI takes to start on a loaded machine (0.2 s lost that race),
    # until the retry is seen waiting for the lock: then the first may finish.
    project.sandbox.set_faults(FaultConfig(latency_seconds=1.0))
    project.write_manifest(manifest([TRAIL, COURT]))
    first = project.popen("apply", "--auto-approve", "--poll-interval", "0.05")
    try:
        wait_for((project.root / "state" / "renders.state.json.lock.info").exists, timeout=30)
        second = project.cli("apply", "--auto-approve", "--poll-interval", "0.05")
        assert hint(second).startswith(
            "wait for it to finish, retry with --lock-timeout SECONDS, or if that process "
            "is gone run: reconciler force-unlock --state state/renders.state.json "
        )
        waited = project.popen("apply", "--auto-approve", "--poll-interval", "0.05", "--lock-timeout", "90")
        try:
            if Path(f"/proc/{waited.pid}/wchan").exists():
                # Asleep before it holds the lock, it sleeps between two tries of it (it makes no
                # request before it takes the lock).
                wait_for(lambda: asleep(waited.pid) or waited.poll() is not None, timeout=60)
                project.sandbox.set_faults(FaultConfig())
            out, err = waited.communicate(timeout=120)
        finally:
            if waited.poll() is None:
                waited.kill()
                waited.communicate()
        assert waited.returncode == 0, out + err
        assert "Nothing to apply." in out  # it planned from what the first apply recorded
    finally:
        first.communicate(timeout=120)
    assert first.returncode == 0


def test_a_download_route_that_does_not_serve_renders_ask_doctor(project: Project) -> None:
    project.sandbox.set_readings(Readings(download="comments"))
    project.write_manifest(manifest([TRAIL]))
    broken = apply(project, env={"VNTANA_DOWNLOAD_ROUTE": "signed-url"})
    assert broken.returncode == 1
    assert "no download route serves it" in broken.stderr
    assert (
        "(run 'reconciler doctor' to see which routes work, then set download_route); still in flight, the next "
        "apply resumes it"
    ) in broken.stderr
    doctor = project.cli("doctor", "--product", TRAIL, "--format", "json")
    routes = json.loads(doctor.stdout)
    assert routes["settings"]["download_route"] == "comments"
    ok(apply(project, env={"VNTANA_DOWNLOAD_ROUTE": routes["settings"]["download_route"]}))
    assert project.triggers(TRAIL) == 1, "the render was fetched, not paid again"


def test_doctor_save_with_credentials(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    ok(project.cli("doctor", "--save"))  # the hint of 'doctor --sandbox --save', followed
    saved = (project.root / "reconciler.yaml").read_text()
    assert f"organization_uuid: {project.sandbox.organization_uuid}" in saved


def test_doctor_problems_trigger_nothing(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    result = project.cli("doctor", "--product", UNKNOWN_PRODUCT)
    assert result.returncode == 1 and hint(result) == "see each one above; nothing was triggered"
    assert project.triggers(UNKNOWN_PRODUCT) == 0 and project.triggers(TRAIL) == 0


# -- webhooks -------------------------------------------------------------------------------------


def test_a_bad_webhook_listen_value_follow_the_example(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    result = apply(project, "--webhook-listen", "8765")
    assert hint(result) == "for example --webhook-listen 127.0.0.1:8765 (port 0 takes any free one)"
    ok(apply(project, "--webhook-listen", "127.0.0.1:0"))


def test_a_webhook_port_in_use_choose_another(project: Project) -> None:
    project.write_manifest(manifest([TRAIL]))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = apply(project, "--webhook-listen", f"127.0.0.1:{port}")
    assert hint(result) == "choose another port with --webhook-listen HOST:PORT (port 0 takes any free one)"
    ok(apply(project, "--webhook-listen", "127.0.0.1:0"))


def test_webhooks_rm_with_nothing_named_list_them(project: Project) -> None:
    result = project.cli("webhooks", "rm")
    assert hint(result) == "'reconciler webhooks list' shows which webhooks are the reconciler's"
    listed = project.cli("webhooks", "list")
    ok(listed)
    assert "No webhooks in this organization." in listed.stdout


# -- the first run ----------------------------------------------------------------------------------


def test_the_first_run_says_where_the_files_are_and_a_plain_plan_points_at_the_sandbox(
    tmp_path: Path,
) -> None:
    root = tmp_path / "newcomer"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "catalogue.yaml").write_text(manifest([TRAIL, COURT]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VNTANA_", "RECONCILER_"))} | {
        "NO_COLOR": "1"
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05")
    ok(first)
    assert "Renders kept in downloads/sandbox/ (one folder per product uuid)." in first.stderr.splitlines()
    assert (root / "downloads" / "sandbox" / TRAIL).is_dir()
    plan = cli("plan")
    ok(plan)
    assert (
        "Note: state/renders.state.json (the state of the real VNTANA platform) does not exist yet, so this plan "
        "starts from nothing; the sandbox's renders are in state/sandbox.state.json: 'reconciler plan --sandbox' "
        "works with those."
    ) in plan.stderr
    followed = cli("plan", "--sandbox", "--detailed-exitcode")
    assert followed.returncode == 0 and "No changes" in followed.stdout
    assert "Note:" not in followed.stderr


# -- PostgreSQL ------------------------------------------------------------------------------------


def test_a_json_state_has_no_history_migrate_it(project: Project, pg_url: str) -> None:
    project.write_manifest(manifest([TRAIL]))
    ok(apply(project))
    result = project.cli("state", "history")
    assert hint(result) == (
        "a postgresql:// state keeps every serial: 'reconciler state migrate "
        "state/renders.state.json postgresql://HOST/DBNAME' copies it there; then pass that URL "
        "as --state"
    )
    ok(project.cli("state", "migrate", "state/renders.state.json", pg_url))
    history = project.cli("state", "history", "--state", pg_url)
    ok(history)


def test_a_postgresql_url_that_lost_a_slash_write_it_whole(project: Project, pg_url: str) -> None:
    project.write_manifest(manifest([TRAIL]))
    result = project.cli("plan", "--state", pg_url.replace("postgresql://", "postgresql:/", 1))
    assert (
        hint(result)
        == "write it as postgresql://HOST/DBNAME (or postgresql:// to take all from PG* variables)"
    )
    ok(project.cli("plan", "--state", pg_url))


def test_a_postgresql_workspace_with_a_bad_name_use_letters_and_digits(project: Project, pg_url: str) -> None:
    project.write_manifest(manifest([TRAIL]))
    base = pg_url.partition("#")[0]
    result = project.cli("plan", "--state", base + "#bad name!")
    assert hint(result) == "after '#': letters, digits, '_', '.', '-', up to 63 characters"
    ok(project.cli("plan", "--state", base + "#good_name-1"))


def test_a_postgresql_server_that_cannot_be_reached_check_the_url(project: Project, pg_url: str) -> None:
    project.write_manifest(manifest([TRAIL]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    result = project.cli("plan", "--state", f"postgresql://nobody@127.0.0.1:{dead}/none")
    assert hint(result).startswith("check the URL, the PG* variables and the server")
    ok(project.cli("plan", "--state", pg_url))


# -- GitHub ----------------------------------------------------------------------------------------


@pytest.fixture
def gh_step(tmp_path: Path):  # type: ignore[no-untyped-def]
    from tests.github.conftest import HEAD, PR, Step
    from tests.github.standin import GitHubStandIn

    with GitHubStandIn() as gh:
        gh.state.issue(PR).head_sha = HEAD
        root = tmp_path / "work"
        root.mkdir()
        yield Step(root, gh)


def test_github_step_summary_not_set_actions_sets_it(gh_step) -> None:  # type: ignore[no-untyped-def]
    planfile = gh_step.plan([TRAIL])
    result = gh_step.cli("github", "step-summary", str(planfile), env={"GITHUB_STEP_SUMMARY": ""})
    assert hint(result) == "GitHub Actions sets it in every step"
    ok(gh_step.cli("github", "step-summary", str(planfile)))
    assert gh_step.summary.read_text()


def test_github_token_missing_pass_it_to_the_step(gh_step) -> None:  # type: ignore[no-untyped-def]
    planfile = gh_step.plan([TRAIL])
    result = gh_step.cli("github", "plan-comment", str(planfile), env={"GITHUB_TOKEN": ""})
    assert hint(result).startswith("pass it to the step: env: GITHUB_TOKEN: ${{ github.token }}")
    ok(gh_step.cli("github", "plan-comment", str(planfile)))


def test_github_token_refused_pass_a_valid_one(gh_step) -> None:  # type: ignore[no-untyped-def]
    planfile = gh_step.plan([TRAIL])
    result = gh_step.cli("github", "plan-comment", str(planfile), env={"GITHUB_TOKEN": "expired"})
    assert hint(result) == "the token is missing or expired: pass GITHUB_TOKEN to the step"
    ok(gh_step.cli("github", "plan-comment", str(planfile)))


def test_github_repository_missing_export_it(gh_step) -> None:  # type: ignore[no-untyped-def]
    planfile = gh_step.plan([TRAIL])
    result = gh_step.cli("github", "plan-comment", str(planfile), env={"GITHUB_REPOSITORY": ""})
    assert hint(result) == "GitHub Actions sets it to OWNER/NAME; outside Actions, export it yourself"
    ok(gh_step.cli("github", "plan-comment", str(planfile), env={"GITHUB_REPOSITORY": "octo/catalogue"}))


def test_github_unknown_repository_check_it(gh_step) -> None:  # type: ignore[no-untyped-def]
    planfile = gh_step.plan([TRAIL])
    result = gh_step.cli("github", "plan-comment", str(planfile), env={"GITHUB_REPOSITORY": "octo/catalog"})
    assert hint(result) == "check GITHUB_REPOSITORY and the pull request number"
    ok(gh_step.cli("github", "plan-comment", str(planfile), env={"GITHUB_REPOSITORY": "octo/catalogue"}))


def test_github_api_unreachable_check_the_url(gh_step) -> None:  # type: ignore[no-untyped-def]
    planfile = gh_step.plan([TRAIL])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    started = time.monotonic()
    result = gh_step.cli(
        "github", "plan-comment", str(planfile), env={"GITHUB_API_URL": f"http://127.0.0.1:{dead}"}
    )
    assert hint(result) == "check GITHUB_API_URL and the runner's network", time.monotonic() - started
    ok(gh_step.cli("github", "plan-comment", str(planfile)))
