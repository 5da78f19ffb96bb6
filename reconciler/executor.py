"""Walk a plan: trigger batches, wait for results, download and hash them, record them.

Crash safety is a property of this module, not of a hook:
  1. before a batch is sent, each product is checkpointed ``requested`` (write-ahead);
  2. once the platform accepts, ``in_flight`` with the platform's time of acceptance;
  3. once every new file is downloaded and hashed, ``rendered`` with its attachments.
Each checkpoint is one fsync'd journal line. A run killed anywhere leaves products that the
next plan resumes (waits for) rather than triggers, so no spec is paid for twice.

Never pay twice, when the platform fails (issue 13):
  * a trigger whose outcome is unknown (500/502/504, read timeout, dropped connection) is never
    re-sent: its products stay ``requested`` and are waited for like the others, which tells
    whether it was accepted (its files appear) or most likely not (nothing within the expected
    time, see reconciler.waiting); the latter are recorded failed, for the next plan's retry;
  * a retry first looks at the product's files: if the results of the attempt that was given
    up have arrived since, they are downloaded and recorded, and nothing is triggered;
  * a credentials problem (the token refused, or a trigger refused 401/403 for its role or
    scope) stops the run: no further trigger, the refused trigger's write-ahead records are put
    back as they were, in-flight products stay in flight, and ``CredentialsError`` says so.

Waiting holds no worker: one scheduler (the calling thread) keeps every pending product's
next poll time and hands due polls to the pool (``--parallelism`` at once). A failed render is
given up as soon as the platform shows it (a ``*.failed`` delivery, confirmed against the
product's files), or, for a poller, once its files are overdue by what this run has seen
(reconciler.waiting); ``--timeout`` is only the outer bound.

Never touch what the reconciler did not make (reconciler.observed decides what it made):
  * ``--prune=delete`` deletes only the files whose uuid the state records for the product and
    whose entityType, as the platform returns it, is RENDER or TURNTABLE; the run lists every
    other file on the product as left alone;
  * just before a batch is triggered, each product's files are listed once more: a product
    holding render files the reconciler did not make is not triggered (a trigger may replace
    them) unless the plan names it in ``--replace``. That guards saved and offline plans, and
    the listing tells the wait which files were there before the trigger.

``apply`` owns a whole run: it takes the state lock, reads the state, checks a saved plan is
still current (or makes the plan from the state it read), shows it, enforces the breaker and the
budget (``Plan.enforce_limits``), syncs labels, checks the credentials, asks for confirmation,
then prunes, triggers and waits (``Executor``), and always ends with the finish event. Worker
threads share one client (and so one rate limiter) and serialise their checkpoints through
``self._mutex``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.credentials import check_credentials
from reconciler.downloads import fetch, safe_name
from reconciler.errors import (
    ApiError,
    AuthenticationError,
    CredentialsError,
    PermanentApiError,
    ReconcilerError,
    RunInterruptedError,
    StalePlanError,
    StateError,
)
from reconciler.events import (
    Downloaded,
    Failed,
    FoundLate,
    Hooks,
    Pruned,
    Recorded,
    RunFinished,
    RunStarted,
    Triggered,
    Unknown,
    Waiting,
)
from reconciler.observed import (
    CREATED_SLACK,
    created_at,
    describe,
    foreign_renders,
    is_render,
    recorded_uuids,
    unfinished_since,
)
from reconciler.plan import Action, ActionKind, Batch, Plan
from reconciler.state import (
    Attachment,
    ProductRecord,
    RenderRequest,
    State,
    StateStore,
    Status,
    utcnow,
)
from reconciler.state.model import AttachmentKind, attachment_kind
from reconciler.waiting import Expectations, PendingRender, Scheduler, complete, job_of

if TYPE_CHECKING:  # the receiver pulls in an ASGI server; only its type is needed here
    from reconciler.client_protocols import RenderClient
    from reconciler.stopping import StopSignals
    from reconciler.webhook_receiver import EventBoard

log = logging.getLogger("reconciler.executor")

PlanMaker = Callable[[State], Plan]
"""Makes the plan from the state ``apply`` read under the lock (a plan not saved beforehand)."""


Execute = Callable[["Plan", "StateStore", "State", Any, "Hooks", "ApplyOptions"], "ApplyReport"]
"""How ``apply`` runs a confirmed plan when not with an ``Executor`` of its own (plan, store, state
read under the lock, client, hooks, options) -> the run's report."""


