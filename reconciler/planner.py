"""The planner: desired manifests + recorded state (+ what the platform holds) in, a ``Plan`` out.

Pure: no I/O, clock or environment. Decisions, per product:
  in manifests, not in state                         → render   (new)
  recorded failed at the wanted spec                 → retry    (failed_before)
  requested / in flight with the desired spec        → resume   (in_flight): wait, never pay twice
  spec hash differs from the recorded/in-flight one  → rerender (spec_changed)
  platform lost / replaced / altered its files       → rerender (remote_missing / remote_replaced /
                                                       content_changed), from state or ``observed``
  named in ``replace``                               → rerender (forced)
  recorded, not in manifests                         → orphan, or forget/delete with ``prune``
  protected, and any of the above would replace or
  delete its renders                                 → blocked
  ``observed`` shows render files the reconciler did
  not make, and a trigger (which may replace them)
  is due but the product is not named in ``replace`` → blocked
  ``observed`` shows such files, nothing else to do  → noop (foreign_files): left alone
  otherwise                                          → noop
What the reconciler made is decided by ``reconciler.observed`` (the uuids the state records).
``--prune=delete`` deletes only those files; every other file on the product is listed as
left alone.
Triggers are grouped by identical spec into batches of at most ``max_batch_size``. Targeting
(``targets``/``excludes``: uuids or globs on names) leaves other products' changes waiting.
The large-change breaker lists the limits a plan exceeds; apply refuses it unless allowed.
The budget (``Budget``: frames, trigger requests, seconds of video) is checked against the
plan's cost the same way; ``recheck_budget`` does it again for a saved plan at apply time.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from reconciler._gc import gc_paused
from reconciler.errors import PlanOptionsError as PlanOptionsError  # re-exported: callers import it here
from reconciler.errors import SelectionError as SelectionError  # re-exported: callers import it here
from reconciler.observed import (
    Observed,
    ObservedProduct,
    describe,
    foreign_renders,
    is_render,
    recorded_uuids,
)
from reconciler.plan import (
    Action,
    ActionKind,
    Actions,
    Batch,
    Budget,
    Cost,
    FieldChange,
    Plan,
    PresetCost,
    Reason,
    StateToken,
    Unchanged,
    unchanged_action,
)
from reconciler.spec import Desired, ProductSpec
from reconciler.state.model import ProductRecord, RecordedState, Status, attachment_kind

DEFAULT_MAX_BATCH_SIZE = 50


@dataclass(frozen=True)
class Limits:
    """The large-change breaker. Re-renders trip it above ``rerender_share`` of the catalogue
    (but never below ``rerender_floor`` products, so small catalogues are not nagged);
    deletions trip it above ``max_deletes`` products."""

    rerender_share: float = 0.25
    rerender_floor: int = 10
    max_deletes: int = 10


@dataclass(frozen=True)
class PlanOptions:
    """What shapes a plan besides the manifests, the state and what the platform holds: the options
    of ``plan`` and ``apply`` as the planner takes them."""

    replace: tuple[str, ...] = ()
    """Product uuids to re-render regardless of their state."""
    targets: tuple[str, ...] = ()
    """Only these products (uuids, or globs on the name); the others wait."""
    excludes: tuple[str, ...] = ()
    """Leave these products out (uuids, or globs on the name)."""
    prune: str | None = None
    """What to do with orphans: None (keep), "forget" or "delete"."""
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    limits: Limits = field(default_factory=Limits)
    """The large-change breaker."""
    allow_large: bool = False
    budget: Budget = field(default_factory=Budget)
    """The most the plan may trigger (``over_budget`` lists what it exceeds)."""
    allow_over_budget: bool = False


@gc_paused()  # ~10^5 actions at once: see reconciler/_gc.py
def build_plan(
    desired: Desired,
    state: RecordedState,
    options: PlanOptions | None = None,
    *,
    location: str = "",
    observed: Observed | None = None,
) -> Plan:
    """Compute the plan for ``desired`` against ``state`` (recorded at ``location``), shaped by
    ``options``; ``observed``: what the platform holds now (``--refresh``), drift becomes re-renders."""
    options = options or PlanOptions()
    replace, max_batch_size, prune = options.replace, options.max_batch_size, options.prune
    if max_batch_size < 1:
        raise PlanOptionsError("max batch size must be at least 1")
    if prune not in (None, "forget", "delete"):
        raise PlanOptionsError(f"--prune takes 'forget' or 'delete', not {prune!r}")
    forced = {u.lower() for u in replace}
    unknown = sorted(forced - desired.products.keys())
    if unknown:
        raise PlanOptionsError(
            "--replace names products that are not in the manifests: " + ", ".join(unknown)
        )
    targets, excludes = list(options.targets), list(options.excludes)
    selection = _Selection(targets, excludes)
    diffs: dict[tuple[str, str], list[FieldChange]] = {}
    rows: list[Action | Unchanged] = []  # in uuid order; an unchanged product stays its ProductSpec
    built: list[Action] = []  # the Actions of rows
    waiting = 0
    records = state.products
    # A lazy state read (reconciler.state.index) tells an unchanged product from its index alone:
    # rendered, at the wanted spec, every file recorded. Offline only: a refresh looks at them all.
    ready = getattr(records, "unchanged", None) if observed is None else None
    unchanged: dict[str, str] = ready() if ready is not None else {}
    everything = not targets and not excludes
    for uuid in sorted(desired.products.keys() | records.keys()):
        want = desired.products.get(uuid)
        if want is not None and unchanged.get(uuid) == want.spec_hash and uuid not in forced:
            if everything or selection.selected(uuid, want.name):
                rows.append(want)  # its Action is made only if asked for (plan.Actions)
            continue
        have = records.get(uuid)
        seen = observed.products.get(uuid) if observed else None
        if want is None:
            assert have is not None
            action = _orphan(uuid, have, prune, seen)
        else:
            action = _decide(want, have, uuid in forced, diffs, seen, bool(observed and observed.verified))
            action = _foreign(action, have, seen, uuid in forced)
        if not selection.selected(uuid, action.name):
            waiting += action.kind is not ActionKind.NOOP
            continue
        action = _guard(action, want, have)
        rows.append(action)
        built.append(action)
    selection.check(desired, state)
    actions = Actions(rows, built)
    batches = _batch(actions.built, desired, max_batch_size)
    plan = Plan(
        state=StateToken(state.lineage, state.serial, location),
        actions=actions,
        batches=batches,
        cost=_cost(batches, desired),
        max_batch_size=max_batch_size,
        targets=targets,
        excludes=excludes,
        waiting=waiting,
        allow_large=options.allow_large,
        prune=prune,
        refreshed=observed is not None,
        workspaces=dict(desired.workspaces),
    )
    plan.limits_tripped = _tripped(plan, len(desired.products), options.limits)
    plan.budget = options.budget
    plan.over_budget = over_budget(plan.cost, plan.budget)
    plan.allow_over_budget = options.allow_over_budget
    return plan


class _Selection:
    """``--target`` / ``--exclude``: uuids, or globs on the name; remembers which patterns matched."""

    def __init__(self, targets: list[str], excludes: list[str]) -> None:
        self.targets, self.excludes = targets, excludes
        self._unmatched = {("--target", p) for p in targets} | {("--exclude", p) for p in excludes}

    def _hit(self, option: str, patterns: list[str], uuid: str, name: str | None) -> bool:
        hit = False
        for p in patterns:
            if fnmatchcase(uuid, p.lower()) or (name is not None and fnmatchcase(name, p)):
                hit = True
                self._unmatched.discard((option, p))
                if not self._unmatched:
                    break
        return hit

    def selected(self, uuid: str, name: str | None) -> bool:
        chosen = not self.targets or self._hit("--target", self.targets, uuid, name)
        excluded = bool(self.excludes) and self._hit("--exclude", self.excludes, uuid, name)
        return chosen and not excluded

    def check(self, desired: Desired, state: RecordedState) -> None:
        """Raise SelectionError naming each pattern that matched nothing, with close names."""
        if not self._unmatched:
            return
        names = {p.name for p in desired.products.values() if p.name}
        names.update(r.name for r in state.products.values() if r.name)
        pool = sorted(names) + sorted(desired.products.keys() | state.products.keys())
        lines, hints = [], []
        for option, pattern in sorted(self._unmatched, key=lambda u: (u[0] != "--target", u[1])):
            lines.append(f"{option} {pattern!r}")
            close = _close_names(pattern, pool)
            if close:
                hints.append(f"for {pattern!r} did you mean " + " or ".join(repr(c) for c in close) + "?")
        which = "pattern matches" if len(lines) == 1 else "patterns match"
        raise SelectionError(
            f"the selection {', '.join(lines)}: {which} no product in the manifests or the state",
            hint="; ".join(hints)
            + ("; " if hints else "")
            + "a pattern is a product uuid or a glob on its name "
            "(case-sensitive, e.g. 'Trail*'); 'reconciler validate' checks the manifests and 'reconciler state "
            "list' lists the recorded products",
        )


def _close_names(pattern: str, pool: list[str]) -> list[str]:
    """Up to three names or uuids a mistyped pattern probably meant: a case-insensitive match
    first, then the names whose start (or whole) is closest to the pattern's literal part."""
    folded = [c for c in pool if fnmatchcase(c.lower(), pattern.lower())]
    if folded:
        return folded[:3]
    stem = pattern.lower().strip("*?[]")
    if not stem:
        return []
    scored = []
    for c in pool:
        low = c.lower()
        score = max(
            difflib.SequenceMatcher(None, stem, low).ratio(),
            difflib.SequenceMatcher(None, stem, low[: len(stem)]).ratio(),
        )
        if score >= 0.75:
            scored.append((-score, c))
    return [c for _, c in sorted(scored)[:3]]


