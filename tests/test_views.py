"""Plan views: text for a terminal, markdown for a pull request, JSON for machines."""

from __future__ import annotations

import json
import re

from reconciler.plan import Plan
from reconciler.planner import PlanOptions, build_plan
from reconciler.spec import Desired
from reconciler.views.plan import MARKDOWN_BUDGET, render_json, render_markdown, render_text
from tests.test_planner import P1, P2, P3, P4, WEBP_NO_GIF, desired, record, state

ANSI = re.compile(r"\x1b\[[0-9;]*m")
GITHUB_COMMENT_LIMIT = 65_536


def mixed_plan() -> Plan:
    return build_plan(
        desired({P1: WEBP_NO_GIF, P2: {}, P3: {}, P4: {}}, names={P1: "Chair | oak", P2: "New"}),
        state(
            {
                P1: record(),
                P3: record(status="failed", error="render timed out"),
                P4: record(),
                "55555555-5555-4555-8555-555555555555": record(name="Gone"),
            }
        ),
        location="s.json",
    )


def big_plan(n: int = 5000) -> Plan:
    return build_plan(
        desired(
            {f"{i:08x}-0000-4000-8000-000000000000": {} for i in range(n)},
            names={f"{i:08x}-0000-4000-8000-000000000000": f"Product {i}" for i in range(n)},
        ),
        state({}),
    )


def test_text_lists_each_change_with_its_reason_and_effect() -> None:
    text = render_text(mixed_plan())
    assert "State: s.json (serial 7)" in text
    assert f"~ rerender {P1}  Chair | oak" in text
    assert "spec changed: imageFormat PNG → WEBP, turntable.includeGif true → false" in text
    assert "replaces still PNG→WEBP and the MP4 turntable; deletes the GIF" in text
    assert f"+ render   {P2}  New" in text
    assert "failed before: render timed out" in text
    assert "not in the manifests; its renders are kept" in text
    assert P4 not in text  # unchanged products are hidden by default
    assert "Plan: 1 to render, 1 to re-render, 1 to retry, 0 to resume; 1 unchanged, 1 orphaned." in text
    assert (
        "Cost: 2 API requests for 3 products: 111 frames (3 stills + 108 turntable frames), 9 s of video, 2 GIFs."
        in text
    )


def test_text_shows_unchanged_products_when_asked() -> None:
    assert P4 in render_text(mixed_plan(), show_noop=True)


def test_text_is_plain_without_colour_and_coloured_with_it() -> None:
    plan = mixed_plan()
    plain = render_text(plan, colour=False)
    coloured = render_text(plan, colour=True)
    assert not ANSI.search(plain)
    assert ANSI.search(coloured)
    assert ANSI.sub("", coloured) == plain
    assert "\x1b[31m" in coloured  # the deletion is red


def test_text_says_no_changes_when_there_are_none() -> None:
    plan = build_plan(desired({P1: {}}), state({P1: record()}))
    text = render_text(plan)
    assert text.endswith("Cost: nothing to trigger.\nNo changes. 1 products up to date.\n")


def test_markdown_starts_with_the_summary_table_and_groups_changes_by_reason() -> None:
    md = render_markdown(mixed_plan())
    lines = md.splitlines()
    assert lines[0] == "### reconciler plan"
    assert lines[2].startswith("| render | re-render | retry | resume | unchanged | orphaned |")
    sections = re.findall(r"<details><summary>(.+?)</summary>", md)
    assert sections == ["Spec changed (1)", "New products (1)", "Failed before, retried (1)", "Orphans (1)"]
    assert md.index("| render |") < md.index("<details>")
    assert "Chair \\| oak" in md  # a pipe in a name does not break the table
    assert "**deletes** the GIF" in md
    assert "> [!WARNING]" in md
    assert "more not shown" not in md
    assert "\n\n<details>" in md  # an HTML block after a blank line, so no renderer glues it to the quote


def test_markdown_without_warnings_still_separates_the_sections() -> None:
    md = render_markdown(big_plan(3))
    assert "**\n\n<details>" in md


