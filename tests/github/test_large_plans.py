"""A pull request that changes 5,000 products: split comments, the summary-only fallback, superseded parts."""

from __future__ import annotations

import re

import pytest

from tests.github.conftest import PR, Step, uuids
from tests.github.standin import BODY_LIMIT

N = 5000


@pytest.fixture
def big(step: Step):
    products = uuids(N)
    return products, step.plan({f"Product {i:05d}, Oak finish": u for i, u in enumerate(products)})


def test_5000_products_by_default_is_the_summary_alone_with_links(step: Step, big) -> None:
    products, plan = big
    done = step.cli(
        "github", "plan-comment", str(plan), "--artifact-url", "https://example.test/artifacts/77"
    )
    assert done.returncode == 0, done.stderr
    (comment,) = step.gh.state.comments(PR)
    body = comment["body"]
    assert len(body) < 2000
    assert "**Plan: 5000 to render, 0 to re-render" in body
    assert (
        "The plan changes 5000 product(s): 11 comments would be needed, more than the limit of 5 "
        "(`--max-parts`). Read it in the [job summary](https://github.com/octo/catalogue/actions/runs/1002) "
        "or the [plan artifact](https://example.test/artifacts/77)."
    ) in body.replace("\n> ", " ")
    summary = step.summary.read_text()
    assert len(summary.encode()) < 1 << 20
    assert all(f"`{u}`" in summary for u in products)  # the job summary has every product
    assert step.gh.state.issue(PR).labels == ["renders:new"]


def test_5000_products_split_into_balanced_parts_on_product_rows(step: Step, big) -> None:
    products, plan = big
    done = step.cli("github", "plan-comment", str(plan), "--max-parts", "20", "--no-labels")
    assert done.returncode == 0, done.stderr
    bodies = [c["body"] for c in step.gh.state.comments(PR)]
    assert len(bodies) == 11
    assert "Plan comment on #7 (11 parts): 11 created" in done.stdout
    seen: list[str] = []
    for i, body in enumerate(bodies, 1):
        assert body.startswith(f"<!-- reconciler:plan key=default part={i} -->\n")
        assert len(body) <= BODY_LIMIT and len(body.encode()) <= 64_000
        assert body.count("<details>") == body.count("</details>") == 1
        assert body.index("<details>") < body.index("</details>")
        assert f"_Part {i} of 11" in body
        rows = re.findall(
            r"^\| `([0-9a-f-]{36})` \| Product \d{5}, Oak finish \| still PNG 32x24", body, re.M
        )
        seen += rows
        if i > 1:
            assert f"### reconciler plan, part {i} of 11" in body
            assert (
                "<details><summary>New products (5000) (continued)</summary>\n\n| product | name | change |\n"
                "|---|---|---|\n" in body
            )
    assert sorted(seen) == sorted(products) and len(seen) == N  # each product exactly once, none cut


def test_a_shorter_plan_supersedes_and_minimises_the_parts_it_no_longer_needs(step: Step, big) -> None:
    products, plan = big
    step.cli("github", "plan-comment", str(plan), "--max-parts", "20", "--no-labels")
    before = [dict(c) for c in step.gh.state.comments(PR)]
    step.gh.state.requests.clear()
    done = step.cli("github", "plan-comment", str(step.plan(products[:3])), "--no-labels")
    assert done.returncode == 0, done.stderr
    after = step.gh.state.comments(PR)
    assert [c["id"] for c in after] == [c["id"] for c in before]  # nothing deleted, nothing new
    assert "**Plan: 3 to render" in after[0]["body"] and "part=1" in after[0]["body"]
    for c in after[1:]:
        assert c["body"].startswith(
            "<!-- reconciler:plan key=default superseded -->\n_This part of an earlier"
        )
    minimised = [r.body["variables"] for r in step.gh.state.calls("POST", "/graphql")]
    assert minimised == [{"id": c["node_id"], "classifier": "OUTDATED"} for c in before[1:]]
    assert (
        "minimizeComment(input: {subjectId: $id, classifier: $classifier})"
        in step.gh.state.calls("POST", "/graphql")[0].body["query"]
    )
    assert step.gh.state.minimized == {c["node_id"] for c in before[1:]}
    assert "1 updated, 10 superseded" in done.stdout
    # A stub is never touched again, and a longer plan gets fresh parts at the end.
    step.gh.state.requests.clear()
    step.cli("github", "plan-comment", str(step.plan(products[:3])), "--no-labels")
    assert step.gh.state.calls("POST", "/graphql") == [] and len(step.gh.state.calls("PATCH")) == 1


def test_a_failed_minimise_is_reported_after_the_comment_is_posted(step: Step, big) -> None:
    products, plan = big
    step.cli("github", "plan-comment", str(plan), "--max-parts", "20", "--no-labels")
    gone = step.gh.state.comments(PR)[1]["node_id"]
    step.gh.state.unresolvable.add(gone)  # GraphQL cannot resolve this one any more
    done = step.cli("github", "plan-comment", str(step.plan(products[:3])), "--no-labels")
    assert done.returncode == 1
    assert "**Plan: 3 to render" in step.gh.state.comments(PR)[0]["body"]
    assert "could not supersede the older comment" in done.stderr
    assert (
        f"minimizeComment failed: Could not resolve to a node with the global id of '{gone}'" in done.stderr
    )
    assert len(step.gh.state.minimized) == 9  # the others were still minimised


def test_a_job_summary_already_near_1_mib_gets_the_plan_cut_with_a_note(step: Step, big) -> None:
    _products, plan = big
    step.summary.write_text("x" * 700_000 + "\n")
    done = step.cli("github", "plan-comment", str(plan), "--comment", "never", "--no-labels")
    assert done.returncode == 0, done.stderr
    text = step.summary.read_text()
    assert len(text.encode()) < 1 << 20
    added = text[700_001:]
    shown = len(re.findall(r"^\| `[0-9a-f-]{36}` \|", added, re.M))
    assert 0 < shown < N
    assert f"_{N - shown} more product(s) not shown: this view is capped at" in added
    assert added.count("<details>") == added.count("</details>")


def test_a_full_job_summary_is_an_error_not_a_silent_skip(step: Step, big) -> None:
    _products, plan = big
    step.summary.write_text("x" * ((1 << 20) - 1000))
    done = step.cli("github", "step-summary", str(plan))
    assert done.returncode == 1
    assert "GitHub refuses summaries over 1 MiB, so nothing more was written" in done.stderr
    assert done.stdout.startswith("::error title=reconciler github::the step summary")
