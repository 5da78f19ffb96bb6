"""Plans as text (terminal), markdown (pull-request comment) and JSON. Pure functions of a Plan."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

from reconciler._gc import gc_paused
from reconciler.plan import Action, ActionKind, Plan, PresetCost, Reason
from reconciler.planner import number

# GitHub refuses comments over 65,536 characters; keep a margin for the tail line.
MARKDOWN_BUDGET = 60_000
PRESET_ROWS = 20
"""Rows of the markdown cost-by-preset table; the JSON plan has every preset."""

_SYMBOL = {
    ActionKind.RENDER: "+",
    ActionKind.RERENDER: "~",
    ActionKind.RETRY: "↻",
    ActionKind.RESUME: "…",
    ActionKind.ORPHAN: "!",
    ActionKind.FORGET: "-",
    ActionKind.DELETE: "-",
    ActionKind.BLOCKED: "#",
    ActionKind.NOOP: " ",
}
_COLOUR = {
    ActionKind.RENDER: "32",
    ActionKind.RERENDER: "33",
    ActionKind.RETRY: "33",
    ActionKind.RESUME: "36",
    ActionKind.ORPHAN: "35",
    ActionKind.FORGET: "35",
    ActionKind.DELETE: "31",
    ActionKind.BLOCKED: "35",
    ActionKind.NOOP: "0",
}
_REASON_TITLE = {
    Reason.NEW: "New products",
    Reason.SPEC_CHANGED: "Spec changed",
    Reason.FORCED: "Forced re-render (--replace)",
    Reason.FAILED_BEFORE: "Failed before, retried",
    Reason.IN_FLIGHT: "In flight, will be waited for",
    Reason.REMOTE_MISSING: "Drift: renders missing on the platform",
    Reason.REMOTE_REPLACED: "Drift: re-rendered outside the reconciler",
    Reason.CONTENT_CHANGED: "Drift: content changed",
    Reason.FOREIGN_FILES: "Files the reconciler did not make (left alone)",
    Reason.NOT_IN_MANIFESTS: "Orphans",
}


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    extra = "".join(
        f", {c[k]} {label}" for k, label in (("orphan", "orphaned"), ("blocked", "blocked")) if c[k]
    )
    foreign = sum(1 for a in plan.actions.built if a.reason is Reason.FOREIGN_FILES)
    if foreign:
        extra += f", {foreign} holding files the reconciler did not make (left alone)"
    waiting = f" {plan.waiting} other change(s) wait (not targeted)." if plan.waiting else ""
    if not plan.has_changes:
        return f"No changes. {c['noop']} products up to date{extra}.{waiting}"
    pruned = "".join(f", {c[k]} to {k}" for k in ("forget", "delete") if c[k])
    return (
        f"Plan: {c['render']} to render, {c['rerender']} to re-render, {c['retry']} to retry, "
        f"{c['resume']} to resume{pruned}; {c['noop']} unchanged{extra}.{waiting}"
    )


def limits_text(plan: Plan) -> str:
    """Why the breaker refuses this plan, or an empty string."""
    if not plan.limits_tripped:
        return ""
    verdict = "allowed by --allow-large" if plan.allow_large else "refused without --allow-large"
    return "Large change (" + verdict + "): " + "; ".join(plan.limits_tripped)


def budget_text(plan: Plan) -> str:
    """What the plan uses of its budget, or why the budget refuses it; empty without a budget."""
    if plan.over_budget:
        verdict = (
            "allowed by --allow-over-budget"
            if plan.allow_over_budget
            else "refused without --allow-over-budget"
        )
        return "Over budget (" + verdict + "): " + "; ".join(plan.over_budget)
    b, k = plan.budget, plan.cost
    used = [
        f"{number(figure)}{unit} of {number(limit)}{unit} {what}"
        for limit, figure, what, unit in (
            (b.max_frames, k.frames, "frames", ""),
            (b.max_requests, k.requests, "render requests", ""),
            (b.max_video_seconds, k.video_seconds, "of video", " s"),
        )
        if limit is not None
    ]
    return "Within budget: " + ", ".join(used) + "." if used else ""


def _named_presets(plan: Plan) -> list[PresetCost]:
    """The cost by preset, if any product triggered uses a preset."""
    rows = list(plan.cost.presets)
    return rows if any(r.preset is not None for r in rows) else []


def _preset_label(row: PresetCost) -> str:
    return "(no preset)" if row.preset is None else row.preset


def cost_line(plan: Plan) -> str:
    k = plan.cost
    if not k.requests:
        return "Cost: nothing to trigger."
    gifs = f", {k.gifs} GIF{'s' if k.gifs != 1 else ''}" if k.gifs else ""
    return (
        f"Cost: {k.requests} API request{'s' if k.requests != 1 else ''} for {k.products} product"
        f"{'s' if k.products != 1 else ''}: {k.frames} frames ({k.stills} stills + {k.turntable_frames} "
        f"turntable frames), {k.video_seconds:g} s of video{gifs}."
    )


def spec_summary(spec: dict[str, Any]) -> str:
    tt = spec["turntable"]
    return (
        f"still {spec['imageFormat']} {spec['imageWidth']}x{spec['imageHeight']}, turntable {tt['imageCount']} "
        f"frames @ {tt['frameRate']} fps {tt['width']}x{tt['height']}{' + GIF' if tt['includeGif'] else ''}"
    )


def _changes(a: Action) -> str:
    return ", ".join(f"{c.field} {_v(c.old)} → {_v(c.new)}" for c in a.changes)


def _v(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def render_text(plan: Plan, *, colour: bool = False, show_noop: bool = False) -> str:
    def paint(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour and code != "0" else text

    def bold(text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if colour else text

    lines = [f"State: {plan.state.location or '(new)'} (serial {plan.state.serial})", ""]
    for a in plan.actions if show_noop else plan.actions.built:
        if a.kind is ActionKind.NOOP and not show_noop and a.reason is Reason.UNCHANGED:
            continue
        label = f"{_SYMBOL[a.kind]} {a.kind.value:<8}"
        lines.append(f"  {paint(_COLOUR[a.kind], label)} {a.product}  {a.name or ''}".rstrip())
        why = a.reason.value.replace("_", " ")
        if a.changes:
            why += ": " + _changes(a)
        elif a.kind is ActionKind.RENDER and a.spec:
            why += ": " + spec_summary(a.spec)
        elif a.detail:
            why += ": " + a.detail
        lines.append(f"      {why}")
        effect = a.effect()
        if effect:
            if a.deletes and colour:
                effect = effect.replace("deletes ", bold(paint("31", "deletes ")))
            lines.append(f"      {effect}")
    if len(lines) > 2:
        lines.append("")
    if plan.batches:
        lines.append(f"Batches: {len(plan.batches)} request(s), at most {plan.max_batch_size} products each")
        lines.extend(
            f"  #{b.index + 1}: {len(b.products)} product(s)"
            + (f" in workspace {b.workspace}" if b.workspace else "")
            + f", {spec_summary(b.spec)}"
            for b in plan.batches
        )
        lines.append("")
    lines.append(cost_line(plan))
    presets = _named_presets(plan)
    if presets:
        width = max(len(_preset_label(r)) for r in presets)
        pw, fw = (
            max(len(f"{n:,}") for n in column)
            for column in ([r.products for r in presets], [r.frames for r in presets])
        )
        lines.append("Cost by preset:")
        lines.extend(
            f"  {_preset_label(r):<{width}}  {r.products:>{pw},} product{'s' if r.products != 1 else ' '}"
            f"  {r.frames:>{fw},} frames  {number(r.video_seconds)} s of video"
            for r in presets
        )
    lines.append(bold(summary_line(plan)))
    pending = in_flight_text(plan)
    if pending:
        lines.append(pending)
    if plan.limits_tripped:
        lines.append(paint("31", limits_text(plan)))
    budget = budget_text(plan)
    if budget:
        lines.append(paint("31", budget) if plan.over_budget else budget)
    return "\n".join(lines) + "\n"


def in_flight_text(plan: Plan) -> str:
    """A line on the products in flight (triggered earlier, paid for), if any."""
    resumes = sum(1 for a in plan.actions.built if a.kind is ActionKind.RESUME)
    if not resumes:
        return ""
    return (
        f"{resumes} product(s) in flight: triggered earlier and paid for; apply waits for them, "
        "'reconciler collect' records them without triggering anything, 'reconciler status' shows their age."
    )


_ONE_LINE = json.JSONEncoder(ensure_ascii=False)


@gc_paused()  # see reconciler/_gc.py
def render_json(plan: Plan) -> str:
    """The plan document (docs/plan-format.md), indented, with one action or batch per line.

    One line per item keeps a 100,000-product plan greppable and prints it in about a second
    (json's C encoder cannot indent; the pure-Python one took several seconds), and actions
    are encoded one at a time rather than all built first (500 MB less at 10^5 products)."""
    out = io.StringIO()
    out.write("{\n")
    for key, value in plan.head_json().items():
        out.write(f"  {json.dumps(key)}: ")
        if key == "batches" and value:
            _write_lines(out, value)
        else:
            out.write(json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  "))
        out.write(",\n")
    out.write('  "actions": ')
    _write_text_lines(out, plan.actions.json_lines())
    out.write("\n}\n")
    return out.getvalue()


def _write_lines(out: io.StringIO, items: Iterable[Any]) -> None:
    _write_text_lines(out, map(_ONE_LINE.encode, items))


def _write_text_lines(out: io.StringIO, lines: Iterable[str]) -> None:
    """A JSON array of items already encoded, one a line."""
    out.write("[")
    sep = "\n    "
    for line in lines:
        out.write(sep)
        out.write(line)
        sep = ",\n    "
    out.write("\n  ]" if sep != "\n    " else "]")


def render_markdown(plan: Plan, *, budget: int = MARKDOWN_BUDGET) -> str:
    """A pull-request comment: summary table first, changes grouped by reason, cut to ``budget``."""
    c = plan.counts()
    k = plan.cost
    head = [
        "### reconciler plan",
        "",
        "| render | re-render | retry | resume | unchanged | orphaned | blocked | API requests | frames | video |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {c['render']} | {c['rerender']} | {c['retry']} | {c['resume']} | {c['noop']} "
        f"| {c['orphan'] + c['forget'] + c['delete']} | {c['blocked']} "
        f"| {k.requests} | {k.frames} | {k.video_seconds:g} s |",
        "",
        f"**{summary_line(plan)}**",
        "",
    ]
    presets = _named_presets(plan)
    if presets:
        head += ["| preset | products | frames | video |", "|---|---:|---:|---:|"]
        head += [
            f"| {_md(_preset_label(r))} | {r.products} | {r.frames} | {number(r.video_seconds)} s |"
            for r in presets[:PRESET_ROWS]
        ]
        if len(presets) > PRESET_ROWS:
            head.append(f"\n_{len(presets) - PRESET_ROWS} more presets: the JSON plan has them all._")
        head.append("")
    pending = in_flight_text(plan)
    if pending:
        head.append(f"> [!NOTE]\n> {pending}\n")
    if plan.limits_tripped:
        head.append(f"> [!CAUTION]\n> {limits_text(plan)}\n")
    spent = budget_text(plan)
    if plan.over_budget:
        head.append(f"> [!CAUTION]\n> {_md(spent)}\n")
    elif spent:
        head.append(f"_{spent}_\n")
    deleting = [a for a in plan.actions.built if a.deletes]
    if deleting:
        head.append(
            f"> [!WARNING]\n> {len(deleting)} product(s) lose existing files (a GIF turned off, "
            "or renders deleted by --prune=delete).\n"
        )
    out = "\n".join(head) + "\n"  # a blank line before the first <details>, whatever came last
    groups: dict[Reason, list[Action]] = {}
    for a in plan.actions.built:
        if a.kind is not ActionKind.NOOP or a.reason is Reason.FOREIGN_FILES:
            groups.setdefault(a.reason, []).append(a)
    shown = 0
    total = sum(len(v) for v in groups.values())
    for reason, actions in groups.items():
        section_head = (
            f"<details><summary>{_REASON_TITLE.get(reason, reason.value)} ({len(actions)})</summary>\n\n"
        )
        section_head += "| product | name | change |\n|---|---|---|\n"
        if len(out) + len(section_head) + 200 > budget:
            break
        out += section_head
        for a in actions:
            what = (
                _changes(a)
                or (spec_summary(a.spec) if a.kind is ActionKind.RENDER and a.spec else a.detail)
                or ""
            )
            effect = _md(a.effect()).replace("deletes ", "**deletes** ")
            row = (
                f"| `{a.product}` | {_md(a.name or '')} | {_md(what)}{'<br>' + effect if effect else ''} |\n"
            )
            if len(out) + len(row) + 200 > budget:
                break
            out += row
            shown += 1
        out += "\n</details>\n\n"
    if shown < total:
        out += f"_{total - shown} more not shown._\n"
    return out


def _md(text: str) -> str:
    """Text for a markdown table cell: no HTML of its own (a product name could close the
    comment's ``<details>`` or open a tag), no column break, one line."""
    # Escaping "&" and "<" is enough: without a "<" no text can start a tag or an HTML comment.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|").replace("\n", " ")