@dataclass(frozen=True)
class ApplyOptions:
    """How a run goes: what it waits for and how long, where files are kept, the lock, and the
    caller's part (showing the plan, confirming it, listening for webhooks)."""

    parallelism: int = 4
    product_timeout: float = 900.0
    poll_interval: float = 2.0
    download_dir: Path | None = None
    board: EventBoard | None = None
    """Webhook events, when listening: wake pollers early and report ``*.failed``."""
    lock_timeout: float = 0.0
    allow_large: bool = False
    """Accept a plan that trips the large-change breaker (``--allow-large`` at apply time)."""
    again: tuple[str, str] = ("reconciler plan", "reconciler apply")
    """The plan and apply commands of this run, for the hint of a stale saved plan."""
    show: Callable[[Plan], None] | None = None
    """Shows the plan once it is made (before the breaker: a refused plan is shown too)."""
    confirm: Callable[[Plan], None] | None = None
    """Asked before the first change, once the credentials are known to work; raises to cancel."""
    listen: Callable[[], EventBoard] | None = None
    """Starts receiving webhook deliveries, once the run is confirmed (``board`` for the run)."""
    execute: Execute | None = None
    """Runs the confirmed plan elsewhere (``apply --workers``: reconciler.workers) instead of an
    ``Executor`` here; it emits the run's finish event itself."""
    wait: bool = True
    """False (``apply --no-wait``): trigger and checkpoint, then stop; what was triggered stays
    in flight for a later ``apply`` or ``collect`` (see ``Executor.left_in_flight``)."""
    stops: StopSignals | None = None
    """SIGTERM/SIGINT, told to the run while it executes (``Executor.interrupt``)."""


@dataclass
class ApplyReport:
    rendered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    bytes_downloaded: int = 0
    seconds: float = 0.0
    changes: bool = True
    """False when the plan had nothing to apply (labels may still have been synced)."""
    lineage: str = ""
    """The lineage of the state the run read."""
    in_flight: list[str] = field(default_factory=list)
    """Products triggered (this run or earlier) and not recorded when the run ended: paid for,
    waited for by the next ``apply`` or ``collect``."""
    not_triggered: list[str] = field(default_factory=list)
    """Products the plan would trigger that a stop (a signal) left as they were."""

    @property
    def ok(self) -> bool:
        return not self.failed


def apply(
    plan: Plan | PlanMaker,
    *,
    client: RenderClient,
    store: StateStore,
    hooks: Hooks,
    options: ApplyOptions | None = None,
) -> ApplyReport:
    """Run ``plan`` under the state lock: a saved ``Plan`` is refused if the state moved since it
    was made (StalePlanError); a ``PlanMaker`` is given the state read under the lock, so a run
    that waited for the lock plans from what the previous run left. Raises what the breaker,
    the budget, the confirmation or the credentials raise; the finish event is always emitted
    once execution started."""
    options = options or ApplyOptions()
    with store.lock("apply", timeout=options.lock_timeout):
        state = store.fold()
        if isinstance(plan, Plan):
            check_plan_current(plan, state, again=options.again)
        else:
            plan = plan(state)
        if options.show is not None:
            options.show(plan)
        plan.enforce_limits(allow_large=options.allow_large)
        if not plan.has_changes:
            if sync_labels(store, state, plan):
                store.write(state, bump=False)
            return ApplyReport(changes=False, lineage=state.lineage)
        # Before the first checkpoint: a token or role that cannot do this stops here (issue 13).
        check_every_workspace(client, plan)
        if options.confirm is not None:
            options.confirm(plan)
        if options.listen is not None:
            options = replace(options, board=options.listen())
        if options.execute is not None:
            report = options.execute(plan, store, state, client, hooks, options)
            report.lineage = state.lineage
            return report
        executor = Executor(client, store, state, hooks, options)
        if options.stops is not None:  # from here a stop signal is a clean stop (reconciler.stopping)
            options.stops.attach(executor.interrupt)
        try:
            report = executor.run(plan)
        finally:
            if options.stops is not None:
                options.stops.detach()
            hooks.on_event(executor.finish(client.stats.snapshot().as_dict()))
        report.lineage = state.lineage
        return report