def test_markdown_cuts_a_big_plan_under_githubs_comment_limit_and_says_how_many_are_left() -> None:
    plan = big_plan()
    md = render_markdown(plan)
    assert len(md) < GITHUB_COMMENT_LIMIT
    assert len(md) <= MARKDOWN_BUDGET
    rows = len(re.findall(r"^\| `[0-9a-f-]{36}` \|", md, re.M))
    assert 100 < rows < 5000
    assert md.rstrip().endswith(f"_{5000 - rows} more not shown._")
    assert md.count("<details>") == md.count("</details>")  # still well-formed after the cut


def test_markdown_budget_is_respected_for_any_budget() -> None:
    plan = big_plan(300)
    for budget in (2_000, 5_000, 20_000):
        md = render_markdown(plan, budget=budget)
        assert len(md) <= budget
        rows = len(re.findall(r"^\| `", md, re.M))
        assert md.rstrip().endswith(f"_{300 - rows} more not shown._")


def test_json_is_the_versioned_plan_document() -> None:
    plan = mixed_plan()
    data = json.loads(render_json(plan))
    assert data == json.loads(json.dumps(plan.to_json()))
    assert data["format_version"] == 1 and data["kind"] == "reconciler-plan"
    assert data["state"] == {"lineage": "lineage-1", "serial": 7, "location": "s.json"}
    summary = data["summary"]
    assert (
        summary["render"],
        summary["rerender"],
        summary["retry"],
        summary["orphan"],
        summary["noop"],
        summary["changes"],
    ) == (1, 1, 1, 1, 1, True)
    assert [a["product"] for a in data["actions"]] == sorted(a["product"] for a in data["actions"])
    assert {a["kind"] for a in data["actions"]} == {"render", "rerender", "retry", "orphan", "noop"}


def test_json_prints_one_action_and_one_batch_per_line() -> None:
    plan = mixed_plan()
    lines = render_json(plan).splitlines()
    assert sum(1 for line in lines if line.lstrip().startswith('{"kind":')) == len(plan.actions)
    assert sum(1 for line in lines if line.lstrip().startswith('{"index":')) == len(plan.batches)
    assert lines[0] == "{" and lines[1] == '  "format_version": 1,'


def test_plan_json_carries_every_action_field() -> None:
    """to_json builds action dicts by hand for speed: they must be what asdict gives."""
    from dataclasses import asdict

    plan = mixed_plan()
    for action, data in zip(plan.actions, plan.to_json()["actions"], strict=True):
        expected = {
            **asdict(action),
            "kind": action.kind.value,
            "reason": action.reason.value,
            "category": action.reason.category,
            "effect": action.effect(),
        }
        assert data == expected
        assert list(data) == list(expected)
        if action.spec is not None:
            assert data["spec"] is not action.spec  # a copy: editing the document leaves the plan alone


def test_json_of_an_empty_plan_is_valid() -> None:
    data = json.loads(render_json(build_plan(desired({}), state({}))))
    assert (data["actions"], data["batches"]) == ([], [])


# -- product names are text, never markup ---------------------------------------------------------


def test_markdown_escapes_html_in_names_and_file_names_so_no_row_can_close_the_section() -> None:
    plan = build_plan(
        desired({P1: {}, P2: {}}, names={P1: "</details><details open><summary>x", P2: "A & B <b>"}),
        state({}),
    )
    plan.actions[1].keeps = ["</details>.png (RENDER)"]  # a file on the platform the reconciler did not make
    md = render_markdown(plan)
    assert md.count("<details>") == md.count("</details>") == 1
    assert "&lt;/details>&lt;details open>&lt;summary>x" in md
    assert "| A &amp; B &lt;b> |" in md
    assert "leaves alone &lt;/details>.png (RENDER)" in md
    assert "<details open>" not in md and "<b>" not in md


# -- cost by preset and budgets -------------------------------------------------------------------


def preset_plan(**options: object) -> Plan:
    from tests.test_planner import desired_with_presets

    world = desired_with_presets(
        {P1: ("hero", {}), P2: ("hero", {"imageWidth": 1000}), P3: (None, {}), P4: ("<b>odd</b>", {})}
    )
    return build_plan(world, state({}), PlanOptions(**options))  # type: ignore[arg-type]