def _orphan(uuid: str, have: ProductRecord, prune: str | None, seen: ObservedProduct | None) -> Action:
    kind = {None: ActionKind.ORPHAN, "forget": ActionKind.FORGET, "delete": ActionKind.DELETE}[prune]
    detail = {
        ActionKind.ORPHAN: "not in the manifests; its renders are kept",
        ActionKind.FORGET: "not in the manifests; dropped from the state, its renders stay on the platform",
        ActionKind.DELETE: "not in the manifests; the renders the reconciler made are deleted on the "
        "platform",
    }[kind]
    action = Action(
        kind, Reason.NOT_IN_MANIFESTS, uuid, name=have.name, previous_hash=have.spec_hash, detail=detail
    )
    if kind is ActionKind.DELETE:
        ours = recorded_uuids(have)
        if seen is None:
            action.deletes = [_describe(a.kind, have.spec) for a in have.attachments] or ["nothing recorded"]
            action.keeps = [
                "every other file on the product (uploads, QR codes, renders the reconciler did not make)"
            ]
        else:
            kinds = {a.uuid: a.kind for a in have.attachments}
            mine = [a for a in seen.attachments if a.uuid in ours and is_render(a.entity_type)]
            action.deletes = [
                _describe(kinds.get(a.uuid) or attachment_kind(a.entity_type, a.name), have.spec)
                for a in mine
            ] or ["nothing (none of its recorded renders is left)"]
            taken = {a.uuid for a in mine}
            action.keeps = [describe(a) for a in seen.attachments if a.uuid not in taken]
    return action


