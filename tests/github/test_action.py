"""The composite Action (action.yml): its shape, and its main step's script run by bash as a runner would,
against the GitHub stand-in and the sandbox."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.sandbox.server import EmbeddedSandbox
from tests.e2e.conftest import PRODUCTS, TINY_DEFAULTS, fast_config, manifest
from tests.github.conftest import PR, Step, pr_event

ROOT = Path(__file__).resolve().parents[2]
ACTION = YAML(typ="safe").load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def test_the_action_is_composite_and_passes_inputs_through_env_only() -> None:
    assert ACTION["runs"]["using"] == "composite"
    inputs = set(ACTION["inputs"])
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), "expressions in run: are a script-injection risk"
        for value in (step.get("env") or {}).values():
            for expr in EXPRESSION.findall(str(value)):
                if expr.startswith("inputs."):
                    assert expr.removeprefix("inputs.") in inputs, expr
    used = {
        m.removeprefix("inputs.")
        for m in EXPRESSION.findall((ROOT / "action.yml").read_text())
        if m.startswith("inputs.")
    }
    assert used == inputs  # no input is declared and ignored
    for name, output in ACTION["outputs"].items():
        assert output["value"] == f"${{{{ steps.run.outputs.{name} }}}}"


def test_the_action_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (.ci/run installs it from Debian)")
    for step in ACTION["runs"]["steps"]:
        if "run" in step:
            done = subprocess.run(
                ["shellcheck", "-s", "bash", "-"], input=step["run"], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stdout


def _script() -> tuple[str, dict[str, str]]:
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "run"]
    return step["run"], step["env"]


class ActionStep:
    """The Action's main step, as the runner would run it: bash, the env: block resolved, a venv in RUNNER_TEMP."""

    def __init__(self, step: Step) -> None:
        self.step = step
        self.temp = step.root.parent / "runner-temp"
        bin_dir = self.temp / "reconciler-venv" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        shim = bin_dir / "reconciler"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m reconciler "$@"\n')
        shim.chmod(0o755)

    def run(
        self,
        event: dict[str, Any] | None = None,
        event_name: str = "pull_request",
        extra_env: dict[str, str] | None = None,
        **inputs: str,
    ) -> subprocess.CompletedProcess[str]:
        script, env_block = _script()
        values = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        values.update({k.replace("_", "-"): v for k, v in inputs.items()})
        values["github-token"] = self.step.gh.state.token

        def resolve(text: str) -> str:
            return EXPRESSION.sub(lambda m: values[m.group(1).removeprefix("inputs.")], text)

        self.step.run_id += 1
        env = self.step.env(pr_event() if event is None else event, event_name, extra_env)
        env.update({k: resolve(str(v)) for k, v in env_block.items()})
        env["RUNNER_TEMP"] = str(self.temp)
        return subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=self.step.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def outputs(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.step.outputs.read_text().splitlines():
            key, _, value = line.partition("=")
            out[key] = value
        return out


@pytest.fixture
def action(step: Step) -> ActionStep:
    (step.root / "manifests").mkdir()
    (step.root / "manifests" / "catalogue.yaml").write_text(
        manifest({k: PRODUCTS[k] for k in ("trail", "court")})
    )
    return ActionStep(step)


def test_plan_on_a_pull_request_comments_labels_and_sets_outputs(action: ActionStep) -> None:
    done = action.run(command="plan", state="state/renders.state.json")
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = action.outputs()
    assert outputs["exit-code"] == "2" and outputs["has-changes"] == "true"
    assert (
        outputs["plan-file"] == "reconciler-plan.json"
        and (action.step.root / "reconciler-plan.json").exists()
    )
    assert outputs["comment-url"].startswith("https://github.com/octo/catalogue/pull/7#issuecomment-")
    (comment,) = action.step.gh.state.comments(PR)
    assert "**Plan: 2 to render" in comment["body"]
    assert action.step.gh.state.issue(PR).labels == ["renders:new"]
    assert "### reconciler plan" in action.step.summary.read_text()


def test_plan_then_comment_with_the_artifact_link(action: ActionStep) -> None:
    assert action.run(command="plan", comment="never").returncode == 0
    assert action.step.gh.state.comments(PR) == []
    summary = action.step.summary.read_text()
    done = action.run(command="comment", artifact_url="https://example.test/a/1", max_comment_parts="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(action.step.gh.state.comments(PR)) == 1
    assert action.step.summary.read_text() == summary  # the plan step wrote it; comment does not repeat it


def test_a_drift_check_fails_the_step_on_changes(action: ActionStep) -> None:
    done = action.run(command="plan", fail_on_changes="true", event={}, event_name="schedule")
    assert done.returncode == 2
    assert "::error title=reconciler plan::the plan has changes" in done.stdout
    assert action.step.gh.state.requests == []  # not a pull request: the job summary only
    assert "**Plan: 2 to render" in action.step.summary.read_text()


def test_only_the_chosen_categories_count_as_changes(action: ActionStep) -> None:
    done = action.run(
        command="plan", exit_code_on="drift", fail_on_changes="true", event={}, event_name="schedule"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert action.outputs()["has-changes"] == "false"


def test_validate_annotates_and_fails(action: ActionStep) -> None:
    (action.step.root / "manifests" / "catalogue.yaml").write_text(
        TINY_DEFAULTS.format(gif="true") + "products:\n  - uuid: nope\n"
    )
    done = action.run(command="validate")
    assert done.returncode == 1
    assert "::error file=manifests/catalogue.yaml,line=12,col=11,title=reconciler validate::" in done.stdout
    done = action.run(command="plan")
    assert done.returncode == 1 and "::error file=manifests/catalogue.yaml" in done.stdout


def test_an_unknown_command_is_named(action: ActionStep) -> None:
    done = action.run(command="deploy")
    assert done.returncode == 1
    assert (
        "::error title=reconciler::command must be validate, plan, comment or apply, not 'deploy'"
        in done.stdout
    )


def test_manifests_and_extra_args_are_never_evaluated(action: ActionStep) -> None:
    done = action.run(command="plan", manifests="manifests\n$(touch pwned)")
    assert done.returncode == 1 and "$(touch pwned): no such file or directory" in done.stderr
    done = action.run(command="plan", extra_args="--max-batch-size 7 ;touch x")
    assert done.returncode == 1 and "Got unexpected extra arguments (;touch x)" in done.stderr
    assert not (action.step.root / "pwned").exists() and not (action.step.root / "x").exists()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[EmbeddedSandbox]:
    with EmbeddedSandbox(data_dir=tmp_path / "platform", config=fast_config()) as sb:
        yield sb


def test_apply_applies_the_saved_plan_and_reports_on_the_pull_request(
    action: ActionStep, platform: EmbeddedSandbox
) -> None:
    assert action.run(command="plan", comment="never").returncode == 0
    creds = {
        "vntana_api_token": platform.access_token,
        "vntana_organization": platform.organization_uuid,
        "vntana_api_url": platform.url,
        "extra_args": "--poll-interval 0.05 --timeout 30",
    }
    done = action.run(command="apply", state="state/renders.state.json", **creds)
    assert done.returncode == 0, done.stdout + done.stderr
    assert action.outputs()["exit-code"] == "0"
    state = action.step.root / "state" / "renders.state.json"
    assert state.exists()
    (report,) = action.step.gh.state.comments(PR)
    assert "All 2 product(s) rendered and recorded." in report["body"]
    assert platform.access_token not in done.stdout + done.stderr + report["body"]
    # The same saved plan again: the state moved, so apply refuses it, and the report says why.
    done = action.run(command="apply", state="state/renders.state.json", **creds)
    assert done.returncode == 1
    (report,) = action.step.gh.state.comments(PR)
    assert "saved plan is stale" in report["body"] and "exit code 1" in report["body"]
    assert os.path.getsize(state) > 0


def test_a_plan_the_breaker_refuses_is_still_shown_on_the_pull_request(
    action: ActionStep, platform: EmbeddedSandbox
) -> None:
    assert action.run(command="plan", comment="never").returncode == 0
    creds = {
        "vntana_api_token": platform.access_token,
        "vntana_organization": platform.organization_uuid,
        "vntana_api_url": platform.url,
        "extra_args": "--poll-interval 0.05 --timeout 30",
    }
    assert action.run(command="apply", comment="never", **creds).returncode == 0
    (action.step.root / "manifests" / "catalogue.yaml").write_text(
        manifest({k: PRODUCTS[k] for k in ("trail", "court")}, gif=False)
    )
    done = action.run(command="plan", extra_args="--max-rerender-share 0.1")
    assert done.returncode == 1
    assert "Error: refusing a large change: re-renders 2 of 2 products" in done.stderr
    (comment,) = action.step.gh.state.comments(PR)
    assert (
        "> [!CAUTION]\n> Large change (refused without --allow-large): re-renders 2 of 2" in comment["body"]
    )
    assert "2 product(s) lose existing files" in comment["body"]
    assert sorted(action.step.gh.state.issue(PR).labels) == ["renders:delete", "renders:spec"]
    assert not (action.step.root / "reconciler-plan.json").exists()  # nothing saved to apply
