"""``reconciler github …``: the GitHub side of the GitOps kit, as thin commands.

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
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.cli.options import manifest_paths, manifests_option
from reconciler.errors import ConfigError, ManifestError, ReconcilerError
from reconciler.github.context import GitHubContext, write_outputs
from reconciler.github.publish import (
    CommentResult,
    append_step_summary,
    author_filter,
    publish_check_run,
    sync_comments,
    sync_labels,
)
from reconciler.github.rest import GitHubApi, GitHubError
from reconciler.loader import load_desired
from reconciler.planfile import load_plan
from reconciler.views.github import (
    APPLY_MARKER,
    COMMENT_BUDGET,
    PLAN_MARKER,
    Links,
    annotation_lines,
    apply_report_markdown,
    check_run_annotations,
    cut_markdown,
    diagnostics_markdown,
    labels_for,
    marker,
    parse_apply_stream,
    plan_comment_bodies,
    workflow_command,
)
from reconciler.views.plan import render_markdown

F = TypeVar("F", bound=Callable[..., Any])
_KEY = re.compile(r"^[A-Za-z0-9._/-]{1,64}$")
DEFAULT_MAX_PARTS = 5


def _in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _annotated(f: F) -> F:
    """Inside Actions, a failure also becomes an error annotation on the run, not only a log line."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ReconcilerError as exc:
            if _in_actions() and not isinstance(exc, ManifestError):  # manifest errors are annotated per line
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
    ctx = GitHubContext.from_env(os.environ)
    plan = load_plan(planfile)
    if step_summary:
        _summary(ctx, render_markdown(plan, budget=1 << 62))
    number = pr_number or ctx.pull_request_number()
    if number is None:
        _notice(
            f"{ctx.event_name or 'this'} event is not about a pull request: no comment"
            + (" (the plan is in the job summary)" if step_summary and ctx.step_summary else "")
        )
        return
    repo, token = ctx.require_repository(), ctx.require_token()
    links = Links(details_url or ctx.triggering_run_url() or ctx.run_url, artifact_url)
    with GitHubApi(ctx.api_url, ctx.graphql_url, token) as api:
        if (
            pr_number is not None
            and ctx.event_name == "workflow_run"
            and not _same_head(api, ctx, repo, number)
        ):
            return
        result = CommentResult()
        if when != "never":
            bodies = plan_comment_bodies(
                plan, key=key, max_parts=max_parts, links=links, footer=_footer(ctx, key)
            )
            result = sync_comments(
                api,
                repo,
                number,
                bodies,
                kind=PLAN_MARKER,
                key=key,
                author=author_filter(comment_author),
                create=plan.has_changes or when == "always",
            )
            _report("Plan comment", number, result, len(bodies))
        if labels:
            wanted = labels_for(plan)
            done = sync_labels(api, repo, number, wanted)
            click.echo(
                f"Labels on #{number}: {', '.join(sorted(wanted))}"
                + (f" (added {', '.join(done.added)})" if done.added else "")
                + (f" (removed {', '.join(done.removed)})" if done.removed else "")
            )
    write_outputs(
        ctx,
        {
            "comment-url": result.first_url or "",
            "pull-request": number,
            "has-changes": str(plan.has_changes).lower(),
        },
    )
    if result.errors:
        raise GitHubError("; ".join(result.errors))


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
    ctx = GitHubContext.from_env(os.environ)
    try:
        text = events.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""  # the apply died before writing anything: still a report, saying so
    except OSError as exc:
        raise ReconcilerError(f"cannot read the apply output {events}: {exc.strerror}") from exc
    run = parse_apply_stream(text)
    report = apply_report_markdown(
        run, exit_code=exit_code, footer=_footer(ctx, key), error=_error_lines(log)
    )
    if step_summary:
        _summary(ctx, report, rest="The apply's event stream (--format json) has them all.")
    if not comment:
        return
    repo = ctx.require_repository()
    with GitHubApi(ctx.api_url, ctx.graphql_url, ctx.require_token()) as api:
        number = pr_number or ctx.pull_request_number() or _merged_pull(api, ctx, repo)
        if number is None:
            _notice(
                f"commit {ctx.sha or '?'} belongs to no pull request: the apply report is in the job summary only"
            )
            return
        mark = marker(APPLY_MARKER, key)
        body = f"{mark}\n" + cut_markdown(
            report, COMMENT_BUDGET - len(mark) - 1, what="product", rest="The job summary has them all."
        )
        result = sync_comments(
            api, repo, number, [body], kind=APPLY_MARKER, key=key, author=author_filter(comment_author)
        )
        _report("Apply comment", number, result, 1)
    write_outputs(ctx, {"comment-url": result.first_url or "", "pull-request": number})
    if result.errors:
        raise GitHubError("; ".join(result.errors))


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
    ctx = GitHubContext.from_env(os.environ)
    try:
        desired = load_desired(manifest_paths(manifests))
    except ManifestError as exc:
        diags, more = exc.diagnostics, int(getattr(exc, "more", 0))
        paths = [ctx.repo_path(d.location.file) for d in diags]
        for line in annotation_lines(diags, paths, more=more):
            click.echo(line)
        table = diagnostics_markdown(diags, paths, more=more)
        if step_summary:
            _summary(ctx, table, what="error", rest="'reconciler validate' lists them all.")
        if check_run:
            _check_run(
                ctx,
                check_run,
                f"{len(diags) + more} error(s) in manifests",
                table,
                check_run_annotations(diags, paths),
            )
        raise
    message = f"OK: {len(desired.products)} products in {len(desired.files)} file(s)."
    click.echo(message)
    if step_summary and ctx.step_summary is not None:
        _summary(ctx, f"### reconciler validate\n\n{message}\n")
    if check_run:
        _check_run(ctx, check_run, "Manifests are valid", message, [])