def _foreign(
    action: Action, have: ProductRecord | None, seen: ObservedProduct | None, forced: bool
) -> Action:
    """Render files the reconciler did not make: never replaced without ``--replace``, always named.

    A trigger replaces every earlier render of a product (renders.md); whether it also removes
    a file uploaded by hand to the Renders tab is undocumented. Either way the file is not the
    reconciler's to remove, so a due trigger waits for the user to say so."""
    if seen is None or seen.product_missing:
        return action
    foreign = foreign_renders(seen.attachments, have)
    if not foreign:
        return action
    names = [describe(f) for f in foreign]
    count = f"{len(foreign)} file{'s' if len(foreign) != 1 else ''}"
    if action.kind.triggers and forced:
        action.force = True
        action.replaces = [
            *action.replaces,
            f"{count} the reconciler did not make ({', '.join(names)}), if the "
            "trigger removes them (it does for renders; for hand uploads the "
            "platform does not say)",
        ]
    elif action.kind.triggers:
        would = f"{action.kind.value} ({action.reason.value})"
        if have is None:
            adopt = f"'reconciler import {action.product}' adopts renders made elsewhere"
        elif action.reason is Reason.REMOTE_REPLACED:
            adopt = "'reconciler refresh' adopts the platform's files into the state"
        else:
            adopt = "remove them on the platform"
        action.kind = ActionKind.BLOCKED
        action.batch = None
        action.keeps = names
        action.detail = (
            f"would {would}, but its Renders tab holds {count} the reconciler did not make, which a "
            f"trigger may replace: {', '.join(names)}; {adopt}, or render over them with "
            f"--replace {action.product}"
        )
    elif action.kind is ActionKind.NOOP:
        action.reason = Reason.FOREIGN_FILES
        action.keeps = names
        action.detail = (
            f"its renders are intact; {count} on its Renders tab the reconciler did not make: "
            f"{', '.join(names)}; left alone, not adopted"
        )
    return action


