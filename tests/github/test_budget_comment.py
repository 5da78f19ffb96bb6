"""A plan over budget on a pull request: the Action's plan step still comments it, marked as
refused, then fails, as for a plan the large-change breaker refuses (docs/gitops.md)."""

from __future__ import annotations

from tests.github.conftest import PR
from tests.github.test_action import ActionStep, action  # noqa: F401 - the fixture, shared


def test_a_plan_over_budget_is_commented_as_refused_and_the_step_fails(action: ActionStep) -> None:  # noqa: F811
    (action.step.root / "reconciler.yaml").write_text("budget:\n  max_frames: 8\n")
    done = action.run(command="plan")
    assert done.returncode == 1
    assert "Error: refusing a plan over budget: 10 frames, more than the budget of 8" in done.stderr
    (comment,) = action.step.gh.state.comments(PR)
    assert (
        "> [!CAUTION]\n> Over budget (refused without --allow-over-budget): 10 frames, more than the budget "
        "of 8 (budget.max_frames in " in comment["body"]
    )
    assert not (action.step.root / "reconciler-plan.json").exists()  # nothing saved to apply

    done = action.run(command="plan", extra_args="--allow-over-budget")
    assert done.returncode == 0, done.stdout + done.stderr
    (comment,) = action.step.gh.state.comments(PR)  # the same sticky comment, updated
    assert "Over budget (allowed by --allow-over-budget): 10 frames" in comment["body"]
