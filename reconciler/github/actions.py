"""The work of ``reconciler github …`` (reconciler.cli.github parses the options): post a saved plan
on its pull request, report an apply, annotate manifest errors, write the job summary.

Each takes a typed request and a ``say`` callable for the lines it prints (notices, what was
posted, workflow commands inside Actions); the text posted is made by reconciler.views.github.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

Say = Callable[[str], None]
"""Where a command's lines go (the CLI prints them)."""
DEFAULT_MAX_PARTS = 5


@dataclass(frozen=True)
class Posting:
    """Which pull request and which sticky comment (the options every posting command shares)."""

    pr_number: int | None = None
    key: str = "default"
    comment_author: str | None = None
    step_summary: bool = True


@dataclass(frozen=True)
class PlanCommentRequest:
    planfile: Path
    posting: Posting = Posting()
    when: str = "changes"
    """changes, always or never."""
    max_parts: int = DEFAULT_MAX_PARTS
    labels: bool = True
    details_url: str | None = None
    artifact_url: str | None = None


@dataclass(frozen=True)
class ApplyCommentRequest:
    events: Path
    posting: Posting = Posting()
    exit_code: int | None = None
    comment: bool = True
    log: Path | None = None


def post_plan(req: PlanCommentRequest, say: Say) -> None:
    """``github plan-comment``: the saved plan as the pull request's sticky comment, its labels and
    the job summary; GitHubError naming what could not be posted."""
    planfile, pr_number, key, comment_author, step_summary = (
        req.planfile,
        req.posting.pr_number,
        req.posting.key,
        req.posting.comment_author,
        req.posting.step_summary,
    )
    when, max_parts, labels, details_url, artifact_url = (
        req.when,
        req.max_parts,
        req.labels,
        req.details_url,
        req.artifact_url,
    )
    ctx = GitHubContext.from_env(os.environ)
    plan = load_plan(planfile)
    if step_summary:
        _summary(ctx, render_markdown(plan, budget=1 << 62), say=say)
    number = pr_number or ctx.pull_request_number()
    if number is None:
        _notice(
            f"{ctx.event_name or 'this'} event is not about a pull request: no comment"
            + (" (the plan is in the job summary)" if step_summary and ctx.step_summary else ""),
            say=say,
        )
        return
    repo, token = ctx.require_repository(), ctx.require_token()
    links = Links(details_url or ctx.triggering_run_url() or ctx.run_url, artifact_url)
    with GitHubApi(ctx.api_url, ctx.graphql_url, token) as api:
        if (
            pr_number is not None
            and ctx.event_name == "workflow_run"
            and not _same_head(api, ctx, repo, number, say=say)
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
            _report("Plan comment", number, result, len(bodies), say=say)
        if labels:
            wanted = labels_for(plan)
            done = sync_labels(api, repo, number, wanted)
            say(
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


def post_apply_report(req: ApplyCommentRequest, say: Say) -> None:
    """``github apply-comment``: what an apply rendered, failed and cost, from its JSON event stream."""
    events, pr_number, key, comment_author, step_summary = (
        req.events,
        req.posting.pr_number,
        req.posting.key,
        req.posting.comment_author,
        req.posting.step_summary,
    )
    exit_code, comment, log = req.exit_code, req.comment, req.log
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
        _summary(ctx, report, rest="The apply's event stream (--format json) has them all.", say=say)
    if not comment:
        return
    repo = ctx.require_repository()
    with GitHubApi(ctx.api_url, ctx.graphql_url, ctx.require_token()) as api:
        number = pr_number or ctx.pull_request_number() or _merged_pull(api, ctx, repo)
        if number is None:
            _notice(
                f"commit {ctx.sha or '?'} belongs to no pull request: the apply report is in the job summary only",
                say=say,
            )
            return
        mark = marker(APPLY_MARKER, key)
        body = f"{mark}\n" + cut_markdown(
            report, COMMENT_BUDGET - len(mark) - 1, what="product", rest="The job summary has them all."
        )
        result = sync_comments(
            api, repo, number, [body], kind=APPLY_MARKER, key=key, author=author_filter(comment_author)
        )
        _report("Apply comment", number, result, 1, say=say)
    write_outputs(ctx, {"comment-url": result.first_url or "", "pull-request": number})
    if result.errors:
        raise GitHubError("; ".join(result.errors))


def annotate(manifests: list[Path], check_run: str | None, step_summary: bool, say: Say) -> None:
    """``github annotate``: validate; each error as an annotation at its file and line (ManifestError)."""
    ctx = GitHubContext.from_env(os.environ)
    try:
        desired = load_desired(manifests)
    except ManifestError as exc:
        diags, more = exc.diagnostics, int(getattr(exc, "more", 0))
        paths = [ctx.repo_path(d.location.file) for d in diags]
        for line in annotation_lines(diags, paths, more=more):
            say(line)
        table = diagnostics_markdown(diags, paths, more=more)
        if step_summary:
            _summary(ctx, table, what="error", rest="'reconciler validate' lists them all.", say=say)
        if check_run:
            _check_run(
                ctx,
                check_run,
                f"{len(diags) + more} error(s) in manifests",
                table,
                check_run_annotations(diags, paths),
                say=say,
            )
        raise
    message = f"OK: {len(desired.products)} products in {len(desired.files)} file(s)."
    say(message)
    if step_summary and ctx.step_summary is not None:
        _summary(ctx, f"### reconciler validate\n\n{message}\n", say=say)
    if check_run:
        _check_run(ctx, check_run, "Manifests are valid", message, [], say=say)


def write_plan_summary(planfile: Path, say: Say) -> None:
    """``github step-summary``: the saved plan in the job summary, cut under 1 MiB."""
    ctx = GitHubContext.from_env(os.environ)
    if ctx.step_summary is None:
        raise ConfigError("GITHUB_STEP_SUMMARY is not set", hint="GitHub Actions sets it in every step")
    _summary(ctx, render_markdown(load_plan(planfile), budget=1 << 62), say=say)


def in_actions() -> bool:
    """Whether this runs inside GitHub Actions (where workflow commands become annotations)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _summary(
    ctx: GitHubContext,
    markdown: str,
    *,
    what: str = "product",
    rest: str = "The saved plan has them all.",
    say: Say,
) -> None:
    if ctx.step_summary is None:
        return
    written = append_step_summary(ctx.step_summary, markdown, what=what, rest=rest)
    say(f"Job summary: {written:,} bytes written to {ctx.step_summary}.")


def _check_run(
    ctx: GitHubContext, name: str, title: str, summary: str, annotations: list[dict[str, Any]], say: Say
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
    say(f"Check run {name!r}: {len(annotations)} annotation(s) at {run.get('html_url', run.get('id'))}.")


def _same_head(api: GitHubApi, ctx: GitHubContext, repo: str, number: int, say: Say) -> bool:
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
    say(workflow_command("warning", text, title="reconciler github") if in_actions() else f"Warning: {text}")
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


def _report(what: str, number: int, result: CommentResult, parts: int, say: Say) -> None:
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
        say(f"{what} on #{number}: nothing to post (no changes; use --comment always to post anyway).")
        return
    say(
        f"{what} on #{number} ({parts} part{'s' if parts != 1 else ''}): {', '.join(done)}"
        + (f": {result.first_url}" if result.first_url else ".")
    )


def _notice(text: str, say: Say) -> None:
    say(workflow_command("notice", text, title="reconciler github") if in_actions() else text)