def _guard(action: Action, want: ProductSpec | None, have: ProductRecord | None) -> Action:
    """Protected products are never re-rendered over existing renders, nor pruned."""
    protected = want.protect if want is not None else bool(have and have.protect)
    replaces_something = have is not None and (bool(have.attachments) or action.kind is ActionKind.RERENDER)
    if protected and (
        action.kind in (ActionKind.FORGET, ActionKind.DELETE) or (action.kind.triggers and replaces_something)
    ):
        would = action.kind.value
        action.kind = ActionKind.BLOCKED
        action.detail = (
            f"protected: would {would} ({action.reason.value}); remove 'protect: true' to allow it"
        )
        action.batch = None
    return action


def _tripped(plan: Plan, catalogue: int, limits: Limits) -> list[str]:
    """The limits ``plan`` exceeds. The breaker guards what users would lose: a re-render counts
    only when it replaces or deletes renders the product has. A retry of a failed render, a
    first render, a resume or a re-render of a product that never finished rendering loses
    nothing, so a catalogue recovering from failures is never refused (issue 13); a retry of a
    failed re-render was let through (or allowed) when it was first tried."""
    rerender = ActionKind.RERENDER
    rerenders = sum(1 for a in plan.actions.built if a.kind is rerender and (a.replaces or a.deletes))
    allowed = max(limits.rerender_floor, int(limits.rerender_share * catalogue))
    out = []
    if rerenders > allowed:
        out.append(
            f"re-renders {rerenders} of {catalogue} products, replacing their renders, more than the "
            f"limit of {allowed} ({limits.rerender_share:.0%} of the catalogue, at least "
            f"{limits.rerender_floor})"
        )
    deleting = sum(1 for a in plan.actions.built if a.deletes and a.kind is not ActionKind.BLOCKED)
    if deleting > limits.max_deletes:
        out.append(f"deletes renders of {deleting} products, more than the limit of {limits.max_deletes}")
    return out


