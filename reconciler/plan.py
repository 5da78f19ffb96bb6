"""A plan is data: what would happen to each product, why, in which request, at what cost.

The executor dispatches on ``ActionKind`` only; ``Reason`` is for people and CI gates.
The JSON form (``Plan.to_json``) is versioned and documented in docs/plan-format.md; a plan
saved with ``--out`` is that JSON, and ``apply PLANFILE`` reads it back with ``Plan.from_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from operator import attrgetter
from typing import Any, Protocol, overload

from reconciler._gc import gc_paused
from reconciler.errors import LargeChangeError, OverBudgetError, PlanFileError

PLAN_FORMAT_VERSION = 1


class ActionKind(str, Enum):
    RENDER = "render"
    """In the manifests, never rendered: trigger."""
    RERENDER = "rerender"
    """Rendered before with another spec (or forced): trigger; replaces the earlier renders."""
    RETRY = "retry"
    """The last attempt failed: trigger again."""
    RESUME = "resume"
    """Triggered but not recorded as finished: wait for it, never pay again."""
    ORPHAN = "orphan"
    """Recorded but no longer in the manifests: reported, nothing is deleted."""
    FORGET = "forget"
    """An orphan pruned with ``--prune``: dropped from the state, its renders stay."""
    DELETE = "delete"
    """An orphan pruned with ``--prune=delete``: its renders are deleted on the platform too."""
    BLOCKED = "blocked"
    """Would re-render or prune, but the product is protected, or holds render files the
    reconciler did not make that a trigger may replace: nothing happens."""
    NOOP = "noop"
    """State matches the manifests."""

    @property
    def triggers(self) -> bool:
        return self in (ActionKind.RENDER, ActionKind.RERENDER, ActionKind.RETRY)


class Reason(str, Enum):
    NEW = "new"
    SPEC_CHANGED = "spec_changed"
    FAILED_BEFORE = "failed_before"
    IN_FLIGHT = "in_flight"
    FORCED = "forced"
    REMOTE_MISSING = "remote_missing"
    """A recorded attachment is gone from the platform."""
    REMOTE_REPLACED = "remote_replaced"
    """Someone re-rendered outside the reconciler: the platform holds new attachments."""
    CONTENT_CHANGED = "content_changed"
    """The bytes on the platform no longer match the recorded sha256 (``--verify``)."""
    FOREIGN_FILES = "foreign_files"
    """The product's Renders tab holds files the reconciler did not make (a hand upload, a
    render from VNTANA's web app) beside its own, which are intact: left alone."""
    NOT_IN_MANIFESTS = "not_in_manifests"
    UNCHANGED = "unchanged"

    @property
    def category(self) -> str:
        """The group ``--exit-code-on`` and CI gates use."""
        return _CATEGORY[self]


_CATEGORY = {
    Reason.NEW: "new",
    Reason.SPEC_CHANGED: "spec",
    Reason.FAILED_BEFORE: "failed",
    Reason.IN_FLIGHT: "in_flight",
    Reason.FORCED: "forced",
    Reason.REMOTE_MISSING: "drift",
    Reason.REMOTE_REPLACED: "drift",
    Reason.CONTENT_CHANGED: "drift",
    Reason.FOREIGN_FILES: "drift",
    Reason.NOT_IN_MANIFESTS: "orphan",
    Reason.UNCHANGED: "none",
}
CATEGORIES = ("new", "spec", "failed", "in_flight", "forced", "drift", "orphan")


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(slots=True)
class Action:
    kind: ActionKind
    reason: Reason
    product: str
    name: str | None = None
    spec: dict[str, Any] | None = None
    spec_hash: str | None = None
    previous_hash: str | None = None
    changes: list[FieldChange] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    detail: str | None = None
    source: str | None = None
    batch: int | None = None
    protect: bool | None = None
    """The manifests' ``protect`` for the product (None for orphans)."""
    keeps: list[str] = field(default_factory=list)
    """Files on the product the reconciler did not make, which this action leaves alone."""
    force: bool = False
    """Named in ``--replace``: trigger even over render files the reconciler did not make."""
    workspace: str | None = None
    """The manifests' ``workspace:`` for the product (uuid or slug), else None (the configured one)."""

    def effect(self) -> str:
        """In product terms: what the action replaces, deletes and leaves alone on the platform."""
        parts = []
        if self.replaces:
            parts.append("replaces " + _and(self.replaces))
        if self.deletes:
            parts.append("deletes " + _and(self.deletes))
        if self.keeps:
            parts.append("leaves alone " + _and(self.keeps))
        return "; ".join(parts)


