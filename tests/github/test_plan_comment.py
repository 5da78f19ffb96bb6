"""``reconciler github plan-comment``: the real CLI against the GitHub stand-in, request by request."""

from __future__ import annotations

import json
import re

from tests.e2e.conftest import PRODUCTS
from tests.github.conftest import HEAD, PR, Step, pr_event, uuids
from tests.github.standin import BODY_LIMIT

MARK = "<!-- reconciler:plan key=default part=1 -->"
THREE = {k: PRODUCTS[k] for k in ("trail", "court", "chair")}


def _bodies(step: Step) -> list[str]:
    return [c["body"] for c in step.gh.state.comments(PR)]


def test_first_plan_posts_one_sticky_comment_sets_labels_and_writes_the_job_summary(step: Step) -> None:
    plan = step.plan(THREE)
    done = step.cli("github", "plan-comment", str(plan), "--artifact-url", "https://example.test/artifact/9")
    assert done.returncode == 0, done.stderr
    calls = [(r.method, r.raw_path) for r in step.gh.state.requests]
    repo = "/repos/octo/catalogue"
    assert calls == [
        ("GET", f"{repo}/issues/{PR}/comments"),
        ("POST", f"{repo}/issues/{PR}/comments"),
        ("GET", f"{repo}/issues/{PR}/labels"),
        ("POST", f"{repo}/labels"),
        ("POST", f"{repo}/issues/{PR}/labels"),
    ]
    first = step.gh.state.requests[0]
    assert first.query == {"per_page": "100"}
    for r in step.gh.state.requests:
        assert r.headers["authorization"] == f"Bearer {step.gh.state.token}"
        assert r.headers["accept"] == "application/vnd.github+json"
        assert r.headers["x-github-api-version"] == "2022-11-28"
        assert r.headers["user-agent"].startswith("reconciler/")
    body = step.gh.state.requests[1].body["body"]
    assert body.startswith(MARK + "\n### reconciler plan\n")
    assert "**Plan: 3 to render, 0 to re-render" in body
    assert all(f"`{u}`" in body for u in THREE.values())
    assert (
        f"commit {HEAD[:7]}" in body
        and "[run 1002](https://github.com/octo/catalogue/actions/runs/1002)" in body
    )
    assert step.gh.state.requests[3].body == {
        "name": "renders:new",
        "color": "0e8a16",
        "description": "reconciler: renders products for the first time",
    }
    assert step.gh.state.requests[4].body == {"labels": ["renders:new"]}
    assert step.gh.state.issue(PR).labels == ["renders:new"]
    summary = step.summary.read_text()
    assert summary.startswith("### reconciler plan") and all(u in summary for u in THREE.values())
    outputs = step.outputs.read_text()
    assert "has-changes=true\n" in outputs and f"pull-request={PR}\n" in outputs
    assert re.search(
        r"^comment-url=https://github.com/octo/catalogue/pull/7#issuecomment-\d+$", outputs, re.M
    )
    assert "Plan comment on #7 (1 part): 1 created" in done.stdout
    assert step.gh.state.token not in done.stdout + done.stderr + summary


def test_a_new_push_updates_the_same_comment_in_place(step: Step) -> None:
    step.cli("github", "plan-comment", str(step.plan(THREE)))
    (comment,) = step.gh.state.comments(PR)
    step.gh.state.requests.clear()
    done = step.cli("github", "plan-comment", str(step.plan(PRODUCTS)), "--no-labels")
    assert done.returncode == 0, done.stderr
    assert [(r.method, r.path) for r in step.gh.state.requests] == [
        ("GET", f"/repos/octo/catalogue/issues/{PR}/comments"),
        ("PATCH", f"/repos/octo/catalogue/issues/comments/{comment['id']}"),
    ]
    (after,) = step.gh.state.comments(PR)
    assert after["id"] == comment["id"] and "**Plan: 5 to render" in after["body"]
    assert "1 updated" in done.stdout


def test_no_changes_posts_no_comment_but_labels_the_pull_request_none(step: Step) -> None:
    step.gh.state.issue(PR).labels = ["renders:new", "needs-review"]
    step.gh.state.labels.update(
        {n: {"name": n, "color": "ededed", "description": ""} for n in ("renders:new", "needs-review")}
    )
    done = step.cli("github", "plan-comment", str(step.plan([])))
    assert done.returncode == 0, done.stderr
    assert step.gh.state.comments(PR) == []
    assert "nothing to post (no changes" in done.stdout
    assert sorted(step.gh.state.issue(PR).labels) == ["needs-review", "renders:none"]
    deletes = [r.raw_path for r in step.gh.state.calls("DELETE")]
    assert deletes == [f"/repos/octo/catalogue/issues/{PR}/labels/renders%3Anew"]
    assert "has-changes=false" in step.outputs.read_text()


def test_no_changes_is_posted_when_asked(step: Step) -> None:
    done = step.cli("github", "plan-comment", str(step.plan([])), "--comment", "always", "--no-labels")
    assert done.returncode == 0, done.stderr
    (comment,) = step.gh.state.comments(PR)
    assert "No changes." in comment["body"]


