"""The live display of an apply run on a terminal (rich): products triggered, rendering, recorded and
failed; bytes and download rate. Log lines and JSON lines are views (reconciler.views.progress)."""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn

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
from reconciler.views.progress import FOUND_LATE, failures_text, pruned_files, summary_text, unknown_text


class LiveProgress:
    """A live display: products triggered, rendering, recorded and failed; bytes and download rate."""

    def __init__(self, console: Console | None = None, run: str = "Apply") -> None:
        self.console = console or Console(stderr=True)
        self.run = run
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=self.console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._counts = {"triggered": 0, "recorded": 0, "failed": 0}
        self._rendering: set[str] = set()
        self._bytes = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        with self._lock:
            self._handle(event)
            if self._task is not None and not isinstance(event, RunFinished):
                self.progress.update(self._task, description=self.description())

    def description(self) -> str:
        c = self._counts
        mib = self._bytes / (1 << 20)
        rate = mib / max(time.monotonic() - self._started, 1e-6)
        failed = f"[red]{c['failed']} failed[/red]" if c["failed"] else "0 failed"
        return (
            f"{c['triggered']} triggered · {len(self._rendering)} rendering · {c['recorded']} recorded · {failed} · "
            f"{mib:.1f} MiB at {rate:.1f} MiB/s"
        )

    def _handle(self, event: Event) -> None:
        c = self._counts
        if isinstance(event, RunStarted):
            self._started = time.monotonic()
            self.progress.start()
            self._task = self.progress.add_task(self.description(), total=event.triggers + event.resumes)
        elif isinstance(event, Triggered):
            c["triggered"] += len(event.accepted)
            self._rendering.update(event.accepted)
            for product, code in event.rejected.items():
                self.console.print(f"[red]rejected[/red] {escape(product)}: {escape(code)}", highlight=False)
        elif isinstance(event, Unknown):
            self._rendering.update(event.products)
            self.console.print(unknown_text(event), highlight=False, markup=False)
        elif isinstance(event, FoundLate):
            self.console.print(
                f"{event.product} {event.name or ''}: {FOUND_LATE}", highlight=False, markup=False
            )
        elif isinstance(event, Waiting) and event.resumed:
            self._rendering.add(event.product)
        elif isinstance(event, Downloaded):
            self._bytes += event.size
        elif isinstance(event, (Recorded, Failed)) and self._task is not None:
            if isinstance(event, Failed):
                c["failed"] += 1
                self.console.print(
                    f"[red]failed[/red] {escape(event.product)} {escape(event.name or '')}: "
                    f"{escape(event.reason)}",
                    highlight=False,
                )
            else:
                c["recorded"] += 1
            self._rendering.discard(event.product)
            self.progress.advance(self._task)
        elif isinstance(event, Pruned):
            self.console.print(
                f"pruned {event.product} {event.name or ''}{pruned_files(event)}",
                highlight=False,
                markup=False,
            )
        elif isinstance(event, RunFinished):
            if self._task is not None:
                self.progress.update(self._task, description=self.description())
            self.progress.stop()
            self.console.print(summary_text(event, self.run), highlight=False, markup=False)
            if event.failures:
                self.console.print(failures_text(event), highlight=False, markup=False)