class Unchanged(Protocol):
    """What stands for a product the plan leaves alone until its ``Action`` is asked for: the
    manifests' ``ProductSpec`` of a product recorded as rendered at the spec it wants."""

    @property
    def uuid(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def spec_hash(self) -> str: ...
    @property
    def source(self) -> object: ...
    @property
    def protect(self) -> bool: ...


def unchanged_action(want: Unchanged) -> Action:
    """The NOOP action of a product rendered at the spec the manifests want."""
    return Action(
        ActionKind.NOOP,
        Reason.UNCHANGED,
        want.uuid,
        name=want.name,
        spec_hash=want.spec_hash,
        previous_hash=want.spec_hash,
        source=str(want.source),
        protect=want.protect,
    )


class Actions(Sequence[Action]):
    """Every action of a plan, in product order; the unchanged products kept compact.

    A plan of 100,000 products is almost all unchanged ones, and an ``Action`` is some 20 fields
    (about 1 µs and 200 bytes to make): 0.2 s and 20 MB that a terminal plan, which lists only the
    changes, never looks at. So an unchanged product stays the ``ProductSpec`` it already is
    (``Unchanged``) and becomes an ``Action`` only when iterated; ``built`` is the actions made up
    front (every change, and the few no-ops decided the long way), and what counts, summaries and
    the breaker read. Read-only: the planner builds it once."""

    __slots__ = ("_rows", "built")

    def __init__(self, rows: Iterable[Action | Unchanged] = (), built: list[Action] | None = None) -> None:
        """``built``: the ``Action`` rows of ``rows``, in order, if the caller has them already."""
        self._rows: list[Action | Unchanged] = list(rows)
        self.built: list[Action] = (
            [r for r in self._rows if isinstance(r, Action)] if built is None else built
        )

    @property
    def unchanged(self) -> int:
        """How many unchanged products are kept compact (not in ``built``)."""
        return len(self._rows) - len(self.built)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Action: ...
    @overload
    def __getitem__(self, index: slice) -> list[Action]: ...
    def __getitem__(self, index: int | slice) -> Action | list[Action]:
        if isinstance(index, slice):
            return [_made(r) for r in self._rows[index]]
        return _made(self._rows[index])

    def __iter__(self) -> Iterator[Action]:
        for row in self._rows:
            yield row if isinstance(row, Action) else unchanged_action(row)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Actions | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, compared by value

    def __repr__(self) -> str:
        return f"Actions({len(self.built)} built, {self.unchanged} unchanged)"

    def json_lines(self) -> Iterator[str]:
        """Each action's JSON (docs/plan-format.md) on one line, as ``json.dumps(…, ensure_ascii=False)``
        writes it; an unchanged product's straight from a template, five strings filled in (a
        JSON plan of 10^5 products is mostly these: 0.1 s instead of 0.8 s)."""
        line, string = _LINE.encode, _STRING
        hashes: dict[str, str] = {}  # each distinct spec hash and file quoted once
        sources: dict[int, str] = {}  # by id: the rows keep every source alive
        for row in self._rows:
            if isinstance(row, Action):
                yield line(_action_json(row))
                continue
            spec_hash = hashes.get(row.spec_hash)
            if spec_hash is None:
                spec_hash = hashes[row.spec_hash] = string(row.spec_hash)
            source = sources.get(id(row.source))
            if source is None:
                source = sources[id(row.source)] = string(str(row.source))
            yield _UNCHANGED_LINE % (
                string(row.uuid),
                "null" if row.name is None else string(row.name),
                spec_hash,
                spec_hash,
                source,
                "true" if row.protect else "false",
            )


_LINE = json.JSONEncoder(ensure_ascii=False)
_STRING = json.encoder.encode_basestring  # json's C quoting, without ASCII escapes
_UNCHANGED_LINE = (
    '{"kind": "noop", "reason": "unchanged", "product": %s, "name": %s, "spec": null, "spec_hash": %s, '
    '"previous_hash": %s, "changes": [], "replaces": [], "deletes": [], "detail": null, "source": %s, '
    '"batch": null, "protect": %s, "keeps": [], "force": false, "workspace": null, "category": "none", '
    '"effect": ""}'
)
"""``_LINE.encode(_action_json(unchanged_action(want)))``, field for field: tests hold them equal."""


def _made(row: Action | Unchanged) -> Action:
    return row if isinstance(row, Action) else unchanged_action(row)


@dataclass(frozen=True, slots=True)
class Batch:
    """One ``POST /v1/products/renders``: one spec, many products."""

    index: int
    spec_hash: str
    spec: dict[str, Any]
    products: list[str]
    workspace: str | None = None
    """The workspace of every product of the batch (a batch never mixes workspaces); None: the
    configured one. Apply resolves a slug to the uuid before it triggers."""


@dataclass(frozen=True, slots=True)
class PresetCost:
    """What the products of one preset cost (``preset`` None: the products that use none)."""

    preset: str | None
    products: int = 0
    frames: int = 0
    video_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Cost:
    requests: int = 0
    products: int = 0
    stills: int = 0
    turntable_frames: int = 0
    video_seconds: float = 0.0
    gifs: int = 0
    presets: tuple[PresetCost, ...] = ()
    """Products and frames by preset, when the manifests define presets (named first, by name)."""

    @property
    def frames(self) -> int:
        return self.stills + self.turntable_frames


@dataclass(frozen=True, slots=True)
class Budget:
    """The most one plan may trigger (None: no limit); see docs/plan-format.md, "Budgets".

    ``sources`` says where each limit was set (``--max-frames``, ``reconciler.yaml:4``)."""

    max_frames: int | None = None
    max_requests: int | None = None
    max_video_seconds: float | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "max_frames": self.max_frames,
            "max_requests": self.max_requests,
            "max_video_seconds": self.max_video_seconds,
            "sources": dict(self.sources),
        }

    @classmethod
    def from_json(cls, data: Any) -> Budget:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise TypeError(f"budget is {type(data).__name__}, not an object")
        limits: dict[str, Any] = {}
        for key, kind in (("max_frames", int), ("max_requests", int), ("max_video_seconds", (int, float))):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or value < 0):
                raise ValueError(f"budget.{key} is {value!r}, not a number of at least 0")
            limits[key] = value
        sources = data.get("sources")
        sources = {} if sources is None else sources
        if not isinstance(sources, dict):
            raise TypeError("budget.sources is not an object")
        return cls(**limits, sources={str(k): str(v) for k, v in sources.items()})