def _decide(
    want: ProductSpec,
    have: ProductRecord | None,
    forced: bool,
    diffs: dict[tuple[str, str], list[FieldChange]],
    seen: ObservedProduct | None,
    verified: bool,
) -> Action:
    def act(kind: ActionKind, reason: Reason, detail: str | None = None) -> Action:
        action = Action(
            kind,
            reason,
            want.uuid,
            name=want.name,
            spec=want.spec.canonical(),
            spec_hash=want.spec_hash,
            detail=detail,
            source=str(want.source),
            protect=want.protect,
            force=forced and kind.triggers,
            workspace=want.workspace,
        )
        if have is not None and kind.triggers:
            action.previous_hash = have.spec_hash
            if have.spec_hash != want.spec_hash:
                key = (have.spec_hash, want.spec_hash)
                if key not in diffs:
                    diffs[key] = field_changes(have.spec, action.spec or {})
                action.changes = diffs[key]
            action.replaces, action.deletes = replacement(have, want, seen)
        return action

    if have is None:
        return act(ActionKind.RENDER, Reason.NEW)
    if have.status in (Status.REQUESTED, Status.IN_FLIGHT):
        pending = have.request.spec_hash if have.request else have.spec_hash
        if pending == want.spec_hash and not forced:
            return act(
                ActionKind.RESUME,
                Reason.IN_FLIGHT,
                "triggered earlier; results will be waited for, not paid again",
            )
        if pending != want.spec_hash:
            return act(ActionKind.RERENDER, Reason.SPEC_CHANGED, "supersedes the render still in flight")
        return act(ActionKind.RERENDER, Reason.FORCED)
    attempted = have.request.spec_hash if have.request else have.spec_hash
    if have.status is Status.FAILED and attempted == want.spec_hash and not forced:
        return act(ActionKind.RETRY, Reason.FAILED_BEFORE, have.error)
    if have.spec_hash != want.spec_hash:
        return act(ActionKind.RERENDER, Reason.SPEC_CHANGED)
    if have.status is Status.RENDERED:
        drift = drift_of(have, seen, verified)
        if drift is not None:
            return act(ActionKind.RERENDER, drift[0], drift[1])
    if forced:
        return act(ActionKind.RERENDER, Reason.FORCED, "forced with --replace")
    if have.status is Status.FAILED:
        return act(ActionKind.RETRY, Reason.FAILED_BEFORE, have.error)
    return unchanged_action(want)


def drift_of(have: ProductRecord, seen: ObservedProduct | None, verified: bool) -> tuple[Reason, str] | None:
    """Why a rendered product's own files on the platform differ from the record, if they do.

    Files the reconciler did not make are drift only when its own are gone as well (someone
    re-rendered it: ``remote_replaced``); beside intact renders they change nothing (see
    ``_foreign``)."""
    lacking = have.missing_kinds()
    if lacking:
        return Reason.REMOTE_MISSING, "the state records no " + " or ".join(sorted(lacking))
    if seen is None:
        return None
    if seen.product_missing:
        return Reason.REMOTE_MISSING, "the platform no longer knows this product (PRODUCT_NOT_FOUND)"
    recorded = {a.uuid: a for a in have.attachments}
    present = seen.uuids()
    missing = [recorded[u] for u in sorted(recorded.keys() - present)]
    gone = ", ".join(f"{a.kind} {a.name}" for a in missing)
    if missing and (foreign := foreign_renders(seen.attachments, have)):
        return Reason.REMOTE_REPLACED, (
            f"re-rendered outside the reconciler: {gone} gone, {len(foreign)} file(s) "
            "it did not make in their place"
        )
    if missing:
        return Reason.REMOTE_MISSING, "gone from the platform: " + gone
    if verified:
        changed = [
            a
            for a in seen.attachments
            if a.sha256 is not None and a.uuid in recorded and a.sha256 != recorded[a.uuid].sha256
        ]
        if changed:
            return Reason.CONTENT_CHANGED, "bytes no longer match the recorded sha256: " + ", ".join(
                a.name or a.uuid for a in changed
            )
    return None


