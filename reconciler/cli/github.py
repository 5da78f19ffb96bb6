"""``reconciler github …``: the GitHub side of the GitOps kit, as thin commands over reconciler.github.actions.

    plan-comment PLANFILE   the saved plan as the pull request's sticky comment, its labels,
                            and the job summary
    apply-comment EVENTS    the report of ``apply --format json`` (read from a file) as a comment
    annotate                ``validate`` with every error as a file:line annotation
    step-summary PLANFILE   the plan in the job summary only (no token needed)

Inputs come from files and from the variables Actions sets (``context.py``); a failure is
never silent: it exits 1 with a message, and inside Actions also as an error annotation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.cli.options import manifest_paths, manifests_option
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.github.actions import (
    DEFAULT_MAX_PARTS,
    ApplyCommentRequest,
    PlanCommentRequest,
    Posting,
    in_actions,
    post_apply_report,
    post_plan,
    write_plan_summary,
)
from reconciler.github.actions import (
    annotate as annotate_manifests,
)
from reconciler.views.github import workflow_command

F = TypeVar("F", bound=Callable[..., Any])
_KEY = re.compile(r"^[A-Za-z0-9._/-]{1,64}$")


def _annotated(f: F) -> F:
    """Inside Actions, a failure also becomes an error annotation on the run, not only a log line."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ReconcilerError as exc:
            if in_actions() and not isinstance(exc, ManifestError):  # manifest errors are annotated per line
                click.echo(
                    workflow_command(
                        "error",
                        exc.message + (f" ({exc.hint})" if exc.hint else ""),
                        title="reconciler github",
                    )
                )
            raise

    return wrapper  # type: ignore[return-value]


def _key(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _KEY.match(value):
        raise click.BadParameter("letters, digits and . _ / - only (at most 64)")
    return value


def common_options(f: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--pr",
                "pr_number",
                type=click.IntRange(min=1),
                help="Pull request number (default: from the event payload).",
            ),
            click.option(
                "--key",
                default="default",
                show_default=True,
                callback=_key,
                help="Which sticky comment: one per key, e.g. one per catalogue in a monorepo.",
            ),
            click.option(
                "--comment-author",
                metavar="LOGIN",
                help="Only this account's comments are ours (default: any bot account, such as "
                "github-actions[bot]). Set it when the token is a person's.",
            ),
            click.option(
                "--step-summary/--no-step-summary",
                default=True,
                show_default=True,
                help="Also write the full text to $GITHUB_STEP_SUMMARY (cut under 1 MiB).",
            ),
        ]
    ):
        f = decorator(f)
    return f


@click.group("github")
def github_group() -> None:
    """Pull-request comments, labels, annotations and job summaries on GitHub (for GitHub Actions)."""


@github_group.command("plan-comment")
@click.argument("planfile", type=click.Path(path_type=Path, dir_okay=False))
@common_options
@click.option(
    "--comment",
    "when",
    type=click.Choice(["changes", "always", "never"]),
    default="changes",
    show_default=True,
    help="changes: comment only when the plan has changes (an existing comment is "
    "always brought up to date); always; never (labels and summary only).",
)
@click.option(
    "--max-parts",
    type=click.IntRange(1, 50),
    default=DEFAULT_MAX_PARTS,
    show_default=True,
    help="Most comments one plan may take; a longer plan is posted as its summary with links.",
)
@click.option(
    "--labels/--no-labels",
    default=True,
    show_default=True,
    help="Set the renders:* labels of the pull request from the plan, removing stale ones.",
)
@click.option(
    "--details-url",
    help="Where the full plan can be read (default: this run's page, whose job "
    "summary has it; for workflow_run, the run that made the plan).",
)
@click.option("--artifact-url", help="The uploaded plan artifact (upload-artifact's artifact-url output).")
@_annotated
def plan_comment(
    planfile: Path,
    pr_number: int | None,
    key: str,
    comment_author: str | None,
    step_summary: bool,
    when: str,
    max_parts: int,
    labels: bool,
    details_url: str | None,
    artifact_url: str | None,
) -> None:
    """Post a saved plan (reconciler plan --out FILE) on its pull request."""
    post_plan(
        PlanCommentRequest(
            planfile=planfile,
            posting=Posting(pr_number, key, comment_author, step_summary),
            when=when,
            max_parts=max_parts,
            labels=labels,
            details_url=details_url,
            artifact_url=artifact_url,
        ),
        click.echo,
    )


@github_group.command("apply-comment")
@click.argument("events", type=click.Path(path_type=Path, dir_okay=False))
@common_options
@click.option("--exit-code", "exit_code", type=int, help="The apply command's exit code, for the report.")
@click.option(
    "--comment/--no-comment",
    default=True,
    show_default=True,
    help="--no-comment: the job summary only (no token needed).",
)
@click.option(
    "--log",
    "log",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The apply's stderr, saved to a file: its Error: and Hint: lines go into the report.",
)
@_annotated
def apply_comment(
    events: Path,
    pr_number: int | None,
    key: str,
    comment_author: str | None,
    step_summary: bool,
    exit_code: int | None,
    comment: bool,
    log: Path | None,
) -> None:
    """Report what an apply rendered, failed and cost, from its 'apply --format json' output file."""
    post_apply_report(
        ApplyCommentRequest(
            events=events,
            posting=Posting(pr_number, key, comment_author, step_summary),
            exit_code=exit_code,
            comment=comment,
            log=log,
        ),
        click.echo,
    )


@github_group.command("annotate")
@manifests_option
@click.option(
    "--check-run",
    "check_run",
    metavar="NAME",
    help="Also publish every error on a check run of this name, 50 annotations per request "
    "(needs 'checks: write'); workflow commands alone show 10 per step.",
)
@click.option("--step-summary/--no-step-summary", default=True, show_default=True)
@_annotated
def annotate(manifests: tuple[Path, ...], check_run: str | None, step_summary: bool) -> None:
    """Validate manifests; print each error as a GitHub annotation at its file and line (exit 1)."""
    annotate_manifests(manifest_paths(manifests), check_run, step_summary, click.echo)


@github_group.command("step-summary")
@click.argument("planfile", type=click.Path(path_type=Path, dir_okay=False))
@_annotated
def step_summary_command(planfile: Path) -> None:
    """Write a saved plan to the job summary ($GITHUB_STEP_SUMMARY), cut under 1 MiB. No token needed."""
    write_plan_summary(planfile, click.echo)