@dataclass(frozen=True, slots=True)
class StateToken:
    """Which state a plan was computed from; apply refuses a plan whose state moved."""

    lineage: str
    serial: int
    location: str


@dataclass(slots=True)
class Plan:
    state: StateToken
    actions: Actions
    """Every product's action, in uuid order (a list given here becomes ``Actions``)."""
    batches: list[Batch]
    cost: Cost
    max_batch_size: int
    targets: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    waiting: int = 0
    """Changes left out by --target/--exclude: they wait for a later run."""
    limits_tripped: list[str] = field(default_factory=list)
    """Large-change limits this plan exceeds; apply refuses it unless allow_large."""
    allow_large: bool = False
    prune: str | None = None
    refreshed: bool = False
    budget: Budget = field(default_factory=Budget)
    over_budget: list[str] = field(default_factory=list)
    """The budget limits this plan exceeds; apply refuses it unless allow_over_budget."""
    allow_over_budget: bool = False
    workspaces: dict[str, str] = field(default_factory=dict)
    """Each ``workspace:`` the manifests name → where it is first named (``file:line``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.actions, Actions):
            self.actions = Actions(self.actions)

    @property
    def refused(self) -> bool:
        return bool(self.limits_tripped) and not self.allow_large

    def enforce_limits(self, *, allow_large: bool = False) -> None:
        """The breaker, in one place: LargeChangeError when the plan trips a large-change limit that
        neither it nor ``allow_large`` accepts; OverBudgetError when it exceeds a budget it does not
        accept. ``plan`` and ``apply`` call it once the plan is shown, a saved plan's apply too."""
        if self.limits_tripped and not (self.allow_large or allow_large):
            raise LargeChangeError(self.limits_tripped)
        if self.budget_refused:
            raise OverBudgetError(self.over_budget)

    @property
    def budget_refused(self) -> bool:
        """Over budget, and not allowed to be: plan exits 1 and apply triggers nothing."""
        return bool(self.over_budget) and not self.allow_over_budget

    def counts(self) -> dict[str, int]:
        out = {k.value: 0 for k in ActionKind}
        for a in self.actions.built:
            out[a.kind.value] += 1
        out[ActionKind.NOOP.value] += self.actions.unchanged
        return out

    @property
    def has_changes(self) -> bool:
        return any(a.kind not in _INERT for a in self.actions.built)

    def has_changes_in(self, categories: set[str]) -> bool:
        """Changes whose reason falls in ``categories`` (see ``Reason.category``)."""
        return any(a.kind not in _INERT and a.reason.category in categories for a in self.actions.built)

    def changed(self) -> list[Action]:
        """Every action but the no-ops, in product order."""
        return [a for a in self.actions.built if a.kind is not ActionKind.NOOP]

    @gc_paused()  # 10^5 actions become 10^6 objects: see reconciler/_gc.py
    def to_json(self) -> dict[str, Any]:
        """The plan document (docs/plan-format.md)."""
        data = self.head_json()
        data["actions"] = list(self.actions_json())
        return data

    def actions_json(self) -> Iterator[dict[str, Any]]:
        """The document's ``actions``, one at a time (``Actions.json_lines`` gives them as text)."""
        return (_action_json(a) for a in self.actions)

    def head_json(self) -> dict[str, Any]:
        """The document without its ``actions`` (which come last)."""
        cost = asdict(self.cost)
        cost["frames"] = self.cost.frames
        cost["presets"] = list(cost["presets"])
        head = {
            "format_version": PLAN_FORMAT_VERSION,
            "kind": "reconciler-plan",
            "state": asdict(self.state),
            "summary": {**self.counts(), "changes": self.has_changes, "waiting": self.waiting},
            "cost": cost,
            "max_batch_size": self.max_batch_size,
            "targets": self.targets,
            "excludes": self.excludes,
            "waiting": self.waiting,
            "limits_tripped": self.limits_tripped,
            "allow_large": self.allow_large,
            "prune": self.prune,
            "refreshed": self.refreshed,
            "budget": self.budget.to_json(),
            "over_budget": self.over_budget,
            "allow_over_budget": self.allow_over_budget,
            "batches": [
                {
                    "index": b.index,
                    "spec_hash": b.spec_hash,
                    "spec": _plain(b.spec),
                    "products": list(b.products),
                    "workspace": b.workspace,
                }
                for b in self.batches
            ],
        }
        if self.workspaces:  # absent without workspaces: the document reads as before
            head["workspaces"] = dict(self.workspaces)
        return head

    @classmethod
    def from_json(cls, data: Any, origin: str) -> Plan:
        if not isinstance(data, dict) or data.get("kind") != "reconciler-plan":
            raise PlanFileError(f"{origin} is not a saved reconciler plan")
        version = data.get("format_version")
        if version != PLAN_FORMAT_VERSION:
            raise PlanFileError(
                f"{origin} has plan format_version {version}; this reconciler reads {PLAN_FORMAT_VERSION}",
                hint="make the plan again with this version",
            )
        try:
            cost = {k: v for k, v in data["cost"].items() if k != "frames"}
            cost["presets"] = tuple(PresetCost(**p) for p in cost.get("presets", ()))
            return cls(
                state=StateToken(**data["state"]),
                actions=Actions(_action_from_json(a) for a in data["actions"]),
                batches=[Batch(**b) for b in data["batches"]],
                cost=Cost(**cost),
                max_batch_size=int(data["max_batch_size"]),
                targets=list(data.get("targets", [])),
                excludes=list(data.get("excludes", [])),
                waiting=int(data.get("waiting", 0)),
                limits_tripped=list(data.get("limits_tripped", [])),
                allow_large=bool(data.get("allow_large", False)),
                prune=data.get("prune"),
                refreshed=bool(data.get("refreshed", False)),
                budget=Budget.from_json(data.get("budget")),
                over_budget=[str(o) for o in data.get("over_budget", [])],
                allow_over_budget=bool(data.get("allow_over_budget", False)),
                workspaces={str(k): str(v) for k, v in (data.get("workspaces") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanFileError(f"{origin} is damaged: {exc}") from exc


_ACTION_FIELDS = tuple(f.name for f in fields(Action))
_ATOMS = frozenset({str, int, float, bool, type(None), ActionKind, Reason})
_INERT = (ActionKind.NOOP, ActionKind.ORPHAN, ActionKind.BLOCKED)


def _plain(value: Any) -> Any:
    """A copy of nested dicts and lists (``asdict``'s deep copy, without its per-value cost)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


_GET_FIELDS = attrgetter(*_ACTION_FIELDS)
_EMPTY_LISTS = ("changes", "replaces", "deletes", "keeps")


def _action_json(a: Action) -> dict[str, Any]:
    if a.spec is None and not (a.changes or a.replaces or a.deletes or a.keeps):
        # An action of plain values (every unchanged product): the same dict as below, built from
        # one C call for all fields; a JSON plan of 10^5 products is mostly these.
        flat = dict(zip(_ACTION_FIELDS, _GET_FIELDS(a), strict=True))
        for name in _EMPTY_LISTS:
            flat[name] = []
        flat["kind"] = a.kind.value
        flat["reason"] = a.reason.value
        flat["category"] = a.reason.category
        flat["effect"] = ""
        return flat
    return _action_json_general(a)


def _action_json_general(a: Action) -> dict[str, Any]:
    # What asdict(a) gives, field for field, ~10x faster: a plan may hold 10^5 actions.
    out = {
        name: value if type(value) in _ATOMS else _plain(value)
        for name in _ACTION_FIELDS
        for value in (getattr(a, name),)
    }
    out["changes"] = [{"field": c.field, "old": _plain(c.old), "new": _plain(c.new)} for c in a.changes]
    out["kind"] = a.kind.value
    out["reason"] = a.reason.value
    out["category"] = a.reason.category
    out["effect"] = a.effect()
    return out


def _action_from_json(d: dict[str, Any]) -> Action:
    d = dict(d)
    d.pop("effect", None)
    d.pop("category", None)
    d["kind"] = ActionKind(d["kind"])
    d["reason"] = Reason(d["reason"])
    d["changes"] = [FieldChange(**c) for c in d.get("changes", [])]
    return Action(**d)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
