"""After apply on merge: the report comment, read from a real ``apply --format json`` run against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sandbox.server import EmbeddedSandbox
from tests.e2e.conftest import PRODUCTS, Project, fast_config, manifest
from tests.github.conftest import HEAD, PR, Step

MERGE = "9" * 40
MARK = "<!-- reconciler:apply key=default -->"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[EmbeddedSandbox]:
    with EmbeddedSandbox(
        data_dir=tmp_path / "platform", config=fast_config(fail_products=[PRODUCTS["tote"]])
    ) as sb:
        yield sb


@pytest.fixture
def project(step: Step, platform: EmbeddedSandbox) -> Project:
    (step.root / "manifests").mkdir(exist_ok=True)
    return Project(step.root, platform)


def _apply(project: Project, products: dict[str, str]) -> tuple[Path, int]:
    project.write_manifest(manifest(products))
    done = project.apply("--format", "json", "--timeout", "3")
    out = project.root / "apply.ndjson"
    out.write_text(done.stdout)
    return out, done.returncode


def test_the_merged_pull_request_gets_what_was_rendered_failed_and_cost(step: Step, project: Project) -> None:
    issue = step.gh.state.issue(PR)
    issue.merge_commit_sha, issue.merged_at = MERGE, "2026-01-02T00:00:00Z"
    stream, code = _apply(project, PRODUCTS)
    assert code == 1  # the tote's jobs always fail on this platform
    done = step.cli(
        "github",
        "apply-comment",
        str(stream),
        "--exit-code",
        str(code),
        event={"ref": "refs/heads/main", "after": MERGE},
        event_name="push",
        env={"GITHUB_SHA": MERGE},
    )
    assert done.returncode == 0, done.stderr
    assert [(r.method, r.raw_path) for r in step.gh.state.requests] == [
        ("GET", f"/repos/octo/catalogue/commits/{MERGE}/pulls"),
        ("GET", f"/repos/octo/catalogue/issues/{PR}/comments"),
        ("POST", f"/repos/octo/catalogue/issues/{PR}/comments"),
    ]
    (comment,) = step.gh.state.comments(PR)
    body = comment["body"]
    assert body.startswith(MARK + "\n### reconciler apply\n")
    assert "> 1 product(s) failed and 4 rendered. The next plan retries the failures." in body
    assert "| 4 | 1 | 0 | 1 | 25 | 5 s |" in body  # rendered, failed, pruned, requests, frames, video
    assert "<details open><summary>Failed (1)</summary>" in body
    assert f"| `{PRODUCTS['tote']}` | tote | no results within 3 s |" in body
    for name in ("trail", "court", "loafer", "chair"):
        assert f"| `{PRODUCTS[name]}` | {name} | 3 |" in body
    assert "commit 9999999" in body
    summary = step.summary.read_text()
    assert summary.startswith("### reconciler apply\n") and f"| `{PRODUCTS['tote']}` | tote |" in summary
    assert body.removeprefix(MARK + "\n") == summary  # the comment is the summary, when it fits


def test_a_second_report_for_the_same_pull_request_replaces_the_first(step: Step, project: Project) -> None:
    stream, code = _apply(project, {k: PRODUCTS[k] for k in ("trail", "court")})
    assert code == 0
    assert step.cli("github", "apply-comment", str(stream)).returncode == 0
    stream, code = _apply(project, {k: PRODUCTS[k] for k in ("trail", "court")})
    done = step.cli("github", "apply-comment", str(stream))
    assert done.returncode == 0, done.stderr
    (comment,) = step.gh.state.comments(PR)
    assert "Nothing to apply: the state already matches the manifests." in comment["body"]


def test_an_apply_that_died_early_is_reported_as_such(step: Step) -> None:
    stream = step.root / "apply.ndjson"
    stream.write_text(
        '{"kind": "reconciler-plan", "format_version": 1, "summary": {"changes": true}, '
        '"cost": {"requests": 2, "frames": 40, "video_seconds": 4}, "actions": []}\n'
        '{"event": "RunStarted", "triggers": 2, "resumes": 0, "batches": 2}\n'
        '{"event": "Recorded", "product": "p1", "name": "One", "attachments": 3}\n'
        '{"event": "Trigg'
    )
    done = step.cli("github", "apply-comment", str(stream), "--pr", str(PR), "--exit-code", "143")
    assert done.returncode == 0, done.stderr
    body = step.gh.state.comments(PR)[0]["body"]
    assert (
        "> The apply run ended before it finished (exit code 143): see the job log. 1 product(s) were recorded"
        in body
    )
    assert "| `p1` | One | 3 |" in body
    assert "_1 line(s) of the event stream were not JSON and were skipped._" in body


def test_no_output_at_all_still_reports(step: Step) -> None:
    done = step.cli("github", "apply-comment", str(step.root / "never-written.ndjson"), "--exit-code", "1")
    assert done.returncode == 0, done.stderr
    assert "ended before it finished (exit code 1)" in step.gh.state.comments(PR)[0]["body"]


def test_a_commit_without_a_pull_request_reports_in_the_summary_only(step: Step) -> None:
    stream = step.root / "apply.ndjson"
    stream.write_text("")
    done = step.cli(
        "github",
        "apply-comment",
        str(stream),
        event={"ref": "refs/heads/main"},
        event_name="push",
        env={"GITHUB_SHA": "e" * 40},
    )
    assert done.returncode == 0, done.stderr
    assert f"::notice title=reconciler github::commit {'e' * 40} belongs to no pull request" in done.stdout
    assert "### reconciler apply" in step.summary.read_text()
    assert [r.method for r in step.gh.state.requests] == ["GET"]
    assert HEAD != "e" * 40


def test_a_report_too_long_for_a_comment_is_cut_and_the_summary_has_it_all(step: Step) -> None:
    import json

    events = [
        {
            "event": "Recorded",
            "product": f"{i:08d}-0000-4000-8000-000000000000",
            "name": f"Product {i}",
            "attachments": 3,
        }
        for i in range(3000)
    ]
    events.append(
        {
            "event": "RunFinished",
            "rendered": 3000,
            "failed": 0,
            "skipped": 0,
            "bytes_downloaded": 1 << 30,
            "seconds": 600.0,
            "requests": 9000,
            "retries": 4,
            "throttled_seconds": 0.0,
            "failures": {},
        }
    )
    stream = step.root / "apply.ndjson"
    stream.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    done = step.cli("github", "apply-comment", str(stream), "--exit-code", "0")
    assert done.returncode == 0, done.stderr
    body = step.gh.state.comments(PR)[0]["body"]
    assert len(body.encode()) <= 64_000 and body.count("<details>") == body.count("</details>")
    assert "All 3000 product(s) rendered and recorded." in body
    shown = body.count("| `")
    assert f"_{3000 - shown} more product(s) not shown: this view is capped at" in body
    assert "The job summary has them all._" in body
    summary = step.summary.read_text()
    assert summary.count("| `") == 3000 and "| 1024.0 MiB | 600 s |" in summary


def test_an_apply_that_did_not_wait_reports_what_is_in_flight_and_how_to_collect(
    step: Step, project: Project
) -> None:
    project.write_manifest(manifest({k: PRODUCTS[k] for k in ("trail", "court")}))
    done = project.apply("--format", "json", "--no-wait")
    assert done.returncode == 0, done.stderr
    stream = project.root / "apply.ndjson"
    stream.write_text(done.stdout)
    assert step.cli("github", "apply-comment", str(stream), "--exit-code", "0").returncode == 0
    body = step.gh.state.comments(PR)[0]["body"]
    assert "> The apply run did not wait: 0 product(s) recorded, 2 in flight." in body
    assert "`reconciler collect` waits for those in flight" in body
    assert "All 0 product(s) rendered" not in body


def test_an_apply_stopped_by_the_jobs_time_limit_says_so_and_how_to_continue(step: Step) -> None:
    stream = step.root / "apply.ndjson"
    stream.write_text(
        '{"kind": "reconciler-plan", "format_version": 1, "summary": {"changes": true}, "actions": []}\n'
        '{"event": "Recorded", "product": "p1", "name": "One", "attachments": 3}\n'
        '{"event": "RunFinished", "rendered": 1, "failed": 0, "skipped": 0, "bytes_downloaded": 10, '
        '"seconds": 5.0, "requests": 9, "retries": 0, "throttled_seconds": 0, "failures": {}, "in_flight": 4}\n'
    )
    done = step.cli("github", "apply-comment", str(stream), "--pr", str(PR), "--exit-code", "3")
    assert done.returncode == 0, done.stderr
    body = step.gh.state.comments(PR)[0]["body"]
    assert (
        "> The apply run was stopped by a signal (the job's time limit, or a cancel): 1 product(s) recorded, 4 in flight."
        in body
    )