def test_an_existing_comment_is_brought_up_to_date_when_the_changes_go_away(step: Step) -> None:
    step.cli("github", "plan-comment", str(step.plan(THREE)), "--no-labels")
    step.cli("github", "plan-comment", str(step.plan([])), "--no-labels")
    (comment,) = step.gh.state.comments(PR)
    assert "No changes." in comment["body"] and THREE["trail"] not in comment["body"]


def test_the_sticky_comment_is_found_on_the_third_page_of_a_long_conversation(step: Step) -> None:
    for i in range(230):
        step.gh.state.add_comment(PR, f"review comment {i}", login="reviewer", type_="User")
    step.cli("github", "plan-comment", str(step.plan(THREE)), "--no-labels")
    for i in range(30):
        step.gh.state.add_comment(PR, f"later comment {i}", login="reviewer", type_="User")
    sticky = step.gh.state.comments(PR)[230]
    step.gh.state.requests.clear()
    done = step.cli("github", "plan-comment", str(step.plan(PRODUCTS)), "--no-labels")
    assert done.returncode == 0, done.stderr
    pages = [(r.raw_path, r.query) for r in step.gh.state.calls("GET")]
    assert pages == [
        (f"/repos/octo/catalogue/issues/{PR}/comments", {"per_page": "100"}),
        (f"/repositories/4242/issues/{PR}/comments", {"per_page": "100", "page": "2"}),
        (f"/repositories/4242/issues/{PR}/comments", {"per_page": "100", "page": "3"}),
    ]
    assert [r.path for r in step.gh.state.calls("PATCH")] == [
        f"/repos/octo/catalogue/issues/comments/{sticky['id']}"
    ]
    assert step.gh.state.calls("POST") == []
    assert len(step.gh.state.comments(PR)) == 261


def test_stale_render_labels_are_removed_and_other_labels_kept(step: Step) -> None:
    issue = step.gh.state.issue(PR)
    for n in ("renders:spec", "renders:none", "bug"):
        step.gh.state.labels[n] = {"name": n, "color": "ededed", "description": ""}
    issue.labels = ["renders:spec", "renders:none", "bug"]
    step.gh.state.labels["renders:new"] = {"name": "renders:new", "color": "123456", "description": "theirs"}
    done = step.cli("github", "plan-comment", str(step.plan(THREE)), "--comment", "never")
    assert done.returncode == 0, done.stderr
    assert sorted(issue.labels) == ["bug", "renders:new"]
    assert step.gh.state.labels["renders:new"]["color"] == "123456"  # an existing label is not recoloured
    assert "(added renders:new) (removed renders:none, renders:spec)" in done.stdout
    assert step.gh.state.comments(PR) == []


def test_a_person_quoting_the_marker_is_left_alone(step: Step) -> None:
    quoted = step.gh.state.add_comment(
        PR, MARK + "\nI pasted the bot's comment", login="someone", type_="User"
    )
    step.cli("github", "plan-comment", str(step.plan(THREE)), "--no-labels")
    comments = step.gh.state.comments(PR)
    assert comments[0] == quoted and len(comments) == 2 and comments[1]["user"]["type"] == "Bot"


def test_comment_author_names_whose_comments_are_ours(step: Step) -> None:
    mine = step.gh.state.add_comment(PR, MARK + "\nold plan", login="deploy-person", type_="User")
    done = step.cli(
        "github", "plan-comment", str(step.plan(THREE)), "--no-labels", "--comment-author", "deploy-person"
    )
    assert done.returncode == 0, done.stderr
    (only,) = step.gh.state.comments(PR)
    assert only["id"] == mine["id"] and "**Plan: 3 to render" in only["body"]


def test_keys_keep_separate_sticky_comments(step: Step) -> None:
    plan = step.plan(THREE)
    step.cli("github", "plan-comment", str(plan), "--no-labels", "--key", "footwear")
    step.cli("github", "plan-comment", str(plan), "--no-labels", "--key", "furniture")
    step.cli("github", "plan-comment", str(plan), "--no-labels", "--key", "footwear")
    bodies = _bodies(step)
    assert len(bodies) == 2
    assert bodies[0].startswith("<!-- reconciler:plan key=footwear part=1 -->") and "`footwear`" in bodies[0]
    assert bodies[1].startswith("<!-- reconciler:plan key=furniture part=1 -->")


def test_a_read_only_token_fails_loudly_with_the_fork_hint(step: Step) -> None:
    step.gh.state.read_only = True
    done = step.cli("github", "plan-comment", str(step.plan(THREE)))
    assert done.returncode == 1
    assert (
        "Error: GitHub POST /repos/octo/catalogue/issues/7/comments: 403 Resource not accessible by "
        "integration"
    ) in done.stderr
    assert "two-workflow pattern in docs/gitops.md" in done.stderr
    assert done.stdout.splitlines()[-1].startswith("::error title=reconciler github::GitHub POST ")
    assert step.gh.state.token not in done.stdout + done.stderr