def test_text_shows_the_cost_by_preset_when_presets_are_used() -> None:
    text = render_text(preset_plan())
    assert (
        "Cost by preset:\n"
        "  <b>odd</b>   1 product   37 frames  3 s of video\n"
        "  hero         2 products  74 frames  6 s of video\n"
        "  (no preset)  1 product   37 frames  3 s of video\n"
    ) in text
    assert "Cost by preset" not in render_text(mixed_plan())


def test_markdown_shows_the_cost_by_preset_in_its_head() -> None:
    md = render_markdown(preset_plan())
    assert (
        "| preset | products | frames | video |\n|---|---:|---:|---:|\n| &lt;b>odd&lt;/b> | 1 | 37 | 3 s |\n"
        "| hero | 2 | 74 | 6 s |\n| (no preset) | 1 | 37 | 3 s |\n"
    ) in md
    assert md.index("| preset |") < md.index("<details>")
    assert "| preset |" not in render_markdown(mixed_plan())


def test_markdown_lists_twenty_presets_and_counts_the_rest() -> None:
    from tests.test_planner import desired_with_presets

    world = desired_with_presets(
        {f"{i:08x}-0000-4000-8000-000000000000": (f"p{i:02}", {}) for i in range(25)}
    )
    md = render_markdown(build_plan(world, state({})))
    assert (
        len(re.findall(r"^\| p\d\d \|", md, re.M)) == 20
        and "_5 more presets: the JSON plan has them all._" in md
    )


def test_an_over_budget_plan_says_so_in_every_view() -> None:
    from reconciler.plan import Budget

    plan = preset_plan(budget=Budget(max_frames=100, max_requests=9, sources={"max_frames": "--max-frames"}))
    assert plan.budget_refused
    why = "Over budget (refused without --allow-over-budget): 148 frames, more than the budget of 100 (--max-frames)"
    assert render_text(plan).endswith(why + "\n")
    assert "\x1b[31m" + why in render_text(plan, colour=True)
    md = render_markdown(plan)
    assert f"> [!CAUTION]\n> {why}\n" in md and md.index("[!CAUTION]") < md.index("<details>")
    data = json.loads(render_json(plan))
    assert data["over_budget"] == ["148 frames, more than the budget of 100 (--max-frames)"]
    assert data["allow_over_budget"] is False and data["budget"]["max_frames"] == 100

    allowed = preset_plan(budget=Budget(max_frames=100), allow_over_budget=True)
    assert "Over budget (allowed by --allow-over-budget)" in render_markdown(allowed)


def test_a_plan_within_its_budget_says_how_much_it_uses() -> None:
    from reconciler.plan import Budget

    plan = preset_plan(budget=Budget(max_frames=1000, max_video_seconds=12.5))
    assert render_text(plan).endswith("Within budget: 148 of 1,000 frames, 12 s of 12.5 s of video.\n")
    assert "_Within budget: 148 of 1,000 frames, 12 s of 12.5 s of video._" in render_markdown(plan)
    assert "budget" not in render_text(preset_plan()).lower()


def test_the_pull_request_comment_shows_an_over_budget_plan_as_refused_even_in_its_summary_alone() -> None:
    from reconciler.plan import Budget
    from reconciler.views.github import Links, plan_comment_bodies

    small = build_plan(desired({P1: {}}), state({}), PlanOptions(budget=Budget(max_frames=1)))
    (one,) = plan_comment_bodies(small, key="k", max_parts=5, links=Links())
    assert "> [!CAUTION]\n> Over budget (refused without --allow-over-budget): 37 frames" in one
    big = build_plan(_big_desired(), state({}), PlanOptions(max_batch_size=1, budget=Budget(max_requests=10)))
    bodies = plan_comment_bodies(big, key="k", max_parts=1, links=Links())  # too long: the summary alone
    assert len(bodies) == 1 and "comments would be needed" in bodies[0]
    assert (
        "> [!CAUTION]\n> Over budget (refused without --allow-over-budget): 5,000 render requests"
        in bodies[0]
    )


def _big_desired(n: int = 5000) -> Desired:
    return desired(
        {f"{i:08x}-0000-4000-8000-000000000000": {} for i in range(n)},
        names={f"{i:08x}-0000-4000-8000-000000000000": f"Product {i}" for i in range(n)},
    )