def _describe(kind: str, spec: dict[str, Any]) -> str:
    if kind == "still":
        return f"the {spec.get('imageFormat', '')} still".replace("the  ", "the ")
    return "the MP4 turntable" if kind == "turntable" else "the GIF"


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """Field-level differences between two canonical specs, as dotted paths."""
    from deepdiff import DeepDiff  # here, not at the top: a tenth of plan's start-up, for changed specs only

    diff = DeepDiff(old, new, verbose_level=2)
    changes: list[FieldChange] = []
    for kind in ("values_changed", "type_changes"):
        for path, change in diff.get(kind, {}).items():
            changes.append(FieldChange(_dotted(path), change.get("old_value"), change.get("new_value")))
    for path, value in diff.get("dictionary_item_added", {}).items():
        changes.append(FieldChange(_dotted(path), None, value))
    for path, value in diff.get("dictionary_item_removed", {}).items():
        changes.append(FieldChange(_dotted(path), value, None))
    return sorted(changes, key=lambda c: c.field)


def _dotted(path: str) -> str:
    return path.removeprefix("root").replace("']['", ".").strip("[]'")


def replacement(
    have: ProductRecord, want: ProductSpec, seen: ObservedProduct | None = None
) -> tuple[list[str], list[str]]:
    """What a new trigger replaces and deletes, since it supersedes every earlier render.

    Judged from the reconciler's own files the platform holds when a refresh saw it (files it
    did not make are listed by ``_foreign``), else from the record; with neither (nothing
    recorded, nothing observed) nothing is claimed."""
    if seen is not None:
        recorded = {a.uuid: a.kind for a in have.attachments}
        ours = recorded_uuids(have)
        kinds = {
            recorded.get(a.uuid) or attachment_kind(a.entity_type, a.name)
            for a in seen.attachments
            if a.uuid in ours and is_render(a.entity_type)
        }
    else:
        kinds = {a.kind for a in have.attachments}
    if not kinds:
        return [], []
    new = want.spec
    replaces = []
    if "still" in kinds:
        old_fmt = have.spec.get("imageFormat", "?")
        old_size = f"{have.spec.get('imageWidth', '?')}x{have.spec.get('imageHeight', '?')}"
        new_size = f"{new.imageWidth}x{new.imageHeight}"
        if old_fmt != new.imageFormat:
            replaces.append(f"still {old_fmt}→{new.imageFormat}")
        elif old_size != new_size:
            replaces.append(f"still {old_fmt} {old_size}→{new_size}")
        else:
            replaces.append(f"the {new.imageFormat} still")
    if "turntable" in kinds:
        replaces.append("the MP4 turntable")
    deletes = []
    if "gif" in kinds and new.turntable.includeGif:
        replaces.append("the GIF")
    elif "gif" in kinds:
        deletes.append("the GIF")
    return replaces, deletes


def _batch(actions: list[Action], desired: Desired, size: int) -> list[Batch]:
    """One batch per spec and workspace (a render request is made in one workspace), at most
    ``size`` products each; without workspaces, exactly the batches of one per spec."""
    groups: dict[tuple[str, str], list[Action]] = {}
    triggering = {k for k in ActionKind if k.triggers}
    for a in actions:
        if a.kind in triggering and a.spec_hash:
            groups.setdefault((a.spec_hash, a.workspace or ""), []).append(a)
    batches: list[Batch] = []
    for spec_hash, workspace in sorted(groups):
        members = groups[(spec_hash, workspace)]
        spec = desired.products[members[0].product].spec.canonical()
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            for a in chunk:
                a.batch = len(batches)
            batches.append(
                Batch(len(batches), spec_hash, spec, [a.product for a in chunk], workspace or None)
            )
    return batches


