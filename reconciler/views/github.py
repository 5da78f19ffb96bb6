"""Markdown for GitHub, as pure functions: plan comments cut to size, labels, annotations, apply reports.

GitHub refuses an issue comment over 65,536 characters and a step summary over 1 MiB, and
shows at most 10 error annotations a step. Everything here is measured in UTF-8 bytes, which
is never less than the characters or UTF-16 units GitHub might count, so a part that fits
here fits on GitHub under every reading of its limit.

``split_markdown`` cuts a markdown document between lines, never inside a table header, and
keeps every part balanced: a part that ends inside ``<details>`` closes it, and the next part
opens it again with the same summary (marked "continued") and the table header. The plan's
table rows are one product each, so the cuts fall on product boundaries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.diagnostics import Diagnostic
from reconciler.plan import ActionKind, Plan
from reconciler.views.plan import render_markdown

COMMENT_LIMIT = 65_536
"""GitHub's limit for an issue comment body ("maximum is 65536 characters")."""
COMMENT_BUDGET = 64_000
"""What one part may take, marker and footer included: 1.5 KB below the limit, for safety."""
STEP_SUMMARY_LIMIT = 1 << 20
"""GitHub's limit for one step's summary; a larger one is not shown and fails the step."""
ANNOTATIONS_PER_STEP = 10
"""GitHub shows 10 error annotations per step (and 50 per job); workflow commands past it vanish."""
CHECK_RUN_BATCH = 50
"""The Checks API takes at most 50 annotations per request; more need further updates."""

PLAN_MARKER = "reconciler:plan"
APPLY_MARKER = "reconciler:apply"

LABELS: dict[str, tuple[str, str]] = {
    "renders:new": ("0e8a16", "reconciler: renders products for the first time"),
    "renders:spec": ("fbca04", "reconciler: re-renders products whose render spec changed"),
    "renders:drift": ("d93f0b", "reconciler: re-renders products that drifted on the platform"),
    "renders:delete": ("b60205", "reconciler: deletes files on the platform (a GIF turned off, or a prune)"),
    "renders:none": ("c5def5", "reconciler: no render changes"),
}
"""The labels a plan puts on its pull request: name → (colour, description)."""

