"""A run's progress across machines: workers append the executor's events, the run reads them.

Events go to ``reconciler.run_events`` in batches (every ``FLUSH`` seconds and at the end of
each job), so the hot path of a worker does not pay a database round trip per event. They are
for showing progress: an event lost with a killed worker costs a line of output, never a
result, because ``apply --workers`` takes its summary from the state itself.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import fields
from typing import Any

import psycopg

from reconciler import events as executor_events
from reconciler.events import Event
from reconciler.state.pgschema import SCHEMA
from reconciler.state.pgstore import PgLocation

log = logging.getLogger("reconciler.workers")

FLUSH = 0.2
"""Seconds between two writes of a worker's buffered events."""


class EventSink:
    """Buffers events and writes them in batches from a thread of its own; thread-safe."""

    def __init__(self, where: PgLocation) -> None:
        self._where = where
        self._lock = threading.Lock()
        self._write = threading.Lock()
        self._buffer: list[tuple[str, str]] = []
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-events", daemon=True)
        self._thread.start()

    def add(self, run: str, event: dict[str, Any]) -> None:
        with self._lock:
            self._buffer.append((run, json.dumps(event)))

    def flush(self) -> None:
        with self._write:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if not rows:
                return
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self._where.conninfo, autocommit=True, application_name="reconciler run events"
                    )
                with self._conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {SCHEMA}.run_events (run_id, event) VALUES (%s, %s)", rows)
            except psycopg.Error as exc:  # progress only: the state holds the results
                log.warning(
                    "could not write %d progress event(s): %s", len(rows), self._where.scrub(str(exc))
                )
                self._conn = None

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
        if self._conn is not None:
            self._conn.close()


_EVENT_TYPES = {
    cls.__name__: cls
    for cls in vars(executor_events).values()
    if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event
}


def rebuild(data: dict[str, Any]) -> Event | None:
    """The executor's event a worker wrote (None for our own records, such as JobStats)."""
    cls = _EVENT_TYPES.get(str(data.get("event")))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