def check_every_workspace(client: RenderClient, plan: Plan) -> None:
    """``check_credentials`` for each workspace the plan's products live in (manifests for teams:
    ``client`` is then a ``client.workspaces.WorkspaceClients``), else for ``client`` alone."""
    writes = bool(plan.batches) or any(a.kind is ActionKind.DELETE for a in plan.actions)
    clients_for = getattr(client, "clients_for", None)
    changed = [a.product for a in plan.actions if a.kind is not ActionKind.NOOP]
    for each in clients_for(changed) if clients_for is not None else [client]:
        check_credentials(each, writes=writes)


def check_plan_current(
    plan: Plan, state: State, *, again: tuple[str, str] = ("reconciler plan", "reconciler apply")
) -> None:
    """Refuse a saved plan whose state moved since it was made, naming what moved; ``again``: the
    plan and apply commands of this run, for the hint."""
    moved = []
    if not plan.state.lineage and state.lineage:
        moved.append(f"the state was created (lineage {state.lineage}) after the plan was made")
    elif plan.state.lineage != state.lineage:
        moved.append(
            f"the state's lineage is {state.lineage}, the plan was made for {plan.state.lineage} "
            "(a different or re-created state file)"
        )
    elif plan.state.serial != state.serial:
        moved.append(
            f"the state's serial moved from {plan.state.serial} to {state.serial} "
            f"({state.serial - plan.state.serial} write(s) since the plan was made)"
        )
    if moved:
        raise StalePlanError(moved, plan=again[0], apply=again[1])


def sync_labels(store: StateStore, state: State, plan: Plan) -> int:
    """Names and ``protect`` live in the manifests; copy them into the state (no render needed).

    Runs on every apply, changes or not: ``protect`` must be on record before the product
    leaves the manifests, or pruning could not see it. Returns how many records changed."""
    changed = 0
    for a in plan.actions:
        rec = state.products.get(a.product)
        if rec is None or a.protect is None:
            continue
        if rec.protect != a.protect or (a.name is not None and rec.name != a.name):
            store.checkpoint(
                state, a.product, rec.model_copy(update={"protect": a.protect, "name": a.name or rec.name})
            )
            changed += 1
    return changed


