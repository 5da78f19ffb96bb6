"""The pure parts: splitting markdown into balanced parts, markers, labels, escaping, apply streams."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.diagnostics import Diagnostic, SourceLocation
from reconciler.plan import Action, ActionKind, Cost, Plan, Reason, StateToken
from reconciler.views.github import (
    annotation_lines,
    cut_markdown,
    escape_data,
    escape_property,
    labels_for,
    marker,
    parse_apply_stream,
    parse_marker,
    split_markdown,
    utf8_len,
)


def _doc(sections: list[list[str]]) -> str:
    out = "### head\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n**summary**\n\n"
    for i, rows in enumerate(sections):
        out += f"<details><summary>Section {i} ({len(rows)})</summary>\n\n| product | name |\n|---|---|\n"
        out += "".join(f"| `{r}` | name {r} |\n" for r in rows)
        out += "\n</details>\n\n"
    return out


def _balanced(text: str) -> bool:
    depth = 0
    for line in text.splitlines():
        if line.startswith("<details"):
            depth += 1
        elif line.strip() == "</details>":
            depth -= 1
        if depth < 0:
            return False
    return depth == 0


@given(
    st.lists(st.lists(st.text("abcdefé€😀", min_size=1, max_size=300), max_size=80), min_size=1, max_size=4),
    st.integers(1024, 8000),
)
def test_every_part_fits_is_balanced_and_keeps_every_row_once(sections: list[list[str]], budget: int) -> None:
    text = _doc(sections)
    parts = split_markdown(text, budget)
    rows = [line for p in parts for line in p.text.splitlines() if line.startswith("| `")]
    assert rows == [f"| `{r}` | name {r} |" for s in sections for r in s]
    assert sum(p.rows for p in parts) == len(rows)
    for p in parts:
        assert utf8_len(p.text) <= budget
        assert _balanced(p.text)
    if len(parts) == 1:
        assert parts[0].text == text


def test_a_continued_part_reopens_the_section_and_its_table_header() -> None:
    parts = split_markdown(_doc([[f"row-{i:03d}" + "x" * 60 for i in range(40)]]), 1024)
    assert len(parts) > 1
    second = parts[1].text
    assert second.startswith(
        "<details><summary>Section 0 (40) (continued)</summary>\n\n| product | name |\n|---|---|\n| `"
    )
    assert parts[0].text.endswith("\n\n</details>\n")


def test_a_section_is_not_opened_at_the_end_of_a_part_without_a_row() -> None:
    text = _doc([["a" * 380], ["b" * 380]])
    for p in split_markdown(text, 1024):
        for block in p.text.split("<details>")[1:]:
            assert "| `" in block  # every opened section carries at least one product


def test_a_line_longer_than_a_part_is_shortened_not_lost() -> None:
    parts = split_markdown(_doc([["z" * 5000]]), 1024)
    assert any("z …" in p.text for p in parts)
    assert all(utf8_len(p.text) <= 1024 for p in parts)


def test_tags_in_rows_are_escaped_but_the_views_line_breaks_are_kept() -> None:
    (part,) = split_markdown("| x | y |\n|---|---|\n| </details><!-- a<br>b | c |\n", 4096)
    assert part.text.endswith("| &lt;/details>&lt;!-- a<br>b | c |\n")


def test_cut_markdown_keeps_short_text_and_says_what_it_left_out() -> None:
    text = _doc([[f"r{i}" for i in range(500)]])
    assert cut_markdown(text, len(text) + 10) == text
    cut = cut_markdown(text, 4096)
    assert utf8_len(cut) <= 4096 and _balanced(cut)
    shown = cut.count("| `r")
    assert f"_{500 - shown} more product(s) not shown" in cut


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        ("<!-- reconciler:plan key=default part=3 -->\nx", ("reconciler:plan", "default", 3, False)),
        ("<!-- reconciler:plan key=a/b.c superseded -->\n", ("reconciler:plan", "a/b.c", None, True)),
        ("<!-- reconciler:apply key=k -->", ("reconciler:apply", "k", None, False)),
        ("hello <!-- reconciler:plan key=default part=1 -->", None),
        ("<!-- reconciler:plan key=bad key part=1 -->", None),
        ("", None),
    ],
)
def test_markers(body: str, parsed: tuple | None) -> None:
    m = parse_marker(body)
    assert (None if m is None else (m.kind, m.key, m.part, m.superseded)) == parsed


def test_marker_round_trip() -> None:
    m = parse_marker(marker("reconciler:plan", "footwear", 2))
    assert m is not None and (m.key, m.part) == ("footwear", 2)


def _plan(*actions: Action) -> Plan:
    return Plan(
        state=StateToken("", 0, "s"), actions=list(actions), batches=[], cost=Cost(), max_batch_size=50
    )


@pytest.mark.parametrize(
    ("actions", "labels"),
    [
        ([], {"renders:none"}),
        ([(ActionKind.NOOP, Reason.UNCHANGED, [])], {"renders:none"}),
        ([(ActionKind.RENDER, Reason.NEW, [])], {"renders:new"}),
        ([(ActionKind.RERENDER, Reason.SPEC_CHANGED, ["the GIF"])], {"renders:spec", "renders:delete"}),
        ([(ActionKind.RERENDER, Reason.REMOTE_MISSING, [])], {"renders:drift"}),
        ([(ActionKind.DELETE, Reason.NOT_IN_MANIFESTS, ["the still"])], {"renders:delete"}),
        (
            [(ActionKind.BLOCKED, Reason.SPEC_CHANGED, ["the GIF"])],
            {"renders:none"},
        ),  # protected: nothing happens
        ([(ActionKind.ORPHAN, Reason.NOT_IN_MANIFESTS, [])], {"renders:none"}),
        ([(ActionKind.RETRY, Reason.FAILED_BEFORE, [])], set()),  # carried over from an earlier run
    ],
)
def test_labels_by_change_category(actions: list, labels: set[str]) -> None:
    plan = _plan(
        *[Action(kind=k, reason=r, product=f"p{i}", deletes=d) for i, (k, r, d) in enumerate(actions)]
    )
    assert labels_for(plan) == labels


def test_workflow_command_escaping_follows_the_actions_toolkit() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"


def test_annotation_lines_cap_and_count() -> None:
    diags = [Diagnostic(SourceLocation("m.yaml", i, 3), f"bad {i}", "f") for i in range(1, 12)]
    lines = annotation_lines(diags, ["m.yaml"] * 11, cap=10)
    assert (
        len(lines) == 10
        and lines[0] == "::error file=m.yaml,line=1,col=3,title=reconciler validate::f: bad 1"
    )
    assert "2 more manifest error(s)" in lines[-1]
    assert annotation_lines([Diagnostic(SourceLocation("m.yaml"), "unreadable")], ["m.yaml"]) == [
        "::error file=m.yaml,title=reconciler validate::unreadable"
    ]


def test_apply_stream_reader_takes_the_plan_events_and_survives_garbage() -> None:
    plan = json.dumps(
        {"kind": "reconciler-plan", "cost": {"frames": 5}, "actions": [{"product": "p2", "name": "Two"}]},
        indent=2,
    )
    text = "\n".join(
        [
            plan,
            "not json at all",
            json.dumps({"event": "Failed", "product": "p2", "name": None, "reason": "boom"}),
            json.dumps({"event": "Recorded", "product": "p1", "name": "One", "attachments": 2}),
            json.dumps({"event": "SomethingNew", "x": 1}),
            json.dumps({"event": "RunFinished", "rendered": 1, "failed": 1, "failures": {"p3": "rejected"}}),
            '{"event": "Recor',
        ]
    )
    run = parse_apply_stream(text)
    assert run.plan is not None and run.plan["cost"] == {"frames": 5} and run.plan["names"] == {"p2": "Two"}
    assert sorted(run.failed) == ["p2", "p3"] and list(run.recorded) == ["p1"]
    assert run.finished is not None and run.unreadable == 2
