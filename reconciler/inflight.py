"""Products in flight: triggered (paid for) and not yet recorded. Pure: state in, data out.

``apply --no-wait`` leaves them so on purpose, a signal (a CI job's time limit) or a crash by
accident. ``collect_plan`` is what ``reconciler collect`` executes: a resume for each, no
trigger, so nothing is paid again, and no manifests needed (the write-ahead record keeps the
spec requested). ``pending`` is what ``reconciler status`` lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.plan import Action, ActionKind, Actions, Cost, Plan, Reason, StateToken
from reconciler.spec import Desired
from reconciler.state.model import ProductRecord, State, Status

PENDING = (Status.REQUESTED, Status.IN_FLIGHT)


@dataclass(frozen=True, slots=True)
class InFlight:
    """One product in flight, as ``reconciler status`` shows it."""

    product: str
    name: str | None
    status: str
    """``in_flight`` (the platform accepted the trigger) or ``requested`` (its outcome is unknown)."""
    request_id: str
    spec_hash: str
    requested_at: str
    accepted_at: str | None
    age_seconds: float
    workspace: str | None
    spec: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "name": self.name,
            "status": self.status,
            "request_id": self.request_id,
            "spec_hash": self.spec_hash,
            "requested_at": self.requested_at,
            "accepted_at": self.accepted_at,
            "age_seconds": round(self.age_seconds, 1),
            "workspace": self.workspace,
            "spec": self.spec,
        }


def pending(state: State, now: datetime) -> list[InFlight]:
    """Every product in flight in ``state``, oldest request first; ``now`` gives their age."""
    rows = []
    for uuid, rec in state.products.items():
        if rec.status not in PENDING or rec.request is None:
            continue
        req = rec.request
        rows.append(
            InFlight(
                product=uuid,
                name=rec.name,
                status=rec.status.value,
                request_id=req.request_id,
                spec_hash=req.spec_hash,
                requested_at=req.requested_at,
                accepted_at=req.accepted_at,
                age_seconds=max(0.0, (now - _time(req.requested_at)).total_seconds()),
                workspace=rec.workspace,
                spec=requested_spec(rec),
            )
        )
    return sorted(rows, key=lambda r: (r.requested_at, r.product))


def requested_spec(rec: ProductRecord) -> dict[str, Any] | None:
    """The spec a pending record's trigger asked for: kept by the write-ahead record; for one
    written by an older reconciler, the record's own spec when the hashes match; else None."""
    assert rec.request is not None
    if rec.request.spec:
        return dict(rec.request.spec)
    if rec.request.spec_hash == rec.spec_hash:
        return dict(rec.spec)
    return None


def collect_plan(state: State, location: str, desired: Desired | None = None) -> tuple[Plan, list[str]]:
    """(a plan that waits for every product in flight and triggers nothing, the products left
    out because the spec of their trigger is unknown: an older reconciler's record whose spec the
    manifests no longer hold; ``apply`` with those manifests resumes them)."""
    actions: list[Action] = []
    unknown: list[str] = []
    for uuid in sorted(state.products):
        rec = state.products[uuid]
        if rec.status not in PENDING or rec.request is None:
            continue
        spec = requested_spec(rec)
        if spec is None and desired is not None:
            want = desired.products.get(uuid)
            if want is not None and want.spec_hash == rec.request.spec_hash:
                spec = want.spec.canonical()
        if spec is None:
            unknown.append(uuid)
            continue
        actions.append(
            Action(
                ActionKind.RESUME,
                Reason.IN_FLIGHT,
                uuid,
                name=rec.name,
                spec=spec,
                spec_hash=rec.request.spec_hash,
                previous_hash=rec.spec_hash,
                detail="triggered earlier; results will be waited for, not paid again",
            )
        )
    plan = Plan(
        state=StateToken(state.lineage, state.serial, location),
        actions=Actions(actions),
        batches=[],
        cost=Cost(),
        max_batch_size=1,
    )
    return plan, unknown


def age_text(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h 20 min``, ``2 d 4 h``: how long ago, for people."""
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