_CATEGORY_LABEL = {"new": "renders:new", "spec": "renders:spec", "drift": "renders:drift"}
_INERT = (ActionKind.NOOP, ActionKind.ORPHAN, ActionKind.BLOCKED)
_SEPARATOR = re.compile(r"^\|(?:\s*:?-+:?\s*\|)+\s*$")
_CLOSE = "\n</details>\n"
# In a table row only the views' own <br> is markup: anything else that starts a tag or an
# HTML comment comes from a product name and could close a <details> or hide the comment.
_ROW_TAG = re.compile(r"<(?!br>)")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of a split document and how many product rows it holds."""

    text: str
    rows: int


def split_markdown(text: str, budget: int) -> list[Part]:
    """Cut ``text`` into parts of at most ``budget`` UTF-8 bytes, balanced (see the module doc).

    A single line longer than the budget is shortened with an ellipsis rather than dropped."""
    if budget < 512:
        raise ValueError("a part budget under 512 bytes cannot hold a table header")
    return _Splitter(budget).run(text.splitlines(keepends=True))


class _Splitter:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.parts: list[Part] = []
        self.buf: list[str] = []
        self.size = 0
        self.rows = 0
        self.stack: list[str] = []  # the opening line of each open <details>, outermost first
        self.table: list[str] | None = None  # header and separator of the table we are in

    def run(self, lines: list[str]) -> list[Part]:
        i = 0
        while i < len(lines):
            unit, kind = self._unit(lines, i)
            i += len(unit)
            if kind == "row":
                unit = [_ROW_TAG.sub("&lt;", unit[0])]
            # An opener is only worth placing with what follows it up to the first row.
            need = _bytes(unit) + (self._lookahead(lines, i) if kind in ("open", "table") else 0)
            if self.buf and self.size + need + self._closing() > self.budget:
                self._flush()
                self._reopen()
            unit = self._fit(unit)
            self._add(unit)
            if kind == "row" and self.stack:
                self.rows += 1
            elif kind == "open":
                self.stack.append(unit[0] if len(unit) == 1 else "".join(unit))
            elif kind == "close" and self.stack:
                self.stack.pop()
            if kind == "table":
                self.table = unit
            elif kind != "row":
                self.table = None
        if self.buf or not self.parts:
            self._flush(final=True)
        return self.parts

    def _unit(self, lines: list[str], i: int) -> tuple[list[str], str]:
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("<details"):
            if (
                stripped in ("<details>", "<details open>")
                and i + 1 < len(lines)
                and lines[i + 1].lstrip().startswith("<summary")
            ):
                return [line, lines[i + 1]], "open"
            return [line], "open"
        if stripped == "</details>":
            return [line], "close"
        if stripped.startswith("|"):
            if self.table is not None:
                return [line], "row"
            if i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1].strip()):
                return [line, lines[i + 1]], "table"
        return [line], "other"

    def _lookahead(self, lines: list[str], i: int) -> int:
        """Bytes of what follows an opener up to its first content line (blank lines, a table header)."""
        total, seen_separator = 0, False
        for line in lines[i : i + 6]:
            total += utf8_len(line)
            stripped = line.strip()
            if not stripped:
                continue
            if _SEPARATOR.match(stripped):
                seen_separator = True
                continue
            if stripped.startswith("|") and not seen_separator:
                continue  # a table's header line
            break
        return total

    def _closing(self) -> int:
        return (len(_CLOSE) + 1) * len(self.stack)

    def _fit(self, unit: list[str]) -> list[str]:
        room = self.budget - self.size - self._closing()
        if _bytes(unit) <= room or len(unit) != 1:
            return unit
        cut = unit[0].encode("utf-8")[: max(room - 8, 0)].decode("utf-8", "ignore").rstrip("\n")
        return [cut + " …\n"]

    def _add(self, unit: list[str]) -> None:
        self.buf.extend(unit)
        self.size += _bytes(unit)

    def _flush(self, final: bool = False) -> None:
        text = "".join(self.buf)
        if not final and self.stack:
            text = text.rstrip("\n") + "\n" + _CLOSE * len(self.stack)
        self.parts.append(Part(text, self.rows))
        self.buf, self.size, self.rows = [], 0, 0

    def _reopen(self) -> None:
        for opening in self.stack:
            self._add([_continued(opening), "\n"])
        if self.table is not None and self.stack:
            self._add(self.table)
        elif self.table is not None:
            self.table = None


def _continued(opening: str) -> str:
    if "(continued)" in opening:
        return opening
    return opening.replace("</summary>", " (continued)</summary>", 1) if "</summary>" in opening else opening


def _bytes(lines: Iterable[str]) -> int:
    return sum(utf8_len(line) for line in lines)


def markdown_head(text: str) -> str:
    """The document before its first ``<details>`` section: the plan's summary and warnings."""
    at = re.search(r"^<details", text, re.M)
    return text if at is None else text[: at.start()]


def cut_markdown(
    text: str, budget: int, *, what: str = "product", rest: str = "The saved plan has them all."
) -> str:
    """``text`` if it fits in ``budget`` bytes, else its first balanced part and a note of what is left out.

    ``rest`` says where the rest can be read."""
    if utf8_len(text) <= budget:
        return text
    note_room = 400
    parts = split_markdown(text, max(budget - note_room, 512))
    total = sum(p.rows for p in parts)
    shown = parts[0].rows
    return parts[0].text.rstrip("\n") + (
        f"\n\n_{total - shown} more {what}(s) not shown: this view is capped at {budget:,} bytes. {rest}_\n"
    )


# --------------------------------------------------------------------------- plan comments


@dataclass(frozen=True, slots=True)
class Links:
    """Where the whole plan can be read when comments cannot hold it."""

    details_url: str | None = None
    """The run whose job summary holds the full plan."""
    artifact_url: str | None = None
    """The uploaded plan artifact."""


def marker(kind: str, key: str, part: int | None = None, *, superseded: bool = False) -> str:
    """The hidden first line that finds our comments again: ``<!-- reconciler:plan key=K part=N -->``."""
    tail = " superseded" if superseded else (f" part={part}" if part is not None else "")
    return f"<!-- {kind} key={key}{tail} -->"


