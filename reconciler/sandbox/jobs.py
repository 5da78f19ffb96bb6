"""Render jobs: pending -> processing -> completed | failed, and the replace-on-rerender rule.

Each accepted product of a ``POST /v1/products/renders`` gets two jobs of one trigger: a
RENDER job (the still) and a TURNTABLE job (the MP4, plus a GIF when asked). A scheduler
thread drives the timing (``pending_seconds`` then ``processing_seconds``) from a heap, so
a thousand queued jobs cost no threads; only the media work runs in a bounded thread pool
(``workers``), so the HTTP server stays responsive while frames are encoded.

Invariants:
- A job's files appear atomically on completion: the product's earlier render results of the
  job's kind are replaced in one transaction (``Store.commit_job``); files a user uploaded by
  hand to the Renders tab go too only under ``manual_renders_replaced``. The still and the
  turntable of one trigger are separate jobs and may land at slightly different times.
- A newer trigger for the same product supersedes an older unfinished job: the older one
  ends SUPERSEDED, emits no further events and its results never appear.
- A FAILED job leaves the product's earlier attachments of that kind in place.
- Jobs still unfinished when the sandbox stops are resumed (from pending) on the next start.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.sandbox import media
from reconciler.sandbox.duequeue import DueQueue
from reconciler.sandbox.faults import FaultInjector
from reconciler.sandbox.readings import Readings
from reconciler.sandbox.store import Store, slug

log = logging.getLogger(__name__)

RENDER = "RENDER"
TURNTABLE = "TURNTABLE"
KINDS = (RENDER, TURNTABLE)
EVENT_PREFIX = {RENDER: "renders", TURNTABLE: "turntable"}
EXTENSIONS = {"PNG": "png", "JPG": "jpg", "WEBP": "webp", "MP4": "mp4", "GIF": "gif"}

EventSink = Callable[[str, dict[str, Any]], None]


class JobEngine:
    """Runs render jobs in the background; ``submit`` them, ``wait_idle`` for them."""

    def __init__(
        self,
        store: Store,
        faults: FaultInjector,
        on_event: EventSink,
        *,
        workers: int = 2,
        pending_seconds: float = 0.2,
        processing_seconds: float = 0.5,
        readings: Callable[[], Readings] = Readings,
    ) -> None:
        self.store = store
        self.readings = readings  # read when a job completes: ``manual_renders_replaced``
        self.faults = faults
        self.on_event = on_event
        self.pending_seconds = pending_seconds
        self.processing_seconds = processing_seconds
        self._cond = threading.Condition()
        self._due: DueQueue[tuple[Callable[..., None], tuple[Any, ...]]] = DueQueue(self._cond)
        self._active: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sandbox-render")
        self._thread = threading.Thread(target=self._loop, name="sandbox-jobs", daemon=True)

    def start(self) -> None:
        """Start the scheduler and resume jobs left unfinished by a previous run."""
        self._thread.start()
        for job in self.store.unfinished_jobs():
            if job["status"] == "PROCESSING":
                self.store.transition_job(job["uuid"], "PROCESSING", "PENDING")
            self._track(job["uuid"])
            self._schedule(time.monotonic() + self.pending_seconds, self._begin, job["uuid"])

    def stop(self) -> None:
        """Stop scheduling, let running media work finish, join every thread."""
        self._due.close()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, jobs: list[dict[str, Any]]) -> None:
        """Announce new PENDING jobs (``*.pending`` event) and schedule their processing."""
        due = time.monotonic() + self.pending_seconds
        for job in jobs:
            self._track(job["uuid"])
            self._emit("pending", job)
            self._schedule(due, self._begin, job["uuid"])

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is pending or processing; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._active, timeout)

    @property
    def active(self) -> int:
        with self._cond:
            return len(self._active)

    # -- scheduler ------------------------------------------------------------
    def _track(self, job_uuid: str) -> None:
        with self._cond:
            self._active.add(job_uuid)

    def _done(self, job_uuid: str) -> None:
        with self._cond:
            self._active.discard(job_uuid)
            self._cond.notify_all()

    def _schedule(self, due: float, fn: Callable[..., None], *args: Any) -> bool:
        return self._due.put(due, (fn, args))

    def _loop(self) -> None:
        while (step := self._due.take()) is not None:
            fn, args = step
            try:
                fn(*args)
            except Exception:  # a bug in one step must not kill the scheduler
                log.exception("sandbox job step failed")
                if args and isinstance(args[0], str):
                    self._done(args[0])

    # -- job steps ------------------------------------------------------------
    def _begin(self, job_uuid: str) -> None:
        if not self.store.transition_job(job_uuid, "PENDING", "PROCESSING"):
            self._done(job_uuid)  # superseded while pending
            return
        job = self.store.job(job_uuid)
        assert job is not None
        self._emit("processing", job)
        started = time.monotonic()
        try:
            self._pool.submit(self._work, job, started)
        except RuntimeError:  # pool shut down: the job resumes on the next start
            self._done(job_uuid)

    def _work(self, job: dict[str, Any], started: float) -> None:
        outputs: list[dict[str, Any]] = []
        error: str | None = None
        try:
            outputs = self._render(job)
        except Exception as exc:  # the media layer failing is a failed job, not a crash
            log.warning("sandbox %s job %s failed: %s", job["kind"], job["uuid"], exc)
            error = f"RENDER_ERROR: {type(exc).__name__}"
        if not self._schedule(
            started + self.processing_seconds, self._finish, job["uuid"], job, outputs, error
        ):
            # Stopping: the job stays unfinished in the store and resumes on the next start.
            self.store.remove_blobs([o["blob_id"] for o in outputs])
            self._done(job["uuid"])

    def _finish(
        self, job_uuid: str, job: dict[str, Any], outputs: list[dict[str, Any]], error: str | None
    ) -> None:
        try:
            if error is None and self.faults.job_should_fail(job["product_uuid"]):
                error = "INJECTED_FAILURE"
            if error is not None:
                self.store.remove_blobs([o["blob_id"] for o in outputs])
                if self.store.transition_job(job_uuid, "PROCESSING", "FAILED", error):
                    self._emit("failed", job)
                return
            replace_uploads = self.readings().manual_renders_replaced
            replaced = self.store.commit_job(job, outputs, replace_uploads=replace_uploads)
            if replaced is None:  # superseded meanwhile: the newer trigger wins
                self.store.remove_blobs([o["blob_id"] for o in outputs])
                return
            self.store.remove_blobs(replaced)
            self._emit("completed", job)
        finally:
            self._done(job_uuid)

    def _emit(self, phase: str, job: dict[str, Any]) -> None:
        self.on_event(f"{EVENT_PREFIX[job['kind']]}.{phase}", job)

    # -- media ----------------------------------------------------------------
    def _render(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        product = self.store.product(job["product_uuid"])
        if product is None:
            raise LookupError("product vanished")
        spec = job["spec"]
        if job["kind"] == RENDER:
            fmt = spec["imageFormat"]
            data = media.render_still(
                product["shape"],
                product["uuid"],
                width=spec["imageWidth"],
                height=spec["imageHeight"],
                fmt=fmt,
                background=spec.get("imageBackground"),
                transparent=bool(spec.get("transparentBackground")),
            )
            return [self._output(product, "render", fmt, data)]
        mp4, gif = media.render_turntable(
            product["shape"],
            product["uuid"],
            image_count=spec["imageCount"],
            frame_rate=spec["frameRate"],
            width=spec["width"],
            height=spec["height"],
            background=spec.get("background"),
            transparent=bool(spec.get("transparentBackground")),
            include_gif=bool(spec.get("includeGif")),
        )
        outputs = [self._output(product, "turntable", "MP4", mp4)]
        if spec.get("includeGif") and gif is not None:
            outputs.append(self._output(product, "turntable", "GIF", gif))
        return outputs

    def _output(self, product: dict[str, Any], role: str, fmt: str, data: bytes) -> dict[str, Any]:
        attachment_uuid = str(uuidlib.uuid4())
        ext = EXTENSIONS[fmt]
        blob_id = f"{attachment_uuid}.{ext}"  # flat, as on the platform
        self.store.write_blob(blob_id, data)
        return {
            "uuid": attachment_uuid,
            "blob_id": blob_id,
            "name": f"{slug(product['name'])}-{role}.{ext}",
            "content_type": media.CONTENT_TYPES[fmt],
            "size": len(data),
        }