def _cost(batches: list[Batch], desired: Desired | None = None) -> Cost:
    """What the batches trigger; by preset too when ``desired`` defines presets."""
    products = stills = frames = gifs = 0
    seconds = 0.0
    for b in batches:
        n = len(b.products)
        tt = b.spec["turntable"]
        products += n
        stills += n
        frames += n * tt["imageCount"]
        seconds += n * tt["imageCount"] / tt["frameRate"]
        gifs += n if tt["includeGif"] else 0
    presets = _by_preset(batches, desired) if desired is not None and desired.presets else ()
    return Cost(
        requests=len(batches),
        products=products,
        stills=stills,
        turntable_frames=frames,
        video_seconds=round(seconds, 3),
        gifs=gifs,
        presets=presets,
    )


def _by_preset(batches: list[Batch], desired: Desired) -> tuple[PresetCost, ...]:
    counts: dict[str | None, list[float]] = {}  # preset -> [products, frames, seconds]
    for b in batches:
        tt = b.spec["turntable"]
        frames, seconds = 1 + tt["imageCount"], tt["imageCount"] / tt["frameRate"]
        for uuid in b.products:
            row = counts.setdefault(desired.products[uuid].preset, [0, 0, 0.0])
            row[0] += 1
            row[1] += frames
            row[2] += seconds
    order = sorted(counts, key=lambda p: (p is None, p or ""))
    return tuple(PresetCost(p, int(counts[p][0]), int(counts[p][1]), round(counts[p][2], 3)) for p in order)


def cost_of(batches: list[Batch]) -> Cost:
    """What triggering ``batches`` costs (as a plan counts it, without the split by preset)."""
    return _cost(batches)


# What each budget limit counts, in the plan's cost: (limit, what, the cost's figure).
_BUDGETED: tuple[tuple[str, str, Callable[[Cost], float]], ...] = (
    ("max_frames", "frames", lambda c: c.frames),
    ("max_requests", "render requests", lambda c: c.requests),
    ("max_video_seconds", "s of video", lambda c: c.video_seconds),
)


def over_budget(cost: Cost, budget: Budget) -> list[str]:
    """The limits of ``budget`` that ``cost`` exceeds, each as a sentence naming where it was set.

    A figure equal to its limit is within budget. Frames are stills plus turntable frames of
    every product triggered, requests are trigger requests (batches), seconds of video are
    ``imageCount / frameRate`` summed (docs/plan-format.md, "Budgets")."""
    out = []
    for key, what, figure in _BUDGETED:
        limit = getattr(budget, key)
        planned = figure(cost)
        if limit is not None and planned > limit:
            source = budget.sources.get(key) or "--" + key.replace("_", "-")
            unit = " s" if key == "max_video_seconds" else ""
            what = what.removesuffix("s") if planned == 1 and what.endswith("s") else what
            out.append(f"{number(planned)} {what}, more than the budget of {number(limit)}{unit} ({source})")
    return out


def number(value: float) -> str:
    """``1,234`` for a whole number, ``2.5`` otherwise: budgets and their figures in messages."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{int(value):,}"


def tighter(a: Budget, b: Budget) -> Budget:
    """Each limit the lower of the two (a limit set in either one holds)."""
    limits: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, _, _ in _BUDGETED:
        candidates = [
            (getattr(x, key), x.sources.get(key, "")) for x in (a, b) if getattr(x, key) is not None
        ]
        if candidates:
            limits[key], source = min(candidates, key=lambda c: c[0])
            if source:
                sources[key] = source
    return Budget(**limits, sources=sources)


def recheck_budget(plan: Plan, budget: Budget, *, allow: bool = False) -> None:
    """Check a saved plan again before it is applied: its triggers, counted afresh from its
    batches, against the tighter of the budget it recorded and ``budget`` (the one in force
    now). Sets ``plan.budget`` and ``plan.over_budget``; ``allow`` adds to the recorded
    ``allow_over_budget``."""
    plan.budget = tighter(plan.budget, budget)
    plan.over_budget = over_budget(cost_of(plan.batches), plan.budget)
    plan.allow_over_budget = plan.allow_over_budget or allow