def failpoint(name: str) -> None:
    """Crash-test hook: die as abruptly as a power cut at the named point (tests only)."""
    if os.environ.get("RECONCILER_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class Executor:
    def __init__(
        self,
        client: RenderClient,
        store: StateStore,
        state: State,
        hooks: Hooks,
        options: ApplyOptions | None = None,
        expectations: Expectations | None = None,
    ) -> None:
        """``expectations``: render times observed so far in this run, when several executors
        share one run (a worker's jobs of an ``apply --workers`` run); else this run's own."""
        self.client = client
        self.store = store
        self.state = state
        self.hooks = hooks
        self.options = options or ApplyOptions()
        self.report = ApplyReport()
        self._mutex = threading.Lock()
        self._specs: dict[str, dict[str, Any]] = {}  # spec hash → spec being rendered
        self._before: dict[str, set[str]] = {}  # product → uuids of its files just before our trigger
        self._expect = expectations or Expectations(self.options.product_timeout, self.options.poll_interval)
        self._scheduler = Scheduler(
            self._poll,
            self._expect,
            parallelism=self.options.parallelism,
            interval=self.options.poll_interval,
        )
        self._halt: ReconcilerError | None = None  # a credentials problem: stop the run
        self._interrupted: str | None = None  # the signal that stopped the run (see ``interrupt``)
        self._untouched: list[str] = []  # products the halt left as they were
        self._requests: set[str] = set()  # request ids of this run's triggers

    # -- checkpoints ---------------------------------------------------------------------
    def _checkpoint(self, product: str, record: ProductRecord | None) -> None:
        with self._mutex:
            self.store.checkpoint(self.state, product, record)

    def _record(self, product: str) -> ProductRecord | None:
        with self._mutex:
            return self.state.products.get(product)

    def _fail(self, product: str, reason: str) -> None:
        rec = self._record(product)
        if rec is not None:
            self._checkpoint(
                product,
                rec.model_copy(update={"status": Status.FAILED, "error": reason, "updated_at": utcnow()}),
            )
        with self._mutex:
            self.report.failed[product] = reason
        self.hooks.on_event(Failed(product, rec.name if rec else None, reason))

    def _unfinished(self, product: str, name: str | None, reason: str) -> None:
        """Not recorded this run, but not failed either: the state keeps it as it was."""
        with self._mutex:
            self.report.failed[product] = reason
        self.hooks.on_event(Failed(product, name, reason))

    def _stop(self, exc: ReconcilerError, *, polls: bool = True) -> None:
        """A credentials problem: no further trigger, and with ``polls`` (the token is dead) no
        further poll either; the run ends with ``exc``. Without ``polls`` (a trigger refused for
        the role or scope) what is in flight is still waited for and downloaded."""
        with self._mutex:
            if self._halt is None:
                self._halt = exc
        if polls:
            self._scheduler.stop()

    # -- the run -------------------------------------------------------------------------
    def run(self, plan: Plan) -> ApplyReport:
        """Execute ``plan``; CredentialsError (after folding the journal) if the credentials fail."""
        started = time.monotonic()
        by_product = {a.product: a for a in plan.actions}
        resumes = [a for a in plan.actions if a.kind is ActionKind.RESUME]
        self._specs = {b.spec_hash: b.spec for b in plan.batches}
        self._specs.update({a.spec_hash: a.spec for a in resumes if a.spec_hash and a.spec})
        self.report.skipped = sum(1 for a in plan.actions if a.kind in (ActionKind.NOOP, ActionKind.ORPHAN))
        self.hooks.on_event(
            RunStarted(
                triggers=sum(len(b.products) for b in plan.batches),
                resumes=len(resumes),
                batches=len(plan.batches),
            )
        )
        if self.options.board is not None:
            self.options.board.subscribe(self._scheduler.nudge)
        try:
            self._prune([a for a in plan.actions if a.kind in (ActionKind.FORGET, ActionKind.DELETE)])
            with self._mutex:
                sync_labels(self.store, self.state, plan)
            with ThreadPoolExecutor(max_workers=self.options.parallelism, thread_name_prefix="apply") as pool:
                for a in resumes if self.options.wait else ():
                    pending = self._resume(a.product)
                    if pending is not None:
                        self._scheduler.add(pending)
                batches = iter(plan.batches)

                def more() -> list[PendingRender] | None:
                    go = self._halt is None and self._interrupted is None
                    batch = next(batches, None) if go else None
                    if batch is None:
                        return None
                    waits = self._trigger(batch, by_product)
                    return waits if self.options.wait else []

                self._scheduler.run(pool, more)
        except BaseException:
            self._fold_after_failure()
            raise
        else:
            self.store.write(self.state, bump=False)  # fold the journal: content already counted
        finally:
            self.report.seconds = time.monotonic() - started
            self.left_in_flight(plan)
        if self._halt is not None:
            raise self._halted()
        if self._interrupted is not None:
            raise self._stopped_by_signal()
        return self.report

    def interrupt(self, signal_name: str) -> None:
        """Stop the run soon, as for the end of a CI job's time (SIGTERM, SIGINT): no further
        trigger or poll; the polls and downloads under way finish and are checkpointed, and
        ``run`` raises RunInterruptedError. Safe to call from a signal handler: it takes no lock
        (the scheduler looks at ``stopped`` at least once a second)."""
        self._interrupted = signal_name
        self._scheduler.stopped = True  # a plain store: a lock here could deadlock the handler

    def left_in_flight(self, plan: Plan) -> None:
        """Fill the report's ``in_flight`` and ``not_triggered`` from the state, once the run ended."""
        settled = set(self.report.rendered) | set(self.report.failed)
        in_flight, untouched = [], []
        for a in plan.actions:
            if a.product in settled or not (a.kind is ActionKind.RESUME or a.kind.triggers):
                continue
            rec = self.state.products.get(a.product)
            if rec is not None and rec.status in (Status.REQUESTED, Status.IN_FLIGHT):
                in_flight.append(a.product)  # this run's trigger, or an earlier one still pending
            if a.kind.triggers and (
                rec is None or rec.request is None or rec.request.request_id not in self._requests
            ):
                untouched.append(a.product)
        self.report.in_flight, self.report.not_triggered = in_flight, untouched

    def _stopped_by_signal(self) -> RunInterruptedError:
        r = self.report
        return RunInterruptedError(
            f"the run was stopped by {self._interrupted}: {len(r.rendered)} product(s) recorded, "
            f"{len(r.in_flight)} in flight (paid for, not yet recorded), {len(r.not_triggered)} not "
            "triggered; everything is checkpointed and the state lock is released",
            in_flight=list(r.in_flight),
            not_triggered=list(r.not_triggered),
        )

    def _fold_after_failure(self) -> None:
        """Fold the journal after the run failed, without hiding why it failed.

        A full disk that failed a checkpoint usually fails the fold too; the user must read the
        first error, not the second. The journal stays on disk and the next read folds it."""
        try:
            self.store.write(self.state, bump=False)
        except StateError as folding:
            log.warning("the journal stays unfolded until the next run: %s", folding)

    def _halted(self) -> CredentialsError:
        assert self._halt is not None
        left = sorted(set(self._untouched) | set(self._scheduler.waiting()))
        records = [self._record(p) for p in left]
        earlier = sum(
            1 for r in records if r is not None and r.status in (Status.IN_FLIGHT, Status.REQUESTED)
        )
        detail = ""
        if left:
            detail = f"; {len(left)} product(s) left as they were"
            if earlier:
                detail += (
                    f" ({earlier} triggered earlier: the next apply waits for them and does not pay again)"
                )
        return CredentialsError(
            f"the run stopped: {self._halt.message}{detail}; {len(self.report.rendered)} "
            "product(s) were recorded before it stopped",
            hint=self._halt.hint or "check VNTANA_API_TOKEN and the user's role, then apply again",
        )

    def _prune(self, actions: list[Action]) -> None:
        """Orphans: delete their renders on the platform first (``delete``), then forget them."""
        for a in actions:
            rec = self._record(a.product)
            if rec is None:
                continue
            deleted: list[str] = []
            kept: list[str] = []
            if a.kind is ActionKind.DELETE:
                problem = self._delete_renders(a.product, rec, deleted, kept)
                if problem:
                    self._fail(a.product, f"could not delete its renders ({problem}); kept in the state")
                    continue
            with self._mutex:
                self.store.checkpoint(self.state, a.product, None)
            self.hooks.on_event(
                Pruned(
                    a.product,
                    rec.name,
                    deleted=a.kind is ActionKind.DELETE,
                    deleted_files=deleted,
                    left_alone=kept,
                )
            )

    def _delete_renders(
        self, product: str, rec: ProductRecord, deleted: list[str], kept: list[str]
    ) -> str | None:
        """Delete the product's files that the reconciler made; why not, or None.

        Deleted: the files whose uuid the state records and whose entityType, as listed now, is
        RENDER or TURNTABLE. Everything else is appended to ``kept``: the server may ignore the
        entityType filter, and a PDF or a QR code on the product is not ours to delete.
        A credentials failure propagates (the run stops)."""
        ours = recorded_uuids(rec)
        try:
            for att in self.client.list_attachments(product):
                if att.uuid not in ours or not is_render(att.entity_type):
                    kept.append(describe(att))
                    continue
                try:
                    self.client.delete_attachment(product, att.uuid)
                except PermanentApiError as exc:
                    if exc.status != 404:  # already gone is what we wanted
                        raise
                deleted.append(describe(att))
        except AuthenticationError:
            raise
        except PermanentApiError as exc:
            if exc.status == 404 and "PRODUCT_NOT_FOUND" in exc.codes:
                return None  # the product itself is gone: nothing left to delete
            return exc.message
        except ApiError as exc:
            return exc.message
        return None

    def _preflight(self, batch: Batch, actions: dict[str, Action]) -> tuple[list[str], list[str]]:
        """(products of ``batch`` that may be triggered now, products whose given-up attempt has
        delivered after all); the others are reported, untouched.

        Lists each product's files (in parallel): render files the reconciler did not make
        stop the trigger unless the plan says ``--replace``; a retry whose earlier attempt's
        results are all there now is recorded, not paid again; the listing is kept so that
        the wait does not take a file that was there before the trigger for a result."""

        def check(product: str) -> str | None:
            if self._halt is not None:
                return "not triggered: the run stopped"
            try:
                listed = self.client.list_attachments(product)
            except AuthenticationError as exc:
                self._stop(exc)
                return "not triggered: the run stopped"
            except PermanentApiError as exc:
                if exc.status == 404 and "PRODUCT_NOT_FOUND" in exc.codes:
                    return None  # nothing there to protect; the trigger reports the product
                return f"not triggered: could not list its files first ({exc.message})"
            except ApiError as exc:
                return f"not triggered: could not list its files first ({exc.message})"
            with self._mutex:
                self._before[product] = {a.uuid for a in listed}
            record = self._record(product)
            if _late_results(listed, record, batch.spec_hash, batch.spec):
                return LATE
            foreign = foreign_renders(listed, record)
            if not foreign or actions[product].force:
                return None
            names = ", ".join(describe(f) for f in foreign)
            return (
                f"not triggered: its Renders tab holds {len(foreign)} file(s) the reconciler did not make "
                f"({names}), which a trigger may replace; 'reconciler plan --refresh' shows them, and "
                f"--replace {product} renders over them"
            )

        with ThreadPoolExecutor(
            max_workers=min(self.options.parallelism, len(batch.products)), thread_name_prefix="preflight"
        ) as pool:
            verdicts = list(pool.map(check, batch.products))
        ready, late = [], []
        for product, refusal in zip(batch.products, verdicts, strict=True):
            if refusal is None:
                ready.append(product)
            elif refusal is LATE:
                late.append(product)
            elif self._halt is not None:
                with self._mutex:
                    self._untouched.append(product)
            else:
                self._unfinished(product, actions[product].name, refusal)
        return ready, late

    def _trigger(self, batch: Batch, actions: dict[str, Action]) -> list[PendingRender]:
        products, late = self._preflight(batch, actions)
        waits = []
        for product in late:
            rec = self._record(product)
            assert rec is not None
            self.hooks.on_event(FoundLate(product, rec.name))
            with self._mutex:
                self._before.pop(product, None)  # its results are among what was listed
            pending = self._resume(product, found_late=True)
            if pending is not None:
                waits.append(pending)
        if not products or self._halt is not None:
            with self._mutex:
                self._untouched.extend(products if self._halt is not None else [])
            return waits
        request_id = str(uuidlib.uuid4())
        self._requests.add(request_id)
        now = utcnow()
        previous = {p: self._record(p) for p in products}
        for product in products:
            action = actions[product]
            base = previous[product] or ProductRecord(
                name=action.name,
                spec=batch.spec,
                spec_hash=batch.spec_hash,
                status=Status.REQUESTED,
                updated_at=now,
            )
            self._checkpoint(
                product,
                base.model_copy(
                    update={
                        "name": action.name,
                        "status": Status.REQUESTED,
                        "error": None,
                        "updated_at": now,
                        "protect": bool(action.protect),
                        "workspace": batch.workspace,
                        "request": RenderRequest(
                            request_id=request_id,
                            spec_hash=batch.spec_hash,
                            requested_at=now,
                            spec=batch.spec,
                        ),
                    }
                ),
            )
        failpoint("after-write-ahead")
        sent = time.monotonic()
        sent_at = _parse_time(now)
        if self.options.board:
            for product in products:
                self.options.board.expect(product, sent_at)
        try:
            result = self.client.trigger_renders(list(products), dict(batch.spec))
        except PermanentApiError as exc:
            if isinstance(exc, AuthenticationError) or exc.status in (401, 403):
                # Refused as a whole for the credentials (the token, its role or its scope): the
                # platform did nothing, so the write-ahead is taken back and the run stops.
                for product in products:
                    self._checkpoint(product, previous[product])
                with self._mutex:
                    self._untouched.extend(products)
                self._stop(
                    CredentialsError(
                        f"the platform refused the render request ({exc.message})",
                        hint=exc.hint
                        or "check the user's role and workspace: triggering needs "
                        "an Owner, Admin, Workspace Admin or Content Manager",
                    ),
                    polls=isinstance(exc, AuthenticationError),
                )
                return waits
            for product in products:
                self._fail(product, "trigger refused: " + (", ".join(exc.codes) or exc.message))
            return waits
        except ApiError as exc:
            # The platform may or may not have accepted it. Never re-sent (that may pay twice):
            # the products stay ``requested`` and their files tell (reconciler.waiting).
            why = exc.message
            self.hooks.on_event(Unknown(batch.index, request_id, list(products), why))
            return waits + [self._pending_for(p, sent, sent_at, unknown=why) for p in products]
        accepted_at = result.triggered_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        for product in products:
            if product in result.errors:
                self._fail(product, result.errors[product])
                continue
            rec = self._record(product)
            assert rec is not None and rec.request is not None
            self._checkpoint(
                product,
                rec.model_copy(
                    update={
                        "status": Status.IN_FLIGHT,
                        "updated_at": utcnow(),
                        "request": rec.request.model_copy(update={"accepted_at": accepted_at}),
                    }
                ),
            )
        failpoint("after-trigger")
        accepted = [p for p in products if p not in result.errors]
        self.hooks.on_event(Triggered(batch.index, request_id, accepted, dict(result.errors)))
        return waits + [self._pending_for(p, sent, sent_at) for p in accepted]

    def _pending_for(
        self,
        product: str,
        sent: float,
        sent_at: datetime,
        *,
        unknown: str | None = None,
        resumed: bool = False,
    ) -> PendingRender:
        rec = self._record(product)
        assert rec is not None and rec.request is not None
        since = _parse_time(rec.request.accepted_at or rec.request.requested_at) - CREATED_SLACK
        with self._mutex:
            old = {a.uuid for a in rec.attachments} | self._before.get(product, set())
        self.hooks.on_event(Waiting(product, rec.name, resumed))
        accepted = _parse_time(rec.request.accepted_at) if rec.request.accepted_at else None
        return PendingRender(
            product=product,
            name=rec.name,
            started=sent,
            waiting_since=time.monotonic(),
            since=since,
            old=old,
            spec=self._spec_for(rec),
            resumed=resumed,
            unknown=unknown,
            accepted=accepted,
        )

    def _resume(self, product: str, *, found_late: bool = False) -> PendingRender | None:
        """A product triggered earlier (a resume, or a given-up attempt whose files came late)."""
        rec = self._record(product)
        if rec is None or rec.request is None:
            return None
        if found_late:
            self._specs.setdefault(rec.request.spec_hash, rec.spec)
        requested = _parse_time(rec.request.requested_at)
        age = max(0.0, (datetime.now(UTC) - requested).total_seconds())
        unknown = (
            (
                "a trigger whose outcome is unknown (the run stopped or the platform failed before confirming "
                "it)"
            )
            if rec.status is Status.REQUESTED
            else None
        )
        pending = self._pending_for(product, time.monotonic() - age, requested, unknown=unknown, resumed=True)
        if self.options.board:
            self.options.board.expect(product, requested)
        return pending

    def _spec_for(self, rec: ProductRecord) -> dict[str, Any]:
        assert rec.request is not None
        # The plan's spec for its hash; else the one the write-ahead record keeps (``collect``
        # has no manifests); else, for a record of an older reconciler, the recorded spec.
        return self._specs.get(rec.request.spec_hash) or rec.request.spec or rec.spec

    # -- waiting -------------------------------------------------------------------------
    def _poll(self, pending: PendingRender) -> bool:
        """Look once at the product's files: record it, fail it, or not yet (False)."""
        product = pending.product
        if self._scheduler.stopped:
            return False
        pending.polls += 1
        board = self.options.board
        try:
            new = self._new(product, pending.old, pending.since)
            now = time.monotonic()
            kinds = {_kind_of(a) for a in new}
            for job in {job_of(k) for k in kinds} - set(pending.seen):
                pending.seen[job] = now
                if not pending.resumed:
                    self._expect.observe(job, _took(pending, job, new, now), pending.spec, now)
            found = complete(new, _kind_of, pending.want_gif)
            if found is not None:
                self._record_results(pending, found)
                return True
            if board is not None:
                for job, why in board.failures(product).items():
                    if job in pending.seen:
                        board.dismiss(product, job)  # its result is there: not this render's failure
                        continue
                    self._give_up(pending, why)
                    return True
            deadline, why = self._expect.deadline(pending)
            if now >= deadline:
                self._give_up(pending, why)
                return True
            return False
        except AuthenticationError as exc:
            self._stop(exc)
            return False
        except ReconcilerError as exc:
            rec = self._record(product)
            why = exc.message + (f" ({exc.hint})" if exc.hint else "")
            if rec is not None and rec.status is Status.IN_FLIGHT:
                # The platform took the trigger: the render is paid for and may be done. Keep it
                # in flight so the next apply fetches it instead of paying again.
                self._unfinished(product, rec.name, f"{why}; still in flight, the next apply resumes it")
            else:
                self._fail(product, why)
            return True

    def _give_up(self, pending: PendingRender, why: str) -> None:
        if pending.unknown:
            why += (
                f", after a trigger whose outcome is unknown ({pending.unknown}): most likely it was not "
                "accepted; the next apply looks for late results before it triggers again"
            )
        elif pending.resumed:
            why += "; the next apply looks for late results before it triggers again"
        if self.options.board:
            self.options.board.forget(pending.product)
        self._fail(pending.product, why)

    def _record_results(self, pending: PendingRender, found: list[tuple[str, Any]]) -> None:
        product = pending.product
        rec = self._record(product)
        assert rec is not None and rec.request is not None
        attachments = self._download_all(product, found)
        spec = self._spec_for(rec)
        done = rec.model_copy(
            update={
                "status": Status.RENDERED,
                "spec": spec,
                "spec_hash": rec.request.spec_hash,
                "attachments": attachments,
                "error": None,
                "updated_at": utcnow(),
                "history": rec.superseded(),
                "request": rec.request.model_copy(update={"spec": None}),  # recorded as ``spec`` now
            }
        )
        self._checkpoint(product, done)
        if self.options.board:
            self.options.board.forget(product)
        with self._mutex:
            self.report.rendered.append(product)
        self.hooks.on_event(Recorded(product, rec.name, len(attachments)))

    def _new(self, product: str, old: set[str], since: datetime) -> list[Any]:
        found = [
            a
            for a in self.client.list_attachments(product)
            if is_render(a.entity_type)
            and a.uuid not in old
            and (a.created is None or _aware(a.created) >= since)
        ]
        return sorted(found, key=lambda a: (_aware(a.created) if a.created else since, a.uuid))

    # -- downloading ---------------------------------------------------------------------
    def _download_all(self, product: str, found: list[tuple[str, Any]]) -> list[Attachment]:
        out = []
        for index, (store_type, att) in enumerate(found):
            if index == 1:
                failpoint("mid-download")
            out.append(self._download(product, store_type, att))
        return out

    def _download(self, product: str, store_type: str, att: Any) -> Attachment:
        folder = self.options.download_dir / product if self.options.download_dir is not None else None
        _, result = fetch(self.client, att, store_type, folder)
        kind = _kind_of(att, result.content_type)
        name = safe_name(att)
        with self._mutex:
            self.report.bytes_downloaded += result.size
        self.hooks.on_event(Downloaded(product, kind, name, result.size, result.sha256))
        return Attachment(
            kind=kind,
            uuid=att.uuid,
            name=name,
            sha256=result.sha256,
            size=result.size,
            content_type=result.content_type or "application/octet-stream",
        )

    def finish(self, client_stats: dict[str, Any]) -> RunFinished:
        r = self.report
        return RunFinished(
            rendered=len(r.rendered),
            failed=len(r.failed),
            skipped=r.skipped,
            bytes_downloaded=r.bytes_downloaded,
            seconds=round(r.seconds, 3),
            requests=int(client_stats.get("requests", 0)),
            retries=int(client_stats.get("retries", 0)),
            throttled_seconds=round(float(client_stats.get("throttled_seconds", 0.0)), 3),
            failures=dict(r.failed),
            in_flight=len(r.in_flight),
        )


LATE = "late results"
"""``_preflight``'s verdict for a retry whose given-up attempt has delivered after all."""


def _took(pending: PendingRender, job: str, new: list[Any], now: float) -> float:
    """How long ``job`` took: on the platform's clock (its ``Date`` at the trigger to the file's
    ``created``) when both are known, else from the trigger to now on ours."""
    created = [c for a in new if job_of(_kind_of(a)) == job and (c := created_at(a)) is not None]
    if pending.accepted is not None and created:
        return (min(created) - pending.accepted).total_seconds()
    return now - pending.started


def _late_results(
    listed: list[Any], record: ProductRecord | None, spec_hash: str, spec: dict[str, Any]
) -> bool:
    """Whether a failed attempt at this very spec delivered after it was given up: its still,
    MP4 (and GIF) are on the product, created after its trigger and not recorded. Then a retry
    would pay for what is already there."""
    if (
        record is None
        or record.status is not Status.FAILED
        or record.request is None
        or record.request.spec_hash != spec_hash
    ):
        return False
    since = unfinished_since(record)
    if since is None:
        return False
    ours = recorded_uuids(record)
    new = [
        a
        for a in listed
        if is_render(a.entity_type)
        and a.uuid not in ours
        and (created := created_at(a)) is not None
        and created >= since
    ]
    return complete(new, _kind_of, bool(spec.get("turntable", {}).get("includeGif"))) is not None


def _kind_of(att: Any, content_type: str | None = None) -> AttachmentKind:
    return attachment_kind(att.entity_type, att.name, content_type)


def _parse_time(text: str) -> datetime:
    return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
