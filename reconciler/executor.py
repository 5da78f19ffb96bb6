"""Walk a plan: trigger batches, wait for results, download and hash them, record them.

Crash safety is a property of this module, not of a hook:
  1. before a batch is sent, each product is checkpointed ``requested`` (write-ahead);
  2. once the platform accepts, ``in_flight`` with the platform's time of acceptance;
  3. once every new file is downloaded and hashed, ``rendered`` with its attachments.
Each checkpoint is one fsync'd journal line. A run killed anywhere leaves products that the
next plan resumes (waits for) rather than triggers, so no spec is paid for twice; a product
whose trigger may never have been sent (killed between 1 and the request) is waited for and,
if nothing arrives within the timeout, marked failed for an explicit retry.

Never touch what the reconciler did not make (reconciler.observed decides what it made):
  * ``--prune=delete`` deletes only the files whose uuid the state records for the product and
    whose entityType, as the platform returns it, is RENDER or TURNTABLE; the run lists every
    other file on the product as left alone;
  * just before a batch is triggered, each product's files are listed once more: a product
    holding render files the reconciler did not make is not triggered (a trigger may replace
    them) unless the plan names it in ``--replace``. That guards saved and offline plans, and
    the listing tells the wait which files were there before the trigger.

The caller holds the state lock for the whole run. Worker threads share one client (and so
one rate limiter) and serialise their checkpoints through ``self._mutex``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from reconciler.errors import (
    ApiError,
    PermanentApiError,
    ReconcilerError,
    StalePlanError,
)
from reconciler.events import (
    Downloaded,
    Failed,
    Hooks,
    Pruned,
    Recorded,
    RunFinished,
    RunStarted,
    Triggered,
    Waiting,
)
from reconciler.fetch import fetch, safe_name
from reconciler.observed import CREATED_SLACK, describe, foreign_renders, is_render, recorded_uuids
from reconciler.plan import Action, ActionKind, Batch, Plan
from reconciler.state import (
    Attachment,
    FileStateStore,
    ProductRecord,
    RenderRequest,
    State,
    Status,
    utcnow,
)
from reconciler.state.model import AttachmentKind, attachment_kind

if TYPE_CHECKING:  # the receiver pulls in an ASGI server; only its type is needed here
    from reconciler.webhooks import EventBoard

class Client(Protocol):
    def trigger_renders(self, product_uuids: list[str], spec: dict[str, Any]) -> Any: ...
    def list_attachments(self, product_uuid: str, entity_type: str | None = None) -> list[Any]: ...
    def download(self, attachment: Any, store_type: str, sink: BinaryIO | None = None) -> Any: ...
    def delete_attachment(self, product_uuid: str, uuid: str) -> None: ...


@dataclass
class ApplyOptions:
    parallelism: int = 4
    product_timeout: float = 900.0
    poll_interval: float = 2.0
    download_dir: Path | None = None
    board: EventBoard | None = None
    """Webhook events, when listening: wake pollers early and report ``*.failed``."""


@dataclass
class ApplyReport:
    rendered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    bytes_downloaded: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def check_plan_current(plan: Plan, state: State) -> None:
    """Refuse a saved plan whose state moved since it was made, naming what moved."""
    moved = []
    if not plan.state.lineage and state.lineage:
        moved.append(f"the state was created (lineage {state.lineage}) after the plan was made")
    elif plan.state.lineage != state.lineage:
        moved.append(f"the state's lineage is {state.lineage}, the plan was made for {plan.state.lineage} "
                     "(a different or re-created state file)")
    elif plan.state.serial != state.serial:
        moved.append(f"the state's serial moved from {plan.state.serial} to {state.serial} "
                     f"({state.serial - plan.state.serial} write(s) since the plan was made)")
    if moved:
        raise StalePlanError(moved)


def sync_labels(store: FileStateStore, state: State, plan: Plan) -> int:
    """Names and ``protect`` live in the manifests; copy them into the state (no render needed).

    Runs on every apply, changes or not: ``protect`` must be on record before the product
    leaves the manifests, or pruning could not see it. Returns how many records changed."""
    changed = 0
    for a in plan.actions:
        rec = state.products.get(a.product)
        if rec is None or a.protect is None:
            continue
        if rec.protect != a.protect or (a.name is not None and rec.name != a.name):
            store.checkpoint(state, a.product, rec.model_copy(update={"protect": a.protect, "name": a.name or rec.name}))
            changed += 1
    return changed


def failpoint(name: str) -> None:
    """Crash-test hook: die as abruptly as a power cut at the named point (tests only)."""
    if os.environ.get("RECONCILER_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class Executor:
    def __init__(self, client: Client, store: FileStateStore, state: State, hooks: Hooks,
                 options: ApplyOptions | None = None) -> None:
        self.client = client
        self.store = store
        self.state = state
        self.hooks = hooks
        self.options = options or ApplyOptions()
        self.report = ApplyReport()
        self._mutex = threading.Lock()
        self._specs: dict[str, dict[str, Any]] = {}  # spec hash → spec being rendered
        self._before: dict[str, set[str]] = {}  # product → uuids of its files just before our trigger

    # -- checkpoints ---------------------------------------------------------------------
    def _checkpoint(self, product: str, record: ProductRecord) -> None:
        with self._mutex:
            self.store.checkpoint(self.state, product, record)

    def _record(self, product: str) -> ProductRecord | None:
        with self._mutex:
            return self.state.products.get(product)

    def _fail(self, product: str, reason: str) -> None:
        rec = self._record(product)
        if rec is not None:
            self._checkpoint(product, rec.model_copy(update={"status": Status.FAILED, "error": reason,
                                                             "updated_at": utcnow()}))
        with self._mutex:
            self.report.failed[product] = reason
        self.hooks.on_event(Failed(product, rec.name if rec else None, reason))

    def _unfinished(self, product: str, name: str | None, reason: str) -> None:
        """Not recorded this run, but not failed either: the state keeps it in flight."""
        with self._mutex:
            self.report.failed[product] = reason
        self.hooks.on_event(Failed(product, name, reason))

    # -- the run -------------------------------------------------------------------------
    def run(self, plan: Plan) -> ApplyReport:
        started = time.monotonic()
        by_product = {a.product: a for a in plan.actions}
        resumes = [a for a in plan.actions if a.kind is ActionKind.RESUME]
        self._specs = {b.spec_hash: b.spec for b in plan.batches}
        self._specs.update({a.spec_hash: a.spec for a in resumes if a.spec_hash and a.spec})
        self.report.skipped = sum(1 for a in plan.actions if a.kind in (ActionKind.NOOP, ActionKind.ORPHAN))
        self.hooks.on_event(RunStarted(triggers=sum(len(b.products) for b in plan.batches), resumes=len(resumes),
                                       batches=len(plan.batches)))
        self._prune([a for a in plan.actions if a.kind in (ActionKind.FORGET, ActionKind.DELETE)])
        with self._mutex:
            sync_labels(self.store, self.state, plan)
        with ThreadPoolExecutor(max_workers=self.options.parallelism, thread_name_prefix="apply") as pool:
            futures = [pool.submit(self._wait_and_record, a.product, resumed=True) for a in resumes]
            for batch in plan.batches:
                for product in self._trigger(batch, by_product):
                    futures.append(pool.submit(self._wait_and_record, product, resumed=False))
            for f in futures:
                f.result()
        self.store.write(self.state, bump=False)  # fold the journal: content already counted
        self.report.seconds = time.monotonic() - started
        return self.report

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
            self.hooks.on_event(Pruned(a.product, rec.name, deleted=a.kind is ActionKind.DELETE,
                                       deleted_files=deleted, left_alone=kept))

    def _delete_renders(self, product: str, rec: ProductRecord, deleted: list[str], kept: list[str]) -> str | None:
        """Delete the product's files that the reconciler made; why not, or None.

        Deleted: the files whose uuid the state records and whose entityType, as listed now, is
        RENDER or TURNTABLE. Everything else is appended to ``kept``: the server may ignore the
        entityType filter, and a PDF or a QR code on the product is not ours to delete."""
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
        except PermanentApiError as exc:
            if exc.status == 404 and "PRODUCT_NOT_FOUND" in exc.codes:
                return None  # the product itself is gone: nothing left to delete
            return exc.message
        except ApiError as exc:
            return exc.message
        return None

    def _preflight(self, batch: Batch, actions: dict[str, Action]) -> list[str]:
        """The products of ``batch`` that may be triggered now; the others are reported, untouched.

        Lists each product's files (in parallel): render files the reconciler did not make
        stop the trigger unless the plan says ``--replace``; the listing is kept so that the
        wait does not take a file that was there before the trigger for a result."""

        def check(product: str) -> str | None:
            try:
                listed = self.client.list_attachments(product)
            except PermanentApiError as exc:
                if exc.status == 404 and "PRODUCT_NOT_FOUND" in exc.codes:
                    return None  # nothing there to protect; the trigger reports the product
                return f"not triggered: could not list its files first ({exc.message})"
            except ApiError as exc:
                return f"not triggered: could not list its files first ({exc.message})"
            with self._mutex:
                self._before[product] = {a.uuid for a in listed}
            foreign = foreign_renders(listed, self._record(product))
            if not foreign or actions[product].force:
                return None
            names = ", ".join(describe(f) for f in foreign)
            return (f"not triggered: its Renders tab holds {len(foreign)} file(s) the reconciler did not make "
                    f"({names}), which a trigger may replace; 'reconciler plan --refresh' shows them, and "
                    f"--replace {product} renders over them")

        with ThreadPoolExecutor(max_workers=min(self.options.parallelism, len(batch.products)),
                                thread_name_prefix="preflight") as pool:
            verdicts = list(pool.map(check, batch.products))
        ready = []
        for product, refusal in zip(batch.products, verdicts):
            if refusal is None:
                ready.append(product)
            else:
                self._unfinished(product, actions[product].name, refusal)
        return ready

    def _trigger(self, batch: Batch, actions: dict[str, Action]) -> list[str]:
        products = self._preflight(batch, actions)
        if not products:
            return []
        request_id = str(uuidlib.uuid4())
        now = utcnow()
        for product in products:
            action = actions[product]
            previous = self._record(product)
            base = previous or ProductRecord(name=action.name, spec=batch.spec, spec_hash=batch.spec_hash,
                                             status=Status.REQUESTED, updated_at=now)
            self._checkpoint(product, base.model_copy(update={
                "name": action.name, "status": Status.REQUESTED, "error": None, "updated_at": now,
                "protect": bool(action.protect),
                "request": RenderRequest(request_id=request_id, spec_hash=batch.spec_hash, requested_at=now)}))
            if self.options.board:
                self.options.board.clear(product)
        failpoint("after-write-ahead")
        try:
            result = self.client.trigger_renders(list(products), dict(batch.spec))
        except PermanentApiError as exc:
            for product in products:
                self._fail(product, "trigger refused: " + (", ".join(exc.codes) or exc.message))
            return []
        except ApiError:
            # The platform may or may not have accepted it: wait for results rather than pay twice.
            return list(products)
        accepted_at = result.triggered_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        for product in products:
            if product in result.errors:
                self._fail(product, result.errors[product])
                continue
            rec = self._record(product)
            assert rec is not None and rec.request is not None
            self._checkpoint(product, rec.model_copy(update={
                "status": Status.IN_FLIGHT, "updated_at": utcnow(),
                "request": rec.request.model_copy(update={"accepted_at": accepted_at})}))
        failpoint("after-trigger")
        accepted = [p for p in products if p not in result.errors]
        self.hooks.on_event(Triggered(batch.index, request_id, accepted, dict(result.errors)))
        return accepted

    def _wait_and_record(self, product: str, *, resumed: bool) -> None:
        rec = self._record(product)
        if rec is None or rec.request is None:
            return
        self.hooks.on_event(Waiting(product, rec.name, resumed))
        try:
            found = self._wait_for_results(product, rec)
            if isinstance(found, str):
                if rec.status is Status.REQUESTED:
                    found += (" after a trigger whose outcome is unknown (the run stopped or the platform "
                              "failed before confirming it); the next apply triggers it again")
                self._fail(product, found)
                return
            attachments = self._download_all(product, found)
        except ReconcilerError as exc:
            if rec.status is Status.IN_FLIGHT:
                # The platform took the trigger: the render is paid for and may be done. Keep it
                # in flight so the next apply fetches it instead of paying again.
                self._unfinished(product, rec.name, f"{exc.message}; still in flight, the next apply resumes it")
            else:
                self._fail(product, exc.message)
            return
        spec = self._spec_for(rec)
        done = rec.model_copy(update={"status": Status.RENDERED, "spec": spec, "spec_hash": rec.request.spec_hash,
                                      "attachments": attachments, "error": None, "updated_at": utcnow(),
                                      "history": rec.superseded()})
        self._checkpoint(product, done)
        with self._mutex:
            self.report.rendered.append(product)
        self.hooks.on_event(Recorded(product, rec.name, len(attachments)))

    def _spec_for(self, rec: ProductRecord) -> dict[str, Any]:
        assert rec.request is not None
        return self._specs.get(rec.request.spec_hash, rec.spec)

    # -- waiting -------------------------------------------------------------------------
    def _wait_for_results(self, product: str, rec: ProductRecord) -> list[tuple[str, Any]] | str:
        """Poll until the new still, MP4 (and GIF if asked) are all there; else why not.

        One unfiltered search per poll serves both RENDER and TURNTABLE; entries are told
        apart by the entityType each carries. New means: not recorded, not present before the
        trigger (when this run sent it), and created at or after the trigger."""
        assert rec.request is not None
        since = _parse_time(rec.request.accepted_at or rec.request.requested_at) - CREATED_SLACK
        with self._mutex:
            old = {a.uuid for a in rec.attachments} | self._before.get(product, set())
        want_gif = bool(self._spec_for(rec).get("turntable", {}).get("includeGif"))
        deadline = time.monotonic() + self.options.product_timeout
        board = self.options.board
        while True:
            mark = board.seen(product) if board else 0  # an event during the search wakes the wait
            new = self._new(product, old, since)
            stills = [a for a in new if _kind_of(a) == "still"]
            mp4 = [a for a in new if _kind_of(a) == "turntable"]
            gif = [a for a in new if _kind_of(a) == "gif"]
            if stills and mp4 and (gif or not want_gif):
                found = [("RENDER", stills[-1]), ("TURNTABLE", mp4[-1])]
                if want_gif:
                    found.append(("TURNTABLE", gif[-1]))
                return found
            failure = board.failure(product) if board else None
            if failure:
                return failure
            if time.monotonic() >= deadline:
                return f"no results within {self.options.product_timeout:g} s"
            if board:
                board.wait(product, self.options.poll_interval, since=mark)
            else:
                time.sleep(self.options.poll_interval)

    def _new(self, product: str, old: set[str], since: datetime) -> list[Any]:
        found = [a for a in self.client.list_attachments(product)
                 if is_render(a.entity_type) and a.uuid not in old
                 and (a.created is None or _aware(a.created) >= since)]
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
        return Attachment(kind=kind, uuid=att.uuid, name=name, sha256=result.sha256, size=result.size,
                          content_type=result.content_type or "application/octet-stream")

    def finish(self, client_stats: dict[str, Any]) -> RunFinished:
        r = self.report
        return RunFinished(rendered=len(r.rendered), failed=len(r.failed), skipped=r.skipped,
                           bytes_downloaded=r.bytes_downloaded, seconds=round(r.seconds, 3),
                           requests=int(client_stats.get("requests", 0)), retries=int(client_stats.get("retries", 0)),
                           throttled_seconds=round(float(client_stats.get("throttled_seconds", 0.0)), 3),
                           failures=dict(r.failed))


def _kind_of(att: Any, content_type: str | None = None) -> AttachmentKind:
    return attachment_kind(att.entity_type, att.name, content_type)


def _parse_time(text: str) -> datetime:
    return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