_MARKER = re.compile(r"^<!-- (reconciler:[a-z]+) key=([A-Za-z0-9._/-]+)(?: part=(\d+))?( superseded)? -->")


@dataclass(frozen=True, slots=True)
class Marker:
    kind: str
    key: str
    part: int | None
    superseded: bool


def parse_marker(body: str) -> Marker | None:
    """The marker a comment starts with, or None for anyone else's comment."""
    m = _MARKER.match(body or "")
    if m is None:
        return None
    return Marker(m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None, bool(m.group(4)))


def plan_comment_bodies(
    plan: Plan, *, key: str, max_parts: int, links: Links, footer: str = "", budget: int = COMMENT_BUDGET
) -> list[str]:
    """The plan as one comment or several, each under ``budget`` bytes with its marker and footer.

    More than ``max_parts`` parts and the plan is given as its summary alone, with links to
    where it can be read in full."""
    full = render_markdown(plan, budget=1 << 62)
    tail = f"\n{footer}\n" if footer else ""
    overhead = utf8_len(marker(PLAN_MARKER, key, 999)) + utf8_len(tail) + 200
    parts = split_markdown(full, budget - overhead)
    if len(parts) > max_parts:
        changed = sum(p.rows for p in parts)
        body = (
            markdown_head(full).rstrip("\n") + "\n\n" + _overflow_note(changed, len(parts), max_parts, links)
        )
        return [_body(marker(PLAN_MARKER, key, 1), cut_markdown(body, budget - overhead), tail)]
    bodies = []
    for i, part in enumerate(parts, 1):
        text = part.text
        if len(parts) > 1:
            if i > 1:
                text = f"### reconciler plan, part {i} of {len(parts)}\n\n" + text
            text = (
                text.rstrip("\n")
                + "\n\n"
                + (
                    f"_Part {i} of {len(parts)}: continued in the next comment._"
                    if i < len(parts)
                    else f"_Part {i} of {len(parts)}._"
                )
            )
        bodies.append(_body(marker(PLAN_MARKER, key, i), text, tail))
    return bodies


def _overflow_note(changed: int, parts: int, max_parts: int, links: Links) -> str:
    where = []
    if links.details_url:
        where.append(f"the [job summary]({links.details_url})")
    if links.artifact_url:
        where.append(f"the [plan artifact]({links.artifact_url})")
    see = (
        (" Read it in " + " or ".join(where) + ".")
        if where
        else " Read it with `reconciler show` on the saved plan."
    )
    return (
        f"> [!NOTE]\n> The plan changes {changed} product(s): {parts} comments would be needed, more than "
        f"the limit of {max_parts} (`--max-parts`).{see}\n"
    )


def _body(mark: str, text: str, tail: str) -> str:
    return f"{mark}\n{text.rstrip()}\n{tail}"


def superseded_body(kind: str, key: str) -> str:
    return (
        f"{marker(kind, key, superseded=True)}\n_This part of an earlier reconciler plan is no longer needed; "
        "the current plan is in the comment(s) above._\n"
    )


def labels_for(plan: Plan) -> set[str]:
    """The ``renders:*`` labels that describe a plan (LABELS; docs/gitops.md)."""
    out: set[str] = set()
    for a in plan.actions.built:
        if a.kind in _INERT:
            continue
        label = _CATEGORY_LABEL.get(a.reason.category)
        if label:
            out.add(label)
        if a.deletes:
            out.add("renders:delete")
    if not plan.has_changes:
        out.add("renders:none")
    return out


# --------------------------------------------------------------------------- annotations


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as the Actions toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: Any) -> str:
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items() if v is not None)
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def diagnostic_message(d: Diagnostic) -> str:
    text = f"{d.field}: {d.message}" if d.field else d.message
    return text + (f" ({d.hint})" if d.hint else "")


def annotation_lines(
    diagnostics: Sequence[Diagnostic], paths: Sequence[str], *, cap: int = ANNOTATIONS_PER_STEP, more: int = 0
) -> list[str]:
    """``::error file=…,line=…`` lines, at most ``cap``: past it, the last one says how many more there are.

    ``paths`` are the diagnostics' files as the repository names them; ``more`` counts problems
    the loader found but did not keep."""
    lines = []
    total = len(diagnostics) + more
    shown = diagnostics if total <= cap else diagnostics[: cap - 1]
    for d, path in zip(shown, paths[: len(shown)], strict=True):
        lines.append(
            workflow_command(
                "error",
                diagnostic_message(d),
                file=path,
                line=d.location.line,
                col=d.location.column,
                title="reconciler validate",
            )
        )
    if total > cap:
        lines.append(
            workflow_command(
                "error",
                f"{total - len(shown)} more manifest error(s) not annotated (GitHub shows {cap} "
                "per step): all of them are in the job summary and the log below",
                title="reconciler validate",
            )
        )
    return lines


