"""Apply progress as text: log lines for CI logs and pipes, or JSON lines; and the texts the live
terminal display (reconciler.cli.live) shares with them.

All consume the same executor events; none of them can see a token or a signed URL because no
event carries one. Each writes to the stream it is given.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import IO

from reconciler.events import (
    Downloaded,
    Event,
    Failed,
    FoundLate,
    Pruned,
    Recorded,
    RunFinished,
    RunStarted,
    Triggered,
    Unknown,
    Waiting,
)


def summary_text(e: RunFinished, run: str = "Apply") -> str:
    """The last line of a run; ``run``: what ran (Apply, Collect, Refresh)."""
    mib = e.bytes_downloaded / (1 << 20)
    rate = mib / e.seconds if e.seconds > 0 else 0.0
    return (
        f"{run} finished: {e.rendered} rendered, {e.failed} failed, "
        + (f"{e.in_flight} in flight, " if e.in_flight else "")
        + f"{e.skipped} unchanged/skipped; "
        f"{mib:.1f} MiB downloaded in {e.seconds:.1f} s ({rate:.1f} MiB/s); {e.requests} API requests, "
        f"{e.retries} retries, {e.throttled_seconds:.1f} s throttled."
    )


def failures_text(e: RunFinished) -> str:
    lines = [f"  {product}: {reason}" for product, reason in sorted(e.failures.items())]
    return "Failed (the next plan retries them):\n" + "\n".join(lines) if lines else ""


class LogLines:
    """One plain line per event, for CI logs and pipes; ``run`` names the run in its summary."""

    def __init__(self, stream: IO[str] | None = None, run: str = "Apply") -> None:
        self.stream = stream or sys.stderr
        self.run = run
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._say(
                f"Triggering {event.triggers} product(s) in {event.batches} request(s); "
                f"resuming {event.resumes}."
            )
        elif isinstance(event, Triggered):
            rejected = f", {len(event.rejected)} rejected" if event.rejected else ""
            self._say(f"batch {event.batch + 1}: {len(event.accepted)} accepted{rejected}")
        elif isinstance(event, Unknown):
            self._say(unknown_text(event))
        elif isinstance(event, FoundLate):
            self._say(f"{event.product}: {FOUND_LATE}")
        elif isinstance(event, Waiting) and event.resumed:
            self._say(f"{event.product}: resuming, waiting for the render already triggered")
        elif isinstance(event, Downloaded):
            self._say(
                f"{event.product}: downloaded {event.kind} {event.name} ({event.size} bytes, "
                f"sha256 {event.sha256[:12]}…)"
            )
        elif isinstance(event, Recorded):
            self._say(f"{event.product}: recorded {event.attachments} file(s) ({event.name or ''})".rstrip())
        elif isinstance(event, Failed):
            self._say(f"{event.product}: FAILED: {event.reason}")
        elif isinstance(event, Pruned):
            what = "deleted its renders and forgot it" if event.deleted else "forgot it (renders kept)"
            self._say(f"{event.product}: pruned: {what}{pruned_files(event)}")
        elif isinstance(event, RunFinished):
            self._say(summary_text(event, self.run))
            if event.failures:
                self._say(failures_text(event))


class JsonLines:
    """``--format json``: one JSON object per event on stdout."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        with self._lock:
            print(json.dumps(event.to_json(), sort_keys=True), file=self.stream, flush=True)


FOUND_LATE = (
    "the results of its earlier attempt arrived after it was given up: downloading them, nothing is triggered"
)


def unknown_text(event: Unknown) -> str:
    return (
        f"batch {event.batch + 1}: outcome unknown ({event.reason}); not sent again (it may have been "
        f"accepted): waiting for the files of its {len(event.products)} product(s)"
    )


def pruned_files(event: Pruned) -> str:
    """What ``--prune=delete`` deleted and left alone, for a log line."""
    if not event.deleted:
        return ""
    deleted = ", ".join(event.deleted_files) or "nothing"
    kept = ", ".join(event.left_alone) or "nothing else on the product"
    return f"; deleted {deleted}; left alone {kept}"
