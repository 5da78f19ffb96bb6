"""Putting text on a pull request: sticky comments, labels, check-run annotations, step summaries.

Sticky comments: our comments start with a hidden marker (``views.github.marker``) naming
their kind (plan or apply), a key (one sticky thread per key, e.g. per catalogue) and a part.
Part N of the current text updates the oldest comment that holds part N, so the comment
stays where the conversation first had it; missing parts are created. Comments holding
parts the current text no longer needs, and duplicates left by two runs that raced, are
turned into a one-line "superseded" stub and minimised as outdated, once: a stub is never
touched again. Only comments written by a bot (or by ``author``, when given) count, so a
person quoting the marker is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.github.rest import GitHubApi, GitHubError
from reconciler.views.github import (
    CHECK_RUN_BATCH,
    LABELS,
    STEP_SUMMARY_LIMIT,
    cut_markdown,
    parse_marker,
    superseded_body,
    utf8_len,
)


@dataclass
class CommentResult:
    """What a sync did, for the log line and the step outputs."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def first_url(self) -> str | None:
        for urls in (self.updated, self.created, self.unchanged):
            if urls:
                return urls[0]
        return None


def author_filter(login: str | None) -> Callable[[dict[str, Any]], bool]:
    """Which comments may be ours: by ``login`` if given, else by any bot account."""
    if login:
        return lambda c: (c.get("user") or {}).get("login") == login
    return lambda c: (c.get("user") or {}).get("type") == "Bot"


def sync_comments(
    api: GitHubApi,
    repo: str,
    number: int,
    bodies: list[str],
    *,
    kind: str,
    key: str,
    author: Callable[[dict[str, Any]], bool],
    create: bool = True,
) -> CommentResult:
    """Make the pull request show ``bodies`` (part 1, 2, …) as our sticky comments of ``kind``/``key``.

    ``create=False`` updates what exists but posts nothing new (a plan with no changes).
    Superseding and minimising problems are collected in ``errors``; the caller fails on them
    after everything else is done."""
    result = CommentResult()
    current: dict[int, dict[str, Any]] = {}
    stale: list[dict[str, Any]] = []
    for c in sorted(api.issue_comments(repo, number), key=lambda c: int(c["id"])):
        mark = parse_marker(str(c.get("body") or ""))
        if mark is None or mark.kind != kind or mark.key != key or mark.superseded or not author(c):
            continue
        part = mark.part or 1
        if part in current:
            stale.append(c)  # a duplicate: two runs raced, or a comment was copied
        else:
            current[part] = c
    if not create and not current:
        return result
    for part, body in enumerate(bodies, 1):
        existing = current.pop(part, None)
        if existing is None:
            made = api.create_comment(repo, number, body)
            result.created.append(str(made.get("html_url", made.get("id"))))
        elif existing.get("body") != body:
            api.update_comment(repo, int(existing["id"]), body)
            result.updated.append(str(existing.get("html_url", existing["id"])))
        else:
            result.unchanged.append(str(existing.get("html_url", existing["id"])))
    for c in sorted([*current.values(), *stale], key=lambda c: int(c["id"])):
        url = str(c.get("html_url", c["id"]))
        try:
            api.update_comment(repo, int(c["id"]), superseded_body(kind, key))
            if c.get("node_id"):
                api.minimize_comment(str(c["node_id"]))
            result.superseded.append(url)
        except GitHubError as exc:
            result.errors.append(f"could not supersede the older comment {url}: {exc.message}")
    return result


@dataclass
class LabelResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def sync_labels(api: GitHubApi, repo: str, number: int, wanted: set[str]) -> LabelResult:
    """Put the ``wanted`` ``renders:*`` labels on the pull request and remove the stale ones.

    Only the labels in ``LABELS`` are ever removed; any other label is not ours to touch."""
    have = set(api.issue_labels(repo, number))
    result = LabelResult(added=sorted(wanted - have), removed=sorted((have & set(LABELS)) - wanted))
    for name in result.added:
        colour, description = LABELS[name]
        api.create_label(repo, name, colour, description)  # so it gets our colour; exists → fine
    if result.added:
        api.add_labels(repo, number, result.added)
    for name in result.removed:
        api.remove_label(repo, number, name)
    return result


def publish_check_run(
    api: GitHubApi,
    repo: str,
    *,
    name: str,
    head_sha: str,
    title: str,
    summary: str,
    annotations: list[dict[str, Any]],
) -> dict[str, Any]:
    """A completed check run carrying every annotation, CHECK_RUN_BATCH per request."""
    batches = [annotations[i : i + CHECK_RUN_BATCH] for i in range(0, len(annotations), CHECK_RUN_BATCH)] or [
        []
    ]
    output = {"title": title, "summary": summary[:65_000]}
    run = api.create_check_run(
        repo,
        {
            "name": name,
            "head_sha": head_sha,
            "status": "completed",
            "conclusion": "failure" if annotations else "success",
            "output": {**output, "annotations": batches[0]},
        },
    )
    for batch in batches[1:]:
        # Each update appends its annotations to the run's list.
        api.update_check_run(repo, int(run["id"]), {"output": {**output, "annotations": batch}})
    return run


def append_step_summary(
    path: Path, markdown: str, *, what: str = "product", rest: str = "The saved plan has them all."
) -> int:
    """Append ``markdown`` to the step summary, cut so the file stays under 1 MiB; bytes written.

    Another command of the same step may have written to the file already: only what is
    left of the step's 1 MiB is used."""
    try:
        used = path.stat().st_size if path.exists() else 0
        room = STEP_SUMMARY_LIMIT - used - 4096  # GitHub's limit, less a margin for the step's own lines
        if room < 2048:
            raise ReconcilerError(
                f"the step summary {path} is already {used:,} bytes; GitHub refuses "
                "summaries over 1 MiB, so nothing more was written",
                hint="write the plan summary from a step of its own",
            )
        text = cut_markdown(markdown, room, what=what, rest=rest)
        with path.open("a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        return utf8_len(text)
    except OSError as exc:
        raise ReconcilerError(
            f"cannot write the step summary {path} (GITHUB_STEP_SUMMARY): {exc.strerror or exc}"
        ) from exc