def check_run_annotations(diagnostics: Sequence[Diagnostic], paths: Sequence[str]) -> list[dict[str, Any]]:
    """Annotations for the Checks API, every one of them (send them in batches of CHECK_RUN_BATCH)."""
    out = []
    for d, path in zip(diagnostics, paths, strict=True):
        line = d.location.line or 1
        item: dict[str, Any] = {
            "path": path,
            "start_line": line,
            "end_line": line,
            "annotation_level": "failure",
            "title": d.field or "manifest",
            "message": diagnostic_message(d),
        }
        if d.location.column:
            item["start_column"] = item["end_column"] = d.location.column
        out.append(item)
    return out


def diagnostics_markdown(diagnostics: Sequence[Diagnostic], paths: Sequence[str], *, more: int = 0) -> str:
    """Every manifest error the loader kept as a table, for the job summary, and how many it did not."""
    total = len(diagnostics) + more
    head = [
        f"### reconciler validate: {total} error{'s' if total != 1 else ''}",
        "",
        "| where | field | problem |",
        "|---|---|---|",
    ]
    rows = []
    for d, path in zip(diagnostics, paths, strict=True):
        where = ":".join(str(x) for x in (path, d.location.line, d.location.column) if x is not None)
        problem = d.message + (f" ({d.hint})" if d.hint else "")
        rows.append(f"| `{where}` | {_cell(d.field or '')} | {_cell(problem)} |")
    tail = [f"\n_and {more} more, not listed: fix these first._"] if more else []
    return "\n".join(head + rows + tail) + "\n"


def _cell(text: str) -> str:
    return _ROW_TAG.sub("&lt;", text.replace("|", "\\|").replace("\n", " "))


# --------------------------------------------------------------------------- apply reports


@dataclass
class ApplyRun:
    """What an ``apply --format json`` stream says happened (read from the stream, not the executor)."""

    plan: dict[str, Any] | None = None
    started: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None
    recorded: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    pruned: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreadable: int = 0
    """Lines that were not JSON (an error message, a cut-off last line)."""


def parse_apply_stream(text: str) -> ApplyRun:
    """Read the plan document and the events that ``apply --format json`` printed, in any state.

    Unknown events are ignored and unreadable lines counted, so a run that died half-way
    still gives a report."""
    run = ApplyRun()
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            nl = text.find("\n", pos)
            pos = end if nl < 0 else nl + 1
            run.unreadable += 1
            continue
        if isinstance(item, dict):
            _take(run, item)
    return run


def _take(run: ApplyRun, item: dict[str, Any]) -> None:
    if item.get("kind") == "reconciler-plan":
        run.plan = {k: v for k, v in item.items() if k not in ("actions", "batches")}
        run.plan["names"] = {
            a.get("product"): a.get("name") for a in item.get("actions") or [] if isinstance(a, dict)
        }
        return
    event = item.get("event")
    product = str(item.get("product", ""))
    if event == "RunStarted":
        run.started = item
    elif event == "RunFinished":
        run.finished = item
        for uuid, reason in (item.get("failures") or {}).items():
            run.failed.setdefault(str(uuid), {"product": uuid, "reason": reason})
            run.recorded.pop(str(uuid), None)
    elif event == "Recorded":
        run.recorded[product] = item
        run.failed.pop(product, None)
    elif event == "Failed":
        run.failed[product] = item
        run.recorded.pop(product, None)
    elif event == "Pruned":
        run.pruned[product] = item