def test_a_bad_token_is_reported_without_being_shown(step: Step) -> None:
    secret = "ghp_SuperSecretValue1234567890"
    done = step.cli("github", "plan-comment", str(step.plan(THREE)), env={"GITHUB_TOKEN": secret})
    assert done.returncode == 1
    assert "401 Bad credentials" in done.stderr and "pass GITHUB_TOKEN to the step" in done.stderr
    assert secret not in done.stdout + done.stderr + step.summary.read_text()


def test_a_missing_token_says_which_variable(step: Step) -> None:
    done = step.cli("github", "plan-comment", str(step.plan(THREE)), env={"GITHUB_TOKEN": ""})
    assert done.returncode == 1
    assert "Error: GITHUB_TOKEN is not set" in done.stderr
    assert step.gh.state.requests == []


def test_throttling_and_server_errors_are_retried_without_posting_twice(step: Step) -> None:
    step.gh.state.faults = [
        ("GET", 502, {}),
        ("POST", 429, {"Retry-After": "0"}),
        ("POST", 403, {"Retry-After": "0"}),
    ]
    done = step.cli("github", "plan-comment", str(step.plan(THREE)), "--no-labels")
    assert done.returncode == 0, done.stderr
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in step.gh.state.requests] == [
        ("GET", "comments"),
        ("GET", "comments"),
        ("POST", "comments"),
        ("POST", "comments"),
        ("POST", "comments"),
    ]
    assert len(step.gh.state.comments(PR)) == 1


def test_a_5xx_on_a_post_is_not_retried(step: Step) -> None:
    step.gh.state.faults = [("POST", 502, {})]
    done = step.cli("github", "plan-comment", str(step.plan(THREE)), "--no-labels")
    assert done.returncode == 1
    assert "GitHub POST /repos/octo/catalogue/issues/7/comments: 502 injected fault" in done.stderr
    assert len(step.gh.state.calls("POST")) == 1


def test_an_event_without_a_pull_request_writes_the_summary_only(step: Step) -> None:
    done = step.cli(
        "github", "plan-comment", str(step.plan(THREE)), event={"ref": "refs/heads/main"}, event_name="push"
    )
    assert done.returncode == 0, done.stderr
    assert (
        "::notice title=reconciler github::push event is not about a pull request: no comment" in done.stdout
    )
    assert step.gh.state.requests == []
    assert THREE["court"] in step.summary.read_text()


def test_workflow_run_comments_only_on_the_pull_request_whose_head_made_the_plan(step: Step) -> None:
    plan = step.plan(THREE)
    event = {
        "workflow_run": {
            "id": 55,
            "head_sha": HEAD,
            "pull_requests": [],
            "html_url": "https://github.com/octo/catalogue/actions/runs/55",
        }
    }
    done = step.cli(
        "github",
        "plan-comment",
        str(plan),
        "--pr",
        str(PR),
        "--no-labels",
        event=event,
        event_name="workflow_run",
    )
    assert done.returncode == 0, done.stderr
    assert [r.raw_path for r in step.gh.state.requests][:1] == [f"/repos/octo/catalogue/pulls/{PR}"]
    (_comment,) = step.gh.state.comments(PR)
    # The full plan is in the run that made it: link there, not to this commenting run.
    step.gh.state.requests.clear()
    step.gh.state.issue(8).head_sha = "f" * 40
    done = step.cli(
        "github",
        "plan-comment",
        str(plan),
        "--pr",
        "8",
        "--no-labels",
        event=event,
        event_name="workflow_run",
    )
    assert done.returncode == 0, done.stderr
    assert "::warning title=reconciler github::not commenting on #8: its head is ffffffffffff" in done.stdout
    assert step.gh.state.comments(8) == [] and [r.method for r in step.gh.state.requests] == ["GET"]


def test_product_names_cannot_break_out_of_the_comment(step: Step) -> None:
    names = {"</details><!-- x": PRODUCTS["trail"], "<summary>y</summary> | z": PRODUCTS["court"]}
    step.cli("github", "plan-comment", str(step.plan(names)), "--no-labels")
    (comment,) = step.gh.state.comments(PR)
    body = comment["body"]
    assert body.count("<details>") == body.count("</details>") == 1
    assert "<!-- x" not in body and "&lt;/details>&lt;!-- x" in body


def test_the_plan_file_is_read_from_disk_and_a_bad_one_is_named(step: Step) -> None:
    bad = step.root / "plan.json"
    bad.write_text(json.dumps({"kind": "something else"}))
    done = step.cli("github", "plan-comment", str(bad))
    assert done.returncode == 1 and f"Error: {bad} is not a saved reconciler plan" in done.stderr
    done = step.cli("github", "plan-comment", str(step.root / "missing.json"))
    assert done.returncode == 1 and "does not exist" in done.stderr
    assert step.gh.state.requests == []


def test_comment_bodies_respect_github_limit(step: Step) -> None:
    step.cli("github", "plan-comment", str(step.plan(uuids(300))), "--no-labels")
    assert all(len(b) <= BODY_LIMIT for b in _bodies(step))
    assert pr_event()["pull_request"]["number"] == PR
