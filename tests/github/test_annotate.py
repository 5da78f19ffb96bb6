"""``reconciler github annotate``: validate errors as file:line annotations within GitHub's limits."""

from __future__ import annotations

import re

from tests.e2e.conftest import TINY_DEFAULTS
from tests.github.conftest import HEAD, Step, uuids


def _broken(step: Step, errors: int) -> None:
    """A manifest with ``errors`` products whose imageWidth is out of bounds, one per line pair."""
    lines = [TINY_DEFAULTS.format(gif="false").rstrip("\n"), "products:"]
    for u in uuids(errors, "bad"):
        lines += [f"  - uuid: {u}", "    imageWidth: 99999"]
    (step.root / "manifests").mkdir(exist_ok=True)
    (step.root / "manifests" / "broken.yaml").write_text("\n".join(lines) + "\n")


def test_errors_become_ten_annotations_at_most_and_the_summary_lists_all(step: Step) -> None:
    _broken(step, 12)
    done = step.cli("github", "annotate")
    assert done.returncode == 1
    commands = [line for line in done.stdout.splitlines() if line.startswith("::")]
    assert len(commands) == 10  # GitHub shows 10 error annotations per step
    assert commands[0] == (
        "::error file=manifests/broken.yaml,line=13,col=17,title=reconciler validate::"
        "products[0].imageWidth: expected 16..8192 (still width in pixels), got 99999"
    )
    lines = [int(m) for m in re.findall(r",line=(\d+),", "\n".join(commands))]
    assert lines == list(range(13, 13 + 2 * 9, 2))
    assert commands[-1] == (
        "::error title=reconciler validate::3 more manifest error(s) not annotated (GitHub "
        "shows 10 per step): all of them are in the job summary and the log below"
    )
    assert "Error: 12 errors in manifests:" in done.stderr
    summary = step.summary.read_text()
    assert summary.startswith("### reconciler validate: 12 errors\n")
    assert len(re.findall(r"^\| `manifests/broken.yaml:\d+:17` \|", summary, re.M)) == 12
    assert step.gh.state.requests == []  # workflow commands need no token


def test_ten_errors_or_fewer_are_all_annotated(step: Step) -> None:
    _broken(step, 10)
    done = step.cli("github", "annotate")
    commands = [line for line in done.stdout.splitlines() if line.startswith("::error file=")]
    assert len(commands) == 10 and done.returncode == 1


def test_a_check_run_carries_every_error_fifty_per_request(step: Step) -> None:
    _broken(step, 120)
    done = step.cli("github", "annotate", "--check-run", "manifests")
    assert done.returncode == 1
    posts, patches = step.gh.state.calls("POST"), step.gh.state.calls("PATCH")
    assert [r.raw_path for r in posts] == ["/repos/octo/catalogue/check-runs"]
    # The loader keeps the first 100 problems and counts the rest; the run says so.
    assert [len(r.body["output"]["annotations"]) for r in posts + patches] == [50, 50]
    first = posts[0].body
    assert first["name"] == "manifests" and first["head_sha"] == HEAD and first["conclusion"] == "failure"
    assert first["output"]["title"] == "120 error(s) in manifests"
    assert first["output"]["annotations"][0] == {
        "path": "manifests/broken.yaml",
        "start_line": 13,
        "end_line": 13,
        "start_column": 17,
        "end_column": 17,
        "annotation_level": "failure",
        "title": "products[0].imageWidth",
        "message": "products[0].imageWidth: expected 16..8192 (still width in pixels), got 99999",
    }
    (run,) = step.gh.state.check_runs.values()
    assert len(run["output"]["annotations"]) == 100
    assert "_and 20 more, not listed: fix these first._" in first["output"]["summary"]
    assert "Check run 'manifests': 100 annotation(s)" in done.stdout
    assert "::error title=reconciler validate::111 more manifest error(s) not annotated" in done.stdout


def test_valid_manifests_pass_and_say_so(step: Step) -> None:
    step.plan(uuids(3))
    done = step.cli("github", "annotate", "--check-run", "manifests")
    assert done.returncode == 0, done.stderr
    assert "OK: 3 products in 1 file(s)." in done.stdout
    (run,) = step.gh.state.check_runs.values()
    assert run["conclusion"] == "success" and run["output"]["annotations"] == []
    assert "OK: 3 products" in step.summary.read_text()


def test_paths_are_named_as_the_repository_names_them(step: Step) -> None:
    _broken(step, 1)
    sub = step.root / "catalogue"
    (step.root / "manifests").rename(sub)
    done = step.cli("github", "annotate", "-m", str(sub))  # an absolute path, inside the workspace
    assert "::error file=catalogue/broken.yaml,line=13" in done.stdout


def test_annotation_messages_are_escaped(step: Step) -> None:
    (step.root / "manifests").mkdir()
    (step.root / "manifests" / "x.yaml").write_text(
        TINY_DEFAULTS.format(gif="true") + "products:\n  - uuid: 'not, a: uuid%'\n"
    )
    done = step.cli("github", "annotate")
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("::error")]
    assert line.startswith("::error file=manifests/x.yaml,line=12,col=11,title=reconciler validate::")
    assert "got 'not, a: uuid%25'" in line  # data: % escaped; commas and colons only in properties