def apply_report_markdown(
    run: ApplyRun, *, exit_code: int | None = None, footer: str = "", error: str | None = None
) -> str:
    """The report of an apply: verdict, what it cost, failures first, then what was rendered (full length).

    ``error``: the run's own error message, quoted under the verdict."""
    names = (run.plan or {}).get("names", {})
    fin = run.finished
    failed, rendered = len(run.failed), len(run.recorded)
    if fin is None and run.plan is not None and not (run.plan.get("summary") or {}).get("changes", True):
        verdict = "Nothing to apply: the state already matches the manifests."
    elif fin is None:
        code = f" (exit code {exit_code})" if exit_code is not None else ""
        verdict = (
            f"> [!CAUTION]\n> The apply run ended before it finished{code}: see the job log. "
            f"{rendered} product(s) were recorded before it stopped; the next plan shows what is left."
        )
    elif exit_code == 3 or int(fin.get("in_flight") or 0):
        # apply --no-wait, or a run stopped by SIGTERM/SIGINT (exit 3): paid for, not yet recorded.
        waiting = int(fin.get("in_flight") or 0)
        why = (
            "was stopped by a signal (the job's time limit, or a cancel)"
            if exit_code == 3
            else "did not wait"
        )
        verdict = (
            f"> [!NOTE]\n> The apply run {why}: {rendered} product(s) recorded, {waiting} in flight"
            + (f", {failed} failed" if failed else "")
            + ". `reconciler collect` waits for those in flight and records them without paying again; "
            "`reconciler status` lists them."
        )
    elif failed:
        verdict = (
            f"> [!WARNING]\n> {failed} product(s) failed and {rendered} rendered. The next plan retries "
            "the failures."
        )
    else:
        verdict = f"All {rendered} product(s) rendered and recorded."
    lines = ["### reconciler apply", "", verdict, ""]
    if error:
        lines += ["```text", error.replace("`", "'"), "```", ""]
    cost = (run.plan or {}).get("cost") or {}
    if fin is not None or cost:
        lines += [
            "| rendered | failed | pruned | render requests | frames | video | API calls | retries "
            "| downloaded | time |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {rendered} | {failed} | {len(run.pruned)} | {cost.get('requests', 0)} "
            f"| {cost.get('frames', 0)} | {cost.get('video_seconds', 0):g} s "
            f"| {_get(fin, 'requests')} | {_get(fin, 'retries')} "
            f"| {_mib(fin)} | {_get(fin, 'seconds', '{:.0f} s')} |",
            "",
        ]
    if failed:
        lines += [
            "<details open><summary>Failed (" + str(failed) + ")</summary>",
            "",
            "| product | name | reason |",
            "|---|---|---|",
        ]
        for uuid, item in sorted(run.failed.items()):
            name = item.get("name") or names.get(uuid) or ""
            lines.append(f"| `{_cell(uuid)}` | {_cell(str(name))} | {_cell(str(item.get('reason', '')))} |")
        lines += ["", "</details>", ""]
    if rendered:
        lines += [
            f"<details><summary>Rendered ({rendered})</summary>",
            "",
            "| product | name | files |",
            "|---|---|---:|",
        ]
        for uuid, item in sorted(run.recorded.items()):
            name = item.get("name") or names.get(uuid) or ""
            lines.append(f"| `{_cell(uuid)}` | {_cell(str(name))} | {item.get('attachments', '')} |")
        lines += ["", "</details>", ""]
    if run.pruned:
        lines += [
            f"<details><summary>Pruned ({len(run.pruned)})</summary>",
            "",
            "| product | name | renders |",
            "|---|---|---|",
        ]
        for uuid, item in sorted(run.pruned.items()):
            what = "deleted" if item.get("deleted") else "kept on the platform"
            lines.append(f"| `{_cell(uuid)}` | {_cell(str(item.get('name') or ''))} | {what} |")
        lines += ["", "</details>", ""]
    if run.unreadable:
        lines.append(f"_{run.unreadable} line(s) of the event stream were not JSON and were skipped._\n")
    if footer:
        lines.append(footer)
    return "\n".join(lines).rstrip("\n") + "\n"


def _get(d: dict[str, Any] | None, key: str, fmt: str = "{}") -> str:
    return "–" if d is None or d.get(key) is None else fmt.format(d[key])


def _mib(fin: dict[str, Any] | None) -> str:
    if fin is None or fin.get("bytes_downloaded") is None:
        return "–"
    return f"{fin['bytes_downloaded'] / (1 << 20):.1f} MiB"
