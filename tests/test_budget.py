"""Budgets: ``budget:`` in reconciler.yaml and the --max-* flags, and how ``plan`` refuses a plan
over them (docs/plan-format.md, "Budgets"). Offline: the real CLI through click's runner.
Applying (a fresh plan, and a saved one checked again) is in tests/e2e/test_budget.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.errors import ConfigError
from reconciler.settings import configured_budget, resolve_budget

A = "58472097-fec0-516d-8326-f7a5eb192f2c"
B = "5125135c-e9b4-5b10-a8ed-fe17af538c64"
CATALOGUE = f"""\
defaults:
  imageWidth: 1200
  imageHeight: 1200
  imageFormat: PNG
  turntable:
    includeGif: true
    imageCount: 36
    frameRate: 12
    width: 720
    height: 720
products:
  - uuid: {A}
  - uuid: {B}
"""  # 1 request, 2 x 37 = 74 frames, 6 s of video


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reconciler.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the config file --------------------------------------------------------------------------


def test_the_budget_is_read_with_the_line_of_each_limit(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        "api_url: https://example.com\nbudget:\n  max_frames: 100000\n  max_video_seconds: 90.5\n"
        "  max_requests:\n",
    )
    limits, sources = configured_budget(path)
    assert limits == {"max_frames": 100000, "max_video_seconds": 90.5}
    assert sources == {
        "max_frames": f"budget.max_frames in {path}:3",
        "max_video_seconds": f"budget.max_video_seconds in {path}:4",
    }
    assert type(limits["max_frames"]) is int and type(limits["max_video_seconds"]) is float


def test_flags_override_the_file_limit_by_limit(tmp_path: Path) -> None:
    path = config(tmp_path, "budget:\n  max_frames: 100\n  max_requests: 5\n")
    budget = resolve_budget({"max_frames": 7, "max_requests": None, "max_video_seconds": None}, path)
    assert (budget.max_frames, budget.max_requests, budget.max_video_seconds) == (7, 5, None)
    assert budget.sources == {
        "max_frames": "--max-frames",
        "max_requests": f"budget.max_requests in {path}:3",
    }
    assert resolve_budget({}, None).sources == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budget:\n  max_frame: 1\n", "{path}:2: unknown budget limit 'max_frame'"),
        ("budget:\n  frames: 1\n", "{path}:2: unknown budget limit 'frames'"),
        (
            "budget:\n  max_frames: -1\n",
            "{path}:2: budget.max_frames must be a whole number, at least 0, got -1",
        ),
        (
            "budget:\n  max_frames: 1.5\n",
            "{path}:2: budget.max_frames must be a whole number, at least 0, got 1.5",
        ),
        (
            "budget:\n  max_requests: true\n",
            "{path}:2: budget.max_requests must be a whole number, at least 0, got True",
        ),
        (
            "budget:\n  max_requests: '10'\n",
            "{path}:2: budget.max_requests must be a whole number, at least 0, got '10'",
        ),
        (
            "budget:\n  max_video_seconds: .inf\n",
            "{path}:2: budget.max_video_seconds must be a number of seconds, at least 0, got inf",
        ),
        ("budget: 1000\n", "{path}:1: budget must be a mapping of limits"),
    ],
)
def test_a_bad_budget_names_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        configured_budget(path)
    assert info.value.message == message.format(path=path)


def test_a_misspelt_limit_gets_the_right_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        configured_budget(config(tmp_path, "budget:\n  max_frame: 1\n"))
    assert info.value.hint == "did you mean 'max_frames'?"


def test_no_budget_means_no_limit(tmp_path: Path) -> None:
    assert configured_budget(config(tmp_path, "budget:\n")) == ({}, {})
    assert configured_budget(None) == ({}, {})


# -- reconciler plan --------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "catalogue.yaml").write_text(CATALOGUE)
    monkeypatch.chdir(tmp_path)  # reconciler.yaml is read from the working directory
    return tmp_path


def plan(*args: str) -> Result:
    return CliRunner().invoke(
        cli, ["plan", "--state", "state/renders.state.json", *args], catch_exceptions=False
    )


def test_a_plan_over_the_budget_of_reconciler_yaml_is_shown_then_refused(project: Path) -> None:
    config(project, "budget:\n  max_frames: 50\n")
    result = plan("--format", "json", "--out", "plan.json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)  # the plan is still printed, for the pull request
    assert data["over_budget"] == [
        f"74 frames, more than the budget of 50 (budget.max_frames in {project / 'reconciler.yaml'}:2)"
    ]
    assert data["budget"]["max_frames"] == 50 and data["allow_over_budget"] is False
    assert result.stderr.startswith(
        "Error: refusing a plan over budget: 74 frames, more than the budget of 50"
    )
    assert "--allow-over-budget" in result.stderr
    assert "Traceback" not in result.output
    assert not (project / "plan.json").exists()  # nothing saved to apply


def test_a_flag_overrides_the_budget_of_the_file(project: Path) -> None:
    config(project, "budget:\n  max_frames: 50\n")
    result = plan("--max-frames", "74")
    assert result.exit_code == 0, result.output
    assert "Within budget: 74 of 74 frames." in result.stdout


@pytest.mark.parametrize(
    ("flag", "value", "over"),
    [
        ("--max-requests", "0", "1 render request, more than the budget of 0 (--max-requests)"),
        ("--max-video-seconds", "5.5", "6 s of video, more than the budget of 5.5 s (--max-video-seconds)"),
    ],
)
def test_each_budget_flag_refuses_a_plan_over_it(project: Path, flag: str, value: str, over: str) -> None:
    result = plan(flag, value, "--format", "markdown")
    assert result.exit_code == 1
    assert f"> [!CAUTION]\n> Over budget (refused without --allow-over-budget): {over}\n" in result.stdout
    assert over in result.stderr


def test_allow_over_budget_saves_a_plan_that_records_the_budget_and_the_allowance(project: Path) -> None:
    result = plan("--max-frames", "10", "--allow-over-budget", "--out", "plan.json", "--detailed-exitcode")
    assert result.exit_code == 2, result.output  # changes, and not an error
    assert "Over budget (allowed by --allow-over-budget): 74 frames" in result.stdout
    saved = json.loads((project / "plan.json").read_text())
    assert saved["budget"] == {
        "max_frames": 10,
        "max_requests": None,
        "max_video_seconds": None,
        "sources": {"max_frames": "--max-frames"},
    }
    assert saved["allow_over_budget"] is True and len(saved["over_budget"]) == 1


def test_a_plan_that_triggers_nothing_is_never_over_budget(project: Path) -> None:
    (project / "manifests" / "catalogue.yaml").write_text("products: []\n")
    assert plan("--max-frames", "0", "--max-requests", "0").exit_code == 0


def test_the_sandbox_does_not_read_the_budget_of_reconciler_yaml(project: Path) -> None:
    config(project, "budget:\n  max_frames: 1\n")
    result = CliRunner().invoke(cli, ["plan", "--sandbox"], catch_exceptions=False)
    assert result.exit_code == 0, result.output  # its renders cost nothing; flags still apply
    assert CliRunner().invoke(cli, ["plan", "--sandbox", "--max-frames", "1"]).exit_code == 1


def test_a_broken_budget_in_reconciler_yaml_stops_the_plan_with_its_line(project: Path) -> None:
    config(project, "budget:\n  max_frames: lots\n")
    result = plan()
    assert result.exit_code == 1
    assert (
        "reconciler.yaml:2: budget.max_frames must be a whole number, at least 0, got 'lots'" in result.stderr
    )