@github_group.command("step-summary")
@click.argument("planfile", type=click.Path(path_type=Path, dir_okay=False))
@_annotated
def step_summary_command(planfile: Path) -> None:
    """Write a saved plan to the job summary ($GITHUB_STEP_SUMMARY), cut under 1 MiB. No token needed."""
    ctx = GitHubContext.from_env(os.environ)
    if ctx.step_summary is None:
        raise ConfigError("GITHUB_STEP_SUMMARY is not set", hint="GitHub Actions sets it in every step")
    _summary(ctx, render_markdown(load_plan(planfile), budget=1 << 62))


def _summary(
    ctx: GitHubContext, markdown: str, *, what: str = "product", rest: str = "The saved plan has them all."
) -> None:
    if ctx.step_summary is None:
        return
    written = append_step_summary(ctx.step_summary, markdown, what=what, rest=rest)
    click.echo(f"Job summary: {written:,} bytes written to {ctx.step_summary}.")


def _check_run(
    ctx: GitHubContext, name: str, title: str, summary: str, annotations: list[dict[str, Any]]
) -> None:
    head = ctx.head_sha()
    if head is None:
        raise ConfigError("--check-run needs the commit: GITHUB_SHA is not set")
    with GitHubApi(ctx.api_url, ctx.graphql_url, ctx.require_token()) as api:
        run = publish_check_run(
            api,
            ctx.require_repository(),
            name=name,
            head_sha=head,
            title=title,
            summary=summary,
            annotations=annotations,
        )
    click.echo(
        f"Check run {name!r}: {len(annotations)} annotation(s) at {run.get('html_url', run.get('id'))}."
    )


def _same_head(api: GitHubApi, ctx: GitHubContext, repo: str, number: int) -> bool:
    """For ``workflow_run``: the pull request number came from an artifact, which a fork controls.
    Comment only if that pull request's head is the commit the plan was made for."""
    expected = ctx.head_sha()
    head = (api.pull(repo, number).get("head") or {}).get("sha")
    if expected and head == expected:
        return True
    text = (
        f"not commenting on #{number}: its head is {str(head)[:12]}, but the plan was made for "
        f"{str(expected)[:12]} (a newer push has its own run, or the number is wrong)"
    )
    click.echo(
        workflow_command("warning", text, title="reconciler github") if _in_actions() else f"Warning: {text}"
    )
    return False


def _merged_pull(api: GitHubApi, ctx: GitHubContext, repo: str) -> int | None:
    """The pull request a pushed commit came from (``push`` events carry no number)."""
    if ctx.sha is None:
        return None
    pulls = api.pulls_for_commit(repo, ctx.sha)
    for pull in pulls:
        if pull.get("merge_commit_sha") == ctx.sha:
            return int(pull["number"])
    merged = [p for p in pulls if p.get("merged_at")]
    return int((merged or pulls)[0]["number"]) if (merged or pulls) else None


def _error_lines(log: Path | None) -> str | None:
    """The CLI's own ``Error:``/``Hint:`` lines from a saved stderr (they never hold secrets)."""
    if log is None:
        return None
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    picked = [line for line in lines if line.startswith(("Error: ", "Hint: "))][-4:]
    return "\n".join(picked)[:4000] or None


def _footer(ctx: GitHubContext, key: str) -> str:
    bits = ["reconciler"]
    if key != "default":
        bits.append(f"`{key}`")
    head = ctx.head_sha()
    if head:
        bits.append(f"commit {head[:7]}")
    if ctx.run_url:
        bits.append(f"[run {ctx.run_id}]({ctx.run_url})")
    return "<sub>" + " · ".join(bits) + "</sub>"


def _report(what: str, number: int, result: CommentResult, parts: int) -> None:
    done = [
        f"{len(v)} {k}"
        for k, v in (
            ("created", result.created),
            ("updated", result.updated),
            ("unchanged", result.unchanged),
            ("superseded", result.superseded),
        )
        if v
    ]
    if not done:
        click.echo(f"{what} on #{number}: nothing to post (no changes; use --comment always to post anyway).")
        return
    click.echo(
        f"{what} on #{number} ({parts} part{'s' if parts != 1 else ''}): {', '.join(done)}"
        + (f": {result.first_url}" if result.first_url else ".")
    )


def _notice(text: str) -> None:
    click.echo(workflow_command("notice", text, title="reconciler github") if _in_actions() else text)
