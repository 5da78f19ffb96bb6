"""The planner: desired manifests + recorded state in, a ``Plan`` out. Pure: no I/O, clock or env.

Decisions, per product:
  in manifests, not in state                         → render   (new)
  recorded failed                                    → retry    (failed_before)
  requested / in flight with the desired spec        → resume   (in_flight): wait, never pay twice
  spec hash differs from the recorded/in-flight one  → rerender (spec_changed)
  named in ``replace``                               → rerender (forced)
  recorded, not in manifests                         → orphan   (nothing is deleted)
  otherwise                                          → noop
Triggers are grouped by identical spec into batches of at most ``max_batch_size``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepdiff import DeepDiff

from reconciler.plan import Action, ActionKind, Batch, Cost, FieldChange, Plan, Reason, StateToken
from reconciler.spec import Desired, ProductSpec
from reconciler.state.model import ProductRecord, State, Status

DEFAULT_MAX_BATCH_SIZE = 50


class PlanOptionsError(ValueError):
    pass


def build_plan(desired: Desired, state: State, *, location: str = "", replace: Iterable[str] = (),
               max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> Plan:
    """Compute the plan. ``replace`` lists product uuids to re-render regardless of their state."""
    if max_batch_size < 1:
        raise PlanOptionsError("max batch size must be at least 1")
    forced = {u.lower() for u in replace}
    unknown = sorted(forced - desired.products.keys())
    if unknown:
        raise PlanOptionsError("--replace names products that are not in the manifests: " + ", ".join(unknown))
    diffs: dict[tuple[str, str], list[FieldChange]] = {}
    actions: list[Action] = []
    records = state.products
    for uuid in sorted(desired.products.keys() | records.keys()):
        want = desired.products.get(uuid)
        have = records.get(uuid)
        if want is None:
            assert have is not None
            actions.append(Action(ActionKind.ORPHAN, Reason.NOT_IN_MANIFESTS, uuid, name=have.name,
                                  previous_hash=have.spec_hash, detail="not in the manifests; its renders are kept"))
        else:
            actions.append(_decide(want, have, uuid in forced, diffs))
    batches = _batch(actions, desired, max_batch_size)
    return Plan(state=StateToken(state.lineage, state.serial, location), actions=actions, batches=batches,
                cost=_cost(batches), max_batch_size=max_batch_size)


def _decide(want: ProductSpec, have: ProductRecord | None, forced: bool,
            diffs: dict[tuple[str, str], list[FieldChange]]) -> Action:
    def act(kind: ActionKind, reason: Reason, detail: str | None = None) -> Action:
        action = Action(kind, reason, want.uuid, name=want.name, spec=want.spec.canonical(),
                        spec_hash=want.spec_hash, detail=detail, source=str(want.source))
        if have is not None and kind.triggers:
            action.previous_hash = have.spec_hash
            if have.spec_hash != want.spec_hash:
                key = (have.spec_hash, want.spec_hash)
                if key not in diffs:
                    diffs[key] = field_changes(have.spec, action.spec or {})
                action.changes = diffs[key]
            action.replaces, action.deletes = replacement(have, want)
        return action

    if have is None:
        return act(ActionKind.RENDER, Reason.NEW)
    if have.status in (Status.REQUESTED, Status.IN_FLIGHT):
        pending = have.request.spec_hash if have.request else have.spec_hash
        if pending == want.spec_hash and not forced:
            return act(ActionKind.RESUME, Reason.IN_FLIGHT, "triggered earlier; results will be waited for, not paid again")
        if pending != want.spec_hash:
            return act(ActionKind.RERENDER, Reason.SPEC_CHANGED, "supersedes the render still in flight")
        return act(ActionKind.RERENDER, Reason.FORCED)
    attempted = have.request.spec_hash if have.request else have.spec_hash
    if have.status is Status.FAILED and attempted == want.spec_hash and not forced:
        return act(ActionKind.RETRY, Reason.FAILED_BEFORE, have.error)
    if have.spec_hash != want.spec_hash:
        return act(ActionKind.RERENDER, Reason.SPEC_CHANGED)
    if forced:
        return act(ActionKind.RERENDER, Reason.FORCED, "forced with --replace")
    if have.status is Status.FAILED:
        return act(ActionKind.RETRY, Reason.FAILED_BEFORE, have.error)
    return Action(ActionKind.NOOP, Reason.UNCHANGED, want.uuid, name=want.name, spec_hash=want.spec_hash,
                  previous_hash=have.spec_hash, source=str(want.source))


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """Field-level differences between two canonical specs, as dotted paths."""
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


def replacement(have: ProductRecord, want: ProductSpec) -> tuple[list[str], list[str]]:
    """What a new trigger replaces and deletes, since it supersedes every earlier render."""
    old_still = f"{have.spec.get('imageFormat', '?')} {have.spec.get('imageWidth', '?')}x{have.spec.get('imageHeight', '?')}"
    new = want.spec
    new_still = f"{new.imageFormat} {new.imageWidth}x{new.imageHeight}"
    kinds = {a.kind for a in have.attachments} if have.attachments else None
    had_gif = "gif" in kinds if kinds is not None else bool(have.spec.get("turntable", {}).get("includeGif"))
    replaces = []
    old_fmt, new_fmt = old_still.split()[0], new_still.split()[0]
    if old_still == new_still:
        replaces.append(f"the {new_fmt} still")
    elif old_fmt != new_fmt:
        replaces.append(f"still {old_fmt}→{new_fmt}")
    else:
        replaces.append(f"still {old_still}→{new_still.split()[1]}")
    replaces.append("the MP4 turntable")
    deletes = []
    if had_gif and new.turntable.includeGif:
        replaces.append("the GIF")
    elif had_gif:
        deletes.append("the GIF")
    return replaces, deletes


def _batch(actions: list[Action], desired: Desired, size: int) -> list[Batch]:
    groups: dict[str, list[Action]] = {}
    for a in actions:
        if a.kind.triggers and a.spec_hash:
            groups.setdefault(a.spec_hash, []).append(a)
    batches: list[Batch] = []
    for spec_hash in sorted(groups):
        members = groups[spec_hash]
        spec = desired.products[members[0].product].spec.canonical()
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            for a in chunk:
                a.batch = len(batches)
            batches.append(Batch(len(batches), spec_hash, spec, [a.product for a in chunk]))
    return batches


def _cost(batches: list[Batch]) -> Cost:
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
    return Cost(requests=len(batches), products=products, stills=stills, turntable_frames=frames,
                video_seconds=round(seconds, 3), gifs=gifs)
